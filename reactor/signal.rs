//! [`Signals`]: Unix signals delivered through `poll` as ordinary events.
//!
//! The course stops its servers with Ctrl-C (a `KeyboardInterrupt` that
//! escapes the loop) and reaps children from a `signal.signal(SIGCHLD, …)`
//! handler. A handler runs *between any two instructions* of the program,
//! so it may only do async-signal-safe things (signal-safety(7)): no locks,
//! no allocation, no logging. The safe way to get from there back into the
//! loop is the **self-pipe trick**: the handler writes the signal number into
//! a non-blocking pipe, and the loop watches the pipe's read end like any
//! socket.
//!
//! Why not `signalfd(2)`? It only receives signals that are *blocked* in
//! every thread, and a thread created before the mask was set (by a library,
//! by the test harness) would still take the signal with its default action
//! — usually death. The self-pipe works whatever the other threads do.
//!
//! Signals coalesce: if SIGCHLD arrives twice before the loop reads, the
//! kernel may deliver it once. So one event means "at least one", and the
//! reader must act on the state (reap *every* exited child), never count
//! deliveries.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};
use crate::sys;

/// Highest signal number Linux has (`SIGRTMAX`), plus one.
const NSIG: usize = 65;

/// For each signal number, the write end of the pipe its handler writes to
/// (-1: none). Atomics, because the handler reads them.
static WRITE_FDS: [AtomicI32; NSIG] = [const { AtomicI32::new(-1) }; NSIG];

/// Serialises `Signals::new` and `drop` against each other (not against
/// handlers, which only read `WRITE_FDS`).
static INSTALL: Mutex<()> = Mutex::new(());

/// A set of signals turned into readable events on a pipe.
///
/// Insert it into a [`Reactor`](crate::Reactor) (it is [`AsFd`]) or register
/// its fd with a [`Poller`](crate::Poller); when it is readable, call
/// [`read`](Signals::read) to learn which signals arrived. Each signal can
/// belong to one live `Signals` at a time; dropping it restores the default
/// action.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reactor::{Events, Interest, Reactor, Signals};
///
/// let mut reactor = Reactor::new()?;
/// let token = reactor.insert(Signals::new(&[libc::SIGUSR1])?, Interest::READABLE)?;
/// // SAFETY: raise only sends a signal to this thread.
/// unsafe { libc::raise(libc::SIGUSR1) };
///
/// let mut events = Events::with_capacity(4);
/// reactor.poll(&mut events, Some(Duration::from_secs(5)))?;
/// let signals = reactor.get_mut(token).unwrap();
/// assert_eq!(signals.read()?, vec![libc::SIGUSR1]);
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
    /// The signals this instance installed handlers for.
    signals: Vec<libc::c_int>,
}

impl Signals {
    /// Installs handlers for `signals` that write to a new self-pipe.
    ///
    /// The handlers use `SA_RESTART`, so blocking calls elsewhere in the
    /// program are restarted rather than failing with `EINTR` (the reactor's
    /// own `poll` retries `EINTR` in any case).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `pipe2` or `sigaction` fails (`EINVAL` for
    /// `SIGKILL`, `SIGSTOP` or a number out of range), or if another live
    /// `Signals` already owns one of the signals (`EBUSY`).
    pub fn new(signals: &[libc::c_int]) -> Result<Signals> {
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
            signals: Vec::new(),
        };
        let _guard = INSTALL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for &signal in signals {
            this.install(signal)?;
        }
        Ok(this)
    }

    /// Points `signal`'s handler at this pipe.
    fn install(&mut self, signal: libc::c_int) -> Result<()> {
        let slot = usize::try_from(signal).ok().filter(|&s| s > 0 && s < NSIG);
        let Some(slot) = slot else {
            return Err(Error::Sys {
                call: "sigaction",
                fd: None,
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        };
        if WRITE_FDS[slot].load(Ordering::SeqCst) != -1 {
            return Err(Error::Sys {
                call: "Signals::new (signal already watched by another Signals)",
                fd: None,
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            });
        }
        WRITE_FDS[slot].store(self.write.as_raw_fd(), Ordering::SeqCst);
        // SAFETY: an all-zero sigaction is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: sa_mask is a valid sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised and the handler only does
        // async-signal-safe work (atomic load, write, errno save/restore).
        let ret = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        if let Err(err) = sys::check(ret, "sigaction", None) {
            WRITE_FDS[slot].store(-1, Ordering::SeqCst);
            return Err(err);
        }
        log::trace!(
            "sigaction({}, handler → write(fd={}))",
            signal_name(signal),
            self.write.as_raw_fd()
        );
        self.signals.push(signal);
        Ok(())
    }

    /// Reads which signals arrived since the last call, each once, in the
    /// order first seen. Empty if none (the event was spurious).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `read` fails with something other than `EAGAIN`.
    ///
    /// Python: `os.read(r, 512)` on the wake-up fd
    pub fn read(&mut self) -> Result<Vec<libc::c_int>> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads at most buf.len() bytes into `buf`.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n == -1 {
                let err = Error::last_os("read(signal pipe)", Some(self.read.as_raw_fd()));
                match err.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    _ => return Err(err),
                }
            }
            for &byte in &buf[..n as usize] {
                let signal = libc::c_int::from(byte);
                if !seen.contains(&signal) {
                    seen.push(signal);
                }
            }
            if (n as usize) < buf.len() {
                break;
            }
        }
        if !seen.is_empty() {
            let names: Vec<&str> = seen.iter().map(|&s| signal_name(s)).collect();
            log::trace!(
                "read(signal pipe fd={}) → {}",
                self.read.as_raw_fd(),
                names.join(", ")
            );
        }
        Ok(seen)
    }

    /// The signals this instance watches.
    pub fn signals(&self) -> &[libc::c_int] {
        &self.signals
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for Signals {
    /// Restores the default action, then forgets the pipe.
    fn drop(&mut self) {
        let _guard = INSTALL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for &signal in &self.signals {
            // SAFETY: SIG_DFL is always a valid disposition for a signal we
            // could install a handler for.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
            WRITE_FDS[signal as usize].store(-1, Ordering::SeqCst);
        }
    }
}

/// The handler: write the signal number to its pipe. Async-signal-safe.
extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot; restoring
    // it keeps the interrupted code's errno intact.
    let saved = unsafe { *libc::__errno_location() };
    let fd: RawFd = WRITE_FDS
        .get(signal as usize)
        .map_or(-1, |slot| slot.load(Ordering::Relaxed));
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking, so
        // a full pipe (EAGAIN) loses only a byte the reader would coalesce.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// `SIGINT`, `SIGTERM`, … for logs and messages.
pub fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        _ => "signal",
    }
}
