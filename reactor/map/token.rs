//! [`Token`]: how an event finds its object again.
//!
//! A token is the `usize` key the poller stores with a descriptor (epoll's
//! `data` field), made of the object's slot index and the slot's
//! generation. The generation is what the course's `fdmap` keyed by fd
//! number lacks: fd numbers are reused after `close`, generations are not.

use std::fmt;

use crate::poller::Event;

/// Names one object in a [`Reactor`](crate::Reactor); every event for it carries the token.
///
/// A token packs the slot index (low 32 bits) and the slot's generation
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
    /// The token of the reactor's [`Waker`](crate::Waker): events carry it
    /// once [`Reactor::report_wakes`](crate::Reactor::report_wakes) asks for
    /// wakes to be reported. No object ever gets it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use reactor::{Events, Reactor, Token};
    ///
    /// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
    /// let waker = reactor.waker()?;
    /// reactor.report_wakes(true);
    /// waker.wake()?;
    /// let mut events = Events::with_capacity(4);
    /// reactor.poll(&mut events, Some(Duration::from_secs(5)))?;
    /// assert_eq!(events.iter().next().map(|e| e.token()), Some(Token::WAKER));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: the read end of the self-pipe showing up in `p.poll()`'s list.
    pub const WAKER: Token = Token(usize::MAX);

    pub(crate) fn new(index: usize, generation: u32) -> Token {
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

    pub(crate) fn index(self) -> usize {
        self.0 & 0xffff_ffff
    }

    pub(crate) fn generation(self) -> u32 {
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
        // Object indices stay below 2^26 (map/slots.rs), so no generation
        // makes an object's key all ones.
        let last = crate::map::slots::MAX_SLOTS - 1;
        assert_ne!(Token::new(last, u32::MAX), Token::WAKER);
        assert_ne!(Token::new(5, u32::MAX), Token::WAKER);
    }
}
