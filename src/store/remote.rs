//! The packaged store's bucket: an S3-compatible object store reached through the
//! `object_store` crate (the client DataFusion and delta-rs use), with encore's keys under one
//! prefix. Credentials, endpoint and region come from the standard `AWS_*` variables.
//!
//! Keys under the prefix mirror the local layout ([`super`]), plus what publication adds
//! ([`super::publish`]):
//! ```text
//! .published/<album>.json                            the album as published (written last)
//! <album>/<NN>/<rendition>/manifest-<sha256>.json     a rendition manifest, named by its hash
//! <album>/<NN>/<rendition>/<generation>/init.enc, 0001.enc, ...
//! <album>/cover-<sha256>.<ext>                        the cover, named by its hash
//! ```
//! Every object but the publication records is immutable once written: its name fixes its bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};

/// Retries of one bucket request before the miss fails as unavailable.
const REMOTE_RETRIES: usize = 2;
/// The longest one bucket request is retried for.
const REMOTE_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
};

use crate::config::BucketLocation;

/// The user metadata key holding an object's SHA-256 (lowercase hex), set on every PUT so a
/// re-run can tell a present object is the right one without downloading it.
const SHA256_METADATA: &str = "sha256";

/// Why the bucket could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The client could not be configured (bad `AWS_*` settings).
    #[error("cannot use bucket {bucket}: {source}")]
    Config {
        /// The bucket.
        bucket: String,
        /// The client's complaint (boxed: the client's error is large, and every `Result`
        /// here would carry its size).
        source: Box<object_store::Error>,
    },
    /// A request failed.
    #[error("{action} s3://{bucket}/{key}: {source}")]
    Request {
        /// What was being done.
        action: &'static str,
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// The cause.
        source: Box<object_store::Error>,
    },
    /// A key encore would never write (it would escape the prefix or the layout).
    #[error("refusing object name {0:?}")]
    BadKey(String),
}

/// The bucket (and prefix) holding the published store.
#[derive(Clone)]
pub struct Remote {
    s3: Arc<AmazonS3>,
    location: BucketLocation,
}

impl std::fmt::Debug for Remote {
    // The client's Debug would print its credentials' provider; the location is enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Remote(s3://{}/{})",
            self.location.bucket, self.location.prefix
        )
    }
}

/// What a HEAD found: the object's size and the SHA-256 it was stored with, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Size in bytes.
    pub size: u64,
    /// The `sha256` metadata it was written with.
    pub sha256: Option<String>,
}

impl Remote {
    /// The bucket at `location`, configured from the `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
    /// `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`). Path-style requests unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    pub fn from_env(location: &BucketLocation) -> Result<Remote, RemoteError> {
        Remote::from_env_with(location, &[])
    }

    /// As [`from_env`](Self::from_env), with `settings` (`AWS_*` names and values) taking
    /// the place of the environment's: for tests and benches that must not change their
    /// process's environment.
    pub fn from_env_with(
        location: &BucketLocation,
        settings: &[(String, String)],
    ) -> Result<Remote, RemoteError> {
        let config_err = |source: object_store::Error| RemoteError::Config {
            bucket: location.bucket.clone(),
            source: Box::new(source),
        };
        let mut builder = AmazonS3Builder::from_env();
        for (name, value) in settings {
            let key = name.to_ascii_lowercase().parse().map_err(config_err)?;
            builder = builder.with_config(key, value);
        }
        let s3 = builder
            .with_bucket_name(&location.bucket)
            // A player waits on a miss: a few quick retries, then the origin answers 503 and
            // the player (or the balancer) tries again, instead of object_store's default of
            // ten retries over three minutes behind the request deadline.
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig::default(),
                max_retries: REMOTE_RETRIES,
                retry_timeout: REMOTE_RETRY_TIMEOUT,
            })
            .build()
            .map_err(config_err)?;
        Ok(Remote {
            s3: Arc::new(s3),
            location: location.clone(),
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.location.bucket, self.location.prefix)
    }

    /// The full key of `rel` (a `/`-separated path under the prefix). Only names the store
    /// builds reach here; anything with an empty, `.` or `..` part is refused.
    fn key(&self, rel: &str) -> Result<ObjectPath, RemoteError> {
        if rel.is_empty()
            || rel
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(RemoteError::BadKey(rel.to_owned()));
        }
        let full = if self.location.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.location.prefix)
        };
        ObjectPath::parse(&full).map_err(|_| RemoteError::BadKey(full))
    }

    fn request_err(
        &self,
        action: &'static str,
        rel: &str,
    ) -> impl FnOnce(object_store::Error) -> RemoteError {
        let bucket = self.location.bucket.clone();
        let key = rel.to_owned();
        move |source| RemoteError::Request {
            action,
            bucket,
            key,
            source: Box::new(source),
        }
    }

    /// The object's bytes; `Ok(None)` when there is no such object.
    pub async fn get(&self, rel: &str) -> Result<Option<Bytes>, RemoteError> {
        let key = self.key(rel)?;
        let got = match self.s3.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.request_err("get", rel)(e)),
        };
        got.bytes()
            .await
            .map(Some)
            .map_err(self.request_err("read", rel))
    }

    /// What is stored at `rel` (size and recorded SHA-256), without its bytes; `Ok(None)`
    /// when nothing is.
    pub async fn head(&self, rel: &str) -> Result<Option<Present>, RemoteError> {
        let key = self.key(rel)?;
        let options = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.s3.get_opts(&key, options).await {
            Ok(got) => Ok(Some(Present {
                size: got.meta.size,
                sha256: got
                    .attributes
                    .get(&Attribute::Metadata(SHA256_METADATA.into()))
                    .map(|v| v.as_ref().to_owned()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.request_err("head", rel)(e)),
        }
    }

    /// Stores `bytes` at `rel` (one atomic PUT: a reader sees the old object or the whole new
    /// one), recording their SHA-256 as object metadata.
    pub async fn put(&self, rel: &str, bytes: Bytes, sha256: &str) -> Result<(), RemoteError> {
        let key = self.key(rel)?;
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            sha256.to_owned().into(),
        );
        let options = PutOptions {
            attributes,
            ..Default::default()
        };
        self.s3
            .put_opts(&key, PutPayload::from_bytes(bytes), options)
            .await
            .map(|_| ())
            .map_err(self.request_err("put", rel))
    }

    /// Every publication record under `.published/`, by album id, with a tag that changes
    /// whenever the record is replaced (its ETag, else its size and modification time): one
    /// LIST request per thousand albums, no GET, so a refresh that finds nothing new costs
    /// the bucket a listing only.
    pub async fn list_published(&self) -> Result<BTreeMap<String, String>, RemoteError> {
        let folder = self.key(PUBLISHED_FOLDER)?;
        let mut listing = self.s3.list(Some(&folder));
        let mut published = BTreeMap::new();
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(self.request_err("list", PUBLISHED_FOLDER))?
        {
            // Only `<album>.json` names are records; anything else there is not encore's.
            let Some(album) = meta
                .location
                .filename()
                .and_then(|name| name.strip_suffix(".json"))
                .filter(|album| super::check_name(album).is_ok())
            else {
                continue;
            };
            let tag = meta.e_tag.unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    meta.size,
                    meta.last_modified.timestamp_nanos_opt().unwrap_or(0)
                )
            });
            published.insert(album.to_owned(), tag);
        }
        Ok(published)
    }
}

/// The folder of publication records: one `<album>.json` per published album, side by side,
/// so one listing sees every album's current record. Its name can never be an album id
/// (album ids have no dot), so it never mixes with an album's objects.
pub const PUBLISHED_FOLDER: &str = ".published";

/// Key (under the prefix) of `album`'s publication record.
pub fn published_record(album: &str) -> String {
    format!("{PUBLISHED_FOLDER}/{album}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(prefix: &str) -> Remote {
        let location = BucketLocation {
            bucket: "encore".into(),
            prefix: prefix.into(),
        };
        let s3 = AmazonS3Builder::new()
            .with_bucket_name("encore")
            .with_region("garage")
            .build()
            .unwrap();
        Remote {
            s3: Arc::new(s3),
            location,
        }
    }

    #[test]
    fn keys_sit_under_the_prefix_and_never_escape_it() {
        assert_eq!(
            remote("label/a")
                .key("first-light/publication.json")
                .unwrap()
                .as_ref(),
            "label/a/first-light/publication.json"
        );
        assert_eq!(remote("").key("x/y").unwrap().as_ref(), "x/y");
        for bad in ["", "../x", "a//b", "a/./b", "/a"] {
            assert!(remote("p").key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(format!("{:?}", remote("p")).contains("s3://encore/p"));
    }
}
