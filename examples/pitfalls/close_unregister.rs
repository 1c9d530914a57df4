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
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use reactor::Backend;

use crate::{
    Result, check, count_for, epoll_ctl, epoll_instance, epoll_wait, errno, errno_name, heading,
    ms, poll_readable, select_readable,
};

/// How long each spin is counted.
const WINDOW: Duration = Duration::from_millis(200);

/// Each wait's timeout: a loop that is not spinning makes WINDOW / TIMEOUT calls.
const TIMEOUT_MS: libc::c_int = 50;

/// The same, for select.
const TIMEOUT: Duration = Duration::from_millis(TIMEOUT_MS as u64);

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
                let (n, r) = poll_readable(fd, TIMEOUT_MS);
                check(n, "poll")?;
                revents = r;
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
                let (n, e) = select_readable(fd, TIMEOUT);
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
        // Left out by raw_backends.
        Backend::Uring => return Err(crate::RAW_ONLY.into()),
        Backend::Epoll => {
            let epoll = epoll_instance()?;
            epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, 0)?;
            println!("epoll_ctl(ADD, fd={fd}) → 0");
            drop(watched.take());
            println!("close(fd={fd}) → 0 (no EPOLL_CTL_DEL)");
            let del = match epoll_ctl(&epoll, libc::EPOLL_CTL_DEL, fd, 0, 0) {
                Ok(()) => "0",
                Err(_) => errno_name(errno()),
            };
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
                events += epoll_wait(&epoll, TIMEOUT_MS)?.len();
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
    // The loop still watches something (a quiet socket), as a real one would.
    let (quiet, _keep) = UnixStream::pair()?;
    let q = quiet.as_raw_fd();
    let calls = match backend {
        // Left out by raw_backends.
        Backend::Uring => return Err(crate::RAW_ONLY.into()),
        Backend::Poll => {
            println!("poll: drop fd={fd} from the pollfd array, then close(fd={fd})");
            count_for(WINDOW, CAP, || {
                check(poll_readable(q, TIMEOUT_MS).0, "poll")?;
                Ok(())
            })?
        }
        Backend::Select => {
            println!("select: FD_CLR(fd={fd}), then close(fd={fd})");
            count_for(WINDOW, CAP, || match select_readable(q, TIMEOUT) {
                (-1, e) => Err(format!("select: {}", errno_name(e)).into()),
                _ => Ok(()),
            })?
        }
        Backend::Epoll => {
            let epoll = epoll_instance()?;
            epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, 0)?;
            epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, q, libc::EPOLLIN, 1)?;
            epoll_ctl(&epoll, libc::EPOLL_CTL_DEL, fd, 0, 0)?;
            println!(
                "epoll_ctl(DEL, fd={fd}) → 0, then close(fd={fd}): the table and the kernel agree"
            );
            count_for(WINDOW, CAP, || {
                epoll_wait(&epoll, TIMEOUT_MS)?;
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
