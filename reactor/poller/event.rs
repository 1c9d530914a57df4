//! What happened: [`Event`] (one ready descriptor) and [`Events`] (the reusable
//! buffer that `poll` fills).
//!
//! The course reads `events = p.poll()` as a list of `(fd, event_mask)` tuples
//! and tests the mask with `&`. Here an event carries the *key* given at
//! `register` instead of the fd (fd numbers are reused after `close`, keys
//! need not be), and the mask is answered as yes/no questions.
//!
//! **Zero copy.** [`Events`] *is* the array `epoll_wait(2)` writes: an
//! [`Event`] has the kernel's own `struct epoll_event` layout (a 32-bit mask
//! and the 64-bit key), so the epoll backend hands the buffer to the kernel
//! and nothing is copied or decoded afterwards; each question
//! (`is_readable`, …) tests the kernel's bits when it is asked. select and
//! poll write the same layout, translating their results into epoll's bits
//! (`POLLIN` and `EPOLLIN` are the same number on Linux; so are `OUT`, `PRI`,
//! `ERR`, `HUP` and `RDHUP`).

use std::fmt;

// poll(2)'s revents bits are epoll's; the poll backend copies them as they are.
const _: () = assert!(
    libc::POLLIN as i32 == libc::EPOLLIN
        && libc::POLLOUT as i32 == libc::EPOLLOUT
        && libc::POLLPRI as i32 == libc::EPOLLPRI
        && libc::POLLERR as i32 == libc::EPOLLERR
        && libc::POLLHUP as i32 == libc::EPOLLHUP
        && libc::POLLRDHUP as i32 == libc::EPOLLRDHUP
);

/// The kernel bits an [`Event`] answers from (epoll's numbering).
pub(crate) mod bits {
    /// Data (or end of file) to read.
    pub const IN: u32 = libc::EPOLLIN as u32;
    /// Room to write.
    pub const OUT: u32 = libc::EPOLLOUT as u32;
    /// Urgent data.
    pub const PRI: u32 = libc::EPOLLPRI as u32;
    /// An error is pending.
    pub const ERR: u32 = libc::EPOLLERR as u32;
    /// Both directions closed.
    pub const HUP: u32 = libc::EPOLLHUP as u32;
    /// The peer shut down writing.
    pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
    /// Every bit after which the next read will not block.
    pub const READ_ANY: u32 = IN | RDHUP | HUP | ERR;
}

/// One ready descriptor, as reported by [`Poller::poll`](crate::Poller::poll).
///
/// What each backend reported in this crate's tests
/// (`tests/event_table.rs`), for a descriptor watched for `READABLE` at
/// level, on a TCP connection and on an `AF_UNIX` stream pair (the same
/// unless the row says otherwise):
///
/// | situation | select | poll | epoll | uring |
/// |---|---|---|---|---|
/// | data arrived | readable | readable | readable | readable |
/// | peer closed, TCP (a FIN) | readable | readable, read_closed | readable, read_closed | readable, read_closed |
/// | peer closed, `AF_UNIX` | readable | readable, read_closed, hangup | readable, read_closed, hangup | readable, read_closed, hangup |
/// | peer closed and we shut down writing | readable | readable, read_closed, hangup | readable, read_closed, hangup | readable, read_closed, hangup |
/// | peer reset (TCP RST; `AF_UNIX`: peer closed with our data unread) | readable | readable, read_closed, hangup, error | readable, read_closed, hangup, error | readable, read_closed, hangup, error |
/// | our fd closed while registered | readable, error (`select` fails with `EBADF`; a probe finds the fd), once | readable, error (`POLLNVAL`), once | nothing: closing the last reference removed the registration | readable, error (the queued `POLL_ADD` failed with `EBADF`), once; nothing if the request had reached the kernel before the close, whose pending poll then keeps the file open |
///
/// io_uring's poll requests speak `poll(2)`'s flags, so uring reports what
/// poll reports.
///
/// A reset connection keeps being reported at every `poll` whatever the
/// interest is changed to (poll, epoll and uring report `hangup` and `error`
/// unasked, uring `read_closed` too; select reports `WRITABLE` because a
/// write would fail at once): on `hangup` or `error`, unregister and close
/// rather than "pause" it.
///
/// `hangup` and `error` always come with `readable` set too, so the next
/// `read` returns 0 (end of file) or the error: a program that only looks at
/// `readable` still closes the connection.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use reactor::{Backend, Events, Interest, Poller, Trigger};
///
/// let (a, mut b) = UnixStream::pair()?;
/// let mut poller = Backend::Poll.new_poller()?;
/// poller.register(a.as_raw_fd(), 7, Interest::READABLE, Trigger::Level)?;
/// b.write_all(b"hi")?;
/// drop(b);
///
/// let mut events = Events::with_capacity(8);
/// poller.poll(&mut events, None)?;
/// let event = events.iter().next().unwrap();
/// assert_eq!(event.key(), 7);
/// assert!(event.is_readable() && event.is_read_closed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `for fd, mask in p.poll(): if mask & select.POLLIN: ...`
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Event(libc::epoll_event);

impl Event {
    /// Builds an event. The backends and the `Reactor` use this; a program
    /// only needs it to fake events in its own tests.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = reactor::Event::new(3, true, false);
    /// assert!(event.is_readable() && !event.is_writable());
    /// ```
    pub const fn new(key: usize, readable: bool, writable: bool) -> Event {
        let mut flags = 0;
        if readable {
            flags |= bits::IN;
        }
        if writable {
            flags |= bits::OUT;
        }
        Event::from_bits(key, flags)
    }

    /// An event from epoll's bits (`EPOLLIN`, `EPOLLERR`, …): what the
    /// select, poll and io_uring backends build after their own system call.
    pub(crate) const fn from_bits(key: usize, bits: u32) -> Event {
        Event(libc::epoll_event {
            events: bits,
            u64: key as u64,
        })
    }

    /// An event from its answers, one flag per question, for a backend whose
    /// results are not epoll bits.
    #[allow(
        dead_code,
        clippy::too_many_arguments,
        clippy::fn_params_excessive_bools
    )]
    pub(crate) const fn from_parts(
        key: usize,
        readable: bool,
        writable: bool,
        error: bool,
        hangup: bool,
        read_closed: bool,
        priority: bool,
    ) -> Event {
        let mut flags = 0;
        let answers = [
            (readable, bits::IN),
            (writable, bits::OUT),
            (error, bits::ERR),
            (hangup, bits::HUP),
            (read_closed, bits::RDHUP),
            (priority, bits::PRI),
        ];
        let mut i = 0;
        while i < answers.len() {
            if answers[i].0 {
                flags |= answers[i].1;
            }
            i += 1;
        }
        Event::from_bits(key, flags)
    }

    /// The kernel's mask, as epoll numbers it.
    const fn bits(&self) -> u32 {
        self.0.events
    }

    /// The key the descriptor was registered with.
    pub const fn key(&self) -> usize {
        self.0.u64 as usize
    }

    /// A read will not block: data, end of file, or an error waits.
    /// Hang-up, half-close and error all count, so a program that only asks
    /// this still reads, sees the end of file or the error, and closes.
    pub const fn is_readable(&self) -> bool {
        self.bits() & bits::READ_ANY != 0
    }

    /// A write will not block (or will fail at once with the pending error).
    pub const fn is_writable(&self) -> bool {
        self.bits() & bits::OUT != 0
    }

    /// An error is pending on the descriptor (`POLLERR`/`EPOLLERR`, or
    /// `POLLNVAL`: the descriptor was closed while registered).
    pub const fn is_error(&self) -> bool {
        self.bits() & bits::ERR != 0
    }

    /// Both directions are closed (`POLLHUP`/`EPOLLHUP`).
    pub const fn is_hangup(&self) -> bool {
        self.bits() & bits::HUP != 0
    }

    /// The peer will send no more: it shut down writing or closed
    /// (`POLLRDHUP`/`EPOLLRDHUP`). Data sent before that may still be unread.
    /// `select()` cannot tell this apart from plain readability.
    pub const fn is_read_closed(&self) -> bool {
        self.bits() & bits::RDHUP != 0
    }

    /// Urgent (out-of-band) data is waiting (`POLLPRI`/`EPOLLPRI`, or
    /// `select()`'s exception set).
    pub const fn is_priority(&self) -> bool {
        self.bits() & bits::PRI != 0
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.key() == other.key() && self.bits() == other.bits()
    }
}

impl Eq for Event {}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The answers, not the raw mask: hang-up and error read as `IN` too.
        let readable = if self.is_readable() { bits::IN } else { 0 };
        write!(
            f,
            "key={} {}",
            self.key(),
            FlagNames(self.bits() | readable)
        )
    }
}

/// Prints kernel flags the way the trace log does: `IN|OUT|RDHUP`. One table
/// for every backend: poll's bits are epoll's (checked above), and select's
/// sets are translated into them.
pub(crate) struct FlagNames(pub(crate) u32);

impl fmt::Display for FlagNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u32, &str); 8] = [
            (bits::IN, "IN"),
            (bits::OUT, "OUT"),
            (bits::PRI, "PRI"),
            (bits::RDHUP, "RDHUP"),
            (bits::HUP, "HUP"),
            (bits::ERR, "ERR"),
            (libc::EPOLLET as u32, "ET"),
            (libc::EPOLLONESHOT as u32, "ONESHOT"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// A reusable buffer of events.
///
/// [`Poller::poll`](crate::Poller::poll) *replaces* its contents (it never
/// appends) and reports at most [`capacity`](Events::capacity) events per
/// call; the rest wait for the next call. Allocate it once, outside the loop.
///
/// # Examples
///
/// ```
/// use reactor::Events;
///
/// let events = Events::with_capacity(0);
/// // epoll_wait() rejects maxevents == 0 with EINVAL, so 0 is raised to 1.
/// assert_eq!(events.capacity(), 1);
/// assert!(events.is_empty());
/// ```
///
/// Python: the list `p.poll()` returns, except that it is reused.
#[derive(Clone)]
pub struct Events {
    /// The kernel's array: `epoll_wait` writes straight into it.
    list: Vec<Event>,
    /// How many events one `poll` may report: at least 1 (`epoll_wait`
    /// refuses 0), at most `c_int::MAX` (its `maxevents` is an `int`).
    capacity: usize,
    /// A key the iterator passes over: the `Reactor`'s own waker.
    hidden: Option<usize>,
}

impl Default for Events {
    /// Room for one event per `poll`, allocated at the first `poll`.
    fn default() -> Events {
        Events {
            list: Vec::new(),
            capacity: 1,
            hidden: None,
        }
    }
}

impl Events {
    /// A buffer that holds up to `capacity` events per `poll` (at least 1;
    /// at most `c_int::MAX`, far more than memory allows).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.clamp(1, libc::c_int::MAX as usize);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
            hidden: None,
        }
    }

    /// How many events one `poll` can report.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events the last `poll` reported.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last `poll` reported nothing (it timed out).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The events of the last `poll`.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            events: self.list.iter(),
            hidden: self.hidden,
        }
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.list.clear();
        self.hidden = None;
    }

    /// Adds an event. Backends use this; so can a program that injects
    /// events of its own (a timer, a test's spurious wake-up).
    ///
    /// Pushing past `capacity` grows the buffer like a `Vec`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Event, Events};
    ///
    /// let mut events = Events::with_capacity(4);
    /// events.push(Event::new(7, true, false)); // a fake "key 7 is readable"
    /// assert_eq!(events.len(), 1);
    /// assert!(events.iter().all(|e| e.key() == 7 && e.is_readable()));
    /// events.clear();
    /// assert!(events.is_empty());
    /// ```
    ///
    /// Python: `events.append((fd, select.POLLIN))`
    pub fn push(&mut self, event: Event) {
        self.list.push(event);
    }

    /// Adds an event from epoll's bits: how select, poll and io_uring report.
    pub(crate) fn push_bits(&mut self, key: usize, bits: u32) {
        self.list.push(Event::from_bits(key, bits));
    }

    /// Whether another event fits before `poll` must stop.
    pub(crate) fn is_full(&self) -> bool {
        self.list.len() >= self.capacity()
    }

    /// Empties the buffer and hands its memory to the kernel: a pointer to
    /// room for that many `epoll_event`s, and the number, as `epoll_wait`
    /// takes it (at most `c_int::MAX`). Call
    /// [`set_filled`](Events::set_filled) with what the kernel wrote.
    #[inline]
    pub(crate) fn kernel_buffer(&mut self) -> (*mut libc::epoll_event, libc::c_int) {
        self.clear();
        // Allocated already, unless the buffer came from `default()`.
        self.list.reserve(self.capacity);
        // `Event` is `repr(transparent)` over `epoll_event`: same layout.
        // The capacity fits in a c_int (`with_capacity` clamps it).
        (self.list.as_mut_ptr().cast(), self.capacity as libc::c_int)
    }

    /// Takes the `n` events the kernel wrote into
    /// [`kernel_buffer`](Events::kernel_buffer).
    ///
    /// # Safety
    ///
    /// The first `n` entries (`n` ≤ the capacity it returned) were written.
    #[inline]
    pub(crate) unsafe fn set_filled(&mut self, n: usize) {
        debug_assert!(n <= self.list.capacity());
        // SAFETY: the caller promises the kernel initialised `n` entries,
        // within the reserved capacity; any bit pattern is a valid Event.
        unsafe { self.list.set_len(n) };
    }

    /// Makes the iterator pass over events carrying `key` (the `Reactor`'s
    /// waker); `None` shows everything again.
    pub(crate) fn hide(&mut self, key: Option<usize>) {
        self.hidden = key;
    }

    /// Removes the first event carrying `key`; whether there was one.
    pub(crate) fn take(&mut self, key: usize) -> bool {
        match self.list.iter().position(|e| e.key() == key) {
            Some(i) => {
                self.list.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// `: key=1 IN, key=3 IN|RDHUP`, for the trace log.
    pub(crate) fn describe(&self) -> String {
        let mut out = String::new();
        for (i, ev) in self.list.iter().enumerate() {
            out.push_str(if i == 0 { ": " } else { ", " });
            out.push_str(&format!("{ev:?}"));
        }
        out
    }
}

/// The events of the last `poll`, in the order the backend reported them.
///
/// # Examples
///
/// ```
/// use reactor::{Event, Events};
///
/// let mut events = Events::with_capacity(4);
/// events.push(Event::new(1, true, false));
/// events.push(Event::new(2, false, true));
/// let keys: Vec<usize> = events.iter().map(|e| e.key()).collect();
/// assert_eq!(keys, [1, 2]);
/// ```
///
/// Python: iterating over the list `p.poll()` returned.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    events: std::slice::Iter<'a, Event>,
    hidden: Option<usize>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Event;

    #[inline]
    fn next(&mut self) -> Option<&'a Event> {
        let hidden = self.hidden;
        self.events.find(|e| Some(e.key()) != hidden)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (low, high) = self.events.size_hint();
        (if self.hidden.is_some() { 0 } else { low }, high)
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
