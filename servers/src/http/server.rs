//! The web server's loop: one [`Reactor`] holding the listener, the stop
//! signals and every connection, of any backend.
//!
//! Each turn: `poll`; note the time once (every deadline and `Date`
//! header of the turn uses it); hand each ready connection to
//! [`Conn::ready`]; run the timers that fired; write the turn's access-log
//! lines with one `write`.
//!
//! **Timers, lazily.** Every connection has a deadline (head late, idle,
//! not reading its response, lingering) that moves with almost every
//! request. Rather than move a timer per request, each connection keeps
//! one timer; when it fires, the connection's *current* deadline is
//! compared with the time, and the timer is set again if the deadline
//! moved. A timer is moved early only when a deadline comes closer (an
//! idle connection starting a request: 15 s → 10 s).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use reactor::{Accepted, Acceptor, Backend, Events, Interest, Reactor, Signals, Token};

use super::conn::{Conn, Expired, Shared};
use super::respond::{self, Status};

/// Everything the reactor watches: the listener, the stop signals, the
/// clients (the skeleton every example server shares).
type Source = crate::server::Source<Conn>;

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// Serves HTTP on `listener` until a signal arrives on `stop`, then closes
/// every connection and returns `Ok`.
///
/// # Errors
///
/// Creating the poller or registering the listener fails, `poll` fails, or
/// `accept` fails in a way that means the listener itself is broken.
pub fn serve(
    listener: TcpListener,
    backend: Backend,
    stop: Signals,
    mut shared: Shared,
) -> reactor::Result<()> {
    let (mut reactor, listen) = crate::server::reactor_for(listener, backend, stop)?;
    let mut acceptor = Acceptor::new();
    let mut events = Events::with_capacity(1024);
    let mut clients = 0usize;
    loop {
        shared.log.flush();
        reactor.poll(&mut events, None)?;
        shared.now = Instant::now();
        shared.clock.tick();
        for event in &events {
            let token = event.token();
            match reactor.get_mut(token) {
                // Stale: closed earlier in this batch.
                None => {}
                // A client: read, answer, write.
                Some(Source::Conn(conn)) => {
                    let readable = event.is_readable() || event.is_error() || event.is_hangup();
                    let next = conn.ready(&mut shared, readable);
                    settle(&mut reactor, token, next, &shared, &mut clients);
                }
                // New connections.
                Some(Source::Listener(_)) => {
                    accept_all(
                        &mut reactor,
                        listen,
                        &mut acceptor,
                        &mut shared,
                        &mut clients,
                    )?;
                }
                // The HTTP server logs through its own buffered log, not
                // the stdout queue: stdout is never watched here.
                Some(Source::Stdout(_)) => {}
                // SIGINT/SIGTERM: close everything and return.
                Some(Source::Stop(signals)) => {
                    // An empty read is a spurious wake-up, not a request to stop.
                    if !crate::server::stop_requested(signals) {
                        continue;
                    }
                    shared.log.flush();
                    let tokens: Vec<Token> = reactor.iter().map(|(t, _)| t).collect();
                    for token in tokens {
                        drop(reactor.remove(token));
                    }
                    return Ok(());
                }
            }
        }
        while let Some((id, token)) = reactor.next_expired() {
            let Some(Source::Conn(conn)) = reactor.get_mut(token) else {
                continue;
            };
            if conn.timer.is_some_and(|(armed, _)| armed != id) {
                continue;
            }
            conn.timer = None;
            let expired = conn.expired(&mut shared);
            if expired != Expired::NotYet {
                log::trace!(
                    "fd={}: deadline passed: {expired:?}",
                    conn.stream.as_raw_fd()
                );
            }
            let next = match expired {
                Expired::NotYet => Some(conn.watching),
                Expired::Head => conn.time_out_head(&mut shared),
                Expired::Close => None,
            };
            settle(&mut reactor, token, next, &shared, &mut clients);
        }
    }
}

/// Applies what a connection asked for: new interest, a timer for its
/// deadline, or closing it.
fn settle(
    reactor: &mut Reactor<Source>,
    token: Token,
    next: Option<Interest>,
    shared: &Shared,
    clients: &mut usize,
) {
    let Some(Source::Conn(conn)) = reactor.get_mut(token) else {
        return;
    };
    let Some(interest) = next else {
        log::trace!("fd={}: done, closing", conn.stream.as_raw_fd());
        close(reactor, token, clients);
        return;
    };
    let deadline = conn.deadline(&shared.limits);
    let rearm = match conn.timer {
        None => true,
        // Set for later than now needed: move it closer.
        Some((_, at)) => at > deadline,
    };
    let old_timer = conn.timer;
    let changed = interest != conn.watching;
    conn.watching = interest;
    if rearm {
        if let Some((id, _)) = old_timer {
            reactor.cancel_timer(id);
        }
        let id = reactor.timer_at(deadline, token);
        if let Some(Source::Conn(conn)) = reactor.get_mut(token) {
            conn.timer = Some((id, deadline));
        }
    }
    if changed && let Err(err) = reactor.modify(token, interest) {
        log::debug!("http: modify failed, closing: {err}");
        close(reactor, token, clients);
    }
}

/// Closes a connection and cancels its timer.
fn close(reactor: &mut Reactor<Source>, token: Token, clients: &mut usize) {
    if let Ok(Source::Conn(conn)) = reactor.remove(token) {
        if let Some((id, _)) = conn.timer {
            reactor.cancel_timer(id);
        }
        *clients -= 1;
    }
}

/// Accepts until the backlog is empty; past `max_clients`, answers `503`
/// and closes at once. (Not the shared `server::accept_all`: here each
/// connection is counted against `--max-clients` and gets its deadline's
/// timer the moment it is inserted, which needs its token.)
fn accept_all(
    reactor: &mut Reactor<Source>,
    listen: Token,
    acceptor: &mut Acceptor,
    shared: &mut Shared,
    clients: &mut usize,
) -> reactor::Result<()> {
    loop {
        let Some(Source::Listener(listener)) = reactor.get(listen) else {
            return Ok(());
        };
        match acceptor.accept(|| listener.accept(), |(s, _)| s.set_nonblocking(true))? {
            Accepted::Connection((stream, peer)) => {
                if *clients >= shared.limits.max_clients {
                    refuse(stream, shared);
                    continue;
                }
                // Responses go out whole, in one write; Nagle could only
                // hold the last segment of one back.
                let _ = stream.set_nodelay(true);
                log::trace!("accept → fd={} from {peer}", stream.as_raw_fd());
                let conn = Conn::new(stream, peer.ip(), shared.now);
                match reactor.insert(Source::Conn(conn), Interest::READABLE) {
                    Ok(token) => {
                        *clients += 1;
                        settle(reactor, token, Some(Interest::READABLE), shared, clients);
                    }
                    // select and an fd ≥ 1024, say: this client goes, the others stay.
                    Err(refused) => log::warn!("http: refusing {peer}: {}", refused.error),
                }
            }
            Accepted::Shed => {}
            Accepted::Drained => return Ok(()),
        }
    }
}

/// One client too many: `503`, written once without waiting, then closed.
/// What it already sent is read first, so the close does not turn into a
/// reset that destroys the answer.
fn refuse(mut stream: TcpStream, shared: &mut Shared) {
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        if !matches!(stream.read(&mut scratch), Ok(n) if n > 0) {
            break;
        }
    }
    let mut response = Vec::new();
    let n = respond::error(
        &mut response,
        Status::UNAVAILABLE,
        &shared.clock,
        "Retry-After: 1\r\n",
        false,
        false,
    );
    match stream.write(&response) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => log::debug!("http: 503 not delivered: {e}"),
    }
    if let Ok(peer) = stream.peer_addr() {
        shared.log.record(
            peer.ip(),
            &shared.clock,
            None,
            Status::UNAVAILABLE.code,
            n as u64,
        );
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
