//! `lost-wakeup`: a signal that arrives after the loop checked its flag and
//! before it blocked in the wait is not noticed until the wait ends — with
//! no timeout, never.
//!
//! The naive handler sets a flag; the loop checks the flag, then waits. A
//! signal in between runs the handler (the flag is set) but the wait has not
//! started yet, so it cannot be interrupted: it sleeps its full timeout.
//! Two fixes close the window:
//!
//! - the **self-pipe** (select(2), "The self-pipe trick"): the handler
//!   writes a byte to a pipe that the wait watches, so a signal at any
//!   moment leaves the pipe readable and the wait returns at once —
//!   `reactor::Signals`;
//! - **pselect / ppoll / epoll_pwait**: keep the signal blocked, and let
//!   the wait unblock it atomically for its duration; one that arrived in
//!   the window is pending and interrupts the wait at once (`EINTR`).
//!
//! The unlucky moment is made certain here with `raise` between the check
//! and the wait.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reactor::{Backend, Events, Interest, Poller, Signals, Trigger};

use crate::{Result, check, epoll_ctl, epoll_instance, errno, errno_name, fd_set_of, heading, ms};

/// Each wait's timeout: what "for ever" costs here.
const TIMEOUT_MS: libc::c_int = 300;

/// Set by the naive handler.
static GOT_SIGNAL: AtomicBool = AtomicBool::new(false);

extern "C" fn set_flag(_signal: libc::c_int) {
    GOT_SIGNAL.store(true, Ordering::SeqCst);
}

pub fn run(backends: &[Backend]) -> Result {
    println!(
        "lost-wakeup: check the flag, (SIGUSR1 arrives: raise() makes the unlucky moment certain), then wait with a {TIMEOUT_MS} ms timeout"
    );
    let previous = install_flag_handler()?;
    let result = backends.iter().try_for_each(|&b| one_backend(b));
    // SAFETY: `previous` is the action sigaction reported for SIGUSR1.
    unsafe { libc::sigaction(libc::SIGUSR1, &previous, std::ptr::null_mut()) };
    result
}

fn one_backend(backend: Backend) -> Result {
    let (quiet, _keep) = UnixStream::pair()?;
    let q = quiet.as_raw_fd();

    heading(&format!("{backend}, broken: a handler that sets a flag"));
    GOT_SIGNAL.store(false, Ordering::SeqCst);
    let seen = GOT_SIGNAL.load(Ordering::SeqCst);
    // SAFETY: raising a signal whose handler is installed.
    unsafe { libc::raise(libc::SIGUSR1) };
    let start = Instant::now();
    let (n, e) = raw_wait(backend, q, None);
    let waited = start.elapsed();
    println!(
        "flag checked: {seen}; SIGUSR1 handled (flag now {}); then the wait → {}",
        GOT_SIGNAL.load(Ordering::SeqCst),
        outcome(n, e)
    );
    println!(
        "broken: the wait slept {} with the signal already delivered (without a timeout: for ever)",
        ms(waited)
    );

    heading(&format!(
        "{backend}, fixed: the self-pipe (reactor::Signals)"
    ));
    {
        let mut signals = Signals::new(&[libc::SIGUSR1])?;
        let mut poller = backend.new_poller()?;
        poller.register(
            signals.as_fd().as_raw_fd(),
            1,
            Interest::READABLE,
            Trigger::Level,
        )?;
        poller.register(q, 2, Interest::READABLE, Trigger::Level)?;
        // SAFETY: raising a signal whose handler (the self-pipe's) is installed.
        unsafe { libc::raise(libc::SIGUSR1) };
        let start = Instant::now();
        let mut events = Events::with_capacity(4);
        poller.poll(&mut events, Some(Duration::from_millis(TIMEOUT_MS as u64)))?;
        let waited = start.elapsed();
        let read = signals.read()?;
        println!(
            "the handler wrote the signal number into the pipe; the wait → {} ready (the pipe), read → {:?}",
            events.len(),
            read.iter()
                .map(|&s| reactor::signal_name(s))
                .collect::<Vec<_>>()
        );
        println!("fixed: the wait returned after {} (self-pipe)", ms(waited));
    }

    let call = match backend {
        Backend::Select => "pselect",
        Backend::Poll => "ppoll",
        Backend::Epoll => "epoll_pwait",
        // Left out by raw_backends.
        Backend::Uring => return Err(crate::RAW_ONLY.into()),
    };
    heading(&format!(
        "{backend}, fixed: SIGUSR1 blocked, {call} unblocks it for the wait"
    ));
    GOT_SIGNAL.store(false, Ordering::SeqCst);
    let (blocked, open) = masks()?;
    // SAFETY: both masks are valid sigsets.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &blocked, std::ptr::null_mut()) };
    let seen = GOT_SIGNAL.load(Ordering::SeqCst);
    // SAFETY: raising a blocked signal: it stays pending.
    unsafe { libc::raise(libc::SIGUSR1) };
    let start = Instant::now();
    let (n, e) = raw_wait(backend, q, Some(&open));
    let waited = start.elapsed();
    // SAFETY: restores the mask the demonstration started with.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &open, std::ptr::null_mut()) };
    println!(
        "flag checked: {seen}; SIGUSR1 pending (blocked); {call} → {}; flag now {}",
        outcome(n, e),
        GOT_SIGNAL.load(Ordering::SeqCst)
    );
    println!("fixed: the wait returned after {} ({call})", ms(waited));
    Ok(())
}

fn outcome(n: libc::c_int, e: i32) -> String {
    match n {
        -1 => format!("-1 {}", errno_name(e)),
        0 => "0 (timed out)".to_owned(),
        n => format!("{n} ready"),
    }
}

/// One wait for `fd` to become readable. With `mask`, the p-variant that
/// installs `mask` for the duration of the wait.
fn raw_wait(backend: Backend, fd: RawFd, mask: Option<&libc::sigset_t>) -> (libc::c_int, i32) {
    let sigmask = mask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: TIMEOUT_MS as libc::c_long * 1_000_000,
    };
    let n = match backend {
        // Left out by raw_backends: no wait, as if it had failed at once.
        Backend::Uring => return (-1, libc::ENOSYS),
        Backend::Select => {
            let mut set = fd_set_of(fd);
            let none = std::ptr::null_mut();
            // SAFETY: every pointer is valid (or null) for the call.
            unsafe { libc::pselect(fd + 1, &mut set, none, none, &timeout, sigmask) }
        }
        Backend::Poll => {
            let mut fds = [libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: every pointer is valid (or null) for the call.
            unsafe { libc::ppoll(fds.as_mut_ptr(), 1, &timeout, sigmask) }
        }
        Backend::Epoll => {
            let epoll = match epoll_instance() {
                Ok(epoll) => epoll,
                Err(_) => return (-1, errno()),
            };
            if epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, 0).is_err() {
                return (-1, errno());
            }
            let mut out = [libc::epoll_event { events: 0, u64: 0 }; 1];
            // SAFETY: `out` has room for the one entry; `sigmask` is valid or null.
            unsafe {
                libc::epoll_pwait(epoll.as_raw_fd(), out.as_mut_ptr(), 1, TIMEOUT_MS, sigmask)
            }
        }
    };
    (n, if n == -1 { errno() } else { 0 })
}

/// The naive handler for SIGUSR1, without SA_RESTART; returns the old action.
fn install_flag_handler() -> Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = set_flag as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: an all-zero sigaction is a valid place for the old action.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; the handler only stores to an atomic.
    let ret = unsafe { libc::sigaction(libc::SIGUSR1, &action, &mut previous) };
    check(ret, "sigaction")?;
    Ok(previous)
}

/// The current mask with SIGUSR1 blocked, and the current mask without it.
fn masks() -> Result<(libc::sigset_t, libc::sigset_t)> {
    // SAFETY: all-zero sigsets are valid places for sigprocmask and sigemptyset.
    let mut open: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new mask only queries the current one into `open`.
    let ret = unsafe { libc::sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut open) };
    check(ret, "sigprocmask")?;
    // SAFETY: `open` is a valid sigset.
    unsafe { libc::sigdelset(&mut open, libc::SIGUSR1) };
    let mut blocked = open;
    // SAFETY: `blocked` is a valid sigset.
    unsafe { libc::sigaddset(&mut blocked, libc::SIGUSR1) };
    Ok((blocked, open))
}
