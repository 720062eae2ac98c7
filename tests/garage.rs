//! A real S3-compatible server for the object-store tests: Garage (single node, one bucket,
//! one key) on free loopback ports in a temp dir, killed when dropped. The binary is built
//! once by `.ci/garage` into `~/.cache/encore-test/garage-2.5.0`; without it a test fails
//! saying so, never skips.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use encore::config::BucketLocation;
use encore::store::remote::Remote;

/// The bucket every Garage here serves.
pub const BUCKET: &str = "encore";

/// A running Garage.
pub struct Garage {
    child: Child,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    access_key: String,
    secret_key: String,
}

impl Garage {
    /// Stops the server now (the bucket becomes unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `.ci/garage` puts the binary (`ENCORE_GARAGE` names another).
pub fn garage_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ENCORE_GARAGE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/encore-test/garage-2.5.0/bin/garage")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("randomness");
    hex::encode(b)
}

impl Garage {
    /// Starts Garage and waits until its bucket answers a listing.
    pub async fn start() -> Garage {
        let bin = garage_binary();
        assert!(
            bin.is_file(),
            "Garage is not built at {}: run `bash .ci/garage` (builds it once, ~7 min)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("encore-garage-")
            .tempdir()
            .expect("temp dir");
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n[admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            secret = random_hex(32),
        );
        let config_path = dir.path().join("garage.toml");
        std::fs::write(&config_path, config).expect("garage.toml");
        let access_key = format!("GK{}", random_hex(12));
        let secret_key = random_hex(32);
        let log = std::fs::File::create(dir.path().join("garage.log")).expect("log file");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config_path)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret_key)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let garage = Garage {
            child,
            _dir: dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            access_key,
            secret_key,
        };
        let probe = garage.remote("");
        for _ in 0..600 {
            if probe.list_published().await.is_ok() {
                return garage;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let log =
            std::fs::read_to_string(garage._dir.path().join("garage.log")).unwrap_or_default();
        panic!(
            "Garage at {} never answered; its log:\n{log}",
            garage.endpoint
        );
    }

    /// The `AWS_*` variables that point a client (encore) at this Garage.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_REGION", "garage"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// `s3://encore/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// A client on the bucket under `prefix`, as encore makes one.
    pub fn remote(&self, prefix: &str) -> Remote {
        let location = BucketLocation {
            bucket: BUCKET.into(),
            prefix: prefix.into(),
        };
        Remote::from_env_with(&location, &self.env()).expect("s3 client")
    }
}
