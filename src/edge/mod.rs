//! The nginx configuration of one CDN edge (`encore edge-config`): every player request
//! checked by the origin's `/v1/edge/authorize` (kept per token, album and rendition for at
//! most the auth TTL), sealed segments cached by URL alone and pulled with the edge's own
//! token, licenses and keys passed to the origin. The model: docs/EDGE.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::http::ops::edge::{EDGE_TTL, ORIGINAL_URI, PROBLEM};
use crate::license::EDGE_CHECK_TTL_MAX;

/// Why a configuration cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeConfigError {
    /// `--origin` is not `http://HOST[:PORT]` or `https://HOST[:PORT]`.
    #[error("--origin {0:?}: expected http://HOST[:PORT] or https://HOST[:PORT], with no path")]
    Origin(String),
    /// A value that would not stay one token of nginx's configuration language.
    #[error(
        "{what} {value:?} cannot go into an nginx configuration (no spaces, quotes, `;`, `{{`, `}}`, `#`, `$` or `\\`)"
    )]
    Unsafe {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// `--cache-size` is not a size nginx reads.
    #[error("--cache-size {0:?}: expected a number with an optional k, m or g (e.g. 10g)")]
    CacheSize(String),
    /// `--auth-ttl` is longer than an origin lets an edge keep a check.
    #[error(
        "--auth-ttl is {0}s; an origin lets an edge keep a check at most {EDGE_CHECK_TTL_MAX}s"
    )]
    AuthTtl(u64),
    /// `--trusted-ca` with a plain-HTTP origin.
    #[error("--trusted-ca is for an https:// origin")]
    CaWithoutTls,
    /// A relative path: nginx would read it against its own prefix, not where it was given.
    #[error("{what} {path:?} must be an absolute path")]
    Relative {
        /// Which setting.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
}

/// The origin an edge pulls from, as `--origin` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Over TLS.
    pub https: bool,
    /// Host name or address (an IPv6 address in brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Origin {
    /// Parses `http://HOST[:PORT]` or `https://HOST[:PORT]` (a trailing `/` allowed).
    pub fn parse(url: &str) -> Result<Origin, EdgeConfigError> {
        let bad = || EdgeConfigError::Origin(url.to_owned());
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || !is_safe(rest) {
            return Err(bad());
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match rest.rsplit_once(':') {
            // `[::1]` alone: the colons are the address's.
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (rest, default_port),
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Origin {
            https,
            host: host.to_owned(),
            port,
        })
    }

    /// `HOST:PORT`, as an nginx `server` line and a `Host` header take it.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One edge's settings (`encore edge-config`'s flags), checked by [`EdgeSettings::check`].
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// The origin (or the load balancer in front of the origins).
    pub origin: Origin,
    /// nginx `listen` value: `ADDR:PORT` or `PORT`.
    pub listen: String,
    /// Where the caches and nginx's temporary files live (absolute).
    pub cache_dir: PathBuf,
    /// Bound of the segment cache on disk, as nginx reads sizes (`10g`).
    pub cache_size: String,
    /// How long the edge keeps the origin's answer to a check, seconds.
    pub auth_ttl: u64,
    /// The `edge` token the edge pulls with (a secret: the file it lands in is too).
    pub edge_token: String,
    /// When that token expires, unix seconds (written into the file as a reminder).
    pub edge_token_exp: u64,
    /// CA bundle the origin's certificate must chain to (an `https://` origin; default: the
    /// system's).
    pub trusted_ca: Option<PathBuf>,
    /// Where the access and error logs go (absolute).
    pub log_dir: PathBuf,
}

/// The CA bundle Debian keeps (`ca-certificates`), for an `https://` origin without
/// `--trusted-ca`.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A unix time as RFC 3339 (UTC), for the comments of the file.
fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("unix time {unix}"))
}

fn is_safe(s: &str) -> bool {
    !s.is_empty()
        && !s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '"' | '\'' | ';' | '{' | '}' | '#' | '$' | '\\')
        })
}

fn safe<'a>(what: &'static str, value: &'a str) -> Result<&'a str, EdgeConfigError> {
    if is_safe(value) {
        Ok(value)
    } else {
        Err(EdgeConfigError::Unsafe {
            what,
            value: value.to_owned(),
        })
    }
}

fn safe_path<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, EdgeConfigError> {
    if !path.is_absolute() {
        return Err(EdgeConfigError::Relative {
            what,
            path: path.to_path_buf(),
        });
    }
    let text = path.to_str().ok_or_else(|| EdgeConfigError::Unsafe {
        what,
        value: path.display().to_string(),
    })?;
    safe(what, text.trim_end_matches('/'))
}

impl EdgeSettings {
    /// Refuses settings that nginx would read otherwise than meant.
    pub fn check(&self) -> Result<(), EdgeConfigError> {
        safe("--listen", &self.listen)?;
        safe_path("--cache-dir", &self.cache_dir)?;
        safe_path("--log-dir", &self.log_dir)?;
        safe("the edge token", &self.edge_token)?;
        let size = self
            .cache_size
            .strip_suffix(['k', 'K', 'm', 'M', 'g', 'G'])
            .unwrap_or(&self.cache_size);
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EdgeConfigError::CacheSize(self.cache_size.clone()));
        }
        if self.auth_ttl > EDGE_CHECK_TTL_MAX {
            return Err(EdgeConfigError::AuthTtl(self.auth_ttl));
        }
        match (&self.trusted_ca, self.origin.https) {
            (Some(_), false) => return Err(EdgeConfigError::CaWithoutTls),
            (Some(ca), true) => {
                safe_path("--trusted-ca", ca)?;
            }
            (None, _) => {}
        }
        Ok(())
    }
}

/// Path patterns of the player's requests (nginx regular expressions).
mod paths {
    /// A sealed segment (`.../{rendition}/{generation}/{file}`) or an HLS init or media
    /// segment (`.../{rendition}/hls/{generation}/init.mp4|NNNN.mp4`): the same bytes for
    /// every listener.
    pub const SEGMENT: &str =
        r"^/v1/albums/[^/]+/tracks/[^/]+/[^/]+/(?:[^/]+/[^/]+|hls/[^/]+/(?:init|[0-9]+)\.mp4)$";
    /// A rendition's manifest: the same for every token entitled to it.
    pub const MANIFEST: &str = r"^/v1/albums/[^/]+/tracks/[^/]+/[^/]+/manifest$";
    /// HLS playlists: made per token (what it may play, and the token in their URIs).
    pub const PLAYLIST: &str = r"^/v1/albums/.+\.m3u8$";
    /// Answers that carry no secret: catalog, covers, chart, JWKS.
    pub const PUBLIC: &str =
        r"^/(?:v1/albums(?:/[^/]+(?:/cover)?)?|v1/charts/albums|\.well-known/jwks\.json)$";
    /// What a player never asks an edge for.
    pub const NOT_HERE: &str = r"^/(?:metrics|readyz|v1/admin/|v1/purchases|v1/edge/)";
}

/// The complete nginx configuration (`nginx -c FILE`) for one edge. `now` (unix seconds)
/// only dates the file.
pub fn nginx_config(s: &EdgeSettings, now: u64) -> Result<String, EdgeConfigError> {
    s.check()?;
    let cache = safe_path("--cache-dir", &s.cache_dir)?;
    let logs = safe_path("--log-dir", &s.log_dir)?;
    let origin = &s.origin;
    let authority = origin.authority();
    let scheme = if origin.https { "https" } else { "http" };
    let ttl = s.auth_ttl;
    let token = &s.edge_token;
    let size = &s.cache_size;
    let expires = rfc3339(s.edge_token_exp);
    let written = rfc3339(now);
    let mut c = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(
        c,
        r#"# encore edge for {scheme}://{authority}, written by `encore edge-config` at {written}.
# It holds this edge's `edge` token, which expires at {expires}: keep the file readable by
# root only, and write it again (and `nginx -s reload`) before then (docs/EDGE.md).
worker_processes auto;

events {{
    worker_connections 4096;
}}

http {{
    # Everything nginx writes goes under the cache dir, temp files on the caches' filesystem.
    client_body_temp_path {cache}/temp-body;
    proxy_temp_path {cache}/temp-proxy;
    fastcgi_temp_path {cache}/temp-fastcgi;
    uwsgi_temp_path {cache}/temp-uwsgi;
    scgi_temp_path {cache}/temp-scgi;

    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    server_tokens off;
    default_type application/octet-stream;

    # The path only: a player's `access_token` query never reaches a log.
    log_format encore_edge '$remote_addr [$time_local] "$request_method $uri" $status '
                           '$body_bytes_sent cache=$upstream_cache_status '
                           'origin=$upstream_status $request_time';
    access_log {logs}/access.log encore_edge;
    error_log {logs}/error.log warn;

    # Sealed and HLS segments and manifests, by URL alone: one copy for every listener.
    proxy_cache_path {cache}/segments levels=1:2 keys_zone=encore_segments:64m
                     max_size={size} inactive=30d use_temp_path=off;
    # The origin's answers to checks, per token, album and rendition (at most {ttl}s each).
    proxy_cache_path {cache}/checks levels=1:2 keys_zone=encore_checks:32m
                     max_size=1g inactive=10m use_temp_path=off;
    # Answers that carry no secret (catalog, covers, chart, JWKS), for their max-age.
    proxy_cache_path {cache}/public levels=1:2 keys_zone=encore_public:8m
                     max_size=1g inactive=1h use_temp_path=off;

    upstream encore_origin {{
        server {authority};
        keepalive 64;
        keepalive_timeout 4s;
    }}

    # What one check covers: a rendition of an album (every track and segment of it), else
    # the path itself.
    map $request_uri $encore_check_target {{
        "~^/v1/albums/([^/?]+)/tracks/[^/?]+/([^/?]+)/[^?]+" "$1/$2";
        "~^/v1/albums/([^/?]+)/([^/?]+)/index\.m3u8" "$1/$2";
        "~^([^?]*)" "$1";
    }}
    # A token sent as `?access_token=` (HLS players that cannot set headers).
    map $request_uri $encore_query_token {{
        "~[?&]access_token=([^&]*)" "$1";
        default "";
    }}
    map $encore_problem $encore_problem_type {{
        "" "internal";
        default $encore_problem;
    }}

    server {{
        listen {listen};

        proxy_http_version 1.1;
        proxy_connect_timeout 5s;
        proxy_read_timeout 30s;
"#,
        listen = s.listen,
    );
    let mut upstream = String::new();
    let _ = write!(
        upstream,
        "            proxy_set_header Host {authority};\n            proxy_set_header Connection \"\";\n"
    );
    if origin.https {
        let ca = match &s.trusted_ca {
            Some(ca) => safe_path("--trusted-ca", ca)?.to_owned(),
            None => SYSTEM_CA_BUNDLE.to_owned(),
        };
        let _ = write!(
            c,
            "        # TLS to the origin: SNI, and its certificate checked against the CA.\n\
             \x20       proxy_ssl_server_name on;\n\
             \x20       proxy_ssl_name {host};\n\
             \x20       proxy_ssl_verify on;\n\
             \x20       proxy_ssl_verify_depth 4;\n\
             \x20       proxy_ssl_trusted_certificate {ca};\n\
             \x20       proxy_ssl_protocols TLSv1.2 TLSv1.3;\n\
             \x20       proxy_ssl_session_reuse on;\n",
            host = origin.host.trim_start_matches('[').trim_end_matches(']'),
        );
    }
    let check = format!(
        "            auth_request /_encore_check;\n            auth_request_set $encore_problem $upstream_http_{problem};\n",
        problem = PROBLEM.replace('-', "_"),
    );
    let _ = write!(
        c,
        r#"
        # The check before every player request: the origin's answer from the token and the
        # URL alone, kept per (token, album, rendition) for what it says (at most {ttl}s, never
        # past the token's exp).
        location = /_encore_check {{
            internal;
            proxy_pass {scheme}://encore_origin/v1/edge/authorize;
            proxy_pass_request_body off;
{upstream}            proxy_set_header Content-Length "";
            proxy_set_header {ORIGINAL_URI} $request_uri;
            proxy_set_header {EDGE_TTL} {ttl};
            proxy_cache encore_checks;
            proxy_cache_key "$http_authorization|$encore_query_token|$encore_check_target";
            # X-Accel-Expires alone says how long: its answers are `private` to other caches.
            proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
        }}

        # Refusals from the check, as the origin words them (problem+json; nginx passes on
        # the check's WWW-Authenticate).
        error_page 401 = @encore_401;
        error_page 403 = @encore_403;
        location @encore_401 {{
            default_type application/problem+json;
            add_header Cache-Control no-store always;
            return 401 '{{"type":"urn:encore:problem:$encore_problem_type","title":"Unauthorized","status":401,"detail":"refused at the edge"}}';
        }}
        location @encore_403 {{
            default_type application/problem+json;
            add_header Cache-Control no-store always;
            return 403 '{{"type":"urn:encore:problem:$encore_problem_type","title":"Forbidden","status":403,"detail":"refused at the edge"}}';
        }}

        # Sealed segments and HLS segments: checked, then from the cache by URL alone, pulled
        # with this edge's token (the origin answers it `public, immutable`, no Vary); ranges
        # and If-None-Match answered from the cached copy.
        location ~ "{segment}" {{
{check}            proxy_pass {scheme}://encore_origin$uri;
{upstream}            proxy_set_header Authorization "Bearer {token}";
            proxy_cache encore_segments;
            proxy_cache_key $uri;
            proxy_cache_valid 200 30d;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 30s;
            proxy_ignore_headers Set-Cookie;
            # Players are told what the origin tells them: their own cache only.
            proxy_hide_header Cache-Control;
            proxy_hide_header Vary;
            add_header Cache-Control "private, max-age=31536000, immutable";
            add_header Vary Authorization;
            add_header X-Cache-Status $upstream_cache_status;
        }}

        # Manifests: checked, then shared for their max-age (10 s), pulled like segments.
        location ~ "{manifest}" {{
{check}            proxy_pass {scheme}://encore_origin$uri;
{upstream}            proxy_set_header Authorization "Bearer {token}";
            proxy_cache encore_segments;
            proxy_cache_key $uri;
            proxy_cache_lock on;
            proxy_ignore_headers Set-Cookie;
            proxy_hide_header Cache-Control;
            add_header Cache-Control "private, max-age=10";
            add_header X-Cache-Status $upstream_cache_status;
        }}

        # HLS playlists: checked, then made by the origin for the player's own token (they
        # may carry it), never cached.
        location ~ "{playlist}" {{
{check}            proxy_pass {scheme}://encore_origin;
{upstream}        }}

        # The catalog, covers, chart and JWKS: no token, shared for their max-age.
        location ~ "{public}" {{
            proxy_pass {scheme}://encore_origin;
{upstream}            proxy_set_header Authorization "";
            proxy_cache encore_public;
            proxy_cache_key $uri$is_args$args;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status;
        }}

        # Operators' and the store's routes are not served to players here.
        location ~ "{not_here}" {{
            return 404;
        }}

        # Licenses, HLS keys and the rest: always the origin's, with the player's token,
        # never cached.
        location / {{
            proxy_pass {scheme}://encore_origin;
{upstream}        }}
    }}
}}
"#,
        segment = paths::SEGMENT,
        manifest = paths::MANIFEST,
        playlist = paths::PLAYLIST,
        public = paths::PUBLIC,
        not_here = paths::NOT_HERE,
    );
    Ok(c)
}

#[cfg(test)]
mod tests;
