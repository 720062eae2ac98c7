//! Parses a request line into an [`Endpoint`]; one variant per operation.

use http::Method;

use crate::hls::HlsFile;
use crate::ledger::purchase::check_identifier;

pub use crate::app::metrics::SEGMENT_ROUTE;

/// The forms the lyrics of a track are served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LyricsForm {
    /// JSON lines (`.../lyrics`).
    JsonLines,
    /// The HLS subtitles media playlist (`.../lyrics/index.m3u8`).
    Playlist,
    /// WebVTT (`.../lyrics/lyrics.vtt`).
    WebVtt,
}

/// Every operation the server knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /healthz`.
    Health,
    /// `GET /readyz`.
    Ready,
    /// `GET /metrics`.
    Metrics,
    /// `GET /.well-known/jwks.json`.
    Jwks,
    /// `GET /v1/albums`.
    ListAlbums,
    /// `GET /v1/albums/{album}`.
    GetAlbum {
        /// Album id.
        album: String,
    },
    /// `GET /v1/albums/{album}/cover`.
    GetCover {
        /// Album id.
        album: String,
    },
    /// `GET /v1/albums/{album}/extras/{id}`: a buyer-only extra, opened (`ops::extras`).
    GetExtra {
        /// Album id.
        album: String,
        /// Extra id.
        id: String,
    },
    /// `POST /v1/licenses`.
    CreateLicense,
    /// `GET /v1/albums/{album}/tracks/{n}/{rendition}/manifest`.
    GetManifest {
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
        /// Rendition name.
        rendition: String,
    },
    /// `GET|HEAD /v1/albums/{album}/tracks/{n}/{rendition}/{generation}/{file}`.
    GetSegment {
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
        /// Rendition name.
        rendition: String,
        /// Packaging generation.
        generation: String,
        /// Segment file name.
        file: String,
    },
    /// `GET /v1/albums/{album}/tracks/{n}/master.m3u8`: the track's HLS multivariant playlist.
    HlsTrackMaster {
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
    },
    /// `GET /v1/albums/{album}/tracks/{n}/{rendition}/index.m3u8`: an HLS media playlist.
    HlsTrackMedia {
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
        /// Rendition name.
        rendition: String,
    },
    /// `GET /v1/albums/{album}/master.m3u8`: the album's HLS multivariant playlist.
    HlsAlbumMaster {
        /// Album id.
        album: String,
    },
    /// `GET /v1/albums/{album}/{rendition}/index.m3u8`: every track, one after another.
    HlsAlbumMedia {
        /// Album id.
        album: String,
        /// Rendition name.
        rendition: String,
    },
    /// `GET|HEAD /v1/albums/{album}/tracks/{n}/{rendition}/hls/{generation}/{file}`: an HLS
    /// init segment, media segment or key.
    HlsFile {
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
        /// Rendition name.
        rendition: String,
        /// Packaging generation.
        generation: String,
        /// Which file.
        file: HlsFile,
    },
    /// `GET /v1/albums/{album}/tracks/{n}/lyrics[/index.m3u8|/lyrics.vtt]`: a track's lyrics
    /// as JSON lines, or as the HLS subtitles rendition's playlist or WebVTT file.
    Lyrics {
        /// Album id.
        album: String,
        /// Track number.
        track: u32,
        /// Which form.
        form: LyricsForm,
    },
    /// `GET /v1/edge/authorize`: a CDN edge's check of a player's request (the token and
    /// the original URL in its headers; `ops::edge`).
    EdgeAuthorize,
    /// `POST /v1/purchases`.
    CreatePurchase,
    /// `POST /v1/purchases/{order_id}/refund`.
    RefundPurchase {
        /// The store's order id.
        order_id: String,
    },
    /// `POST /v1/play-tokens`.
    CreatePlayToken,
    /// `GET /v1/charts/albums`.
    GetChart,
    /// `POST /v1/gifts/{order_id}/decline`: the recipient declines a gift (`ops::fans`).
    DeclineGift {
        /// The gift's order id.
        order_id: String,
    },
    /// `GET /v1/users/{user}/gifts`: gifts the user received and sent.
    GetUserGifts {
        /// The user.
        user: String,
    },
    /// `POST /v1/clubs`: create a fan club and join it.
    CreateClub,
    /// `GET /v1/clubs?artist_id=…`: an artist's clubs.
    ListClubs,
    /// `POST /v1/clubs/{club}/join`.
    JoinClub {
        /// The club id.
        club: String,
    },
    /// `POST /v1/clubs/{club}/leave`.
    LeaveClub {
        /// The club id.
        club: String,
    },
    /// `GET /v1/charts/clubs?artist_id=…&window=…`.
    GetClubChart,
    /// `POST /v1/devices`: register a device's public key (`ops::offline`).
    RegisterDevice,
    /// `GET /v1/devices`: the caller's devices.
    ListDevices,
    /// `DELETE /v1/devices/{device}`.
    RemoveDevice {
        /// The device id.
        device: String,
    },
    /// `POST /v1/offline-licenses`: issue or renew a device's offline license.
    CreateOfflineLicense,
    /// `GET /v1/users/{user}/albums`.
    GetUserAlbums {
        /// The user.
        user: String,
    },
    /// `GET /` and `GET /web/{file}`: a file of the web player.
    WebAsset {
        /// File name under `web/` (`index.html` for `/`).
        file: String,
    },
    /// `GET /v1/dev`: whether the demo store is on (dev only).
    DevStatus,
    /// `POST /v1/dev/session`: a demo user's account token (dev only).
    DevSession,
    /// `POST /v1/dev/purchases`: the demo store buys an album (dev only).
    DevPurchase,
    /// `GET /v1/admin/keys`.
    AdminListKeys,
    /// `POST /v1/admin/keys/signing/rotate`.
    AdminRotateSigning,
    /// `POST /v1/admin/keys/signing/{kid}/revoke`.
    AdminRevokeSigning {
        /// The signing key id.
        kid: String,
    },
    /// `POST /v1/admin/keys/kek/rotate`.
    AdminRotateKek,
    /// `POST /v1/admin/keys/content/rotate`.
    AdminRotateContent,
    /// `POST /v1/admin/keys/maintain`.
    AdminMaintain,
    /// `GET /v1/admin/jobs/{id}`.
    AdminJob {
        /// The job number.
        id: u64,
    },
    /// `OPTIONS` anything: a CORS preflight.
    Preflight,
    /// A known path with a method it does not take.
    WrongMethod {
        /// The methods it does take (the `Allow` header of the 405).
        allow: &'static str,
    },
    /// Nothing here.
    NotFound,
}

/// What a route needs of its caller before its operation runs; [`crate::http::handle`]
/// checks it in one place, and the operation then checks the token's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// Anyone: no token is read.
    Public,
    /// A verified bearer token (`Authorization: Bearer`, or the `access_token` query
    /// parameter).
    Bearer,
}

impl Endpoint {
    /// What the route needs of its caller (see [`Authorization`]). The demo store's routes
    /// are public: it exists only while the development account key does (`ops::web`). A
    /// segment URL the router sees is one the catalog does not serve, and still gated, so an
    /// unauthenticated caller learns nothing of what exists.
    pub fn authorization(&self) -> Authorization {
        match self {
            Endpoint::Health
            | Endpoint::Ready
            | Endpoint::Metrics
            | Endpoint::Jwks
            | Endpoint::ListAlbums
            | Endpoint::GetAlbum { .. }
            | Endpoint::GetCover { .. }
            | Endpoint::GetChart
            | Endpoint::ListClubs
            | Endpoint::GetClubChart
            // It reads the player's token itself: a refusal is an answer to the edge, with
            // no body, not an error.
            | Endpoint::EdgeAuthorize
            | Endpoint::WebAsset { .. }
            | Endpoint::DevStatus
            | Endpoint::DevSession
            | Endpoint::DevPurchase
            | Endpoint::Preflight
            | Endpoint::WrongMethod { .. }
            | Endpoint::NotFound => Authorization::Public,
            Endpoint::CreateLicense
            | Endpoint::GetExtra { .. }
            | Endpoint::GetManifest { .. }
            | Endpoint::GetSegment { .. }
            | Endpoint::HlsTrackMaster { .. }
            | Endpoint::HlsTrackMedia { .. }
            | Endpoint::HlsAlbumMaster { .. }
            | Endpoint::HlsAlbumMedia { .. }
            | Endpoint::HlsFile { .. }
            | Endpoint::Lyrics { .. }
            | Endpoint::CreatePurchase
            | Endpoint::RefundPurchase { .. }
            | Endpoint::CreatePlayToken
            | Endpoint::GetUserAlbums { .. }
            | Endpoint::DeclineGift { .. }
            | Endpoint::GetUserGifts { .. }
            | Endpoint::CreateClub
            | Endpoint::JoinClub { .. }
            | Endpoint::LeaveClub { .. }
            | Endpoint::RegisterDevice
            | Endpoint::ListDevices
            | Endpoint::RemoveDevice { .. }
            | Endpoint::CreateOfflineLicense
            | Endpoint::AdminListKeys
            | Endpoint::AdminRotateSigning
            | Endpoint::AdminRevokeSigning { .. }
            | Endpoint::AdminRotateKek
            | Endpoint::AdminRotateContent
            | Endpoint::AdminMaintain
            | Endpoint::AdminJob { .. } => Authorization::Bearer,
        }
    }

    /// A `POST` that changes state: its body is read (bounded, and refused with a key
    /// repeated) before the operation runs, even where the operation ignores it, and it is
    /// logged under a request id.
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            Endpoint::CreatePurchase
                | Endpoint::RefundPurchase { .. }
                | Endpoint::CreatePlayToken
                | Endpoint::CreateLicense
                | Endpoint::DeclineGift { .. }
                | Endpoint::CreateClub
                | Endpoint::JoinClub { .. }
                | Endpoint::LeaveClub { .. }
                | Endpoint::RegisterDevice
                | Endpoint::RemoveDevice { .. }
                | Endpoint::CreateOfflineLicense
                | Endpoint::DevSession
                | Endpoint::DevPurchase
                | Endpoint::AdminRotateSigning
                | Endpoint::AdminRevokeSigning { .. }
                | Endpoint::AdminRotateKek
                | Endpoint::AdminRotateContent
                | Endpoint::AdminMaintain
        )
    }

    /// A request that records or undoes a sale: public reads give way to it.
    pub fn is_sale(&self) -> bool {
        matches!(
            self,
            Endpoint::CreatePurchase
                | Endpoint::RefundPurchase { .. }
                | Endpoint::DevPurchase
                | Endpoint::DeclineGift { .. }
        )
    }

    /// A read that any client may repeat at will and that no playback waits on: it gives way
    /// to sales in flight (see [`crate::app::sales_first`]).
    pub fn is_repeatable_read(&self) -> bool {
        matches!(
            self,
            Endpoint::ListAlbums
                | Endpoint::GetAlbum { .. }
                | Endpoint::GetCover { .. }
                | Endpoint::GetChart
                | Endpoint::GetUserAlbums { .. }
        )
    }

    /// A short, bounded name for metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Health => "healthz",
            Endpoint::Ready => "readyz",
            Endpoint::Metrics => "metrics",
            Endpoint::Jwks => "jwks",
            Endpoint::ListAlbums => "list_albums",
            Endpoint::GetAlbum { .. } => "get_album",
            Endpoint::GetCover { .. } => "get_cover",
            Endpoint::GetExtra { .. } => "get_extra",
            Endpoint::CreateLicense => "create_license",
            Endpoint::GetManifest { .. } => "get_manifest",
            Endpoint::GetSegment { .. } => SEGMENT_ROUTE,
            Endpoint::HlsTrackMaster { .. } => "hls_track_master",
            Endpoint::HlsTrackMedia { .. } => "hls_track_media",
            Endpoint::HlsAlbumMaster { .. } => "hls_album_master",
            Endpoint::HlsAlbumMedia { .. } => "hls_album_media",
            Endpoint::HlsFile {
                file: HlsFile::Key, ..
            } => "hls_key",
            Endpoint::HlsFile { .. } => "hls_segment",
            Endpoint::Lyrics {
                form: LyricsForm::JsonLines,
                ..
            } => "lyrics",
            Endpoint::Lyrics {
                form: LyricsForm::Playlist,
                ..
            } => "hls_lyrics_media",
            Endpoint::Lyrics {
                form: LyricsForm::WebVtt,
                ..
            } => "hls_lyrics_vtt",
            Endpoint::EdgeAuthorize => "edge_authorize",
            Endpoint::CreatePurchase => "create_purchase",
            Endpoint::RefundPurchase { .. } => "refund_purchase",
            Endpoint::CreatePlayToken => "create_play_token",
            Endpoint::GetChart => "get_chart",
            Endpoint::GetUserAlbums { .. } => "get_user_albums",
            Endpoint::DeclineGift { .. } => "decline_gift",
            Endpoint::GetUserGifts { .. } => "user_gifts",
            Endpoint::CreateClub => "create_club",
            Endpoint::ListClubs => "list_clubs",
            Endpoint::JoinClub { .. } => "join_club",
            Endpoint::LeaveClub { .. } => "leave_club",
            Endpoint::GetClubChart => "club_chart",
            Endpoint::RegisterDevice => "register_device",
            Endpoint::ListDevices => "list_devices",
            Endpoint::RemoveDevice { .. } => "remove_device",
            Endpoint::CreateOfflineLicense => "create_offline_license",
            Endpoint::WebAsset { .. } => "web_asset",
            Endpoint::DevStatus => "dev_status",
            Endpoint::DevSession => "dev_session",
            Endpoint::DevPurchase => "dev_purchase",
            Endpoint::AdminListKeys => "admin_list_keys",
            Endpoint::AdminRotateSigning => "admin_rotate_signing",
            Endpoint::AdminRevokeSigning { .. } => "admin_revoke_signing",
            Endpoint::AdminRotateKek => "admin_rotate_kek",
            Endpoint::AdminRotateContent => "admin_rotate_content",
            Endpoint::AdminMaintain => "admin_maintain",
            Endpoint::AdminJob { .. } => "admin_job",
            Endpoint::Preflight => "preflight",
            Endpoint::WrongMethod { .. } => "wrong_method",
            Endpoint::NotFound => "not_found",
        }
    }
}

/// `Allow` of a route that reads (every route answers `OPTIONS` preflights too).
pub const GET_ALLOW: &str = "GET, HEAD, OPTIONS";
/// `Allow` of a route that takes a `POST`.
pub const POST_ALLOW: &str = "POST, OPTIONS";
/// `Allow` of a collection that is read and added to (`/v1/clubs`, `/v1/devices`).
pub const GET_POST_ALLOW: &str = "GET, HEAD, POST, OPTIONS";
/// `Allow` of a resource that is only removed (`/v1/devices/{id}`).
pub const DELETE_ALLOW: &str = "DELETE, OPTIONS";

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && !s.starts_with('.')
}

/// A track number: decimal, from 1.
fn track_number(n: &str) -> Option<u32> {
    decimal::<u32>(n).filter(|&t| t > 0)
}

/// A number as encore writes it in URLs: digits without sign or leading zeros, so each number
/// has one spelling and each resource one URL.
fn decimal<T: std::str::FromStr>(n: &str) -> Option<T> {
    let canonical =
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
    if canonical { n.parse().ok() } else { None }
}

/// Routes `method` and `path` (without the query).
pub fn route(method: &Method, path: &str) -> Endpoint {
    if method == Method::OPTIONS {
        // A preflight only where there is something; an unknown path is 404 for every method.
        return match route(&Method::GET, path) {
            Endpoint::NotFound => Endpoint::NotFound,
            _ => Endpoint::Preflight,
        };
    }
    let get = method == Method::GET || method == Method::HEAD;
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let want_get = |e: Endpoint| {
        if get {
            e
        } else {
            Endpoint::WrongMethod { allow: GET_ALLOW }
        }
    };
    let want_post = |e: Endpoint| {
        if method == Method::POST {
            e
        } else {
            Endpoint::WrongMethod { allow: POST_ALLOW }
        }
    };
    let is_id = |s: &str| check_identifier(s).is_ok();
    match parts.as_slice() {
        [""] => want_get(Endpoint::WebAsset {
            file: "index.html".into(),
        }),
        // Only names in the player's fixed list route here, so no path reaches the disk.
        ["web", rest @ ..] if crate::http::ops::web::is_asset(&rest.join("/")) => {
            want_get(Endpoint::WebAsset {
                file: rest.join("/"),
            })
        }
        ["v1", "dev"] => want_get(Endpoint::DevStatus),
        ["v1", "dev", "session"] => want_post(Endpoint::DevSession),
        ["v1", "dev", "purchases"] => want_post(Endpoint::DevPurchase),
        ["healthz"] => want_get(Endpoint::Health),
        ["readyz"] => want_get(Endpoint::Ready),
        ["metrics"] => want_get(Endpoint::Metrics),
        [".well-known", "jwks.json"] => want_get(Endpoint::Jwks),
        ["v1", "albums"] => want_get(Endpoint::ListAlbums),
        ["v1", "albums", album] if is_name(album) => want_get(Endpoint::GetAlbum {
            album: album.to_string(),
        }),
        ["v1", "albums", album, "cover"] if is_name(album) => want_get(Endpoint::GetCover {
            album: album.to_string(),
        }),
        ["v1", "albums", album, "extras", id] if is_name(album) && is_name(id) => {
            want_get(Endpoint::GetExtra {
                album: album.to_string(),
                id: id.to_string(),
            })
        }
        ["v1", "licenses"] => want_post(Endpoint::CreateLicense),
        ["v1", "edge", "authorize"] => want_get(Endpoint::EdgeAuthorize),
        ["v1", "purchases"] => want_post(Endpoint::CreatePurchase),
        ["v1", "purchases", order_id, "refund"] if is_id(order_id) => {
            want_post(Endpoint::RefundPurchase {
                order_id: order_id.to_string(),
            })
        }
        ["v1", "play-tokens"] => want_post(Endpoint::CreatePlayToken),
        ["v1", "admin", "keys"] => want_get(Endpoint::AdminListKeys),
        ["v1", "admin", "keys", "signing", "rotate"] => want_post(Endpoint::AdminRotateSigning),
        ["v1", "admin", "keys", "signing", kid, "revoke"] if is_name(kid) => {
            want_post(Endpoint::AdminRevokeSigning {
                kid: kid.to_string(),
            })
        }
        ["v1", "admin", "keys", "kek", "rotate"] => want_post(Endpoint::AdminRotateKek),
        ["v1", "admin", "keys", "content", "rotate"] => want_post(Endpoint::AdminRotateContent),
        ["v1", "admin", "keys", "maintain"] => want_post(Endpoint::AdminMaintain),
        ["v1", "admin", "jobs", id] => match decimal::<u64>(id) {
            Some(id) => want_get(Endpoint::AdminJob { id }),
            None => Endpoint::NotFound,
        },
        ["v1", "charts", "albums"] => want_get(Endpoint::GetChart),
        ["v1", "charts", "clubs"] => want_get(Endpoint::GetClubChart),
        ["v1", "gifts", order, "decline"] if is_id(order) => want_post(Endpoint::DeclineGift {
            order_id: order.to_string(),
        }),
        ["v1", "users", user, "gifts"] if is_id(user) => want_get(Endpoint::GetUserGifts {
            user: user.to_string(),
        }),
        ["v1", "clubs"] if method == Method::POST => Endpoint::CreateClub,
        ["v1", "clubs"] if get => Endpoint::ListClubs,
        ["v1", "clubs"] => Endpoint::WrongMethod {
            allow: GET_POST_ALLOW,
        },
        ["v1", "devices"] if method == Method::POST => Endpoint::RegisterDevice,
        ["v1", "devices"] if get => Endpoint::ListDevices,
        ["v1", "devices"] => Endpoint::WrongMethod {
            allow: GET_POST_ALLOW,
        },
        ["v1", "devices", device] if is_id(device) => {
            if method == Method::DELETE {
                Endpoint::RemoveDevice {
                    device: device.to_string(),
                }
            } else {
                Endpoint::WrongMethod {
                    allow: DELETE_ALLOW,
                }
            }
        }
        ["v1", "offline-licenses"] => want_post(Endpoint::CreateOfflineLicense),
        ["v1", "clubs", club, "join"] if is_id(club) => want_post(Endpoint::JoinClub {
            club: club.to_string(),
        }),
        ["v1", "clubs", club, "leave"] if is_id(club) => want_post(Endpoint::LeaveClub {
            club: club.to_string(),
        }),
        ["v1", "users", user, "albums"] if is_id(user) => want_get(Endpoint::GetUserAlbums {
            user: user.to_string(),
        }),
        ["v1", "albums", album, "master.m3u8"] if is_name(album) => {
            want_get(Endpoint::HlsAlbumMaster {
                album: album.to_string(),
            })
        }
        ["v1", "albums", album, rendition, "index.m3u8"]
            if is_name(album) && is_name(rendition) =>
        {
            want_get(Endpoint::HlsAlbumMedia {
                album: album.to_string(),
                rendition: rendition.to_string(),
            })
        }
        ["v1", "albums", album, "tracks", n, "master.m3u8"] if is_name(album) => {
            match track_number(n) {
                Some(track) => want_get(Endpoint::HlsTrackMaster {
                    album: album.to_string(),
                    track,
                }),
                None => Endpoint::NotFound,
            }
        }
        ["v1", "albums", album, "tracks", n, "lyrics", rest @ ..]
            if is_name(album) && rest.len() <= 1 =>
        {
            let form = match rest {
                [] => Some(LyricsForm::JsonLines),
                ["index.m3u8"] => Some(LyricsForm::Playlist),
                ["lyrics.vtt"] => Some(LyricsForm::WebVtt),
                _ => None,
            };
            match (track_number(n), form) {
                (Some(track), Some(form)) => want_get(Endpoint::Lyrics {
                    album: album.to_string(),
                    track,
                    form,
                }),
                _ => Endpoint::NotFound,
            }
        }
        ["v1", "albums", album, "tracks", n, rendition, "index.m3u8"]
            if is_name(album) && is_name(rendition) =>
        {
            match track_number(n) {
                Some(track) => want_get(Endpoint::HlsTrackMedia {
                    album: album.to_string(),
                    track,
                    rendition: rendition.to_string(),
                }),
                None => Endpoint::NotFound,
            }
        }
        [
            "v1",
            "albums",
            album,
            "tracks",
            n,
            rendition,
            "hls",
            generation,
            file,
        ] if is_name(album) && is_name(rendition) && is_name(generation) => {
            match (track_number(n), HlsFile::parse(file)) {
                (Some(track), Some(file)) => want_get(Endpoint::HlsFile {
                    album: album.to_string(),
                    track,
                    rendition: rendition.to_string(),
                    generation: generation.to_string(),
                    file,
                }),
                _ => Endpoint::NotFound,
            }
        }
        ["v1", "albums", album, "tracks", n, rendition, "manifest"]
            if is_name(album) && is_name(rendition) =>
        {
            match track_number(n) {
                Some(track) => want_get(Endpoint::GetManifest {
                    album: album.to_string(),
                    track,
                    rendition: rendition.to_string(),
                }),
                None => Endpoint::NotFound,
            }
        }
        [
            "v1",
            "albums",
            album,
            "tracks",
            n,
            rendition,
            generation,
            file,
        ] if is_name(album) && is_name(rendition) && is_name(generation) && is_name(file) => {
            match track_number(n) {
                Some(track) => want_get(Endpoint::GetSegment {
                    album: album.to_string(),
                    track,
                    rendition: rendition.to_string(),
                    generation: generation.to_string(),
                    file: file.to_string(),
                }),
                None => Endpoint::NotFound,
            }
        }
        _ => Endpoint::NotFound,
    }
}

#[cfg(test)]
mod tests;
