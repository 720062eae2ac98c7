//! Property tests of what the HTTP layer parses from the wire: the `Range` header, request
//! paths, and the express lane's request heads against hyper's reading of the same bytes.
//!
//! Case counts: `crate::fuzzing::config`; the long run is in docs/SECURITY.md ("Fuzzing").

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::express::{RequestHead as Head, read_request_head as read_head};
use super::range::{RangeAnswer, answer};
use super::router::{Endpoint, route};
use crate::hls::HlsFile;

// ---------------------------------------------------------------------------------------
// Range

/// RFC 9110 §14.1.2 read independently: one `first-last`, `first-` or `-suffix` of decimal
/// digits (surrounding whitespace tolerated, as encore has always done), anything else
/// ignored (the whole body).
fn range_model(header: &str, len: u64) -> RangeAnswer {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    match (digits(first), digits(last)) {
        (false, true) if first.is_empty() => {
            let Ok(n) = last.parse::<u64>() else {
                return RangeAnswer::Whole;
            };
            if n == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: len - n.min(len),
                    end: len - 1,
                }
            }
        }
        (true, _) if digits(last) || last.is_empty() => {
            let Ok(start) = first.parse::<u64>() else {
                return RangeAnswer::Whole;
            };
            let end = match last.parse::<u64>() {
                Ok(end) if end < start => return RangeAnswer::Whole,
                Ok(end) => end,
                Err(_) if last.is_empty() => u64::MAX,
                Err(_) => return RangeAnswer::Whole,
            };
            if start >= len {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
        _ => RangeAnswer::Whole,
    }
}

/// Range values as clients and attackers write them.
fn range_header() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        4 => (0u64..200).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => Just("18446744073709551616".to_owned()),
        1 => proptest::sample::select(vec!["", "+5", "-5", "0x10", "1e3", "٣", " 7", "007", "5 "]).prop_map(str::to_owned),
    ];
    let unit = prop_oneof![
        8 => Just("bytes="),
        1 => proptest::sample::select(vec!["Bytes=", "bytes =", "items=", "bytes", " bytes=", "bytes=="]),
    ];
    let spec = (
        number.clone(),
        proptest::sample::select(vec!["-", "-", "-", "--", " - ", ""]),
        number,
    )
        .prop_map(|(a, dash, b)| format!("{a}{dash}{b}"));
    prop_oneof![
        8 => (unit, proptest::collection::vec(spec, 1..3)).prop_map(|(u, specs)| format!("{u}{}", specs.join(","))),
        1 => "\\PC{0,24}",
    ]
}

proptest! {
    #![proptest_config(crate::fuzzing::config(512))]

    /// A range answer always lies within the resource, and agrees with the RFC's grammar.
    #[test]
    fn a_range_answer_lies_within_the_resource(
        header in range_header(),
        len in prop_oneof![4 => 0u64..300, 1 => any::<u64>()],
    ) {
        let got = answer(Some(&header), len);
        if let RangeAnswer::Partial { start, end } = got {
            prop_assert!(start <= end && end < len, "{header:?} of {len}: {got:?}");
        }
        if got == RangeAnswer::Unsatisfiable {
            prop_assert!(header.contains('-'));
        }
        prop_assert_eq!(got, range_model(&header, len), "{:?} of {}", header, len);
    }
}

// ---------------------------------------------------------------------------------------
// Paths

/// The one path of an endpoint that carries parameters (as the catalog and players write it).
fn path_of(endpoint: &Endpoint) -> Option<String> {
    Some(match endpoint {
        Endpoint::GetAlbum { album } => format!("/v1/albums/{album}"),
        Endpoint::GetCover { album } => format!("/v1/albums/{album}/cover"),
        Endpoint::GetExtra { album, id } => format!("/v1/albums/{album}/extras/{id}"),
        Endpoint::GetManifest {
            album,
            track,
            rendition,
        } => format!("/v1/albums/{album}/tracks/{track}/{rendition}/manifest"),
        Endpoint::GetSegment {
            album,
            track,
            rendition,
            generation,
            file,
        } => format!("/v1/albums/{album}/tracks/{track}/{rendition}/{generation}/{file}"),
        Endpoint::HlsTrackMaster { album, track } => {
            format!("/v1/albums/{album}/tracks/{track}/master.m3u8")
        }
        Endpoint::HlsTrackMedia {
            album,
            track,
            rendition,
        } => format!("/v1/albums/{album}/tracks/{track}/{rendition}/index.m3u8"),
        Endpoint::HlsAlbumMaster { album } => format!("/v1/albums/{album}/master.m3u8"),
        Endpoint::HlsAlbumMedia { album, rendition } => {
            format!("/v1/albums/{album}/{rendition}/index.m3u8")
        }
        Endpoint::HlsFile {
            album,
            track,
            rendition,
            generation,
            file,
        } => format!(
            "/v1/albums/{album}/tracks/{track}/{rendition}/hls/{generation}/{}",
            file.name()
        ),
        Endpoint::RefundPurchase { order_id } => format!("/v1/purchases/{order_id}/refund"),
        Endpoint::GetUserAlbums { user } => format!("/v1/users/{user}/albums"),
        Endpoint::AdminRevokeSigning { kid } => format!("/v1/admin/keys/signing/{kid}/revoke"),
        Endpoint::AdminJob { id } => format!("/v1/admin/jobs/{id}"),
        _ => return None,
    })
}

/// Segments that are other spellings of a number or a name, or that try to climb out.
const ODD_SEGMENTS: [&str; 27] = [
    "01",
    "+1",
    "0",
    "-1",
    "1 ",
    "0x1",
    "00001.mp4",
    "+1.mp4",
    "4294967296",
    "18446744073709551616",
    "007",
    "+7",
    "",
    "..",
    ".",
    ".hidden",
    "%2e%2e",
    "a%2fb",
    "A",
    "a b",
    "é",
    "a\u{0}",
    "a;b",
    "ord:42@store",
    "Fan_1",
    "0001.ENC",
    "g00 ",
];

/// Paths made of route words, names, numbers in several spellings and hostile segments: a
/// real route's path with one segment replaced, or segments drawn at random.
fn request_path() -> impl Strategy<Value = String> {
    let templates = proptest::sample::select(vec![
        "/v1/albums/a/tracks/1/lossless/manifest",
        "/v1/albums/a/tracks/1/lossless/g00/0001.enc",
        "/v1/albums/a/tracks/1/master.m3u8",
        "/v1/albums/a/tracks/1/lossless/index.m3u8",
        "/v1/albums/a/master.m3u8",
        "/v1/albums/a/lossless/index.m3u8",
        "/v1/albums/a/tracks/1/high/hls/g00/0001.mp4",
        "/v1/albums/a/tracks/1/high/hls/g00/key",
        "/v1/purchases/o-1/refund",
        "/v1/users/u/albums",
        "/v1/admin/keys/signing/k/revoke",
        "/v1/admin/jobs/7",
        "/v1/albums/a",
        "/v1/albums/a/cover",
        "/web/app.js",
    ]);
    let odd = proptest::sample::select(ODD_SEGMENTS.to_vec());
    let mutated = (templates, any::<usize>(), odd, any::<bool>()).prop_map(|(t, at, odd, keep)| {
        let mut parts: Vec<&str> = t.split('/').collect();
        if !keep {
            let at = 1 + at % (parts.len() - 1);
            parts[at] = odd;
        }
        parts.join("/")
    });
    let segment = prop_oneof![
        6 => proptest::sample::select(vec![
            "v1", "albums", "tracks", "lossless", "preview", "hls", "g00", "manifest", "cover",
            "master.m3u8", "index.m3u8", "init.mp4", "0001.mp4", "0001.enc", "key", "purchases",
            "refund", "users", "admin", "keys", "signing", "revoke", "jobs", "web", "app.js",
            "first-light", "a", "1", "2",
        ]),
        3 => proptest::sample::select(ODD_SEGMENTS.to_vec()),
    ];
    let random =
        proptest::collection::vec(segment, 0..10).prop_map(|s| format!("/{}", s.join("/")));
    prop_oneof![3 => mutated, 1 => random]
}

proptest! {
    #![proptest_config(crate::fuzzing::config(512))]

    /// Every resource has one path: a path that routes to an endpoint with parameters is that
    /// endpoint's own spelling, and no parameter can climb out of its place.
    #[test]
    fn a_routed_path_is_its_endpoints_only_spelling(
        path in request_path(),
        method in proptest::sample::select(vec![Method::GET, Method::HEAD, Method::POST, Method::PUT]),
    ) {
        let endpoint = route(&method, &path);
        if let Some(canonical) = path_of(&endpoint) {
            prop_assert_eq!(&canonical, &path, "{:?}", endpoint);
            prop_assert_eq!(&route(&method, &canonical), &endpoint);
        }
        if let Endpoint::WebAsset { file } = &endpoint {
            prop_assert!(!file.contains(".."), "{}", file);
        }
    }
}

#[test]
fn each_hls_file_has_one_name() {
    let mut runner = TestRunner::new(crate::fuzzing::config(256));
    runner
        .run(&"[0-9+]{0,6}(\\.mp4)?|init.mp4|key", |name| {
            if let Some(file) = HlsFile::parse(&name) {
                prop_assert_eq!(file.name(), name);
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// The express lane against hyper

/// What a server learnt of one request: what the segment route reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    version: http::Version,
    authorization: Option<String>,
    range: Option<String>,
    if_none_match: Option<String>,
    if_range: Option<String>,
}

/// How hyper, configured as encore's server configures it, reads `bytes` sent on one
/// connection: the requests it hands to the service, and whether it answered an error itself.
async fn hyper_reads(bytes: &[u8]) -> (Vec<Seen>, bool) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let h = req.headers();
        let text =
            |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request = Seen {
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(String::new, |p| p.as_str().to_owned()),
            version: req.version(),
            authorization: text(header::AUTHORIZATION),
            range: text(header::RANGE),
            if_none_match: text(header::IF_NONE_MATCH),
            if_range: text(header::IF_RANGE),
        };
        if let Ok(mut all) = record.lock() {
            all.push(request);
        }
        async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
    });
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .half_close(true)
        .max_buf_size(16 * 1024)
        .max_headers(64)
        .serve_connection(TokioIo::new(server), service);
    let talk = async {
        client.write_all(bytes).await.unwrap_or_default();
        client.shutdown().await.unwrap_or_default();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap_or_default();
        answer
    };
    let (_, answer) = tokio::join!(conn, talk);
    let refused = answer
        .windows(10)
        .any(|w| w.starts_with(b"HTTP/1.1 4") || w.starts_with(b"HTTP/1.1 5"));
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    (seen, refused)
}

/// The requests the express lane answers at the front of `bytes` (as if every path were a
/// served segment), and where it hands the rest to hyper.
fn express_reads(bytes: &[u8]) -> (Vec<Seen>, usize) {
    let mut seen = Vec::new();
    let mut at = 0;
    while let Head::Express(req) = read_head(&bytes[at..], 64) {
        // Served segment URLs are a subset of the segment route's paths; any other path goes
        // to hyper.
        if !matches!(route(&Method::GET, req.path), Endpoint::GetSegment { .. }) {
            break;
        }
        let text = |v: Option<&str>| v.map(str::to_owned);
        seen.push(Seen {
            method: if req.head_only { "HEAD" } else { "GET" }.to_owned(),
            target: req.path.to_owned(),
            version: http::Version::HTTP_11,
            authorization: text(req.authorization),
            range: text(req.conditions.range),
            if_none_match: text(req.conditions.if_none_match),
            if_range: text(req.conditions.if_range),
        });
        at += req.len;
    }
    (seen, at)
}

/// Request heads: request lines and header lines from pieces a client or an attacker would
/// use, with either line ending, then a few bytes changed.
fn request_heads() -> impl Strategy<Value = Vec<u8>> {
    let eol = prop_oneof![6 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r")];
    let method = prop_oneof![
        8 => proptest::sample::select(vec!["GET", "HEAD"]),
        1 => proptest::sample::select(vec!["POST", "get", "GET\t", "OPTIONS", "PRI", "G ET", ""]),
    ];
    let weird = proptest::sample::select(vec![
        "?q=1", "#f", "%2f", "..", "\"", "{", "|", "\\", "^", "`", "\u{e9}", "\u{7f}", "\t", " ",
        "*", "@", ":", ";", "[", "]", "01", "+1", "",
    ]);
    let segment_path = (
        any::<usize>(),
        proptest::option::weighted(0.5, weird.clone()),
    )
        .prop_map(|(at, odd)| {
            let mut path = "/v1/albums/a/tracks/1/lossless/g00/0001.enc".to_owned();
            if let Some(odd) = odd {
                let mut at = at % (path.len() + 1);
                while !path.is_char_boundary(at) {
                    at -= 1;
                }
                path.insert_str(at, odd);
            }
            path
        });
    let target = prop_oneof![
        6 => segment_path,
        2 => proptest::collection::vec(
            prop_oneof![6 => "[a-z0-9._-]{1,8}", 1 => weird.prop_map(str::to_owned)],
            0..5,
        ).prop_map(|s| format!("/{}", s.join("/"))),
        1 => proptest::sample::select(vec!["*", "http://h/s", "//s", "s", "", "/s?access_token=t"]).prop_map(str::to_owned),
    ];
    let version = prop_oneof![
        8 => Just("HTTP/1.1"),
        1 => proptest::sample::select(vec!["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/1.1 ", "HTTP/1"]),
    ];
    let sp = prop_oneof![10 => Just(" "), 1 => Just("  "), 1 => Just("\t")];
    let name = prop_oneof![
        8 => proptest::sample::select(vec![
            "Host", "Authorization", "Range", "If-None-Match", "If-Range", "Connection",
            "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "X-Other",
        ]).prop_map(str::to_owned),
        1 => proptest::sample::select(vec!["authorization", "RANGE", "Host ", " Host", "Bad Name", "", "X\u{e9}"]).prop_map(str::to_owned),
    ];
    let value = prop_oneof![
        8 => proptest::sample::select(vec![
            "x", "Bearer t.t.t", "bytes=0-9", "\"e\"", "W/\"e\"", "keep-alive", "Keep-Alive",
            "close", "0", "chunked", "100-continue", "h2c", "",
        ]).prop_map(str::to_owned),
        2 => proptest::sample::select(vec![
            "x ", " x", "\tx\t", "Bearer \u{e9}", "a\u{1}b", "a\u{7f}", "x\r\n y", "x\n\tz",
            "keep-alive, close", "1, 1", "-1", "x\0",
        ]).prop_map(str::to_owned),
    ];
    let colon = prop_oneof![8 => Just(": "), 1 => Just(":"), 1 => Just(" : "), 1 => Just(":\t")];
    let line = (name, colon, value, eol.clone()).prop_map(|(n, c, v, e)| format!("{n}{c}{v}{e}"));
    let head = (
        method,
        sp.clone(),
        target,
        sp,
        version,
        eol.clone(),
        proptest::collection::vec(line, 0..6),
        eol,
    )
        .prop_map(|(m, s1, t, s2, v, e1, lines, e2)| {
            format!("{m}{s1}{t}{s2}{v}{e1}{}{e2}", lines.concat()).into_bytes()
        });
    let edit = (any::<usize>(), any::<u8>(), 0u8..3);
    (
        proptest::collection::vec(head, 1..4),
        proptest::collection::vec(edit, 0..3),
    )
        .prop_map(|(heads, edits)| {
            let mut bytes = heads.concat();
            for (at, byte, how) in edits {
                let at = at % (bytes.len() + 1);
                match how {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            bytes
        })
}

#[test]
fn the_express_lane_reads_what_hyper_reads() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(crate::fuzzing::config(256));
    runner
        .run(&request_heads(), |bytes| {
            let (by_express, handed_at) = express_reads(&bytes);
            let (by_hyper, hyper_refused) = runtime.block_on(hyper_reads(&bytes));
            // In production the lane answers its requests and hyper reads the rest.
            let (rest, rest_refused) = runtime.block_on(hyper_reads(&bytes[handed_at..]));
            let shown = String::from_utf8_lossy(&bytes);
            let mut by_both = by_express.clone();
            by_both.extend(rest);
            prop_assert_eq!(&by_both, &by_hyper, "{:?}", shown);
            prop_assert_eq!(rest_refused, hyper_refused, "{:?}", shown);
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Bearer tokens

proptest! {
    #![proptest_config(crate::fuzzing::config(256))]

    /// The token is found in any `Authorization` value or query without a panic; it is a piece
    /// of the header when there is a header, else the query's decoded `access_token`.
    #[test]
    fn a_bearer_token_is_a_piece_of_what_arrived(
        authorization in proptest::option::of(prop_oneof![
            "(Bearer|bearer|BEARER|Basic|Bearer\t|Bearerx)?[ \t]{0,2}[A-Za-z0-9._~+/=-]{0,20}[ \t]{0,2}",
            "\\PC{0,12}",
        ]),
        query in proptest::option::of("((access_token|x|access_token%3D)=[A-Za-z0-9._%=-]{0,12}&?){0,3}"),
    ) {
        let found = super::auth::bearer_in(authorization.as_deref(), query.as_deref());
        if let Some(token) = found.as_deref() {
            match &authorization {
                Some(a) => prop_assert!(a.contains(token) && !token.is_empty()),
                // A query token is form-decoded (RFC 6750 §2.3): the first `access_token`
                // pair's value as the form reads it.
                None => {
                    let q = query.as_deref().unwrap_or_default();
                    let first = form_urlencoded::parse(q.as_bytes())
                        .find(|(name, _)| name == "access_token")
                        .map(|(_, v)| v.into_owned());
                    prop_assert_eq!(first.as_deref(), Some(token));
                }
            }
        }
    }
}
