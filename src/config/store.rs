//! `[store]`: where the packaged store lives (the local data dir, or an S3 bucket with the data
//! dir as a bounded local cache) and how an origin follows what is published there.

use serde::Deserialize;

use super::ConfigError;

/// `[store]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `s3://bucket/prefix` (default: none, the store is `<data>/store` alone). Credentials,
    /// endpoint and region come from the standard `AWS_*` environment variables.
    pub url: Option<String>,
    /// With an `s3://` url: disk for local copies of segments under `<data>/store`, MiB
    /// (default 10240); the least recently used copies are deleted past it.
    pub local_cache_mb: Option<u64>,
    /// With an `s3://` url: how often `encore serve` looks for newly published albums,
    /// seconds (default 5; SIGHUP looks at once).
    pub refresh_seconds: Option<u64>,
}

/// A bucket and the key prefix under it, from `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLocation {
    /// The bucket's name.
    pub bucket: String,
    /// Key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

/// Validated `[store]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The bucket the store is published to and read through from; `None` = local only.
    pub bucket: Option<BucketLocation>,
    /// Bound on local segment copies (bucket-backed store only), bytes.
    pub local_cache_bytes: u64,
    /// Period of the published-album refresh.
    pub refresh: std::time::Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            bucket: None,
            local_cache_bytes: 10240 * 1024 * 1024,
            refresh: std::time::Duration::from_secs(5),
        }
    }
}

/// Validates `[store]`.
pub fn store_settings(raw: RawStore) -> Result<StoreSettings, ConfigError> {
    let d = StoreSettings::default();
    let bucket = match raw.url.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(url) => Some(parse_url(url)?),
    };
    let mb = raw.local_cache_mb.unwrap_or(d.local_cache_bytes >> 20);
    if mb == 0 || mb > 1 << 30 {
        return Err(ConfigError::Invalid {
            key: "store.local_cache_mb",
            problem: format!("is {mb}; use 1 to {}", 1u64 << 30),
        });
    }
    let refresh = raw.refresh_seconds.unwrap_or(d.refresh.as_secs());
    if refresh == 0 {
        return Err(ConfigError::Invalid {
            key: "store.refresh_seconds",
            problem: "must be more than 0".into(),
        });
    }
    Ok(StoreSettings {
        bucket,
        local_cache_bytes: mb << 20,
        refresh: std::time::Duration::from_secs(refresh),
    })
}

/// `s3://bucket/prefix` → its parts; any other scheme, or no bucket, is refused.
fn parse_url(url: &str) -> Result<BucketLocation, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        key: "store.url",
        problem,
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| invalid(format!("is {url:?}; use s3://bucket/prefix")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3's bucket naming rules: 3-63 of lowercase letters, digits, '.', '-'.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(invalid(format!(
            "names bucket {bucket:?}, not a valid S3 bucket name"
        )));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
        return Err(invalid(format!(
            "has prefix {prefix:?}; use plain path segments"
        )));
    }
    Ok(BucketLocation {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<StoreSettings, ConfigError> {
        store_settings(toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn local_is_the_default() {
        let s = parse("").unwrap();
        assert_eq!(s, StoreSettings::default());
        assert!(s.bucket.is_none());
    }

    #[test]
    fn s3_urls_give_bucket_and_prefix() {
        let s = parse("url = \"s3://encore-media/label/a/\"\nlocal_cache_mb = 64\n").unwrap();
        assert_eq!(
            s.bucket,
            Some(BucketLocation {
                bucket: "encore-media".into(),
                prefix: "label/a".into()
            })
        );
        assert_eq!(s.local_cache_bytes, 64 << 20);
        let s = parse("url = \"s3://encore\"").unwrap();
        assert_eq!(s.bucket.unwrap().prefix, "");
    }

    #[test]
    fn bad_urls_and_values_are_refused() {
        for bad in [
            "url = \"https://encore/x\"",
            "url = \"s3://\"",
            "url = \"s3://Bad_Bucket/x\"",
            "url = \"s3://encore/../x\"",
            "local_cache_mb = 0",
            "refresh_seconds = 0",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
