//! Property tests of token verification: headers and claims built field by field (valid,
//! missing, null, mistyped, duplicated, out of the window), signed with the real key, must
//! verify exactly when an independent reading of the same fields says they should, and to the
//! same claims; a valid token changed anywhere verifies to the same claims or is refused.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::Signer;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::claims::{Claims, Scope};
use super::testutil::{Fixture, NOW};
use super::verify::{DEFAULT_LEEWAY_SECONDS, DEFAULT_MAX_PLAY_LIFETIME_SECONDS};

/// One JSON member's value as generated.
#[derive(Debug, Clone, PartialEq)]
enum V {
    /// The member is left out.
    Absent,
    /// `null`.
    Null,
    /// A string.
    Str(String),
    /// A non-negative integer.
    Num(u64),
    /// Raw JSON that is no value of the member's type.
    Bad(&'static str),
}

impl V {
    fn json(&self) -> Option<String> {
        match self {
            V::Absent => None,
            V::Null => Some("null".to_owned()),
            V::Str(s) => Some(serde_json::to_string(s).unwrap_or_default()),
            V::Num(n) => Some(n.to_string()),
            V::Bad(raw) => Some((*raw).to_owned()),
        }
    }
}

/// Values of the wrong JSON type for a string or integer member, and integers a `u64` cannot
/// hold.
const BAD: [&str; 9] = [
    "true",
    "[]",
    "{}",
    "[\"encore\"]",
    "-1",
    "1.8e9",
    "1800000000.0",
    "18446744073709551616",
    "\"1800000000\"",
];

fn bad() -> impl Strategy<Value = V> {
    proptest::sample::select(BAD.to_vec()).prop_map(V::Bad)
}

fn string_member(
    valid: &'static [&'static str],
    others: &'static [&'static str],
) -> BoxedStrategy<V> {
    prop_oneof![
        6 => proptest::sample::select(valid.to_vec()).prop_map(|s| V::Str(s.to_owned())),
        2 => proptest::sample::select(others.to_vec()).prop_map(|s| V::Str(s.to_owned())),
        1 => Just(V::Absent),
        1 => Just(V::Null),
        1 => bad(),
    ]
    .boxed()
}

/// Times around [`NOW`] and the edges of the leeway and of the lifetime limit.
fn time_member(base: u64) -> BoxedStrategy<V> {
    const OFFSETS: [i64; 16] = [
        -1_000_000_000,
        -8 * 86_400,
        -3_600,
        -31,
        -30,
        -29,
        0,
        29,
        30,
        31,
        3_600,
        7 * 86_400,
        7 * 86_400 + 1,
        30 * 86_400,
        i64::MIN,
        i64::MAX,
    ];
    prop_oneof![
        8 => proptest::sample::select(OFFSETS.to_vec()).prop_map(move |d| {
            V::Num(match d {
                i64::MIN => 0,
                i64::MAX => u64::MAX,
                d => base.saturating_add_signed(d),
            })
        }),
        1 => Just(V::Absent),
        1 => Just(V::Null),
        1 => bad(),
    ]
    .boxed()
}

/// Subjects that every version of the rules accepts.
const SAFE_SUBS: [&str; 3] = ["fan-1", "Fan_1", "u"];

#[derive(Debug, Clone)]
struct Token {
    header: Vec<(&'static str, V)>,
    claims: Vec<(&'static str, V)>,
    albums: Albums,
    /// How the two JSON parts are base64-encoded: 0 as RFC 7515 says, 1 padded, 2 with the
    /// standard alphabet and padding.
    encoding: u8,
}

#[derive(Debug, Clone)]
enum Albums {
    Absent,
    List(Vec<String>),
    Bad(&'static str),
}

fn header(kid: String) -> impl Strategy<Value = Vec<(&'static str, V)>> {
    let kid_member = prop_oneof![
        6 => Just(V::Str(kid)),
        1 => Just(V::Str("0123456789abcdef".to_owned())),
        1 => Just(V::Str("../../etc/passwd".to_owned())),
        1 => Just(V::Absent),
        1 => Just(V::Null),
        1 => bad(),
    ];
    let forbidden = prop_oneof![
        6 => Just(None),
        1 => Just(Some(("jku", V::Str("https://evil.example/jwks.json".to_owned())))),
        1 => Just(Some(("x5u", V::Str("https://evil.example/c.pem".to_owned())))),
        1 => Just(Some(("jwk", V::Bad("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}")))),
        1 => Just(Some(("x5c", V::Bad("[\"MIIBszCCAVmgAwIBAgIUQ\"]")))),
        1 => Just(Some(("crit", V::Bad("[\"b64\"]")))),
        1 => proptest::sample::select(vec!["jku", "x5u", "jwk", "x5c", "crit"]).prop_map(|n| Some((n, V::Null))),
    ];
    let extra = prop_oneof![
        4 => Just(None),
        1 => Just(Some(("cty", V::Str("JWT".to_owned())))),
        1 => Just(Some(("b64", V::Bad("false")))),
        1 => Just(Some(("x-extra", V::Bad("{\"alg\":\"none\"}")))),
    ];
    (
        string_member(&["EdDSA"], &["none", "HS256", "eddsa", "ES256", "EdDSA "]),
        kid_member,
        string_member(&["JWT"], &["jwt", "at+jwt", ""]),
        forbidden,
        extra,
        proptest::option::weighted(0.1, 0usize..3),
    )
        .prop_map(|(alg, kid, typ, forbidden, extra, dup)| {
            let mut members = vec![("alg", alg), ("typ", typ), ("kid", kid)];
            if let Some(dup) = dup
                && members[dup].1 != V::Absent
            {
                let again = members[dup].clone();
                members.push(again);
            }
            members.extend(forbidden);
            members.extend(extra);
            members
        })
        .prop_shuffle()
}

fn claims() -> impl Strategy<Value = (Vec<(&'static str, V)>, Albums)> {
    let albums = prop_oneof![
        2 => Just(Albums::Absent),
        4 => proptest::collection::vec("[a-z0-9-]{1,12}", 0..4).prop_map(Albums::List),
        1 => proptest::sample::select(vec!["null", "\"first-light\"", "[1]", "{}"]).prop_map(Albums::Bad),
    ];
    let sub = prop_oneof![
        6 => proptest::sample::select(SAFE_SUBS.to_vec()).prop_map(|s| V::Str(s.to_owned())),
        3 => "\\PC{0,16}|[\\x00-\\x1f\\x7f]{1,3}".prop_map(V::Str),
        1 => Just(V::Str(String::new())),
        1 => Just(V::Absent),
        1 => Just(V::Null),
        1 => bad(),
    ];
    (
        string_member(&["encore"], &["evil", "Encore", "encore ", ""]),
        string_member(&["encore"], &["someone-else", "ENCORE"]),
        sub,
        time_member(NOW + 3_600),
        time_member(NOW),
        prop_oneof![4 => Just(V::Absent), 1 => time_member(NOW)],
        string_member(&["00112233445566778899aabbccddeeff", ""], &["x"]),
        string_member(
            &["play", "edge", "store", "admin", "account"],
            &["Play", "superuser", "", "play "],
        ),
        albums,
        proptest::option::weighted(0.1, 0usize..8),
        proptest::option::weighted(0.2, bad()),
    )
        .prop_map(
            |(iss, aud, sub, exp, iat, nbf, jti, scope, albums, dup, extra)| {
                let mut members = vec![
                    ("iss", iss),
                    ("aud", aud),
                    ("sub", sub),
                    ("exp", exp),
                    ("iat", iat),
                    ("nbf", nbf),
                    ("jti", jti),
                    ("scope", scope),
                ];
                if let Some(dup) = dup
                    && dup < members.len()
                    && members[dup].1 != V::Absent
                {
                    let again = members[dup].clone();
                    members.push(again);
                }
                if let Some(extra) = extra {
                    members.push(("x-extra", extra));
                }
                (members, albums)
            },
        )
        .prop_flat_map(|(members, albums)| (Just(members).prop_shuffle(), Just(albums)))
}

fn token(kid: String) -> impl Strategy<Value = Token> {
    (
        header(kid),
        claims(),
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(|(header, (claims, albums), encoding)| Token {
            header,
            claims,
            albums,
            encoding,
        })
}

fn object(members: &[(&'static str, V)], albums: Option<&Albums>) -> String {
    let mut parts: Vec<String> = members
        .iter()
        .filter_map(|(k, v)| v.json().map(|v| format!("\"{k}\":{v}")))
        .collect();
    match albums {
        Some(Albums::List(list)) => parts.push(format!(
            "\"albums\":{}",
            serde_json::to_string(list).unwrap_or_default()
        )),
        Some(Albums::Bad(raw)) => parts.push(format!("\"albums\":{raw}")),
        Some(Albums::Absent) | None => {}
    }
    format!("{{{}}}", parts.join(","))
}

impl Token {
    fn sign(&self, fx: &Fixture) -> String {
        let encode = |json: String| match self.encoding {
            0 => URL_SAFE_NO_PAD.encode(json),
            1 => URL_SAFE.encode(json),
            _ => STANDARD.encode(json),
        };
        let message = format!(
            "{}.{}",
            encode(object(&self.header, None)),
            encode(object(&self.claims, Some(&self.albums)))
        );
        let signature = fx.key.signing_key().sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// What an independent reading of the generated fields expects.
#[derive(Debug, PartialEq)]
enum Expected {
    /// Must be refused.
    Refused,
    /// Must verify to these claims.
    Accepted(Claims),
    /// Either way is right (a subject the rules may tighten, a base64 spelling RFC 7515 does
    /// not use, a header member encore does not know); if it verifies, to these claims.
    Either(Claims),
}

/// The member `name` as JSON reads it: raw text that is a string or an integer after all
/// counts as one.
fn member(members: &[(&'static str, V)], name: &str) -> V {
    match members.iter().find(|(k, _)| *k == name).map(|(_, v)| v) {
        None => V::Absent,
        Some(V::Bad(raw)) => serde_json::from_str::<String>(raw)
            .map(V::Str)
            .or_else(|_| serde_json::from_str::<u64>(raw).map(V::Num))
            .unwrap_or(V::Bad(raw)),
        Some(v) => v.clone(),
    }
}

fn duplicated(members: &[(&'static str, V)]) -> bool {
    members.iter().enumerate().any(|(i, (k, v))| {
        *v != V::Absent
            && *k != "x-extra"
            && members[..i]
                .iter()
                .any(|(k2, v2)| k2 == k && *v2 != V::Absent)
    })
}

fn expected(token: &Token, kid: &str) -> Expected {
    let h = &token.header;
    if duplicated(h)
        || member(h, "alg") != V::Str("EdDSA".to_owned())
        || member(h, "kid") != V::Str(kid.to_owned())
        || matches!(member(h, "typ"), V::Num(_) | V::Bad(_))
        || ["jku", "x5u", "jwk", "x5c", "crit"]
            .iter()
            .any(|n| !matches!(member(h, n), V::Absent | V::Null))
    {
        return Expected::Refused;
    }
    let c = &token.claims;
    if duplicated(c) {
        return Expected::Refused;
    }
    let text = |name| match member(c, name) {
        V::Str(s) => Some(s),
        _ => None,
    };
    let number = |name| match member(c, name) {
        V::Num(n) => Some(n),
        _ => None,
    };
    let (Some(iss), Some(aud), Some(sub), Some(exp), Some(iat), Some(jti), Some(scope)) = (
        text("iss"),
        text("aud"),
        text("sub"),
        number("exp"),
        number("iat"),
        text("jti"),
        text("scope").and_then(|s| s.parse::<Scope>().ok()),
    ) else {
        return Expected::Refused;
    };
    let nbf = match member(c, "nbf") {
        V::Absent | V::Null => None,
        V::Num(n) => Some(n),
        V::Str(_) | V::Bad(_) => return Expected::Refused,
    };
    let albums = match &token.albums {
        Albums::Absent => Vec::new(),
        Albums::List(list) => list.clone(),
        Albums::Bad(_) => return Expected::Refused,
    };
    let leeway = DEFAULT_LEEWAY_SECONDS;
    // encore's keys vouch for every scope but `account` (the account service's alone).
    if scope == Scope::Account
        || iss != "encore"
        || aud != "encore"
        || sub.is_empty()
        || exp.saturating_sub(iat) > DEFAULT_MAX_PLAY_LIFETIME_SECONDS
        || NOW >= exp.saturating_add(leeway)
        || nbf.map_or(iat, |n| n.max(iat)) > NOW + leeway
    {
        return Expected::Refused;
    }
    let claims = Claims {
        iss,
        sub,
        aud,
        exp,
        iat,
        nbf,
        jti,
        scope,
        albums,
    };
    // Header members encore does not know: jsonwebtoken keeps them as strings and refuses
    // other values (RFC 7797's `b64: false` among them); ignoring them would be right too,
    // as the signature covers the same text.
    if token.encoding != 0
        || !SAFE_SUBS.contains(&claims.sub.as_str())
        || member(h, "b64") != V::Absent
        || member(h, "x-extra") != V::Absent
    {
        Expected::Either(claims)
    } else {
        Expected::Accepted(claims)
    }
}

#[test]
fn tokens_built_field_by_field_verify_exactly_when_they_should() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    let kid = fx.key.kid().to_string();
    let mut runner = TestRunner::new(crate::fuzzing::config(256));
    runner
        .run(&token(kid.clone()), |token| {
            let text = token.sign(&fx);
            let got = verifier.verify(&text);
            match expected(&token, &kid) {
                Expected::Refused => prop_assert!(got.is_err(), "accepted {text}: {got:?}"),
                Expected::Accepted(claims) => match got {
                    Ok(v) => prop_assert_eq!(v.claims(), &claims),
                    Err(e) => prop_assert!(false, "refused {text}: {e:?}"),
                },
                Expected::Either(claims) => {
                    if let Ok(v) = got {
                        prop_assert_eq!(v.claims(), &claims);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

/// An edit of a token's text: a character replaced, inserted or removed, the text cut, or
/// two of its parts swapped or repeated.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Remove(usize),
    Truncate(usize),
    SwapParts(usize, usize),
    RepeatPart(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        8 => proptest::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()
        ),
        1 => proptest::sample::select(vec!['.', '=', '+', '/', ' ', '\n', '\0', 'é']),
    ];
    prop_oneof![
        6 => (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        2 => (any::<usize>(), ch).prop_map(|(i, c)| Edit::Insert(i, c)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (0usize..3, 0usize..3).prop_map(|(a, b)| Edit::SwapParts(a, b)),
        1 => (0usize..3).prop_map(Edit::RepeatPart),
    ]
}

fn apply(token: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match *e {
            Edit::Replace(i, c) if !chars.is_empty() => {
                let i = at(i, chars.len());
                chars[i] = c;
            }
            Edit::Insert(i, c) => {
                let i = at(i, chars.len() + 1);
                chars.insert(i, c);
            }
            Edit::Remove(i) if !chars.is_empty() => {
                let i = at(i, chars.len());
                chars.remove(i);
            }
            Edit::Truncate(i) => chars.truncate(at(i, chars.len() + 1)),
            Edit::SwapParts(a, b) | Edit::RepeatPart(a @ b) => {
                let text: String = chars.iter().collect();
                let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
                if a < parts.len() && b < parts.len() {
                    if matches!(e, Edit::RepeatPart(_)) {
                        let again = parts[a].clone();
                        parts.insert(a, again);
                    } else {
                        parts.swap(a, b);
                    }
                }
                chars = parts.join(".").chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn an_edited_token_verifies_to_the_same_claims_or_is_refused() {
    let fx = Fixture::new();
    let verifier = fx.verifier();
    let tokens: Vec<String> = Scope::ALL
        .iter()
        .filter(|&&scope| scope != Scope::Account)
        .map(|&scope| fx.token("fan-1", scope, &["first-light", "second-wind"]))
        .collect();
    let originals: Vec<Claims> = tokens
        .iter()
        .map(|t| verifier.verify(t).map(|v| v.claims().clone()))
        .collect::<Result<_, _>>()
        .unwrap();
    let mut runner = TestRunner::new(crate::fuzzing::config(256));
    runner
        .run(
            &(0..tokens.len(), proptest::collection::vec(edit(), 1..4)),
            |(which, edits)| {
                let edited = apply(&tokens[which], &edits);
                if let Ok(v) = verifier.verify(&edited) {
                    prop_assert_eq!(v.claims(), &originals[which], "{}", edited);
                }
                Ok(())
            },
        )
        .unwrap();
}

proptest! {
    #![proptest_config(crate::fuzzing::config(256))]

    /// Text that was never signed is refused, whatever its shape.
    #[test]
    fn unsigned_text_is_refused(
        text in "[A-Za-z0-9_=.+/-]{0,300}|\\PC{0,100}|e[yw][A-Za-z0-9_-]{0,80}\\.e[yw][A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,90}",
    ) {
        let verifier = VERIFIER.with(|v| v.clone());
        prop_assert!(verifier.verify(&text).is_err());
    }
}

thread_local! {
    static VERIFIER: std::rc::Rc<super::verify::TokenVerifier> = std::rc::Rc::new(Fixture::new().verifier());
}
