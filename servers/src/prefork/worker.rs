//! The worker: the child after `fork`. It closes what it inherited, builds
//! its own poller and signal pipe, and runs the server's loop; it never
//! returns into the parent's code.

use std::io::Write;
use std::net::TcpListener;

use reactor::{Backend, Signals};

use super::socket::{Listen, reuseport_socket};
use super::supervisor::Serve;
use crate::cli;

/// The worker, in the child after `fork` from the supervisor `parent`.
/// Never returns: ends with `_exit`.
pub(super) fn worker(
    listen: Listen,
    backend: Backend,
    unblock: libc::sigset_t,
    serve: &Serve,
    parent: libc::pid_t,
) -> ! {
    // A supervisor killed outright (SIGKILL) cannot stop its workers; the
    // kernel then sends each one SIGTERM, so none lives on as an orphan
    // holding the port. (Like any early stop signal it waits, blocked,
    // for this worker's handlers.) A supervisor that died before this line
    // is caught by the check after it.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number, no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        // SAFETY: as at the end of this function: nothing of the parent's
        // runs in this child.
        unsafe { libc::_exit(0) }
    }
    // Unwind safety: a panic ends this process at once (`_exit` below), so
    // no state the loop left half-changed is ever looked at again.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let listener = match listen {
            Listen::Shared(fd) => {
                close_inherited(fd);
                // SAFETY: the parent gave us this descriptor and
                // close_inherited kept it; from here on this TcpListener is
                // its only owner in this process.
                unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) }
            }
            Listen::ReusePort(addr) => {
                close_inherited(-1);
                match reuseport_socket(addr, true) {
                    Ok(listener) => listener,
                    Err(err) => {
                        eprintln!("worker: cannot listen on {addr}: {err}");
                        return 1;
                    }
                }
            }
        };
        let stop = match Signals::new(&[libc::SIGTERM, libc::SIGINT]) {
            Ok(stop) => stop,
            Err(err) => {
                eprintln!("worker: cannot install signal handlers: {err}");
                return 1;
            }
        };
        // Our handlers are in place: a stop signal that came early is
        // delivered to them now.
        set_signal_mask(&unblock);
        match serve(listener, backend, stop) {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("worker: {err}");
                1
            }
        }
    }))
    .unwrap_or(101);
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process without running atexit handlers or
    // destructors, none of which belong to this child.
    unsafe { libc::_exit(code) }
}

/// Closes every descriptor above stderr except `keep` (none if `keep` < 3):
/// the parent's epoll instance, signal pipes and pidfds must not be used
/// (or kept open) here.
pub(super) fn close_inherited(keep: libc::c_int) {
    let ranges = if keep < 3 {
        [(3, libc::c_int::MAX), (1, 0)]
    } else {
        [(3, keep - 1), (keep + 1, libc::c_int::MAX)]
    };
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range takes no pointers; the descriptors it closes
        // belong to objects of the parent that this process never uses
        // (it never returns into the parent's code).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) };
        if ret == -1 {
            log::warn!(
                "close_range({first}, {last}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Blocks SIGTERM and SIGINT; returns the mask to restore.
pub(super) fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: zeroed sigset_t values are valid for sigemptyset/sigaddset to
    // fill in, and sigprocmask only reads `block` and writes `old`.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTERM);
        libc::sigaddset(&mut block, libc::SIGINT);
        if libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old) == -1 {
            log::warn!("sigprocmask: {}", std::io::Error::last_os_error());
        }
        old
    }
}

/// Restores a mask saved by `block_stop_signals`.
pub(super) fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is a valid sigset_t; the old mask is not wanted.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) } == -1 {
        log::warn!("sigprocmask: {}", std::io::Error::last_os_error());
    }
}

/// Exits with an error unless this process has exactly one thread.
pub(super) fn ensure_single_threaded() {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads != 1 {
        cli::fail(format_args!(
            "prefork_echo must fork from a single thread; it has {threads}"
        ));
    }
}
