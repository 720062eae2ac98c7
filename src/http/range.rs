//! `Range` requests as players and edges send them: one byte range, or the whole body.

/// What to send in answer to a `Range` header for a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range (absent, multi-range, or not `bytes=`): send the whole body, 200.
    Whole,
    /// Send bytes `start..=end`, 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// The range lies wholly past the end: 416.
    Unsatisfiable,
}

/// Decides the answer for `header` (the `Range` value, if any).
///
/// Multi-range requests get the whole body: serving N parts as multipart/byteranges buys a
/// player nothing and hands an attacker an amplifier. Syntax we do not understand is ignored,
/// as RFC 9110 allows, and the whole body is sent.
pub fn answer(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(value) = header else {
        return RangeAnswer::Whole;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = position(last) else {
            return RangeAnswer::Whole;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        let n = n.min(len);
        return RangeAnswer::Partial {
            start: len - n,
            end: len - 1,
        };
    }
    let Some(start) = position(first) else {
        return RangeAnswer::Whole;
    };
    let end = if last.is_empty() {
        len.saturating_sub(1)
    } else {
        match position(last) {
            Some(e) if e >= start => e.min(len.saturating_sub(1)),
            _ => return RangeAnswer::Whole,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial { start, end }
}

/// A byte position as RFC 9110 writes it, `1*DIGIT`: `u64::from_str` alone would also take a
/// leading `+`.
fn position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn ranges() {
        assert_eq!(answer(None, 100), Whole);
        assert_eq!(answer(Some("bytes=0-9"), 100), Partial { start: 0, end: 9 });
        assert_eq!(
            answer(Some("bytes=90-"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            answer(Some("bytes=-10"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            answer(Some("bytes=-1000"), 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(
            answer(Some("bytes=50-1000"), 100),
            Partial { start: 50, end: 99 }
        );
        assert_eq!(answer(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(answer(Some("items=0-1"), 100), Whole);
        assert_eq!(answer(Some("bytes=9-1"), 100), Whole);
        assert_eq!(answer(Some("bytes=x-1"), 100), Whole);
    }

    #[test]
    fn positions_are_digits_only() {
        // `u64::from_str` also takes a leading `+`; RFC 9110's `1*DIGIT` does not, and a
        // cache in front must not see a range it ignored answered as one.
        for header in [
            "bytes=+5-9",
            "bytes=5-+9",
            "bytes=-+5",
            "bytes=+5-",
            "bytes=+0-0",
        ] {
            assert_eq!(answer(Some(header), 100), Whole, "{header}");
        }
        assert_eq!(answer(Some("bytes=+5-5"), 0), Whole);
    }
}
