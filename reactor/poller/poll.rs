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
//!   hole (O(1)), so entries move and an `fd → index` table follows them.
//! - (d) A full [`Events`] buffer leaves ready entries for the next call;
//!   the scan resumes after the last one reported so none is starved.

use std::time::Duration;

use std::os::fd::RawFd;

use crate::error::{Error, Result};
use crate::poller::{Event, Events, Interest, Poller, Trigger};
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
    /// The array handed to `poll(2)`, one entry per registration, dense.
    fds: Vec<libc::pollfd>,
    /// Key and trigger of each entry, at the same index as in `fds`.
    entries: Vec<Entry>,
    /// fd number → index in `fds`, or `NONE`; fd numbers are small, so a
    /// `Vec` beats a hash map.
    index: Vec<u32>,
    /// Where the next scan of `revents` starts (gotcha d).
    next_scan: usize,
}

/// What `poll(2)` does not keep for us about one registration.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The descriptor, kept here because a disarmed `pollfd` holds `-1`.
    fd: RawFd,
    /// Given back in every event.
    key: usize,
    /// Level or oneshot.
    trigger: Trigger,
}

/// No entry for this fd.
const NONE: u32 = u32::MAX;

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

    /// Index of `fd` in the arrays, if registered.
    fn find(&self, fd: RawFd) -> Option<usize> {
        match self.index.get(fd as usize) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
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
        PollPoller::check_trigger(trigger)?;
        if self.find(fd).is_some() {
            return Err(Error::AlreadyRegistered {
                backend: "poll",
                fd,
            });
        }
        let slot = fd as usize;
        if self.index.len() <= slot {
            // The table grows to the fd number: ask the kernel first whether
            // it is an open descriptor, so a bogus 2,000,000,000 is EBADF
            // rather than an 8 GB allocation.
            // SAFETY: F_GETFD takes no pointer and only reads the fd's flags.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            sys::check(flags, "fcntl(F_GETFD)", Some(fd))?;
            self.index.resize(slot + 1, NONE);
        }
        self.index[slot] = self.fds.len() as u32;
        let events = interest_to_flags(interest);
        log::trace!(
            "poll: add fd={fd} {} key={key} (no system call)",
            kernel_flag_names(events)
        );
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.entries.push(Entry { fd, key, trigger });
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
        PollPoller::check_trigger(trigger)?;
        let i = self.find(fd).ok_or(Error::NotRegistered {
            backend: "poll",
            fd,
        })?;
        let events = interest_to_flags(interest);
        log::trace!(
            "poll: modify fd={fd} {} key={key} (no system call)",
            kernel_flag_names(events)
        );
        // Writing the real fd back also re-arms a disarmed entry.
        self.fds[i] = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        self.entries[i] = Entry { fd, key, trigger };
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> Result<()> {
        sys::check_fd(fd)?;
        let i = self.find(fd).ok_or(Error::NotRegistered {
            backend: "poll",
            fd,
        })?;
        log::trace!("poll: remove fd={fd} (no system call)");
        self.index[fd as usize] = NONE;
        self.fds.swap_remove(i);
        self.entries.swap_remove(i);
        // The last entry moved into the hole: point its fd at the new place.
        if let Some(moved) = self.entries.get(i) {
            self.index[moved.fd as usize] = i as u32;
        }
        Ok(())
    }

    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        events.clear();
        let fds = self.fds.as_mut_ptr();
        let nfds = self.fds.len() as libc::nfds_t;
        let mut ready = sys::wait_retrying(timeout, "poll", |ms| {
            // SAFETY: `fds` points to `nfds` initialised pollfd structs that
            // the kernel may write `revents` into; nothing else touches the
            // Vec during the call.
            unsafe { libc::poll(fds, nfds, ms) }
        })?;
        // Scan for the `ready` entries with revents set, starting where the
        // last full buffer stopped and wrapping around.
        let len = self.fds.len();
        let start = if self.next_scan < len {
            self.next_scan
        } else {
            0
        };
        for step in 0..len {
            if ready == 0 || events.len() == events.capacity() {
                self.next_scan = (start + step) % len.max(1);
                break;
            }
            let i = (start + step) % len;
            let revents = self.fds[i].revents;
            if revents == 0 {
                continue;
            }
            ready -= 1;
            let entry = self.entries[i];
            events.push(flags_to_event(entry.key, revents));
            // Silence entries that would otherwise fire again (gotchas a, b).
            if entry.trigger == Trigger::Oneshot || revents & libc::POLLNVAL != 0 {
                self.fds[i].fd = -1;
            }
        }
        if log::log_enabled!(log::Level::Trace) {
            log::trace!(
                "poll({len} fds, timeout={}) → {} ready{}",
                sys::show_timeout(sys::timeout_ms(timeout)),
                events.len(),
                events.describe()
            );
        }
        Ok(events.len())
    }
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

/// Decodes `pollfd.revents` into an [`Event`].
pub(super) fn flags_to_event(key: usize, revents: libc::c_short) -> Event {
    let mut out = 0;
    if revents & libc::POLLIN != 0 {
        out |= Event::READABLE;
    }
    if revents & libc::POLLOUT != 0 {
        out |= Event::WRITABLE;
    }
    if revents & libc::POLLPRI != 0 {
        out |= Event::PRIORITY;
    }
    // Hang-up and error are also "readable": the next read says what happened.
    if revents & libc::POLLRDHUP != 0 {
        out |= Event::READ_CLOSED | Event::READABLE;
    }
    if revents & libc::POLLHUP != 0 {
        out |= Event::HANGUP | Event::READABLE;
    }
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        out |= Event::ERROR | Event::READABLE;
    }
    Event::from_flags(key, out)
}

/// Names the flags for the trace log: `IN|RDHUP`.
pub(super) fn kernel_flag_names(flags: libc::c_short) -> String {
    const NAMES: [(libc::c_short, &str); 4] = [
        (libc::POLLIN, "IN"),
        (libc::POLLOUT, "OUT"),
        (libc::POLLPRI, "PRI"),
        (libc::POLLRDHUP, "RDHUP"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unregister_keeps_the_index_of_the_moved_entry() {
        use std::os::fd::AsRawFd;
        // Real descriptors: registering an fd that is not open is refused.
        let pairs: Vec<_> = (0..3)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
            .collect();
        let [a, b, c] = [0, 1, 2].map(|i| pairs[i].0.as_raw_fd());
        let mut p = PollPoller::new();
        for fd in [a, b, c] {
            p.register(fd, fd as usize, Interest::READABLE, Trigger::Level)
                .unwrap();
        }
        p.unregister(a).unwrap();
        assert_eq!(p.find(c), Some(0));
        assert_eq!(p.find(b), Some(1));
        assert_eq!(p.find(a), None);
        p.unregister(c).unwrap();
        assert_eq!(p.find(b), Some(0));
    }

    #[test]
    fn nval_is_an_error_that_implies_readable() {
        let ev = flags_to_event(1, libc::POLLNVAL);
        assert!(ev.is_error() && ev.is_readable());
    }
}
