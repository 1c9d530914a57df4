//! `close-unregister`: closing a descriptor the multiplexer still watches.
//!
//! The course's order is unregister, then close. Reversed, each system call
//! fails in its own way:
//!
//! - **poll** reports the closed number as `POLLNVAL` at once, at every
//!   call: a level-triggered loop that does not act on it spins at 100 %
//!   CPU (poll(2), `POLLNVAL`: "Invalid request: fd not open").
//! - **select** fails as a whole with `EBADF` at once, at every call, and
//!   does not say which fd (select(2), ERRORS).
//! - **epoll** says nothing: closing the last reference removed the
//!   registration (epoll(7) Q6), so the program's own table believes in a
//!   watch the kernel forgot, and the wait just times out.
//!
//! The fix on every backend is the order: unregister, then close
//! (`Reactor::remove` does both, in that order).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use reactor::Backend;

use crate::{Result, check, count_for, errno, errno_name, heading, ms};

/// How long each spin is counted.
const WINDOW: Duration = Duration::from_millis(200);

/// Each wait's timeout: a loop that is not spinning makes WINDOW / TIMEOUT calls.
const TIMEOUT_MS: libc::c_int = 50;

/// An upper bound on the calls counted in one window, whatever the machine.
const CAP: u64 = 5_000_000;

pub fn run(backends: &[Backend]) -> Result {
    println!(
        "close-unregister: close(fd) while the multiplexer still watches it; each wait has a {TIMEOUT_MS} ms timeout,"
    );
    println!(
        "so a quiet loop makes about {} calls in {}",
        WINDOW.as_millis() / TIMEOUT_MS as u128,
        ms(WINDOW)
    );
    for &backend in backends {
        heading(&format!("{backend}, broken: close without unregister"));
        broken(backend)?;

        heading(&format!("{backend}, fixed: unregister, then close"));
        let (watched, _peer) = UnixStream::pair()?;
        let fd = watched.as_raw_fd();
        fixed(backend, fd)?;
        drop(watched);
    }
    Ok(())
}

fn broken(backend: Backend) -> Result {
    let (watched, _peer) = UnixStream::pair()?;
    let fd = watched.as_raw_fd();
    let mut watched = Some(watched);
    if backend != Backend::Epoll {
        drop(watched.take());
        println!("fd={fd} is in the {backend} set; close(fd={fd}) → 0 (still in the set)");
    }
    match backend {
        Backend::Poll => {
            let mut revents = 0;
            let calls = count_for(WINDOW, CAP, || {
                let mut fds = [libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                }];
                // SAFETY: `fds` is a valid array of one pollfd.
                let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, TIMEOUT_MS) };
                check(n, "poll")?;
                revents = fds[0].revents;
                Ok(())
            })?;
            let nval = if revents & libc::POLLNVAL != 0 {
                "POLLNVAL"
            } else {
                "no POLLNVAL"
            };
            println!("poll([fd={fd} POLLIN]) → 1 ready, revents={nval}, at once, every time");
            println!(
                "broken: poll returned {calls} times in {}: a busy loop",
                ms(WINDOW)
            );
        }
        Backend::Select => {
            let mut last = 0;
            let calls = count_for(WINDOW, CAP, || {
                let (n, e) = select_once(fd);
                if n != -1 {
                    return Err(format!("select with a closed fd returned {n}").into());
                }
                last = e;
                Ok(())
            })?;
            println!(
                "select(nfds={}, readfds={{{fd}}}) → -1 {}, at once, every time (it does not say which fd)",
                fd + 1,
                errno_name(last)
            );
            println!(
                "broken: select returned {calls} times in {}: a busy loop",
                ms(WINDOW)
            );
        }
        Backend::Epoll => {
            let epoll = epoll_with(fd)?;
            println!("epoll_ctl(ADD, fd={fd}) → 0");
            drop(watched.take());
            println!("close(fd={fd}) → 0 (no EPOLL_CTL_DEL)");
            // SAFETY: a DEL with a null event pointer is valid since Linux 2.6.9.
            let del = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                )
            };
            let del = if del == -1 { errno_name(errno()) } else { "0" };
            println!(
                "epoll_ctl(DEL, fd={fd}) → {del}: the kernel dropped the watch with the last reference"
            );
            // The next connection gets the lowest free number: the same one.
            let (newcomer, mut peer) = UnixStream::pair()?;
            let reused = newcomer.as_raw_fd();
            peer.write_all(b"hello")?;
            println!(
                "a new connection gets fd={reused}{}, and its peer writes 5 bytes",
                if reused == fd {
                    " (the same number)"
                } else {
                    ""
                }
            );
            let mut events = 0;
            let calls = count_for(WINDOW, CAP, || {
                events += epoll_wait_once(&epoll)?;
                Ok(())
            })?;
            println!(
                "broken: epoll_wait returned {calls} times in {} with {events} events: silence; the program's table still says fd={fd} is watched, and the new connection is never served",
                ms(WINDOW)
            );
        }
    }
    Ok(())
}

fn fixed(backend: Backend, fd: RawFd) -> Result {
    // The loop still watches something (a quiet pipe), as a real one would.
    let (quiet, _keep) = UnixStream::pair()?;
    let q = quiet.as_raw_fd();
    let calls = match backend {
        Backend::Poll => {
            println!("poll: drop fd={fd} from the pollfd array, then close(fd={fd})");
            count_for(WINDOW, CAP, || {
                let mut fds = [libc::pollfd {
                    fd: q,
                    events: libc::POLLIN,
                    revents: 0,
                }];
                // SAFETY: `fds` is a valid array of one pollfd.
                let ret = unsafe { libc::poll(fds.as_mut_ptr(), 1, TIMEOUT_MS) };
                check(ret, "poll")?;
                Ok(())
            })?
        }
        Backend::Select => {
            println!("select: FD_CLR(fd={fd}), then close(fd={fd})");
            count_for(WINDOW, CAP, || {
                let (n, e) = select_once(q);
                if n == -1 {
                    return Err(format!("select: {}", errno_name(e)).into());
                }
                Ok(())
            })?
        }
        Backend::Epoll => {
            let epoll = epoll_with(fd)?;
            let add_quiet = epoll_add(&epoll, q);
            add_quiet?;
            // SAFETY: a DEL with a null event pointer is valid since Linux 2.6.9.
            let del = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                )
            };
            check(del, "epoll_ctl(DEL)")?;
            println!(
                "epoll_ctl(DEL, fd={fd}) → 0, then close(fd={fd}): the table and the kernel agree"
            );
            count_for(WINDOW, CAP, || {
                epoll_wait_once(&epoll)?;
                Ok(())
            })?
        }
    };
    println!(
        "fixed: the {backend} wait returned {calls} times in {}, each a {TIMEOUT_MS} ms timeout",
        ms(WINDOW)
    );
    Ok(())
}

/// One `select` for readability of `fd`; returns its result and errno.
fn select_once(fd: RawFd) -> (libc::c_int, i32) {
    // SAFETY: an all-zero fd_set is the empty set (what FD_ZERO makes).
    let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is below FD_SETSIZE (a fresh socket in a small process).
    unsafe { libc::FD_SET(fd, &mut set) };
    let mut timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: TIMEOUT_MS as libc::suseconds_t * 1000,
    };
    // SAFETY: every pointer is valid for the call.
    let n = unsafe {
        libc::select(
            fd + 1,
            &mut set,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut timeout,
        )
    };
    (n, if n == -1 { errno() } else { 0 })
}

fn epoll_with(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: plain system call with a valid flag.
    let ret = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    let epfd = check(ret, "epoll_create1")?;
    // SAFETY: `epfd` was just returned by epoll_create1 and is owned by nobody else.
    let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
    epoll_add(&epoll, fd)?;
    Ok(epoll)
}

fn epoll_add(epoll: &OwnedFd, fd: RawFd) -> Result {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: `event` is valid for the duration of the call.
    let ret = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
    check(ret, "epoll_ctl(ADD)")?;
    Ok(())
}

fn epoll_wait_once(epoll: &OwnedFd) -> Result<usize> {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    // SAFETY: `events` has room for the 4 entries the call may fill.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 4, TIMEOUT_MS) };
    Ok(check(n, "epoll_wait")? as usize)
}
