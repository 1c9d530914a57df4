//! The `io_uring(7)` backend, in poll mode: [`UringPoller`].
//!
//! **System calls.** `io_uring_setup(2)` makes two rings in memory shared with
//! the kernel: the program writes requests (SQEs) into the submission queue
//! and reads results (CQEs) from the completion queue. `IORING_OP_POLL_ADD`
//! asks "tell me when this fd is ready" (= `register`), `IORING_OP_POLL_REMOVE`
//! withdraws the request (= `unregister`), and `modify` is a remove plus a new
//! add. Nothing reaches the kernel until `poll`: its one `io_uring_enter(2)`
//! submits every queued request *and* waits for completions.
//!
//! **Python.** None: the standard library stops at `select.epoll`, and the
//! course has no io_uring server.
//!
//! **Cost.** O(ready) per wait, like epoll. A poll request completes once, so
//! level triggering re-arms each reported fd, but the re-arms ride in the next
//! wait: one system call per loop turn however many fds were re-armed, where
//! epoll in oneshot mode pays one `epoll_ctl` per event.
//!
//! **Limits.** Linux ≥ 5.13 (the timeout argument needs 5.11, multishot polls
//! 5.13). An administrator may disable io_uring (`kernel.io_uring_disabled`),
//! and container seccomp filters often block it: [`UringPoller::new`] then
//! fails with [`Error::Unavailable`], which names epoll as the fallback.
//!
//! | `Interest` / `Trigger` | poll request |
//! |---|---|
//! | `READABLE` | `POLLIN \| POLLRDHUP` |
//! | `WRITABLE` | `POLLOUT` |
//! | `PRIORITY` | `POLLPRI` |
//! | `Level` | oneshot `POLL_ADD`, submitted again after every completion |
//! | `Edge` | multishot `POLL_ADD` (`IORING_POLL_ADD_MULTI`): one completion per wake-up |
//! | `Oneshot` | oneshot `POLL_ADD`, submitted again only by `modify` |
//!
//! | completion `res` | `Event` |
//! |---|---|
//! | `POLLIN` | readable |
//! | `POLLOUT` | writable |
//! | `POLLPRI` | priority |
//! | `POLLRDHUP` | read_closed + readable |
//! | `POLLHUP` | hangup + readable |
//! | `POLLERR` | error + readable |
//! | `-EBADF` and other negative `res` | error + readable, once; the registration is disarmed |
//!
//! **Gotchas.**
//! - (a) A completion can arrive for a request that no longer matters: the fd
//!   was unregistered or modified while its poll was in flight, or its number
//!   now names another file. Every request carries `user_data = fd << 32 |
//!   generation`; `modify` and `unregister` move the generation on, and a
//!   completion whose generation is not the current one is dropped.
//! - (b) Mistakes are found late: a bad fd is reported by the kernel when the
//!   request runs, inside the next `poll`, as one `error` event (like poll's
//!   `POLLNVAL`), not by `register`.
//! - (c) A pending poll holds a reference to the *file*: closing a registered
//!   fd neither cancels the request nor closes the socket (no FIN goes out)
//!   until `unregister` reaches the kernel at the next `poll`. Unregister,
//!   then close, then poll.
//! - (d) A multishot poll is edge-triggered in the kernel unless
//!   `IORING_POLL_ADD_LEVEL` is set, and that flag still only reports on
//!   wake-ups, not at every wait; so it serves `Edge`, and `Level` is built
//!   from re-armed oneshot polls (as libev's io_uring backend does). A
//!   multishot poll may end (no `IORING_CQE_F_MORE` flag); it is re-armed.
//! - (e) A full completion queue loses nothing: the kernel keeps the overflow
//!   (`IORING_FEAT_NODROP`, required) and hands it over at the next enter. A
//!   full [`Events`] leaves completions in the ring for the next `poll`.
//! - (f) After `fork()` parent and child share the rings' memory: a child
//!   must build a new poller rather than use the parent's.

use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::error::{Error, Result};
use crate::poller::event::{FlagNames, bits};
use crate::poller::{Event, Events, Interest, Poller, Trigger, poll};
use crate::sys;

/// A poller that submits poll requests to an io_uring and reaps their completions.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use reactor::{Events, Interest, Poller, Trigger, UringPoller};
///
/// let (a, mut b) = UnixStream::pair()?;
/// let mut uring = UringPoller::new()?;
/// uring.register(a.as_raw_fd(), 42, Interest::READABLE, Trigger::Level)?;
/// b.write_all(b"x")?;
/// let mut events = Events::with_capacity(4);
/// uring.poll(&mut events, None)?;
/// assert_eq!(events.iter().next().unwrap().key(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UringPoller {
    /// The submission and completion rings, shared with the kernel.
    ring: IoUring,
    /// One slot per fd number: the registration, if any, and its generation.
    slots: Vec<Slot>,
    /// Fds whose `POLL_ADD` waits for the next `poll` (register, modify, re-arm).
    to_arm: Vec<RawFd>,
    /// `user_data` of the polls to withdraw at the next `poll`.
    to_remove: Vec<u64>,
}

/// What the kernel does not keep for us about one fd.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Given back in every event.
    key: usize,
    /// The `poll(2)` flags asked for.
    flags: u32,
    /// Level, edge or oneshot.
    trigger: Trigger,
    /// Carried in `user_data`; moves on at `modify` and `unregister` (gotcha a).
    generation: u32,
    /// Where the registration stands.
    state: State,
}

/// The life of a registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Not registered.
    #[default]
    Free,
    /// Registered; its `POLL_ADD` goes out with the next `poll`.
    Queued,
    /// Its poll request is in the kernel.
    Armed,
    /// Reported and silent: a oneshot that fired, or an fd the kernel refused.
    Fired,
}

/// `user_data` of `POLL_REMOVE` requests, whose own completions are ignored:
/// no fd is `u32::MAX`.
const REMOVAL: u64 = u64::MAX;

/// Submission queue size; the completion queue is four times larger.
const ENTRIES: u32 = 256;

impl UringPoller {
    /// Creates an io_uring with a 256-entry submission queue.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] if the kernel has no io_uring (`ENOSYS`), does
    /// not let this process use it (`EPERM`: `kernel.io_uring_disabled`, a
    /// seccomp filter) or lacks a feature this backend needs; it names epoll
    /// as the fallback. [`Error::Sys`] for other failures (`EMFILE`, `ENOMEM`).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Backend, Error, Poller, UringPoller};
    ///
    /// let poller = match UringPoller::new() {
    ///     Ok(uring) => reactor::AnyPoller::Uring(uring),
    ///     Err(Error::Unavailable { .. }) => Backend::Epoll.new_poller()?,
    ///     Err(other) => return Err(other),
    /// };
    /// assert!(["uring", "epoll"].contains(&poller.name()));
    /// # Ok::<(), reactor::Error>(())
    /// ```
    pub fn new() -> Result<UringPoller> {
        UringPoller::with_entries(ENTRIES)
    }

    /// As [`new`](UringPoller::new), with `entries` submission slots
    /// (rounded up to a power of two by the kernel) and four times as many
    /// completion slots. Small rings show gotcha (e) in tests.
    fn with_entries(entries: u32) -> Result<UringPoller> {
        let ring = IoUring::builder()
            .setup_cqsize(entries * 4)
            .build(entries)
            .map_err(|err| sys::unavailable("uring", "io_uring_setup", err))?;
        let params = ring.params();
        // Without these the wait could not carry its timeout (EXT_ARG) or a
        // full completion queue would drop events (NODROP).
        if !params.is_feature_ext_arg() || !params.is_feature_nodrop() {
            return Err(sys::missing_feature(
                "uring",
                "io_uring lacks IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP (Linux 5.11 or later needed)",
            ));
        }
        log::trace!(
            "io_uring_setup(sq={}, cq={}) → ring fd={}",
            params.sq_entries(),
            params.cq_entries(),
            std::os::fd::AsRawFd::as_raw_fd(&ring)
        );
        Ok(UringPoller {
            ring,
            slots: Vec::new(),
            to_arm: Vec::new(),
            to_remove: Vec::new(),
        })
    }

    /// The slot of a registered `fd`, or `NotRegistered`.
    fn registered(&mut self, fd: RawFd) -> Result<&mut Slot> {
        match self.slots.get_mut(fd as usize) {
            Some(slot) if slot.state != State::Free => Ok(slot),
            _ => Err(Error::NotRegistered {
                backend: "uring",
                fd,
            }),
        }
    }

    /// Withdraws the request in flight for `fd`, if any, and moves the
    /// generation on so that its completion is dropped.
    fn retire(&mut self, fd: RawFd) {
        let slot = &mut self.slots[fd as usize];
        if slot.state == State::Armed {
            log::trace!("uring: POLL_REMOVE fd={fd} queued");
            self.to_remove.push(user_data(fd, slot.generation));
        }
        slot.generation = slot.generation.wrapping_add(1);
    }

    /// Puts `fd` in line for a `POLL_ADD` at the next `poll`.
    fn queue(&mut self, fd: RawFd) {
        let slot = &mut self.slots[fd as usize];
        if slot.state != State::Queued {
            slot.state = State::Queued;
            self.to_arm.push(fd);
        }
    }

    /// Writes the queued removals and additions into the submission queue.
    /// Only when more are queued than it holds does this enter the kernel
    /// early, to make room.
    fn fill_submission_queue(&mut self) -> Result<()> {
        let mut removals = std::mem::take(&mut self.to_remove);
        for target in removals.drain(..) {
            log::trace!("POLL_REMOVE fd={} gen={}", target >> 32, target as u32);
            let sqe = opcode::PollRemove::new(target).build().user_data(REMOVAL);
            self.push(&sqe)?;
        }
        self.to_remove = removals;
        let mut fds = std::mem::take(&mut self.to_arm);
        for fd in fds.drain(..) {
            let slot = &mut self.slots[fd as usize];
            if slot.state != State::Queued {
                continue; // unregistered, or queued twice, since it was listed
            }
            slot.state = State::Armed;
            log::trace!(
                "POLL_ADD fd={fd} {} {} key={}",
                FlagNames(slot.flags),
                slot.trigger,
                slot.key
            );
            let sqe = opcode::PollAdd::new(types::Fd(fd), slot.flags)
                .multi(slot.trigger == Trigger::Edge)
                .build()
                .user_data(user_data(fd, slot.generation));
            self.push(&sqe)?;
        }
        self.to_arm = fds;
        Ok(())
    }

    /// Pushes one request; a full queue is first handed to the kernel.
    fn push(&mut self, sqe: &squeue::Entry) -> Result<()> {
        // SAFETY: a poll request holds no pointer into our memory (the fd and
        // the flags are values), so nothing must outlive the submission.
        while unsafe { self.ring.submission().push(sqe) }.is_err() {
            let taken = self.ring.submit();
            log::trace!(
                "io_uring_enter(submit, wait=0) → {taken:?}: the submission queue was full"
            );
            match taken {
                Ok(n) if n > 0 => {}
                // Nothing taken: the kernel is out of room for completions.
                Ok(_) => {
                    return Err(sys::io_error(
                        std::io::Error::from_raw_os_error(libc::EBUSY),
                        "io_uring_enter",
                        None,
                    ));
                }
                Err(err) => return Err(sys::io_error(err, "io_uring_enter", None)),
            }
        }
        Ok(())
    }

    /// One turn of the ring: submits what is queued, waits up to `ms`
    /// (`-1`: block, `0`: not at all) for a completion, then turns the
    /// completions into `events`. Returns how many events it added.
    fn enter(&mut self, events: &mut Events, ms: libc::c_int) -> std::io::Result<usize> {
        let submit = self.ring.submission().len();
        let want = usize::from(ms != 0);
        let result = if ms < 0 {
            self.ring.submit_and_wait(want)
        } else {
            // The timeout rides on the same call (IORING_ENTER_EXT_ARG).
            let timeout = types::Timespec::from(Duration::from_millis(ms as u64));
            let args = types::SubmitArgs::new().timespec(&timeout);
            self.ring.submitter().submit_with_args(want, &args)
        };
        let cqes = self.ring.completion().len();
        self.reap(events);
        if log::log_enabled!(log::Level::Trace) {
            let outcome = match result.as_ref().map_err(std::io::Error::raw_os_error) {
                Ok(_) => String::new(),
                Err(Some(libc::ETIME)) => " (timed out)".to_owned(),
                Err(Some(libc::EINTR)) => " (interrupted by a signal: EINTR)".to_owned(),
                Err(_) => " (failed)".to_owned(),
            };
            log::trace!(
                "io_uring_enter(submit={submit}, wait={want}, timeout={}) → {cqes} cqes{outcome}{}",
                sys::show_timeout(ms),
                events.describe()
            );
        }
        match result {
            // Interrupted or timed out, but completions came: still a turn.
            Err(_) if !events.is_empty() => Ok(events.len()),
            Err(err) => Err(err),
            Ok(_) => Ok(events.len()),
        }
    }

    /// Turns completions into events until the ring is empty or `events`
    /// full, drops stale ones, and queues the re-arms.
    fn reap(&mut self, events: &mut Events) {
        while events.len() < events.capacity() {
            let Some(cqe) = self.ring.completion().next() else {
                return;
            };
            let data = cqe.user_data();
            if data == REMOVAL {
                continue; // a POLL_REMOVE's own completion: nothing to report
            }
            let (fd, generation) = ((data >> 32) as RawFd, data as u32);
            let slot = match self.slots.get_mut(fd as usize) {
                // The request this registration waits on.
                Some(slot) if slot.generation == generation && slot.state == State::Armed => slot,
                // A request withdrawn or replaced since (gotcha a).
                _ => {
                    log::trace!("dropped completion fd={fd} gen={generation}");
                    continue;
                }
            };
            let res = cqe.result();
            let event = if res < 0 {
                log::trace!(
                    "POLL_ADD fd={fd} failed: {}",
                    std::io::Error::from_raw_os_error(-res)
                );
                Event::from_bits(slot.key, bits::ERR)
            } else {
                // A completion's `res` is a poll(2) `revents` mask.
                Event::from_bits(slot.key, poll::revents_to_bits(res as u16 as libc::c_short))
            };
            slot.state = match slot.trigger {
                // Refused by the kernel (EBADF): silent from now on (gotcha b).
                _ if res < 0 => State::Fired,
                // Edge: the multishot request goes on while F_MORE says so.
                Trigger::Edge if cqueue::more(cqe.flags()) => State::Armed,
                // Oneshot: silent until modify.
                Trigger::Oneshot => State::Fired,
                // Level, or a multishot the kernel ended: arm it again, to
                // go out with the next wait.
                Trigger::Level | Trigger::Edge => {
                    self.to_arm.push(fd);
                    State::Queued
                }
            };
            events.push(event);
        }
    }
}

impl std::fmt::Debug for UringPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringPoller")
            .field("ring_fd", &std::os::fd::AsRawFd::as_raw_fd(&self.ring))
            .field("to_arm", &self.to_arm.len())
            .field("to_remove", &self.to_remove.len())
            .finish_non_exhaustive()
    }
}

impl Poller for UringPoller {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn register(
        &mut self,
        fd: RawFd,
        key: usize,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        sys::check_fd(fd)?;
        if self.registered(fd).is_ok() {
            return Err(Error::AlreadyRegistered {
                backend: "uring",
                fd,
            });
        }
        if self.slots.len() <= fd as usize {
            // The table grows to the fd number: only for an open descriptor.
            sys::check_open(fd)?;
            self.slots.resize(fd as usize + 1, Slot::default());
        }
        let slot = &mut self.slots[fd as usize];
        (slot.key, slot.flags, slot.trigger) = (key, interest_to_flags(interest), trigger);
        log::trace!("uring: register fd={fd} key={key}, POLL_ADD queued (no system call)");
        self.queue(fd);
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
        let slot = self.registered(fd)?;
        (slot.key, slot.flags, slot.trigger) = (key, interest_to_flags(interest), trigger);
        log::trace!("uring: modify fd={fd} key={key}, POLL_ADD queued");
        self.retire(fd);
        self.queue(fd);
        Ok(())
    }

    fn unregister(&mut self, fd: RawFd) -> Result<()> {
        sys::check_fd(fd)?;
        self.registered(fd)?;
        log::trace!("uring: unregister fd={fd}");
        self.retire(fd);
        self.slots[fd as usize].state = State::Free;
        Ok(())
    }

    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        events.clear();
        self.fill_submission_queue()?;
        // Each try submits what is queued and waits; a try that reaps only
        // stale completions counts as nothing, and is tried again with the
        // time that is left.
        sys::wait_retrying_io(timeout, "io_uring_enter", |ms| self.enter(events, ms))
    }
}

/// `user_data` for a request about `fd` at `generation` (gotcha a).
fn user_data(fd: RawFd, generation: u32) -> u64 {
    (fd as u64) << 32 | u64::from(generation)
}

/// Turns what the caller asked for into a poll request's flags: those of
/// `poll(2)`, which is why this defers to the poll backend.
fn interest_to_flags(interest: Interest) -> u32 {
    poll::interest_to_flags(interest) as u16 as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// Gotcha (e): more ready fds than the completion queue holds; every one
    /// is reported, none is lost to the overflow.
    #[test]
    fn a_full_completion_queue_loses_no_event() {
        let mut uring = UringPoller::with_entries(4).unwrap(); // 16 completion slots
        let cq = uring.ring.params().cq_entries() as usize;
        let pairs: Vec<_> = (0..cq * 3).map(|_| UnixStream::pair().unwrap()).collect();
        for (key, (ours, theirs)) in pairs.iter().enumerate() {
            uring
                .register(ours.as_raw_fd(), key, Interest::READABLE, Trigger::Oneshot)
                .unwrap();
            (&*theirs).write_all(b"x").unwrap();
        }
        let mut events = Events::with_capacity(pairs.len());
        let mut seen = vec![false; pairs.len()];
        let mut polls = Vec::new();
        while polls.len() < 10 && !seen.iter().all(|&s| s) {
            polls.push(
                uring
                    .poll(&mut events, Some(Duration::from_secs(1)))
                    .unwrap(),
            );
            for event in &events {
                seen[event.key()] = true;
            }
        }
        // The first poll could reap only what the ring held; the rest had
        // overflowed into the kernel's list and came with later polls.
        assert!(
            polls[0] <= cq && polls.len() > 1,
            "events per poll: {polls:?}"
        );
        assert!(
            uring.ring.completion().overflow() == 0,
            "NODROP: nothing counted as dropped"
        );
        let missing: Vec<usize> = (0..seen.len()).filter(|&k| !seen[k]).collect();
        assert!(missing.is_empty(), "never reported: {missing:?}");
    }

    /// Gotcha (a): a poll completes while `modify` is queued; its
    /// completion carries the old generation and is dropped, so the old key
    /// never shows up.
    #[test]
    fn a_completion_from_before_modify_is_dropped() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut uring = UringPoller::new().unwrap();
        let fd = ours.as_raw_fd();
        uring
            .register(fd, 1, Interest::READABLE, Trigger::Level)
            .unwrap();
        let mut events = Events::with_capacity(8);
        // Submits the POLL_ADD for key 1; nothing is ready yet.
        assert_eq!(uring.poll(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        (&theirs).write_all(b"x").unwrap(); // the kernel completes it for key 1
        uring
            .modify(fd, 2, Interest::READABLE, Trigger::Level)
            .unwrap();
        for _ in 0..3 {
            uring
                .poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            assert!(
                events.len() == 1 && events.iter().all(|e| e.key() == 2),
                "{events:?}"
            );
        }
    }

    /// Gotcha (b): the kernel, not `register`, finds a bad fd: one error
    /// event, then silence. The fd is closed after `register` and before
    /// its POLL_ADD reaches the kernel (a high number, which the other
    /// tests' threads will not reuse in between).
    #[test]
    fn a_bad_fd_is_one_error_event_then_silence() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        // SAFETY: F_DUPFD_CLOEXEC gives a new descriptor ≥ 5000 that only
        // this test owns; it is closed once, below.
        let high = unsafe { libc::fcntl(ours.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 5000) };
        assert!(high >= 5000, "{}", std::io::Error::last_os_error());
        let mut uring = UringPoller::new().unwrap();
        uring
            .register(high, 9, Interest::READABLE, Trigger::Level)
            .unwrap();
        // SAFETY: `high` is ours and still open.
        assert_eq!(unsafe { libc::close(high) }, 0);
        let mut events = Events::with_capacity(8);
        uring
            .poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        let event = events.iter().next().expect("an error event");
        assert!(
            event.key() == 9 && event.is_error() && event.is_readable(),
            "{event:?}"
        );
        assert_eq!(
            uring
                .poll(&mut events, Some(Duration::from_millis(20)))
                .unwrap(),
            0
        );
        uring.unregister(high).unwrap();
    }
}
