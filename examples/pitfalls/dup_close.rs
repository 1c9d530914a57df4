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

use crate::{Result, check, errno, errno_name, heading};

/// How many `epoll_wait` calls each half makes.
const WAITS: usize = 3;

pub fn run() -> Result {
    println!(
        "dup-close: a registration outlives close() while a dup of the fd is open (epoll only:"
    );
    println!("select and poll are handed the fd numbers afresh at every call)");

    heading("epoll, broken: close(fd) while a dup is open, without EPOLL_CTL_DEL");
    let epoll = epoll_create()?;
    let (watched, mut peer) = UnixStream::pair()?;
    let fd = watched.as_raw_fd();
    ctl(&epoll, libc::EPOLL_CTL_ADD, fd)?;
    println!("epoll_ctl(ADD, fd={fd}) → 0");
    let copy = dup(fd)?;
    println!(
        "dup(fd={fd}) → fd={} (the same open socket)",
        copy.as_raw_fd()
    );
    drop(watched);
    println!("close(fd={fd}) → 0");
    peer.write_all(b"x")?;
    println!("the peer writes 1 byte");
    let mut reported = 0;
    for _ in 0..WAITS {
        let keys = wait(&epoll)?;
        println!("epoll_wait → {}", describe(&keys));
        reported += keys.iter().filter(|&&k| k == fd as u64).count();
    }
    println!(
        "broken: {reported} of {WAITS} epoll_wait calls reported fd={fd}, which this program closed"
    );
    let del = ctl(&epoll, libc::EPOLL_CTL_DEL, fd);
    report_del(
        fd,
        del,
        "the number is closed, so it cannot name the registration any more",
    );
    let del_copy = ctl(&epoll, libc::EPOLL_CTL_DEL, copy.as_raw_fd());
    report_del(
        copy.as_raw_fd(),
        del_copy,
        "the registration is keyed on (fd, file), and the dup is a different fd",
    );
    drop(copy);
    let keys = wait(&epoll)?;
    println!(
        "close(fd of the dup) as well: the last reference is gone; epoll_wait → {}",
        describe(&keys)
    );

    heading("epoll, fixed: EPOLL_CTL_DEL first, then close");
    let (watched, mut peer) = UnixStream::pair()?;
    let fd = watched.as_raw_fd();
    ctl(&epoll, libc::EPOLL_CTL_ADD, fd)?;
    println!("epoll_ctl(ADD, fd={fd}) → 0");
    let copy = dup(fd)?;
    println!("dup(fd={fd}) → fd={}", copy.as_raw_fd());
    ctl(&epoll, libc::EPOLL_CTL_DEL, fd)?;
    println!("epoll_ctl(DEL, fd={fd}) → 0");
    drop(watched);
    println!("close(fd={fd}) → 0");
    peer.write_all(b"x")?;
    println!("the peer writes 1 byte");
    let mut reported = 0;
    for _ in 0..WAITS {
        let keys = wait(&epoll)?;
        println!("epoll_wait → {}", describe(&keys));
        reported += keys.len();
    }
    println!(
        "fixed: {reported} of {WAITS} epoll_wait calls reported anything (Reactor::remove unregisters before it hands the object back to be dropped)"
    );
    drop(copy);
    Ok(())
}

fn report_del(fd: RawFd, result: Result<libc::c_int>, why: &str) {
    match result {
        Ok(_) => println!("epoll_ctl(DEL, fd={fd}) → 0"),
        Err(_) => {
            let e = errno();
            println!("epoll_ctl(DEL, fd={fd}) → -1 {}: {why}", errno_name(e));
        }
    }
}

fn epoll_create() -> Result<OwnedFd> {
    // SAFETY: plain system call with a valid flag.
    let ret = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    let fd = check(ret, "epoll_create1")?;
    // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn dup(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: `fd` is open (the caller still owns it).
    let copy = check(unsafe { libc::dup(fd) }, "dup")?;
    // SAFETY: `copy` was just returned by dup and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// `epoll_ctl(op, fd)` for readable interest, with the fd number as the key.
fn ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd) -> Result<libc::c_int> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: `event` is a valid epoll_event for the duration of the call.
    let ret = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) };
    check(ret, "epoll_ctl")
}

/// One `epoll_wait` of at most 50 ms; returns the keys (fd numbers) reported.
fn wait(epoll: &OwnedFd) -> Result<Vec<u64>> {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    // SAFETY: `events` has room for the 4 entries the call may fill.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 4, 50) };
    let n = check(n, "epoll_wait")?;
    Ok(events[..n as usize].iter().map(|e| e.u64).collect())
}

fn describe(keys: &[u64]) -> String {
    if keys.is_empty() {
        return "0 events (timed out after 50 ms)".to_owned();
    }
    let list: Vec<String> = keys.iter().map(|k| format!("fd={k} IN")).collect();
    format!("{} event(s): {}", keys.len(), list.join(", "))
}
