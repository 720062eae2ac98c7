//! A real nginx (Debian's) for the tests that put one in front of encore: started in a temp
//! prefix on a free loopback port, stopped when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running nginx.
pub struct Nginx {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where its config, logs and temp files live.
    pub prefix: PathBuf,
    child: Child,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Checks that nginx is installed and makes `prefix`'s folders, writable by the workers.
fn prepare(prefix: &Path) {
    let version = Command::new("nginx")
        .arg("-v")
        .output()
        .unwrap_or_else(|e| {
            panic!("nginx is needed (apt-get install nginx; `.ci/run` installs it): {e}")
        });
    assert!(version.status.success(), "nginx -v failed");
    for dir in ["logs", "body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"] {
        let d = prefix.join(dir);
        std::fs::create_dir_all(&d).expect("nginx dir");
        // The workers drop root privileges (to `nobody`) and write their temp files here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
}

impl Nginx {
    /// Starts nginx in `prefix` with `http_block` (the inside of `http { }`, which must
    /// `listen` on `port`) and waits until it accepts connections.
    pub fn start(prefix: &Path, port: u16, http_block: &str) -> Nginx {
        prepare(prefix);
        let p = prefix.display();
        let conf = format!(
            "worker_processes 1;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
               client_body_temp_path {p}/body;\n\
               proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fastcgi;\n\
               uwsgi_temp_path {p}/uwsgi;\n\
               scgi_temp_path {p}/scgi;\n\
               {http_block}\n\
             }}\n"
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        Self::run(prefix, port, &conf_path, &["-g", "daemon off;"])
    }

    /// Starts nginx in `prefix` with the complete configuration in `conf` (one that sets no
    /// `pid`, as `encore edge-config` prints it), its startup errors in `logs/error.log`,
    /// and waits until it accepts connections on `port`.
    pub fn start_file(prefix: &Path, port: u16, conf: &Path) -> Nginx {
        prepare(prefix);
        // One `-g` only: a second replaces the first.
        let globals = format!("daemon off; pid {}/nginx.pid;", prefix.display());
        let error_log = prefix.join("logs/error.log");
        let error_log = error_log.to_str().expect("utf-8 path");
        Self::run(prefix, port, conf, &["-g", &globals, "-e", error_log])
    }

    fn run(prefix: &Path, port: u16, conf: &Path, extra: &[&str]) -> Nginx {
        let child = Command::new("nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(conf)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            url: format!("http://127.0.0.1:{port}"),
            prefix: prefix.to_path_buf(),
            child,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nginx;
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("nginx never listened on {port}: {}", nginx.error_log());
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }

    /// A file under its `logs/` (access logs the config names there).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.prefix.join("logs").join(name)).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
