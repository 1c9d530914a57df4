//! The map's storage: a slab of objects whose vacant entries keep the next
//! generation, and a table from descriptor number to slot.
//!
//! Every byte here is paid per registration, so each fact is kept once,
//! where it is cheapest:
//!
//! - an entry holds the object, its descriptor and the generation of the
//!   token that names it; a vacant entry holds the next generation and the
//!   next vacant index instead (no side table of generations);
//! - the descriptor table (`by_fd`), which the map needs anyway to refuse a
//!   descriptor another object holds, also carries what the poller was told
//!   about the object (interest, trigger, paused), packed beside the slot
//!   index: one `u32` per descriptor number.
//!
//! With a 4-byte object that has a niche (an `OwnedFd`), an entry is 12
//! bytes; with the descriptor table, 16 bytes per registration.

use std::os::fd::RawFd;

use crate::map::Token;
use crate::poller::{Interest, Trigger};

/// What an entry holds besides its generation.
enum Body<T> {
    /// A registered object and its descriptor, read once at insert: the
    /// object may not lend it later (or may lend another).
    Live { object: T, fd: RawFd },
    /// No object: a reservation ([`RESERVED`]) or a vacant entry, which
    /// holds the next vacant index ([`END`] closes the chain).
    Empty { next: u32 },
}

/// One slot.
struct Entry<T> {
    /// The generation of the token that names the slot now (occupant or
    /// reservation) or, vacant, the generation its next occupant gets.
    generation: u32,
    body: Body<T>,
}

/// Closes the chain of vacant entries.
const END: u32 = u32::MAX;
/// Marks an entry reserved (never a vacant index: indices stay below [`MAX_SLOTS`]).
const RESERVED: u32 = u32::MAX - 1;

/// About how many bytes of entries the first insert makes room for.
const FIRST_BYTES: usize = 1024;
/// Descriptor numbers the first insert makes room for (4 KiB).
const FIRST_FDS: usize = 1024;

/// Bits of a `by_fd` cell that hold 1 + the slot index (0: no owner).
const INDEX_BITS: u32 = 26;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// How many slots (objects plus reservations) a map can hold: the largest
/// index + 1 must fit in [`INDEX_BITS`].
pub(crate) const MAX_SLOTS: usize = INDEX_MASK as usize;
const READABLE_BIT: u32 = 1 << 26;
const WRITABLE_BIT: u32 = 1 << 27;
const PRIORITY_BIT: u32 = 1 << 28;
const TRIGGER_SHIFT: u32 = 29;
const PAUSED_BIT: u32 = 1 << 31;

/// What the poller was told about a live object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Watch {
    /// What it is watched for (remembered so that a `modify` that changes
    /// nothing costs no system call, and `resume` knows what to arm).
    pub(super) interest: Interest,
    /// How it was registered.
    pub(super) trigger: Trigger,
    /// Unregistered from the poller by `pause`, still in the map.
    pub(super) paused: bool,
}

impl Watch {
    /// A fresh registration.
    pub(super) fn new(interest: Interest, trigger: Trigger) -> Watch {
        Watch {
            interest,
            trigger,
            paused: false,
        }
    }

    /// The watch bits of a `by_fd` cell.
    fn pack(self) -> u32 {
        let i = self.interest;
        let mut bits = 0;
        for (on, bit) in [
            (i.is_readable(), READABLE_BIT),
            (i.is_writable(), WRITABLE_BIT),
            (i.is_priority(), PRIORITY_BIT),
            (self.paused, PAUSED_BIT),
        ] {
            if on {
                bits |= bit;
            }
        }
        let trigger = match self.trigger {
            Trigger::Level => 0,
            Trigger::Edge => 1,
            Trigger::Oneshot => 2,
        };
        bits | trigger << TRIGGER_SHIFT
    }

    /// The watch a `by_fd` cell holds.
    fn unpack(cell: u32) -> Watch {
        let mut interest = None::<Interest>;
        for (bit, one) in [
            (READABLE_BIT, Interest::READABLE),
            (WRITABLE_BIT, Interest::WRITABLE),
            (PRIORITY_BIT, Interest::PRIORITY),
        ] {
            if cell & bit != 0 {
                interest = Some(interest.map_or(one, |i| i.add(one)));
            }
        }
        let trigger = match (cell >> TRIGGER_SHIFT) & 3 {
            1 => Trigger::Edge,
            2 => Trigger::Oneshot,
            _ => Trigger::Level,
        };
        Watch {
            // A live object's cell was written from a real (never empty) interest.
            interest: interest.unwrap_or(Interest::READABLE),
            trigger,
            paused: cell & PAUSED_BIT != 0,
        }
    }
}

/// What [`Slots::vacate`] took out of a slot.
pub(super) struct Vacated<T> {
    /// The object and its descriptor; `None` for a reservation.
    pub(super) live: Option<(T, RawFd)>,
    /// What the poller was told, if this slot still owned the descriptor's
    /// cell (then the cell is cleared).
    pub(super) watch: Option<Watch>,
}

/// The slab of objects plus the descriptor table.
pub(super) struct Slots<T> {
    entries: Vec<Entry<T>>,
    /// The most recently vacated index (reused first), or [`END`].
    free: u32,
    /// Live objects (reservations not counted).
    live: usize,
    /// Reservations not yet filled.
    reserved: usize,
    /// For each descriptor number: 1 + the index of the slot that
    /// registered it (0: none) in the low [`INDEX_BITS`], and that object's
    /// [`Watch`] in the bits above. Catches a number reused behind the
    /// map's back.
    by_fd: Vec<u32>,
}

impl<T> Slots<T> {
    pub(super) const fn new() -> Slots<T> {
        Slots {
            entries: Vec::new(),
            free: END,
            live: 0,
            reserved: 0,
            by_fd: Vec::new(),
        }
    }

    /// Live objects.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// The token the next [`occupy`](Slots::occupy) or
    /// [`reserve`](Slots::reserve) hands out; `None` when every index a
    /// token can name is taken.
    pub(super) fn next_token(&self) -> Option<Token> {
        if self.free == END {
            let index = self.entries.len();
            (index < MAX_SLOTS).then(|| Token::new(index, 0))
        } else {
            let index = self.free as usize;
            Some(Token::new(index, self.entries[index].generation))
        }
    }

    /// Takes the entry [`next_token`](Slots::next_token) named for `body`.
    fn take_vacant(&mut self, body: Body<T>) -> Token {
        let token = self.next_token().expect("callers checked next_token");
        if self.free == END {
            if self.entries.capacity() == 0 {
                // Room for a loop's first objects in one allocation of about
                // a kilobyte, a power of two of entries as doubling keeps.
                let first = (FIRST_BYTES / size_of::<Entry<T>>().max(1)).next_power_of_two();
                self.entries.reserve_exact(first.max(4));
            }
            self.entries.push(Entry {
                generation: 0,
                body,
            });
        } else {
            let entry = &mut self.entries[token.index()];
            self.free = match entry.body {
                Body::Empty { next } => next,
                Body::Live { .. } => END, // never: the chain holds vacant entries only
            };
            entry.body = body;
        }
        token
    }

    /// Stores a registered object in the next vacant slot; its token.
    pub(super) fn occupy(&mut self, object: T, fd: RawFd, watch: Watch) -> Token {
        let token = self.take_vacant(Body::Live { object, fd });
        self.live += 1;
        self.own_fd(fd, token.index(), watch);
        token
    }

    /// Reserves the next vacant slot; its token.
    pub(super) fn reserve(&mut self) -> Token {
        let token = self.take_vacant(Body::Empty { next: RESERVED });
        self.reserved += 1;
        token
    }

    /// Whether `token` names a reservation not yet filled.
    pub(super) fn is_reserved(&self, token: Token) -> bool {
        matches!(
            self.entries.get(token.index()),
            Some(Entry { generation, body: Body::Empty { next: RESERVED } })
                if *generation == token.generation()
        )
    }

    /// Fills the reservation `token` names (checked with
    /// [`is_reserved`](Slots::is_reserved)).
    pub(super) fn fill(&mut self, token: Token, object: T, fd: RawFd, watch: Watch) {
        debug_assert!(self.is_reserved(token));
        self.entries[token.index()].body = Body::Live { object, fd };
        self.reserved -= 1;
        self.live += 1;
        self.own_fd(fd, token.index(), watch);
    }

    /// Records that slot `index` registered `fd` (a number the kernel just
    /// accepted, so the table is sized by an open descriptor).
    fn own_fd(&mut self, fd: RawFd, index: usize, watch: Watch) {
        let Ok(fd) = usize::try_from(fd) else { return };
        if self.by_fd.len() <= fd {
            // Whole powers of two, all of it usable (the allocation the
            // vector's doubling would make), starting at a page's worth: a
            // process's first descriptors are small, and the tiny buffers
            // of a doubling from 1 would only linger in the allocator.
            self.by_fd
                .resize((fd + 1).next_power_of_two().max(FIRST_FDS), 0);
        }
        // index < MAX_SLOTS (next_token), so index + 1 fits INDEX_BITS.
        self.by_fd[fd] = (index as u32 + 1) | watch.pack();
    }

    /// The object `token` names, unless it is gone (or a reservation).
    #[inline]
    pub(super) fn get(&self, token: Token) -> Option<&T> {
        match self.entries.get(token.index()) {
            Some(Entry {
                generation,
                body: Body::Live { object, .. },
            }) if *generation == token.generation() => Some(object),
            _ => None,
        }
    }

    /// The object `token` names, mutably.
    #[inline]
    pub(super) fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        match self.entries.get_mut(token.index()) {
            Some(Entry {
                generation,
                body: Body::Live { object, .. },
            }) if *generation == token.generation() => Some(object),
            _ => None,
        }
    }

    /// Several objects at once: `None` if any token is stale or two are the same.
    pub(super) fn get_disjoint_mut<const N: usize>(
        &mut self,
        tokens: [Token; N],
    ) -> Option<[&mut T; N]> {
        let entries = self
            .entries
            .get_disjoint_mut(tokens.map(Token::index))
            .ok()?;
        let mut objects = entries.into_iter().zip(tokens).map(|(entry, token)| {
            match (entry.generation == token.generation(), &mut entry.body) {
                (true, Body::Live { object, .. }) => Some(object),
                _ => None,
            }
        });
        let array: [Option<&mut T>; N] = std::array::from_fn(|_| objects.next().flatten());
        if array.iter().any(Option::is_none) {
            return None;
        }
        Some(array.map(|object| object.expect("checked above")))
    }

    /// The descriptor and watch of the live object `token` names.
    pub(super) fn watch(&self, token: Token) -> Option<(RawFd, Watch)> {
        let fd = match self.entries.get(token.index()) {
            Some(Entry {
                generation,
                body: Body::Live { fd, .. },
            }) if *generation == token.generation() => *fd,
            _ => return None,
        };
        let cell = self.cell(fd, token.index())?;
        Some((fd, Watch::unpack(cell)))
    }

    /// Records a new watch for the live object `token` names (found by
    /// [`watch`](Slots::watch)).
    pub(super) fn set_watch(&mut self, token: Token, fd: RawFd, watch: Watch) {
        if self.cell(fd, token.index()).is_some() {
            self.own_fd(fd, token.index(), watch);
        }
    }

    /// `fd`'s cell, if slot `index` owns it.
    fn cell(&self, fd: RawFd, index: usize) -> Option<u32> {
        let cell = *self.by_fd.get(usize::try_from(fd).ok()?)?;
        ((cell & INDEX_MASK) as usize == index + 1).then_some(cell)
    }

    /// The token of the live object that registered `fd`, if any.
    pub(super) fn holder(&self, fd: RawFd) -> Option<Token> {
        let cell = *self.by_fd.get(usize::try_from(fd).ok()?)?;
        let index = ((cell & INDEX_MASK) as usize).checked_sub(1)?;
        match self.entries.get(index) {
            Some(Entry {
                generation,
                body: Body::Live { fd: held, .. },
            }) if *held == fd => Some(Token::new(index, *generation)),
            _ => None,
        }
    }

    /// Empties the live slot or reservation `token` names: its generation
    /// moves on (so `token` goes stale) and the entry heads the vacant chain.
    /// `None` if `token` names neither.
    pub(super) fn vacate(&mut self, token: Token) -> Option<Vacated<T>> {
        let index = token.index();
        let entry = self.entries.get_mut(index)?;
        match entry.body {
            _ if entry.generation != token.generation() => return None,
            Body::Empty { next } if next != RESERVED => return None,
            _ => {}
        }
        entry.generation = entry.generation.wrapping_add(1);
        let body = std::mem::replace(&mut entry.body, Body::Empty { next: self.free });
        // index < MAX_SLOTS < RESERVED: it never reads as a reservation.
        self.free = index as u32;
        let Body::Live { object, fd } = body else {
            self.reserved -= 1;
            return Some(Vacated {
                live: None,
                watch: None,
            });
        };
        self.live -= 1;
        let watch = self.cell(fd, index).map(|cell| {
            // Checked by `cell`: the number is this slot's.
            self.by_fd[fd as usize] = 0;
            Watch::unpack(cell)
        });
        Some(Vacated {
            live: Some((object, fd)),
            watch,
        })
    }

    /// Every live token with its object, by index.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Token, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| match &entry.body {
                Body::Live { object, .. } => Some((Token::new(index, entry.generation), object)),
                Body::Empty { .. } => None,
            })
    }

    /// Every live token with its object, mutably.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(index, entry)| match &mut entry.body {
                Body::Live { object, .. } => Some((Token::new(index, entry.generation), object)),
                Body::Empty { .. } => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    const LEVEL_READ: Watch = Watch {
        interest: Interest::READABLE,
        trigger: Trigger::Level,
        paused: false,
    };

    #[test]
    fn an_entry_for_a_small_object_is_twelve_bytes() {
        // Four bytes of object (with a niche), four of descriptor, four of
        // generation: with the descriptor table's four, mio + Slab's 16.
        assert_eq!(size_of::<Entry<OwnedFd>>(), 12);
    }

    #[test]
    fn a_stale_token_misses_after_its_slot_is_reused() {
        let mut slots = Slots::new();
        let a = slots.occupy("a", 3, LEVEL_READ);
        assert!(slots.vacate(a).is_some());
        let b = slots.occupy("b", 4, LEVEL_READ);
        assert_eq!((a.index(), a.generation() + 1), (b.index(), b.generation()));
        assert_eq!(slots.get(a), None);
        assert_eq!(slots.get(b), Some(&"b"));
        assert!(slots.vacate(a).is_none());
        assert!(slots.watch(a).is_none());
        assert_eq!(slots.holder(3), None);
        assert_eq!(slots.holder(4), Some(b));
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn the_generation_wraps_and_still_moves_on() {
        let mut slots = Slots::new();
        let a = slots.occupy(1, 3, LEVEL_READ);
        slots.entries[a.index()].generation = u32::MAX;
        let old = Token::new(a.index(), u32::MAX);
        assert_eq!(slots.get(old), Some(&1));
        assert!(slots.vacate(old).is_some());
        let new = slots.occupy(2, 3, LEVEL_READ);
        assert_eq!((new.index(), new.generation()), (a.index(), 0));
        assert_eq!(slots.get(old), None);
        assert_eq!(slots.get(new), Some(&2));
    }

    #[test]
    fn vacant_entries_are_reused_last_freed_first() {
        let mut slots = Slots::new();
        let t: Vec<Token> = (0..4)
            .map(|i| slots.occupy(i, 10 + i, LEVEL_READ))
            .collect();
        for &i in &[1, 3, 2] {
            assert!(slots.vacate(t[i]).is_some());
        }
        let again: Vec<usize> = (0..4)
            .map(|i| slots.occupy(20 + i, 20 + i, LEVEL_READ).index())
            .collect();
        assert_eq!(again, [2, 3, 1, 4]);
        assert_eq!(slots.len(), 5);
        let live: Vec<i32> = slots.iter().map(|(_, &o)| o).collect();
        assert_eq!(live, [0, 22, 20, 21, 23]);
    }

    #[test]
    fn a_reservation_is_filled_or_given_back() {
        let mut slots = Slots::<u8>::new();
        let r = slots.reserve();
        assert!(slots.is_reserved(r) && slots.get(r).is_none());
        assert_eq!(slots.next_token().map(|t| t.index()), Some(1));
        slots.fill(r, 7, 5, LEVEL_READ);
        assert!(!slots.is_reserved(r));
        assert_eq!(slots.get(r), Some(&7));
        let q = slots.reserve();
        let gone = slots.vacate(q).expect("a reservation");
        assert!(gone.live.is_none() && gone.watch.is_none());
        assert!(!slots.is_reserved(q) && slots.vacate(q).is_none());
        assert_eq!(slots.next_token(), Some(Token::new(q.index(), 1)));
    }

    #[test]
    fn the_watch_round_trips_through_the_descriptor_table() {
        let mut slots = Slots::new();
        let t = slots.occupy((), 9, LEVEL_READ);
        assert_eq!(slots.watch(t), Some((9, LEVEL_READ)));
        for trigger in [Trigger::Level, Trigger::Edge, Trigger::Oneshot] {
            for interest in [
                Interest::READABLE,
                Interest::WRITABLE,
                Interest::PRIORITY,
                Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
            ] {
                for paused in [false, true] {
                    let watch = Watch {
                        interest,
                        trigger,
                        paused,
                    };
                    slots.set_watch(t, 9, watch);
                    assert_eq!(slots.watch(t), Some((9, watch)));
                }
            }
        }
        let gone = slots.vacate(t).expect("live");
        assert!(gone.watch.is_some());
        assert_eq!(slots.holder(9), None);
    }
}
