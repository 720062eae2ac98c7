//! Logging: text or JSON lines on stderr. In text, every field value and message is escaped,
//! so a value from a request or a token (a `sub` with a newline, an escape sequence) can
//! never start a line of its own or drive the terminal; JSON escapes by itself.

use std::fmt::{self, Write as _};

use tracing::field::Field;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

/// Installs the global subscriber: JSON lines when `json`, else text.
pub(super) fn init(json: bool) {
    use std::io::IsTerminal;
    // Decoder crates narrate every stream they open at info level; keep them to warnings.
    let filter = EnvFilter::try_from_env("ENCORE_LOG").unwrap_or_else(|_| EnvFilter::new("info,symphonia=warn,symphonia_core=warn,symphonia_format_ogg=warn,symphonia_bundle_mp3=warn,symphonia_format_isomp4=warn,symphonia_format_riff=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        // Targets in JSON: audit lines are `"target":"encore::audit"`, for log shippers.
        builder.with_target(true).json().try_init()
    } else {
        builder
            .fmt_fields(escaped_fields())
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// The text log's field formatter: `name=value` pairs separated by spaces (the message
/// bare), each value escaped by [`Escaped`].
pub(crate) fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(write_field).delimited(" ")
}

fn write_field(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    if field.name() != "message" {
        write!(w, "{}=", field.name())?;
    }
    write!(Escaped(w), "{value:?}")
}

/// Writes through to `W` with every control character (C0, DEL, C1) and the Unicode line
/// and paragraph separators written as Rust escapes (`\n`, `\u{1b}`), so one event stays one
/// line whatever its values hold.
struct Escaped<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn values_never_break_a_text_log_line() {
        let out = Shared::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(escaped_fields())
            .finish();
        let forged = "fan-1\nINFO encore::audit: action=\"purchase\" user=\"victim\"";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "encore::audit", actor = %forged, action = "rotate",
                "by {}", "x\r\u{1b}[2J\u{2028}y");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(!text.contains('\r') && !text.contains('\u{1b}') && !text.contains('\u{2028}'));
        assert!(
            text.contains(r#"actor=fan-1\nINFO encore::audit: action="purchase""#),
            "{text}"
        );
        assert!(text.contains(r"by x\r\u{1b}[2J\u{2028}y"), "{text}");
        assert!(text.contains("action=\"rotate\""), "{text}");
    }
}
