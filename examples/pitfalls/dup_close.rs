//! `dup-close`: epoll watches the open file, not the fd number.
//!
//! An epoll registration is keyed on the pair (fd number, open file
//! description) and lives as long as the open file description does. A
//! `dup` (or a `fork`, or a library that duplicates behind your back) keeps
//! the description alive after `close(fd)`, so the registration stays: the
//! closed number keeps being reported, and it can no longer be removed,
//! because `epoll_ctl(EPOLL_CTL_DEL, fd)` needs an open fd and fails with
//! `EBADF`. epoll(7), "Will closing a file descriptor cause it to be
//! removed from all epoll interest lists?". The fix: `EPOLL_CTL_DEL`
//! before `close` — which `Reactor::remove` does.
//!
//! select and poll take the fd numbers afresh at every call, so they have
//! no registration to leak: this one is epoll's alone.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::{Result, check, epoll_ctl, epoll_instance, epoll_wait, errno, errno_name, heading};

/// How many `epoll_wait` calls each half makes.
const WAITS: usize = 3;

/// Each wait's timeout.
const TIMEOUT_MS: libc::c_int = 50;

pub fn run() -> Result {
    println!(
        "dup-close: a registration outlives close() while a dup of the fd is open (epoll only:"
    );
    println!("select and poll are handed the fd numbers afresh at every call)");
    let epoll = epoll_instance()?;

    heading("epoll, broken: close(fd) while a dup is open, without EPOLL_CTL_DEL");
    let (fd, copy) = register_dup_close(&epoll, false)?;
    let reported = waits(&epoll)?;
    println!(
        "broken: {reported} of {WAITS} epoll_wait calls reported fd={fd}, which this program closed"
    );
    report_del(
        &epoll,
        fd,
        "the number is closed, so it cannot name the registration any more",
    );
    report_del(
        &epoll,
        copy.as_raw_fd(),
        "the registration is keyed on (fd, file), and the dup is a different fd",
    );
    drop(copy);
    let keys = epoll_wait(&epoll, TIMEOUT_MS)?;
    println!(
        "close(fd of the dup) as well: the last reference is gone; epoll_wait → {}",
        describe(&keys)
    );

    heading("epoll, fixed: EPOLL_CTL_DEL first, then close");
    let (_fd, copy) = register_dup_close(&epoll, true)?;
    let reported = waits(&epoll)?;
    println!(
        "fixed: {reported} of {WAITS} epoll_wait calls reported anything (Reactor::remove unregisters before it hands the object back to be dropped)"
    );
    drop(copy);
    Ok(())
}

/// Registers one end of a fresh socket pair, dups it, closes the original
/// (after `EPOLL_CTL_DEL` if `unregister_first`), and has the peer write a
/// byte. Returns the closed number and the dup.
fn register_dup_close(epoll: &OwnedFd, unregister_first: bool) -> Result<(RawFd, OwnedFd)> {
    let (watched, mut peer) = UnixStream::pair()?;
    let fd = watched.as_raw_fd();
    epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, fd as u64)?;
    println!("epoll_ctl(ADD, fd={fd}) → 0");
    // SAFETY: `fd` is open (`watched` still owns it).
    let copy = unsafe { libc::dup(fd) };
    check(copy, "dup")?;
    // SAFETY: `copy` was just returned by dup and is owned by nobody else.
    let copy = unsafe { OwnedFd::from_raw_fd(copy) };
    println!(
        "dup(fd={fd}) → fd={} (the same open socket)",
        copy.as_raw_fd()
    );
    if unregister_first {
        epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, 0, 0)?;
        println!("epoll_ctl(DEL, fd={fd}) → 0");
    }
    drop(watched);
    println!("close(fd={fd}) → 0");
    peer.write_all(b"x")?;
    println!("the peer writes 1 byte");
    // The peer is dropped here; the byte stays readable through the dup.
    Ok((fd, copy))
}

/// `WAITS` waits, each printed; returns how many reported something.
fn waits(epoll: &OwnedFd) -> Result<usize> {
    let mut reported = 0;
    for _ in 0..WAITS {
        let keys = epoll_wait(epoll, TIMEOUT_MS)?;
        println!("epoll_wait → {}", describe(&keys));
        reported += usize::from(!keys.is_empty());
    }
    Ok(reported)
}

fn report_del(epoll: &OwnedFd, fd: RawFd, why: &str) {
    match epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, 0, 0) {
        Ok(()) => println!("epoll_ctl(DEL, fd={fd}) → 0"),
        Err(_) => println!(
            "epoll_ctl(DEL, fd={fd}) → -1 {}: {why}",
            errno_name(errno())
        ),
    }
}

fn describe(keys: &[(u64, u32)]) -> String {
    if keys.is_empty() {
        return format!("0 events (timed out after {TIMEOUT_MS} ms)");
    }
    let list: Vec<String> = keys.iter().map(|(k, _)| format!("fd={k} IN")).collect();
    format!("{} event(s): {}", keys.len(), list.join(", "))
}
