//! The one place that turns a system call's `-1`/`errno` into an [`Error`],
//! retries `EINTR` against a deadline, and converts timeouts to the whole
//! milliseconds the kernel takes.
//!
//! Python does the same work inside the interpreter: since PEP 475,
//! `select.poll().poll(timeout)` retries an interrupted call with the
//! remaining time, and it rounds a float timeout *up* to the next millisecond.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use libc::c_int;

use crate::error::{Error, Result};

/// Returns `ret`, or the `errno` as an [`Error::Sys`] naming `call` and `fd`
/// when `ret` is `-1`.
pub(crate) fn check(ret: c_int, call: &'static str, fd: Option<RawFd>) -> Result<c_int> {
    if ret == -1 {
        Err(Error::last_os(call, fd))
    } else {
        Ok(ret)
    }
}

/// A system call's return type whose `-1` means "failed, see `errno`".
pub(crate) trait MinusOne: Copy + PartialEq {
    /// The failure value.
    const MINUS_ONE: Self;
}

impl MinusOne for c_int {
    const MINUS_ONE: c_int = -1;
}

impl MinusOne for isize {
    const MINUS_ONE: isize = -1;
}

/// Calls `f` again for as long as it fails with `EINTR`, then returns its
/// result, or the `errno` as an [`Error::Sys`] naming `call` and `fd`.
///
/// For calls that do not wait (`read` on a non-blocking pipe, `waitpid`
/// with `WNOHANG`): an interrupted one is simply made again. A call that
/// waits with a timeout goes through [`wait_retrying`] instead, which
/// retries with the time that remains.
pub(crate) fn retry<R: MinusOne>(
    call: &'static str,
    fd: Option<RawFd>,
    mut f: impl FnMut() -> R,
) -> Result<R> {
    loop {
        let ret = f();
        if ret != R::MINUS_ONE {
            return Ok(ret);
        }
        let err = Error::last_os(call, fd);
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
        log::trace!("{call} interrupted by a signal (EINTR): calling it again");
    }
}

/// Every backend refuses negative descriptors the same way, before any
/// system call: `-1` is what failed calls return, never a descriptor.
pub(crate) fn check_fd(fd: RawFd) -> Result<()> {
    if fd < 0 {
        Err(Error::InvalidFd { fd })
    } else {
        Ok(())
    }
}

/// `Ok` if `fd` is an open descriptor, else `fcntl(F_GETFD)`'s error
/// (`EBADF`). The fd-indexed tables ask before growing to a descriptor
/// number, so a bogus 2,000,000,000 is `EBADF` rather than a huge
/// allocation.
pub(crate) fn check_open(fd: RawFd) -> Result<()> {
    // SAFETY: F_GETFD takes no pointer and only reads the fd's flags; a
    // closed or bogus number only makes it fail with EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    check(flags, "fcntl(F_GETFD)", Some(fd)).map(drop)
}

/// Whether `fd` is an open descriptor (`fcntl(F_GETFD)` does not fail
/// with `EBADF`). The map asks before unregistering, to catch a descriptor
/// closed behind its back.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads the descriptor flags; no pointer is passed, and
    // a closed or bogus number only makes it fail with EBADF.
    let ret = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    ret != -1 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EBADF)
}

/// Sets `O_NONBLOCK` on `fd`, keeping its other status flags.
pub(crate) fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: F_GETFL takes no pointer; the caller lends an open descriptor.
    let flags = check(
        unsafe { libc::fcntl(fd, libc::F_GETFL) },
        "fcntl(F_GETFL)",
        Some(fd),
    )?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above; F_SETFL takes an int of flags.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
        check(ret, "fcntl(F_SETFL, O_NONBLOCK)", Some(fd))?;
    }
    Ok(())
}

/// The longest wait, in milliseconds, that one call is asked for.
///
/// `c_int::MAX` ms is almost 25 days; a longer timeout is waited in several
/// calls, so nothing overflows into a negative (= infinite) value.
const MAX_WAIT_MS: u128 = c_int::MAX as u128;

/// Converts what remains of a timeout to the `int` milliseconds that
/// `poll(2)` and `epoll_wait(2)` take: `-1` for "block", and any non-zero
/// remainder rounded *up*, because rounding 100 µs down to 0 would turn a
/// short wait into a busy loop.
pub(crate) fn timeout_ms(remaining: Option<Duration>) -> c_int {
    match remaining {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(MAX_WAIT_MS) as c_int
        }
    }
}

/// Calls `wait(ms)` — one `poll`/`epoll_wait`/`select` — until it reports
/// something, the timeout has fully elapsed, or it fails with an error other
/// than `EINTR`.
///
/// Why a loop: a signal handler interrupts the wait with `EINTR` and the
/// kernel does not restart these calls (signal(7)); retrying with the
/// *remaining* time keeps the caller's timeout exact. The kernel may also
/// return 0 a little before the deadline (timer slack, or our own clamping
/// of very long timeouts); that too is waited out, so `poll` never reports
/// "nothing happened" before the time asked for has passed.
///
/// Inlined into the backends' `poll`: the two timeouts of busy programs —
/// none (block until something happens: a server) and zero (only look: a
/// busy loop) — read no clock and build no `Result` until the end, so their
/// path is the call and a test of what it returned. A failure, even
/// `EINTR`, leaves that path for [`failed_wait`].
#[inline]
pub(crate) fn wait_retrying(
    timeout: Option<Duration>,
    call: &'static str,
    mut wait: impl FnMut(c_int) -> c_int,
) -> Result<usize> {
    let ms = match timeout {
        None => -1,
        Some(t) if t.is_zero() => 0,
        Some(_) => {
            return retry_against_deadline(timeout, call, |ms| {
                check(wait(ms), call, None).map(|n| n as usize)
            });
        }
    };
    loop {
        let n = wait(ms);
        // 0 while blocking (which these calls do not return) is waited out,
        // as after a timed wait that ended early.
        if n > 0 || (n == 0 && ms == 0) {
            return Ok(n as usize);
        }
        if n < 0
            && let Some(err) = failed_wait(call, ms < 0)
        {
            return Err(err);
        }
    }
}

/// A wait failed: `None` if only a signal interrupted it (call it again),
/// otherwise the error.
#[cold]
#[inline(never)]
fn failed_wait(call: &'static str, blocking: bool) -> Option<Error> {
    let err = Error::last_os(call, None);
    if err.raw_os_error() != Some(libc::EINTR) {
        return Some(err);
    }
    if blocking {
        log::trace!("{call} interrupted by a signal (EINTR): waiting again, with no timeout");
    }
    None
}

/// As [`wait_retrying`], for a wait that reports through `io::Result` (the
/// io-uring crate's `io_uring_enter`). `ETIME`, io_uring's "the timeout
/// passed", is the same as a wait that found nothing.
pub(crate) fn wait_retrying_io(
    timeout: Option<Duration>,
    call: &'static str,
    mut wait: impl FnMut(c_int) -> io::Result<usize>,
) -> Result<usize> {
    retry_against_deadline(timeout, call, |ms| match wait(ms) {
        Ok(n) => Ok(n),
        Err(err) if err.raw_os_error() == Some(libc::ETIME) => Ok(0),
        Err(err) => Err(io_error(err, call, None)),
    })
}

/// The loop behind both: `wait(ms)` until it reports something, the
/// deadline passes, or it fails with an error other than `EINTR`. Out of
/// line: a timed wait reads the clock anyway, and the backends' `poll`
/// stays small enough to inline.
#[inline(never)]
fn retry_against_deadline(
    timeout: Option<Duration>,
    call: &'static str,
    mut wait: impl FnMut(c_int) -> Result<usize>,
) -> Result<usize> {
    // A zero timeout is the hot path of busy loops: no clock reads.
    if timeout == Some(Duration::ZERO) {
        return loop {
            match wait(0) {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                other => break other,
            }
        };
    }
    // `checked_add` is `None` for absurd timeouts such as `Duration::MAX`:
    // those are treated as "block", which is what they mean.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut remaining = deadline.map(|_| timeout.unwrap_or_default());
    loop {
        match wait(timeout_ms(remaining)) {
            Ok(0) => {}
            Ok(n) => return Ok(n),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => match deadline {
                Some(_) => log::trace!(
                    "{call} interrupted by a signal (EINTR): retrying with the time left"
                ),
                None => log::trace!(
                    "{call} interrupted by a signal (EINTR): waiting again, with no timeout"
                ),
            },
            Err(e) => return Err(e),
        }
        if let Some(deadline) = deadline {
            let now = Instant::now();
            if now >= deadline {
                return Ok(0);
            }
            remaining = Some(deadline - now);
        }
    }
}

/// A failed call that reported through `io::Result` (a crate's wrapper
/// rather than a raw `-1`), as an [`Error::Sys`].
pub(crate) fn io_error(source: io::Error, call: &'static str, fd: Option<RawFd>) -> Error {
    Error::Sys { call, fd, source }
}

/// A backend's setup call failed: [`Error::Unavailable`] when the errno
/// means "this system will not let you" (say why, and what to use instead),
/// [`Error::Sys`] for the ordinary failures (out of descriptors or memory).
pub(crate) fn unavailable(backend: &'static str, call: &'static str, source: io::Error) -> Error {
    let reason = match source.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel was built without it (ENOSYS)",
        Some(libc::EPERM) => {
            "this process may not use it (EPERM): the sysctl kernel.io_uring_disabled, \
             kernel.io_uring_group or a seccomp filter forbids it"
        }
        Some(libc::EACCES) => "a security module forbids it (EACCES)",
        _ => return io_error(source, call, None),
    };
    Error::Unavailable {
        backend,
        reason: format!("{call} failed: {reason}"),
        source: Some(source),
    }
}

/// A backend whose kernel side exists but lacks a feature it needs.
pub(crate) fn missing_feature(backend: &'static str, reason: &str) -> Error {
    Error::Unavailable {
        backend,
        reason: reason.to_owned(),
        source: None,
    }
}

/// Formats a timeout for the trace log: `block`, `0ms`, `500ms`.
pub(crate) fn show_timeout(ms: c_int) -> String {
    if ms < 0 {
        "block".to_owned()
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_millisecond_timeouts_round_up_not_down() {
        assert_eq!(timeout_ms(Some(Duration::from_micros(100))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(50))), 50);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
    }

    #[test]
    fn no_timeout_blocks() {
        assert_eq!(timeout_ms(None), -1);
    }

    #[test]
    fn huge_timeouts_are_clamped_not_negative() {
        assert_eq!(timeout_ms(Some(Duration::MAX)), c_int::MAX);
        assert_eq!(
            timeout_ms(Some(Duration::from_secs(u64::MAX / 2))),
            c_int::MAX
        );
    }

    #[test]
    fn eintr_is_retried_and_other_errors_are_not() {
        let mut calls = 0;
        let n = wait_retrying(Some(Duration::from_secs(5)), "test_wait", |_| {
            calls += 1;
            if calls < 3 {
                // SAFETY: __errno_location returns this thread's errno slot.
                unsafe { *libc::__errno_location() = libc::EINTR };
                -1
            } else {
                2
            }
        })
        .unwrap();
        assert_eq!((n, calls), (2, 3));

        let err = wait_retrying(None, "test_wait", |_| {
            // SAFETY: as above.
            unsafe { *libc::__errno_location() = libc::EBADF };
            -1
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        assert!(err.to_string().starts_with("test_wait failed"));
    }

    #[test]
    fn an_early_zero_is_waited_out() {
        let start = Instant::now();
        let mut calls = 0;
        let n = wait_retrying(Some(Duration::from_millis(20)), "test_wait", |_| {
            calls += 1;
            0 // a kernel that always returns at once
        })
        .unwrap();
        assert_eq!(n, 0);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(calls > 1);
    }
}
