//! [`Waker`]: lets another thread (or a signal handler) end a blocked `poll`.
//!
//! The course never needs this because its servers are single-threaded, but
//! the moment a second thread has news for the loop (a job finished, a
//! message to broadcast) it must be able to interrupt `epoll_wait`. The
//! classic answer is the *self-pipe trick*: the loop watches the read end of
//! a pipe and the other thread writes a byte. Linux has a lighter pipe for
//! exactly this, `eventfd(2)`: one descriptor holding a 64-bit counter;
//! `write` adds to it, `read` returns it and resets it to zero.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::sys;

/// A handle that wakes the [`Reactor`](crate::Reactor) it came from.
///
/// Cheap to clone and `Send + Sync`. Waking a reactor that is not blocked
/// makes its next `poll` return at once; several wakes before the reactor
/// runs count as one.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use reactor::{Events, Reactor};
/// use std::os::unix::net::UnixStream;
///
/// let mut reactor: Reactor<UnixStream> = Reactor::new()?;
/// let waker = reactor.waker()?;
/// let start = Instant::now();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(20));
///     waker.wake().unwrap();
/// });
/// let mut events = Events::with_capacity(8);
/// reactor.poll(&mut events, Some(Duration::from_secs(10)))?;
/// assert!(start.elapsed() < Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `os.write(wake_w, b"x")` on a self-pipe the loop watches.
#[derive(Clone, Debug)]
pub struct Waker {
    /// Shared by every clone; the eventfd is closed when the last one goes.
    inner: Arc<Inner>,
}

/// What the clones of one waker share.
#[derive(Debug)]
struct Inner {
    /// The eventfd.
    fd: OwnedFd,
    /// Set after each write: tells the reactor that its event may be in
    /// the batch, so it looks for it only then.
    pending: AtomicBool,
}

impl Waker {
    /// Creates a non-blocking, close-on-exec eventfd.
    pub(crate) fn new() -> Result<Waker> {
        // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
        let fd = sys::check(
            unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
            "eventfd",
            None,
        )?;
        log::trace!("eventfd(0, CLOEXEC|NONBLOCK) → waker fd={fd}");
        // SAFETY: `fd` was just returned by eventfd and is owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker {
            inner: Arc::new(Inner {
                fd,
                pending: AtomicBool::new(false),
            }),
        })
    }

    /// Wakes the reactor: adds 1 to the eventfd counter.
    ///
    /// Never blocks, and is async-signal-safe: one `write(2)`, no allocation,
    /// no lock, no logging, and `errno` is restored afterwards, so it may be
    /// called from a signal handler.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) only if the descriptor is broken.
    /// A full counter (`EAGAIN`, after about 2⁶⁴ wakes with no `poll`) is
    /// not an error: the reactor is woken already.
    ///
    /// Python: `os.write(wake_w, b"x")`
    pub fn wake(&self) -> Result<()> {
        let one: u64 = 1;
        // The one place outside sys.rs that reads errno itself: `wake` may
        // run inside a signal handler, where only async-signal-safe work is
        // allowed, so it neither retries nor builds an error on the common
        // paths (EAGAIN: the counter is full, the loop is woken already;
        // EINTR: a lost write of a wake-up that is pending anyway).
        // Before the write, so the reactor the write wakes sees it.
        self.inner.pending.store(true, Ordering::Release);
        // SAFETY: __errno_location returns the calling thread's errno slot;
        // saving and restoring it keeps a signal handler from clobbering the
        // errno of the code it interrupted.
        let saved = unsafe { *libc::__errno_location() };
        // SAFETY: writes 8 bytes from a live u64 to an fd we own.
        let ret = unsafe { libc::write(self.inner.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        let result = if ret == -1 {
            // SAFETY: as above.
            match unsafe { *libc::__errno_location() } {
                libc::EAGAIN | libc::EINTR => Ok(()),
                _ => sys::check(-1, "write(eventfd)", Some(self.inner.fd.as_raw_fd())).map(drop),
            }
        } else {
            Ok(())
        };
        // And after it: should the reactor have cleared the flag between
        // the two (handling an earlier wake), the count this write left is
        // still flagged, and drained at the next `poll`.
        self.inner.pending.store(true, Ordering::Release);
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved };
        result
    }

    /// Whether a wake-up happened since the last call (clearing the flag).
    #[inline]
    pub(crate) fn take_pending(&self) -> bool {
        self.inner.pending.load(Ordering::Relaxed)
            && self.inner.pending.swap(false, Ordering::Acquire)
    }

    /// Resets the counter so the next `poll` blocks again; the reactor calls
    /// this after a wake-up.
    pub(crate) fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; the fd is non-blocking.
        let ret = unsafe {
            libc::read(
                self.inner.fd.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                8,
            )
        };
        // EAGAIN: a concurrent drain got there first; nothing to do.
        log::trace!(
            "read(eventfd fd={}) → {}",
            self.inner.fd.as_raw_fd(),
            if ret == 8 {
                format!("woken {count} time(s)")
            } else {
                "nothing pending".to_owned()
            }
        );
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}
