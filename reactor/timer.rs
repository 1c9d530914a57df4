//! Timers: deadlines that wake `poll`, kept in a hierarchical timing wheel.
//!
//! The course's *timeout detection* (超时检测) has two forms: a blocking
//! socket with `sock.settimeout(5)`, and `select(rlist, wlist, xlist, timeout)`
//! returning empty lists when nothing happened in time. A reactor serving
//! thousands of clients needs the second form for each of them at once: the
//! chat room's "no valid name within 60 s → `! login timeout`", an idle
//! client that has said nothing for ten minutes, a reconnect in two seconds.
//! [`Timers`] holds all of those deadlines for one reactor. Each turn of the
//! loop asks it [`next_deadline`](Timers::next_deadline), turns that into
//! the `timeout` argument of `select` / `poll` / `epoll_wait`, and after the
//! call hands the clock to [`expire`](Timers::expire), which lists the timers
//! that are due. It is a pure data structure: it never reads the clock except
//! in [`Timers::new`] and [`Timers::insert_after`], and makes no system call,
//! so tests drive it with made-up instants.
//!
//! # Design
//!
//! A hierarchical timing wheel (Varghese & Lauck, 1997; the same shape as
//! Linux's `timer_list` wheel and tokio's time driver). Time is counted in
//! 1 ms *ticks* since the wheel's start. Six levels of 64 slots each; a slot
//! on level `L` covers 64^L ticks, so the wheel spans 64^6 ms ≈ 795 days and
//! deadlines beyond that wait in an overflow list.
//!
//! ```text
//!               elapsed (the wheel's "now", in ticks)
//!                  │
//!   level 0  [ ][ ][▓][ ][▓][ ] … 64 slots × 1 ms       occupied: u64 bitmap
//!   level 1  [ ][ ][ ][▓][ ][ ] … 64 slots × 64 ms      occupied: u64 bitmap
//!   level 2  [ ][▓][ ][ ][ ][ ] … 64 slots × 4.1 s      occupied: u64 bitmap
//!     …                                                  …
//!   level 5  [ ][ ][ ][ ][ ][▓] … 64 slots × 12.4 days  occupied: u64 bitmap
//!   overflow ▓ ▓                  beyond 795 days
//!
//!   slot ──head──▶ entry 7 ◀──▶ entry 3 ◀──▶ entry 12 ◀──tail── slot
//!   entries live in one Vec (the slab), linked by u32 indices; freed
//!   entries form a free list and are reused, so steady state allocates nothing
//! ```
//!
//! A timer goes on the lowest level whose slot tells it apart from `elapsed`.
//! When `elapsed` reaches a slot on a higher level, that slot *cascades*: its
//! timers move down to finer levels. A timer moves down at most five times,
//! and only level 0 fires timers, after comparing each one's exact deadline
//! (nanoseconds) with `now`, so no timer ever fires early. The timers fired
//! from one slot are sorted by (deadline, insertion sequence), so `expire`
//! reports them in deadline order and equal deadlines in insertion order.
//!
//! An insert is straight-line code, about 85 instructions: the deadline
//! `Instant` becomes nanoseconds since the start by reading its clock
//! seconds and nanoseconds inline (std's own subtraction is an out-of-line
//! call that cost a third of an insert; see `ClockReading` for how the
//! reading is checked and when it falls back to std), the level comes from
//! a 64-entry table indexed by the highest bit where the tick and `elapsed`
//! differ, and the entry taken from the free list is written whole, without
//! being read first.
//!
//! | operation | cost |
//! |---|---|
//! | [`insert`](Timers::insert), [`cancel`](Timers::cancel), [`reset`](Timers::reset), [`is_pending`](Timers::is_pending) | O(1) |
//! | [`next_deadline`](Timers::next_deadline) | O(1): at most 6 bitmap scans |
//! | [`expire`](Timers::expire) | O(fired) + at most 5 cascades per timer over its life + sorting within each 1 ms slot |
//! | memory | 32 bytes per timer (one slab entry) + a fixed 6 KiB of slot heads |
//!
//! Python: `heapq.heappush(timers, (deadline, seq, callback))` and
//! `loop.call_later(delay, callback)` in `asyncio`, whose `_run_once` takes
//! `timeout = timers[0].when() - loop.time()` for its `selector.select(timeout)`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// Nanoseconds in one tick of the wheel.
const TICK_NS: u64 = 1_000_000;
/// log2 of the slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels of the wheel; 64^6 ticks ≈ 795 days.
const LEVELS: usize = 6;
/// Index of the overflow list in `Timers::slots`.
const OVERFLOW: u32 = (LEVELS * SLOTS) as u32;
/// "No entry": the end of a list.
const NIL: u32 = u32::MAX;
/// `Entry::slot` of an entry that is not pending.
const FREE: u32 = u32::MAX;
/// `Entry::slot` of an entry that fired and is held for its owner
/// ([`Timers::expire_held`]): not pending, not free, id still valid.
const HELD: u32 = u32::MAX - 1;
/// A deadline that never fires: one clamped past `u64::MAX` nanoseconds (584 years).
const NEVER: u64 = u64::MAX;

/// Clock readings with seconds below this fit an i64 in nanoseconds.
const SHORT_SECS: i64 = 1 << 33;

/// For each bit position, the level whose digit holds it: (its shift, its
/// first index in `Timers::slots`); `(63, OVERFLOW)` past the top level.
const LEVEL_OF_BIT: [(u32, u32); 64] = {
    let mut table = [(63, OVERFLOW); 64];
    let mut bit = 0;
    while bit < LEVELS * SLOT_BITS as usize {
        let level = bit as u32 / SLOT_BITS;
        table[bit] = (level * SLOT_BITS, level * SLOTS as u32);
        bit += 1;
    }
    table
};

/// The handle of one timer, returned by [`Timers::insert`].
///
/// It is an index into the timer slab plus a generation. Firing or cancelling
/// a timer bumps its slot's generation, so an old `TimerId` never touches a
/// newer timer that reused the slot: [`Timers::cancel`] returns `false` and
/// [`Timers::is_pending`] returns `false` for it. (The generation is 32 bits:
/// an id would only alias after the same slot was reused 2^32 times.)
///
/// # Examples
///
/// ```
/// use reactor::timer::Timers;
/// use std::time::Duration;
///
/// let mut timers = Timers::new();
/// let t0 = timers.start();
/// let old = timers.insert(t0);
/// let mut fired = Vec::new();
/// timers.expire(t0, &mut fired);
/// assert_eq!(fired, [old]);
/// let new = timers.insert(t0 + Duration::from_secs(1)); // may reuse old's slot
/// assert!(!timers.cancel(old)); // the stale id does not cancel `new`
/// assert!(timers.is_pending(new));
/// ```
///
/// Python: the `asyncio.TimerHandle` that `loop.call_later` returns.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    /// Index of the entry in `Timers::entries`.
    index: u32,
    /// `Entry::generation` when this timer was armed.
    generation: u32,
}

impl fmt::Debug for TimerId {
    /// `Timer(3#1)`: slot 3, generation 1 — the same shape as `Token`'s,
    /// so the two read alike side by side in the trace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timer({}#{})", self.index, self.generation)
    }
}

impl TimerId {
    /// The slab index, for side tables keyed by timer (the `Reactor` keeps
    /// each timer's `Token` in one). Unique among pending timers.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }
}

/// One slab entry: a pending timer or a free cell (32 bytes).
#[derive(Clone, Copy)]
struct Entry {
    /// Deadline in nanoseconds since `Timers::start`; `NEVER` never fires.
    deadline: u64,
    /// Insertion sequence number: orders equal deadlines.
    seq: u64,
    /// Next entry in the slot's list (or in the free list); `NIL` ends it.
    next: u32,
    /// Previous entry in the slot's list; `NIL` at the head.
    prev: u32,
    /// Bumped each time the entry stops being pending.
    generation: u32,
    /// Index of the slot holding the entry (`level * 64 + slot` or `OVERFLOW`); `FREE` if none.
    slot: u32,
}

/// One slot of the wheel: a doubly linked list of entries and a lower bound.
#[derive(Clone, Copy)]
struct Slot {
    /// First entry, or `NIL` when empty.
    head: u32,
    /// Last entry, or `NIL` when empty.
    tail: u32,
    /// The earliest deadline linked here since the slot was last empty:
    /// never later than any deadline in it, exact unless that timer left.
    min: u64,
}

impl Slot {
    /// An empty slot.
    const EMPTY: Slot = Slot {
        head: NIL,
        tail: NIL,
        min: NEVER,
    };
}

/// All the timers of one reactor: a hierarchical timing wheel with 1 ms ticks.
///
/// Deadlines are absolute [`Instant`]s. The wheel keeps each as nanoseconds
/// since its start ([`Timers::start`]); an instant before the start counts as
/// the start, and a deadline more than 584 years after it never fires. See
/// the [module docs](self) for the design and costs.
///
/// # Examples
///
/// ```
/// use reactor::timer::Timers;
/// use std::time::Duration;
///
/// let mut timers = Timers::new();
/// let t0 = timers.start();
/// let login = timers.insert(t0 + Duration::from_secs(60));
/// let idle = timers.insert(t0 + Duration::from_secs(600));
/// assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(60)));
///
/// let mut fired = Vec::new();
/// timers.expire(t0 + Duration::from_secs(61), &mut fired);
/// assert_eq!(fired, [login]);
/// assert!(timers.is_pending(idle));
/// ```
///
/// Python: a list kept with `heapq` plus a `dict` of cancelled entries, or
/// the `_scheduled` heap inside an `asyncio` event loop.
pub struct Timers {
    /// The slab of timers, pending and free.
    entries: Vec<Entry>,
    /// Head of the free list through `Entry::next`; `NIL` if none.
    free: u32,
    /// `LEVELS * SLOTS` wheel slots, then the overflow list.
    slots: Vec<Slot>,
    /// One bit per occupied slot, per level.
    occupied: [u64; LEVELS],
    /// Every pending timer has a tick `>= elapsed` (past deadlines are filed at `elapsed`).
    elapsed: u64,
    /// The instant of tick 0.
    start: Instant,
    /// `start` as a clock reading in nanoseconds, if instants can be read
    /// on this platform ([`ClockReading`]); `None` means std's subtraction.
    start_clock: Option<i64>,
    /// Next insertion sequence number.
    seq: u64,
    /// Number of pending timers.
    len: usize,
    /// Scratch for sorting one slot's fired timers: (deadline, seq, id).
    sort_buf: Vec<(u64, u64, TimerId)>,
    /// Inside [`expire_held`](Timers::expire_held): fired entries are held, not freed.
    hold: bool,
}

impl Timers {
    /// Creates an empty set of timers whose clock starts at `Instant::now()`.
    ///
    /// The start instant is tick 0 of the wheel; read it with
    /// [`start`](Timers::start).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    ///
    /// let timers = Timers::new();
    /// assert!(timers.is_empty());
    /// assert_eq!(timers.next_deadline(), None);
    /// ```
    ///
    /// Python: `timers = []` (a list for `heapq`).
    pub fn new() -> Timers {
        Timers::with_capacity(0)
    }

    /// Creates an empty set of timers with room for `n` pending timers.
    ///
    /// Up to `n` timers can then be pending at once without allocating.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Duration;
    ///
    /// let mut timers = Timers::with_capacity(10_000);
    /// timers.insert_after(Duration::from_secs(10));
    /// assert_eq!(timers.len(), 1);
    /// ```
    ///
    /// Python: `timers = []`; Python lists grow on their own.
    pub fn with_capacity(n: usize) -> Timers {
        let start = Instant::now();
        Timers {
            entries: Vec::with_capacity(n),
            free: NIL,
            slots: vec![Slot::EMPTY; LEVELS * SLOTS + 1],
            occupied: [0; LEVELS],
            elapsed: 0,
            start,
            start_clock: ClockReading::calibrated(start),
            seq: 0,
            len: 0,
            sort_buf: Vec::new(),
            hold: false,
        }
    }

    /// Returns the instant the wheel counts from (tick 0).
    ///
    /// Useful for tests and examples that drive the timers with a synthetic
    /// clock: `t0 + Duration::from_millis(5)` is exactly 5 ms into the wheel.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Instant;
    ///
    /// let timers = Timers::new();
    /// assert!(timers.start() <= Instant::now());
    /// ```
    ///
    /// Python: `t0 = loop.time()` at start-up.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Arms a timer for `deadline` and returns its id.
    ///
    /// A deadline in the past (or now) fires at the next [`expire`](Timers::expire).
    /// Timers with equal deadlines fire in the order they were inserted.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX - 1` timers would be pending at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Duration;
    ///
    /// let mut timers = Timers::new();
    /// let t0 = timers.start();
    /// let id = timers.insert(t0 + Duration::from_millis(250));
    /// assert!(timers.is_pending(id));
    /// ```
    ///
    /// Python: `heapq.heappush(timers, (deadline, next(seq), callback))`, or
    /// `loop.call_at(deadline, callback)`.
    #[inline]
    pub fn insert(&mut self, deadline: Instant) -> TimerId {
        self.insert_nanos(self.nanos(deadline))
    }

    /// Arms a timer `delay` from now (`Instant::now() + delay`) and returns its id.
    ///
    /// A huge delay (even `Duration::MAX`) does not overflow: it saturates to
    /// a timer that never fires.
    ///
    /// # Panics
    ///
    /// As [`insert`](Timers::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Duration;
    ///
    /// let mut timers = Timers::new();
    /// let login = timers.insert_after(Duration::from_secs(60));
    /// let never = timers.insert_after(Duration::MAX);
    /// assert!(timers.is_pending(login) && timers.is_pending(never));
    /// ```
    ///
    /// Python: `loop.call_later(60, on_login_timeout)`.
    pub fn insert_after(&mut self, delay: Duration) -> TimerId {
        let delay = u64::try_from(delay.as_nanos()).unwrap_or(NEVER);
        self.insert_nanos(self.nanos(Instant::now()).saturating_add(delay))
    }

    /// Cancels a pending timer; returns `true` if it was pending.
    ///
    /// Returns `false`, and changes nothing, for a timer that already fired
    /// or was cancelled: a stale id never cancels a newer timer that reused
    /// its slot. (An id is only meaningful to the `Timers` that issued it.)
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Duration;
    ///
    /// let mut timers = Timers::new();
    /// let id = timers.insert_after(Duration::from_secs(60));
    /// assert!(timers.cancel(id));
    /// assert!(!timers.cancel(id));
    /// assert!(timers.is_empty());
    /// ```
    ///
    /// Python: `handle.cancel()` on an `asyncio.TimerHandle`.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        if !self.is_pending(id) {
            return false;
        }
        self.unlink(id.index);
        self.release(id.index);
        true
    }

    /// Re-arms a pending timer for a new absolute `deadline`, keeping its id.
    ///
    /// This is the idle-timeout pattern: on every message from a client,
    /// `reset(idle, now + 600 s)`. The deadline is absolute, so repeated
    /// resets do not drift. The timer counts as newly inserted for ordering
    /// among equal deadlines. Returns `false`, and arms nothing, if the timer
    /// is no longer pending (fired or cancelled): insert a new one then.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Duration;
    ///
    /// let mut timers = Timers::new();
    /// let t0 = timers.start();
    /// let idle = timers.insert(t0 + Duration::from_secs(600));
    /// // a message arrives at t0 + 5 s
    /// assert!(timers.reset(idle, t0 + Duration::from_secs(605)));
    /// let mut fired = Vec::new();
    /// timers.expire(t0 + Duration::from_secs(600), &mut fired);
    /// assert!(fired.is_empty());
    /// ```
    ///
    /// Python: `handle.cancel(); handle = loop.call_at(new_deadline, callback)`.
    pub fn reset(&mut self, id: TimerId, deadline: Instant) -> bool {
        if !self.is_pending(id) {
            return false;
        }
        let deadline = self.nanos(deadline);
        self.rearm(id.index, deadline);
        true
    }

    /// Returns `true` if the timer is armed: not yet fired nor cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    ///
    /// let mut timers = Timers::new();
    /// let t0 = timers.start();
    /// let id = timers.insert(t0);
    /// assert!(timers.is_pending(id));
    /// timers.expire(t0, &mut Vec::new());
    /// assert!(!timers.is_pending(id));
    /// ```
    ///
    /// Python: `not handle.cancelled()` (asyncio has no "fired" flag).
    pub fn is_pending(&self, id: TimerId) -> bool {
        self.entries
            .get(id.index as usize)
            .is_some_and(|e| e.generation == id.generation && e.slot < HELD)
    }

    /// Whether `id` fired in [`expire_held`](Timers::expire_held) and is
    /// still held (not yet [`release_held`](Timers::release_held)).
    pub(crate) fn is_held(&self, id: TimerId) -> bool {
        self.entries
            .get(id.index as usize)
            .is_some_and(|e| e.generation == id.generation && e.slot == HELD)
    }

    /// As [`expire`](Timers::expire), but the fired timers are *held*: their
    /// ids stay valid (so [`revive`](Timers::revive) can re-arm one) until
    /// [`release_held`](Timers::release_held) frees them. The `Reactor`
    /// holds a fired timer until its report is taken.
    pub(crate) fn expire_held(&mut self, now: Instant, fired: &mut Vec<TimerId>) -> usize {
        self.hold = true;
        let n = self.expire(now, fired);
        self.hold = false;
        n
    }

    /// Frees a held timer; returns whether it was held.
    pub(crate) fn release_held(&mut self, id: TimerId) -> bool {
        if !self.is_held(id) {
            return false;
        }
        self.free_entry(id.index);
        true
    }

    /// Re-arms a held timer for `deadline`, keeping its id; returns whether
    /// it was held.
    pub(crate) fn revive(&mut self, id: TimerId, deadline: Instant) -> bool {
        if !self.is_held(id) {
            return false;
        }
        let seq = self.next_seq();
        let deadline = self.nanos(deadline);
        let e = &mut self.entries[id.index as usize];
        e.deadline = deadline;
        e.seq = seq;
        self.link(id.index);
        self.len += 1;
        true
    }

    /// Returns the instant by which `poll` must wake, or `None` if no timer is pending.
    ///
    /// Cheap (at most six bitmap scans), meant for every turn of the loop.
    /// Exactly what it returns: the earliest deadline ever filed in the
    /// earliest occupied slot of the wheel since that slot was last empty.
    /// Hence:
    ///
    /// - it is **never later** than the earliest pending deadline;
    /// - it **equals** that deadline when the earliest timer is still the one
    ///   that set the slot's bound (no cancel or `reset` removed an earlier
    ///   timer from that slot);
    /// - otherwise it may be **earlier** by less than the slot's width: under
    ///   1 ms on level 0 (the last 64 ms before the deadline), up to 64^L ms
    ///   on level `L`. Waking then costs one `expire` that fires nothing but
    ///   moves the slot's timers to a finer level, after which the answer is
    ///   tighter again; each early answer is used at most once per slot.
    /// - after `expire(now)` it is later than `now` (no busy loop), unless a
    ///   timer due by `now` was inserted since.
    ///
    /// Deadlines before [`start`](Timers::start) are reported as the start.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::{Duration, Instant};
    ///
    /// let mut timers = Timers::new();
    /// let t0 = timers.start();
    /// timers.insert(t0 + Duration::from_millis(1500));
    /// timers.insert(t0 + Duration::from_millis(200));
    /// let wake = timers.next_deadline().unwrap();
    /// assert_eq!(wake, t0 + Duration::from_millis(200));
    /// // the poll timeout for this loop turn:
    /// let timeout = wake.saturating_duration_since(Instant::now());
    /// assert!(timeout <= Duration::from_millis(200));
    /// ```
    ///
    /// Python: `timeout = max(0, timers[0][0] - time.monotonic()) if timers else None`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let slot = self.first_occupied()?.0;
        let min = self.slots[slot as usize].min;
        self.start.checked_add(Duration::from_nanos(min))
    }

    /// Appends to `fired` every pending timer whose deadline is `<= now`; returns how many.
    ///
    /// The fired timers are appended in deadline order, equal deadlines in
    /// insertion order (a [`reset`](Timers::reset) counts as an insertion),
    /// and are no longer pending. A timer whose deadline is after `now` never
    /// fires: each deadline is compared exactly (in nanoseconds), not only
    /// by its 1 ms tick. `fired` is appended to, never cleared.
    ///
    /// Cost: O(1) per fired timer plus the cascades of higher-level slots
    /// that `now` has reached (each timer cascades at most five times in its
    /// life) and sorting each 1 ms slot's fired timers. Calling it several
    /// times within the same millisecond rescans that millisecond's slot.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Duration;
    ///
    /// let mut timers = Timers::new();
    /// let t0 = timers.start();
    /// let ms = Duration::from_millis;
    /// let b = timers.insert(t0 + ms(20));
    /// let a = timers.insert(t0 + ms(10));
    /// let c = timers.insert(t0 + ms(30));
    /// let mut fired = Vec::new();
    /// assert_eq!(timers.expire(t0 + ms(20), &mut fired), 2);
    /// assert_eq!(fired, [a, b]);
    /// assert!(timers.is_pending(c));
    /// ```
    ///
    /// Python: `while timers and timers[0][0] <= now: fired.append(heapq.heappop(timers))`.
    pub fn expire(&mut self, now: Instant, fired: &mut Vec<TimerId>) -> usize {
        let before = fired.len();
        let Some(since) = now.checked_duration_since(self.start) else {
            return 0; // before the wheel's start nothing can be due
        };
        // `NEVER` deadlines must stay later than any `now`.
        let now_ns = u64::try_from(since.as_nanos()).map_or(NEVER - 1, |n| n.min(NEVER - 1));
        // Past deadlines are filed at `elapsed`, so look at least that far.
        let now_tick = (now_ns / TICK_NS).max(self.elapsed);
        // Take the earliest occupied slot while it starts no later than now.
        while let Some((slot, slot_start)) = self.first_occupied() {
            if slot_start > now_tick {
                break;
            }
            self.elapsed = slot_start;
            match slot {
                // Overflow: `elapsed` entered a new 795-day span; refile them all.
                OVERFLOW => self.cascade(slot),
                // Level 0 before now's millisecond: all due.
                s if s < SLOTS as u32 && slot_start < now_tick => {
                    self.fire_slot(slot, NEVER, fired);
                }
                // Level 0 at now's millisecond: compare each deadline; stop.
                s if s < SLOTS as u32 => {
                    self.fire_slot(slot, now_ns, fired);
                    break;
                }
                // Higher level that now has reached: move its timers down.
                _ => self.cascade(slot),
            }
        }
        self.elapsed = now_tick;
        fired.len() - before
    }

    /// Returns the number of pending timers.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    /// use std::time::Duration;
    ///
    /// let mut timers = Timers::new();
    /// timers.insert_after(Duration::from_secs(1));
    /// assert_eq!(timers.len(), 1);
    /// ```
    ///
    /// Python: `len(timers)`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` if no timer is pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::timer::Timers;
    ///
    /// assert!(Timers::new().is_empty());
    /// ```
    ///
    /// Python: `not timers`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arms a timer for `deadline` nanoseconds since `start`.
    #[inline(always)]
    fn insert_nanos(&mut self, deadline: u64) -> TimerId {
        let seq = self.next_seq();
        let index = match self.free {
            NIL => self.grow(),
            index => index,
        };
        self.len += 1;
        let e = &self.entries[index as usize];
        self.free = e.next;
        let generation = e.generation;
        self.link_new(index, deadline, seq, generation);
        TimerId { index, generation }
    }

    /// Appends a free entry to the slab and returns its index (called when
    /// the free list is empty; the new entry ends it).
    #[cold]
    fn grow(&mut self) -> u32 {
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("more than u32::MAX - 1 timers pending");
        self.entries.push(Entry {
            deadline: NEVER,
            seq: 0,
            next: NIL,
            prev: NIL,
            generation: 0,
            slot: FREE,
        });
        index
    }

    /// Converts an instant to nanoseconds since `start`, clamped to `0..=NEVER`.
    ///
    /// The fast way reads the instant's clock fields (see [`ClockReading`])
    /// and does the arithmetic inline; the slow way, std's subtraction, is
    /// an out-of-line call that cost a third of an insert.
    #[inline]
    fn nanos(&self, t: Instant) -> u64 {
        match (self.start_clock, ClockReading::of(t)) {
            (Some(start), Some(reading)) => {
                let ns = reading.nanos_after(start);
                debug_assert_eq!(ns, self.nanos_slow(t), "{t:?} read as {reading:?}");
                ns
            }
            _ => self.nanos_slow(t),
        }
    }

    /// [`nanos`](Timers::nanos) through std's `Instant` arithmetic only.
    fn nanos_slow(&self, t: Instant) -> u64 {
        let since = t.saturating_duration_since(self.start);
        u64::try_from(since.as_nanos()).unwrap_or(NEVER)
    }

    /// Returns the next insertion sequence number.
    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    /// Gives a pending entry a new deadline and sequence number and refiles it.
    fn rearm(&mut self, index: u32, deadline: u64) {
        let seq = self.next_seq();
        let target = self.slot_for(deadline);
        let e = &mut self.entries[index as usize];
        e.deadline = deadline;
        e.seq = seq;
        if e.slot == target {
            // Same slot: only its lower bound may move. Order within a slot
            // does not matter; fired slots are sorted.
            let slot = &mut self.slots[target as usize];
            slot.min = slot.min.min(deadline);
        } else {
            self.unlink(index);
            self.link(index);
        }
    }

    /// Returns the slot index for a deadline, relative to `elapsed`.
    #[inline(always)]
    fn slot_for(&self, deadline: u64) -> u32 {
        // Past deadlines are filed at the current tick.
        let tick = (deadline / TICK_NS).max(self.elapsed);
        // The level is the highest 6-bit digit where tick and elapsed
        // differ: a table lookup by the highest differing bit (at least 5).
        let differ = (self.elapsed ^ tick) | (SLOTS as u64 - 1);
        let (shift, first) = LEVEL_OF_BIT[63 - differ.leading_zeros() as usize];
        // Beyond the wheel the table says (63, OVERFLOW), and the digit is
        // 0: every tick is below 2^45 (u64::MAX ns / TICK_NS, and `elapsed`
        // only takes such ticks or the start of the next 64^6 span after one).
        first | ((tick >> shift) as u32 & (SLOTS as u32 - 1))
    }

    /// Appends a pending entry (deadline set) to the tail of its slot's list.
    #[inline]
    fn link(&mut self, index: u32) {
        let e = self.entries[index as usize];
        self.link_new(index, e.deadline, e.seq, e.generation);
    }

    /// Writes the whole entry `index` and appends it to the tail of its
    /// slot's list: the insert path, which need not read the entry first.
    #[inline(always)]
    fn link_new(&mut self, index: u32, deadline: u64, seq: u64, generation: u32) {
        let s = self.slot_for(deadline);
        let slot = &mut self.slots[s as usize];
        let tail = std::mem::replace(&mut slot.tail, index);
        slot.min = slot.min.min(deadline);
        if tail == NIL {
            slot.head = index;
            if s != OVERFLOW {
                self.occupied[s as usize / SLOTS] |= 1 << (s as usize % SLOTS);
            }
        } else {
            self.entries[tail as usize].next = index;
        }
        self.entries[index as usize] = Entry {
            deadline,
            seq,
            next: NIL,
            prev: tail,
            generation,
            slot: s,
        };
    }

    /// Removes a pending entry from its slot's list (it stays "pending").
    fn unlink(&mut self, index: u32) {
        let Entry {
            prev, next, slot, ..
        } = self.entries[index as usize];
        match prev {
            NIL => self.slots[slot as usize].head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.slots[slot as usize].tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
        if self.slots[slot as usize].head == NIL {
            self.slots[slot as usize].min = NEVER;
            if slot != OVERFLOW {
                self.occupied[slot as usize / SLOTS] &= !(1 << (slot as usize % SLOTS));
            }
        }
    }

    /// An unlinked pending entry stops being pending: freed, or held for
    /// its owner inside [`expire_held`](Timers::expire_held).
    fn release(&mut self, index: u32) -> TimerId {
        self.len -= 1;
        let id = TimerId {
            index,
            generation: self.entries[index as usize].generation,
        };
        if self.hold {
            self.entries[index as usize].slot = HELD;
        } else {
            self.free_entry(index);
        }
        id
    }

    /// Marks an unlinked entry free: new generation, onto the free list.
    fn free_entry(&mut self, index: u32) {
        let e = &mut self.entries[index as usize];
        e.generation = e.generation.wrapping_add(1);
        e.slot = FREE;
        e.next = self.free;
        self.free = index;
    }

    /// Finds the earliest occupied slot: (slot index, its first tick).
    ///
    /// Level `L` only holds ticks that share all digits above `L` with
    /// `elapsed` and whose digit `L` is at least elapsed's, so the lowest
    /// occupied level's lowest set bit is the earliest slot. The overflow
    /// list counts only when the whole wheel is empty.
    fn first_occupied(&self) -> Option<(u32, u64)> {
        for (level, &bits) in self.occupied.iter().enumerate() {
            if bits != 0 {
                let shift = level as u32 * SLOT_BITS;
                let digit = (self.elapsed >> shift) & (SLOTS as u64 - 1);
                debug_assert_eq!(bits >> digit << digit, bits, "a slot behind elapsed");
                let slot = bits.trailing_zeros();
                let span_mask = (1u64 << (shift + SLOT_BITS)) - 1;
                let start = (self.elapsed & !span_mask) | (u64::from(slot) << shift);
                return Some((level as u32 * SLOTS as u32 + slot, start));
            }
        }
        if self.slots[OVERFLOW as usize].head == NIL {
            return None;
        }
        let top = SLOT_BITS * LEVELS as u32;
        Some((OVERFLOW, ((self.elapsed >> top) + 1) << top))
    }

    /// Detaches a slot's whole list and returns its head.
    fn take_slot(&mut self, s: u32) -> u32 {
        let slot = std::mem::replace(&mut self.slots[s as usize], Slot::EMPTY);
        if s != OVERFLOW {
            self.occupied[s as usize / SLOTS] &= !(1 << (s as usize % SLOTS));
        }
        slot.head
    }

    /// Refiles every timer of a slot relative to the new `elapsed` (they move down).
    fn cascade(&mut self, s: u32) {
        let mut index = self.take_slot(s);
        while index != NIL {
            let next = self.entries[index as usize].next;
            self.link(index);
            index = next;
        }
    }

    /// Fires the level-0 slot `s`'s timers with deadline `<= now_ns`, sorted.
    ///
    /// The slot is one millisecond, and slots fire in time order, so sorting
    /// each slot's batch sorts the whole output. Timers not yet due stay,
    /// and the slot's bound becomes exact again.
    fn fire_slot(&mut self, s: u32, now_ns: u64, fired: &mut Vec<TimerId>) {
        let first = fired.len();
        let mut sorted = true;
        let mut last = (0, 0);
        let mut index = self.take_slot(s);
        while index != NIL {
            let e = self.entries[index as usize];
            if e.deadline <= now_ns {
                sorted &= last <= (e.deadline, e.seq);
                last = (e.deadline, e.seq);
                fired.push(self.release(index));
            } else {
                self.link(index); // back into slot `s`, whose bound it recomputes
            }
            index = e.next;
        }
        if !sorted {
            // Released entries keep deadline and seq until reused, and
            // nothing is reused inside `expire`.
            let entries = &self.entries;
            self.sort_buf.clear();
            self.sort_buf.extend(fired[first..].iter().map(|&id| {
                let e = &entries[id.index as usize];
                (e.deadline, e.seq, id)
            }));
            self.sort_buf.sort_unstable_by_key(|&(d, seq, _)| (d, seq));
            for (out, &(_, _, id)) in fired[first..].iter_mut().zip(&self.sort_buf) {
                *out = id;
            }
        }
    }
}

/// An `Instant` read as the `clock_gettime(CLOCK_MONOTONIC)` value inside
/// it: whole seconds and nanoseconds.
///
/// std offers no accessor for those fields, only subtraction, which does
/// not inline. `Instant`'s `Hash` does inline, and on Linux it feeds the
/// hasher exactly `write_i64(tv_sec)` then `write_u32(tv_nsec)`. That is
/// not a documented promise, so nothing rests on it unchecked:
/// [`of`](ClockReading::of) accepts only that exact sequence of calls with
/// nanoseconds below one second, and [`Timers`] uses the readings only
/// after [`calibrated`](ClockReading::calibrated) has checked, on its own
/// start instant, that differences of readings equal std's own
/// `Instant` arithmetic — seconds, nanoseconds, and a carry between them.
/// Any other shape (another platform, a future std) gives `None` and the
/// wheel falls back to std's subtraction: slower, never wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClockReading {
    /// Whole seconds.
    secs: i64,
    /// Nanoseconds within the second, below 10^9.
    nanos: u32,
}

/// The [`Hasher`] that collects a [`ClockReading`] from an `Instant`'s
/// `Hash`; any call other than the expected two, in order, spoils it.
#[derive(Default)]
struct ReadingHasher {
    /// The seconds, once `write_i64` came first.
    secs: Option<i64>,
    /// The nanoseconds, once `write_u32` followed the seconds.
    nanos: Option<u32>,
    /// Some other write came: not the shape this reader knows.
    spoiled: bool,
}

impl Hasher for ReadingHasher {
    fn finish(&self) -> u64 {
        0 // never used as a hash
    }

    fn write(&mut self, _: &[u8]) {
        // Every write this reader does not expect ends up here (the
        // default `write_u8`, `write_u64`, `write_usize`, … all call it).
        self.spoiled = true;
    }

    fn write_i64(&mut self, secs: i64) {
        self.spoiled |= self.secs.is_some() || self.nanos.is_some();
        self.secs = Some(secs);
    }

    fn write_u32(&mut self, nanos: u32) {
        self.spoiled |= self.secs.is_none() || self.nanos.is_some();
        self.nanos = Some(nanos);
    }
}

impl ClockReading {
    /// Reads `t`, or `None` if its `Hash` does not have the expected shape.
    #[inline]
    fn of(t: Instant) -> Option<ClockReading> {
        let mut hasher = ReadingHasher::default();
        t.hash(&mut hasher);
        match hasher {
            ReadingHasher {
                secs: Some(secs),
                nanos: Some(nanos),
                spoiled: false,
            } if nanos < 1_000_000_000 => Some(ClockReading { secs, nanos }),
            _ => None,
        }
    }

    /// Reads `start` as nanoseconds of the clock (see
    /// [`short`](ClockReading::short)), and returns them only if readings
    /// of instants after it differ from it exactly as std's `Instant`
    /// arithmetic says.
    fn calibrated(start: Instant) -> Option<i64> {
        let start_ns = ClockReading::of(start)?.short()?;
        // A nanosecond; a carry into the seconds whatever start's
        // nanoseconds are (500 ms or 999 ms carries, or both); whole
        // seconds; and a year and a bit.
        let steps = [
            Duration::from_nanos(1),
            Duration::from_millis(500),
            Duration::from_millis(999),
            Duration::new(1, 0),
            Duration::new(86_400 * 365, 123_456_789),
        ];
        for step in steps {
            let later = ClockReading::of(start.checked_add(step)?)?;
            if u128::from(later.nanos_after(start_ns)) != step.as_nanos() {
                return None;
            }
        }
        Some(start_ns)
    }

    /// The reading in nanoseconds, if its seconds are in `0..2^33` (272
    /// years of the clock, which counts from boot): then it fits an i64
    /// with room to subtract another such reading.
    #[inline]
    fn short(self) -> Option<i64> {
        match self.secs {
            secs @ 0..SHORT_SECS => Some(secs * 1_000_000_000 + i64::from(self.nanos)),
            _ => None,
        }
    }

    /// Nanoseconds from `start_ns` (a [`short`](ClockReading::short)
    /// reading) to this reading, clamped to `0..=NEVER`.
    #[inline]
    fn nanos_after(self, start_ns: i64) -> u64 {
        match self.short() {
            // Both in 0..2^63: the difference cannot overflow, and after
            // `max(0)` the cast keeps the value.
            Some(ns) => (ns - start_ns).max(0) as u64,
            None => self.nanos_since_far(start_ns),
        }
    }

    /// [`nanos_after`](ClockReading::nanos_after) for any reading.
    #[cold]
    fn nanos_since_far(self, start_ns: i64) -> u64 {
        // i128 holds any (i64, u32) reading in nanoseconds, and differences.
        let ns =
            i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos) - i128::from(start_ns);
        if ns <= 0 {
            0
        } else {
            u64::try_from(ns).unwrap_or(NEVER)
        }
    }
}
impl Default for Timers {
    /// Same as [`Timers::new`].
    fn default() -> Timers {
        Timers::new()
    }
}

impl fmt::Debug for Timers {
    /// Shows the count and next deadline, not the 32 bytes of every timer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("len", &self.len)
            .field("elapsed_ms", &self.elapsed)
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Expires at `now` and returns what fired.
    fn expire(timers: &mut Timers, now: Instant) -> Vec<TimerId> {
        let mut fired = Vec::new();
        let n = timers.expire(now, &mut fired);
        assert_eq!(n, fired.len());
        fired
    }

    #[test]
    fn timers_fire_in_deadline_order() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let c = timers.insert(t0 + ms(3000));
        let a = timers.insert(t0 + us(1500));
        let d = timers.insert(t0 + ms(70_000));
        let b = timers.insert(t0 + us(1200) + us(600));
        assert_eq!(expire(&mut timers, t0 + ms(100_000)), [a, b, c, d]);
        assert!(timers.is_empty());
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        // Filed on different levels, then meet in one millisecond.
        let late = t0 + ms(5000);
        let a = timers.insert(late);
        expire(&mut timers, t0 + ms(4990));
        let b = timers.insert(late);
        let c = timers.insert(late - us(1));
        let d = timers.insert(late);
        assert_eq!(expire(&mut timers, late), [c, a, b, d]);
    }

    #[test]
    fn expire_never_fires_early() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let deadline = t0 + ms(7) + Duration::from_nanos(1);
        let id = timers.insert(deadline);
        assert!(expire(&mut timers, t0 + ms(7)).is_empty());
        assert!(expire(&mut timers, deadline - Duration::from_nanos(1)).is_empty());
        assert_eq!(expire(&mut timers, deadline), [id]);
    }

    #[test]
    fn cancel_removes_a_pending_timer() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let a = timers.insert(t0 + ms(10));
        let b = timers.insert(t0 + ms(20));
        assert!(timers.cancel(a));
        assert!(!timers.cancel(a));
        assert!(!timers.is_pending(a));
        assert_eq!(timers.len(), 1);
        assert_eq!(expire(&mut timers, t0 + ms(30)), [b]);
    }

    #[test]
    fn cancel_after_expiry_is_false_and_spares_the_slot_reuser() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let old = timers.insert(t0 + ms(1));
        assert_eq!(expire(&mut timers, t0 + ms(2)), [old]);
        let new = timers.insert(t0 + ms(50));
        assert_eq!(new.index, old.index, "the slot is reused");
        assert!(!timers.cancel(old));
        assert!(!timers.reset(old, t0));
        assert!(timers.is_pending(new));
        assert_eq!(expire(&mut timers, t0 + ms(50)), [new]);
    }

    #[test]
    fn unknown_ids_are_not_pending() {
        let mut other = Timers::new();
        let foreign = other.insert_after(ms(5));
        let mut timers = Timers::new();
        assert!(!timers.is_pending(foreign));
        assert!(!timers.cancel(foreign));
    }

    #[test]
    fn reset_earlier_and_later() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let a = timers.insert(t0 + ms(10_000));
        let b = timers.insert(t0 + ms(20));
        assert!(timers.reset(a, t0 + ms(5)));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(5)));
        assert!(timers.reset(b, t0 + ms(90_000)));
        assert_eq!(expire(&mut timers, t0 + ms(89_999)), [a]);
        assert_eq!(expire(&mut timers, t0 + ms(90_000)), [b]);
    }

    #[test]
    fn reset_counts_as_a_new_insertion_for_ties() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let a = timers.insert(t0 + ms(40));
        let b = timers.insert(t0 + ms(40));
        assert!(timers.reset(a, t0 + ms(40)));
        assert_eq!(expire(&mut timers, t0 + ms(40)), [b, a]);
    }

    #[test]
    fn past_deadlines_fire_at_the_next_expire() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        expire(&mut timers, t0 + ms(1000));
        let a = timers.insert(t0 + ms(500));
        let b = timers.insert(t0 + ms(10)); // earlier deadline, inserted later
        let before_start = t0.checked_sub(ms(5)).unwrap_or(t0);
        let c = timers.insert(before_start);
        assert!(timers.next_deadline().unwrap() <= t0 + ms(10));
        assert_eq!(expire(&mut timers, t0 + ms(1000)), [c, b, a]);
    }

    #[test]
    fn an_older_now_still_fires_what_is_due_by_it() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        expire(&mut timers, t0 + ms(100));
        let a = timers.insert(t0 + ms(50));
        let b = timers.insert(t0 + ms(70));
        assert_eq!(expire(&mut timers, t0 + ms(60)), [a]);
        assert_eq!(expire(&mut timers, t0 + ms(100)), [b]);
    }

    #[test]
    fn far_future_deadlines_do_not_overflow() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let year = Duration::from_secs(365 * 24 * 3600);
        let never = timers.insert_after(Duration::MAX);
        let far = timers.insert(t0 + 3 * year); // beyond the wheel: overflow list
        let huge = t0.checked_add(Duration::from_secs(1 << 40));
        let clamped = huge.map(|t| timers.insert(t));
        assert_eq!(timers.next_deadline(), Some(t0 + 3 * year));
        assert!(expire(&mut timers, t0 + 3 * year - ms(1)).is_empty());
        assert_eq!(expire(&mut timers, t0 + 3 * year), [far]);
        assert!(expire(&mut timers, t0 + 500 * year).is_empty());
        assert!(timers.is_pending(never));
        if let Some(c) = clamped {
            assert!(timers.is_pending(c));
            assert!(timers.cancel(c));
        }
        assert!(timers.reset(never, t0 + 501 * year));
        assert_eq!(expire(&mut timers, t0 + 501 * year), [never]);
        assert!(timers.is_empty());
    }

    #[test]
    fn next_deadline_tracks_the_earliest_timer() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        assert_eq!(timers.next_deadline(), None);
        let a = timers.insert(t0 + ms(300_000) + us(7));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(300_000) + us(7)));
        timers.insert(t0 + ms(2) + us(3));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(2) + us(3)));
        expire(&mut timers, t0 + ms(5));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(300_000) + us(7)));
        timers.cancel(a);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn next_deadline_after_cancel_is_early_only_until_the_slot_is_reached() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let a = timers.insert(t0 + ms(10_000));
        timers.insert(t0 + ms(12_000));
        timers.cancel(a);
        // Still the bound of a's slot: early, never late.
        let wake = timers.next_deadline().unwrap();
        assert!(wake <= t0 + ms(12_000));
        // Waking there cascades the slot and tightens the answer.
        assert!(expire(&mut timers, wake).is_empty());
        assert_eq!(timers.next_deadline(), Some(t0 + ms(12_000)));
    }

    #[test]
    fn expire_appends_and_counts() {
        let mut timers = Timers::new();
        let t0 = timers.start();
        let a = timers.insert(t0);
        let mut fired = vec![a];
        assert_eq!(timers.expire(t0, &mut fired), 1);
        assert_eq!(fired, [a, a]);
        assert_eq!(timers.expire(t0 + ms(1), &mut fired), 0);
        assert_eq!(
            timers.expire(t0.checked_sub(ms(1)).unwrap_or(t0), &mut fired),
            0
        );
    }

    #[test]
    fn slots_are_reused_without_growing() {
        let mut timers = Timers::with_capacity(4);
        let t0 = timers.start();
        for round in 0..100u64 {
            let ids: Vec<_> = (0..4)
                .map(|i| timers.insert(t0 + ms(round * 10 + i)))
                .collect();
            assert!(timers.cancel(ids[1]));
            assert_eq!(expire(&mut timers, t0 + ms(round * 10 + 5)).len(), 3);
        }
        assert_eq!(timers.entries.len(), 4);
    }

    #[test]
    fn clock_readings_convert_exactly_as_std_does() {
        let timers = Timers::new();
        let t0 = timers.start();
        // Linux's `Instant` has the shape `ClockReading` knows: the fast
        // conversion must be the one in use, or inserts quietly slow down.
        #[cfg(target_os = "linux")]
        assert!(timers.start_clock.is_some(), "the fast conversion is off");
        let mut rng = Rng(0x5eed);
        let mut instants = vec![t0, t0 + Duration::from_nanos(1)];
        instants.extend(t0.checked_add(Duration::MAX / 4));
        for n in [1, 500, 999, 1000, 1001] {
            instants.extend(t0.checked_sub(ms(n)));
            instants.push(t0 + ms(n));
        }
        for _ in 0..10_000 {
            let ns = rng.below(1 << 50) >> rng.below(50);
            instants.push(t0 + Duration::from_nanos(ns));
            instants.extend(t0.checked_sub(Duration::from_nanos(ns)));
        }
        if let Some(far) = t0.checked_add(Duration::from_secs(600 * 365 * 86_400)) {
            instants.push(far); // past u64::MAX ns: never
            assert_eq!(timers.nanos(far), NEVER);
        }
        for t in instants {
            assert_eq!(timers.nanos(t), timers.nanos_slow(t), "{t:?}");
        }
    }

    #[test]
    fn far_clock_readings_clamp() {
        let reading = |secs, nanos| ClockReading { secs, nanos };
        let exact = |t: ClockReading, start: i64| {
            let ns = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos) - i128::from(start);
            u64::try_from(ns.max(0)).unwrap_or(NEVER)
        };
        let start = 100_900_000_000;
        assert_eq!(reading(100, 900_000_000).nanos_after(start), 0);
        assert_eq!(reading(101, 0).nanos_after(start), 100_000_000);
        assert_eq!(reading(100, 899_999_999).nanos_after(start), 0);
        assert_eq!(reading(99, 999_999_999).nanos_after(start), 0);
        let max_short = (SHORT_SECS - 1) * 1_000_000_000 + 999_999_999;
        let mut rng = Rng(0xfa7);
        for start in [0, 1, start, max_short] {
            let mut readings = vec![
                reading(0, 0),
                reading(SHORT_SECS - 1, 999_999_999),
                reading(SHORT_SECS, 0),
                reading(-1, 999_999_999),
                reading(i64::MAX, 999_999_999),
                reading(i64::MIN, 0),
                // 584 years is the last whole-second step below u64::MAX ns.
                reading(18_446_744_073, 709_551_614),
                reading(18_446_744_073, 709_551_615),
                reading(18_446_744_073, 709_551_616),
            ];
            for _ in 0..1000 {
                let secs = (rng.next() >> rng.below(64)) as i64;
                readings.push(reading(secs, rng.below(1_000_000_000) as u32));
            }
            for t in readings {
                assert_eq!(t.nanos_after(start), exact(t, start), "{t:?} after {start}");
                assert_eq!(
                    t.nanos_since_far(start),
                    exact(t, start),
                    "{t:?} after {start}"
                );
            }
        }
        assert_eq!(reading(18_446_744_073, 709_551_615).nanos_after(0), NEVER);
        assert_eq!(
            reading(18_446_744_073, 709_551_614).nanos_after(0),
            NEVER - 1
        );
    }

    #[test]
    fn only_the_known_hash_shape_is_read() {
        let read = |f: fn(&mut ReadingHasher)| {
            let mut hasher = ReadingHasher::default();
            f(&mut hasher);
            (hasher.secs, hasher.nanos, hasher.spoiled)
        };
        assert_eq!(
            read(|h| {
                h.write_i64(7);
                h.write_u32(9);
            }),
            (Some(7), Some(9), false)
        );
        let spoiled = [
            read(|h| {
                h.write_u32(9);
                h.write_i64(7);
            }),
            read(|h| {
                h.write_i64(7);
                h.write_i64(7);
                h.write_u32(9);
            }),
            read(|h| {
                h.write_i64(7);
                h.write_u32(9);
                h.write_u32(9);
            }),
            read(|h| {
                h.write_u64(7);
                h.write_u32(9);
            }),
            read(|h| {
                h.write_i64(7);
                h.write_u32(9);
                h.write_u8(0);
            }),
        ];
        for (_, _, spoiled) in spoiled {
            assert!(spoiled);
        }
        // Nanoseconds of a second or more are no clock reading.
        assert!(ClockReading::of(Instant::now()).is_none_or(|r| r.nanos < 1_000_000_000));
    }

    #[test]
    fn the_level_table_files_as_the_digit_rule_says() {
        // The rule the table encodes: the lowest level on which the tick's
        // digits above it equal elapsed's; beyond six levels, overflow.
        fn by_rule(elapsed: u64, tick: u64) -> u32 {
            for level in 0..LEVELS as u32 {
                let above = (level + 1) * SLOT_BITS;
                if tick >> above == elapsed >> above {
                    let digit = (tick >> (level * SLOT_BITS)) as u32 & (SLOTS as u32 - 1);
                    return level * SLOTS as u32 + digit;
                }
            }
            OVERFLOW
        }
        let mut timers = Timers::new();
        let mut rng = Rng(0x7ab1e);
        let max_tick = NEVER / TICK_NS;
        for _ in 0..100_000 {
            timers.elapsed = rng.below(max_tick) >> rng.below(45);
            let tick = timers.elapsed + (rng.below(max_tick - timers.elapsed) >> rng.below(45));
            let deadline = tick * TICK_NS + rng.below(TICK_NS);
            assert_eq!(timers.slot_for(deadline), by_rule(timers.elapsed, tick));
        }
        timers.elapsed = 0;
        assert_eq!(timers.slot_for(NEVER), OVERFLOW);
        assert_eq!(timers.slot_for(0), 0);
    }

    #[test]
    fn an_entry_is_32_bytes() {
        assert_eq!(size_of::<Entry>(), 32);
        assert_eq!(size_of::<TimerId>(), 8);
    }

    /// xorshift64*: a small deterministic generator, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A model: deadlines by (nanos since t0, seq), and each id's key.
    #[derive(Default)]
    struct Model {
        queue: BTreeMap<(u64, u64), TimerId>,
        keys: HashMap<TimerId, (u64, u64)>,
        seq: u64,
    }

    impl Model {
        fn arm(&mut self, id: TimerId, at: u64) {
            let key = (at, self.seq);
            self.seq += 1;
            self.queue.insert(key, id);
            self.keys.insert(id, key);
        }

        fn remove(&mut self, id: TimerId) -> bool {
            match self.keys.remove(&id) {
                Some(key) => self.queue.remove(&key).is_some(),
                None => false,
            }
        }
    }

    /// A deadline offset: mostly near `now`, sometimes past, equal, or far.
    fn random_offset(rng: &mut Rng, now: u64) -> u64 {
        match rng.below(10) {
            0 => now.saturating_sub(rng.below(5_000_000)),
            1 => now - now % TICK_NS, // many equal deadlines
            2 => now
                .saturating_add(rng.below(1 << 40) * TICK_NS)
                .min(NEVER - 1),
            3..=5 => now + rng.below(3 * TICK_NS),
            _ => now + rng.below(10_000) * TICK_NS + rng.below(TICK_NS),
        }
    }

    #[test]
    fn random_operations_match_a_btreemap_model() {
        // Seeds 1-8 keep tens of timers pending; 9-12 advance time rarely
        // and keep thousands, so slots hold many timers and cascades are big.
        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let busy = seed > 8;
            let mut timers = Timers::new();
            let t0 = timers.start();
            let mut model = Model::default();
            let mut ids = Vec::new();
            let mut now = 0u64;
            for step in 0..20_000 {
                match rng.below(if busy { 150 } else { 100 }) {
                    0..=39 | 100.. => {
                        let at = random_offset(&mut rng, now);
                        let id = timers.insert(t0 + Duration::from_nanos(at));
                        model.arm(id, at);
                        ids.push(id);
                    }
                    40..=54 if !ids.is_empty() => {
                        let id = ids[rng.below(ids.len() as u64) as usize];
                        assert_eq!(timers.cancel(id), model.remove(id), "step {step}");
                    }
                    55..=69 if !ids.is_empty() => {
                        let id = ids[rng.below(ids.len() as u64) as usize];
                        let at = random_offset(&mut rng, now);
                        let pending = model.remove(id);
                        if pending {
                            model.arm(id, at);
                        }
                        let reset = timers.reset(id, t0 + Duration::from_nanos(at));
                        assert_eq!(reset, pending, "step {step}");
                    }
                    _ => {
                        let pick = match rng.below(200) {
                            p if busy && p >= 10 => 50, // busy: only small steps
                            p => p,
                        };
                        now += match pick {
                            0..=9 => 0,
                            10 => rng.below(1 << 37) * TICK_NS,
                            11..=99 => rng.below(2 * TICK_NS),
                            _ => rng.below(5_000) * TICK_NS + rng.below(TICK_NS),
                        };
                        let mut fired = Vec::new();
                        timers.expire(t0 + Duration::from_nanos(now), &mut fired);
                        let mut want = Vec::new();
                        while let Some(entry) = model.queue.first_entry() {
                            if entry.key().0 > now {
                                break;
                            }
                            let id = entry.remove();
                            model.keys.remove(&id);
                            want.push(id);
                        }
                        assert_eq!(fired, want, "seed {seed} step {step}");
                        if let Some(wake) = timers.next_deadline() {
                            assert!(wake > t0 + Duration::from_nanos(now), "busy loop");
                        }
                    }
                }
                assert_eq!(timers.len(), model.queue.len());
                let earliest = model.queue.keys().next().map(|k| k.0);
                let wake = timers.next_deadline();
                assert_eq!(wake.is_some(), earliest.is_some());
                if let (Some(wake), Some(at)) = (wake, earliest) {
                    assert!(wake <= t0 + Duration::from_nanos(at), "late wake-up");
                }
                if step % 1000 == 0 {
                    for &id in &ids {
                        assert_eq!(timers.is_pending(id), model.keys.contains_key(&id));
                    }
                    ids.retain(|id| model.keys.contains_key(id) || rng.below(4) == 0);
                }
            }
        }
    }
}
