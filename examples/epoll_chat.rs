//! The course's group chat room (群聊聊天室) as a real server.
//!
//! ```text
//! cargo run --example epoll_chat                      # 127.0.0.1:8888, epoll
//! cargo run --example chat_client -- --addr 127.0.0.1:8888
//! nc -N 127.0.0.1 8888                                 # or any line-based client
//! ```
//!
//! Type a name, then lines; lines typed on the server's own terminal go to
//! everyone as `[admin] …`. The protocol, a transcript and the design are in
//! `docs/chat.md`; the server itself is `servers/src/chat/`.

use std::time::Duration;

use clap::Parser;
use reactor::Backend;
use servers::chat::{self, Config};
use servers::cli;

/// The course's group chat room: log in with a name, chat with everyone.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: cli::NetArgs,
    /// Longest line a client may send, in bytes; longer ones get `! line too long`
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    max_line: u32,
    /// Seconds a new connection has to choose a valid name (fractions allowed: 0.5)
    #[arg(long, default_value = "60", value_parser = cli::parse_seconds)]
    login_timeout: Duration,
    /// Bytes that may wait for one client before it is dropped as too slow
    #[arg(long, default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1..=1 << 34))]
    max_queue: u64,
    /// Most connections at once (logged in or not); more get `! room full`
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.net.backend.choose(Backend::Epoll);
    let config = Config {
        max_line: cli.max_line as usize,
        login_timeout: cli.login_timeout,
        max_queue: usize::try_from(cli.max_queue).unwrap_or(usize::MAX),
        max_clients: cli.max_clients as usize,
    };
    chat::serve(&cli.net, backend, config);
}
