//! Entitlement as types: [`SegmentGrant`], [`LicenseGrant`] and [`ExtraGrant`] can only be
//! made by [`authorize_segment`], [`authorize_license`] and [`authorize_extra`], so a handler that serves a segment or a key
//! by taking one cannot forget the check. Rules in `docs/HTTP.md`.

use super::claims::{Claims, Scope};
use super::revocation::RevocationList;
use super::verify::VerifiedToken;
use crate::media::Rendition;

/// Who a segment is served to; decides how it may be cached downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// A CDN edge (`edge` token): shared caches may keep it
    /// (`Cache-Control: public, max-age=31536000, immutable`).
    Edge,
    /// A fan's player (`play` token): only the player's own cache
    /// (`Cache-Control: private, max-age=31536000, immutable`).
    Player,
}

/// Permission to serve one track's segments (and manifest) in one rendition. Fields are
/// private: only [`authorize_segment`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentGrant {
    album: String,
    track: u32,
    rendition: String,
    audience: Audience,
}

impl SegmentGrant {
    /// The album granted.
    pub fn album(&self) -> &str {
        &self.album
    }

    /// The track granted.
    pub fn track(&self) -> u32 {
        self.track
    }

    /// The rendition granted.
    pub fn rendition(&self) -> &str {
        &self.rendition
    }

    /// Who it is for.
    pub fn audience(&self) -> Audience {
        self.audience
    }
}

/// Permission to hand out the content keys of `renditions` for one track. Fields are private:
/// only [`authorize_license`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseGrant {
    album: String,
    track: u32,
    renditions: Vec<String>,
    expires_at: u64,
    preview_only: Option<Denied>,
}

impl LicenseGrant {
    /// The album granted.
    pub fn album(&self) -> &str {
        &self.album
    }

    /// The track granted.
    pub fn track(&self) -> u32 {
        self.track
    }

    /// The renditions whose keys may be sent, in the order they were offered.
    pub fn renditions(&self) -> &[String] {
        &self.renditions
    }

    /// When the client must stop using the keys: the token's `exp`, seconds since the Unix
    /// epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Why only the preview is granted (`None`: every available rendition is):
    /// [`Denied::NotPurchased`], or [`Denied::Refunded`] for a buyer whose purchase was
    /// refunded after the token was issued.
    pub fn preview_only(&self) -> Option<Denied> {
        self.preview_only
    }
}

/// A verified token without the entitlement asked for (HTTP 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// A `play` token asked for more than the preview of an album it has not bought.
    #[error("this album has not been purchased; only its preview is available")]
    NotPurchased,
    /// The token names the album, but its purchase was refunded after the token was issued.
    #[error("the purchase of this album was refunded; only its preview is available")]
    Refunded,
    /// The token's scope cannot do this at all.
    #[error("this token's scope does not allow this request")]
    ScopeNotAllowed,
    /// An `account` token asked for another user's library.
    #[error("an account token opens its own user's library only")]
    NotYourLibrary,
}

impl Denied {
    /// The problem `type` name for the 403 response (`docs/HTTP.md`).
    pub fn problem_type(&self) -> &'static str {
        match self {
            Denied::NotPurchased => "not-purchased",
            Denied::Refunded => "purchase-refunded",
            Denied::ScopeNotAllowed => "scope-not-allowed",
            Denied::NotYourLibrary => "not-your-library",
        }
    }
}

/// Whether the token's holder owns `album` now: the token names it and no refund since the
/// token was issued took it away. `Err` says why a named album does not count.
fn owns(claims: &Claims, album: &str, revoked: &RevocationList) -> Result<bool, Denied> {
    if !claims.owns(album) {
        return Ok(false);
    }
    if revoked.revokes(&claims.sub, album, claims.iat) {
        return Err(Denied::Refunded);
    }
    Ok(true)
}

/// May `token` fetch the segments (or manifest) of `album` track `track` in `rendition`?
///
/// - `play` with `album` in `albums`: any rendition, unless `revoked` says the purchase was
///   refunded after the token was issued ([`Denied::Refunded`] beyond the preview);
/// - `play` without it: [`Rendition::Preview`] only, [`Denied::NotPurchased`] otherwise;
/// - `edge`: any rendition (segments are sealed; edges never get keys);
/// - any other scope: [`Denied::ScopeNotAllowed`].
///
/// Whether the album, track and rendition exist is the caller's business (404).
pub fn authorize_segment(
    token: &VerifiedToken,
    album: &str,
    track: u32,
    rendition: &str,
    revoked: &RevocationList,
) -> Result<SegmentGrant, Denied> {
    let claims = token.claims();
    let audience = match claims.scope {
        Scope::Play if Rendition::names_preview(rendition) => Audience::Player,
        Scope::Play if owns(claims, album, revoked)? => Audience::Player,
        Scope::Play => return Err(Denied::NotPurchased),
        Scope::Edge => Audience::Edge,
        Scope::Store | Scope::Admin | Scope::Account => return Err(Denied::ScopeNotAllowed),
    };
    Ok(SegmentGrant {
        album: album.to_owned(),
        track,
        rendition: rendition.to_owned(),
        audience,
    })
}

/// May `token` have the content keys of `album` track `track`, and of which of the
/// `available` renditions?
///
/// `play` only: a buyer gets every available rendition; anyone else (a refunded buyer
/// included) only [`Rendition::Preview`] (and [`Denied::NotPurchased`] or [`Denied::Refunded`] if the
/// track has no preview). Every other scope, `edge` included,
/// gets [`Denied::ScopeNotAllowed`]: keys go to players, never to caches.
pub fn authorize_license(
    token: &VerifiedToken,
    album: &str,
    track: u32,
    available: &[&str],
    revoked: &RevocationList,
) -> Result<LicenseGrant, Denied> {
    let claims = token.claims();
    let (renditions, preview_only) = match claims.scope {
        Scope::Play => match owns(claims, album, revoked) {
            Ok(true) => (available.iter().map(|r| (*r).to_owned()).collect(), None),
            outcome => {
                let why = outcome.err().unwrap_or(Denied::NotPurchased);
                let preview = Rendition::Preview.as_str();
                if !available.contains(&preview) {
                    return Err(why);
                }
                (vec![preview.to_owned()], Some(why))
            }
        },
        Scope::Edge | Scope::Store | Scope::Admin | Scope::Account => {
            return Err(Denied::ScopeNotAllowed);
        }
    };
    Ok(LicenseGrant {
        album: album.to_owned(),
        track,
        renditions,
        expires_at: claims.exp,
        preview_only,
    })
}

/// Permission to open one album's buyer-only extras. Fields are private: only
/// [`authorize_extra`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraGrant {
    album: String,
}

impl ExtraGrant {
    /// The album whose extras are granted.
    pub fn album(&self) -> &str {
        &self.album
    }
}

/// May `token` open the extras of `album`? The license gate's rule for the full album, with no
/// preview to fall back on: a `play` token that owns it (bought, or received as a gift, and
/// not refunded since the token was issued); [`Denied::NotPurchased`] or
/// [`Denied::Refunded`] otherwise; every other scope [`Denied::ScopeNotAllowed`] (an extra is
/// delivered opened, so never to a cache).
pub fn authorize_extra(
    token: &VerifiedToken,
    album: &str,
    revoked: &RevocationList,
) -> Result<ExtraGrant, Denied> {
    let claims = token.claims();
    match claims.scope {
        Scope::Play if owns(claims, album, revoked)? => Ok(ExtraGrant {
            album: album.to_owned(),
        }),
        Scope::Play => Err(Denied::NotPurchased),
        Scope::Edge | Scope::Store | Scope::Admin | Scope::Account => Err(Denied::ScopeNotAllowed),
    }
}

/// The longest an edge may keep the answer to one of its checks, seconds, whatever it asks
/// for: with the origin's own propagation, the bound on how long a refund takes to reach
/// every edge (docs/EDGE.md).
pub const EDGE_CHECK_TTL_MAX: u64 = 60;

/// What an edge checks before it answers a player, read from the URL the player asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeCheck<'a> {
    /// A rendition's segments, manifest or media playlist: the segment rule for `album` and
    /// `rendition` (the track does not change the answer, so one check covers the album's
    /// tracks in that rendition).
    Rendition {
        /// Album id.
        album: &'a str,
        /// Rendition name.
        rendition: &'a str,
    },
    /// A multivariant playlist: any token that may fetch some rendition (every `play` token
    /// may fetch the preview); the origin, which answers the playlist itself, lists only
    /// what the token may play.
    Playlists,
}

/// May `token` have what `check` names through an edge? The same rules as
/// [`authorize_segment`]: an edge enforces what the origin would.
pub fn authorize_edge(
    token: &VerifiedToken,
    check: EdgeCheck<'_>,
    revoked: &RevocationList,
) -> Result<(), Denied> {
    match check {
        EdgeCheck::Rendition { album, rendition } => {
            authorize_segment(token, album, 0, rendition, revoked).map(|_| ())
        }
        EdgeCheck::Playlists => match token.claims().scope {
            Scope::Play | Scope::Edge => Ok(()),
            Scope::Store | Scope::Admin | Scope::Account => Err(Denied::ScopeNotAllowed),
        },
    }
}

/// How many seconds an edge may keep the answer to a check of a token that expires at `exp`
/// (unix seconds), asked at `now` by an edge that keeps answers `edge_ttl` seconds: at most
/// `edge_ttl` (never more than [`EDGE_CHECK_TTL_MAX`]) and ending before `exp`. nginx adds
/// the seconds to its own whole-second clock when it stores the answer (a second ahead of
/// `now` if a second ticks on the way) and keeps the answer through the last of them, so the
/// lifetime stops two seconds short of `exp`: the answer is gone when `exp` begins. 0: do not
/// keep it.
pub fn edge_check_lifetime(exp: u64, now: u64, edge_ttl: u64) -> u64 {
    let before_exp = exp.saturating_sub(now).saturating_sub(2);
    edge_ttl.min(EDGE_CHECK_TTL_MAX).min(before_exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    const LOSSLESS: &str = Rendition::Lossless.as_str();
    const HIGH: &str = Rendition::High.as_str();
    const STANDARD: &str = Rendition::Standard.as_str();
    const AAC: &str = Rendition::Aac.as_str();
    const PREVIEW: &str = Rendition::Preview.as_str();
    use crate::license::testutil::{Fixture, NOW};

    const ALBUM: &str = "first-light";

    /// Scope, albums bought, rendition asked for, expected outcome.
    type Case = (
        Scope,
        &'static [&'static str],
        &'static str,
        Result<Audience, Denied>,
    );

    #[test]
    fn segment_rules() {
        let fx = Fixture::new();
        use Denied::*;
        let cases: [Case; 16] = [
            (Scope::Play, &[ALBUM], LOSSLESS, Ok(Audience::Player)),
            // The Apple rendition is full length: buyers only, like lossless.
            (Scope::Play, &[ALBUM], AAC, Ok(Audience::Player)),
            (Scope::Play, &[], AAC, Err(NotPurchased)),
            (Scope::Play, &["other"], AAC, Err(NotPurchased)),
            (Scope::Play, &[ALBUM], PREVIEW, Ok(Audience::Player)),
            (Scope::Play, &["other", ALBUM], HIGH, Ok(Audience::Player)),
            (Scope::Play, &[], PREVIEW, Ok(Audience::Player)),
            (Scope::Play, &[], LOSSLESS, Err(NotPurchased)),
            (Scope::Play, &["other"], STANDARD, Err(NotPurchased)),
            (
                Scope::Play,
                &["first-light-deluxe"],
                LOSSLESS,
                Err(NotPurchased),
            ),
            (Scope::Edge, &[], LOSSLESS, Ok(Audience::Edge)),
            (Scope::Edge, &[], PREVIEW, Ok(Audience::Edge)),
            (Scope::Store, &[ALBUM], PREVIEW, Err(ScopeNotAllowed)),
            (Scope::Admin, &[ALBUM], LOSSLESS, Err(ScopeNotAllowed)),
            (Scope::Account, &[ALBUM], LOSSLESS, Err(ScopeNotAllowed)),
            (Scope::Account, &[], PREVIEW, Err(ScopeNotAllowed)),
        ];
        for (scope, albums, rendition, want) in cases {
            let token = fx.verified(scope, albums);
            let got = authorize_segment(&token, ALBUM, 3, rendition, &RevocationList::new(60));
            match (&got, want) {
                (Ok(grant), Ok(audience)) => {
                    assert_eq!(grant.album(), ALBUM);
                    assert_eq!(grant.track(), 3);
                    assert_eq!(grant.rendition(), rendition);
                    assert_eq!(grant.audience(), audience);
                }
                (Err(d), Err(w)) => assert_eq!(*d, w),
                _ => panic!("{scope} {albums:?} {rendition}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn license_rules() {
        let fx = Fixture::new();
        let all = Rendition::ALL.map(Rendition::as_str);
        let none = RevocationList::new(60);

        let buyer = fx.verified(Scope::Play, &[ALBUM]);
        let grant = authorize_license(&buyer, ALBUM, 2, &all, &none).unwrap();
        assert_eq!(grant.renditions(), all);
        assert_eq!((grant.album(), grant.track()), (ALBUM, 2));
        assert_eq!(grant.expires_at(), NOW + 3600);
        assert_eq!(grant.preview_only(), None);

        let fan = fx.verified(Scope::Play, &["other"]);
        let grant = authorize_license(&fan, ALBUM, 2, &all, &none).unwrap();
        assert_eq!(grant.renditions(), [PREVIEW]);
        assert_eq!(grant.preview_only(), Some(Denied::NotPurchased));
        assert_eq!(
            authorize_license(&fan, ALBUM, 2, &[LOSSLESS, HIGH], &none),
            Err(Denied::NotPurchased)
        );

        for scope in [Scope::Edge, Scope::Store, Scope::Admin, Scope::Account] {
            let token = fx.verified(scope, &[ALBUM]);
            assert_eq!(
                authorize_license(&token, ALBUM, 2, &all, &none),
                Err(Denied::ScopeNotAllowed),
                "{scope}"
            );
        }
    }

    #[test]
    fn a_refund_takes_the_album_from_earlier_tokens_only() {
        let fx = Fixture::new();
        let buyer = fx.verified(Scope::Play, &[ALBUM]);
        let iat = buyer.claims().iat;
        let revoked = RevocationList::new(7200);
        revoked.revoke(&buyer.claims().sub, ALBUM, iat + 10);
        assert_eq!(
            authorize_segment(&buyer, ALBUM, 1, LOSSLESS, &revoked),
            Err(Denied::Refunded)
        );
        assert!(authorize_segment(&buyer, ALBUM, 1, PREVIEW, &revoked).is_ok());
        let grant = authorize_license(&buyer, ALBUM, 1, &[LOSSLESS, PREVIEW], &revoked).unwrap();
        assert_eq!(grant.renditions(), [PREVIEW]);
        assert_eq!(
            grant.preview_only(),
            Some(Denied::Refunded),
            "said, not silent"
        );
        assert_eq!(
            authorize_license(&buyer, ALBUM, 1, &[LOSSLESS], &revoked),
            Err(Denied::Refunded)
        );
        // Another album of the same user, and a token minted after the refund, are untouched.
        assert!(authorize_segment(&buyer, "other", 1, PREVIEW, &revoked).is_ok());
        let later = RevocationList::new(7200);
        later.revoke(&buyer.claims().sub, ALBUM, iat - 1);
        assert!(authorize_segment(&buyer, ALBUM, 1, LOSSLESS, &later).is_ok());
    }

    #[test]
    fn extras_go_to_owners_only() {
        let fx = Fixture::new();
        let none = RevocationList::new(60);
        let buyer = fx.verified(Scope::Play, &[ALBUM]);
        assert_eq!(
            authorize_extra(&buyer, ALBUM, &none).map(|g| g.album().to_owned()),
            Ok(ALBUM.to_owned())
        );
        let fan = fx.verified(Scope::Play, &["other"]);
        assert_eq!(
            authorize_extra(&fan, ALBUM, &none),
            Err(Denied::NotPurchased)
        );
        for scope in [Scope::Edge, Scope::Store, Scope::Admin] {
            let t = fx.verified(scope, &[ALBUM]);
            assert_eq!(
                authorize_extra(&t, ALBUM, &none),
                Err(Denied::ScopeNotAllowed)
            );
        }
        let revoked = RevocationList::new(7200);
        revoked.revoke(&buyer.claims().sub, ALBUM, buyer.claims().iat + 10);
        assert_eq!(
            authorize_extra(&buyer, ALBUM, &revoked),
            Err(Denied::Refunded)
        );
    }

    #[test]
    fn problem_types() {
        assert_eq!(Denied::NotPurchased.problem_type(), "not-purchased");
        assert_eq!(Denied::ScopeNotAllowed.problem_type(), "scope-not-allowed");
        assert!(Denied::NotPurchased.to_string().contains("preview"));
    }

    #[test]
    fn edge_checks_follow_the_segment_rules() {
        let fx = Fixture::new();
        let none = RevocationList::new(60);
        let lossless = EdgeCheck::Rendition {
            album: ALBUM,
            rendition: LOSSLESS,
        };
        let preview = EdgeCheck::Rendition {
            album: ALBUM,
            rendition: PREVIEW,
        };
        let buyer = fx.verified(Scope::Play, &[ALBUM]);
        let fan = fx.verified(Scope::Play, &[]);
        let edge = fx.verified(Scope::Edge, &[]);
        let store = fx.verified(Scope::Store, &[]);
        assert_eq!(authorize_edge(&buyer, lossless, &none), Ok(()));
        assert_eq!(
            authorize_edge(&fan, lossless, &none),
            Err(Denied::NotPurchased)
        );
        assert_eq!(authorize_edge(&fan, preview, &none), Ok(()));
        assert_eq!(authorize_edge(&edge, lossless, &none), Ok(()));
        assert_eq!(
            authorize_edge(&store, preview, &none),
            Err(Denied::ScopeNotAllowed)
        );
        for token in [&buyer, &fan, &edge] {
            assert_eq!(authorize_edge(token, EdgeCheck::Playlists, &none), Ok(()));
        }
        assert_eq!(
            authorize_edge(&store, EdgeCheck::Playlists, &none),
            Err(Denied::ScopeNotAllowed)
        );
        let refunded = RevocationList::new(7200);
        refunded.revoke(&buyer.claims().sub, ALBUM, buyer.claims().iat + 1);
        assert_eq!(
            authorize_edge(&buyer, lossless, &refunded),
            Err(Denied::Refunded)
        );
        assert_eq!(authorize_edge(&buyer, preview, &refunded), Ok(()));
    }

    #[test]
    fn an_edge_keeps_a_check_at_most_its_ttl_and_never_past_exp() {
        // Far from exp: the edge's TTL, capped.
        assert_eq!(edge_check_lifetime(NOW + 3600, NOW, 10), 10);
        assert_eq!(
            edge_check_lifetime(NOW + 3600, NOW, 3600),
            EDGE_CHECK_TTL_MAX
        );
        // Near exp: gone when exp begins, whatever the TTL (nginx may store it a second
        // later than `now` and keeps it through its last second).
        assert_eq!(edge_check_lifetime(NOW + 5, NOW, 10), 3);
        assert_eq!(edge_check_lifetime(NOW + 2, NOW, 10), 0);
        assert_eq!(edge_check_lifetime(NOW + 1, NOW, 10), 0);
        assert_eq!(edge_check_lifetime(NOW, NOW, 10), 0);
        assert_eq!(edge_check_lifetime(NOW - 5, NOW, 10), 0);
        assert_eq!(edge_check_lifetime(NOW + 3600, NOW, 0), 0);
    }
}
