//! The server's limits (connections, timeouts, sizes) with their defaults, the `[server]`
//! settings' defaults included: one table that the config and the server both read.

use std::time::Duration;

use super::ServerSettings;

/// Server limits, all explicit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Threads serving connections, each a single-threaded event loop of its own.
    pub connection_threads: usize,
    /// Time allowed to read a request's headers (slowloris guard). An HTTP/1.1 connection
    /// waiting for its next head is bounded by it too; an HTTP/2 connection that has made no
    /// request this long after connecting gets a GOAWAY and is closed.
    pub header_read_timeout: Duration,
    /// An HTTP/2 connection with no request in progress this long (after its first) gets a
    /// GOAWAY and is closed, as an idle HTTP/1.1 connection is after `header_read_timeout`
    /// (an HTTP/1.1 connection hyper serves is closed by whichever of the two comes first).
    pub idle_timeout: Duration,
    /// How long an HTTP/2 connection may be silent before the server pings it (`None`: never).
    pub h2_keep_alive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is dropped as dead.
    pub h2_keep_alive_timeout: Duration,
    /// Most headers in a request.
    pub max_headers: usize,
    /// Largest request head (HTTP/1 buffer) and HTTP/2 header list, bytes.
    pub max_header_bytes: usize,
    /// Largest POST body, bytes.
    pub max_body_bytes: usize,
    /// Deadline for producing a response.
    pub request_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 reset-flood guard (CVE-2023-44487 "rapid reset").
    pub h2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 guard against peers provoking local resets (CVE-2024-2758-style floods).
    pub h2_max_local_error_reset_streams: usize,
    /// Time in-flight responses get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    /// The defaults of every limit, `[server]` settings included: the one table of them.
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            connection_threads: super::default_connection_threads(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            h2_keep_alive_interval: Some(Duration::from_secs(20)),
            h2_keep_alive_timeout: Duration::from_secs(20),
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            h2_max_concurrent_streams: 128,
            h2_max_pending_accept_reset_streams: 50,
            h2_max_local_error_reset_streams: 256,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

impl ServerSettings {
    /// The limits these settings set, the others at their defaults.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            connection_threads: self.connection_threads,
            request_timeout: self.request_timeout,
            shutdown_grace: self.shutdown_grace,
            ..Limits::default()
        }
    }
}
