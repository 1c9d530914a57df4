//! The `Poller` contract, written once and run for select, poll and epoll
//! (CPython's `BaseSelectorTestCase` mixin, in Rust): a failing test is named
//! `<backend>::<behaviour>`, so the report says which backend broke.

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

use common::{
    expect_event, expect_no_event, fds_exclusive, fds_shared, new_poller, pipe, socket_pair,
    tcp_pair,
};
use reactor::Backend;
use reactor::{AnyPoller, Error, Events, Interest, Poller, Trigger};

/// How long "no event" is watched for.
const QUIET: Duration = Duration::from_millis(50);

backend_tests!(
    readable_after_the_peer_writes,
    writable_after_a_nonblocking_connect,
    level_fires_again_until_drained,
    oneshot_fires_once_until_modified,
    edge_fires_once_per_arrival_or_is_refused,
    peer_close_reports_hangup_or_read_closed,
    unregister_stops_events,
    zero_timeout_returns_at_once,
    a_50ms_timeout_waits_at_least_50ms,
    registering_the_same_fd_twice_is_already_registered,
    modify_or_unregister_of_an_unknown_fd_is_not_registered_and_changes_nothing,
    register_after_unregister_works,
    events_with_capacity_zero_still_reports,
    a_negative_fd_is_rejected,
    pipes_work,
    tcp_works,
    udp_works,
    unix_streams_work,
    unix_datagrams_work,
    a_full_events_buffer_serves_every_fd_in_turn,
);

/// The backends the per-backend tests run on (the one list in
/// tests/common, `with_backends!`) are exactly `Backend::ALL`: a new
/// backend gets every per-backend test from one line there.
#[test]
fn the_test_backends_are_backend_all() {
    assert_eq!(common::BACKENDS, Backend::ALL.as_slice());
}

/// Reads until `WouldBlock`; returns how many bytes came.
fn drain(reader: &mut impl Read) -> usize {
    let mut buf = [0; 4096];
    let mut total = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn readable_after_the_peer_writes(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, mut theirs) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 1, Interest::READABLE, Trigger::Level)
        .unwrap();
    expect_no_event(&mut poller, 1, QUIET);
    theirs.write_all(b"ping").unwrap();
    let event = expect_event(&mut poller, 1);
    assert!(
        event.is_readable() && !event.is_writable(),
        "[{backend}] {event:?}"
    );
}

fn writable_after_a_nonblocking_connect(backend: Backend) {
    let _fds = fds_shared();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    // SAFETY: socket takes no pointers; it returns a new fd or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh socket owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: connect reads a live sockaddr_in of the size given.
    let ret = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let errno = std::io::Error::last_os_error().raw_os_error();
    assert!(
        ret == 0 || errno == Some(libc::EINPROGRESS),
        "connect: {errno:?}"
    );

    let mut poller = new_poller(backend);
    poller
        .register(fd, 2, Interest::WRITABLE, Trigger::Level)
        .unwrap();
    let event = expect_event(&mut poller, 2);
    assert!(
        event.is_writable() && !event.is_error(),
        "[{backend}] {event:?}"
    );
    let mut stream = TcpStream::from(socket);
    assert!(
        stream.take_error().unwrap().is_none(),
        "[{backend}] SO_ERROR after connect"
    );
    stream.write_all(b"hi").unwrap();
    let (mut accepted, _) = listener.accept().unwrap();
    let mut buf = [0; 2];
    accepted.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
}

/// The STYLE story: write → event → partial read → event again → drain to
/// `WouldBlock` → none → write → event.
fn level_fires_again_until_drained(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (mut ours, mut theirs) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 3, Interest::READABLE, Trigger::Level)
        .unwrap();
    theirs.write_all(b"0123456789").unwrap();
    expect_event(&mut poller, 3);
    let mut three = [0; 3];
    ours.read_exact(&mut three).unwrap();
    expect_event(&mut poller, 3); // level: 7 bytes are still there
    assert_eq!(drain(&mut ours), 7);
    expect_no_event(&mut poller, 3, QUIET);
    theirs.write_all(b"more").unwrap();
    expect_event(&mut poller, 3);
}

fn oneshot_fires_once_until_modified(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (mut ours, mut theirs) = socket_pair();
    let fd = ours.as_raw_fd();
    poller
        .register(fd, 4, Interest::READABLE, Trigger::Oneshot)
        .unwrap();
    theirs.write_all(b"abc").unwrap();
    expect_event(&mut poller, 4);
    // Still readable, but disarmed: nothing until modify re-arms it.
    expect_no_event(&mut poller, 4, QUIET);
    theirs.write_all(b"def").unwrap();
    expect_no_event(&mut poller, 4, QUIET);
    poller
        .modify(fd, 5, Interest::READABLE, Trigger::Oneshot)
        .unwrap();
    assert!(expect_event(&mut poller, 5).is_readable());
    expect_no_event(&mut poller, 5, QUIET);
    assert_eq!(drain(&mut ours), 6);
}

fn edge_fires_once_per_arrival_or_is_refused(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (mut ours, mut theirs) = socket_pair();
    let fd = ours.as_raw_fd();
    if ![Backend::Epoll, Backend::Uring].contains(&backend) {
        let err = poller
            .register(fd, 6, Interest::READABLE, Trigger::Edge)
            .unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { backend: b, trigger: "edge" } if b == backend.name()),
            "[{backend}] {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(backend.name()) && message.contains("edge"),
            "[{backend}] {message}"
        );
        // Refused means not registered: level registration still works.
        poller
            .register(fd, 6, Interest::READABLE, Trigger::Level)
            .unwrap();
        let err = poller
            .modify(fd, 6, Interest::READABLE, Trigger::Edge)
            .unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "[{backend}] {err:?}"
        );
        return;
    }
    poller
        .register(fd, 6, Interest::READABLE, Trigger::Edge)
        .unwrap();
    theirs.write_all(b"0123456789").unwrap();
    expect_event(&mut poller, 6);
    let mut three = [0; 3];
    ours.read_exact(&mut three).unwrap();
    expect_no_event(&mut poller, 6, QUIET); // edge: no new arrival
    theirs.write_all(b"x").unwrap();
    expect_event(&mut poller, 6); // a new arrival
    expect_no_event(&mut poller, 6, QUIET);
    assert_eq!(drain(&mut ours), 8);
    theirs.write_all(b"y").unwrap();
    expect_event(&mut poller, 6);
}

fn peer_close_reports_hangup_or_read_closed(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (mut ours, theirs) = tcp_pair();
    poller
        .register(ours.as_raw_fd(), 7, Interest::READABLE, Trigger::Level)
        .unwrap();
    drop(theirs);
    let event = expect_event(&mut poller, 7);
    assert!(event.is_readable(), "[{backend}] {event:?}");
    if backend != Backend::Select {
        // select cannot tell a close from data; the others can.
        assert!(
            event.is_read_closed() || event.is_hangup(),
            "[{backend}] {event:?}"
        );
    }
    let mut buf = [0; 8];
    assert_eq!(ours.read(&mut buf).unwrap(), 0, "[{backend}] end of file");
}

fn unregister_stops_events(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, mut theirs) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 8, Interest::READABLE, Trigger::Level)
        .unwrap();
    theirs.write_all(b"x").unwrap();
    expect_event(&mut poller, 8);
    poller.unregister(ours.as_raw_fd()).unwrap();
    expect_no_event(&mut poller, 8, QUIET);
}

fn zero_timeout_returns_at_once(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, _theirs) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 9, Interest::READABLE, Trigger::Level)
        .unwrap();
    let mut events = Events::with_capacity(4);
    // A zero timeout must not become a 1 ms wait: time 100 calls one by
    // one and allow a few to be slowed by a busy machine.
    let mut slow = 0;
    for _ in 0..100 {
        let start = Instant::now();
        assert_eq!(poller.poll(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        if start.elapsed() >= Duration::from_millis(1) {
            slow += 1;
        }
    }
    assert!(
        slow < 10,
        "[{backend}] {slow} of 100 zero-timeout polls took ≥ 1 ms"
    );
}

fn a_50ms_timeout_waits_at_least_50ms(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, _theirs) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 10, Interest::READABLE, Trigger::Level)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let start = Instant::now();
    let n = poller
        .poll(&mut events, Some(Duration::from_millis(50)))
        .unwrap();
    let took = start.elapsed();
    assert_eq!(n, 0, "[{backend}] {events:?}");
    assert!(
        took >= Duration::from_millis(50),
        "[{backend}] returned early: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "[{backend}] took {took:?}");
}

fn registering_the_same_fd_twice_is_already_registered(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, mut theirs) = socket_pair();
    let fd = ours.as_raw_fd();
    poller
        .register(fd, 11, Interest::READABLE, Trigger::Level)
        .unwrap();
    let err = poller
        .register(fd, 12, Interest::WRITABLE, Trigger::Level)
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyRegistered { fd: f, .. } if f == fd),
        "[{backend}] {err:?}"
    );
    // No state change: still key 11, still READABLE only.
    expect_no_event(&mut poller, 12, QUIET);
    theirs.write_all(b"x").unwrap();
    let event = expect_event(&mut poller, 11);
    assert!(!event.is_writable(), "[{backend}] {event:?}");
}

fn modify_or_unregister_of_an_unknown_fd_is_not_registered_and_changes_nothing(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, mut theirs) = socket_pair();
    let (stranger, _peer) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 13, Interest::READABLE, Trigger::Level)
        .unwrap();
    let sfd = stranger.as_raw_fd();
    let err = poller
        .modify(sfd, 14, Interest::READABLE, Trigger::Level)
        .unwrap_err();
    assert!(
        matches!(err, Error::NotRegistered { fd, .. } if fd == sfd),
        "[{backend}] {err:?}"
    );
    let err = poller.unregister(sfd).unwrap_err();
    assert!(
        matches!(err, Error::NotRegistered { fd, .. } if fd == sfd),
        "[{backend}] {err:?}"
    );
    // The stranger was not registered by the failed modify…
    let err = poller.unregister(sfd).unwrap_err();
    assert!(
        matches!(err, Error::NotRegistered { .. }),
        "[{backend}] {err:?}"
    );
    // …and the registered fd still works as before.
    theirs.write_all(b"x").unwrap();
    expect_event(&mut poller, 13);
    poller
        .register(sfd, 14, Interest::WRITABLE, Trigger::Level)
        .unwrap();
    expect_event(&mut poller, 14);
}

fn register_after_unregister_works(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, mut theirs) = socket_pair();
    let fd = ours.as_raw_fd();
    poller
        .register(fd, 15, Interest::READABLE, Trigger::Level)
        .unwrap();
    poller.unregister(fd).unwrap();
    poller
        .register(fd, 16, Interest::READABLE, Trigger::Level)
        .unwrap();
    theirs.write_all(b"x").unwrap();
    expect_event(&mut poller, 16);
    expect_no_event(&mut poller, 15, QUIET);
}

fn events_with_capacity_zero_still_reports(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (a, _a_peer) = socket_pair();
    let (b, _b_peer) = socket_pair();
    poller
        .register(a.as_raw_fd(), 17, Interest::WRITABLE, Trigger::Level)
        .unwrap();
    poller
        .register(b.as_raw_fd(), 18, Interest::WRITABLE, Trigger::Level)
        .unwrap();
    let mut events = Events::with_capacity(0);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let n = poller
            .poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        assert_eq!(n, 1, "[{backend}] capacity 0 is raised to 1: {events:?}");
        seen.push(events.iter().next().unwrap().key());
    }
    seen.sort();
    assert_eq!(seen, [17, 18], "[{backend}] both served, one per poll");
}

fn a_negative_fd_is_rejected(backend: Backend) {
    let mut poller = new_poller(backend);
    let err = poller
        .register(-1, 0, Interest::READABLE, Trigger::Level)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidFd { fd: -1 }),
        "[{backend}] {err:?}"
    );
    let err = poller
        .modify(-1, 0, Interest::READABLE, Trigger::Level)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidFd { fd: -1 }),
        "[{backend}] {err:?}"
    );
    let err = poller.unregister(-1).unwrap_err();
    assert!(
        matches!(err, Error::InvalidFd { fd: -1 }),
        "[{backend}] {err:?}"
    );
    // The poller still works.
    let mut events = Events::with_capacity(1);
    assert_eq!(poller.poll(&mut events, Some(Duration::ZERO)).unwrap(), 0);
}

/// Registers `reader`, has `send` make it readable, expects the event and
/// reads `expected` back with `recv`.
fn round_trip(
    backend: Backend,
    reader: RawFd,
    send: impl FnOnce(),
    recv: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
) {
    let mut poller: AnyPoller = new_poller(backend);
    poller
        .register(reader, 20, Interest::READABLE, Trigger::Level)
        .unwrap();
    expect_no_event(&mut poller, 20, Duration::from_millis(10));
    send();
    assert!(expect_event(&mut poller, 20).is_readable());
    let mut buf = [0; 16];
    let n = recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello", "[{backend}]");
    poller.unregister(reader).unwrap();
}

fn pipes_work(backend: Backend) {
    let _fds = fds_shared();
    let (read_end, write_end) = pipe();
    let mut reader = std::fs::File::from(read_end);
    let mut writer = std::fs::File::from(write_end);
    let fd = reader.as_raw_fd();
    round_trip(
        backend,
        fd,
        || writer.write_all(b"hello").unwrap(),
        |buf| reader.read(buf),
    );
}

fn tcp_works(backend: Backend) {
    let _fds = fds_shared();
    let (mut ours, mut theirs) = tcp_pair();
    let fd = ours.as_raw_fd();
    round_trip(
        backend,
        fd,
        || theirs.write_all(b"hello").unwrap(),
        |buf| ours.read(buf),
    );
}

fn udp_works(backend: Backend) {
    let _fds = fds_shared();
    let ours = UdpSocket::bind("127.0.0.1:0").unwrap();
    ours.set_nonblocking(true).unwrap();
    let theirs = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = ours.local_addr().unwrap();
    round_trip(
        backend,
        ours.as_raw_fd(),
        || assert_eq!(theirs.send_to(b"hello", to).unwrap(), 5),
        |buf| ours.recv(buf),
    );
}

fn unix_streams_work(backend: Backend) {
    let _fds = fds_shared();
    let (mut ours, mut theirs): (UnixStream, UnixStream) = socket_pair();
    let fd = ours.as_raw_fd();
    round_trip(
        backend,
        fd,
        || theirs.write_all(b"hello").unwrap(),
        |buf| ours.read(buf),
    );
}

fn unix_datagrams_work(backend: Backend) {
    let _fds = fds_shared();
    let (ours, theirs) = UnixDatagram::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    round_trip(
        backend,
        ours.as_raw_fd(),
        || assert_eq!(theirs.send(b"hello").unwrap(), 5),
        |buf| ours.recv(buf),
    );
}

/// docs/reliability.md#more-ready-descriptors-than-the-events-buffer: with more
/// ready descriptors than the `Events` buffer holds, every one is reported
/// within ⌈N/64⌉ + 1 polls (no starvation of the ones past the buffer). select
/// holds fds below 1024 only, so it gets 400 pairs; the others get 2000.
fn a_full_events_buffer_serves_every_fd_in_turn(backend: Backend) {
    let _fds = fds_exclusive();
    let pairs = if backend == Backend::Select {
        400
    } else {
        2000
    };
    let mut poller = new_poller(backend);
    let mut sockets = Vec::with_capacity(pairs);
    for key in 0..pairs {
        let (ours, mut theirs) = socket_pair();
        poller
            .register(ours.as_raw_fd(), key, Interest::READABLE, Trigger::Level)
            .unwrap();
        theirs.write_all(b"x").unwrap(); // ready, and never drained
        sockets.push((ours, theirs));
    }
    let mut events = Events::with_capacity(64);
    let mut served = vec![false; pairs];
    let mut left = pairs;
    let budget = pairs.div_ceil(64) + 1;
    let mut polls = 0;
    while left > 0 {
        assert!(
            polls < budget,
            "[{backend}] {left} of {pairs} ready fds never reported in {budget} polls of 64"
        );
        let n = poller
            .poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        assert!(n > 0 && n <= 64, "[{backend}] poll returned {n}");
        polls += 1;
        for event in &events {
            if !std::mem::replace(&mut served[event.key()], true) {
                left -= 1;
            }
        }
    }
}
