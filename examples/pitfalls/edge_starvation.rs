//! `edge-starvation`: the rule "on an edge-triggered event, read until
//! `EAGAIN`" starves everybody else when one client never runs dry.
//!
//! epoll(7), "Possible pitfalls and ways to avoid them: Starvation
//! (edge-triggered)": "If there is a large amount of I/O space, it is
//! possible that by trying to drain it the other files will not get
//! processed causing starvation." The fix it gives, and TLPI 63.4.6
//! describes: keep a *ready list* of the descriptors that reported, and
//! serve them round-robin, a bounded amount each per turn, polling with a
//! zero timeout while the list is not empty. Draining until `EAGAIN` still
//! happens — spread over turns.
//!
//! Here a flooding client writes as fast as it can for a bounded time while
//! a quiet client sends one line; each 4 KiB the server reads costs it a
//! little work, so the flood stays ahead of the server.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::{Result, epoll_ctl, epoll_instance, epoll_wait, heading, ms};

/// How long the flooding client writes.
const FLOOD_FOR: Duration = Duration::from_millis(300);

/// Bytes per read.
const CHUNK: usize = 4096;

/// The server's work per chunk read: slower than the flood's writes.
const WORK: Duration = Duration::from_micros(50);

/// The round-robin server's budget per descriptor per turn.
const BUDGET: usize = 4 * CHUNK;

/// Flood bytes waiting in the server's socket before the quiet client
/// speaks.
const PREFILL: usize = 128 * 1024;

/// No trial runs longer than this.
const DEADLINE: Duration = Duration::from_secs(3);

const FLOOD: usize = 0;
const QUIET: usize = 1;

/// What one trial measured.
struct Outcome {
    /// Flood bytes the server read after the quiet line was sent and before
    /// it read that line.
    behind: usize,
    /// How long the quiet line waited.
    waited: Duration,
    /// Flood bytes read in all.
    flood_total: usize,
}

pub fn run() -> Result {
    println!(
        "edge-starvation (epoll, edge-triggered): a client floods for {}, a quiet client sends one line;",
        ms(FLOOD_FOR)
    );
    println!(
        "the server reads {} KiB at a time and works {} µs per read",
        CHUNK / 1024,
        WORK.as_micros()
    );

    heading("epoll edge, broken: on each event, read until EAGAIN");
    let naive = trial(None)?;
    report("broken", &naive);

    heading(&format!(
        "epoll edge, fixed: a ready list served round-robin, {} KiB per descriptor per turn",
        BUDGET / 1024
    ));
    let fixed = trial(Some(BUDGET))?;
    report("fixed", &fixed);
    Ok(())
}

fn report(verdict: &str, o: &Outcome) {
    println!(
        "{verdict}: the quiet client's line waited {:.1} ms, behind {} KiB of flood (the server read {} KiB of flood in all)",
        o.waited.as_secs_f64() * 1000.0,
        o.behind / 1024,
        o.flood_total / 1024
    );
}

/// One connection as the server sees it.
struct Conn {
    stream: UnixStream,
    /// On the ready list now.
    queued: bool,
    eof: bool,
}

/// Runs the server against the two clients; `budget` is `None` for the
/// naive "drain until EAGAIN", else the round-robin budget.
fn trial(budget: Option<usize>) -> Result<Outcome> {
    let epoll = epoll_instance()?;
    let (flood_server, mut flood_client) = UnixStream::pair()?;
    let (quiet_server, mut quiet_client) = UnixStream::pair()?;
    let mut conns = Vec::new();
    for (key, stream) in [flood_server, quiet_server].into_iter().enumerate() {
        stream.set_nonblocking(true)?;
        let flags = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;
        epoll_ctl(
            &epoll,
            libc::EPOLL_CTL_ADD,
            stream.as_raw_fd(),
            flags,
            key as u64,
        )?;
        conns.push(Conn {
            stream,
            queued: false,
            eof: false,
        });
    }

    let flood = std::thread::spawn(move || {
        let start = Instant::now();
        let block = [b'f'; CHUNK];
        while start.elapsed() < FLOOD_FOR {
            if flood_client.write_all(&block).is_err() {
                break;
            }
        }
    });
    // Let the flood fill the socket buffer (up to a second on a busy
    // machine), then the quiet client speaks.
    let filling = Instant::now();
    while queued(&conns[FLOOD].stream) < PREFILL && filling.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(1));
    }
    quiet_client.write_all(b"hello\n")?;
    let sent = Instant::now();

    let mut ready: VecDeque<usize> = VecDeque::new();
    let mut flood_total = 0;
    let mut served: Option<(usize, Duration)> = None;
    let mut buf = [0u8; CHUNK];
    while (!conns[FLOOD].eof || served.is_none()) && sent.elapsed() < DEADLINE {
        let timeout = if ready.is_empty() { 100 } else { 0 };
        for (key, _flags) in epoll_wait(&epoll, timeout)? {
            let key = key as usize;
            if !conns[key].queued {
                conns[key].queued = true;
                ready.push_back(key);
            }
        }
        // One turn: each descriptor that was ready at its start, once.
        for _ in 0..ready.len() {
            let Some(key) = ready.pop_front() else { break };
            let limit = budget.unwrap_or(usize::MAX);
            let mut taken = 0;
            let drained = loop {
                if taken >= limit {
                    break false;
                }
                match conns[key].stream.read(&mut buf) {
                    Ok(0) => {
                        conns[key].eof = true;
                        break true;
                    }
                    Ok(got) => {
                        taken += got;
                        if key == FLOOD {
                            flood_total += got;
                            std::thread::sleep(WORK);
                        } else if key == QUIET && served.is_none() && buf[..got].contains(&b'\n') {
                            served = Some((flood_total, sent.elapsed()));
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                    Err(e) => return Err(e.into()),
                }
            };
            if drained {
                conns[key].queued = false;
            } else {
                ready.push_back(key);
            }
        }
    }
    drop(conns);
    let _ = flood.join();
    let (behind, waited) = served.ok_or("the quiet client's line was never read")?;
    Ok(Outcome {
        behind,
        waited,
        flood_total,
    })
}

/// Bytes waiting to be read on `stream` (`ioctl(FIONREAD)`).
fn queued(stream: &UnixStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to `n`; the fd is open.
    let ret = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    if ret == -1 { 0 } else { n as usize }
}
