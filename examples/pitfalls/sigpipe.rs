//! `sigpipe`: writing to a socket whose peer has gone sends the writer
//! `SIGPIPE`, whose default action kills the process — no error to handle,
//! no message (signal(7); send(2), `EPIPE`).
//!
//! A C program gets that default. Rust's runtime sets `SIGPIPE` to
//! "ignore" before `main` (and puts the default back in children it
//! spawns with `std::process::Command`), so the write returns `EPIPE`,
//! `ErrorKind::BrokenPipe`. CPython ignores it at start-up too (the
//! `signal` module's docs: "SIGPIPE is ignored (so write errors on pipes
//! and sockets can be reported as ordinary Python exceptions)"), so Python
//! raises `BrokenPipeError`. A C server's fix is the same: ignore the
//! signal, or pass `MSG_NOSIGNAL` to each `send`.
//!
//! The C-style write runs in a child process, so that only the child dies.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use crate::{Result, errno, errno_name, fork, heading, wait};

pub fn run() -> Result {
    println!("sigpipe: write to a socket whose peer has closed");

    heading("C-style, broken: SIGPIPE at its default action, send(fd, \"x\", 1, 0)");
    let pid = fork(|| {
        // SAFETY: setting a signal's action to its default is always valid.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        write_to_closed(0)
    })?;
    let status = wait(pid)?;
    println!(
        "child {pid}: signal(SIGPIPE, SIG_DFL); send(fd, \"x\", 1, 0) on a socket whose peer closed"
    );
    println!(
        "broken: the child {status} (a shell shows exit status {})",
        shell_status(status)
    );

    heading("C-style, fixed: send(fd, \"x\", 1, MSG_NOSIGNAL)");
    let pid = fork(|| {
        // SAFETY: setting a signal's action to its default is always valid.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        write_to_closed(libc::MSG_NOSIGNAL)
    })?;
    let status = wait(pid)?;
    println!("child {pid}: the same, with MSG_NOSIGNAL: send → -1 EPIPE, an error it can handle");
    println!("fixed: the child {status}");

    heading("Rust: this process");
    let mut current: libc::sigaction = unsafe_zeroed_sigaction();
    // SAFETY: a null new action only queries the current one into `current`.
    unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current) };
    let disposition = match current.sa_sigaction {
        libc::SIG_IGN => "SIG_IGN (set by Rust's runtime before main)",
        libc::SIG_DFL => "SIG_DFL",
        _ => "a handler",
    };
    println!("SIGPIPE's action here: {disposition}");
    let (mut a, b) = UnixStream::pair()?;
    drop(b);
    match a.write(b"x") {
        Ok(n) => println!("write → {n} byte(s)"),
        Err(e) => println!("fixed: write → Err({:?}): {e}; the process lives", e.kind()),
    }
    Ok(())
}

/// Writes one byte to a socket whose peer is closed; returns the exit code
/// for the child: 0 if the call returned `EPIPE`.
fn write_to_closed(flags: libc::c_int) -> i32 {
    let Ok((a, b)) = UnixStream::pair() else {
        return 2;
    };
    drop(b);
    // SAFETY: the buffer is one valid byte.
    let n = unsafe { libc::send(a.as_raw_fd(), b"x".as_ptr().cast(), 1, flags) };
    if n == -1 && errno_name(errno()) == "EPIPE" {
        0
    } else {
        1
    }
}

/// What a shell reports for a status: the code, or 128 + the signal.
fn shell_status(status: reactor::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().map_or(0, reactor::Signal::raw))
}

fn unsafe_zeroed_sigaction() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask).
    unsafe { std::mem::zeroed() }
}
