//! [`Signals`]: Unix signals delivered through `poll` as ordinary events.
//!
//! The course stops its servers with Ctrl-C (a `KeyboardInterrupt` that
//! escapes the loop) and reaps children from a `signal.signal(SIGCHLD, …)`
//! handler. A handler runs *between any two instructions* of the program,
//! so it may only do async-signal-safe things (signal-safety(7)): no locks,
//! no allocation, no logging. The safe way to get from there back into the
//! loop is the **self-pipe trick**: the handler writes the signal number into
//! a non-blocking pipe, and the loop watches the pipe's read end like any
//! socket. The signals a server wants this way are `SIGINT` and `SIGTERM`
//! (stop), `SIGHUP` (reload, or stop) and `SIGCHLD` (a child exited: reap it,
//! see [`child`](crate::Reaper)); any catchable signal works.
//!
//! Why not `signalfd(2)`? It only receives signals that are *blocked* in
//! every thread, and a thread created before the mask was set (by a library,
//! by the test harness) would still take the signal with its default action
//! — usually death. The self-pipe works whatever the other threads do: the
//! handler may run on any thread, and all it does is one `write(2)`.
//!
//! # Coalescing: one event may stand for several signals
//!
//! Standard signals do not queue (signal(7)): if SIGCHLD arrives twice before
//! the handler runs, the handler runs once. This module coalesces a step
//! further, on purpose: a per-signal *pending* flag is set by the handler,
//! which writes a byte only when the flag goes from clear to set, and
//! [`Signals::read`] drains the pipe *first* and clears the flags *after*.
//! So the pipe never holds more than a byte or two per signal (it cannot
//! fill, so the handler's `write` never fails and no wake-up is lost), a
//! signal arriving during `read` is either reported by it or wakes the next
//! `poll`, and one reported signal means "at least one delivery since the
//! last `read`". The reader must act on the *state* — reap every exited
//! child, not one per SIGCHLD — never count deliveries.
//!
//! # What the handler does
//!
//! Two atomic counter updates, one atomic load, `getpid()`, one atomic swap
//! and at most one `write(2)`;
//! `errno` is saved and restored, so the interrupted code never sees it
//! change. All four are async-signal-safe. Handlers are installed with
//! `SA_RESTART`, and the reactor's `poll` retries `EINTR` in any case.
//!
//! # fork()
//!
//! A child made by `fork()` inherits the handlers *and* this module's table,
//! which points at the parent's pipe — a pipe the child shares with the
//! parent. Were the child's handler to write there, the parent would see the
//! child's SIGTERM as its own. So every entry records the pid that installed
//! it, and the handler checks it:
//!
//! - in the process that called [`Signals::new`], the signal is written to
//!   the pipe as usual;
//! - in a forked child that has not taken the signal over, the handler puts
//!   back the default action and re-raises the signal, so the child behaves
//!   as if the parent had installed nothing (SIGTERM kills it, SIGCHLD is
//!   ignored);
//! - a child takes a signal over by calling [`Signals::new`] itself, which
//!   succeeds for entries inherited from another pid and points them at the
//!   child's own new pipe.
//!
//! Dropping an inherited `Signals` in the child (or any `Signals` that no
//! longer owns its entries) closes only its own copies of the pipe and does
//! not touch any handler, so it can never disturb the parent or a
//! `Signals` the child made. `prefork_echo` shows the whole dance.
//!
//! Fork only from a single-threaded program (or call only async-signal-safe
//! functions in the child before `exec`): [`Signals::new`] and `drop` take a
//! lock that another thread might hold at the moment of the fork.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::source::Signal;
use crate::sys;

/// Highest signal number Linux has (`SIGRTMAX`), plus one.
const NSIG: usize = 65;

/// For each signal number, who handles it: the pid that installed the
/// handler (high 32 bits) and the write end of its pipe (low 32 bits); 0 for
/// none (no process has pid 0). One atomic word, so the handler reads pid and
/// fd together.
static SLOTS: [AtomicU64; NSIG] = [const { AtomicU64::new(0) }; NSIG];

/// For each signal number: set by the handler, cleared by [`Signals::read`].
/// The handler writes to the pipe only when it sets a clear flag.
static PENDING: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];

/// Handlers running right now, on any thread. `drop` waits for this to be
/// zero after clearing its entries and before closing its pipe, so that a
/// handler that read an entry just before it was cleared never writes to a
/// closed (and possibly reused) descriptor.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Serialises `Signals::new` and `drop` against each other (not against
/// handlers, which only read `SLOTS`).
static INSTALL: Mutex<()> = Mutex::new(());

/// Packs a table entry.
fn pack(pid: libc::pid_t, fd: RawFd) -> u64 {
    (u64::from(pid as u32) << 32) | u64::from(fd as u32)
}

/// Unpacks a table entry into `(pid, fd)`.
fn unpack(entry: u64) -> (libc::pid_t, RawFd) {
    ((entry >> 32) as u32 as libc::pid_t, entry as u32 as RawFd)
}

/// This process's id. `getpid(2)` cannot fail and is async-signal-safe.
fn current_pid() -> libc::pid_t {
    // SAFETY: getpid takes no arguments and always succeeds.
    unsafe { libc::getpid() }
}

/// The table index of `signal`, if it is a real signal number.
fn slot_of(signal: libc::c_int) -> Option<usize> {
    usize::try_from(signal).ok().filter(|&s| s > 0 && s < NSIG)
}

/// A set of signals turned into readable events on a pipe.
///
/// Insert it into a [`Reactor`](crate::Reactor) (it is [`AsFd`]) or register
/// its fd with a [`Poller`](crate::Poller); when it is readable, call
/// [`read`](Signals::read) to learn which signals arrived. Each signal can
/// belong to one live `Signals` per process at a time; dropping it restores
/// the action the signal had before.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reactor::{Events, Interest, Reactor, Signal, Signals};
///
/// let mut reactor = Reactor::new()?;
/// let token = reactor.insert(Signals::new(&[Signal::USR1])?, Interest::READABLE)?;
/// // SAFETY: raise only sends a signal to this thread.
/// unsafe { libc::raise(libc::SIGUSR1) };
/// unsafe { libc::raise(libc::SIGUSR1) }; // coalesces with the first
///
/// let mut events = Events::with_capacity(4);
/// reactor.poll(&mut events, Some(Duration::from_secs(5)))?;
/// let signals = reactor.get_mut(token).unwrap();
/// assert_eq!(signals.read()?, [Signal::USR1]);
/// assert!(signals.read()?.is_empty()); // nothing new since
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `signal.set_wakeup_fd(w)` with `signal.signal(SIGINT, handler)`
#[derive(Debug)]
pub struct Signals {
    /// Read end of the self-pipe, non-blocking; this is what the poller watches.
    read: OwnedFd,
    /// Write end, non-blocking; the handlers write signal numbers here.
    write: OwnedFd,
    /// The process that created this instance (see the module docs on fork).
    owner: libc::pid_t,
    /// The signals this instance installed handlers for, with the action
    /// each had before, which `drop` puts back.
    signals: Vec<(libc::c_int, libc::sigaction)>,
}

impl Signals {
    /// Installs handlers for `signals` that write to a new self-pipe.
    ///
    /// The handlers use `SA_RESTART`, so blocking calls elsewhere in the
    /// program are restarted rather than failing with `EINTR` (the reactor's
    /// own `poll` retries `EINTR` in any case). In a child made by `fork()`,
    /// this takes over signals whose handlers the child inherited (see the
    /// module docs).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignal`] for a number no handler can be installed
    /// for, [`Error::SignalTaken`] if another live `Signals` of this process
    /// already owns one of the signals, [`Error::Sys`] if `pipe2` or
    /// `sigaction` fails (`EINVAL` for `SIGKILL` or `SIGSTOP`).
    /// On error no handler is left installed.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Signal, Signals};
    ///
    /// let stop = Signals::new(&[Signal::INT, Signal::TERM, Signal::HUP])?;
    /// assert_eq!(stop.signals(), [Signal::INT, Signal::TERM, Signal::HUP]);
    /// // The same signal twice at once is refused:
    /// assert!(Signals::new(&[Signal::TERM]).is_err());
    /// drop(stop);
    /// assert!(Signals::new(&[libc::SIGTERM]).is_ok()); // a bare number works too
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `signal.signal(SIGTERM, handler)` for each signal
    pub fn new<S: Copy + Into<Signal>>(signals: &[S]) -> Result<Signals> {
        let signals: Vec<libc::c_int> = signals.iter().map(|&s| s.into().raw()).collect();
        let signals = &signals[..];
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        sys::check(ret, "pipe2", None)?;
        log::trace!(
            "pipe2(NONBLOCK|CLOEXEC) → signal pipe read fd={}, write fd={}",
            fds[0],
            fds[1]
        );
        // SAFETY: pipe2 just returned these two fds; nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut this = Signals {
            read,
            write,
            owner: current_pid(),
            signals: Vec::new(),
        };
        let _guard = INSTALL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for &signal in signals {
            // On error, put back the signals installed so far.
            if let Err(err) = this.install(signal) {
                this.uninstall_all();
                return Err(err);
            }
        }
        Ok(this)
    }

    /// Points `signal`'s handler at this pipe.
    fn install(&mut self, signal: libc::c_int) -> Result<()> {
        let Some(slot) = slot_of(signal) else {
            return Err(Error::InvalidSignal { signal });
        };
        let previous = SLOTS[slot].load(Ordering::SeqCst);
        if previous != 0 {
            let (pid, fd) = unpack(previous);
            if pid == self.owner {
                return Err(Error::SignalTaken {
                    signal,
                    name: signal_name(signal),
                });
            }
            log::trace!(
                "{}: taking over the handler inherited from pid {pid} (its pipe fd={fd})",
                signal_name(signal)
            );
        }
        PENDING[slot].store(false, Ordering::SeqCst);
        SLOTS[slot].store(pack(self.owner, self.write.as_raw_fd()), Ordering::SeqCst);
        // SAFETY: an all-zero sigaction is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: sa_mask is a valid sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: as above; sigaction fills it with the old action.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `action` is fully initialised, `old` is writable, and the
        // handler only does async-signal-safe work (see `on_signal`).
        let ret = unsafe { libc::sigaction(signal, &action, &mut old) };
        if let Err(err) = sys::check(ret, "sigaction", None) {
            SLOTS[slot].store(previous, Ordering::SeqCst);
            return Err(err);
        }
        if previous != 0 {
            // The inherited "old" action is our own handler: restore the
            // default on drop, not a handler for a pipe that is not ours.
            old.sa_sigaction = libc::SIG_DFL;
        }
        log::trace!(
            "sigaction({}, handler → write(fd={}))",
            signal_name(signal),
            self.write.as_raw_fd()
        );
        self.signals.push((signal, old));
        Ok(())
    }

    /// Puts back the previous action of every signal this instance still
    /// owns. Caller holds `INSTALL`.
    fn uninstall_all(&mut self) {
        let mine = pack(self.owner, self.write.as_raw_fd());
        for (signal, old) in self.signals.drain(..) {
            let slot = signal as usize;
            // Only in the process that installed it, and only if no one
            // took the signal over since: otherwise the entry is not ours.
            if current_pid() != self.owner || SLOTS[slot].load(Ordering::SeqCst) != mine {
                continue;
            }
            // SAFETY: `old` is the action sigaction gave us for this signal.
            unsafe { libc::sigaction(signal, &old, std::ptr::null_mut()) };
            SLOTS[slot].store(0, Ordering::SeqCst);
            log::trace!(
                "sigaction({}, previous action restored)",
                signal_name(signal)
            );
        }
    }

    /// Reads which signals arrived since the last call, each once, in the
    /// order they were given to [`new`](Signals::new). Empty if none (the
    /// event was spurious, or a signal was already reported).
    ///
    /// Drains the pipe first, then clears the pending flags (see the module
    /// docs): a signal that arrives meanwhile is reported now or wakes the
    /// next `poll`, never lost.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `read` fails with something other than `EAGAIN`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::Signals;
    ///
    /// let mut signals = Signals::new(&[libc::SIGUSR2])?;
    /// assert!(signals.read()?.is_empty());
    /// // SAFETY: raise only sends a signal to this thread.
    /// unsafe { libc::raise(libc::SIGUSR2) };
    /// assert_eq!(signals.read()?, vec![libc::SIGUSR2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `os.read(r, 512)` on the wake-up fd
    pub fn read(&mut self) -> Result<Vec<Signal>> {
        let mut buf = [0u8; 64];
        let mut bytes = 0;
        loop {
            let fd = self.read.as_raw_fd();
            // SAFETY: reads at most buf.len() bytes into `buf`.
            let read = sys::retry("read(signal pipe)", Some(fd), || unsafe {
                libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
            });
            let n = match read {
                Ok(n) => n,
                // The pipe is empty: every pending byte was read.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
                Err(e) => return Err(e),
            };
            bytes += n as usize;
            if (n as usize) < buf.len() {
                break;
            }
        }
        let mut seen = Vec::new();
        if self.owner == current_pid() {
            for &(signal, _) in &self.signals {
                if PENDING[signal as usize].swap(false, Ordering::SeqCst) {
                    seen.push(Signal::from_raw(signal));
                }
            }
        }
        let names: Vec<&str> = seen.iter().map(|s| s.name()).collect();
        log::trace!(
            "read(signal pipe fd={}) → {bytes} byte(s): {}",
            self.read.as_raw_fd(),
            if names.is_empty() {
                "nothing pending".to_owned()
            } else {
                names.join(", ")
            }
        );
        Ok(seen)
    }

    /// The signals this instance watches.
    ///
    /// # Examples
    ///
    /// ```
    /// let signals = reactor::Signals::new(&[libc::SIGHUP])?;
    /// assert_eq!(signals.signals(), vec![libc::SIGHUP]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: the list of signals passed to `signal.signal`
    pub fn signals(&self) -> Vec<Signal> {
        self.signals
            .iter()
            .map(|&(signal, _)| Signal::from_raw(signal))
            .collect()
    }

    /// Whether this instance was inherited across `fork()`: true in a child
    /// for a `Signals` its parent created. Such an instance receives
    /// nothing; the child makes its own with [`Signals::new`] and may drop
    /// the inherited one at any time without disturbing anyone.
    ///
    /// # Examples
    ///
    /// ```
    /// let signals = reactor::Signals::new(&[libc::SIGUSR1])?;
    /// assert!(!signals.is_inherited());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `os.getpid() != owner_pid`
    pub fn is_inherited(&self) -> bool {
        self.owner != current_pid()
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for Signals {
    /// Restores the previous actions (only in the process that installed
    /// them, and only for signals not taken over since), then closes the
    /// pipe.
    fn drop(&mut self) {
        let _guard = INSTALL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.uninstall_all();
        // A handler on another thread may have read our entry just before
        // it was cleared: let it finish its write before the pipe closes.
        // (One on this thread cannot be mid-way: it would have run to the
        // end before `drop` continued.) A handler takes microseconds; the
        // bound only matters if a thread died mid-handler, as threads other
        // than the caller of `fork` do in the child.
        let start = std::time::Instant::now();
        while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
            if start.elapsed() > std::time::Duration::from_millis(100) {
                log::warn!(
                    "Signals::drop: a signal handler never finished; closing the pipe anyway"
                );
                break;
            }
            std::thread::yield_now();
        }
    }
}

/// The handler: mark the signal pending and, if it was not, write its
/// number to the pipe. Async-signal-safe (see the module docs).
///
/// The one system call of this crate that does not go through `sys.rs`:
/// inside a handler nothing may allocate or take a lock, so its `write`
/// neither retries nor builds an `Error` — a full pipe (`EAGAIN`) already
/// holds a wake-up, and the pending flag carries which signal it was.
extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot; restoring
    // it keeps the interrupted code's errno intact.
    let saved = unsafe { *libc::__errno_location() };
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    if let Some(slot) = slot_of(signal) {
        let entry = SLOTS[slot].load(Ordering::SeqCst);
        let (pid, fd) = unpack(entry);
        if entry == 0 {
            // Uninstalled while this delivery was on its way: drop it.
        } else if pid == current_pid() {
            if !PENDING[slot].swap(true, Ordering::SeqCst) {
                let byte = signal as u8;
                // SAFETY: write(2) is async-signal-safe; the pipe is
                // non-blocking and holds at most a few bytes (module docs),
                // so it neither blocks nor fills.
                unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
            }
        } else {
            // A forked child that did not take this signal over: behave as
            // if no handler were installed. The signal is blocked while its
            // handler runs, so the re-raised one is delivered, with the
            // default action, as soon as we return.
            // SAFETY: an all-zero sigaction with SIG_DFL is valid, and
            // sigaction and raise are async-signal-safe.
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
                libc::raise(signal);
            }
        }
    }
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// `SIGINT`, `SIGTERM`, … for logs and messages; `"signal"` for numbers
/// without a name here.
///
/// # Examples
///
/// ```
/// assert_eq!(reactor::signal_name(libc::SIGCHLD), "SIGCHLD");
/// ```
///
/// Python: `signal.Signals(n).name`
pub fn signal_name(signal: impl Into<Signal>) -> &'static str {
    match signal.into().raw() {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGWINCH => "SIGWINCH",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pack_and_unpack() {
        assert_eq!(unpack(pack(4_194_304, 0)), (4_194_304, 0));
        assert_eq!(unpack(pack(1, 1023)), (1, 1023));
        assert_ne!(pack(1, 0), 0);
    }

    #[test]
    fn out_of_range_signals_are_refused() {
        for bad in [0, -1, 65, libc::SIGKILL] {
            assert!(Signals::new(&[bad]).is_err(), "signal {bad}");
        }
    }
}
