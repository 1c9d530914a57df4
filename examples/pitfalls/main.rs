//! The classic ways an event loop breaks, each made to happen and then
//! fixed: one sub-command per pitfall, run on every backend where it
//! applies (or the one `--backend` names).
//!
//! ```text
//! cargo run --example pitfalls -- dup-close          # epoll: a closed fd keeps firing
//! cargo run --example pitfalls -- close-unregister   # POLLNVAL spin, EBADF, silence
//! cargo run --example pitfalls -- edge-starvation    # one flooding client starves a quiet one
//! cargo run --example pitfalls -- herd               # the thundering herd, counted
//! cargo run --example pitfalls -- emfile             # the EMFILE accept spin
//! cargo run --example pitfalls -- sigpipe            # a C-style write to a closed socket
//! cargo run --example pitfalls -- lost-wakeup        # a signal between the check and the wait
//! cargo run --example pitfalls -- files              # regular files and terminals
//! cargo run --example pitfalls -- fd-setsize         # FD_SET(1500)
//! ```
//!
//! Each demonstration first does what a naive program does and prints what
//! the kernel answered (`broken:` lines), then does it the right way
//! (`fixed:` lines). The failures are made on raw system calls through
//! `libc`, so that nothing in between hides them; the fixes use `reactor`
//! where the crate has one. Every demonstration is bounded: spins are
//! counted over a short window, waits have timeouts, children are killed
//! and reaped, and everything stays on loopback. The guide's chapter
//! `docs/10-pitfalls.md` runs each one and explains it; `tests/pitfalls.rs`
//! checks that each failure happens and each fix removes it.
//!
//! Python: the course's servers would hit each of these the same way under
//! `select.select`, `select.poll()` and `select.epoll()` (the chapter shows
//! where Python differs: it ignores `SIGPIPE`, and raises `ValueError` for
//! `select([1500], …)`).

mod close_unregister;
mod dup_close;
mod edge_starvation;
mod emfile;
mod fd_setsize;
mod files;
mod herd;
mod lost_wakeup;
mod sigpipe;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use reactor::{Backend, ExitStatus};

/// What every demonstration returns.
type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Makes the classic event-loop failures happen, then shows the fix.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    pitfall: Pitfall,
}

/// One sub-command per pitfall.
#[derive(Subcommand, Debug)]
enum Pitfall {
    /// epoll: a dup'ed fd keeps a closed fd's registration firing; EPOLL_CTL_DEL then fails with EBADF
    DupClose,
    /// close without unregister: POLLNVAL spin on poll, EBADF on select, silence on epoll
    CloseUnregister {
        /// select, poll or epoll [default: all three]
        #[arg(long)]
        backend: Option<Backend>,
    },
    /// edge-triggered starvation: a flooding client against a quiet one, then round-robin
    EdgeStarvation,
    /// the thundering herd: N processes woken for one connection, then EPOLLEXCLUSIVE and SO_REUSEPORT
    Herd {
        /// select, poll or epoll [default: all three]
        #[arg(long)]
        backend: Option<Backend>,
        /// How many processes wait on the listener
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=16))]
        workers: u32,
    },
    /// EMFILE on accept: the 100 % CPU spin, then the reserve descriptor
    Emfile {
        /// select, poll or epoll [default: all three]
        #[arg(long)]
        backend: Option<Backend>,
    },
    /// SIGPIPE: a C-style write to a closed socket kills the process; Rust and Python ignore it
    Sigpipe,
    /// a signal arriving between the flag check and the wait is lost; the self-pipe and p*-waits close the race
    LostWakeup {
        /// select, poll or epoll [default: all three]
        #[arg(long)]
        backend: Option<Backend>,
    },
    /// a regular file, /dev/null and a terminal under each multiplexer
    Files {
        /// select, poll or epoll [default: all three]
        #[arg(long)]
        backend: Option<Backend>,
    },
    /// FD_SET(1500): glibc's fortified check aborts; the crate refuses with a typed error
    FdSetsize,
}

fn main() {
    let cli = Cli::parse();
    // One module per pitfall; those that differ by backend get the list.
    let result = match cli.pitfall {
        // epoll only: select and poll keep no registrations.
        Pitfall::DupClose => dup_close::run(),
        Pitfall::CloseUnregister { backend } => close_unregister::run(&raw_backends(backend)),
        // epoll only: the edge trigger is epoll's.
        Pitfall::EdgeStarvation => edge_starvation::run(),
        Pitfall::Herd { backend, workers } => herd::run(&raw_backends(backend), workers),
        Pitfall::Emfile { backend } => emfile::run(&backends(backend)),
        // Not about a multiplexer: a write, in C and in Rust.
        Pitfall::Sigpipe => sigpipe::run(),
        Pitfall::LostWakeup { backend } => lost_wakeup::run(&raw_backends(backend)),
        Pitfall::Files { backend } => files::run(&raw_backends(backend)),
        // select only; poll and epoll shown as the fix.
        Pitfall::FdSetsize => fd_setsize::run(),
    };
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// The backends a demonstration runs on: the one asked for, or all of them.
fn backends(choice: Option<Backend>) -> Vec<Backend> {
    match choice {
        Some(backend) => vec![backend],
        None => Backend::ALL.to_vec(),
    }
}

/// Why a demonstration made with the raw system calls leaves io_uring out.
const RAW_ONLY: &str = "uring: not shown: this demonstration makes the raw select, poll and epoll calls; io_uring's own gotchas are in docs/13-uring.md";

/// As [`backends`], for the demonstrations made with the raw system calls
/// of select, poll and epoll: io_uring is left out, saying so.
fn raw_backends(choice: Option<Backend>) -> Vec<Backend> {
    let mut list = backends(choice);
    if list.contains(&Backend::Uring) {
        println!("{RAW_ONLY}");
        list.retain(|&backend| backend != Backend::Uring);
    }
    list
}

/// The short name of an errno value, as the man pages spell it.
fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EBADF => "EBADF",
        libc::ENOENT => "ENOENT",
        libc::EPERM => "EPERM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EPIPE => "EPIPE",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::EINVAL => "EINVAL",
        libc::EEXIST => "EEXIST",
        _ => "another errno",
    }
}

/// The errno of the last failed system call.
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Turns a `-1` return into an error naming the call.
fn check(ret: libc::c_int, call: &str) -> Result<libc::c_int> {
    if ret == -1 {
        let err = io::Error::last_os_error();
        return Err(format!("{call}: {err}").into());
    }
    Ok(ret)
}

/// Runs `child` in a forked process, which exits with its return value.
///
/// Only called while the program has one thread (no demonstration that
/// forks has a thread running), so the child may run ordinary code.
fn fork(child: impl FnOnce() -> i32) -> Result<libc::pid_t> {
    // SAFETY: the process is single-threaded here (see above), so no lock is
    // held by a thread that would not exist in the child.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => check(-1, "fork"),
        0 => {
            let code = child();
            // SAFETY: `_exit` ends the child at once, without running the
            // parent's atexit handlers or flushing its copied stdio buffers.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

/// Waits for the child `pid` and returns how it ended.
fn wait(pid: libc::pid_t) -> Result<ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for waitpid to write to.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == -1 && errno() == libc::EINTR {
            continue;
        }
        check(ret, "waitpid")?;
        return Ok(ExitStatus::from_raw(status));
    }
}

/// Calls `step` over and over for `window` (at most `cap` times) and
/// returns how many times it ran: how a spin is measured without letting
/// it run away.
fn count_for(window: Duration, cap: u64, mut step: impl FnMut() -> Result) -> Result<u64> {
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < window && count < cap {
        step()?;
        count += 1;
    }
    Ok(count)
}

/// Milliseconds, for printing.
fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// A heading for one backend's part of a demonstration.
fn heading(title: &str) {
    println!();
    println!("== {title}");
}

/// A new epoll instance, close-on-exec.
fn epoll_instance() -> Result<OwnedFd> {
    // SAFETY: plain system call with a valid flag.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    check(fd, "epoll_create1")?;
    // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(op, fd)` with `events` and `key` as the event's data; a
/// `-1` return is an error naming the call (its errno is `errno()`).
fn epoll_ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, events: libc::c_int, key: u64) -> Result {
    let mut event = libc::epoll_event {
        events: events as u32,
        u64: key,
    };
    // SAFETY: `event` is valid for the duration of the call (DEL ignores it).
    let ret = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) };
    check(ret, "epoll_ctl")?;
    Ok(())
}

/// One `epoll_wait` of at most `timeout_ms`; returns the keys and flags of
/// what it reported.
fn epoll_wait(epoll: &OwnedFd, timeout_ms: libc::c_int) -> Result<Vec<(u64, u32)>> {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
    // SAFETY: `events` has room for the 8 entries the call may fill.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 8, timeout_ms) };
    let n = check(n, "epoll_wait")? as usize;
    Ok(events[..n].iter().map(|e| (e.u64, e.events)).collect())
}

/// The `fd_set` holding `fd` alone (`fd` must be below FD_SETSIZE).
fn fd_set_of(fd: RawFd) -> libc::fd_set {
    // SAFETY: an all-zero fd_set is the empty set (what FD_ZERO makes).
    let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
    assert!(
        (0..libc::FD_SETSIZE as RawFd).contains(&fd),
        "fd {fd} does not fit an fd_set"
    );
    // SAFETY: `fd` is in range, as just checked.
    unsafe { libc::FD_SET(fd, &mut set) };
    set
}

/// `select` for readability of `fd` alone; returns its result and, if it
/// failed, its errno.
fn select_readable(fd: RawFd, timeout: Duration) -> (libc::c_int, i32) {
    let mut set = fd_set_of(fd);
    let mut tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    let none = std::ptr::null_mut();
    // SAFETY: every pointer is valid (or null) for the call.
    let n = unsafe { libc::select(fd + 1, &mut set, none, none, &mut tv) };
    (n, if n == -1 { errno() } else { 0 })
}

/// `poll` for readability of `fd` alone; returns its result and `revents`.
fn poll_readable(fd: RawFd, timeout_ms: libc::c_int) -> (libc::c_int, libc::c_short) {
    let mut fds = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `fds` is a valid array of one pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout_ms) };
    (n, fds[0].revents)
}

/// A pipe, both ends close-on-exec: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    check(ret, "pipe2")?;
    // SAFETY: both were just returned by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
