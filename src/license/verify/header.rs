//! The header policy: no key source but the keys directory, no JWS extension, a `kid` naming
//! a trusted key that has not retired, and that key's one algorithm, EdDSA. All of it is
//! decided before any signature is checked.

use jsonwebtoken::{Algorithm, DecodingKey};

use super::TokenVerifier;
use super::error::{TokenError, header_error};
use crate::seal::SigningKid;

impl TokenVerifier {
    /// The key `token` must be verified with, once its header passes the policy.
    pub(super) fn header_key(&self, token: &str) -> Result<&DecodingKey, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(header_error)?;
        // Keys come from the keys directory only; a token must not point at its own key.
        let forbidden = [
            ("jku", header.jku.is_some()),
            ("x5u", header.x5u.is_some()),
            ("jwk", header.jwk.is_some()),
            ("x5c", header.x5c.is_some()),
            // We implement no JWS extension, so any critical one must be refused (RFC 7515
            // §4.1.11).
            ("crit", header.crit.is_some()),
        ];
        if let Some((name, _)) = forbidden.iter().find(|(_, present)| *present) {
            return Err(TokenError::ForbiddenHeader(name));
        }
        let kid = header.kid.as_deref().ok_or(TokenError::MissingKid)?;
        let kid: SigningKid = kid.parse().map_err(|_| TokenError::UnknownKid)?;
        let (key, until) = self.keys.get(&kid).ok_or(TokenError::UnknownKid)?;
        // A retired key is treated as unknown: it has left the JWKS too.
        if until.is_some_and(|t| self.clock.now_unix() >= t) {
            return Err(TokenError::UnknownKid);
        }
        // The key's allow-list: EdDSA only. Refusing here (not only in `Validation`) keeps
        // `none` and HS256-with-the-public-key-as-secret out before any crypto runs.
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::DisallowedAlgorithm);
        }
        Ok(key)
    }
}
