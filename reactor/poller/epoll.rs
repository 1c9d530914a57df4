//! The `epoll(7)` backend: [`EpollPoller`].
//!
//! **System calls.** `epoll_create1(2)` makes a kernel object that keeps the
//! interest list; `epoll_ctl(2)` adds (`EPOLL_CTL_ADD` = `register`), changes
//! (`EPOLL_CTL_MOD` = `modify`) and removes (`EPOLL_CTL_DEL` = `unregister`)
//! entries; `epoll_wait(2)` (= `poll`) copies out only the ready ones.
//!
//! **Python.** `ep = select.epoll(); ep.register(fd, select.EPOLLIN)`; the
//! course's `epoll_server.py`.
//!
//! **Cost.** O(ready) per wait: the kernel keeps a ready list, so idle
//! descriptors cost nothing at wait time (they cost one `epoll_ctl` each to
//! register, and about 160 bytes of kernel memory). Linux only.
//!
//! **Limits.** None on the fd number; the number of watches is bounded by
//! `/proc/sys/fs/epoll/max_user_watches`.
//!
//! | `Interest` / `Trigger` | kernel flag |
//! |---|---|
//! | `READABLE` | `EPOLLIN \| EPOLLRDHUP` |
//! | `WRITABLE` | `EPOLLOUT` |
//! | `PRIORITY` | `EPOLLPRI` |
//! | `Edge` | `EPOLLET` |
//! | `Oneshot` | `EPOLLONESHOT` |
//!
//! | kernel flag | `Event` |
//! |---|---|
//! | `EPOLLIN` | readable |
//! | `EPOLLOUT` | writable |
//! | `EPOLLPRI` | priority |
//! | `EPOLLRDHUP` | read_closed + readable |
//! | `EPOLLHUP` | hangup + readable |
//! | `EPOLLERR` | error + readable |
//!
//! **Gotchas.**
//! - (a) epoll watches the *open file description*, not the fd number. A
//!   `dup`ed descriptor keeps a registration alive after the original is
//!   closed, and events keep coming for it: always `unregister` before
//!   `close`.
//! - (b) `EPOLLHUP` and `EPOLLERR` are reported whether asked for or not.
//! - (c) With `EPOLLET` an event comes once per *arrival*: a reader that
//!   stops before `WouldBlock` waits forever for data already there.
//! - (d) After `fork()` parent and child share the epoll instance: a
//!   `EPOLL_CTL_DEL` in the child removes the parent's registration. This
//!   type's `Drop` only closes its own descriptor, which the child may do safely;
//!   a child must build a new poller rather than use the parent's.
//! - (e) `epoll_wait` needs `maxevents > 0`: [`Events`] is never smaller than 1.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::poller::event::FlagNames;
use crate::poller::{Events, Interest, Poller, Trigger};
use crate::sys;

/// A poller backed by an epoll instance.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use reactor::{EpollPoller, Events, Interest, Poller, Trigger};
///
/// let (a, mut b) = UnixStream::pair()?;
/// let mut epoll = EpollPoller::new()?;
/// epoll.register(a.as_raw_fd(), 42, Interest::READABLE, Trigger::Edge)?;
/// b.write_all(b"x")?;
/// let mut events = Events::with_capacity(4);
/// epoll.poll(&mut events, None)?;
/// assert_eq!(events.iter().next().unwrap().key(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `ep = select.epoll()`
#[derive(Debug)]
pub struct EpollPoller {
    /// The epoll instance, created close-on-exec; closing it drops every registration.
    epoll: OwnedFd,
}

impl EpollPoller {
    /// Creates an epoll instance.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `epoll_create1` fails (`EMFILE`: out of descriptors).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{EpollPoller, Poller};
    ///
    /// assert_eq!(EpollPoller::new()?.name(), "epoll");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `select.epoll()`
    pub fn new() -> Result<EpollPoller> {
        // SAFETY: epoll_create1 takes no pointers; it returns a new fd or -1.
        let fd = sys::check(
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
            "epoll_create1",
            None,
        )?;
        log::trace!("epoll_create1(CLOEXEC) → epoll fd={fd}");
        Ok(EpollPoller {
            // SAFETY: `fd` was just returned by epoll_create1, so it is open and
            // nothing else owns it.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// One `epoll_ctl` call, with its trace line and error mapping.
    fn ctl(&self, op: libc::c_int, fd: RawFd, key: usize, flags: u32) -> Result<()> {
        let (name, call) = match op {
            libc::EPOLL_CTL_ADD => ("ADD", "epoll_ctl(ADD)"),
            libc::EPOLL_CTL_MOD => ("MOD", "epoll_ctl(MOD)"),
            _ => ("DEL", "epoll_ctl(DEL)"),
        };
        if op == libc::EPOLL_CTL_DEL {
            log::trace!("epoll_ctl(DEL, fd={fd})");
        } else {
            log::trace!(
                "epoll_ctl({name}, fd={fd}, {}, key={key})",
                FlagNames(flags)
            );
        }
        let mut event = libc::epoll_event {
            events: flags,
            u64: key as u64,
        };
        // SAFETY: `event` is a valid epoll_event that lives across the call
        // (the kernel reads it and ignores it for DEL); bad fds are reported
        // by the kernel as errors, not undefined behaviour.
        let ret = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        sys::check(ret, call, Some(fd))
            .map(drop)
            .map_err(|err| match err.raw_os_error() {
                Some(libc::EEXIST) => Error::AlreadyRegistered {
                    backend: "epoll",
                    fd,
                },
                Some(libc::ENOENT) => Error::NotRegistered {
                    backend: "epoll",
                    fd,
                },
                _ => err,
            })
    }
}

/// The epoll instance's own descriptor, to inspect it (its close-on-exec
/// flag, say) or to nest it in another poller; closing it is this type's job.
///
/// # Examples
///
/// ```
/// use std::os::fd::{AsFd, AsRawFd};
/// use reactor::EpollPoller;
///
/// let epoll = EpollPoller::new()?;
/// // SAFETY: F_GETFD only reads the descriptor's flags.
/// let flags = unsafe { libc::fcntl(epoll.as_fd().as_raw_fd(), libc::F_GETFD) };
/// assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
/// # Ok::<(), reactor::Error>(())
/// ```
///
/// Python: `ep.fileno()`
impl AsFd for EpollPoller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl Poller for EpollPoller {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn register(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        sys::check_fd(fd)?;
        self.ctl(
            libc::EPOLL_CTL_ADD,
            fd,
            key,
            interest_to_flags(interest, trigger),
        )
    }

    fn modify(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        sys::check_fd(fd)?;
        self.ctl(
            libc::EPOLL_CTL_MOD,
            fd,
            key,
            interest_to_flags(interest, trigger),
        )
    }

    fn unregister(&mut self, fd: RawFd) -> Result<()> {
        sys::check_fd(fd)?;
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    #[inline]
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        // Zero copy: the kernel writes straight into `events`.
        let (buffer, capacity) = events.kernel_buffer();
        let epoll = self.epoll.as_raw_fd();
        let n = sys::wait_retrying(timeout, "epoll_wait", |ms| {
            // SAFETY: `buffer` has room for `capacity` (≥ 1) epoll_events
            // that the kernel may write; nothing else touches it meanwhile.
            unsafe { libc::epoll_wait(epoll, buffer, capacity, ms) }
        })?;
        // SAFETY: epoll_wait initialised the first `n` entries (n ≤ capacity).
        unsafe { events.set_filled(n) };
        if log::log_enabled!(log::Level::Trace) {
            trace_wait(timeout, events);
        }
        Ok(n)
    }
}

/// The trace line of one `epoll_wait`: out of line, so that the loop that
/// calls `poll` carries none of the formatting.
#[cold]
#[inline(never)]
fn trace_wait(timeout: Option<Duration>, events: &Events) {
    log::trace!(
        "epoll_wait(timeout={}) → {} ready{}",
        sys::show_timeout(sys::timeout_ms(timeout)),
        events.len(),
        events.describe()
    );
}

/// Turns what the caller asked for into `epoll_event.events` flags.
fn interest_to_flags(interest: Interest, trigger: Trigger) -> u32 {
    let mut flags = 0;
    if interest.is_readable() {
        // RDHUP lets the reader learn of a half-close without another read.
        flags |= libc::EPOLLIN | libc::EPOLLRDHUP;
    }
    if interest.is_writable() {
        flags |= libc::EPOLLOUT;
    }
    if interest.is_priority() {
        flags |= libc::EPOLLPRI;
    }
    flags |= match trigger {
        // Level: the kernel's default, no flag.
        Trigger::Level => 0,
        // Edge: report arrivals, not state.
        Trigger::Edge => libc::EPOLLET,
        // Oneshot: the kernel disables the entry after one report; MOD re-arms it.
        Trigger::Oneshot => libc::EPOLLONESHOT,
    };
    flags as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_interest_asks_for_rdhup_too() {
        let flags = interest_to_flags(Interest::READABLE, Trigger::Edge) as libc::c_int;
        assert_eq!(flags, libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET);
    }

    #[test]
    fn hangup_and_error_imply_readable() {
        let bits = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
        let ev = crate::poller::Event::from_bits(1, bits);
        assert!(ev.is_readable() && ev.is_hangup() && ev.is_error());
        assert!(!ev.is_writable());
    }
}
