//! `proxy`: forwards every TCP connection it accepts to `--to HOST:PORT`,
//! bytes both ways, with backpressure, half-close and an idle timeout.
//!
//! ```text
//! python3 -m http.server 8000 --bind 127.0.0.1 &
//! cargo run --example proxy -- --addr 127.0.0.1:8888 --to 127.0.0.1:8000
//! curl -s http://127.0.0.1:8888/ | head
//! ```
//!
//! Each connection is a pair of [`Side`]s in the reactor, each holding the
//! bytes read from it that its peer has not taken yet (at most [`BUF`]).
//! - **Backpressure**: a side whose buffer is full is not read; a side with
//!   nothing to read or write is paused, so a stalled reader stalls its
//!   writer through TCP instead of growing memory.
//! - **Half-close**: a side's end of file is passed on as `shutdown(Write)`
//!   once its buffer is drained; the pair closes when both ways are done.
//! - **Idle timeout**: one timer per pair, owned by the client's token
//!   (removing the side cancels it), pushed back whenever a byte moves.
//!
//! Python: `asyncio.start_server` with two `loop.sock_recv`/`sock_sendall` pumps.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use clap::Parser;
use reactor::{Accepted, Acceptor, Backend, Events, Interest, Reactor, TimerId, Token};
use servers::relay::Relay;
use servers::{cli, net, server};

/// Bytes read from one side and not yet written to the other, at most.
const BUF: usize = 64 * 1024;

/// TCP proxy: forwards each connection to `--to`.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: cli::NetArgs,
    /// Where to forward each connection (HOST:PORT)
    #[arg(long, value_parser = cli::parse_socket_addr)]
    to: SocketAddr,
    /// Close a pair after this many seconds without a byte either way
    #[arg(long, default_value = "300", value_parser = cli::parse_seconds)]
    idle_timeout: Duration,
}

/// What the reactor watches: the listener, the stop signals, the sides.
type Source = server::Source<Side>;

/// One end of a forwarded connection.
struct Side {
    stream: TcpStream,
    peer: Token,
    /// The pair's idle timer (owned by the client side's token).
    idle: TimerId,
    /// What was read from this side and not yet written to the peer.
    relay: Relay,
}

impl AsFd for Side {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Side {
    /// What to watch this side for, `None` for nothing (paused).
    fn want(&self, peer: &Side) -> Option<Interest> {
        Interest::from_flags(self.relay.wants_read(), peer.relay.wants_write())
    }
}

/// Handles readiness on one side of a pair: pumps both ways, re-arms the
/// idle timer if a byte moved, sets both sides' interest, closes when done.
fn forward(reactor: &mut Reactor<Source>, [ta, tb]: [Token; 2], idle: Duration) -> io::Result<()> {
    let Some([Source::Conn(a), Source::Conn(b)]) = reactor.get_disjoint_mut([ta, tb]) else {
        return Ok(());
    };
    let moved =
        a.relay.pump(&mut a.stream, &mut b.stream)? | b.relay.pump(&mut b.stream, &mut a.stream)?;
    if a.relay.done() && b.relay.done() {
        return Err(ErrorKind::UnexpectedEof.into()); // both ways done: close
    }
    let (want_a, want_b, timer) = (a.want(b), b.want(a), a.idle);
    // A false reset means the timer was taken this turn: the pair is closing.
    let _ = moved && reactor.reset_timer(timer, Instant::now() + idle);
    reactor.watch(ta, want_a)?; // None pauses; no system call if unchanged
    Ok(reactor.watch(tb, want_b)?)
}

/// Joins a new client to a new connection to `--to`: two sides that know
/// each other's token from the start, and one idle timer owned by the client.
fn open(reactor: &mut Reactor<Source>, client: TcpStream, cli: &Cli) -> io::Result<()> {
    let upstream = net::connect(cli.to)?; // non-blocking: writable once connected
    let (tc, tu) = (reactor.reserve(), reactor.reserve());
    let idle = reactor.timer_after(cli.idle_timeout, tc);
    let side = |stream, peer| {
        Source::Conn(Side {
            stream,
            peer,
            idle,
            relay: Relay::new(BUF),
        })
    };
    let result = (reactor.insert_at(tc, side(client, tu), Interest::READABLE))
        .and_then(|()| reactor.insert_at(tu, side(upstream, tc), Interest::READABLE));
    if result.is_err() {
        let _ = (reactor.remove(tc), reactor.remove(tu)); // the reservations and the timer
    }
    Ok(result?)
}

/// Closes both sides of the pair `token` belongs to (and so its timer).
fn close(reactor: &mut Reactor<Source>, token: Token) {
    if let Ok(Source::Conn(side)) = reactor.remove(token) {
        let _ = reactor.remove(side.peer);
    }
}

fn main() {
    cli::init_logging();
    run(&Cli::parse()).unwrap_or_else(|err| cli::fail(err));
}

fn run(cli: &Cli) -> io::Result<()> {
    let backend = cli.net.backend.choose(Backend::Epoll);
    let (mut reactor, listen) = server::start(&cli.net.addr, backend);
    let (mut events, mut acceptor) = (Events::with_capacity(1024), Acceptor::new());
    loop {
        reactor.poll(&mut events, None)?;
        for event in &events {
            match reactor.get_mut(event.token()) {
                // Closed earlier in this batch; stdout is never watched here.
                None | Some(Source::Stdout(_)) => {}
                // The pipe only turns readable when SIGINT or SIGTERM arrives.
                Some(Source::Stop(_)) => return Ok(()),
                Some(Source::Listener(_)) => {
                    while let Some(Source::Listener(l)) = reactor.get(listen) {
                        match acceptor.accept(|| l.accept(), |(s, _)| s.set_nonblocking(true))? {
                            Accepted::Connection((client, peer)) => {
                                if let Err(err) = open(&mut reactor, client, cli) {
                                    log::warn!("proxy: dropping {peer}: {err}");
                                }
                            }
                            Accepted::Shed => {}
                            Accepted::Drained => break,
                        }
                    }
                }
                Some(Source::Conn(side)) => {
                    let pair = [event.token(), side.peer];
                    if let Err(err) = forward(&mut reactor, pair, cli.idle_timeout) {
                        log::debug!("proxy: closing {:?}: {err}", event.token());
                        close(&mut reactor, event.token());
                    }
                }
            }
        }
        while let Some((_, token)) = reactor.next_expired() {
            log::debug!("proxy: {token:?} idle for {:?}, closing", cli.idle_timeout);
            close(&mut reactor, token);
        }
    }
}
