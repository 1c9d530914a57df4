//! The glue between the timing wheel and the map: which [`Token`] each
//! timer reports, and the timers that fired but were not yet taken.
//!
//! The wheel ([`Timers`]) knows deadlines only; the [`Reactor`] knows
//! objects only. This file is where a fired [`TimerId`] becomes a
//! `(TimerId, Token)` that the program's loop can act on — the course's
//! "timeout detection", one deadline per client.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::map::{Reactor, Token};
use crate::poller::Poller;
use crate::timer::{TimerId, Timers};

/// Who a timer reports to.
#[derive(Clone, Copy, Debug)]
enum Owner {
    /// A token: usually an object's, whose `remove` cancels the timer.
    Token(Token),
    /// No object: a value of the caller's.
    Value(u64),
}

/// The reactor's timers: the wheel plus who each timer reports to.
#[derive(Debug, Default)]
pub(crate) struct TokenTimers {
    /// Pending deadlines, and fired timers held until their report is taken.
    pub(crate) wheel: Timers,
    /// Who each timer reports to, indexed by timer slot.
    owners: Vec<Owner>,
    /// Scratch list `Timers::expire_held` fills; kept to avoid allocating per turn.
    just_fired: Vec<TimerId>,
    /// Token timers that fired and were not yet taken by `next_expired`.
    pub(crate) expired: VecDeque<(TimerId, Token)>,
    /// Owner-less timers that fired, for `next_expired_value`.
    expired_values: VecDeque<(TimerId, u64)>,
    /// The timers armed for each slot index that has any, cancelled when its
    /// object is removed. A side table rather than a list in every slot, so
    /// that an object with no timers pays nothing for them.
    pub(crate) by_slot: HashMap<usize, Vec<TimerId>>,
}

impl TokenTimers {
    /// Notes who a new timer reports to.
    fn remember(&mut self, id: TimerId, owner: Owner) -> TimerId {
        if self.owners.len() <= id.index() {
            self.owners.resize(id.index() + 1, Owner::Value(0));
        }
        self.owners[id.index()] = owner;
        id
    }

    /// Takes a fired, untaken timer's report out of its queue; returns
    /// whether the timer was such (still held by the wheel).
    fn withdraw(&mut self, id: TimerId) -> bool {
        if !self.wheel.is_held(id) {
            return false;
        }
        if let Some(at) = self.expired.iter().position(|&(fired, _)| fired == id) {
            self.expired.remove(at);
        } else if let Some(at) = self.expired_values.iter().position(|&(f, _)| f == id) {
            self.expired_values.remove(at);
        }
        true
    }

    /// `timeout`, shortened so that `poll` never sleeps past the nearest
    /// deadline. With no timers this reads no clock, so a timer-free loop
    /// pays nothing for them; a zero timeout cannot get shorter either.
    #[inline]
    pub(crate) fn clamp(&self, timeout: Option<Duration>) -> Option<Duration> {
        if self.wheel.is_empty() || timeout == Some(Duration::ZERO) {
            return timeout;
        }
        match self.wheel.next_deadline() {
            None => timeout,
            Some(deadline) => {
                let until = deadline.saturating_duration_since(Instant::now());
                Some(timeout.map_or(until, |t| t.min(until)))
            }
        }
    }

    /// Moves every timer whose deadline has passed to the expired queue.
    #[inline]
    pub(crate) fn expire(&mut self) {
        if self.wheel.is_empty() {
            return;
        }
        // Held, not freed: reset_timer can re-arm a timer whose report
        // is still queued, under the same id.
        self.wheel.expire_held(Instant::now(), &mut self.just_fired);
        for id in self.just_fired.drain(..) {
            match self.owners[id.index()] {
                Owner::Token(token) => {
                    log::trace!("timer {id:?} for {token:?} expired");
                    self.expired.push_back((id, token));
                }
                Owner::Value(value) => {
                    log::trace!("timer {id:?} (value {value}) expired");
                    self.expired_values.push_back((id, value));
                }
            }
        }
    }
}

impl<T, P: Poller> Reactor<T, P> {
    /// Arms a timer that fires at `deadline` (at once, at the next `poll`,
    /// if it has passed) and reports `token` when it does. A timer armed
    /// for a live object's token (or a reservation's) follows the object:
    /// [`remove`](Reactor::remove) cancels it, fired or not.
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
        let id = self.timers.wheel.insert(deadline);
        self.attach_timer(id, token);
        self.timers.remember(id, Owner::Token(token))
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
        let id = self.timers.wheel.insert_after(delay);
        self.attach_timer(id, token);
        self.timers.remember(id, Owner::Token(token))
    }

    /// Arms a timer that belongs to no object and carries `value` (a
    /// reconnect attempt, a periodic tick): it fires at `deadline` and is
    /// reported by [`next_expired_value`](Reactor::next_expired_value).
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
    /// use reactor::{Events, Reactor};
    ///
    /// const RECONNECT: u64 = 1;
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let id = reactor.timer_value_at(Instant::now() + Duration::from_millis(5), RECONNECT);
    /// let mut events = Events::with_capacity(8);
    /// loop {
    ///     reactor.poll(&mut events, Some(Duration::from_secs(1)))?;
    ///     if let Some(fired) = reactor.next_expired_value() {
    ///         assert_eq!(fired, (id, RECONNECT));
    ///         break;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `loop.call_at(when, reconnect)`
    pub fn timer_value_at(&mut self, deadline: Instant, value: u64) -> TimerId {
        let id = self.timers.wheel.insert(deadline);
        self.timers.remember(id, Owner::Value(value))
    }

    /// Arms an owner-less timer `delay` from now; see
    /// [`timer_value_at`](Reactor::timer_value_at).
    ///
    /// # Panics
    ///
    /// If about 4 billion timers are pending at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Reactor};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let id = reactor.timer_value_after(Duration::ZERO, 42);
    /// std::thread::sleep(Duration::from_millis(2));
    /// let mut events = Events::with_capacity(8);
    /// reactor.poll(&mut events, Some(Duration::ZERO))?;
    /// assert_eq!(reactor.next_expired_value(), Some((id, 42)));
    /// assert_eq!(reactor.next_expired(), None); // no object's timer fired
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `loop.call_later(delay, tick)`
    pub fn timer_value_after(&mut self, delay: Duration, value: u64) -> TimerId {
        let id = self.timers.wheel.insert_after(delay);
        self.timers.remember(id, Owner::Value(value))
    }

    /// Cancels a timer, pending or fired but not yet taken (its report is
    /// withdrawn). Returns false if it was taken or cancelled already (a
    /// stale id never cancels a newer timer).
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
        self.timers.wheel.cancel(id)
            || (self.timers.withdraw(id) && self.timers.wheel.release_held(id))
    }

    /// Moves a timer to a new deadline (an idle timeout pushed back by
    /// each message), keeping its id. It works on a pending timer and on one
    /// that fired but was not yet taken with
    /// [`next_expired`](Reactor::next_expired) (a message arrived in the
    /// same turn as the timeout): its report is withdrawn. Returns false,
    /// arming nothing, if the timer was taken or cancelled; ignoring that
    /// would leave an idle timeout unarmed, hence `#[must_use]`.
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
    #[must_use = "false means the timer was not armed again: arm a new one"]
    pub fn reset_timer(&mut self, id: TimerId, deadline: Instant) -> bool {
        self.timers.wheel.reset(id, deadline)
            || (self.timers.withdraw(id) && self.timers.wheel.revive(id, deadline))
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
        let (id, token) = self.timers.expired.pop_front()?;
        self.timers.wheel.release_held(id);
        Some((id, token))
    }

    /// The next owner-less timer that fired during `poll`, with its value,
    /// in deadline order; `None` when all have been taken. See
    /// [`timer_value_at`](Reactor::timer_value_at).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Reactor};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let tick = reactor.timer_value_after(Duration::ZERO, 1);
    /// let tock = reactor.timer_value_after(Duration::from_millis(1), 2);
    /// std::thread::sleep(Duration::from_millis(3));
    /// let mut events = Events::with_capacity(8);
    /// reactor.poll(&mut events, Some(Duration::ZERO))?;
    /// assert_eq!(reactor.next_expired_value(), Some((tick, 1)));
    /// assert_eq!(reactor.next_expired_value(), Some((tock, 2)));
    /// assert_eq!(reactor.next_expired_value(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: the callbacks `asyncio` runs from `_ready` after a select.
    pub fn next_expired_value(&mut self) -> Option<(TimerId, u64)> {
        let (id, value) = self.timers.expired_values.pop_front()?;
        self.timers.wheel.release_held(id);
        Some((id, value))
    }
}
