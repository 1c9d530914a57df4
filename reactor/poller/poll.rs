//! The `poll(2)` backend: [`PollPoller`].
//!
//! **System call.** `poll(fds, nfds, timeout_ms)` takes an array of
//! `struct pollfd { fd, events, revents }`; the kernel checks every entry and
//! writes what happened into `revents`. The array lives here, in user space,
//! and is handed over whole at every call.
//!
//! **Python.** `p = select.poll(); p.register(fd, select.POLLIN); p.poll()`;
//! the course's `poll_server.py`.
//!
//! **Cost.** O(registered fds) per call, in the kernel and in the scan of
//! `revents` afterwards: about 60–160 ns per idle descriptor on our machine.
//! `register` and `unregister` are O(1) and make no system call.
//!
//! **Limits.** None on the fd number (unlike select); `nfds` is bounded by
//! `RLIMIT_NOFILE`.
//!
//! | `Interest` / `Trigger` | `pollfd.events` |
//! |---|---|
//! | `READABLE` | `POLLIN \| POLLRDHUP` |
//! | `WRITABLE` | `POLLOUT` |
//! | `PRIORITY` | `POLLPRI` |
//! | `Edge` | refused: `Error::Unsupported` |
//! | `Oneshot` | emulated: the entry is disarmed (`fd = -1`) after one report |
//!
//! | `pollfd.revents` | `Event` |
//! |---|---|
//! | `POLLIN` | readable |
//! | `POLLOUT` | writable |
//! | `POLLPRI` | priority |
//! | `POLLRDHUP` | read_closed + readable |
//! | `POLLHUP` | hangup + readable |
//! | `POLLERR` | error + readable |
//! | `POLLNVAL` | error + readable, and the entry is disarmed |
//!
//! **Gotchas.**
//! - (a) `POLLHUP`, `POLLERR` and `POLLNVAL` are reported whether asked for
//!   or not; the only way to silence an entry is a negative `fd`, which the
//!   kernel skips. Disarmed entries (oneshot fired, descriptor closed) use it.
//! - (b) A descriptor closed while registered gives `POLLNVAL` at *every*
//!   call: the classic 100 % CPU loop. It is reported once as an error and
//!   disarmed; `unregister` it.
//! - (c) The array is kept dense: `unregister` swaps the last entry into the
//!   hole (O(1)), so entries move and an `fd → index` table follows them
//!   (the registration table select shares, `table.rs`).
//! - (d) A full [`Events`] buffer leaves ready entries for the next call;
//!   the scan resumes after the last one reported so none is starved.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::poller::event::{FlagNames, bits};
use crate::poller::table::Table;
use crate::poller::{Events, Interest, Poller, Trigger};
use crate::sys;

/// A poller that keeps a `pollfd` array and calls `poll(2)`.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use reactor::{Events, Interest, PollPoller, Poller, Trigger};
///
/// let (a, mut b) = UnixStream::pair()?;
/// let mut poll = PollPoller::new();
/// poll.register(a.as_raw_fd(), 42, Interest::READABLE, Trigger::Level)?;
/// b.write_all(b"x")?;
/// let mut events = Events::with_capacity(4);
/// poll.poll(&mut events, None)?;
/// assert_eq!(events.iter().next().unwrap().key(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `p = select.poll()`
#[derive(Debug, Default)]
pub struct PollPoller {
    /// The array handed to `poll(2)`, one entry per registration, dense and
    /// at the same index as its entry in `table`.
    fds: Vec<libc::pollfd>,
    /// Key, trigger and fd of each registration.
    table: Table,
}

impl PollPoller {
    /// Creates an empty poller. No system call: the kernel learns of the
    /// descriptors at each `poll`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{PollPoller, Poller};
    ///
    /// assert_eq!(PollPoller::new().name(), "poll");
    /// ```
    ///
    /// Python: `select.poll()`
    pub fn new() -> PollPoller {
        PollPoller::default()
    }
}

/// Refuses edge triggering, which `poll(2)` cannot express.
fn check_trigger(trigger: Trigger) -> Result<()> {
    match trigger {
        Trigger::Edge => Err(Error::Unsupported {
            backend: "poll",
            trigger: trigger.name(),
        }),
        Trigger::Level | Trigger::Oneshot => Ok(()),
    }
}

impl Poller for PollPoller {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn register(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        sys::check_fd(fd)?;
        check_trigger(trigger)?;
        self.table.insert("poll", fd, key, trigger)?;
        let events = interest_to_flags(interest);
        log::trace!(
            "poll: add fd={fd} {} key={key} (no system call)",
            FlagNames(events as u32)
        );
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        Ok(())
    }

    fn modify(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        sys::check_fd(fd)?;
        check_trigger(trigger)?;
        let i = self.table.update("poll", fd, key, trigger)?;
        let events = interest_to_flags(interest);
        log::trace!(
            "poll: modify fd={fd} {} key={key} (no system call)",
            FlagNames(events as u32)
        );
        // Writing the real fd back also re-arms a disarmed entry.
        self.fds[i] = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> Result<()> {
        let i = self.table.remove("poll", fd)?;
        log::trace!("poll: remove fd={fd} (no system call)");
        self.fds.swap_remove(i);
        Ok(())
    }

    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        events.clear();
        let fds = self.fds.as_mut_ptr();
        let nfds = self.fds.len() as libc::nfds_t;
        let ready = sys::wait_retrying(timeout, "poll", |ms| {
            // SAFETY: `fds` points to `nfds` initialised pollfd structs that
            // the kernel may write `revents` into; nothing else touches the
            // Vec during the call.
            unsafe { libc::poll(fds, nfds, ms) }
        })?;
        let fds = &mut self.fds;
        self.table.scan(events, ready, |i, entry| {
            let revents = fds[i].revents;
            if revents == 0 {
                return 0;
            }
            // Silence entries that would otherwise fire again (gotchas a, b).
            if entry.trigger == Trigger::Oneshot || revents & libc::POLLNVAL != 0 {
                fds[i].fd = -1;
                entry.armed = false;
            }
            revents_to_bits(revents)
        });
        if log::log_enabled!(log::Level::Trace) {
            trace_wait(self.fds.len(), timeout, events);
        }
        Ok(events.len())
    }
}

/// The trace line of one `poll`: out of line, so that the loop that calls
/// `poll` carries none of the formatting.
#[cold]
#[inline(never)]
fn trace_wait(nfds: usize, timeout: Option<Duration>, events: &Events) {
    log::trace!(
        "poll({nfds} fds, timeout={}) → {} ready{}",
        sys::show_timeout(sys::timeout_ms(timeout)),
        events.len(),
        events.describe()
    );
}

/// `pollfd.revents` as epoll's bits: the same numbers, except `POLLNVAL`
/// ("closed while registered"), which is reported as an error.
pub(super) fn revents_to_bits(revents: libc::c_short) -> u32 {
    let mut out = (revents & !libc::POLLNVAL) as u16 as u32;
    if revents & libc::POLLNVAL != 0 {
        out |= bits::ERR;
    }
    out
}

/// Turns what the caller asked for into `pollfd.events` flags.
pub(super) fn interest_to_flags(interest: Interest) -> libc::c_short {
    let mut flags = 0;
    if interest.is_readable() {
        // RDHUP lets the reader learn of a half-close without another read.
        flags |= libc::POLLIN | libc::POLLRDHUP;
    }
    if interest.is_writable() {
        flags |= libc::POLLOUT;
    }
    if interest.is_priority() {
        flags |= libc::POLLPRI;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nval_is_an_error_that_implies_readable() {
        let bits = revents_to_bits(libc::POLLNVAL);
        let ev = crate::poller::Event::from_bits(1, bits);
        assert!(ev.is_error() && ev.is_readable());
    }
}
