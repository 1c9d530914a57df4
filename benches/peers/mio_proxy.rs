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
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use servers::cli;
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
    /// Read from this side, not yet written to the peer: `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// This side sent its end of file...
    eof: bool,
    /// ...and it was passed on to the peer.
    shut: bool,
}

impl Side {
    fn new(stream: TcpStream, peer: Token) -> Side {
        let buf = vec![0; BUF].into_boxed_slice();
        let (active, start, end, eof, shut) = (Instant::now(), 0, 0, false, false);
        Side {
            stream,
            peer,
            active,
            buf,
            start,
            end,
            eof,
            shut,
        }
    }
}

/// Moves what it can from `from` to `to`; returns whether a byte moved.
fn pump(from: &mut Side, to: &mut Side) -> io::Result<bool> {
    let mut moved = false;
    loop {
        let mut progress = false;
        if from.start == from.end {
            (from.start, from.end) = (0, 0);
        }
        if !from.eof && from.end < BUF {
            match from.stream.read(&mut from.buf[from.end..]) {
                Ok(0) => from.eof = true,
                Ok(n) => (from.end, progress) = (from.end + n, true),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if from.start < from.end {
            match to.stream.write(&from.buf[from.start..from.end]) {
                Ok(n) => (from.start, progress) = (from.start + n, true),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        moved |= progress;
        if !progress {
            break;
        }
    }
    // Pass the end of file on once drained (not while `to` is connecting:
    // shutdown would abort the connect).
    if from.eof && from.start == from.end && !from.shut && to.stream.peer_addr().is_ok() {
        to.stream.shutdown(Shutdown::Write)?;
        from.shut = true;
    }
    Ok(moved)
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
    if pump(a, b)? | pump(b, a)? {
        (a.active, b.active) = (Instant::now(), Instant::now());
    }
    Ok(!(a.shut && b.shut))
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
                        let mut side = Side::new(stream, peer);
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
