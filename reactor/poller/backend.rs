//! [`Backend`] and [`AnyPoller`]: choosing select, poll, epoll or io_uring at run
//! time, by name or from the `REACTOR_BACKEND` environment variable, so one
//! binary can compare them (`--backend` on every example).

use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::poller::{
    EpollPoller, Events, Interest, PollPoller, Poller, SelectPoller, Trigger, UringPoller,
};

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
    /// `io_uring(7)` poll requests: registrations, re-arms and the wait share one system call.
    Uring,
}

impl Backend {
    /// Every backend, in the order the course teaches them.
    pub const ALL: [Backend; 4] = [
        Backend::Select,
        Backend::Poll,
        Backend::Epoll,
        Backend::Uring,
    ];

    /// The environment variable [`from_env`](Backend::from_env) reads.
    pub const ENV_VAR: &'static str = "REACTOR_BACKEND";

    /// The backend's name as it parses: `"select"`, `"poll"`, `"epoll"`, `"uring"`
    /// (`"io_uring"` parses too).
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::Uring => "uring",
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
    /// `EMFILE`, say); [`Error::Unavailable`] for `Uring` where the kernel
    /// has no io_uring or forbids it (the message names epoll instead).
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
    /// Python: `select.poll()` or `select.epoll()`, picked by name (Python has no io_uring)
    pub fn new_poller(self) -> Result<AnyPoller> {
        Ok(match self {
            Backend::Select => AnyPoller::Select(SelectPoller::new()),
            Backend::Poll => AnyPoller::Poll(PollPoller::new()),
            Backend::Epoll => AnyPoller::Epoll(EpollPoller::new()?),
            Backend::Uring => AnyPoller::Uring(UringPoller::new()?),
        })
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(name: &str) -> Result<Backend> {
        let name = name.trim();
        // `io_uring` is the kernel's own spelling of the fourth backend.
        if name.eq_ignore_ascii_case("io_uring") {
            return Ok(Backend::Uring);
        }
        Backend::ALL
            .into_iter()
            .find(|backend| backend.name().eq_ignore_ascii_case(name))
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

/// Any of the four backends, chosen at run time without a `Box`.
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
    /// The `io_uring(7)` backend.
    Uring(UringPoller),
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
            AnyPoller::Uring(_) => Backend::Uring,
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
            AnyPoller::Uring($poller) => $call,
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
