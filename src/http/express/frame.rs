//! The express lane's framing: reading a request head the lane may answer, and encoding a
//! response head exactly as hyper encodes it (status line, headers, `content-length`,
//! `connection` and `date` by hyper's rules). No I/O: the serving loop is in the parent.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::BodyExt;

use super::super::host_is_acceptable;
use super::super::ops::segment::{Answer, Conditions};
use super::super::respond::{Body, CORS};
use crate::store::backed::FileBacked;

/// Most header slots the lane parses into (a stack array); a head with more goes to hyper,
/// which applies the configured limit.
const HEADER_SLOTS: usize = 64;

/// Why the lane handed a connection to hyper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandOff {
    /// Not a head `httparse` accepts (an HTTP/2 preface, a malformed or oversized head).
    Unparsed,
    /// Not HTTP/1.1.
    Version,
    /// Not `GET` or `HEAD`.
    Method,
    /// A query, a target that is not a path, or a path that is not a served segment.
    Target,
    /// A request body or its framing (`Content-Length`, `Transfer-Encoding`).
    Body,
    /// `Connection` other than `keep-alive`, `Expect` or `Upgrade`.
    Connection,
    /// No `Host`, more than one, or one with an invalid value: hyper's path answers the 400.
    Host,
}

impl HandOff {
    /// The metric label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HandOff::Unparsed => "unparsed",
            HandOff::Version => "version",
            HandOff::Method => "method",
            HandOff::Target => "target",
            HandOff::Body => "body",
            HandOff::Connection => "connection",
            HandOff::Host => "host",
        }
    }
}

/// What the head at the front of a buffer asks for.
#[derive(Debug)]
pub(crate) enum Head<'b> {
    /// The head has not fully arrived.
    Partial,
    /// A request the lane may answer, if its path is a served segment.
    Express(ExpressRequest<'b>),
    /// A request for hyper.
    HandOff(HandOff),
}

/// A `GET` or `HEAD` the lane may answer, borrowed from the read buffer.
#[derive(Debug)]
pub(crate) struct ExpressRequest<'b> {
    /// `HEAD`: headers only.
    pub(crate) head_only: bool,
    /// The request target, a path without a query.
    pub(crate) path: &'b str,
    /// The first `Authorization` value, if visible ASCII (as hyper's path reads it).
    pub(crate) authorization: Option<&'b str>,
    /// `If-None-Match`, `Range`, `If-Range`.
    pub(crate) conditions: Conditions<'b>,
    /// Length of the head in the buffer.
    pub(crate) len: usize,
}

/// Reads the head at the front of `buf`, with at most `max_headers` headers.
pub(crate) fn read_head(buf: &[u8], max_headers: usize) -> Head<'_> {
    let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut slots[..max_headers.min(HEADER_SLOTS)]);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::HandOff(HandOff::Unparsed),
    };
    if req.version != Some(1) {
        return Head::HandOff(HandOff::Version);
    }
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Head::HandOff(HandOff::Method),
    };
    let path = match req.path {
        Some(p) if p.starts_with('/') && !p.contains('?') => p,
        _ => return Head::HandOff(HandOff::Target),
    };
    // The first of each header, as `HeaderMap::get` returns it.
    let (mut authorization, mut if_none_match, mut range, mut if_range) = (None, None, None, None);
    let (mut host, mut hosts) = (None, 0usize);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-length") || is("transfer-encoding") {
            return Head::HandOff(HandOff::Body);
        } else if is("expect") || is("upgrade") {
            return Head::HandOff(HandOff::Connection);
        } else if is("connection") {
            if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                return Head::HandOff(HandOff::Connection);
            }
        } else if is("host") {
            host = Some(h.value);
            hosts += 1;
        } else if is("authorization") {
            authorization.get_or_insert(visible_ascii(h.value));
        } else if is("if-none-match") {
            if_none_match.get_or_insert(visible_ascii(h.value));
        } else if is("range") {
            range.get_or_insert(visible_ascii(h.value));
        } else if is("if-range") {
            if_range.get_or_insert(visible_ascii(h.value));
        }
    }
    if hosts > 1 || !host_is_acceptable(true, host.into_iter()) {
        return Head::HandOff(HandOff::Host);
    }
    Head::Express(ExpressRequest {
        head_only,
        path,
        authorization: authorization.flatten(),
        conditions: Conditions {
            if_none_match: if_none_match.flatten(),
            range: range.flatten(),
            if_range: if_range.flatten(),
        },
        len,
    })
}

/// The value as text if it is what `HeaderValue::to_str` accepts (visible ASCII and tabs).
/// `httparse` has already refused control bytes in values, so what is left to exclude is
/// obs-text (bytes >= 0x80), and `is_ascii` checks a word at a time: a per-byte test is
/// measurable on every request carrying a 300-byte token.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    if value.is_ascii() {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Encodes `resp`'s head into `out` as hyper would, and returns the body to send after it
/// (empty for HEAD, 204 and 304).
pub(crate) async fn encode(
    resp: Response<Body>,
    head_only: bool,
    closing: bool,
    out: &mut Vec<u8>,
) -> Bytes {
    let (parts, mut body) = resp.into_parts();
    // A `Full` body is one data frame, ready at once.
    let body = match body.frame().await {
        Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    };
    let framing = Framing {
        status: parts.status,
        body_len: body.len(),
        head_only,
        closing,
        has_length: parts.headers.contains_key(header::CONTENT_LENGTH),
        has_date: parts.headers.contains_key(header::DATE),
    };
    let send_body = framing.encode(out, |out| {
        for (name, value) in &parts.headers {
            header_line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    });
    if send_body { body } else { Bytes::new() }
}

/// Encodes a segment answer's head into `out` exactly as [`encode`] would encode
/// `answer.into_response()` after `conclude` (its headers, then CORS), without building a
/// header map; returns the body to send after it, with its store file.
pub(crate) fn encode_answer(
    answer: Answer,
    head_only: bool,
    closing: bool,
    out: &mut Vec<u8>,
) -> FileBacked {
    let framing = Framing {
        status: answer.status,
        body_len: answer.body.bytes().len(),
        head_only,
        closing,
        has_length: false,
        has_date: false,
    };
    let send_body = framing.encode(out, |out| {
        answer.each_header(|name, value| {
            header_line(out, name.as_str().as_bytes(), value.as_bytes())
        });
        for (name, value) in &CORS {
            header_line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    });
    if send_body {
        answer.body
    } else {
        FileBacked::default()
    }
}

/// What decides the framing of a response head, as hyper decides it.
struct Framing {
    status: StatusCode,
    body_len: usize,
    head_only: bool,
    closing: bool,
    /// The response sets its own `Content-Length`.
    has_length: bool,
    /// The response sets its own `Date`.
    has_date: bool,
}

impl Framing {
    /// Writes the status line, the response's own headers (`headers`), then `content-length`,
    /// `connection` and `date` by hyper's rules; true when the body is to be sent.
    fn encode(&self, out: &mut Vec<u8>, headers: impl FnOnce(&mut Vec<u8>)) -> bool {
        let status = self.status;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            status
                .canonical_reason()
                .unwrap_or("<unknown status code>")
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        headers(out);
        // hyper's rules: no length on 1xx, 204 and 304; none for an empty HEAD answer.
        let framed = !(status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED);
        if framed && !self.has_length && !(self.head_only && self.body_len == 0) {
            header_line(
                out,
                b"content-length",
                itoa::Buffer::new().format(self.body_len).as_bytes(),
            );
        }
        if self.closing {
            header_line(out, b"connection", b"close");
        }
        if !self.has_date {
            with_date(|date| header_line(out, b"date", date));
        }
        out.extend_from_slice(b"\r\n");
        framed && !self.head_only
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Calls `f` with the current `Date` value, formatted once per second per thread (as hyper
/// caches its own).
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        f(cached.1.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn express(buf: &[u8]) -> ExpressRequest<'_> {
        match read_head(buf, 64) {
            Head::Express(r) => r,
            other => panic!("not express: {other:?}"),
        }
    }

    fn handed(buf: &[u8]) -> HandOff {
        match read_head(buf, 64) {
            Head::HandOff(why) => why,
            other => panic!("not handed off: {other:?}"),
        }
    }

    #[test]
    fn a_plain_segment_get_is_express() {
        let head =
            b"GET /v1/a/b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nRange: bytes=0-9\r\n\
            If-None-Match: \"e\"\r\nIf-Range: \"e\"\r\nConnection: Keep-Alive\r\n\r\nGET /next";
        let r = express(head);
        assert!(!r.head_only);
        assert_eq!(r.path, "/v1/a/b");
        assert_eq!(r.authorization, Some("Bearer t"));
        assert_eq!(r.conditions.range, Some("bytes=0-9"));
        assert_eq!(r.conditions.if_none_match, Some("\"e\""));
        assert_eq!(r.conditions.if_range, Some("\"e\""));
        assert_eq!(&head[r.len..], b"GET /next");
        assert!(express(b"HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n").head_only);
    }

    #[test]
    fn the_first_of_a_repeated_header_counts_and_non_ascii_is_absent() {
        let r = express(
            b"GET /s HTTP/1.1\r\nHost: x\r\nauthorization: Bearer a\r\nAUTHORIZATION: Bearer b\r\n\r\n",
        );
        assert_eq!(r.authorization, Some("Bearer a"));
        let r = express(
            b"GET /s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\nAuthorization: Bearer b\r\n\r\n",
        );
        assert_eq!(r.authorization, None, "as HeaderMap::get + to_str sees it");
    }

    #[test]
    fn anything_else_goes_to_hyper() {
        assert!(matches!(
            read_head(b"GET /s HTTP/1.1\r\nHost: x\r\n", 64),
            Head::Partial
        ));
        assert!(matches!(read_head(b"", 64), Head::Partial));
        assert_eq!(
            handed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            HandOff::Unparsed
        );
        assert_eq!(handed(b"GET /s HTTP/1.0\r\n\r\n"), HandOff::Version);
        assert_eq!(handed(b"POST /s HTTP/1.1\r\n\r\n"), HandOff::Method);
        assert_eq!(handed(b"get /s HTTP/1.1\r\n\r\n"), HandOff::Method);
        assert_eq!(
            handed(b"GET /s?access_token=t HTTP/1.1\r\n\r\n"),
            HandOff::Target
        );
        assert_eq!(handed(b"GET http://h/s HTTP/1.1\r\n\r\n"), HandOff::Target);
        assert_eq!(handed(b"GET * HTTP/1.1\r\n\r\n"), HandOff::Target);
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            HandOff::Body
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"),
            HandOff::Body
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nConnection: close\r\n\r\n"),
            HandOff::Connection
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n"),
            HandOff::Connection
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"),
            HandOff::Connection
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"),
            HandOff::Connection
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            HandOff::Unparsed
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
            HandOff::Unparsed,
            "obs-fold"
        );
    }

    #[test]
    fn a_missing_repeated_or_bad_host_goes_to_hyper() {
        assert_eq!(handed(b"GET /s HTTP/1.1\r\n\r\n"), HandOff::Host);
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            HandOff::Host
        );
        assert_eq!(
            handed(b"GET /s HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            HandOff::Host
        );
        express(b"GET /s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
        express(b"GET /s HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
        express(b"GET /s HTTP/1.1\r\nHost:\r\n\r\n");
        for bad in ["a b", "user@h", "h?q", "h#f", "h\\x"] {
            let head = format!("GET /s HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(handed(head.as_bytes()), HandOff::Host, "{bad}");
        }
    }

    #[test]
    fn more_headers_than_allowed_go_to_hyper() {
        let mut head = b"GET /s HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..4 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(matches!(read_head(&head, 5), Head::Express(_)));
        assert!(matches!(
            read_head(&head, 4),
            Head::HandOff(HandOff::Unparsed)
        ));
    }

    #[tokio::test]
    async fn heads_are_encoded_as_hyper_encodes_them() {
        let mut out = Vec::new();
        let mut resp = Response::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
        resp.headers_mut()
            .insert(header::ETAG, http::HeaderValue::from_static("\"e\""));
        let body = encode(resp, false, false, &mut out).await;
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 3\r\ndate: "));
        assert!(text.ends_with(" GMT\r\n\r\n"));
        assert_eq!(&body[..], b"abc");

        let resp = Response::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
        let body = encode(resp, true, true, &mut out).await;
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("content-length: 3\r\nconnection: close\r\n"),
            "{text}"
        );
        assert!(body.is_empty(), "HEAD: no body");

        let mut resp = Response::new(http_body_util::Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        encode(resp, false, false, &mut out).await;
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 304 Not Modified\r\n"));
        assert!(!text.contains("content-length"), "{text}");
    }

    proptest::proptest! {
        /// Whatever arrives, reading a head never panics, and an express request's head is a
        /// prefix of what arrived.
        #[test]
        fn any_bytes_are_read_safely(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Head::Express(r) = read_head(&bytes, 64) {
                proptest::prop_assert!(r.len <= bytes.len());
            }
        }

        /// Heads made of request-like pieces: express only for what the lane answers.
        #[test]
        fn express_only_for_simple_segment_requests(
            method in proptest::sample::select(vec!["GET", "HEAD", "POST", "OPTIONS"]),
            version in proptest::sample::select(vec!["HTTP/1.1", "HTTP/1.0"]),
            header in proptest::sample::select(vec![
                "Host: y", "Content-Length: 0", "Transfer-Encoding: chunked", "Connection: close",
                "Connection: keep-alive", "Upgrade: h2c", "Expect: 100-continue", "Range: bytes=0-1",
            ]),
            query in proptest::bool::ANY,
        ) {
            let target = if query { "/s?x=1" } else { "/s" };
            // Always one `Host`; "Host: y" makes it two.
            let head = format!("{method} {target} {version}\r\nHost: x\r\n{header}\r\n\r\n");
            let simple = matches!(method, "GET" | "HEAD")
                && version == "HTTP/1.1"
                && !query
                && matches!(header, "Connection: keep-alive" | "Range: bytes=0-1");
            proptest::prop_assert_eq!(matches!(read_head(head.as_bytes(), 64), Head::Express(_)), simple);
        }
    }
}
