//! `herd`: the thundering herd — N processes wait on one listener, one
//! connection arrives, and all N wake up to fight over it.
//!
//! A pre-forked server (chapter 8's `prefork_echo`) has every worker
//! waiting on the same inherited listener. When a connection arrives the
//! kernel wakes every process waiting on the listener in select, poll or
//! (non-exclusive) epoll: one `accept` wins, the others get `EAGAIN` and go
//! back to sleep, having cost a context switch each. Two fixes:
//!
//! - `EPOLLEXCLUSIVE` (epoll_ctl(2), since Linux 4.5): "one or more of the
//!   epoll file descriptors will receive an event" instead of all;
//! - `SO_REUSEPORT` (socket(7), since Linux 3.9): each worker has its *own*
//!   listening socket on the same port, and the kernel hands each new
//!   connection to one of them, so only that worker is woken; it works
//!   under every multiplexer.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use reactor::Backend;

use crate::{
    Result, check, epoll_ctl, epoll_instance, epoll_wait, errno, fork, heading, pipe,
    poll_readable, select_readable,
};

/// Time for every worker to block in its wait after it said it is ready.
const SETTLE: Duration = Duration::from_millis(50);

/// Time given to woken workers to report.
const COLLECT: Duration = Duration::from_millis(150);

/// A worker's wait gives up after this (the parent kills it sooner).
const WORKER_WAIT_MS: libc::c_int = 3000;

/// How the workers share the port.
#[derive(Clone, Copy, PartialEq)]
enum Sharing {
    /// One listener, inherited by every worker.
    Shared,
    /// One listener, each worker's epoll registers it with EPOLLEXCLUSIVE.
    Exclusive,
    /// Each worker its own listener on the same port (SO_REUSEPORT).
    ReusePort,
}

/// What the workers reported.
#[derive(Default)]
struct Tally {
    /// Workers whose voluntary context switches went up: woken by the kernel.
    woken: u32,
    accepted: u32,
    found_nothing: u32,
    unsupported: bool,
}

pub fn run(backends: &[Backend], workers: u32) -> Result {
    println!("herd: {workers} processes wait on one port; one client connects; who wakes up?");
    for &backend in backends {
        let shared = format!("{workers} processes wait on one shared listener");
        let mut cases = vec![(Sharing::Shared, "broken", shared.as_str())];
        if backend == Backend::Epoll {
            cases.push((
                Sharing::Exclusive,
                "fixed (EPOLLEXCLUSIVE)",
                "each worker registers the listener with EPOLLEXCLUSIVE (Linux 4.5)",
            ));
        }
        cases.push((
            Sharing::ReusePort,
            "fixed (SO_REUSEPORT)",
            "each worker has its own listener on the port (SO_REUSEPORT, Linux 3.9)",
        ));
        for (sharing, label, what) in cases {
            let verdict_word = label.split(' ').next().unwrap_or(label);
            heading(&format!("{backend}, {verdict_word}: {what}"));
            let t = case(backend, sharing, workers)?;
            if t.unsupported {
                println!("skipped: this kernel refuses it ({what})");
            } else {
                verdict(label, &t, workers);
            }
        }
    }
    Ok(())
}

fn verdict(label: &str, t: &Tally, workers: u32) {
    println!(
        "{label}: {} of {workers} processes woke for 1 connection; {} accepted it, {} more returned from the wait and found nothing (accept → EAGAIN)",
        t.woken, t.accepted, t.found_nothing,
    );
}

/// Forks the workers, connects once, and counts who woke.
fn case(backend: Backend, sharing: Sharing, workers: u32) -> Result<Tally> {
    // The port: a shared listener, or a socket that only reserves the port.
    let shared = TcpListener::bind("127.0.0.1:0")?;
    shared.set_nonblocking(true)?;
    let addr = shared.local_addr()?;
    let shared = if sharing == Sharing::ReusePort {
        drop(shared);
        None
    } else {
        Some(shared)
    };
    let (report_read, report_write) = pipe()?;
    let mut pids = Vec::new();
    for _ in 0..workers {
        let listen_fd = shared.as_ref().map(AsRawFd::as_raw_fd);
        let w = report_write.as_raw_fd();
        pids.push(fork(|| worker(backend, sharing, listen_fd, addr, w))?);
    }
    drop(report_write);
    let mut reports = Reports::new(report_read);
    let tally = (|| -> Result<Tally> {
        // Every worker says 'r' once it is about to wait (or 'X' if refused).
        let ready = reports.take(workers as usize, Duration::from_secs(3))?;
        let mut tally = Tally::default();
        if ready.contains(&b'X') {
            tally.unsupported = true;
            return Ok(tally);
        }
        if ready.len() < workers as usize {
            return Err(format!("only {} of {workers} workers started", ready.len()).into());
        }
        std::thread::sleep(SETTLE);
        let before: Vec<u64> = pids.iter().map(|&p| switches(p)).collect();
        let _client = TcpStream::connect(addr)?;
        let start = Instant::now();
        while start.elapsed() < COLLECT {
            for b in reports.take(1, COLLECT.saturating_sub(start.elapsed()))? {
                match b {
                    b'A' => tally.accepted += 1,
                    b'E' => tally.found_nothing += 1,
                    _ => {}
                }
            }
        }
        // Woken: it ran and went back to sleep (its count rose), or it is
        // still runnable, woken but not yet given a CPU (a busy machine).
        tally.woken = pids
            .iter()
            .zip(&before)
            .filter(|&(&pid, &b)| switches(pid) > b || runnable(pid))
            .count() as u32;
        Ok(tally)
    })();
    for &pid in &pids {
        // SAFETY: plain system call on a child of ours that we reap below.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for pid in pids {
        crate::wait(pid)?;
    }
    tally
}

/// The worker process: wait, try to accept, say what happened, wait again
/// (until the parent kills it). Reports 'r' before the first wait, then 'A'
/// (accepted) or 'E' (the wait returned, accept → EAGAIN) for each return;
/// 'X' if the kernel refused the set-up.
fn worker(
    backend: Backend,
    sharing: Sharing,
    shared: Option<RawFd>,
    addr: SocketAddr,
    report: RawFd,
) -> i32 {
    let say = |b: u8| {
        // SAFETY: `report` is the open write end of the report pipe.
        unsafe { libc::write(report, (&b as *const u8).cast(), 1) };
    };
    let listen = match shared {
        Some(fd) => fd,
        None => match reuseport_listener(addr) {
            Some(fd) => fd,
            None => {
                say(b'X');
                return 0;
            }
        },
    };
    // epoll: each worker its own instance, created after the fork.
    let mut epoll = None;
    if backend == Backend::Epoll {
        let mut flags = libc::EPOLLIN;
        if sharing == Sharing::Exclusive {
            flags |= libc::EPOLLEXCLUSIVE;
        }
        let instance = epoll_instance();
        match instance
            .and_then(|e| epoll_ctl(&e, libc::EPOLL_CTL_ADD, listen, flags, 0).map(|()| e))
        {
            Ok(e) => epoll = Some(e),
            Err(_) => {
                say(b'X');
                return 0;
            }
        }
    }
    say(b'r');
    // Bounded: the parent kills the worker long before this runs out.
    for _ in 0..100 {
        if !wait_readable(backend, listen, epoll.as_ref()) {
            continue;
        }
        // SAFETY: null address pointers are allowed when the peer's address is not wanted.
        let conn = unsafe {
            libc::accept4(
                listen,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK,
            )
        };
        if conn >= 0 {
            say(b'A');
        } else if errno() == libc::EAGAIN {
            say(b'E');
        }
    }
    0
}

/// One wait for `listen` to become readable, through `backend`.
fn wait_readable(backend: Backend, listen: RawFd, epoll: Option<&OwnedFd>) -> bool {
    let wait = Duration::from_millis(WORKER_WAIT_MS as u64);
    match (backend, epoll) {
        (Backend::Select, _) => select_readable(listen, wait).0 > 0,
        (Backend::Poll, _) => poll_readable(listen, WORKER_WAIT_MS).0 > 0,
        (Backend::Epoll, Some(epoll)) => {
            epoll_wait(epoll, WORKER_WAIT_MS).is_ok_and(|ready| !ready.is_empty())
        }
        (Backend::Epoll, None) => false,
        // Left out by raw_backends.
        (Backend::Uring, _) => false,
    }
}

/// Whether a process is runnable (`R` in `/proc/PID/stat`).
fn runnable(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('R'))
        })
        .unwrap_or(false)
}

/// A process's voluntary context switches (`/proc/PID/status`): each time
/// it went to sleep. A sleeping process whose count rises was woken.
fn switches(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A non-blocking listener on `addr` with SO_REUSEPORT, or `None` if refused.
fn reuseport_listener(addr: SocketAddr) -> Option<RawFd> {
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    // SAFETY: plain system call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
    if fd == -1 {
        return None;
    }
    let one: libc::c_int = 1;
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `one` is a valid c_int option value of `size` bytes.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            size,
        )
    };
    if ret == -1 {
        return None;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a valid sockaddr_in of `len` bytes.
    let bound = unsafe { libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), len) };
    // SAFETY: plain system call on our socket.
    if bound == -1 || unsafe { libc::listen(fd, 16) } == -1 {
        return None;
    }
    Some(fd)
}

/// The read end of the workers' report pipe.
struct Reports(std::fs::File);

impl Reports {
    fn new(fd: OwnedFd) -> Reports {
        Reports(std::fs::File::from(fd))
    }

    /// Reads up to `count` report bytes, waiting at most `wait` in all.
    fn take(&mut self, count: usize, wait: Duration) -> Result<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while got.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let ms = left.as_millis().clamp(1, 10_000) as libc::c_int;
            // SAFETY: `fds` is a valid array of one pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
            if n == -1 && errno() == libc::EINTR {
                continue;
            }
            if check(n, "poll")? == 0 {
                break;
            }
            let mut buf = [0u8; 16];
            let want = (count - got.len()).min(buf.len());
            match self.0.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(got)
    }
}
