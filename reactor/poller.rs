//! The [`Poller`] trait — the contract every backend keeps. The backends
//! live beside it, one file each, and [`Backend`] (in `backend.rs`) picks
//! one at run time.
//!
//! The course meets three ways to wait on many sockets: `select.select()`,
//! `select.poll()` and `select.epoll()`; Linux adds a fourth, `io_uring(7)`,
//! which Python's standard library does not wrap. Each has its own object
//! and its own flags; this trait gives them one set of verbs, the course's own:
//!
//! | verb | select | poll | epoll | uring |
//! |---|---|---|---|---|
//! | `register` | add to the fd lists | `p.register(fd, mask)` | `ep.register(fd, mask)` (`EPOLL_CTL_ADD`) | queue an `IORING_OP_POLL_ADD` |
//! | `modify` | move between lists | `p.modify(fd, mask)` | `ep.modify(fd, mask)` (`EPOLL_CTL_MOD`) | queue a `POLL_REMOVE` and a new `POLL_ADD` |
//! | `unregister` | remove from the lists | `p.unregister(fd)` | `ep.unregister(fd)` (`EPOLL_CTL_DEL`) | queue an `IORING_OP_POLL_REMOVE` |
//! | `poll` | `select(r, w, x, t)` | `p.poll(t)` | `ep.poll(t)` | `io_uring_enter`: submit the queue and wait |
//!
//! # The contract, written once for all backends
//!
//! - **Keys, not fds.** `register` takes a `usize` key and every event carries
//!   it back (epoll's `data` field, Python's `SelectorKey.data`). A descriptor
//!   is registered at most once per poller.
//! - **Level-triggered by default**, as in the course. [`Trigger::Oneshot`]
//!   works everywhere; [`Trigger::Edge`] only on epoll and uring; a trigger a backend
//!   cannot honour is refused with [`Error::Unsupported`](crate::Error::Unsupported).
//! - **`poll` replaces** the contents of `Events` and returns their number.
//! - **Timeouts.** `None` blocks until an event; `Some(Duration::ZERO)` returns
//!   at once; anything else is rounded *up* to a whole millisecond (Python's
//!   `math.ceil`), so a 100 µs timeout can never become a busy loop of
//!   zero-millisecond waits, and huge values are clamped instead of overflowing.
//! - **`EINTR` is retried** inside `poll` with the time that remains (PEP 475):
//!   a signal never shortens the timeout nor restarts it, and no caller writes
//!   an interrupted-retry loop.
//! - **`hangup` and `error` imply `readable`**, so the next read reports the
//!   end of file or the error.
//! - **Unregister before you close.** A descriptor closed while registered
//!   is the classic busy-loop in C. Here select and poll report it once as
//!   an error and then stop watching it (its number stays registered until
//!   `unregister`); epoll reports nothing, because closing the last
//!   reference removed it from the kernel's interest list; uring reports
//!   nothing either, but its pending poll keeps the file (and a socket's
//!   connection) open until `unregister` (see each backend's gotchas). [`Reactor`](crate::Reactor) always unregisters
//!   before it hands an object back to be closed.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::error::Result;

mod backend;
pub mod epoll;
mod event;
mod interest;
pub mod poll;
pub mod select;
mod table;
pub mod uring;

pub use backend::{AnyPoller, Backend};
pub use epoll::EpollPoller;
pub use event::{Event, Events, Iter};
pub use interest::{Interest, Trigger};
pub use poll::PollPoller;
pub use select::SelectPoller;
pub use uring::UringPoller;

/// One of the kernel's readiness APIs behind the course's four verbs.
///
/// All methods take the descriptor as a `RawFd` — the course's `fileno()` —
/// because the poller never reads or closes it; owning the descriptor is the
/// [`Reactor`](crate::Reactor)'s job.
///
/// # Examples
///
/// The course's poll loop, on any backend:
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use reactor::{Backend, Events, Interest, Poller, Trigger};
///
/// for backend in Backend::ALL {
///     let (mut ours, mut theirs) = UnixStream::pair()?;
///     let mut poller = backend.new_poller()?;
///     poller.register(ours.as_raw_fd(), 1, Interest::READABLE, Trigger::Level)?;
///
///     let mut events = Events::with_capacity(16);
///     theirs.write_all(b"ping")?;
///     assert_eq!(poller.poll(&mut events, Some(Duration::from_secs(1)))?, 1);
///     let mut buf = [0; 4];
///     ours.read_exact(&mut buf)?;
///
///     poller.unregister(ours.as_raw_fd())?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `p = select.poll(); p.register(fd, select.POLLIN); p.poll()`
pub trait Poller {
    /// The backend's name: `"select"`, `"poll"`, `"epoll"` or `"uring"`.
    fn name(&self) -> &'static str;

    /// Starts watching `fd` for `interest`; events for it will carry `key`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRegistered`](crate::Error::AlreadyRegistered) if `fd` is watched already,
    /// [`Error::Unsupported`](crate::Error::Unsupported) for a trigger the backend lacks,
    /// [`Error::InvalidFd`](crate::Error::InvalidFd) for a negative `fd`, [`Error::FdTooLarge`](crate::Error::FdTooLarge) on
    /// select for an `fd` ≥ `FD_SETSIZE`, [`Error::Sys`](crate::Error::Sys) if the kernel refuses.
    ///
    /// Python: `p.register(fd, select.POLLIN)`
    fn register(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()>;

    /// Changes the key, interest or trigger of a watched `fd`; also re-arms
    /// a [`Trigger::Oneshot`] registration that has fired.
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`](crate::Error::NotRegistered) if `fd` is not watched, otherwise as `register`.
    ///
    /// Python: `p.modify(fd, select.POLLOUT)`
    fn modify(&mut self, fd: RawFd, key: usize, interest: Interest, trigger: Trigger)
    -> Result<()>;

    /// Stops watching `fd`. Call it *before* closing the descriptor.
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`](crate::Error::NotRegistered) if `fd` is not watched; [`Error::Sys`](crate::Error::Sys) if the
    /// kernel refuses (epoll: the fd was closed already).
    ///
    /// Python: `p.unregister(fd)`
    fn unregister(&mut self, fd: RawFd) -> Result<()>;

    /// Waits until at least one watched descriptor is ready or `timeout`
    /// passes, fills `events` (replacing what it held) and returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) if the system call fails for a reason other than
    /// `EINTR` (which is retried with the remaining time).
    ///
    /// Python: `events = p.poll(timeout_ms)`
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize>;
}

impl<P: Poller + ?Sized> Poller for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn register(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        (**self).register(fd, key, interest, trigger)
    }

    fn modify(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        (**self).modify(fd, key, interest, trigger)
    }

    fn unregister(&mut self, fd: RawFd) -> Result<()> {
        (**self).unregister(fd)
    }

    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        (**self).poll(events, timeout)
    }
}
