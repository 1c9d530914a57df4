//! [`Reactor`]: the course's `fdmap`, done right.
//!
//! The course's servers keep a dictionary from descriptor number to socket,
//! `fdmap = {sock.fileno(): sock}`, and look each event's fd up in it. That
//! has a hidden bug: fd numbers are reused. Close connection B (fd 7) while
//! handling an earlier event of the same batch, accept C — the kernel hands
//! out the lowest free number, 7 again — and B's pending event, still in the
//! list `poll()` returned, is delivered to C.
//!
//! `Reactor` keeps the objects in a slab (a vector whose free entries are
//! reused) and registers each with a [`Token`]: the slot index *plus a
//! generation* that moves on every time an object leaves its slot (a slot's first occupant
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
//! | `p.unregister(fd)` keeping `fdmap[fd]` for later | [`reactor.pause(token)`](Reactor::pause), [`resume`](Reactor::resume), [`watch`](Reactor::watch) |
//! | `a, b = fdmap[fa], fdmap[fb]` | [`let [a, b] = reactor.get_disjoint_mut([ta, tb])?`](Reactor::get_disjoint_mut) |
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

use crate::error::{Error, Result};
use crate::map::Token;
use crate::map::slots::{MAX_SLOTS, Slots, Watch};
use crate::map::timers::TokenTimers;
use crate::poller::{AnyPoller, Backend, Events, Interest, Poller, Trigger};
use crate::source::Waker;
use crate::sys;
use crate::timer::TimerId;

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

/// `?` on `insert` in a function returning `io::Result`: the object is
/// dropped and the error keeps its `ErrorKind` (as [`Error`]'s conversion).
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::os::unix::net::UnixStream;
/// use reactor::{Interest, Reactor};
///
/// fn register_twice(reactor: &mut Reactor<&UnixStream>, s: &'static UnixStream) -> io::Result<()> {
///     reactor.insert(s, Interest::READABLE)?;
///     reactor.insert(s, Interest::READABLE)?;
///     Ok(())
/// }
/// let mut reactor = Reactor::new()?;
/// let (a, _b) = UnixStream::pair()?;
/// let err = register_twice(&mut reactor, Box::leak(Box::new(a))).unwrap_err();
/// assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<T> From<InsertError<T>> for std::io::Error {
    fn from(err: InsertError<T>) -> std::io::Error {
        err.error.into()
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
    /// The registered objects (a token's index is a slot index) and the
    /// descriptor table that refuses a number another object holds.
    slots: Slots<T>,
    /// Created on first use by [`Reactor::waker`].
    waker: Option<Waker>,
    /// Report wakes as events with [`Token::WAKER`].
    report_wakes: bool,
    /// Whether `remove` has warned (once) of a descriptor closed behind
    /// the map's back: a program that drops the error still hears of it.
    warned_fd_closed: bool,
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

    /// A reactor on the backend `REACTOR_BACKEND` names (`select`, `poll`
    /// or `epoll`), else epoll. [`new`](Reactor::new) never reads the
    /// environment; a program that wants its users (or its tests) to pick
    /// the backend without a flag calls this instead.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownBackend`] if the variable names no backend (a typo
    /// is an error, not a silent epoll); otherwise as
    /// [`with_backend`](Reactor::with_backend).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::Reactor;
    ///
    /// // REACTOR_BACKEND=poll ./my-server runs it on poll(2).
    /// let reactor: Reactor<UnixStream> = Reactor::from_env()?;
    /// println!("backend: {}", reactor.backend_name());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `selectors.DefaultSelector()`, chosen for you (here, by you).
    pub fn from_env() -> Result<Reactor<T>> {
        Reactor::with_backend(Backend::from_env()?.unwrap_or(Backend::Epoll))
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
            slots: Slots::new(),
            waker: None,
            report_wakes: false,
            warned_fd_closed: false,
            iterations: 0,
            timers: TokenTimers::default(),
        }
    }

    /// Registers `object` for level-triggered `interest` and stores it.
    ///
    /// # Errors
    ///
    /// [`Error::FdInUse`] if an object in the map holds the same descriptor
    /// number; otherwise as [`Poller::register`]. The object comes back
    /// inside the error.
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
    /// // The same descriptor again is refused (the error names the token
    /// // that holds it), and the object comes back.
    /// let err = reactor.insert(&a, Interest::WRITABLE).unwrap_err();
    /// assert!(matches!(err.error, Error::FdInUse { .. }));
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
    /// As [`insert`](Reactor::insert); the object comes back inside the error.
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
        if let Some(error) = self.fd_held(fd) {
            return Err(InsertError { error, object });
        }
        let Some(token) = self.slots.next_token() else {
            let error = Error::TooManyObjects {
                fd,
                limit: MAX_SLOTS,
            };
            return Err(InsertError { error, object });
        };
        match self.poller.register(fd, token.key(), interest, trigger) {
            Ok(()) => Ok(self.slots.occupy(object, fd, Watch::new(interest, trigger))),
            Err(error) => Err(InsertError { error, object }),
        }
    }

    /// Reserves a token for an object that does not exist yet: build the
    /// object knowing its own token (or a partner's), arm its timers, then
    /// [`insert_at`](Reactor::insert_at) it. A reserved token names no
    /// object (`get` returns `None`, `len` does not count it); `remove`
    /// gives an unused reservation back.
    ///
    /// # Panics
    ///
    /// If 2^26 − 1 (about 67 million) slots, objects and reservations, are
    /// in use at once.
    ///
    /// # Examples
    ///
    /// Two objects that each know the other's token, inserted without a
    /// placeholder:
    ///
    /// ```
    /// use std::os::fd::{AsFd, BorrowedFd};
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Interest, Reactor, Token};
    ///
    /// struct Side { stream: UnixStream, peer: Token }
    /// impl AsFd for Side {
    ///     fn as_fd(&self) -> BorrowedFd<'_> { self.stream.as_fd() }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, b) = UnixStream::pair()?;
    /// let (ta, tb) = (reactor.reserve(), reactor.reserve());
    /// reactor.insert_at(ta, Side { stream: a, peer: tb }, Interest::READABLE)?;
    /// reactor.insert_at(tb, Side { stream: b, peer: ta }, Interest::READABLE)?;
    /// assert_eq!(reactor.get(ta).unwrap().peer, tb);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: choosing the `fdmap` key before the socket exists has no
    /// equivalent: the key is the fd number.
    #[must_use = "a reservation is only given back by remove"]
    pub fn reserve(&mut self) -> Token {
        assert!(
            self.slots.next_token().is_some(),
            "too many objects: a reactor holds at most {MAX_SLOTS}"
        );
        self.slots.reserve()
    }

    /// Registers `object` for level-triggered `interest` under a token from
    /// [`reserve`](Reactor::reserve).
    ///
    /// # Errors
    ///
    /// [`Error::StaleToken`] if `token` is not a reservation still unfilled;
    /// otherwise as [`insert`](Reactor::insert). The object comes back
    /// inside the error, and the reservation stays.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Error, Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (a, b) = UnixStream::pair()?;
    /// let token = reactor.reserve();
    /// reactor.insert_at(token, a, Interest::READABLE)?;
    /// let again = reactor.insert_at(token, b, Interest::READABLE).unwrap_err();
    /// assert!(matches!(again.error, Error::StaleToken { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p.register(c, select.POLLIN); fdmap[key] = c`
    pub fn insert_at(
        &mut self,
        token: Token,
        object: T,
        interest: Interest,
    ) -> Result<(), InsertError<T>>
    where
        T: AsFd,
    {
        let fd = object.as_fd().as_raw_fd();
        if !self.slots.is_reserved(token) {
            return Err(InsertError {
                error: stale(token),
                object,
            });
        }
        if let Some(error) = self.fd_held(fd) {
            return Err(InsertError { error, object });
        }
        match self
            .poller
            .register(fd, token.key(), interest, Trigger::Level)
        {
            Ok(()) => {
                let watch = Watch::new(interest, Trigger::Level);
                self.slots.fill(token, object, fd, watch);
                Ok(())
            }
            Err(error) => Err(InsertError { error, object }),
        }
    }

    /// The error for inserting `fd` while a live object registered it.
    fn fd_held(&self, fd: RawFd) -> Option<Error> {
        let holder = self.slots.holder(fd)?;
        Some(Error::FdInUse {
            fd,
            holder: format!("{holder:?}"),
        })
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
        self.slots.get(token)
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
        self.slots.get_mut(token)
    }

    /// Several objects at once, mutably: `None` if any token is stale or
    /// two tokens are the same (they would alias). Modelled on the standard
    /// library's `get_disjoint_mut`.
    ///
    /// # Examples
    ///
    /// A proxy pair, forwarding from one object straight into the other:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use reactor::{Interest, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let ((a, mut a_peer), (b, mut b_peer)) = (UnixStream::pair()?, UnixStream::pair()?);
    /// let ta = reactor.insert(a, Interest::READABLE)?;
    /// let tb = reactor.insert(b, Interest::READABLE)?;
    /// a_peer.write_all(b"hi")?;
    /// let [a, b] = reactor.get_disjoint_mut([ta, tb]).unwrap();
    /// let mut buf = [0; 2];
    /// a.read_exact(&mut buf)?;
    /// b.write_all(&buf)?;
    /// b_peer.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// assert!(reactor.get_disjoint_mut([ta, ta]).is_none()); // would alias
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `a, b = fdmap[fa], fdmap[fb]` (Python has no borrow rules).
    pub fn get_disjoint_mut<const N: usize>(&mut self, tokens: [Token; N]) -> Option<[&mut T; N]> {
        self.slots.get_disjoint_mut(tokens)
    }

    /// Whether `token` names a live object.
    pub fn contains(&self, token: Token) -> bool {
        self.get(token).is_some()
    }

    /// Changes what the object behind `token` is watched for (level-triggered).
    /// The map remembers each object's interest: a `modify` that changes
    /// nothing makes no system call. On a [paused](Reactor::pause) object
    /// it arms the new interest (resumes it).
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
    /// Like [`modify`](Reactor::modify), it makes no system call when
    /// nothing changes, except for [`Trigger::Oneshot`], where the call is
    /// the re-arm.
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
        let (fd, watch) = self.slots.watch(token).ok_or_else(|| stale(token))?;
        let wanted = Watch::new(interest, trigger);
        if watch == wanted && trigger != Trigger::Oneshot {
            return Ok(());
        }
        if watch.paused {
            self.poller.register(fd, token.key(), interest, trigger)?;
        } else {
            self.poller.modify(fd, token.key(), interest, trigger)?;
        }
        self.slots.set_watch(token, fd, wanted);
        Ok(())
    }

    /// Stops watching the object behind `token` without removing it: its
    /// token stays valid and no event (not even a hang-up) is reported for
    /// it until [`resume`](Reactor::resume) or [`modify`](Reactor::modify).
    /// Pausing a paused object makes no system call.
    ///
    /// Every backend reports an error or hang-up even for an empty interest
    /// (`POLLHUP`, `EPOLLHUP`), so a paused object is unregistered from the
    /// poller; the map keeps it, its interest and its timers.
    ///
    /// # Errors
    ///
    /// [`Error::StaleToken`] if the object was removed; otherwise as
    /// [`Poller::unregister`].
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
    /// b.write_all(b"x")?;
    /// reactor.pause(token)?; // nothing to write it to yet, say
    /// let mut events = Events::with_capacity(4);
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::ZERO))?, 0);
    /// reactor.resume(token)?;
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_secs(1)))?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p.unregister(fd)` while keeping `fdmap[fd]`
    pub fn pause(&mut self, token: Token) -> Result<()> {
        let (fd, watch) = self.slots.watch(token).ok_or_else(|| stale(token))?;
        if !watch.paused {
            self.poller.unregister(fd)?;
            let paused = Watch {
                paused: true,
                ..watch
            };
            self.slots.set_watch(token, fd, paused);
        }
        Ok(())
    }

    /// Watches a [paused](Reactor::pause) object again, for the interest
    /// and trigger it had. Resuming an object that is not paused makes no
    /// system call.
    ///
    /// # Errors
    ///
    /// [`Error::StaleToken`] if the object was removed; otherwise as
    /// [`Poller::register`].
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
    /// let token = reactor.insert(a, Interest::WRITABLE)?; // writable at once
    /// reactor.pause(token)?;
    /// let mut events = Events::with_capacity(4);
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::ZERO))?, 0);
    /// reactor.resume(token)?; // WRITABLE again, as it was
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_secs(1)))?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p.register(fd, mask)` with the mask it had
    pub fn resume(&mut self, token: Token) -> Result<()> {
        let (fd, watch) = self.slots.watch(token).ok_or_else(|| stale(token))?;
        if watch.paused {
            self.poller
                .register(fd, token.key(), watch.interest, watch.trigger)?;
            self.slots
                .set_watch(token, fd, Watch::new(watch.interest, watch.trigger));
        }
        Ok(())
    }

    /// Watches the object behind `token` for `interest`, or for nothing
    /// (paused) when it is `None`: [`modify`](Reactor::modify) or
    /// [`pause`](Reactor::pause) in one call, for a loop that recomputes
    /// each object's interest every turn. No system call when nothing
    /// changes.
    ///
    /// # Errors
    ///
    /// As [`modify`](Reactor::modify) and [`pause`](Reactor::pause).
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
    /// let (room, queued) = (false, false); // buffer full, nothing to send
    /// reactor.watch(token, Interest::from_flags(room, queued))?;
    /// assert!(reactor.is_paused(token));
    /// reactor.watch(token, Interest::from_flags(true, queued))?;
    /// assert!(!reactor.is_paused(token));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `p.modify(fd, mask) if mask else p.unregister(fd)`
    pub fn watch(&mut self, token: Token, interest: Option<Interest>) -> Result<()> {
        match interest {
            Some(interest) => self.modify(token, interest),
            None => self.pause(token),
        }
    }

    /// Whether the object behind `token` is [paused](Reactor::pause)
    /// (`false` for a stale token).
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
    /// reactor.pause(token)?;
    /// assert!(reactor.is_paused(token));
    /// reactor.modify(token, Interest::WRITABLE)?; // arms it again
    /// assert!(!reactor.is_paused(token));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_paused(&self, token: Token) -> bool {
        self.slots
            .watch(token)
            .is_some_and(|(_, watch)| watch.paused)
    }

    /// Unregisters the object behind `token` and hands it back; drop it to
    /// close it. No event delivered after this carries a token that reaches it.
    ///
    /// # Errors
    ///
    /// [`Error::StaleToken`] if the object was removed already (or `token`
    /// is an unused [reservation](Reactor::reserve), which this gives back).
    ///
    /// [`Error::FdClosed`] if the object's descriptor was closed behind the
    /// map's back (or its number now names another file): the map cannot
    /// unregister it, so it says so rather than leave epoll reporting a
    /// stale token forever in silence. The slot is freed all the same, and
    /// the object is *leaked*, not dropped: dropping it would close the
    /// number again, which may by now be another object's descriptor. The
    /// first such error of a reactor is also logged as a warning, so a
    /// program that drops `remove`'s result still hears of it.
    ///
    /// Either way the token's timers are cancelled, fired or not, so none
    /// reports a stale token later.
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
        let vacated = self.slots.vacate(token).ok_or_else(|| stale(token))?;
        self.cancel_slot_timers(token.index());
        // A reservation, given back.
        let Some((object, fd)) = vacated.live else {
            return Err(stale(token));
        };
        // Only the slot that registered the number may unregister it: if a
        // newer object registered it since, it is not this one's any more.
        let mut intact = sys::is_open(fd);
        if let Some(watch) = vacated.watch
            && !watch.paused
            && let Err(err) = self.poller.unregister(fd)
        {
            log::debug!("removing {token:?}: {err}");
            intact = false;
        }
        if intact {
            return Ok(object);
        }
        std::mem::forget(object);
        let error = Error::FdClosed {
            token: format!("{token:?}"),
            fd,
        };
        if !std::mem::replace(&mut self.warned_fd_closed, true) {
            log::warn!("{error} (warned once per reactor)");
        }
        Err(error)
    }

    /// Cancels the timers armed for slot `index` (reported or not), so that
    /// none reports its old token once the slot is reused.
    fn cancel_slot_timers(&mut self, index: usize) {
        if self.timers.by_slot.is_empty() {
            return;
        }
        for id in self.timers.by_slot.remove(&index).unwrap_or_default() {
            let _ = self.cancel_timer(id);
        }
    }

    /// Files timer `id` under the live slot `token` names (if any), so
    /// that `remove` cancels it. Ids of timers already gone are forgotten
    /// before the list doubles, so an object that arms a timer per message
    /// stays bounded.
    pub(crate) fn attach_timer(&mut self, id: TimerId, token: Token) {
        if self.slots.get(token).is_none() && !self.slots.is_reserved(token) {
            return;
        }
        let timers = &mut self.timers;
        let ids = timers.by_slot.entry(token.index()).or_default();
        if ids.len() == ids.capacity() && ids.len() >= 4 {
            ids.retain(|&id| timers.wheel.is_pending(id) || timers.wheel.is_held(id));
        }
        ids.push(id);
    }

    /// Waits for events, as [`Poller::poll`]; every event's key is a
    /// [`Token`] (read it with [`Event::token`](crate::Event::token)). A wake from a [`Waker`]
    /// ends the wait but is not itself reported, so `poll` may return 0.
    /// (Iterating `events` never shows it; only when the wake-up races with
    /// the wait's return can the count include it once, while the waker's
    /// flag is still on its way.)
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
        // The hot path of an idle loop is the system call alone: timers and
        // the waker are one test each here, their work out of line, so this
        // stays a small function that saves no registers.
        self.iterations += 1;
        let timeout = if self.timers.wheel.is_empty() {
            timeout
        } else {
            self.clamp_to_timers(timeout)
        };
        self.poller.poll(events, timeout)?;
        if !self.timers.wheel.is_empty() {
            self.expire_timers();
        }
        if self.waker.is_some() {
            self.after_wait_with_waker(events);
        }
        Ok(events.len())
    }

    /// `timeout`, shortened to the nearest deadline.
    #[inline(never)]
    fn clamp_to_timers(&self, timeout: Option<Duration>) -> Option<Duration> {
        self.timers.clamp(timeout)
    }

    /// Moves the timers that fired to the expired queue.
    #[inline(never)]
    fn expire_timers(&mut self) {
        self.timers.expire();
    }

    /// Hides the waker's event from the batch and, after a wake-up, drains
    /// the waker.
    #[inline(never)]
    fn after_wait_with_waker(&mut self, events: &mut Events) {
        let Some(waker) = &self.waker else { return };
        // The waker's event is not shown (unless `report_wakes`): the
        // iterator passes over its key, and it is taken out of the batch
        // (one short scan) only after a wake-up, which the waker flags:
        // no pass over an ordinary batch.
        if !self.report_wakes {
            events.hide(Some(Token::WAKER.key()));
        }
        if waker.take_pending() {
            waker.drain();
            if !self.report_wakes {
                events.take(Token::WAKER.key());
            }
        }
    }

    /// Asks [`poll`](Reactor::poll) to report a wake from the [`Waker`] as
    /// an event carrying [`Token::WAKER`] (off by default: a wake then only
    /// ends the wait), so a wake is told apart from a timeout, and a loop
    /// fed by a channel reads it only when woken.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Reactor};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let waker = reactor.waker()?;
    /// let mut events = Events::with_capacity(4);
    /// waker.wake()?;
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_secs(5)))?, 0); // woken, not told
    /// reactor.report_wakes(true);
    /// waker.wake()?;
    /// assert_eq!(reactor.poll(&mut events, Some(Duration::from_secs(5)))?, 1); // told
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: keeping the self-pipe's fd in the list `p.poll()` returns
    pub fn report_wakes(&mut self, report: bool) {
        self.report_wakes = report;
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
        self.len() == 0
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
        self.slots.iter()
    }

    /// Every live token with its object, mutably (to broadcast, say).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut T)> {
        self.slots.iter_mut()
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
            .field("objects", &self.len())
            .finish()
    }
}
