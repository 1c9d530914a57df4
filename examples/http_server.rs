//! `http_server`: the course's "httpserver v1.0" made real — a static-file
//! web server on the reactor, every connection non-blocking in one loop
//! (or one loop per worker process with `--workers N`).
//!
//! ```text
//! cargo run --example http_server                      # serves ./static on 127.0.0.1:8000
//! curl -v http://127.0.0.1:8000/                       # the shipped page
//! curl -v http://127.0.0.1:8000/hello.txt -H 'Range: bytes=0-1'
//! curl --path-as-is http://127.0.0.1:8000/../Cargo.toml   # 404: nothing outside --root
//! RUST_LOG=reactor=trace cargo run --example http_server   # every system call
//! ```
//!
//! The engine is `servers::http` (one job per file); this file is only the
//! command line. Python: the course's `httpserver.py`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use reactor::{Backend, ChildMode};
use servers::cli;
use servers::http::{self, Config, Limits};
use servers::prefork::Prefork;

/// A static-file web server: GET and HEAD, keep-alive and pipelining,
/// Range, If-Modified-Since, sendfile for large files.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8000", value_parser = cli::parse_addr)]
    addr: String,
    #[command(flatten)]
    backend: cli::BackendArg,
    /// The folder served as /
    #[arg(long, default_value = "./static")]
    root: PathBuf,
    /// Worker processes sharing the listener (more than 1 forks them)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: u16,
    /// With --workers: give each worker its own SO_REUSEPORT listener
    #[arg(long)]
    reuseport: bool,
    /// No access log on stdout
    #[arg(long)]
    quiet: bool,
    /// Connections served at once; more are answered 503 and closed
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// Request line and headers together, in bytes (431; 414 for the line alone)
    #[arg(long, default_value_t = 8 * 1024)]
    max_head_bytes: usize,
    /// Most header fields in one request (431)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_headers: u16,
    /// Largest request body read and dropped, in bytes (larger: 413)
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: u64,
    /// Seconds for a request's headers to arrive once begun (408)
    #[arg(long, default_value = "10", value_parser = seconds)]
    header_timeout: Duration,
    /// Seconds a keep-alive connection may wait for its next request
    #[arg(long, default_value = "15", value_parser = seconds)]
    idle_timeout: Duration,
    /// Seconds a client may take no bytes of its response before it is dropped
    #[arg(long, default_value = "60", value_parser = seconds)]
    send_timeout: Duration,
    /// Seconds of reading and dropping input after an error, before closing
    #[arg(long, default_value = "2", value_parser = seconds)]
    linger: Duration,
    /// Files up to this many bytes are served from memory; larger ones with sendfile
    #[arg(long, default_value_t = 64 * 1024)]
    max_memory_file: u64,
}

/// A number of seconds (fractions allowed: `0.25`).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text:?} is not a usable number of seconds"))
}

fn main() {
    let args: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = args.backend.choose(Backend::Epoll);
    if !args.root.is_dir() {
        cli::fail(format_args!(
            "--root {}: not a directory",
            args.root.display()
        ));
    }
    let config = Config {
        root: args.root.clone(),
        limits: Limits {
            max_head: args.max_head_bytes,
            max_headers: usize::from(args.max_headers),
            max_body: args.max_body,
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            send_timeout: args.send_timeout,
            max_clients: args.max_clients,
            linger: args.linger,
        },
        quiet: args.quiet,
        max_memory_file: args.max_memory_file,
    };
    if args.workers > 1 || args.reuseport {
        // The supervisor binds, prints the `listening on` line, and runs
        // this same loop in each worker it forks.
        let prefork = Prefork {
            addr: args.addr.clone(),
            backend,
            workers: usize::from(args.workers),
            mode: ChildMode::detect(),
            reuseport: args.reuseport,
        };
        prefork.run(move |listener, backend, stop| http::serve(listener, backend, stop, &config));
    }
    let listener = cli::bind_tcp(&args.addr);
    let local = listener.local_addr().unwrap_or_else(|err| cli::fail(err));
    let stop = cli::stop_signals();
    cli::announce(local, backend);
    if let Err(err) = http::serve(listener, backend, stop, &config) {
        cli::fail(err);
    }
}
