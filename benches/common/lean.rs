//! A lean HTTP/1.1 client for closed-loop benches: keep-alive connections from a pool, the
//! request written as prepared bytes, the answer read by its `Content-Length`. reqwest spent
//! more than half of a 2-core machine's CPU driving the launch bench's clients, so the
//! server's own ceiling was hidden behind the client's.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Keep-alive connections to one server.
pub struct Lean {
    addr: SocketAddr,
    idle: tokio::sync::Mutex<Vec<BufReader<TcpStream>>>,
}

impl Lean {
    /// A client of the server at `url` (`http://host:port`).
    pub fn new(url: &str) -> Lean {
        let addr = url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .expect("http://ip:port");
        Lean {
            addr,
            idle: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// Opens `n` keep-alive connections before a timed phase, so that no operation waits for
    /// a connection (a SYN beyond the listen backlog is retried only after a second).
    pub async fn connect(&self, n: usize) -> Result<(), String> {
        let mut opened = Vec::with_capacity(n);
        for _ in 0..n {
            let s = TcpStream::connect(self.addr)
                .await
                .map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            opened.push(BufReader::new(s));
        }
        self.idle.lock().await.extend(opened);
        Ok(())
    }

    /// Sends `request` (a whole HTTP/1.1 request) and returns the answer's status and body.
    pub async fn send(&self, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let pooled = self.idle.lock().await.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                BufReader::new(s)
            }
        };
        conn.get_mut()
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        conn.read_line(&mut line).await.map_err(|e| e.to_string())?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            conn.read_line(&mut line).await.map_err(|e| e.to_string())?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("length {line:?}"))?;
            }
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        self.idle.lock().await.push(conn);
        Ok((status, body))
    }
}

/// A request's bytes: `method path`, a bearer token, and a JSON body if any.
pub fn request(method: &str, path: &str, token: Option<&str>, json: Option<&str>) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = json.unwrap_or("");
    if json.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}
