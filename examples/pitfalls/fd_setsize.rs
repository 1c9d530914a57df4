//! `fd-setsize`: `FD_SET(1500, &set)` on a 1024-bit `fd_set`.
//!
//! select(2), NOTES: "Executing FD_CLR() or FD_SET() with a value of fd
//! that is negative or is equal to or larger than FD_SETSIZE will result in
//! undefined behavior." Without checks the bit lands past the end of the
//! set, in whatever memory follows; glibc built with `_FORTIFY_SOURCE`
//! checks it (its `FD_SET` calls `__fdelt_chk`) and aborts the process;
//! Python raises `ValueError: filedescriptor out of range in select()`;
//! this crate's select backend refuses with `Error::FdTooLarge`. The fix is
//! poll or epoll, which have no such limit.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use reactor::{Backend, Events, Interest, Poller, Trigger};

use crate::{Result, check, fork, heading, wait};

/// The fd number of the demonstration: above FD_SETSIZE (1024).
const BIG_FD: RawFd = 1500;

#[cfg(target_env = "gnu")]
unsafe extern "C" {
    /// glibc's check behind the fortified `FD_SET`: aborts if `fd` is out of range.
    fn __fdelt_chk(fd: libc::c_long) -> libc::c_long;
}

pub fn run() -> Result {
    println!(
        "fd-setsize: an fd number of {BIG_FD}, above select's FD_SETSIZE of {}",
        libc::FD_SETSIZE
    );

    heading("C with glibc's _FORTIFY_SOURCE, broken: FD_SET(1500, &set)");
    fortified()?;

    heading("reactor's select backend: refused with a typed error");
    let mut poller = Backend::Select.new_poller()?;
    match poller.register(BIG_FD, 0, Interest::READABLE, Trigger::Level) {
        Ok(()) => println!("register(fd={BIG_FD}) → Ok: unexpected"),
        Err(err) => println!("register(fd={BIG_FD}) → Err: {err}"),
    }

    for backend in [Backend::Poll, Backend::Epoll] {
        heading(&format!("{backend}, fixed: no limit on the fd number"));
        match big_fd_event(backend)? {
            Some(line) => println!("fixed: {line}"),
            None => println!(
                "skipped: RLIMIT_NOFILE's hard limit is below {}",
                BIG_FD + 1
            ),
        }
    }
    Ok(())
}

/// Runs the fortified check in a child whose stderr is a pipe, and reports
/// what the child printed and how it ended.
#[cfg(target_env = "gnu")]
fn fortified() -> Result {
    let (read, write) = crate::pipe()?;
    let pid = fork(|| {
        // SAFETY: both descriptors are open; stderr now goes to the pipe.
        unsafe { libc::dup2(write.as_raw_fd(), libc::STDERR_FILENO) };
        // SAFETY: the call aborts the process, which is the point.
        unsafe { __fdelt_chk(BIG_FD.into()) };
        0
    })?;
    drop(write);
    let mut message = String::new();
    std::fs::File::from(read).read_to_string(&mut message)?;
    let status = wait(pid)?;
    println!("the child's stderr: {}", message.trim());
    println!("broken: the child {status}");
    Ok(())
}

#[cfg(not(target_env = "gnu"))]
fn fortified() -> Result {
    println!("skipped: not glibc (its fortified FD_SET is what aborts)");
    Ok(())
}

/// Puts a socket on fd number 1500 and waits for it through `backend`;
/// `None` if the descriptor limit does not allow that number.
fn big_fd_event(backend: Backend) -> Result<Option<String>> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid place for getrlimit to write to.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    check(ret, "getrlimit")?;
    let need = (BIG_FD + 1) as libc::rlim_t;
    if lim.rlim_max < need {
        return Ok(None);
    }
    if lim.rlim_cur < need {
        let raised = libc::rlimit {
            rlim_cur: need,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit within the hard limit.
        let ret = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        check(ret, "setrlimit")?;
    }
    let (a, mut b) = UnixStream::pair()?;
    // SAFETY: `a` is open; F_DUPFD_CLOEXEC returns a new fd >= BIG_FD.
    let ret = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, BIG_FD) };
    let big = check(ret, "fcntl(F_DUPFD)")?;
    // SAFETY: `big` was just returned by fcntl and is owned by nobody else.
    let big = unsafe { OwnedFd::from_raw_fd(big) };
    let mut poller = backend.new_poller()?;
    poller.register(big.as_raw_fd(), 7, Interest::READABLE, Trigger::Level)?;
    b.write_all(b"x")?;
    let mut events = Events::with_capacity(4);
    poller.poll(&mut events, Some(Duration::from_secs(1)))?;
    poller.unregister(big.as_raw_fd())?;
    let got = events.iter().any(|e| e.key() == 7 && e.is_readable());
    Ok(Some(format!(
        "register(fd={}) → Ok; the peer writes 1 byte; {backend} → {}",
        big.as_raw_fd(),
        if got { "readable" } else { "nothing" }
    )))
}
