//! The audit log of key operations: `keys/audit.jsonl`, append-only, one JSON object per
//! line: when, who, what, which key ids, and the result. Never key material: only ids, which
//! are public (kids are in the JWKS, content key ids in every segment header).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// File name of the audit log inside the keys directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// Who asked for an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A person at the origin host running `encore keys` (their login name).
    Local {
        /// The OS user name.
        user: String,
    },
    /// A caller of the admin API (the `sub` of its `admin` token).
    Token {
        /// The token's subject.
        sub: String,
    },
    /// The server's own maintenance (retirements and clean-ups that were due).
    Maintenance,
}

impl Actor {
    /// The local user running this process, from `$USER`/`$LOGNAME`, else the uid.
    pub fn local() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata("/proc/self")
                    .map(|m| format!("uid {}", m.uid()))
                    .unwrap_or_else(|_| "unknown".into())
            });
        Actor::Local { user }
    }
}

/// One line of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditRecord<'a> {
    /// RFC 3339 UTC time.
    pub time: String,
    /// Seconds since the Unix epoch.
    pub unix: u64,
    /// Who.
    pub actor: &'a Actor,
    /// The operation, e.g. `rotate-signing`.
    pub operation: &'a str,
    /// Its target and key ids (never key material).
    pub details: serde_json::Value,
    /// `ok` or `error`.
    pub result: &'a str,
    /// The error message, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Appends records to the audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The audit log of the keys directory `keys_dir`.
    pub fn in_keys_dir(keys_dir: &Path) -> Self {
        AuditLog {
            path: keys_dir.join(AUDIT_FILE),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and syncs it: an operation is not reported done before its audit
    /// line is on disk. `O_APPEND` makes each line land whole at the end even with several
    /// writers (one `write` per line, well under the pipe-atomicity size in practice).
    pub fn append(&self, record: &AuditRecord<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()?;
        tracing::info!(
            target: "encore::audit",
            operation = record.operation,
            actor = ?record.actor,
            result = record.result,
            details = %record.details,
            "key operation"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_append_and_parse() {
        let tmp = tempfile::tempdir().unwrap();
        let log = AuditLog::in_keys_dir(tmp.path());
        let actor = Actor::Token { sub: "ops".into() };
        for op in ["rotate-signing", "rotate-kek"] {
            log.append(&AuditRecord {
                time: "2026-11-28T00:00:00Z".into(),
                unix: 1,
                actor: &actor,
                operation: op,
                details: serde_json::json!({"kid": "00"}),
                result: "ok",
                error: None,
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["operation"], "rotate-kek");
        assert_eq!(lines[0]["actor"]["kind"], "token");
        assert_eq!(lines[0]["actor"]["sub"], "ops");
    }
}
