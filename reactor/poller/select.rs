//! The `select(2)` backend: [`SelectPoller`].
//!
//! **System call.** `select(nfds, readfds, writefds, exceptfds, timeout)`
//! takes three bitmaps (`fd_set`) with one bit per fd number below `nfds`;
//! the kernel clears the bits of descriptors that are *not* ready. The sets
//! are therefore input and output at once, so every call starts from fresh
//! copies of the master sets kept here.
//!
//! **Python.** `rs, ws, xs = select.select(rlist, wlist, xlist, timeout)`.
//!
//! **Cost.** O(highest fd number) per call: the kernel and the scan
//! afterwards walk every bit below `nfds`, watched or not.
//!
//! **Limits.** An `fd_set` holds `FD_SETSIZE` = 1024 bits. `FD_SET` on
//! fd 1024 or above writes past the end of the bitmap — memory corruption in
//! C. Such descriptors are refused with [`Error::FdTooLarge`].
//!
//! | `Interest` / `Trigger` | set |
//! |---|---|
//! | `READABLE` | `readfds` |
//! | `WRITABLE` | `writefds` |
//! | `PRIORITY` | `exceptfds` |
//! | `Edge` | refused: `Error::Unsupported` |
//! | `Oneshot` | emulated: the fd leaves the master sets after one report |
//!
//! | bit left set | `Event` |
//! |---|---|
//! | in `readfds` | readable (also end of file, reset, and errors: select cannot tell) |
//! | in `writefds` | writable |
//! | in `exceptfds` | priority |
//! | call fails with `EBADF` | error + readable for each closed fd, which is then disarmed |
//!
//! **Gotchas.**
//! - (a) The fd *number* is limited, not the count: the 1025th socket of a
//!   process has fd ≥ 1024 even if only three are watched.
//! - (b) select cannot report hang-up, half-close or errors; they all look
//!   like "readable", and the next `read` tells which.
//! - (c) One closed descriptor in a set makes the whole call fail with
//!   `EBADF`, with no hint which. The backend probes each watched fd with
//!   `fcntl(F_GETFD)`, reports the closed ones as errors and disarms them,
//!   so the rest keep being served. After a failed call the output sets are
//!   garbage and are never read (bpo-35310).
//! - (d) `nfds` is the highest fd *plus one*, recomputed when the highest is removed.
//! - (e) A call interrupted by a signal (`EINTR`) does not clear the sets:
//!   they still hold the input bits. When the timeout runs out after an
//!   interruption, the sets are not read at all (the bug CPython fixed in
//!   bpo-35310), so an idle fd is never reported ready.

use std::fmt;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::poller::event::bits;
use crate::poller::table::Table;
use crate::poller::{Events, Interest, Poller, Trigger};
use crate::sys;

/// A poller that keeps three `fd_set` bitmaps and calls `select(2)`.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use reactor::{Events, Interest, Poller, SelectPoller, Trigger};
///
/// let (a, mut b) = UnixStream::pair()?;
/// let mut select = SelectPoller::new();
/// select.register(a.as_raw_fd(), 42, Interest::READABLE, Trigger::Level)?;
/// b.write_all(b"x")?;
/// let mut events = Events::with_capacity(4);
/// select.poll(&mut events, None)?;
/// assert_eq!(events.iter().next().unwrap().key(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `select.select(rlist, wlist, xlist, timeout)`
pub struct SelectPoller {
    /// Key, trigger and fd of each registration (all fds < `FD_SETSIZE`).
    table: Table,
    /// Master copy of the read set; copied before each call.
    read: libc::fd_set,
    /// Master copy of the write set.
    write: libc::fd_set,
    /// Master copy of the exception (priority) set.
    except: libc::fd_set,
    /// One more than the highest fd in the master sets: select's `nfds`.
    nfds: RawFd,
}

impl SelectPoller {
    /// Creates an empty poller. No system call: the kernel sees the sets at
    /// each `poll`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Poller, SelectPoller};
    ///
    /// assert_eq!(SelectPoller::new().name(), "select");
    /// ```
    ///
    /// Python: nothing to create; `select.select` is a function.
    pub fn new() -> SelectPoller {
        SelectPoller {
            table: Table::default(),
            read: empty_set(),
            write: empty_set(),
            except: empty_set(),
            nfds: 0,
        }
    }

    /// Refuses what `select(2)` cannot do: fds past the bitmap, edge triggering.
    fn check(fd: RawFd, trigger: Trigger) -> Result<()> {
        sys::check_fd(fd)?;
        if fd as usize >= libc::FD_SETSIZE {
            return Err(Error::FdTooLarge {
                fd,
                limit: libc::FD_SETSIZE,
            });
        }
        match trigger {
            Trigger::Edge => Err(Error::Unsupported {
                backend: "select",
                trigger: trigger.name(),
            }),
            Trigger::Level | Trigger::Oneshot => Ok(()),
        }
    }

    /// Puts `fd` into the master sets `interest` names, and out of the others.
    fn arm(&mut self, fd: RawFd, interest: Interest) {
        let wanted = [
            interest.is_readable(),
            interest.is_writable(),
            interest.is_priority(),
        ];
        set_bits(
            fd,
            [&mut self.read, &mut self.write, &mut self.except],
            wanted,
        );
        self.nfds = self.nfds.max(fd + 1);
    }

    /// Takes `fd` out of the master sets; gotcha (d): `nfds` follows the
    /// highest fd still armed.
    fn disarm(&mut self, fd: RawFd) {
        set_bits(
            fd,
            [&mut self.read, &mut self.write, &mut self.except],
            [false; 3],
        );
        if fd + 1 == self.nfds {
            self.recount_nfds();
        }
    }

    fn recount_nfds(&mut self) {
        let armed = self.table.entries().iter().filter(|e| e.armed);
        self.nfds = armed.map(|e| e.fd + 1).max().unwrap_or(0);
    }

    /// Gotcha (c): after `EBADF`, reports each closed fd once as an error
    /// and disarms it.
    fn report_closed_fds(&mut self, events: &mut Events) {
        for i in 0..self.table.entries().len() {
            let entry = self.table.entries()[i];
            if !entry.armed || events.is_full() {
                continue;
            }
            // SAFETY: F_GETFD only reads the descriptor table; a closed fd
            // makes it fail with EBADF.
            let closed = unsafe { libc::fcntl(entry.fd, libc::F_GETFD) } == -1;
            log::trace!(
                "fcntl(fd={}, F_GETFD) → {}",
                entry.fd,
                if closed {
                    "EBADF: closed while registered"
                } else {
                    "open"
                }
            );
            if closed {
                events.push_bits(entry.key, bits::ERR);
                self.table.disarm(i);
                self.disarm(entry.fd);
            }
        }
    }
}

/// Sets or clears `fd`'s bit in each of the three sets.
fn set_bits(fd: RawFd, sets: [&mut libc::fd_set; 3], on: [bool; 3]) {
    for (set, on) in sets.into_iter().zip(on) {
        // SAFETY: `fd` is in 0..FD_SETSIZE (checked at register), so the
        // bit lies inside the fd_set.
        unsafe {
            if on {
                libc::FD_SET(fd, set);
            } else {
                libc::FD_CLR(fd, set);
            }
        }
    }
}

impl Default for SelectPoller {
    fn default() -> SelectPoller {
        SelectPoller::new()
    }
}

impl fmt::Debug for SelectPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectPoller")
            .field("registered", &self.table.entries().len())
            .field("nfds", &self.nfds)
            .finish()
    }
}

impl Poller for SelectPoller {
    fn name(&self) -> &'static str {
        "select"
    }

    fn register(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        SelectPoller::check(fd, trigger)?;
        self.table.insert("select", fd, key, trigger)?;
        log::trace!(
            "select: add fd={fd} to {} key={key} (no system call)",
            set_names(interest)
        );
        self.arm(fd, interest);
        Ok(())
    }

    fn modify(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        SelectPoller::check(fd, trigger)?;
        self.table.update("select", fd, key, trigger)?;
        log::trace!(
            "select: move fd={fd} to {} key={key} (no system call)",
            set_names(interest)
        );
        // `arm` also clears the sets the new interest drops.
        self.arm(fd, interest);
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> Result<()> {
        self.table.remove("select", fd)?;
        log::trace!("select: remove fd={fd} from all sets (no system call)");
        self.disarm(fd);
        Ok(())
    }

    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        events.clear();
        let (mut read, mut write, mut except) = (self.read, self.write, self.except);
        let nfds = self.nfds;
        let result = sys::wait_retrying(timeout, "select", |ms| {
            // The sets are both input and output: start each try from the masters.
            (read, write, except) = (self.read, self.write, self.except);
            let mut tv = libc::timeval {
                tv_sec: (ms / 1000) as libc::time_t,
                tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
            };
            let tv_ptr = if ms < 0 {
                std::ptr::null_mut()
            } else {
                &mut tv as *mut libc::timeval
            };
            // SAFETY: the three sets and `tv` are valid, writable and live
            // across the call; every bit below `nfds` lies inside an fd_set
            // because only fds < FD_SETSIZE are ever set.
            unsafe { libc::select(nfds, &mut read, &mut write, &mut except, tv_ptr) }
        });
        let ready = match result {
            Ok(ready) => ready,
            Err(err) if err.raw_os_error() == Some(libc::EBADF) => {
                // The output sets are undefined now; find the culprits instead.
                self.report_closed_fds(events);
                if events.is_empty() {
                    return Err(err);
                }
                return Ok(events.len());
            }
            Err(err) => return Err(err),
        };
        // Gotcha (e): 0 also means "the last try was interrupted and then
        // the deadline passed", and an interrupted select leaves the sets as
        // they went in — every watched fd would look ready. Only a call that
        // reported something has output sets worth reading (at_most = 0).
        let mut fired_oneshot = false;
        let masters = [&mut self.read, &mut self.write, &mut self.except];
        let [mr, mw, mx] = masters;
        self.table.scan(events, ready, |_, entry| {
            let fd = entry.fd;
            let mut out = 0;
            // SAFETY: `fd` < nfds ≤ FD_SETSIZE, so each bit lies inside its set.
            unsafe {
                if libc::FD_ISSET(fd, &read) {
                    out |= bits::IN;
                }
                if libc::FD_ISSET(fd, &write) {
                    out |= bits::OUT;
                }
                if libc::FD_ISSET(fd, &except) {
                    out |= bits::PRI;
                }
            }
            if out != 0 && entry.trigger == Trigger::Oneshot {
                entry.armed = false;
                set_bits(fd, [&mut *mr, &mut *mw, &mut *mx], [false; 3]);
                fired_oneshot = true;
            }
            out
        });
        if fired_oneshot {
            self.recount_nfds();
        }
        if log::log_enabled!(log::Level::Trace) {
            trace_wait(nfds, timeout, events);
        }
        Ok(events.len())
    }
}

/// The trace line of one `select`: out of line, so that the loop that
/// calls `poll` carries none of the formatting.
#[cold]
#[inline(never)]
fn trace_wait(nfds: libc::c_int, timeout: Option<Duration>, events: &Events) {
    log::trace!(
        "select(nfds={nfds}, timeout={}) → {} ready{}",
        sys::show_timeout(sys::timeout_ms(timeout)),
        events.len(),
        events.describe()
    );
}

/// Names the sets an interest puts an fd in, for the trace log.
fn set_names(interest: Interest) -> String {
    let sets = [
        (interest.is_readable(), "readfds"),
        (interest.is_writable(), "writefds"),
        (interest.is_priority(), "exceptfds"),
    ];
    let names: Vec<&str> = sets.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
    names.join("+")
}

/// An `fd_set` with no bit set.
fn empty_set() -> libc::fd_set {
    let mut set = std::mem::MaybeUninit::<libc::fd_set>::uninit();
    // SAFETY: FD_ZERO initialises every byte of the set it is given.
    unsafe {
        libc::FD_ZERO(set.as_mut_ptr());
        set.assume_init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_setsize_is_refused_but_the_last_bit_is_fine() {
        let mut s = SelectPoller::new();
        let err = s
            .register(1024, 0, Interest::READABLE, Trigger::Level)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::FdTooLarge {
                fd: 1024,
                limit: 1024
            }
        ));
        // 1023 is a legal bit: an open descriptor there is accepted.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        // SAFETY: dup2 onto 1023, a number this test owns until it closes it.
        let fd = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&a), 1023) };
        assert_eq!(fd, 1023);
        s.register(1023, 0, Interest::READABLE, Trigger::Level)
            .unwrap();
        assert_eq!(s.nfds, 1024);
        s.unregister(1023).unwrap();
        // SAFETY: closes the duplicate made above.
        unsafe { libc::close(1023) };
    }

    #[test]
    fn nfds_drops_to_the_next_highest_armed_fd() {
        use std::os::fd::AsRawFd;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (lo, hi) = (
            a.as_raw_fd().min(b.as_raw_fd()),
            a.as_raw_fd().max(b.as_raw_fd()),
        );
        let mut s = SelectPoller::new();
        s.register(lo, 0, Interest::READABLE, Trigger::Level)
            .unwrap();
        s.register(hi, 1, Interest::WRITABLE, Trigger::Level)
            .unwrap();
        assert_eq!(s.nfds, hi + 1);
        s.unregister(hi).unwrap();
        assert_eq!(s.nfds, lo + 1);
        s.unregister(lo).unwrap();
        assert_eq!(s.nfds, 0);
    }
}
