//! Offline copies: [`download_offline`] stores an album's sealed segments, its offline
//! license and the server's signing keys in a folder; [`open_offline`] writes one track from
//! that folder with no server, after checking the license (signature, device key, expiry at
//! the clock passed in) and every segment (size, SHA-256, seal).
//!
//! The folder (`docs/OFFLINE.md`): `license.json` (the signed license), `jwks.json` (the
//! server's public signing keys, fetched over the same authenticated connection), and
//! `tracks/{n}/{rendition}/manifest.json`, `init`, `1`, `2`, … (the sealed segments as the
//! server sent them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use reqwest::Url;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::seal::offline::{DeviceSecret, OfflineError, OpenedLicense, SignedLicense, open};
use crate::seal::{ContentKey, SegmentSlot, SigningKid};

use super::super::api::Manifest;
use super::super::error::FetchError;
use super::super::output::PartialFile;
use super::super::retry::RetryPolicy;
use super::super::transport::Transport;
use super::endpoint::{api_url, parse_server};
use super::plan::plan;
use super::segment::check_and_open;
use super::{FetchReport, FetchRequest, MAX_JSON_BYTES, check_token, parse_json};

/// The license file in an offline folder.
pub const LICENSE_FILE: &str = "license.json";
/// The server's public signing keys in an offline folder.
pub const JWKS_FILE: &str = "jwks.json";

/// What to download for offline play.
#[derive(Debug, Clone)]
pub struct OfflineDownload {
    /// A fetch request naming the server, a `play` token, the album and the rendition (its
    /// track and output are not used).
    pub fetch: FetchRequest,
    /// The registered device the license is for.
    pub device_id: String,
    /// The folder to fill.
    pub dir: PathBuf,
}

/// What an offline download stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineReport {
    /// The license's id.
    pub license_id: String,
    /// Its expiry, Unix seconds.
    pub expires_at: u64,
    /// Whether an existing license was renewed.
    pub renewed: bool,
    /// Tracks stored.
    pub tracks: usize,
    /// Sealed segments stored (init segments included).
    pub segments: usize,
}

#[derive(Serialize)]
struct OfflineLicenseRequest<'a> {
    album: &'a str,
    device_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_id: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct OfflineAnswer {
    license: SignedLicense,
}

fn files_error(path: &Path, reason: impl std::fmt::Display) -> FetchError {
    FetchError::OfflineFiles {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a device key file (a private X25519 JWK).
pub fn read_device_key(path: &Path) -> Result<DeviceSecret, FetchError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| files_error(path, e))?);
    DeviceSecret::from_jwk(&text).map_err(|e| files_error(path, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    crate::durable::write_atomic(path, bytes, 0o600).map_err(|e| files_error(path, e))
}

/// The license id in `dir`'s license, if there is one: a download into a folder that holds a
/// license renews it (the server checks it is this user's, for this album and device).
fn existing_license_id(dir: &Path) -> Option<String> {
    let text = std::fs::read(dir.join(LICENSE_FILE)).ok()?;
    let license: SignedLicense = serde_json::from_slice(&text).ok()?;
    let payload = URL_SAFE_NO_PAD.decode(license.payload).ok()?;
    let payload: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    payload["license_id"].as_str().map(str::to_owned)
}

/// The server's signing keys from a JWKS document, by kid.
fn signing_keys(jwks: &[u8]) -> Result<Vec<(SigningKid, VerifyingKey)>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(jwks).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc["keys"].as_array().ok_or("no \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys {
        let (Some(kid), Some(x)) = (k["kid"].as_str(), k["x"].as_str()) else {
            continue;
        };
        let (Ok(kid), Ok(x)) = (kid.parse::<SigningKid>(), URL_SAFE_NO_PAD.decode(x)) else {
            continue;
        };
        let Ok(x) = <[u8; 32]>::try_from(x) else {
            continue;
        };
        if let Ok(key) = VerifyingKey::from_bytes(&x) {
            out.push((kid, key));
        }
    }
    Ok(out)
}

/// Opens the license in `dir` with `device` at `now`.
fn open_license_in(
    dir: &Path,
    device: &DeviceSecret,
    now: u64,
) -> Result<OpenedLicense, FetchError> {
    let lpath = dir.join(LICENSE_FILE);
    let license = std::fs::read(&lpath).map_err(|e| files_error(&lpath, e))?;
    let jpath = dir.join(JWKS_FILE);
    let jwks = std::fs::read(&jpath).map_err(|e| files_error(&jpath, e))?;
    open_license(dir, &license, &jwks, device, now)
}

/// Opens a license (`license`, JSON) against the signing keys in `jwks` (a JWKS document).
fn open_license(
    dir: &Path,
    license: &[u8],
    jwks: &[u8],
    device: &DeviceSecret,
    now: u64,
) -> Result<OpenedLicense, FetchError> {
    let license: SignedLicense =
        serde_json::from_slice(license).map_err(|e| files_error(&dir.join(LICENSE_FILE), e))?;
    let keys = signing_keys(jwks).map_err(|e| files_error(&dir.join(JWKS_FILE), e))?;
    let signer = |kid: &SigningKid| keys.iter().find(|(k, _)| k == kid).map(|(_, v)| *v);
    Ok(open(&license, signer, device, now)?)
}

fn track_dir(dir: &Path, track: u32, rendition: &str) -> PathBuf {
    dir.join("tracks").join(track.to_string()).join(rendition)
}

fn slot_file(slot: SegmentSlot) -> String {
    match slot {
        SegmentSlot::Init => "init".to_owned(),
        SegmentSlot::Media(n) => n.to_string(),
    }
}

/// The content key of `manifest` among the license's keys for its track and rendition.
fn key_for(license: &OpenedLicense, manifest: &Manifest) -> Result<ContentKey, FetchError> {
    let entry = license
        .keys_for(manifest.track, &manifest.rendition)
        .into_iter()
        .find(|k| k.key_id == manifest.key_id)
        .ok_or_else(|| FetchError::NotEntitled {
            rendition: manifest.rendition.clone(),
            available: license
                .keys
                .iter()
                .filter(|k| k.track == manifest.track)
                .map(|k| k.rendition.clone())
                .collect(),
        })?;
    Ok(entry.content_key()?)
}

/// Downloads the offline license for `req.device_id` (renewing the one in `req.dir`, if
/// any) and every track of the album at `req.fetch.rendition` into `req.dir`. The license is
/// opened with `device` at `clock`'s now and every segment opened before it is kept, so a
/// folder that downloads is one that plays.
pub async fn download_offline(
    req: &OfflineDownload,
    device: &DeviceSecret,
    clock: &dyn Clock,
) -> Result<OfflineReport, FetchError> {
    let f = &req.fetch;
    let base = parse_server(&f.server)?;
    let transport = Transport::new(
        check_token(f.token.expose())?,
        RetryPolicy {
            retries: f.retries,
            backoff: f.backoff,
        },
    )?;
    std::fs::create_dir_all(&req.dir).map_err(|e| files_error(&req.dir, e))?;
    let renew = existing_license_id(&req.dir);
    let what = format!("the offline license for album {}", f.album);
    let body = transport
        .post_json(
            &api_url(&base, &["v1", "offline-licenses"])?,
            &OfflineLicenseRequest {
                album: &f.album,
                device_id: &req.device_id,
                license_id: renew.as_deref(),
            },
            &what,
            MAX_JSON_BYTES,
        )
        .await?;
    let answer: OfflineAnswer = parse_json(&body, &what)?;
    let jwks = transport
        .get(
            &api_url(&base, &[".well-known", "jwks.json"])?,
            "the server's signing keys",
            MAX_JSON_BYTES,
        )
        .await?;
    let license_json = serde_json::to_vec_pretty(&answer.license)
        .map_err(|e| files_error(&req.dir.join(LICENSE_FILE), e))?;
    // Opened before anything is kept: a license this device cannot open replaces nothing.
    let opened = open_license(&req.dir, &license_json, &jwks, device, clock.now_unix())?;
    if opened.terms.album != f.album || opened.terms.device_id != req.device_id {
        return Err(FetchError::BadResponse {
            what,
            reason: "the license is for another album or device".into(),
        });
    }
    let tracks: BTreeSet<u32> = opened
        .keys
        .iter()
        .filter(|k| k.rendition == f.rendition)
        .map(|k| k.track)
        .collect();
    if tracks.is_empty() {
        return Err(FetchError::NotEntitled {
            rendition: f.rendition.clone(),
            available: opened.keys.iter().map(|k| k.rendition.clone()).collect(),
        });
    }
    let mut segments = 0;
    for &track in &tracks {
        let mut treq = f.clone();
        treq.track = track;
        let n = track.to_string();
        let what = format!("the manifest of track {track} ({})", f.rendition);
        let url = api_url(
            &base,
            &[
                "v1",
                "albums",
                &f.album,
                "tracks",
                &n,
                &f.rendition,
                "manifest",
            ],
        )?;
        let body = transport.get(&url, &what, MAX_JSON_BYTES).await?;
        let manifest: Manifest = parse_json(&body, &what)?;
        let key = key_for(&opened, &manifest)?;
        let jobs = plan(&manifest, &treq, &base)?;
        let tdir = track_dir(&req.dir, track, &f.rendition);
        std::fs::create_dir_all(&tdir).map_err(|e| files_error(&tdir, e))?;
        for job in &jobs {
            let sealed = transport
                .get(
                    &job.url,
                    &format!("{} of track {track}", job.slot),
                    job.bytes,
                )
                .await?;
            check_and_open(job, sealed.clone(), &key, &treq)?;
            write_file(&tdir.join(slot_file(job.slot)), &sealed)?;
            segments += 1;
        }
        write_file(&tdir.join("manifest.json"), &body)?;
    }
    // The license last: a folder whose download broke off holds no new license.
    write_file(&req.dir.join(JWKS_FILE), &jwks)?;
    write_file(&req.dir.join(LICENSE_FILE), &license_json)?;
    Ok(OfflineReport {
        license_id: opened.terms.license_id.clone(),
        expires_at: opened.terms.expires_at,
        renewed: renew.is_some(),
        tracks: tracks.len(),
        segments,
    })
}

/// Writes track `track` at `rendition` from the offline folder `dir` to `out` (fMP4), with
/// no server: the license must verify against the stored signing keys, open with `device`
/// and not be expired at `clock`'s now; every segment must match its manifest and open.
pub async fn open_offline(
    dir: &Path,
    device: &DeviceSecret,
    track: u32,
    rendition: &str,
    out: &Path,
    clock: &dyn Clock,
) -> Result<FetchReport, FetchError> {
    let mut file = PartialFile::create(out).await?;
    let opened = open_license_in(dir, device, clock.now_unix())?;
    let tdir = track_dir(dir, track, rendition);
    let mpath = tdir.join("manifest.json");
    let body = std::fs::read(&mpath).map_err(|e| files_error(&mpath, e))?;
    let manifest: Manifest = parse_json(&body, "the stored manifest")?;
    let mut req = FetchRequest::new(
        "http://offline.invalid",
        String::new(),
        opened.terms.album.clone(),
        track,
        out,
    );
    req.rendition = rendition.to_owned();
    let key = key_for(&opened, &manifest)?;
    let base = Url::parse("http://offline.invalid/").map_err(|e| files_error(dir, e))?;
    let jobs = plan(&manifest, &req, &base)?;
    let mut bytes_plaintext = 0u64;
    for job in &jobs {
        let spath = tdir.join(slot_file(job.slot));
        let sealed = std::fs::read(&spath).map_err(|e| files_error(&spath, e))?;
        let plaintext = check_and_open(job, sealed, &key, &req)?;
        file.write(&plaintext).await?;
        bytes_plaintext += plaintext.len() as u64;
    }
    file.commit().await?;
    Ok(FetchReport {
        segments: manifest.segments.len(),
        bytes_plaintext,
        duration_seconds: manifest.duration_seconds(),
        codec: manifest.codec,
        sample_rate: manifest.sample_rate,
        channels: manifest.channels,
    })
}

impl From<OfflineError> for FetchError {
    fn from(e: OfflineError) -> Self {
        FetchError::Offline(e)
    }
}
