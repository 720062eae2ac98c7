//! The life of a token-signing key as a function of time: published (pending), signing
//! (active), superseded but still verifying, retired, or revoked. Plain functions over the
//! state file's entries, so the timeline is tested without a clock or a disk.
//!
//! ```text
//! created ──(propagation delay)──▶ activates ──(successor activates)──▶ verifying ──▶ retires
//!   │ in the JWKS, not signing       │ signs new tokens                  │ old tokens   │ gone
//! revoked at any point: distrusted at once
//! ```

use std::fmt;

use super::keyfiles::SigningEntry;
use crate::seal::SigningKid;

/// Whether a key is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Published (a signing key in the JWKS) but not used yet: it signs once its propagation
    /// delay has passed.
    Pending,
    /// Used for new wraps / new tokens.
    Active,
    /// Superseded, still trusted: verifies tokens signed before the rotation (a KEK: still
    /// unwraps keys an unfinished rotation has not re-wrapped yet).
    Verifying,
    /// Out of service: every token it signed has expired.
    Retired,
    /// Distrusted by staff after a suspected leak.
    Revoked,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Verifying => "verifying",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        })
    }
}

/// When `entry` starts signing.
pub(crate) fn activates(entry: &SigningEntry) -> u64 {
    entry.activates_unix.unwrap_or(entry.created_unix)
}

fn revoked(entry: &SigningEntry, now: u64) -> bool {
    entry.revoked_unix.is_some_and(|t| t <= now)
}

fn retired(entry: &SigningEntry, now: u64) -> bool {
    entry.retires_unix.is_some_and(|t| t <= now)
}

/// The key that signs new tokens at `now`: the most recently activated key that is neither
/// revoked nor retired. `None` only when every key is revoked or retired.
pub(crate) fn signer_at(entries: &[SigningEntry], now: u64) -> Option<&SigningEntry> {
    entries
        .iter()
        .filter(|e| activates(e) <= now && !revoked(e, now) && !retired(e, now))
        // Ties (two keys activating in the same second) go to the later-listed, i.e. newer, one.
        .max_by_key(|e| activates(e))
}

/// The state of `entry` at `now`.
pub(crate) fn state_at(entries: &[SigningEntry], entry: &SigningEntry, now: u64) -> KeyState {
    if revoked(entry, now) {
        KeyState::Revoked
    } else if retired(entry, now) {
        KeyState::Retired
    } else if activates(entry) > now {
        KeyState::Pending
    } else if signer_at(entries, now).is_some_and(|s| s.kid == entry.kid) {
        KeyState::Active
    } else {
        KeyState::Verifying
    }
}

/// Whether tokens signed by `entry` are accepted at `now`: published, not revoked, not
/// retired. Pending keys are trusted too: they are ours and in the JWKS already.
pub(crate) fn trusted_at(entry: &SigningEntry, now: u64) -> bool {
    !revoked(entry, now) && !retired(entry, now)
}

/// Whether `entry`'s private key is still needed at `now`: it signs, or will.
pub(crate) fn needs_private_key(entries: &[SigningEntry], entry: &SigningEntry, now: u64) -> bool {
    matches!(
        state_at(entries, entry, now),
        KeyState::Active | KeyState::Pending
    )
}

/// Adds a key that is published now and signs from `now + propagation`; every key still in
/// service gets a retirement time after which no token it signed can still be valid:
/// `activation of the new key + longest token lifetime + clock leeway`.
pub(crate) fn rotate(
    entries: &mut Vec<SigningEntry>,
    kid: SigningKid,
    now: u64,
    propagation: u64,
    token_horizon: u64,
) {
    let activation = now.saturating_add(propagation);
    let retire = activation.saturating_add(token_horizon);
    for e in entries.iter_mut() {
        if e.revoked_unix.is_none() {
            // A key that would retire earlier anyway keeps its earlier time.
            e.retires_unix = Some(e.retires_unix.map_or(retire, |t| t.min(retire)));
        }
    }
    entries.push(SigningEntry {
        kid,
        created_unix: now,
        activates_unix: Some(activation),
        retires_unix: None,
        revoked_unix: None,
    });
}

/// What revoking a key requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterRevoke {
    /// Another key signs (or a pending one was brought forward to sign now).
    SignerRemains(SigningKid),
    /// No key is left to sign: the caller must add one that signs at once.
    NeedsNewSigner,
}

/// Marks `kid` revoked at `now`. If no key is left to sign, the newest pending key is brought
/// forward to sign at once (skipping its propagation delay: the revoked key is distrusted
/// anyway, so edges must refetch the JWKS now). Returns `None` if `kid` is not listed.
pub(crate) fn revoke(
    entries: &mut [SigningEntry],
    kid: SigningKid,
    now: u64,
) -> Option<AfterRevoke> {
    let entry = entries.iter_mut().find(|e| e.kid == kid)?;
    if entry.revoked_unix.is_none() {
        entry.revoked_unix = Some(now);
    }
    if let Some(signer) = signer_at(entries, now) {
        return Some(AfterRevoke::SignerRemains(signer.kid));
    }
    let pending = entries
        .iter_mut()
        .filter(|e| e.revoked_unix.is_none() && !retired(e, now) && activates(e) > now)
        .max_by_key(|e| activates(e));
    match pending {
        Some(p) => {
            p.activates_unix = Some(now);
            Some(AfterRevoke::SignerRemains(p.kid))
        }
        None => Some(AfterRevoke::NeedsNewSigner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(n: u8) -> SigningKid {
        format!("{:016x}", u64::from(n)).parse().unwrap()
    }

    fn initial(created: u64) -> Vec<SigningEntry> {
        vec![SigningEntry {
            kid: kid(1),
            created_unix: created,
            activates_unix: None,
            retires_unix: None,
            revoked_unix: None,
        }]
    }

    fn state(entries: &[SigningEntry], n: u8, now: u64) -> KeyState {
        let e = entries.iter().find(|e| e.kid == kid(n)).unwrap();
        state_at(entries, e, now)
    }

    #[test]
    fn rotation_timeline() {
        // Rotate at 1000 with a 60 s propagation delay and a 500 s token horizon.
        let mut entries = initial(0);
        rotate(&mut entries, kid(2), 1000, 60, 500);

        // Published but not signing until 1060.
        assert_eq!(state(&entries, 2, 1000), KeyState::Pending);
        assert_eq!(state(&entries, 1, 1059), KeyState::Active);
        assert_eq!(signer_at(&entries, 1059).unwrap().kid, kid(1));
        assert!(trusted_at(&entries[1], 1000));

        // From 1060 the new key signs; the old one verifies its tokens until 1560.
        assert_eq!(signer_at(&entries, 1060).unwrap().kid, kid(2));
        assert_eq!(state(&entries, 2, 1060), KeyState::Active);
        assert_eq!(state(&entries, 1, 1060), KeyState::Verifying);
        assert!(trusted_at(&entries[0], 1559));
        assert!(!needs_private_key(&entries, &entries[0], 1060));
        assert!(needs_private_key(&entries, &entries[0], 1059));

        // Then it is retired: no longer trusted.
        assert_eq!(state(&entries, 1, 1560), KeyState::Retired);
        assert!(!trusted_at(&entries[0], 1560));
        assert_eq!(signer_at(&entries, 5000).unwrap().kid, kid(2));
    }

    #[test]
    fn a_second_rotation_never_extends_an_earlier_retirement() {
        let mut entries = initial(0);
        rotate(&mut entries, kid(2), 1000, 60, 500);
        rotate(&mut entries, kid(3), 1100, 60, 500);
        assert_eq!(entries[0].retires_unix, Some(1560));
        assert_eq!(entries[1].retires_unix, Some(1660));
        assert_eq!(signer_at(&entries, 1160).unwrap().kid, kid(3));
    }

    #[test]
    fn revoking_a_verifying_key_leaves_the_signer() {
        let mut entries = initial(0);
        rotate(&mut entries, kid(2), 1000, 60, 500);
        assert_eq!(
            revoke(&mut entries, kid(1), 1100),
            Some(AfterRevoke::SignerRemains(kid(2)))
        );
        assert_eq!(state(&entries, 1, 1100), KeyState::Revoked);
        assert!(!trusted_at(&entries[0], 1100));
    }

    #[test]
    fn revoking_the_signer_brings_a_pending_key_forward() {
        let mut entries = initial(0);
        rotate(&mut entries, kid(2), 1000, 60, 500);
        assert_eq!(
            revoke(&mut entries, kid(1), 1010),
            Some(AfterRevoke::SignerRemains(kid(2)))
        );
        assert_eq!(signer_at(&entries, 1010).unwrap().kid, kid(2));
        assert_eq!(state(&entries, 2, 1010), KeyState::Active);
    }

    #[test]
    fn revoking_the_only_signer_asks_for_a_new_one() {
        let mut entries = initial(0);
        assert_eq!(
            revoke(&mut entries, kid(1), 10),
            Some(AfterRevoke::NeedsNewSigner)
        );
        assert!(signer_at(&entries, 10).is_none());
        assert_eq!(revoke(&mut entries, kid(9), 10), None);
    }

    #[test]
    fn legacy_entries_sign_from_creation() {
        let entries = initial(50);
        assert_eq!(state(&entries, 1, 50), KeyState::Active);
        assert_eq!(signer_at(&entries, 49).map(|e| e.kid), None);
    }
}
