//! The echo server's engine: every byte a client sends comes back to it,
//! exactly, whatever the size, on one [`Reactor`](reactor::Reactor) of any backend.
//!
//! It stands alone (only `std`, `libc`, `log` and `reactor`), so the `echo`
//! example and the benchmarks can both include it. The rules it keeps:
//!
//! - **Fast path.** A client with nothing queued is read into one buffer
//!   shared by all connections, and what was read is written straight back:
//!   one `recv(2)` and one `send(2)`, made directly (no `std::io` layers),
//!   with no allocation, no `epoll_ctl` and no bookkeeping when `send` takes
//!   it all. Reading stops at `WouldBlock` or at a short read (the socket is
//!   then very likely drained; level triggering reports it again if not).
//! - **Partial writes** leave their tail in the connection's
//!   [`WriteQueue`], flushed when the socket is writable. Order is kept:
//!   while the queue is not empty, new data goes behind it (one `writev`
//!   carries both).
//! - **Backpressure, not buffering.** When a client's unsent backlog reaches
//!   [`EchoConfig::max_pending`] (the queue's high-water mark), the engine
//!   stops *reading* from it (drops `READABLE` interest) until the backlog
//!   drains, so a client that sends without reading is slowed down by TCP,
//!   and the server's memory per connection stays bounded by `max_pending`
//!   (plus one read when the backlog was empty).
//! - **No idle spin**: `WRITABLE` interest only while the queue holds
//!   something ([`WriteQueue::interest`]); the reactor is told only when
//!   the interest actually changes. Interest is worked out again only on
//!   the slow path (something queued, a partial write, end of file): a
//!   client watched for `READABLE` alone has nothing queued, so an echo
//!   that went out whole leaves it as it was.
//! - **Half-close**: after the client's end of file, what is still queued is
//!   sent, then the connection is closed.
//! - **Out of descriptors**: [`Acceptor`] refuses connections without
//!   spinning (docs/reliability.md, "Out of descriptors"); the others keep being served.
//! - **Stop**: a signal on `stop` closes every connection and returns `Ok`.
//!
//! Python: the course's `epoll_server.py` loop with `c.send(data)` in place
//! of `c.send('收到了'.encode())`, and a queue for what `send` did not take.

use std::io::{self, ErrorKind};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use reactor::{Acceptor, Backend, Events, Interest, Signals, Token, WriteQueue};

use crate::cli;
use crate::server;

/// Limits of the echo engine.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Stop reading from a client once this many of its bytes wait to be
    /// echoed (default 256 KiB).
    pub max_pending: usize,
    /// Size of the one read buffer shared by every connection (default 64 KiB).
    pub read_chunk: usize,
}

impl Default for EchoConfig {
    fn default() -> EchoConfig {
        EchoConfig {
            max_pending: 256 * 1024,
            read_chunk: 64 * 1024,
        }
    }
}

/// Everything the reactor watches: the listener, the stop signals, the clients.
type Source = server::Source<Conn>;

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// One client and the bytes it has not been sent back yet.
struct Conn {
    stream: TcpStream,
    /// Unsent echo, in order; full at `max_pending` bytes.
    out: WriteQueue,
    /// The client shut down its writing half: send what is queued, then close.
    eof: bool,
    /// What the reactor watches it for now. `READABLE` alone means the
    /// fast path applies: nothing is queued and the client has not
    /// finished (a backlog adds `WRITABLE`, end of file drops `READABLE`).
    watching: Interest,
}

/// What a client's event leaves to do.
enum Next {
    /// Nothing: the reactor watches it for what it needs.
    Same,
    /// Watch it for this from now on (it may be what it is watched for already).
    Watch(Interest),
    /// Close it.
    Close,
}

/// Serves echo on `listener` (non-blocking or not: it is made non-blocking)
/// until a signal arrives on `stop`; then closes every connection and
/// returns `Ok`.
///
/// # Errors
///
/// Creating the poller or registering the listener fails, `poll` fails, or
/// `accept` fails in a way that means the listener itself is broken.
///
/// Python: `while True: for fd, ev in p.poll(): ... c.send(c.recv(65536))`
pub fn serve(
    listener: TcpListener,
    backend: Backend,
    stop: Signals,
    config: &EchoConfig,
) -> reactor::Result<()> {
    let max_pending = config.max_pending.max(1);
    let mut buf = vec![0u8; config.read_chunk.max(1)];
    let (mut reactor, listen) = server::reactor_for(listener, backend, stop)?;
    let mut acceptor = Acceptor::new();
    let mut events = Events::with_capacity(1024);
    loop {
        reactor.poll(&mut events, None)?;
        for event in &events {
            let token = event.token();
            match reactor.get_mut(token) {
                // Stale: closed earlier in this batch.
                None => {}
                Some(Source::Conn(conn)) => {
                    // Hang-up and error answer `is_readable` too: the read
                    // that follows reports them.
                    let readable = event.is_readable();
                    let next = if readable && conn.watching == Interest::READABLE {
                        echo_now(conn, &mut buf)
                    } else {
                        serve_conn(conn, &mut buf, readable, event.is_writable())
                    };
                    match next {
                        Next::Same => {}
                        Next::Watch(interest) if interest == conn.watching => {}
                        Next::Watch(interest) => {
                            conn.watching = interest;
                            if let Err(err) = reactor.modify(token, interest) {
                                log::debug!("echo: modify failed, closing: {err}");
                                let _ = reactor.remove(token);
                            }
                        }
                        Next::Close => drop(reactor.remove(token)),
                    }
                }
                Some(Source::Listener(_)) => {
                    server::accept_all(
                        &mut reactor,
                        listen,
                        &mut acceptor,
                        |stream, _| open(stream, max_pending),
                        |_, err| {
                            // select and an fd ≥ 1024, say: this client goes, the others stay.
                            cli::warn_refused("an echo client", err);
                        },
                    )?;
                }
                // Echo prints nothing per message: stdout is never watched.
                Some(Source::Stdout(_)) => {}
                Some(Source::Stop(signals)) => {
                    // An empty read is a spurious wake-up, not a request to stop.
                    if !server::stop_requested(signals) {
                        continue;
                    }
                    let tokens: Vec<Token> = reactor.iter().map(|(t, _)| t).collect();
                    for token in tokens {
                        drop(reactor.remove(token));
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// The fast path, for a readable client with nothing queued and not at end
/// of file (watched for `READABLE` alone): read, and send it all straight
/// back from the read buffer. Only a `send` that takes less than it was
/// given, or the end of the stream, leaves anything to do.
#[inline]
fn echo_now(conn: &mut Conn, buf: &mut [u8]) -> Next {
    let fd = conn.stream.as_raw_fd();
    loop {
        let n = match recv(fd, buf) {
            // End of file with nothing queued: everything was echoed.
            Ok(0) => return Next::Close,
            Ok(n) => n,
            // A spurious wake-up (another reader, or select's view of a
            // reset): nothing changed.
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Same,
            Err(_) => return Next::Close,
        };
        let sent = match send(fd, &buf[..n]) {
            Ok(sent) => sent,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            // ECONNRESET, EPIPE: the client is gone.
            Err(_) => return Next::Close,
        };
        if sent < n {
            // The send buffer is full: keep the rest, watch for writable
            // (and stop reading if the rest alone reaches the bound).
            conn.out.push(&buf[sent..n]);
            return Next::Watch(conn.out.interest());
        }
        if n < buf.len() {
            return Next::Same;
        }
    }
}

/// The slow path: a client with a backlog, paused by backpressure, or
/// past its end of file. Flushes on writable, reads (within the bound) on
/// readable, and says what to watch for next.
fn serve_conn(conn: &mut Conn, buf: &mut [u8], readable: bool, writable: bool) -> Next {
    if writable && !conn.out.is_empty() && conn.out.write_to(&mut conn.stream).is_err() {
        return Next::Close;
    }
    // Read only while watching for it: a hang-up reported while paused
    // must not bypass the backpressure bound.
    if readable && conn.watching.is_readable() && !conn.eof {
        let fd = conn.stream.as_raw_fd();
        loop {
            // With a backlog, read no more than fits under the bound.
            let room = if conn.out.is_empty() {
                buf.len()
            } else {
                buf.len().min(conn.out.room())
            };
            if room == 0 {
                break;
            }
            match recv(fd, &mut buf[..room]) {
                Ok(0) => {
                    conn.eof = true;
                    break;
                }
                Ok(n) => {
                    // Straight back when nothing waits; behind the backlog
                    // (one writev for both) when something does.
                    if conn.out.send(&mut conn.stream, &buf[..n]).is_err() {
                        return Next::Close;
                    }
                    if n < room {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Next::Close,
            }
        }
    }
    match (conn.eof, conn.out.is_empty()) {
        // Everything echoed and the client is done: close.
        (true, true) => Next::Close,
        // Done sending to us; finish sending to it.
        (true, false) => Next::Watch(Interest::WRITABLE),
        // Reading unless full (backpressure); writable only while
        // something waits.
        (false, _) => Next::Watch(conn.out.interest()),
    }
}

/// `recv(2)` into `buf`: the bytes read, 0 at end of file. `EINTR` is
/// retried; `WouldBlock` is an error of that kind, for the caller to treat
/// as "nothing yet".
///
/// Called directly rather than through `Read for TcpStream`: this is the
/// one call per message, and `std`'s layers around it cost about as much
/// as the libc wrapper itself.
#[inline]
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    retrying(|| {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
        // whole call and nothing else uses it meanwhile; a bad `fd` makes
        // the kernel fail with EBADF, it cannot corrupt memory.
        unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) }
    })
}

/// `send(2)` of `data`: the bytes the kernel took (possibly fewer).
/// `EINTR` is retried; `MSG_NOSIGNAL` turns a closed peer into `EPIPE`
/// instead of a `SIGPIPE`, whatever the program did with that signal.
#[inline]
fn send(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    retrying(|| {
        // SAFETY: `data` is valid for reads of `data.len()` bytes for the
        // whole call; a bad `fd` makes the kernel fail with EBADF.
        unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) }
    })
}

/// Makes a `recv`/`send`-style call until it is not interrupted: its count,
/// or the error `errno` names.
#[inline]
fn retrying(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        // A non-negative count fits in usize.
        if let Ok(n) = usize::try_from(call()) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.kind() != ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A new client's state. Echo answers at once; Nagle would only delay the
/// reply.
fn open(stream: TcpStream, max_pending: usize) -> Option<Conn> {
    let _ = stream.set_nodelay(true);
    Some(Conn {
        stream,
        out: WriteQueue::with_high_water(max_pending),
        eof: false,
        watching: Interest::READABLE,
    })
}
