use super::*;

#[test]
fn routes() {
    assert_eq!(route(&Method::GET, "/v1/albums"), Endpoint::ListAlbums);
    assert_eq!(
        route(&Method::GET, "/v1/albums/first-light"),
        Endpoint::GetAlbum {
            album: "first-light".into()
        }
    );
    assert_eq!(
        route(&Method::POST, "/v1/licenses"),
        Endpoint::CreateLicense
    );
    assert_eq!(
        route(&Method::GET, "/v1/licenses"),
        Endpoint::WrongMethod { allow: POST_ALLOW }
    );
    assert_eq!(
        route(&Method::HEAD, "/v1/albums/a/tracks/2/lossless/g00/0001.enc"),
        Endpoint::GetSegment {
            album: "a".into(),
            track: 2,
            rendition: "lossless".into(),
            generation: "g00".into(),
            file: "0001.enc".into()
        }
    );
    assert_eq!(
        route(&Method::GET, "/v1/albums/a/tracks/0/lossless/manifest"),
        Endpoint::NotFound
    );
    assert_eq!(route(&Method::GET, "/v1/albums/../etc"), Endpoint::NotFound);
    assert_eq!(
        route(&Method::GET, "/v1/albums/a/tracks/1/x/..%2f/y"),
        Endpoint::NotFound
    );
    assert_eq!(
        route(&Method::DELETE, "/v1/albums"),
        Endpoint::WrongMethod { allow: GET_ALLOW }
    );
    assert_eq!(
        route(&Method::POST, "/v1/purchases"),
        Endpoint::CreatePurchase
    );
    assert_eq!(
        route(&Method::POST, "/v1/purchases/ord:42@store/refund"),
        Endpoint::RefundPurchase {
            order_id: "ord:42@store".into()
        }
    );
    assert_eq!(
        route(&Method::POST, "/v1/purchases/a%2fb/refund"),
        Endpoint::NotFound
    );
    assert_eq!(
        route(&Method::GET, "/v1/purchases"),
        Endpoint::WrongMethod { allow: POST_ALLOW }
    );
    assert_eq!(
        route(&Method::POST, "/v1/play-tokens"),
        Endpoint::CreatePlayToken
    );
    assert_eq!(route(&Method::GET, "/v1/charts/albums"), Endpoint::GetChart);
    assert_eq!(
        route(&Method::GET, "/v1/edge/authorize"),
        Endpoint::EdgeAuthorize
    );
    assert_eq!(
        route(&Method::GET, "/v1/users/Fan_1/albums"),
        Endpoint::GetUserAlbums {
            user: "Fan_1".into()
        }
    );
    assert_eq!(route(&Method::OPTIONS, "/v1/albums"), Endpoint::Preflight);
    assert_eq!(route(&Method::OPTIONS, "/v1/licenses"), Endpoint::Preflight);
    assert_eq!(route(&Method::OPTIONS, "/v1/nothing"), Endpoint::NotFound);
    assert_eq!(route(&Method::DELETE, "/v1/nothing"), Endpoint::NotFound);
}

#[test]
fn numbers_in_paths_have_one_spelling() {
    // Each resource has one URL: another spelling would be another CDN cache key, an
    // origin fetch (an HLS segment re-encrypted) per spelling.
    for n in ["01", "007", "+1", " 1", "1 "] {
        for path in [
            format!("/v1/albums/a/tracks/{n}/lossless/manifest"),
            format!("/v1/albums/a/tracks/{n}/master.m3u8"),
            format!("/v1/albums/a/tracks/{n}/lossless/index.m3u8"),
            format!("/v1/albums/a/tracks/{n}/high/hls/g00/0001.mp4"),
            format!("/v1/albums/a/tracks/{n}/lossless/g00/0001.enc"),
            format!("/v1/admin/jobs/{n}"),
        ] {
            assert_eq!(route(&Method::GET, &path), Endpoint::NotFound, "{path}");
        }
    }
    assert_eq!(
        route(&Method::GET, "/v1/admin/jobs/0"),
        Endpoint::AdminJob { id: 0 }
    );
}

#[test]
fn web_routes() {
    let asset = |f: &str| Endpoint::WebAsset { file: f.into() };
    assert_eq!(route(&Method::GET, "/"), asset("index.html"));
    assert_eq!(route(&Method::GET, "/web/app.js"), asset("app.js"));
    assert_eq!(
        route(&Method::GET, "/web/vendor/hls.min.js"),
        asset("vendor/hls.min.js")
    );
    assert_eq!(
        route(&Method::GET, "/web/../Cargo.toml"),
        Endpoint::NotFound
    );
    assert_eq!(route(&Method::GET, "/web/nope.js"), Endpoint::NotFound);
    assert_eq!(
        route(&Method::POST, "/"),
        Endpoint::WrongMethod { allow: GET_ALLOW }
    );
    assert_eq!(
        route(&Method::POST, "/v1/dev/session"),
        Endpoint::DevSession
    );
    assert_eq!(
        route(&Method::POST, "/v1/dev/purchases"),
        Endpoint::DevPurchase
    );
    assert_eq!(
        route(&Method::GET, "/v1/dev/session"),
        Endpoint::WrongMethod { allow: POST_ALLOW }
    );
}

#[test]
fn hls_routes() {
    assert_eq!(
        route(&Method::GET, "/v1/albums/a/tracks/2/master.m3u8"),
        Endpoint::HlsTrackMaster {
            album: "a".into(),
            track: 2
        }
    );
    assert_eq!(
        route(&Method::GET, "/v1/albums/a/tracks/2/lossless/index.m3u8"),
        Endpoint::HlsTrackMedia {
            album: "a".into(),
            track: 2,
            rendition: "lossless".into()
        }
    );
    assert_eq!(
        route(&Method::GET, "/v1/albums/a/master.m3u8"),
        Endpoint::HlsAlbumMaster { album: "a".into() }
    );
    assert_eq!(
        route(&Method::GET, "/v1/albums/a/preview/index.m3u8"),
        Endpoint::HlsAlbumMedia {
            album: "a".into(),
            rendition: "preview".into()
        }
    );
    for (file, want) in [
        ("init.mp4", HlsFile::Init),
        ("0003.mp4", HlsFile::Media(3)),
        ("key", HlsFile::Key),
    ] {
        let path = format!("/v1/albums/a/tracks/1/high/hls/g00/{file}");
        assert_eq!(
            route(&Method::GET, &path),
            Endpoint::HlsFile {
                album: "a".into(),
                track: 1,
                rendition: "high".into(),
                generation: "g00".into(),
                file: want
            }
        );
    }
    for bad in [
        "/v1/albums/a/tracks/0/master.m3u8",
        "/v1/albums/a/tracks/x/lossless/index.m3u8",
        "/v1/albums/a/tracks/1/high/hls/g00/0000.mp4",
        "/v1/albums/a/tracks/1/high/hls/g00/3.mp4",
        "/v1/albums/a/tracks/1/high/hls/../key",
    ] {
        assert_eq!(route(&Method::GET, bad), Endpoint::NotFound, "{bad}");
    }
    assert_eq!(
        route(&Method::POST, "/v1/albums/a/tracks/1/master.m3u8"),
        Endpoint::WrongMethod { allow: GET_ALLOW }
    );
    let key = route(&Method::GET, "/v1/albums/a/tracks/1/high/hls/g00/key");
    assert_eq!(key.name(), "hls_key");
}

#[test]
fn routes_devices_and_offline_licenses() {
    use crate::http::router::{DELETE_ALLOW, GET_POST_ALLOW};
    assert_eq!(
        route(&Method::POST, "/v1/devices"),
        Endpoint::RegisterDevice
    );
    assert_eq!(route(&Method::GET, "/v1/devices"), Endpoint::ListDevices);
    assert_eq!(
        route(&Method::DELETE, "/v1/devices/dev-0123456789abcdef"),
        Endpoint::RemoveDevice {
            device: "dev-0123456789abcdef".into()
        }
    );
    assert_eq!(
        route(&Method::GET, "/v1/devices/dev-1"),
        Endpoint::WrongMethod {
            allow: DELETE_ALLOW
        }
    );
    assert_eq!(
        route(&Method::PUT, "/v1/devices"),
        Endpoint::WrongMethod {
            allow: GET_POST_ALLOW
        }
    );
    assert_eq!(
        route(&Method::POST, "/v1/offline-licenses"),
        Endpoint::CreateOfflineLicense
    );
    assert_eq!(
        route(&Method::GET, "/v1/offline-licenses"),
        Endpoint::WrongMethod { allow: POST_ALLOW }
    );
    assert_eq!(
        route(&Method::OPTIONS, "/v1/devices/dev-1"),
        Endpoint::Preflight
    );
    assert_eq!(
        route(&Method::DELETE, "/v1/devices/a/b"),
        Endpoint::NotFound
    );
    assert!(route(&Method::DELETE, "/v1/devices/dev-1").changes_state());
    assert!(!route(&Method::GET, "/v1/devices").changes_state());
}
