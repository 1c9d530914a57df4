//! The skeleton every example server shares: what its reactor watches
//! ([`Source`]: the listener, the stop signals, the connections) and the
//! accept loop that survives running out of descriptors ([`accept_all`]).
//!
//! The course writes this part again in every server:
//!
//! ```python
//! fdmap = {s.fileno(): s}
//! for fd, event in p.poll():
//!     if fd == s.fileno():
//!         c, addr = fdmap[fd].accept()
//!         p.register(c, select.POLLIN)
//!         fdmap[c.fileno()] = c
//! ```
//!
//! Here it is written once. Each server keeps its own loop — a `match` on
//! [`Source`] — in its own file, where a learner can read it next to the
//! Python, and calls [`accept_all`] for the listener's events.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use reactor::{Accepted, Acceptor, Backend, Interest, Reactor, Signals, Token};

use crate::cli;
use crate::stdout::StdoutFd;

/// Everything a server's reactor watches: the course's `fdmap` values.
pub enum Source<C, L = TcpListener> {
    /// The listening socket (`s` in the course).
    Listener(L),
    /// SIGINT/SIGTERM, as events.
    Stop(Signals),
    /// One connection, with whatever state the server keeps for it.
    Conn(C),
    /// stdout, watched for writable while printed lines wait for it
    /// (see [`crate::stdout`]).
    Stdout(StdoutFd),
}

impl<C: AsFd, L: AsFd> AsFd for Source<C, L> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Listener(l) => l.as_fd(),
            Source::Stop(s) => s.as_fd(),
            Source::Conn(c) => c.as_fd(),
            Source::Stdout(s) => s.as_fd(),
        }
    }
}

/// A listening socket the skeleton can accept from: TCP or `AF_UNIX`.
pub trait Listen: AsFd {
    /// The connected socket `accept` returns.
    type Stream;
    /// The peer's address.
    type Peer;
    /// `accept(2)` once; the new socket is made non-blocking by the caller.
    fn accept_one(&self) -> io::Result<(Self::Stream, Self::Peer)>;
    /// Makes an accepted socket non-blocking.
    fn nonblocking(stream: &Self::Stream) -> io::Result<()>;
}

impl Listen for TcpListener {
    type Stream = TcpStream;
    type Peer = SocketAddr;
    fn accept_one(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept()
    }
    fn nonblocking(stream: &TcpStream) -> io::Result<()> {
        stream.set_nonblocking(true)
    }
}

impl Listen for UnixListener {
    type Stream = UnixStream;
    type Peer = std::os::unix::net::SocketAddr;
    fn accept_one(&self) -> io::Result<(UnixStream, Self::Peer)> {
        self.accept()
    }
    fn nonblocking(stream: &UnixStream) -> io::Result<()> {
        stream.set_nonblocking(true)
    }
}

/// Binds `addr`, builds a reactor on `backend` holding the listener and the
/// stop signals, and prints the `listening on` line. Returns the reactor
/// and the listener's token. Start-up failures print an error and exit 1.
pub fn start<C: AsFd>(addr: &str, backend: Backend) -> (Reactor<Source<C>>, Token) {
    let listener = cli::bind_tcp(addr);
    let local = listener.local_addr().unwrap_or_else(|err| cli::fail(err));
    let (reactor, listen) = with_listener(listener, backend);
    cli::announce(local, backend);
    (reactor, listen)
}

/// A reactor on `backend` holding `listener` and the stop signals; the
/// listener's token. Failures print an error and exit 1.
pub fn with_listener<C: AsFd, L: AsFd>(
    listener: L,
    backend: Backend,
) -> (Reactor<Source<C, L>>, Token) {
    let mut reactor = Reactor::with_backend(backend).unwrap_or_else(|err| cli::fail(err));
    let listen = reactor
        .insert(Source::Listener(listener), Interest::READABLE)
        .unwrap_or_else(|err| cli::fail(err));
    reactor
        .insert(Source::Stop(cli::stop_signals()), Interest::READABLE)
        .unwrap_or_else(|err| cli::fail(err));
    (reactor, listen)
}

/// A reactor on `backend` holding `listener` (made non-blocking) and the
/// `stop` signals the caller was given (a pre-forked worker's own); the
/// listener's token. For the engines whose failures are returned, not
/// printed.
///
/// # Errors
///
/// Making the listener non-blocking, creating the poller, or registering.
pub fn reactor_for<C: AsFd>(
    listener: TcpListener,
    backend: Backend,
    stop: Signals,
) -> reactor::Result<(Reactor<Source<C>>, Token)> {
    let listen_fd = listener.as_raw_fd();
    listener
        .set_nonblocking(true)
        .map_err(|source| reactor::Error::Sys {
            call: "fcntl(O_NONBLOCK)",
            fd: Some(listen_fd),
            source,
        })?;
    let mut reactor = Reactor::with_backend(backend)?;
    let listen = reactor.insert(Source::Listener(listener), Interest::READABLE)?;
    reactor.insert(Source::Stop(stop), Interest::READABLE)?;
    Ok((reactor, listen))
}

/// Whether a stop signal's event carried a signal (an empty read is a
/// spurious wake-up, not a request to stop).
pub fn stop_requested(signals: &mut Signals) -> bool {
    !signals.read().unwrap_or_default().is_empty()
}

/// Accepts every waiting connection. `open` turns each accepted socket into
/// the server's connection state, or `None` to turn it away; the connection
/// is inserted for `READABLE`. If the reactor refuses it (select and an
/// fd ≥ 1024, say), `refused` gets it back with the reason: that client
/// goes, the others stay.
///
/// The listener is level-triggered, but draining the backlog now saves a
/// wake-up per client. Out of descriptors (`EMFILE`), [`Acceptor`] sheds
/// the waiting connections instead of spinning on them.
///
/// # Errors
///
/// An `accept` failure that is neither "nothing waiting" nor running out
/// of descriptors.
pub fn accept_all<C: AsFd, L: Listen>(
    reactor: &mut Reactor<Source<C, L>>,
    listen: Token,
    acceptor: &mut Acceptor,
    mut open: impl FnMut(L::Stream, L::Peer) -> Option<C>,
    mut refused: impl FnMut(C, reactor::Error),
) -> reactor::Result<()> {
    loop {
        let Some(Source::Listener(listener)) = reactor.get(listen) else {
            return Ok(());
        };
        match acceptor.accept(|| listener.accept_one(), |(s, _)| L::nonblocking(s))? {
            Accepted::Connection((stream, peer)) => {
                let Some(conn) = open(stream, peer) else {
                    continue;
                };
                if let Err(err) = reactor.insert(Source::Conn(conn), Interest::READABLE)
                    && let Source::Conn(conn) = err.object
                {
                    refused(conn, err.error);
                }
            }
            Accepted::Shed => {}
            Accepted::Drained => return Ok(()),
        }
    }
}
