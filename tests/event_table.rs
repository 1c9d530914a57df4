//! What each backend reports when something happens to a connection: the
//! measurements behind the table in the docs of `reactor::Event`.
//!
//! For each situation (data arrived, peer closed, peer closed and we shut
//! down, peer reset, our fd closed while registered), on a TCP connection and
//! on an `AF_UNIX` stream pair, one descriptor is registered `READABLE`,
//! the situation is provoked, and the flags of the first event are compared
//! with the table below. If the kernel disagrees, the test prints what it saw
//! for every cell, so the docs can be corrected (the docs follow the kernel,
//! not the other way round).

#[macro_use]
mod common;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::{
    BACKENDS, fds_exclusive, fds_shared, new_poller, set_linger_zero, socket_pair, tcp_pair,
};
use reactor::{Backend, Events, Interest, Poller, Trigger};

backend_tests!(a_reset_connection_paused_with_modify_keeps_firing_until_unregistered);

const KEY: usize = 9;

/// The situations of the table, in its order.
#[derive(Clone, Copy, Debug)]
enum Situation {
    /// The peer wrote one byte.
    DataArrived,
    /// The peer closed its end (a FIN on TCP).
    PeerClosed,
    /// The peer closed, and we shut down our writing half too.
    PeerClosedWeShutDown,
    /// TCP: the peer closed with `SO_LINGER {1, 0}` (an RST). Unix: the
    /// peer closed with our data unread in its queue (`ECONNRESET` for us).
    PeerReset,
    /// We closed the registered descriptor without unregistering it.
    OurFdClosed,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Tcp,
    Unix,
}

/// A connected pair as owned fds: `(ours, theirs)`.
fn pair(transport: Transport) -> (OwnedFd, OwnedFd) {
    match transport {
        Transport::Tcp => {
            let (a, b) = tcp_pair();
            (a.into(), b.into())
        }
        Transport::Unix => {
            let (a, b) = socket_pair();
            (a.into(), b.into())
        }
    }
}

/// Provokes `situation` on a fresh pair and returns the flags of the first
/// event for our descriptor (`"none"` if nothing came within 200 ms).
fn observe(backend: Backend, transport: Transport, situation: Situation) -> String {
    let mut poller = new_poller(backend);
    let (ours, theirs) = pair(transport);
    let mut ours = Some(ours);
    let fd = ours.as_ref().unwrap().as_raw_fd();
    poller
        .register(fd, KEY, Interest::READABLE, Trigger::Level)
        .unwrap();
    let mut theirs = std::fs::File::from(theirs);
    match situation {
        Situation::DataArrived => theirs.write_all(b"x").unwrap(),
        Situation::PeerClosed => drop(theirs),
        Situation::PeerClosedWeShutDown => {
            drop(theirs);
            // SAFETY: shutdown(2) on a socket we own; works for AF_UNIX too.
            let ret = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
            assert_eq!(ret, 0, "shutdown: {}", std::io::Error::last_os_error());
        }
        Situation::PeerReset => {
            match transport {
                Transport::Tcp => set_linger_zero(&theirs),
                Transport::Unix => {
                    // Data the peer never reads: closing it resets us.
                    let ours = ours.as_ref().unwrap().try_clone().unwrap();
                    std::fs::File::from(ours).write_all(b"unread").unwrap();
                }
            }
            drop(theirs);
        }
        Situation::OurFdClosed => {
            drop(ours.take());
            // Data for a closed fd must not wake anyone; keep the peer open.
            let _ = theirs.write_all(b"x");
            return first_event(&mut poller);
        }
    }
    first_event(&mut poller)
}

/// The flags of the first event for `KEY`, or `"none"` after 200 ms.
fn first_event(poller: &mut impl Poller) -> String {
    let mut events = Events::with_capacity(8);
    match poller.poll(&mut events, Some(Duration::from_millis(200))) {
        Ok(_) => {}
        Err(err) => return format!("poll failed: {err}"),
    }
    match events.iter().find(|e| e.key() == KEY) {
        None => "none".to_owned(),
        // `key=9 IN|RDHUP` → `IN|RDHUP`
        Some(event) => format!("{event:?}").split_once(' ').unwrap().1.to_owned(),
    }
}

/// What we expect: `(situation, transport, select, poll, epoll, uring)`.
#[rustfmt::skip]
const TABLE: &[(&str, Transport, &str, &str, &str, &str)] = &[
    ("DataArrived",          Transport::Tcp,  "IN",     "IN",               "IN",               "IN"),
    ("DataArrived",          Transport::Unix, "IN",     "IN",               "IN",               "IN"),
    // TCP: a FIN closes only the peer's sending half; we may still write.
    ("PeerClosed",           Transport::Tcp,  "IN",     "IN|RDHUP",         "IN|RDHUP",         "IN|RDHUP"),
    // AF_UNIX: the peer's close shuts down both halves of ours at once.
    ("PeerClosed",           Transport::Unix, "IN",     "IN|RDHUP|HUP",     "IN|RDHUP|HUP",     "IN|RDHUP|HUP"),
    ("PeerClosedWeShutDown", Transport::Tcp,  "IN",     "IN|RDHUP|HUP",     "IN|RDHUP|HUP",     "IN|RDHUP|HUP"),
    ("PeerClosedWeShutDown", Transport::Unix, "IN",     "IN|RDHUP|HUP",     "IN|RDHUP|HUP",     "IN|RDHUP|HUP"),
    ("PeerReset",            Transport::Tcp,  "IN",     "IN|RDHUP|HUP|ERR", "IN|RDHUP|HUP|ERR", "IN|RDHUP|HUP|ERR"),
    ("PeerReset",            Transport::Unix, "IN",     "IN|RDHUP|HUP|ERR", "IN|RDHUP|HUP|ERR", "IN|RDHUP|HUP|ERR"),
    // select: EBADF, then the probe names the fd; poll: POLLNVAL; epoll:
    // closing the last reference removed the registration silently; uring:
    // the queued POLL_ADD reached the kernel after the close and failed with
    // EBADF (had it been in the kernel already, it would hold the file open
    // and report nothing).
    ("OurFdClosed",          Transport::Tcp,  "IN|ERR", "IN|ERR",           "none",             "IN|ERR"),
    ("OurFdClosed",          Transport::Unix, "IN|ERR", "IN|ERR",           "none",             "IN|ERR"),
];

/// Observes `situations` on both transports and all backends; fails with
/// every observation printed if any cell differs from `TABLE`.
fn check(situations: &[Situation]) {
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for &situation in situations {
        for transport in [Transport::Tcp, Transport::Unix] {
            let name = format!("{situation:?}");
            let observed: Vec<String> = BACKENDS
                .iter()
                .map(|&backend| observe(backend, transport, situation))
                .collect();
            seen.push(format!("{name:<22} {transport:?}: {observed:?}"));
            let expected = TABLE
                .iter()
                .find(|row| row.0 == name && row.1 == transport)
                .map(|row| vec![row.2, row.3, row.4, row.5]);
            if expected.as_deref()
                != Some(&observed.iter().map(|s| s.as_str()).collect::<Vec<_>>()[..])
            {
                wrong.push(format!("{name} on {transport:?}: expected {expected:?} (select, poll, epoll, uring), saw {observed:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nall observations:\n{}",
        wrong.join("\n"),
        seen.join("\n")
    );
}

#[test]
fn every_backend_reports_the_documented_flags_for_connection_states() {
    let _fds = fds_shared();
    check(&[
        Situation::DataArrived,
        Situation::PeerClosed,
        Situation::PeerClosedWeShutDown,
        Situation::PeerReset,
    ]);
}

#[test]
fn every_backend_reports_the_documented_flags_for_a_closed_fd() {
    // Exclusive: no other thread may reuse the closed fd's number.
    let _fds = fds_exclusive();
    check(&[Situation::OurFdClosed]);
}

/// docs/reliability.md#reset-connections-left-registered, the open question: a
/// reset connection that the handler "pauses" with `modify(WRITABLE)` instead
/// of closing keeps being reported at every `poll` on every backend (epoll,
/// poll and uring report HUP|ERR whatever the interest, uring RDHUP too;
/// select says writable because a write would fail at once). A paused reset connection is a busy loop: on
/// `hangup` or `error`, unregister and close. This test pins that down, and
/// shows that `unregister` is what stops it.
fn a_reset_connection_paused_with_modify_keeps_firing_until_unregistered(backend: Backend) {
    let _guard = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, theirs) = tcp_pair();
    let fd = ours.as_raw_fd();
    poller
        .register(fd, KEY, Interest::READABLE, Trigger::Level)
        .unwrap();
    set_linger_zero(&theirs);
    drop(theirs);
    assert_ne!(
        first_event(&mut poller),
        "none",
        "[{backend}] no event for the reset"
    );
    poller
        .modify(fd, KEY, Interest::WRITABLE, Trigger::Level)
        .unwrap();
    let seen: Vec<String> = (0..3).map(|_| first_event(&mut poller)).collect();
    let expected = match backend {
        Backend::Select => "OUT",
        // io_uring hands back the socket's whole mask, RDHUP included,
        // though only POLLOUT was asked for.
        Backend::Uring => "IN|OUT|RDHUP|HUP|ERR",
        _ => "IN|OUT|HUP|ERR",
    };
    assert_eq!(
        seen,
        vec![expected; 3],
        "[{backend}] paused reset connection"
    );
    poller.unregister(fd).unwrap();
    assert_eq!(
        first_event(&mut poller),
        "none",
        "[{backend}] after unregister"
    );
}
