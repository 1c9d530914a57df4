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

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use slab::Slab;

use crate::error::{Error, Result};
use crate::map::Token;
use crate::map::timers::TokenTimers;
use crate::poller::{AnyPoller, Backend, Events, Interest, Poller, Trigger};
use crate::source::Waker;

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
    /// Pending deadlines and the token each reports (map/timers.rs).
    pub(crate) timers: TokenTimers,
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
            timers: TokenTimers::default(),
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
            let error = Error::TooManyObjects {
                fd,
                limit: Token::INTERNAL.min(1 << 32),
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
    /// [`Token`] (read it with [`Event::token`](crate::Event::token)). A wake from a [`Waker`]
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
        let timeout = self.timers.clamp(timeout);
        self.poller.poll(events, timeout)?;
        self.timers.expire();
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
