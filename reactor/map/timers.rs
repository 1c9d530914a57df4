//! The glue between the timing wheel and the map: which [`Token`] each
//! timer reports, and the timers that fired but were not yet taken.
//!
//! The wheel ([`Timers`]) knows deadlines only; the [`Reactor`] knows
//! objects only. This file is where a fired [`TimerId`] becomes a
//! `(TimerId, Token)` that the program's loop can act on — the course's
//! "timeout detection", one deadline per client.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::map::{Reactor, Token};
use crate::poller::Poller;
use crate::timer::{TimerId, Timers};

/// The reactor's timers: the wheel plus the token each timer reports.
#[derive(Debug, Default)]
pub(crate) struct TokenTimers {
    /// Pending deadlines.
    pub(crate) wheel: Timers,
    /// The token each pending timer was armed for, indexed by timer slot.
    tokens: Vec<Token>,
    /// Scratch list `Timers::expire` fills; kept to avoid allocating per turn.
    just_fired: Vec<TimerId>,
    /// Timers that fired and were not yet taken by `next_expired`.
    pub(crate) expired: VecDeque<(TimerId, Token)>,
}

impl TokenTimers {
    /// Notes which token a new timer reports.
    fn remember(&mut self, id: TimerId, token: Token) -> TimerId {
        if self.tokens.len() <= id.index() {
            self.tokens.resize(id.index() + 1, Token::WAKER);
        }
        self.tokens[id.index()] = token;
        id
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
        self.wheel.expire(Instant::now(), &mut self.just_fired);
        for id in self.just_fired.drain(..) {
            let token = self.tokens[id.index()];
            log::trace!("timer {id:?} for {token:?} expired");
            self.expired.push_back((id, token));
        }
    }
}

impl<T, P: Poller> Reactor<T, P> {
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
        let id = self.timers.wheel.insert(deadline);
        self.timers.remember(id, token)
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
        self.timers.remember(id, token)
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
        self.timers.wheel.cancel(id)
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
        self.timers.wheel.reset(id, deadline)
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
        self.timers.expired.pop_front()
    }
}
