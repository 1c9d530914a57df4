//! The `proxy` example written with mio, as mio's own examples write a
//! server (`Poll`, a `HashMap` of connections keyed by `Token`, edge
//! triggering, read until `WouldBlock`): the peer the line-count row of the
//! README and the proxy throughput benchmark compare against.
//!
//! Same behaviour as `examples/proxy.rs`: forwards each connection to
//! `--to`, at most 64 KiB buffered per direction (backpressure), an end of
//! file passed on as `shutdown(Write)`, pairs idle for `--idle-timeout`
//! closed, SIGINT/SIGTERM exit 0. mio has no timers: the idle deadlines are
//! scanned each turn, which is how a mio program without a timer crate does it.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use servers::cli;
use servers::relay::Relay;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

const BUF: usize = 64 * 1024;
const SERVER: Token = Token(0);
const SIGNALS: Token = Token(1);

/// TCP proxy on mio: forwards each connection to `--to`.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: SocketAddr,
    /// Where to forward each connection (HOST:PORT)
    #[arg(long, value_parser = cli::parse_socket_addr)]
    to: SocketAddr,
    /// Close a pair after this many seconds without a byte either way
    #[arg(long, default_value = "300", value_parser = cli::parse_seconds)]
    idle_timeout: Duration,
}

/// One end of a forwarded connection.
struct Side {
    stream: TcpStream,
    peer: Token,
    /// When a byte last moved either way (both sides keep it).
    active: Instant,
    /// What was read from this side and not yet written to the peer.
    relay: Relay,
}

/// Handles readiness on one side: pumps both ways (edge-triggered: each
/// side is read until `WouldBlock` or its buffer is full). `Ok(false)`
/// when the pair is done.
fn forward(sides: &mut HashMap<Token, Side>, token: Token) -> io::Result<bool> {
    let Some(peer) = sides.get(&token).map(|side| side.peer) else {
        return Ok(true);
    };
    let [Some(a), Some(b)] = sides.get_disjoint_mut([&token, &peer]) else {
        return Ok(true);
    };
    if a.relay.pump(&mut a.stream, &mut b.stream)? | b.relay.pump(&mut b.stream, &mut a.stream)? {
        (a.active, b.active) = (Instant::now(), Instant::now());
    }
    Ok(!(a.relay.done() && b.relay.done()))
}

/// Deregisters and closes both sides of the pair `token` belongs to.
fn close(poll: &Poll, sides: &mut HashMap<Token, Side>, token: Token) {
    if let Some(mut side) = sides.remove(&token) {
        let _ = poll.registry().deregister(&mut side.stream);
        if let Some(mut peer) = sides.remove(&side.peer) {
            let _ = poll.registry().deregister(&mut peer.stream);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    cli::init_logging();
    if let Err(err) = run(&cli) {
        cli::fail(err);
    }
}

fn run(cli: &Cli) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut server = TcpListener::bind(cli.addr)?;
    poll.registry()
        .register(&mut server, SERVER, Interest::READABLE)?;
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    println!("listening on {} (backend: mio)", server.local_addr()?);
    let mut sides: HashMap<Token, Side> = HashMap::new();
    let mut unique_token = Token(SIGNALS.0 + 1);
    loop {
        // No timers in mio: sleep until the earliest idle deadline.
        let now = Instant::now();
        let timeout = (sides.values().map(|s| s.active + cli.idle_timeout).min())
            .map(|deadline| deadline.saturating_duration_since(now));
        if let Err(err) = poll.poll(&mut events, timeout) {
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for event in events.iter() {
            match event.token() {
                // The pipe only turns readable when SIGINT or SIGTERM arrives.
                SIGNALS => return Ok(()),
                SERVER => loop {
                    let (client, peer) = match server.accept() {
                        Ok(accepted) => accepted,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            log::warn!("mio_proxy: accept: {e}");
                            break;
                        }
                    };
                    let upstream = match TcpStream::connect(cli.to) {
                        Ok(upstream) => upstream,
                        Err(err) => {
                            log::warn!("mio_proxy: dropping {peer}: {err}");
                            continue;
                        }
                    };
                    let (tc, tu) = (unique_token, Token(unique_token.0 + 1));
                    unique_token = Token(unique_token.0 + 2);
                    for (token, stream, peer) in [(tc, client, tu), (tu, upstream, tc)] {
                        let (active, relay) = (Instant::now(), Relay::new(BUF));
                        let mut side = Side {
                            stream,
                            peer,
                            active,
                            relay,
                        };
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        poll.registry()
                            .register(&mut side.stream, token, interest)?;
                        sides.insert(token, side);
                    }
                },
                token => match forward(&mut sides, token) {
                    Ok(true) => {}
                    Ok(false) => close(&poll, &mut sides, token),
                    Err(err) => {
                        log::debug!("mio_proxy: closing {token:?}: {err}");
                        close(&poll, &mut sides, token);
                    }
                },
            }
        }
        let now = Instant::now();
        let idle: Vec<Token> = (sides.iter())
            .filter(|(_, side)| side.active + cli.idle_timeout <= now)
            .map(|(&token, _)| token)
            .collect();
        for token in idle {
            close(&poll, &mut sides, token);
        }
    }
}
