//! [`Reactor`]: the course's `fdmap`, done right.
//!
//! The course's servers keep a dictionary from descriptor number to socket,
//! `fdmap = {sock.fileno(): sock}`, and look each event's fd up in it. That
//! has a hidden bug: fd numbers are reused. Close connection B (fd 7) while
//! handling an earlier event of the same batch, accept C — the kernel hands
//! out the lowest free number, 7 again — and B's pending event, still in the
//! list `poll()` returned, is delivered to C.
//!
//! `Reactor` keeps the objects in a [`slab`](https://docs.rs/slab) and
//! registers each with a [`Token`]: the slot index *plus a generation* that
//! moves on every time an object leaves its slot (a slot's first occupant
//! has generation 0, so its key is just the index). An event whose token's
//! generation no longer matches its slot is stale and [`get`](Reactor::get)
//! returns `None` for it, even when both the slot and the fd number were
//! reused in the same batch.
//!
//! | course | `Reactor` |
//! |---|---|
//! | `fdmap[c.fileno()] = c; p.register(c, POLLIN)` | `let token = reactor.insert(c, Interest::READABLE)?` |
//! | `fdmap[fd]` | `reactor.get_mut(token)` |
//! | `p.unregister(fd); del fdmap[fd]; c.close()` | `drop(reactor.remove(token)?)` |
//! | `events = p.poll()` | `reactor.poll(&mut events, None)?` |
//! | `select(r, w, x, timeout)` returning empty lists | `reactor.timer_after(timeout, token)` then [`next_expired`](Reactor::next_expired) |
//!
//! # Timers
//!
//! The course's *timeout detection* for many clients at once: each
//! [`timer_at`](Reactor::timer_at) / [`timer_after`](Reactor::timer_after)
//! names a [`Token`] (usually the object the deadline is about) and returns
//! a [`TimerId`]. `poll` never sleeps past the nearest deadline; after it
//! returns, [`next_expired`](Reactor::next_expired) hands out the timers
//! that fired, in deadline order. Cancelling costs O(1), so a per-client
//! idle timeout re-armed on every message is cheap
//! ([`reset_timer`](Reactor::reset_timer)).

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::error::{Error, Result};
use crate::event::{Event, Events};
use crate::interest::{Interest, Trigger};
use crate::poller::{AnyPoller, Backend, Poller};
use crate::timer::{TimerId, Timers};
use crate::waker::Waker;

/// Names one object in a [`Reactor`]; every event for it carries the token.
///
/// A token packs the slab index (low 32 bits) and the slot's generation
/// (high 32 bits) into the `usize` key the poller stores, so no lookup table
/// is needed to go from an event back to an object.
///
/// # Examples
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use reactor::{Interest, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// let (a, b) = UnixStream::pair()?;
/// let ta = reactor.insert(a, Interest::READABLE)?;
/// reactor.remove(ta)?;
/// let tb = reactor.insert(b, Interest::READABLE)?; // reuses the slot...
/// assert_ne!(ta, tb);                               // ...with a new generation
/// assert!(reactor.get(ta).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: the fd number the course uses as `fdmap`'s key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(usize);

impl Token {
    /// Keys at or above this are the reactor's own (its waker and, later,
    /// other internal sources); no object token reaches them.
    const INTERNAL: usize = usize::MAX - 15;
    /// The key of the reactor's waker.
    const WAKER: Token = Token(usize::MAX);

    fn new(index: usize, generation: u32) -> Token {
        Token((generation as usize) << 32 | index)
    }

    /// The token an event was registered with.
    pub const fn from_key(key: usize) -> Token {
        Token(key)
    }

    /// The `usize` key the poller sees.
    pub const fn key(self) -> usize {
        self.0
    }

    fn index(self) -> usize {
        self.0 & 0xffff_ffff
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}#{})", self.index(), self.generation())
    }
}

impl Event {
    /// The [`Token`] this event is for (its key, read as a token).
    pub const fn token(&self) -> Token {
        Token::from_key(self.key())
    }
}

/// A registered object and what the reactor needs to know about it.
#[derive(Debug)]
struct Slot<T> {
    /// The user's object (a socket, a pipe, a connection struct).
    object: T,
    /// Its descriptor, read once at insert: the object may not lend it later.
    fd: RawFd,
    /// Changes every time the slot is filled; part of the token.
    generation: u32,
}

/// `insert` failed; the object is handed back so the caller can still use
/// it (send a "server full" line, say) or drop it.
///
/// Converts into [`Error`] with `?`, dropping the object.
pub struct InsertError<T> {
    /// Why the poller refused the object.
    pub error: Error,
    /// The object, untouched.
    pub object: T,
}

impl<T> fmt::Debug for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}

impl<T> fmt::Display for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for InsertError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<InsertError<T>> for Error {
    fn from(err: InsertError<T>) -> Error {
        err.error
    }
}

/// A poller plus the objects registered with it, addressed by [`Token`].
///
/// `T` is whatever a program keeps per descriptor: a `TcpStream`, or a
/// connection struct that holds one and implements [`AsFd`]. `P` is the
/// poller; the default, [`AnyPoller`], picks its backend at run time.
///
/// # Examples
///
/// An echo loop over a socket pair:
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use reactor::{Backend, Events, Interest, Reactor};
///
/// let mut reactor = Reactor::with_backend(Backend::Poll)?;
/// let (server_side, mut client) = UnixStream::pair()?;
/// let token = reactor.insert(server_side, Interest::READABLE)?;
///
/// client.write_all(b"hello")?;
/// let mut events = Events::with_capacity(64);
/// reactor.poll(&mut events, None)?;
/// for event in &events {
///     let Some(stream) = reactor.get_mut(event.token()) else { continue };
///     let mut buf = [0; 64];
///     let n = stream.read(&mut buf)?;
///     stream.write_all(&buf[..n])?;
/// }
/// let mut echoed = [0; 5];
/// client.read_exact(&mut echoed)?;
/// assert_eq!(&echoed, b"hello");
/// assert!(reactor.get(token).is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `fdmap = {s.fileno(): s}` next to `p = select.poll()`
pub struct Reactor<T, P: Poller = AnyPoller> {
    /// The backend that does the waiting.
    poller: P,
    /// The registered objects; a token's index is a key of this slab.
    slots: Slab<Slot<T>>,
    /// For each slot index, the generation its next occupant gets: bumped
    /// when an object leaves, so a token for the old occupant stops matching.
    /// A slot's first occupant has generation 0, so its key is just the index.
    generations: Vec<u32>,
    /// Created on first use by [`Reactor::waker`].
    waker: Option<Waker>,
    /// How many times `poll` has waited; tests use it to catch busy loops.
    iterations: u64,
    /// Pending deadlines.
    timers: Timers,
    /// The token each pending timer was armed for, indexed by timer slot.
    timer_tokens: Vec<Token>,
    /// Scratch list `Timers::expire` fills; kept to avoid allocating per turn.
    just_fired: Vec<TimerId>,
    /// Timers that fired and were not yet taken by `next_expired`.
    expired: VecDeque<(TimerId, Token)>,
}

impl<T> Reactor<T> {
    /// A reactor on the epoll backend.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `epoll_create1` fails.
    pub fn new() -> Result<Reactor<T>> {
        Reactor::with_backend(Backend::Epoll)
    }

    /// A reactor on the given backend.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if the backend cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Backend, Reactor};
    ///
    /// for backend in Backend::ALL {
    ///     let reactor: Reactor<UnixStream> = Reactor::with_backend(backend)?;
    ///     assert_eq!(reactor.backend_name(), backend.name());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p = select.poll()` (or `select.epoll()`) next to `fdmap = {}`
    pub fn with_backend(backend: Backend) -> Result<Reactor<T>> {
        Ok(Reactor::with_poller(backend.new_poller()?))
    }
}

impl<T, P: Poller> Reactor<T, P> {
    /// A reactor over a poller you built yourself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Interest, PollPoller, Reactor};
    ///
    /// let mut reactor = Reactor::<UnixStream, _>::with_poller(PollPoller::new());
    /// let (a, _b) = UnixStream::pair()?;
    /// reactor.insert(a, Interest::READABLE)?;
    /// assert_eq!(reactor.backend_name(), "poll");
    /// assert_eq!(reactor.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p = select.poll()` next to `fdmap = {}`
    pub fn with_poller(poller: P) -> Reactor<T, P> {
        Reactor {
            poller,
            slots: Slab::new(),
            generations: Vec::new(),
            waker: None,
            iterations: 0,
            timers: Timers::new(),
            timer_tokens: Vec::new(),
            just_fired: Vec::new(),
            expired: VecDeque::new(),
        }
    }

    /// Registers `object` for level-triggered `interest` and stores it.
    ///
    /// # Errors
    ///
    /// As [`Poller::register`]; the object comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Error, Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// assert!(reactor.insert(&a, Interest::READABLE).is_ok());
    /// assert_eq!(reactor.len(), 1);
    /// // The same descriptor again is refused, and the object comes back.
    /// let err = reactor.insert(&a, Interest::WRITABLE).unwrap_err();
    /// assert!(matches!(err.error, Error::AlreadyRegistered { .. }));
    /// assert!(std::ptr::eq(err.object, &a));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p.register(c, select.POLLIN); fdmap[c.fileno()] = c`
    pub fn insert(&mut self, object: T, interest: Interest) -> Result<Token, InsertError<T>>
    where
        T: AsFd,
    {
        self.insert_with(object, interest, Trigger::Level)
    }

    /// Registers `object` with an explicit trigger and stores it.
    ///
    /// # Errors
    ///
    /// As [`Poller::register`]; the object comes back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Interest, Reactor, Trigger};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// reactor.insert_with(a, Interest::READABLE, Trigger::Oneshot)?;
    /// b.write_all(b"x")?;
    /// let mut events = Events::with_capacity(4);
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_secs(1)))?, 1);
    /// // Still unread, but a oneshot registration is silent until re-armed.
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::ZERO))?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `ep.register(fd, select.EPOLLIN | select.EPOLLONESHOT); fdmap[fd] = c`
    pub fn insert_with(
        &mut self,
        object: T,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<Token, InsertError<T>>
    where
        T: AsFd,
    {
        let fd = object.as_fd().as_raw_fd();
        let entry = self.slots.vacant_entry();
        let generation = self.generations.get(entry.key()).copied().unwrap_or(0);
        let token = Token::new(entry.key(), generation);
        if token.key() >= Token::INTERNAL {
            let error = Error::Sys {
                call: "Reactor::insert",
                fd: Some(fd),
                source: std::io::Error::other("too many objects for 32-bit slot indices"),
            };
            return Err(InsertError { error, object });
        }
        match self.poller.register(fd, token.key(), interest, trigger) {
            Ok(()) => {
                entry.insert(Slot {
                    object,
                    fd,
                    generation,
                });
                Ok(token)
            }
            Err(error) => Err(InsertError { error, object }),
        }
    }

    /// The object behind `token`, unless it was removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let token = reactor.insert(a, Interest::READABLE)?;
    /// assert!(reactor.get(token).is_some());
    /// reactor.remove(token)?;
    /// assert!(reactor.get(token).is_none()); // a stale token reaches nothing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `fdmap.get(fd)`
    pub fn get(&self, token: Token) -> Option<&T> {
        self.slot(token).map(|slot| &slot.object)
    }

    /// The object behind `token`, mutably, unless it was removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// let token = reactor.insert(a, Interest::READABLE)?;
    /// reactor.get_mut(token).unwrap().write_all(b"hi")?;
    /// let mut buf = [0; 2];
    /// b.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// reactor.remove(token)?;
    /// assert!(reactor.get_mut(token).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `fdmap[fd]`
    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        match self.slots.get_mut(token.index()) {
            Some(slot) if slot.generation == token.generation() => Some(&mut slot.object),
            _ => None,
        }
    }

    /// Whether `token` names a live object.
    pub fn contains(&self, token: Token) -> bool {
        self.slot(token).is_some()
    }

    /// Changes what the object behind `token` is watched for (level-triggered).
    ///
    /// # Errors
    ///
    /// [`Error::StaleToken`] if the object was removed; otherwise as
    /// [`Poller::modify`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let token = reactor.insert(a, Interest::READABLE)?; // nothing to read yet
    /// let mut events = Events::with_capacity(4);
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::ZERO))?, 0);
    /// reactor.modify(token, Interest::WRITABLE)?; // an empty send buffer is writable
    /// reactor.poll(&mut events, Some(Duration::from_secs(1)))?;
    /// assert!(events.iter().any(|e| e.token() == token && e.is_writable()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p.modify(fd, select.POLLOUT)`
    pub fn modify(&mut self, token: Token, interest: Interest) -> Result<()> {
        self.modify_with(token, interest, Trigger::Level)
    }

    /// Changes interest and trigger, or re-arms a oneshot registration.
    ///
    /// # Errors
    ///
    /// As [`Reactor::modify`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Interest, Reactor, Trigger};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// let token = reactor.insert_with(a, Interest::READABLE, Trigger::Oneshot)?;
    /// b.write_all(b"x")?;
    /// let mut events = Events::with_capacity(4);
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_secs(1)))?, 1);
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::ZERO))?, 0); // disarmed
    /// reactor.modify_with(token, Interest::READABLE, Trigger::Oneshot)?; // re-armed
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::ZERO))?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `ep.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)`
    pub fn modify_with(
        &mut self,
        token: Token,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<()> {
        let fd = self.slot(token).ok_or_else(|| stale(token))?.fd;
        self.poller.modify(fd, token.key(), interest, trigger)
    }

    /// Unregisters the object behind `token` and hands it back; drop it to
    /// close it. No event delivered after this carries a token that reaches it.
    ///
    /// # Errors
    ///
    /// [`Error::StaleToken`] if the object was removed already. If the
    /// kernel refuses to unregister (the fd was closed behind the reactor's
    /// back) the object is removed all the same and the failure is logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Error, Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// let token = reactor.insert(a, Interest::READABLE)?;
    /// let mut a = reactor.remove(token)?; // unregistered, still open
    /// a.write_all(b"ok")?;
    /// let mut buf = [0; 2];
    /// b.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"ok");
    /// assert!(matches!(reactor.remove(token), Err(Error::StaleToken { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p.unregister(fd); del fdmap[fd]`
    pub fn remove(&mut self, token: Token) -> Result<T> {
        let fd = self.slot(token).ok_or_else(|| stale(token))?.fd;
        if let Err(err) = self.poller.unregister(fd) {
            log::debug!("removing {token:?}: {err} (removed from the map anyway)");
        }
        let index = token.index();
        if self.generations.len() <= index {
            self.generations.resize(index + 1, 0);
        }
        self.generations[index] = token.generation().wrapping_add(1);
        Ok(self.slots.remove(index).object)
    }

    /// Waits for events, as [`Poller::poll`]; every event's key is a
    /// [`Token`] (read it with [`Event::token`]). A wake from a [`Waker`]
    /// ends the wait but is not itself reported, so `poll` may return 0.
    ///
    /// An event may be stale — its object removed while handling an earlier
    /// event of the same batch — so look objects up with
    /// [`get_mut`](Reactor::get_mut) and skip `None`.
    ///
    /// # Errors
    ///
    /// As [`Poller::poll`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// let token = reactor.insert(a, Interest::READABLE)?;
    /// let mut events = Events::with_capacity(8);
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_millis(10)))?, 0); // timed out
    /// b.write_all(b"x")?;
    /// assert_eq!(reactor.poll(&mut events, None)?, 1);
    /// assert_eq!(events.iter().next().unwrap().token(), token);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `for fd, event in p.poll(): ...`
    pub fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        self.iterations += 1;
        // Sleep no longer than until the nearest deadline. With no timers
        // this reads no clock, so a timer-free loop pays nothing for them.
        // A zero timeout cannot get shorter: no clock read before the wait.
        let timeout = if self.timers.is_empty() || timeout == Some(Duration::ZERO) {
            timeout
        } else {
            match self.timers.next_deadline() {
                None => timeout,
                Some(deadline) => {
                    let until = deadline.saturating_duration_since(Instant::now());
                    Some(timeout.map_or(until, |t| t.min(until)))
                }
            }
        };
        self.poller.poll(events, timeout)?;
        if !self.timers.is_empty() {
            self.timers.expire(Instant::now(), &mut self.just_fired);
            for id in self.just_fired.drain(..) {
                let token = self.timer_tokens[id.index()];
                log::trace!("timer {id:?} for {token:?} expired");
                self.expired.push_back((id, token));
            }
        }
        if let Some(waker) = &self.waker {
            let mut woken = false;
            events.retain(|event| {
                let ours = event.key() == Token::WAKER.key();
                woken |= ours;
                !ours
            });
            if woken {
                waker.drain();
            }
        }
        Ok(events.len())
    }

    /// Arms a timer that fires at `deadline` (at once, at the next `poll`,
    /// if it has passed) and reports `token` when it does.
    ///
    /// # Panics
    ///
    /// If about 4 billion timers are pending at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::{Duration, Instant};
    /// use reactor::{Events, Reactor, Token};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let start = Instant::now();
    /// let id = reactor.timer_at(start + Duration::from_millis(30), Token::from_key(7));
    /// let mut events = Events::with_capacity(8);
    /// reactor.poll(&mut events, Some(Duration::from_secs(1)))?;
    /// assert_eq!(reactor.next_expired(), Some((id, Token::from_key(7))));
    /// assert!(start.elapsed() >= Duration::from_millis(30));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `loop.call_at(when, callback)`
    pub fn timer_at(&mut self, deadline: Instant, token: Token) -> TimerId {
        let id = self.timers.insert(deadline);
        self.remember_timer(id, token)
    }

    /// Arms a timer that fires `delay` from now; see [`timer_at`](Reactor::timer_at).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::{Duration, Instant};
    /// use reactor::{Events, Reactor, Token};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let start = Instant::now();
    /// let id = reactor.timer_after(Duration::from_millis(20), Token::from_key(1));
    /// let mut events = Events::with_capacity(8);
    /// reactor.poll(&mut events, Some(Duration::from_secs(5)))?; // returns at the deadline
    /// assert_eq!(reactor.next_expired(), Some((id, Token::from_key(1))));
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `loop.call_later(delay, callback)`
    pub fn timer_after(&mut self, delay: Duration, token: Token) -> TimerId {
        // insert_after saturates a delay past what the clock can count to "never".
        let id = self.timers.insert_after(delay);
        self.remember_timer(id, token)
    }

    /// Notes which token a new timer reports.
    fn remember_timer(&mut self, id: TimerId, token: Token) -> TimerId {
        if self.timer_tokens.len() <= id.index() {
            self.timer_tokens.resize(id.index() + 1, Token::WAKER);
        }
        self.timer_tokens[id.index()] = token;
        id
    }

    /// Cancels a pending timer. Returns false if it already fired or was
    /// cancelled (a stale id never cancels a newer timer).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Reactor, Token};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let id = reactor.timer_after(Duration::ZERO, Token::from_key(1));
    /// assert!(reactor.cancel_timer(id));
    /// assert!(!reactor.cancel_timer(id)); // already cancelled
    /// let mut events = Events::with_capacity(8);
    /// reactor.poll(&mut events, Some(Duration::ZERO))?;
    /// assert_eq!(reactor.next_expired(), None); // it never fires
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `handle.cancel()`
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    /// Moves a pending timer to a new deadline (an idle timeout pushed back
    /// by each message). Returns false, arming nothing, if it is not pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::{Duration, Instant};
    /// use reactor::{Events, Reactor, Token};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let start = Instant::now();
    /// let id = reactor.timer_after(Duration::ZERO, Token::from_key(1));
    /// assert!(reactor.reset_timer(id, start + Duration::from_millis(30))); // pushed back
    /// let mut events = Events::with_capacity(8);
    /// reactor.poll(&mut events, Some(Duration::ZERO))?;
    /// assert_eq!(reactor.next_expired(), None); // not yet
    /// reactor.poll(&mut events, Some(Duration::from_secs(5)))?;
    /// assert_eq!(reactor.next_expired(), Some((id, Token::from_key(1))));
    /// assert!(start.elapsed() >= Duration::from_millis(30));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `handle.cancel(); handle = loop.call_at(new_when, callback)`
    pub fn reset_timer(&mut self, id: TimerId, deadline: Instant) -> bool {
        self.timers.reset(id, deadline)
    }

    /// The next timer that fired during `poll`, with its token, in deadline
    /// order; `None` when all have been taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Reactor, Token};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let late = reactor.timer_after(Duration::from_millis(2), Token::from_key(2));
    /// let early = reactor.timer_after(Duration::ZERO, Token::from_key(1));
    /// std::thread::sleep(Duration::from_millis(5));
    /// let mut events = Events::with_capacity(8);
    /// reactor.poll(&mut events, Some(Duration::ZERO))?;
    /// assert_eq!(reactor.next_expired(), Some((early, Token::from_key(1))));
    /// assert_eq!(reactor.next_expired(), Some((late, Token::from_key(2))));
    /// assert_eq!(reactor.next_expired(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: the callbacks `asyncio` runs from `_ready` after a select.
    pub fn next_expired(&mut self) -> Option<(TimerId, Token)> {
        self.expired.pop_front()
    }

    /// A [`Waker`] for this reactor, created (and registered) on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `eventfd` or its registration fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::{Duration, Instant};
    /// use reactor::{Events, Reactor};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let waker = reactor.waker()?;
    /// let thread = std::thread::spawn(move || waker.wake());
    /// let start = Instant::now();
    /// let mut events = Events::with_capacity(8);
    /// // Woken early; the wake-up itself is not reported as an event.
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_secs(10)))?, 0);
    /// assert!(start.elapsed() < Duration::from_secs(10));
    /// thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `os.write(w, b"x")` from another thread, `w` being a pipe the loop polls
    pub fn waker(&mut self) -> Result<Waker> {
        if let Some(waker) = &self.waker {
            return Ok(waker.clone());
        }
        let waker = Waker::new()?;
        self.poller.register(
            waker.as_fd().as_raw_fd(),
            Token::WAKER.key(),
            Interest::READABLE,
            Trigger::Level,
        )?;
        self.waker = Some(waker.clone());
        Ok(waker)
    }

    /// How many objects are registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// assert!(reactor.is_empty());
    /// let (a, _b) = UnixStream::pair()?;
    /// let token = reactor.insert(a, Interest::READABLE)?;
    /// assert_eq!(reactor.len(), 1);
    /// reactor.remove(token)?;
    /// assert!(reactor.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `len(fdmap)`
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no object is registered.
    ///
    /// # Examples
    ///
    /// See the example on [`len`](Reactor::len).
    ///
    /// Python: `not fdmap`
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every live token with its object.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Interest, Reactor, Token};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, b) = UnixStream::pair()?;
    /// let ta = reactor.insert(a, Interest::READABLE)?;
    /// let tb = reactor.insert(b, Interest::READABLE)?;
    /// let tokens: Vec<Token> = reactor.iter().map(|(token, _)| token).collect();
    /// assert_eq!(tokens, [ta, tb]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `for fd, sock in fdmap.items(): ...`
    pub fn iter(&self) -> impl Iterator<Item = (Token, &T)> {
        self.slots
            .iter()
            .map(|(index, slot)| (Token::new(index, slot.generation), &slot.object))
    }

    /// Every live token with its object, mutably (to broadcast, say).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut T)> {
        self.slots
            .iter_mut()
            .map(|(index, slot)| (Token::new(index, slot.generation), &mut slot.object))
    }

    /// The poller underneath.
    pub fn poller(&self) -> &P {
        &self.poller
    }

    /// The backend's name: `"select"`, `"poll"` or `"epoll"`.
    pub fn backend_name(&self) -> &'static str {
        self.poller.name()
    }

    /// How many times [`poll`](Reactor::poll) has been called: a loop that
    /// is idle should not see this climb (tests use it to catch busy loops).
    pub fn iterations(&self) -> u64 {
        self.iterations
    }

    fn slot(&self, token: Token) -> Option<&Slot<T>> {
        match self.slots.get(token.index()) {
            Some(slot) if slot.generation == token.generation() => Some(slot),
            _ => None,
        }
    }
}

fn stale(token: Token) -> Error {
    Error::StaleToken {
        token: format!("{token:?}"),
    }
}

impl<T, P: Poller + fmt::Debug> fmt::Debug for Reactor<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("poller", &self.poller)
            .field("objects", &self.slots.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_packs_index_and_generation() {
        let t = Token::new(7, 3);
        assert_eq!((t.index(), t.generation()), (7, 3));
        assert_eq!(Token::from_key(t.key()), t);
        assert_eq!(format!("{t:?}"), "Token(7#3)");
    }

    #[test]
    fn waker_key_is_never_an_object_token() {
        assert!(Token::new(0xffff_fff0, u32::MAX).key() >= Token::INTERNAL);
        assert!(Token::new(5, u32::MAX).key() < Token::INTERNAL);
    }
}
