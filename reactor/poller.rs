//! The [`Poller`] trait — the contract every backend keeps — and [`Backend`],
//! which picks one at run time.
//!
//! The course meets three ways to wait on many sockets: `select.select()`,
//! `select.poll()` and `select.epoll()`. Each has its own object and its own
//! flags; this trait gives them one set of verbs, the course's own:
//!
//! | verb | select | poll | epoll |
//! |---|---|---|---|
//! | `register` | add to the fd lists | `p.register(fd, mask)` | `ep.register(fd, mask)` (`EPOLL_CTL_ADD`) |
//! | `modify` | move between lists | `p.modify(fd, mask)` | `ep.modify(fd, mask)` (`EPOLL_CTL_MOD`) |
//! | `unregister` | remove from the lists | `p.unregister(fd)` | `ep.unregister(fd)` (`EPOLL_CTL_DEL`) |
//! | `poll` | `select(r, w, x, t)` | `p.poll(t)` | `ep.poll(t)` |
//!
//! # The contract, written once for all backends
//!
//! - **Keys, not fds.** `register` takes a `usize` key and every event carries
//!   it back (epoll's `data` field, Python's `SelectorKey.data`). A descriptor
//!   is registered at most once per poller.
//! - **Level-triggered by default**, as in the course. [`Trigger::Oneshot`]
//!   works everywhere; [`Trigger::Edge`] only on epoll; a trigger a backend
//!   cannot honour is refused with [`Error::Unsupported`].
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
//!   reference removed it from the kernel's interest list (see each
//!   backend's gotchas). [`Reactor`](crate::Reactor) always unregisters
//!   before it hands an object back to be closed.

use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::event::Events;
use crate::interest::{Interest, Trigger};
use crate::poller::epoll::EpollPoller;
use crate::poller::poll::PollPoller;
use crate::poller::select::SelectPoller;

pub mod epoll;
pub mod poll;
pub mod select;

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
    /// The backend's name: `"select"`, `"poll"` or `"epoll"`.
    fn name(&self) -> &'static str;

    /// Starts watching `fd` for `interest`; events for it will carry `key`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRegistered`] if `fd` is watched already,
    /// [`Error::Unsupported`] for a trigger the backend lacks,
    /// [`Error::InvalidFd`] for a negative `fd`, [`Error::FdTooLarge`] on
    /// select for an `fd` ≥ `FD_SETSIZE`, [`Error::Sys`] if the kernel refuses.
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
    /// [`Error::NotRegistered`] if `fd` is not watched, otherwise as `register`.
    ///
    /// Python: `p.modify(fd, select.POLLOUT)`
    fn modify(&mut self, fd: RawFd, key: usize, interest: Interest, trigger: Trigger)
    -> Result<()>;

    /// Stops watching `fd`. Call it *before* closing the descriptor.
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`] if `fd` is not watched; [`Error::Sys`] if the
    /// kernel refuses (epoll: the fd was closed already).
    ///
    /// Python: `p.unregister(fd)`
    fn unregister(&mut self, fd: RawFd) -> Result<()>;

    /// Waits until at least one watched descriptor is ready or `timeout`
    /// passes, fills `events` (replacing what it held) and returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if the system call fails for a reason other than
    /// `EINTR` (which is retried with the remaining time).
    ///
    /// Python: `events = p.poll(timeout_ms)`
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize>;
}

/// Which backend to use, chosen at run time.
///
/// # Examples
///
/// ```
/// use reactor::{Backend, Poller};
///
/// let backend: Backend = "poll".parse()?;
/// assert_eq!(backend, Backend::Poll);
/// assert_eq!(backend.new_poller()?.name(), "poll");
/// assert!("kqueue".parse::<Backend>().is_err());
/// # Ok::<(), reactor::Error>(())
/// ```
///
/// Python: choosing between `select.select`, `select.poll` and `select.epoll`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `select(2)`: three bitmaps, fds below 1024 only.
    Select,
    /// `poll(2)`: an array of `pollfd`, any fd number.
    Poll,
    /// `epoll(7)`: a kernel-side interest list; cost grows with ready fds only.
    Epoll,
}

impl Backend {
    /// Every backend, in the order the course teaches them.
    pub const ALL: [Backend; 3] = [Backend::Select, Backend::Poll, Backend::Epoll];

    /// The environment variable [`from_env`](Backend::from_env) reads.
    pub const ENV_VAR: &'static str = "REACTOR_BACKEND";

    /// The backend's name as it parses: `"select"`, `"poll"`, `"epoll"`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
        }
    }

    /// The backend named by `REACTOR_BACKEND`, or `None` if it is unset or empty.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownBackend`] if the variable names no backend.
    ///
    /// # Examples
    ///
    /// ```
    /// // Unset in doctests, so the caller's default applies.
    /// let backend = reactor::Backend::from_env()?.unwrap_or(reactor::Backend::Epoll);
    /// # Ok::<(), reactor::Error>(())
    /// ```
    pub fn from_env() -> Result<Option<Backend>> {
        match std::env::var(Backend::ENV_VAR) {
            Ok(value) if !value.trim().is_empty() => value.parse().map(Some),
            _ => Ok(None),
        }
    }

    /// Builds a poller of this kind.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if the kernel refuses (`epoll_create1` failing with
    /// `EMFILE`, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Backend, Poller};
    ///
    /// for backend in Backend::ALL {
    ///     let poller = backend.new_poller()?;
    ///     assert_eq!(poller.backend(), backend);
    ///     assert_eq!(poller.name(), backend.name());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `select.poll()` or `select.epoll()`, picked by name
    pub fn new_poller(self) -> Result<AnyPoller> {
        Ok(match self {
            Backend::Select => AnyPoller::Select(SelectPoller::new()),
            Backend::Poll => AnyPoller::Poll(PollPoller::new()),
            Backend::Epoll => AnyPoller::Epoll(EpollPoller::new()?),
        })
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(name: &str) -> Result<Backend> {
        Backend::ALL
            .into_iter()
            .find(|backend| backend.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| Error::UnknownBackend {
                name: name.to_owned(),
            })
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Any of the three backends, chosen at run time without a `Box`.
///
/// An enum rather than `Box<dyn Poller>`: the `match` is predictable and
/// lets the compiler inline each backend's `poll` into the loop.
// SelectPoller carries its three 128-byte fd_sets inline; an AnyPoller is
// built once per reactor, so its size does not matter and a Box would only
// add an indirection to every select call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyPoller {
    /// The `select(2)` backend.
    Select(SelectPoller),
    /// The `poll(2)` backend.
    Poll(PollPoller),
    /// The `epoll(7)` backend.
    Epoll(EpollPoller),
}

impl AnyPoller {
    /// Which backend this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::Backend;
    ///
    /// let poller = Backend::Select.new_poller()?;
    /// assert_eq!(poller.backend(), Backend::Select);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backend(&self) -> Backend {
        match self {
            AnyPoller::Select(_) => Backend::Select,
            AnyPoller::Poll(_) => Backend::Poll,
            AnyPoller::Epoll(_) => Backend::Epoll,
        }
    }
}

/// Forwards one `Poller` method to whichever backend `self` holds.
macro_rules! dispatch {
    ($self:ident, $poller:ident => $call:expr) => {
        match $self {
            AnyPoller::Select($poller) => $call,
            AnyPoller::Poll($poller) => $call,
            AnyPoller::Epoll($poller) => $call,
        }
    };
}

impl Poller for AnyPoller {
    fn name(&self) -> &'static str {
        self.backend().name()
    }

    fn register(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        dispatch!(self, p => p.register(fd, key, interest, trigger))
    }

    fn modify(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        dispatch!(self, p => p.modify(fd, key, interest, trigger))
    }

    fn unregister(&mut self, fd: RawFd) -> Result<()> {
        dispatch!(self, p => p.unregister(fd))
    }

    #[inline]
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        dispatch!(self, p => p.poll(events, timeout))
    }
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
