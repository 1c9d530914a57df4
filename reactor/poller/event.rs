//! What happened: [`Event`] (one ready descriptor) and [`Events`] (the reusable
//! buffer that `poll` fills).
//!
//! The course reads `events = p.poll()` as a list of `(fd, event_mask)` tuples
//! and tests the mask with `&`. Here an event carries the *key* given at
//! `register` instead of the fd (fd numbers are reused after `close`, keys
//! need not be), and the mask is decoded once into questions with yes/no
//! answers.

use std::fmt;

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
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    key: usize,
    flags: u8,
}

impl Event {
    pub(crate) const READABLE: u8 = 1 << 0;
    pub(crate) const WRITABLE: u8 = 1 << 1;
    pub(crate) const ERROR: u8 = 1 << 2;
    pub(crate) const HANGUP: u8 = 1 << 3;
    pub(crate) const READ_CLOSED: u8 = 1 << 4;
    pub(crate) const PRIORITY: u8 = 1 << 5;

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
            flags |= Event::READABLE;
        }
        if writable {
            flags |= Event::WRITABLE;
        }
        Event { key, flags }
    }

    pub(crate) const fn from_flags(key: usize, flags: u8) -> Event {
        Event { key, flags }
    }

    /// The key the descriptor was registered with.
    pub const fn key(&self) -> usize {
        self.key
    }

    /// A read will not block: data, end of file, or an error waits.
    pub const fn is_readable(&self) -> bool {
        self.flags & Event::READABLE != 0
    }

    /// A write will not block (or will fail at once with the pending error).
    pub const fn is_writable(&self) -> bool {
        self.flags & Event::WRITABLE != 0
    }

    /// An error is pending on the descriptor (`POLLERR`/`EPOLLERR`, or
    /// `POLLNVAL`: the descriptor was closed while registered).
    pub const fn is_error(&self) -> bool {
        self.flags & Event::ERROR != 0
    }

    /// Both directions are closed (`POLLHUP`/`EPOLLHUP`).
    pub const fn is_hangup(&self) -> bool {
        self.flags & Event::HANGUP != 0
    }

    /// The peer will send no more: it shut down writing or closed
    /// (`POLLRDHUP`/`EPOLLRDHUP`). Data sent before that may still be unread.
    /// `select()` cannot tell this apart from plain readability.
    pub const fn is_read_closed(&self) -> bool {
        self.flags & Event::READ_CLOSED != 0
    }

    /// Urgent (out-of-band) data is waiting (`POLLPRI`/`EPOLLPRI`, or
    /// `select()`'s exception set).
    pub const fn is_priority(&self) -> bool {
        self.flags & Event::PRIORITY != 0
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key={} {}", self.key, FlagNames(self.flags))
    }
}

/// Prints event flags the way the trace log does: `IN|OUT|RDHUP`.
pub(crate) struct FlagNames(pub(crate) u8);

impl fmt::Display for FlagNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u8, &str); 6] = [
            (Event::READABLE, "IN"),
            (Event::WRITABLE, "OUT"),
            (Event::PRIORITY, "PRI"),
            (Event::READ_CLOSED, "RDHUP"),
            (Event::HANGUP, "HUP"),
            (Event::ERROR, "ERR"),
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
#[derive(Clone, Default)]
pub struct Events {
    list: Vec<Event>,
    capacity: usize,
}

impl Events {
    /// A buffer that holds up to `capacity` events per `poll` (at least 1).
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            list: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// How many events one `poll` can report.
    pub fn capacity(&self) -> usize {
        self.capacity.max(1)
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
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Empties the buffer, keeping its allocation.
    pub fn clear(&mut self) {
        self.list.clear();
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

    /// `: key=1 IN, key=3 IN|RDHUP`, for the trace log.
    pub(crate) fn describe(&self) -> String {
        let mut out = String::new();
        for (i, ev) in self.list.iter().enumerate() {
            out.push_str(if i == 0 { ": " } else { ", " });
            out.push_str(&format!("key={} {}", ev.key, FlagNames(ev.flags)));
        }
        out
    }

    /// Keeps only the events for which `keep` returns true.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&Event) -> bool) {
        self.list.retain(keep);
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.list.iter()).finish()
    }
}
