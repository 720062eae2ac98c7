//! The `Host` check every request passes (RFC 9112 §3.2), on hyper's path and the express
//! lane's alike.

/// Whether a request's `Host` lines (`values`) are what RFC 9112 §3.2 requires: exactly one in
/// HTTP/1.1 (at most one in HTTP/1.0 and HTTP/2, where `:authority` may stand in), whose value
/// is empty or made only of what a `uri-host [":" port]` may hold (RFC 3986: unreserved,
/// sub-delims, `%`, and `[`, `]`, `:` for IP literals and the port), so no path, query,
/// userinfo or whitespace. Both hyper's path and the express lane ask this, on every request:
/// a table lookup per byte (`http::uri::Authority::try_from` copies the value into a new
/// buffer first, which cost the lane's head parsing ~40 % in `benches/segment_path.rs`).
pub(crate) fn host_is_acceptable<'v>(
    http11: bool,
    mut values: impl Iterator<Item = &'v [u8]>,
) -> bool {
    match (values.next(), values.next()) {
        (None, _) => !http11,
        (Some(value), None) => value.iter().all(|&b| HOST_BYTES[usize::from(b)]),
        (Some(_), Some(_)) => false,
    }
}

/// The bytes a `Host` value may contain (see [`host_is_acceptable`]).
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b':'
                    | b'['
                    | b']'
            );
        b += 1;
    }
    table
};
