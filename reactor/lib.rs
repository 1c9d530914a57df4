//! `reactor`: the three classic Linux I/O multiplexers — `select(2)`,
//! `poll(2)` and `epoll(7)` — and the newest, `io_uring(7)` in poll mode,
//! behind one [`Poller`] trait, with a generation-checked fd-to-object map,
//! [`Reactor`], on top.
//!
//! It grows out of a Python course on network I/O: every type here has a
//! counterpart in the course's code, and every pitfall of that code (sending
//! on a socket just closed, `select` on fd 1024, stale events for reused fd
//! numbers) is fixed and explained where it is fixed. Turn on the trace log
//! (`RUST_LOG=reactor=trace` in the examples) to watch every system call.
//!
//! | Python course | this crate |
//! |---|---|
//! | `select.select(r, w, x, t)` | [`SelectPoller`] |
//! | `select.poll()` | [`PollPoller`] |
//! | `select.epoll()` | [`EpollPoller`] |
//! | none (Python has no io_uring) | [`UringPoller`] |
//! | `POLLIN`, `POLLOUT`, `POLLPRI` | [`Interest`] |
//! | `EPOLLET`, `EPOLLONESHOT` | [`Trigger`] |
//! | `p.register` / `p.modify` / `p.unregister` / `p.poll` | [`Poller`]'s methods of the same names |
//! | `[(fd, mask), …]` from `p.poll()` | [`Events`] of [`Event`] |
//! | `fdmap = {sock.fileno(): sock}` | [`Reactor`] and its [`Token`]s |
//! | `sock.settimeout(t)`, `select(…, timeout)` | [`Reactor::timer_after`], [`Timers`] |
//! | `signal.signal(SIGINT, handler)` | [`Signals`] (a self-pipe: signals arrive as events) |
//! | `os.wait()`, `os.waitpid(-1, os.WNOHANG)` | [`reap_exited`], [`Reaper`], [`Pidfd`] |
//! | `os.write(w, b"x")` to wake a loop from a thread | [`Waker`] |
//! | `c, addr = s.accept()` | [`Acceptor`] (survives `EMFILE`) |
//! | `struct.Struct('i5sf')` | [`codec::Struct`] |
//! | `sent = c.send(data); pending += data[sent:]` | [`WriteQueue`] |
//! | `OSError` | [`Error`] |
//!
//! # The course's poll loop, and the same loop here
//!
//! ```python
//! p = select.poll()
//! p.register(s, select.POLLIN)
//! fdmap = {s.fileno(): s}
//! while True:
//!     for fd, event in p.poll():
//!         if fd == s.fileno():
//!             c, addr = fdmap[fd].accept()
//!             p.register(c, select.POLLIN)
//!             fdmap[c.fileno()] = c
//!         elif event & select.POLLIN:
//!             data = fdmap[fd].recv(1024)
//!             ...
//! ```
//!
//! ```
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::os::fd::{AsFd, BorrowedFd};
//! use reactor::{Backend, Events, Interest, Reactor};
//!
//! // One map for the listener and its clients, like the course's fdmap.
//! enum Source { Listener(TcpListener), Client(TcpStream) }
//! impl AsFd for Source {
//!     fn as_fd(&self) -> BorrowedFd<'_> {
//!         match self { Source::Listener(l) => l.as_fd(), Source::Client(c) => c.as_fd() }
//!     }
//! }
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! listener.set_nonblocking(true)?;
//! let addr = listener.local_addr()?;
//! let mut reactor = Reactor::with_backend(Backend::Poll)?;
//! let listen = reactor.insert(Source::Listener(listener), Interest::READABLE)?;
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hi")?;
//!
//! let mut events = Events::with_capacity(64);
//! let mut replied = false;
//! while !replied {
//!     reactor.poll(&mut events, None)?;
//!     for event in &events {
//!         let token = event.token();
//!         if token == listen {
//!             let Some(Source::Listener(l)) = reactor.get(token) else { continue };
//!             let (c, _peer) = l.accept()?;
//!             c.set_nonblocking(true)?;
//!             reactor.insert(Source::Client(c), Interest::READABLE)?;
//!         } else if let Some(Source::Client(c)) = reactor.get_mut(token) {
//!             let mut buf = [0; 1024];
//!             match c.read(&mut buf) {
//!                 Ok(0) => { reactor.remove(token)?; }      // EOF: unregister, then close
//!                 Ok(n) => { c.write_all(&buf[..n])?; replied = true; }
//!                 Err(e) if e.kind() == ErrorKind::WouldBlock => {}
//!                 Err(e) => return Err(e.into()),
//!             }
//!         }
//!     }
//! }
//! let mut echo = [0; 2];
//! client.read_exact(&mut echo)?;
//! assert_eq!(&echo, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

//! # Which backend: `Reactor::new()` or `Reactor::from_env()`
//!
//! [`Reactor::new`] is always epoll and never reads the environment: a
//! program's behaviour does not change because a variable was left set in
//! a shell. [`Reactor::from_env`] honours `REACTOR_BACKEND=select|poll|epoll`
//! (else epoll), as libev honours `LIBEV_FLAGS` and libevent its
//! `EVENT_NO*` variables, for a program that wants its users or its tests to
//! switch backends without a flag; a name it does not know is an error, not
//! a silent epoll. [`Reactor::with_backend`] takes the choice from the
//! program's own flag. The examples take `--backend`, then `REACTOR_BACKEND`.
//! Seeing the trace of one's own program needs a logger, such as
//! `env_logger` with `RUST_LOG=reactor=trace`.
//!
//! # Layers
//!
//! The folders read bottom to top; each layer uses only the ones below it:
//!
//! ```text
//! io/           WriteQueue: unsent bytes, backpressure         (uses poller::Interest, error)
//! codec/        Struct, LineBuffer: bytes to records           (uses error only)
//! source/       signals, children, waker, acceptor             (uses sys, error)
//! map/          Reactor<T>, Token, timer glue                  (uses poller, timer, source::Waker)
//! timer.rs      the timing wheel: pure, no system calls        (uses nothing)
//! poller/       the Poller trait, Interest/Event, Backend, select/poll/epoll/uring (uses sys, error)
//! sys.rs error.rs  the only place errno becomes an Error, EINTR retried
//! ```
//!
//! A program picks a layer: the [`Poller`] alone for the course's loop with
//! keys, or the [`Reactor`] for objects, tokens and timers. `docs/README.md`
//! draws the same picture.

#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

// A Token packs a 32-bit slot index and a 32-bit generation into one usize
// (the key every backend hands back with an event). On a 32-bit target the
// generation would be shifted out and stale tokens would match new objects.
#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "reactor needs a 64-bit target: a Token packs a 32-bit slot index and a 32-bit generation into one usize"
);

pub mod codec;
mod error;
pub mod io;
pub mod map;
pub mod poller;
pub mod source;
mod sys;
pub mod timer;

pub use crate::codec::{Line, LineBuffer, Struct, Value, Values};
pub use crate::error::{Error, Result};
pub use crate::io::WriteQueue;
pub use crate::map::{InsertError, Reactor, Token};
pub use crate::poller::{
    AnyPoller, Backend, EpollPoller, Event, Events, Interest, PollPoller, Poller, SelectPoller,
    Trigger, UringPoller,
};
pub use crate::source::{
    Accepted, Acceptor, ChildMode, ExitStatus, Pidfd, Reaper, Signal, Signals, Waker, reap_exited,
    signal_name,
};
pub use crate::timer::{TimerId, Timers};

/// Sets `O_NONBLOCK` on any descriptor: a child's stdout pipe, a
/// `TcpStream` accepted elsewhere, a `File` on a FIFO. Other status flags
/// are kept; a descriptor already non-blocking costs one `fcntl`.
///
/// # Errors
///
/// [`Error::Sys`] if `fcntl` fails.
///
/// # Examples
///
/// ```
/// use std::io::{ErrorKind, Read};
/// use std::os::unix::net::UnixStream;
///
/// let (mut a, _b) = UnixStream::pair()?;
/// reactor::set_nonblocking(&a)?;
/// let err = a.read(&mut [0; 8]).unwrap_err(); // nothing to read: no waiting
/// assert_eq!(err.kind(), ErrorKind::WouldBlock);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `os.set_blocking(fd, False)`
pub fn set_nonblocking(fd: &impl std::os::fd::AsFd) -> Result<()> {
    use std::os::fd::AsRawFd;
    sys::set_nonblocking(fd.as_fd().as_raw_fd())
}
