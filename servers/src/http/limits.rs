//! Every bound the web server keeps on what a client can make it do, in
//! one place; each one is a command-line flag of `http_server`, so tests can
//! shrink the timeouts instead of waiting for them.

use std::time::Duration;

/// The web server's limits, and the status each one answers with.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line and headers together, in bytes: past it, `431 Request
    /// Header Fields Too Large` (`414 URI Too Long` when the request line
    /// alone is over it). Default 8 KiB.
    pub max_head: usize,
    /// Most header fields in one request: past it, `431`. Default 100.
    pub max_headers: usize,
    /// Largest request body read and thrown away; larger: `413 Content Too
    /// Large`, then close. Default 1 MiB.
    pub max_body: u64,
    /// A request's head must be complete this long after its first byte
    /// (slowloris): else `408 Request Timeout`, then close. Default 10 s.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after
    /// this long. Default 15 s.
    pub idle_timeout: Duration,
    /// A response the client does not read at all for this long is given up
    /// and the connection closed. Default 60 s.
    pub send_timeout: Duration,
    /// Connections served at once; more are accepted, answered `503
    /// Service Unavailable` and closed. Default 10,000.
    pub max_clients: usize,
    /// After an error that closes the connection, unread request bytes are
    /// read and dropped for at most this long before the close, so the
    /// kernel does not answer them with a reset that destroys the error
    /// response in flight. Default 2 s.
    pub linger: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 8 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(60),
            max_clients: 10_000,
            linger: Duration::from_secs(2),
        }
    }
}
