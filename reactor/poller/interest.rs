//! What a program asks to be told about: [`Interest`] (which readiness) and
//! [`Trigger`] (how often).
//!
//! In the course these are the flags handed to `p.register(fd, POLLIN)` or
//! `ep.register(fd, EPOLLIN | EPOLLET)`. Here the "which" and the "how often"
//! are two types, because every backend understands the first while only epoll
//! and uring understand all of the second.

use std::fmt;
use std::ops::BitOr;

/// Which kinds of readiness to watch a descriptor for.
///
/// Combine with `|`. An empty interest is not representable: to stop
/// watching a descriptor, `unregister` it, or [`pause`](crate::Reactor::pause)
/// it in a reactor ([`from_flags`](Interest::from_flags) and
/// [`Reactor::watch`](crate::Reactor::watch) say "nothing" with `None`).
///
/// # Examples
///
/// ```
/// use reactor::Interest;
///
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert!(!both.is_priority());
/// assert_eq!(format!("{both:?}"), "READABLE | WRITABLE");
/// ```
///
/// Python: `select.POLLIN | select.POLLOUT`
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

const READABLE: u8 = 0b001;
const WRITABLE: u8 = 0b010;
const PRIORITY: u8 = 0b100;

impl Interest {
    /// Data can be read (or the peer closed, or an error is pending).
    /// Python: `POLLIN` / `EPOLLIN`, or the first list of `select()`.
    pub const READABLE: Interest = Interest(READABLE);
    /// A write would not block. Python: `POLLOUT` / `EPOLLOUT`, or the second list of `select()`.
    pub const WRITABLE: Interest = Interest(WRITABLE);
    /// Urgent (out-of-band) data. Python: `POLLPRI` / `EPOLLPRI`, or the third list of `select()`.
    pub const PRIORITY: Interest = Interest(PRIORITY);

    /// `READABLE`, `WRITABLE`, both, or `None` for neither: what a loop
    /// with backpressure computes each turn ("read while there is room,
    /// write while something waits"), ready for
    /// [`Reactor::watch`](crate::Reactor::watch).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::Interest;
    ///
    /// assert_eq!(Interest::from_flags(true, true), Some(Interest::READABLE | Interest::WRITABLE));
    /// assert_eq!(Interest::from_flags(false, true), Some(Interest::WRITABLE));
    /// assert_eq!(Interest::from_flags(false, false), None);
    /// ```
    ///
    /// Python: `(select.POLLIN if room else 0) | (select.POLLOUT if queued else 0)`
    pub const fn from_flags(readable: bool, writable: bool) -> Option<Interest> {
        match (readable as u8 * READABLE) | (writable as u8 * WRITABLE) {
            0 => None,
            bits => Some(Interest(bits)),
        }
    }

    /// Both interests together; usable in `const` contexts where `|` is not.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::Interest;
    ///
    /// const BOTH: Interest = Interest::READABLE.add(Interest::WRITABLE);
    /// assert_eq!(BOTH, Interest::READABLE | Interest::WRITABLE);
    /// ```
    ///
    /// Python: `select.POLLIN | select.POLLOUT`
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Whether readability is asked for.
    pub const fn is_readable(self) -> bool {
        self.0 & READABLE != 0
    }

    /// Whether writability is asked for.
    pub const fn is_writable(self) -> bool {
        self.0 & WRITABLE != 0
    }

    /// Whether priority (out-of-band) data is asked for.
    pub const fn is_priority(self) -> bool {
        self.0 & PRIORITY != 0
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        self.add(other)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_readable(), "READABLE"),
            (self.is_writable(), "WRITABLE"),
            (self.is_priority(), "PRIORITY"),
        ];
        let mut first = true;
        for (_, name) in names.iter().filter(|(set, _)| *set) {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

/// How often a ready descriptor is reported.
///
/// | trigger | reported | kernel flag | backends |
/// |---|---|---|---|
/// | `Level` (default) | at every `poll` while the condition holds | none | select, poll, epoll, uring |
/// | `Edge` | once each time new readiness arrives | `EPOLLET` | epoll, uring (multishot poll) |
/// | `Oneshot` | once, then the registration is disarmed until `modify` | `EPOLLONESHOT` | select, poll, epoll, uring |
///
/// A backend asked for a trigger it cannot honour returns
/// [`Error::Unsupported`](crate::Error::Unsupported) rather than quietly
/// falling back to level triggering.
///
/// # Examples
///
/// ```
/// use reactor::Trigger;
///
/// assert_eq!(Trigger::default(), Trigger::Level);
/// assert_eq!(Trigger::Edge.to_string(), "edge");
/// ```
///
/// Python: `ep.register(fd, select.EPOLLIN | select.EPOLLET)` for `Edge`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Report the descriptor at every `poll` while it is ready (the course's default).
    #[default]
    Level,
    /// Report only transitions to ready: the reader must drain until `WouldBlock`.
    Edge,
    /// Report once, then stay silent until the registration is re-armed with `modify`.
    Oneshot,
}

impl Trigger {
    /// The trigger's name in messages: `"level"`, `"edge"`, `"oneshot"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(reactor::Trigger::Edge.name(), "edge");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Trigger::Level => "level",
            Trigger::Edge => "edge",
            Trigger::Oneshot => "oneshot",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
