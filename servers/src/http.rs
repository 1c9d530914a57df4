//! `http_server`'s engine: the course's "httpserver v1.0" (a socket that
//! reads a request, serves `index.html` or a file, and answers 404) made a
//! real static-file web server on one [`reactor::Reactor`].
//!
//! | file | its one job |
//! |---|---|
//! | `server.rs` | the loop: accept (503 past the limit), events, timers, stop |
//! | `conn.rs` | one connection: read, answer in order, write, close cleanly |
//! | `parse.rs` | a request head, via `httparse`, and the limits' statuses |
//! | `target.rs` | the request path: decoded, normalised, kept inside the root |
//! | `files.rs` | what a path names (symlinks checked) and the file cache |
//! | `range.rs` | `Range: bytes=…` |
//! | `mime.rs` | `Content-Type` from the extension |
//! | `listing.rs` | a directory's HTML listing |
//! | `respond.rs` | status lines, common headers, error pages |
//! | `batch.rs` | one read's responses, gathered for one `writev` |
//! | `sendfile.rs` | large bodies, straight from the page cache |
//! | `clock.rs` | `Date` and the log time, formatted once a second |
//! | `access_log.rs` | Common Log Format lines, one `write` per turn |
//! | `limits.rs` | every bound, each a command-line flag |
//!
//! Python: the course's `httpserver` — `c, addr = s.accept()`,
//! `data = c.recv(4096)`, `c.send(b"HTTP/1.1 200 OK\r\n\r\n" + body)`.

mod access_log;
mod batch;
mod clock;
mod conn;
mod files;
mod limits;
mod listing;
mod mime;
mod parse;
mod range;
mod respond;
mod sendfile;
mod server;
mod target;

use std::net::TcpListener;
use std::path::PathBuf;

use reactor::{Backend, Signals};

pub use limits::Limits;

/// What the web server serves, and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder served as `/`.
    pub root: PathBuf,
    /// Every bound on clients.
    pub limits: Limits,
    /// No access log.
    pub quiet: bool,
    /// Files up to this size are kept in memory; larger ones go out with
    /// `sendfile` (default 64 KiB).
    pub max_memory_file: u64,
}

impl Config {
    /// Serving `root` with the default limits, logging.
    pub fn new(root: PathBuf) -> Config {
        Config {
            root,
            limits: Limits::default(),
            quiet: false,
            max_memory_file: 64 * 1024,
        }
    }
}

/// Serves `config.root` over HTTP on `listener` until a signal arrives on
/// `stop`; then closes every connection and returns `Ok`.
///
/// # Errors
///
/// The root cannot be opened (as [`reactor::Error::Sys`] naming
/// `realpath`), creating the poller or registering fails, `poll` fails, or
/// the listener breaks.
pub fn serve(
    listener: TcpListener,
    backend: Backend,
    stop: Signals,
    config: &Config,
) -> reactor::Result<()> {
    let files = files::Files::new(&config.root, config.max_memory_file).map_err(|source| {
        reactor::Error::Sys {
            call: "realpath(--root)",
            fd: None,
            source,
        }
    })?;
    let shared = conn::Shared::new(files, config.limits.clone(), config.quiet);
    server::serve(listener, backend, stop, shared)
}
