//! `echo`: every byte a client sends comes back to it, exactly, whatever the
//! size — partial writes queued and flushed when the socket is writable, and
//! a client that sends without reading is paused (backpressure) once
//! `--max-pending` bytes wait for it.
//!
//! ```text
//! cargo run --example echo -- --addr 127.0.0.1:8888
//! python3 -c "import socket; s=socket.create_connection(('127.0.0.1',8888)); s.sendall(b'hi'); print(s.recv(10))"
//! ```
//!
//! The engine is in `servers/src/echo_engine.rs` (shared with the benchmarks);
//! this file is its command line.

use servers::cli;

use clap::Parser;
use reactor::Backend;

use servers::echo_engine::{self, EchoConfig};

/// Echo server: sends every byte back, exactly.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: cli::NetArgs,
    /// Stop reading from a client once this many of its bytes wait to be echoed
    #[arg(long, default_value_t = EchoConfig::default().max_pending, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_pending: usize,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.net.backend.choose(Backend::Epoll);
    let listener = cli::bind_tcp(&cli.net.addr);
    let local = listener.local_addr().unwrap_or_else(|err| cli::fail(err));
    let stop = cli::stop_signals();
    let config = EchoConfig {
        max_pending: cli.max_pending,
        ..EchoConfig::default()
    };
    // Announce only once the listener exists: connections queue in its
    // backlog until the loop starts.
    cli::announce(local, backend);
    if let Err(err) = echo_engine::serve(listener, backend, stop, &config) {
        cli::fail(err);
    }
}
