//! The edges of the library (docs/reliability.md): descriptors past
//! select's limit (and thousands of fds on poll and epoll), timeout edge
//! values, no spin on a descriptor closed while registered, spurious
//! readiness, half-close and close-on-exec descriptors. The zero timeout
//! is the contract test `zero_timeout_returns_at_once` in
//! `tests/poller_contract.rs`.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{
    dup_at_least, expect_event, fds_exclusive, fds_shared, new_poller, pipe, socket_pair, tcp_pair,
};
use reactor::{
    Backend, EpollPoller, Error, Event, Events, Interest, Poller, Reactor, Signals, Trigger,
};

backend_tests!(
    sub_millisecond_timeouts_round_up_instead_of_spinning,
    a_duration_max_timeout_blocks_until_woken,
    a_closed_registered_fd_is_reported_at_most_once_and_never_spins,
    a_spurious_readable_event_reads_would_block_and_keeps_the_connection,
    a_half_closed_tcp_peer_is_read_to_the_end_and_still_written_to,
    a_half_closed_unix_peer_is_read_to_the_end_and_still_written_to,
);

// ------------------------------------------ descriptors past select's limit

/// docs/reliability.md#descriptors-past-selects-limit: fd 1500 on select is
/// refused before `FD_SET` could write past the bitmap, with a message that
/// says what to do.
#[test]
fn select_refuses_fd_1500_and_names_poll_and_epoll() {
    let _fds = fds_shared();
    let mut poller = new_poller(Backend::Select);
    let (ours, _theirs) = socket_pair();
    let high = dup_at_least(&ours, 1500);
    let fd = high.as_raw_fd();
    let err = poller
        .register(fd, 1, Interest::READABLE, Trigger::Level)
        .unwrap_err();
    assert!(
        matches!(err, Error::FdTooLarge { fd: f, limit: 1024 } if f == fd),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("use the poll or epoll backend"),
        "{message}"
    );
    assert!(message.contains(&fd.to_string()), "{message}");
    // Refused means nothing changed: the poller still polls.
    let mut events = Events::with_capacity(4);
    assert_eq!(poller.poll(&mut events, Some(Duration::ZERO)).unwrap(), 0);
}

/// The last bit of the bitmap, fd 1023, works.
#[test]
fn select_serves_fd_1023() {
    let _fds = fds_exclusive();
    let mut poller = new_poller(Backend::Select);
    let (ours, mut theirs) = socket_pair();
    let last = dup_at_least(&ours, 1023);
    assert_eq!(
        last.as_raw_fd(),
        1023,
        "fd 1023 is taken; cannot test the boundary"
    );
    poller
        .register(1023, 2, Interest::READABLE, Trigger::Level)
        .unwrap();
    theirs.write_all(b"x").unwrap();
    assert!(expect_event(&mut poller, 2).is_readable());
}

/// 1100 distinct fds on select: those ≥ 1024 refused cleanly, every other
/// one reported.
#[test]
fn select_with_1100_fds_refuses_those_past_1023_and_serves_the_rest() {
    let _fds = fds_exclusive();
    let mut poller = new_poller(Backend::Select);
    let pairs: Vec<_> = (0..550).map(|_| socket_pair()).collect();
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    for (a, b) in &pairs {
        for fd in [a.as_raw_fd(), b.as_raw_fd()] {
            match poller.register(fd, fd as usize, Interest::WRITABLE, Trigger::Level) {
                Ok(()) => assert!(fd < 1024 && accepted.insert(fd as usize)),
                Err(Error::FdTooLarge { fd: f, limit: 1024 }) if f == fd && fd >= 1024 => {
                    refused += 1
                }
                Err(err) => panic!("fd {fd}: {err:?}"),
            }
        }
    }
    assert!(
        refused > 0 && accepted.len() + refused == 1100,
        "{refused} refused"
    );
    // Every accepted socket is writable, so all must be reported.
    let mut events = Events::with_capacity(2048);
    poller
        .poll(&mut events, Some(Duration::from_secs(1)))
        .unwrap();
    let reported: BTreeSet<usize> = events.iter().map(|e| e.key()).collect();
    assert_eq!(reported, accepted);
}

fn serves_fd_1500(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, mut theirs) = socket_pair();
    let high = dup_at_least(&ours, 1500);
    poller
        .register(high.as_raw_fd(), 3, Interest::READABLE, Trigger::Level)
        .unwrap();
    theirs.write_all(b"x").unwrap();
    assert!(expect_event(&mut poller, 3).is_readable(), "[{backend}]");
}

#[test]
fn poll_serves_fd_1500() {
    serves_fd_1500(Backend::Poll);
}

#[test]
fn epoll_serves_fd_1500() {
    serves_fd_1500(Backend::Epoll);
}

#[test]
fn uring_serves_fd_1500() {
    serves_fd_1500(Backend::Uring);
}

/// 5000 registered sockets (2500 pairs, both ends), one made ready: exactly
/// that one is reported.
fn five_thousand_sockets_one_ready(backend: Backend) {
    let _fds = fds_exclusive();
    let mut poller = new_poller(backend);
    let pairs: Vec<(UnixStream, UnixStream)> = (0..2500).map(|_| socket_pair()).collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        poller
            .register(a.as_raw_fd(), 2 * i, Interest::READABLE, Trigger::Level)
            .unwrap();
        poller
            .register(b.as_raw_fd(), 2 * i + 1, Interest::READABLE, Trigger::Level)
            .unwrap();
    }
    assert!(
        pairs.last().unwrap().1.as_raw_fd() > 5000,
        "fds past 5000 are in the set"
    );
    (&pairs[2222].1).write_all(b"x").unwrap();
    let mut events = Events::with_capacity(64);
    let n = poller
        .poll(&mut events, Some(Duration::from_secs(5)))
        .unwrap();
    let keys: Vec<usize> = events.iter().map(|e| e.key()).collect();
    assert_eq!((n, keys), (1, vec![2 * 2222]), "[{backend}]");
}

#[test]
fn poll_serves_5000_sockets() {
    five_thousand_sockets_one_ready(Backend::Poll);
}

#[test]
fn epoll_serves_5000_sockets() {
    five_thousand_sockets_one_ready(Backend::Epoll);
}

#[test]
fn uring_serves_5000_sockets() {
    five_thousand_sockets_one_ready(Backend::Uring);
}

// ---------------------------------------------------- timeout edge values

/// docs/reliability.md#timeout-edge-values: 100 µs is rounded *up* to 1 ms, so
/// 50 ms of 100 µs polls is about 50 waits, not thousands of zero-millisecond
/// ones.
fn sub_millisecond_timeouts_round_up_instead_of_spinning(backend: Backend) {
    let _fds = fds_shared();
    let mut poller = new_poller(backend);
    let (ours, _theirs) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 1, Interest::READABLE, Trigger::Level)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let start = Instant::now();
    let mut waits = 0;
    while start.elapsed() < Duration::from_millis(50) {
        poller
            .poll(&mut events, Some(Duration::from_micros(100)))
            .unwrap();
        waits += 1;
    }
    assert!(
        waits <= 60,
        "[{backend}] {waits} waits in 50 ms: sub-ms timeouts spin"
    );
}

/// `Duration::MAX` neither overflows into an error nor returns early; a
/// waker at 50 ms ends it.
fn a_duration_max_timeout_blocks_until_woken(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor: Reactor<UnixStream> = Reactor::with_backend(backend).unwrap();
    let waker = reactor.waker().unwrap();
    let start = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wake().unwrap();
    });
    let mut events = Events::with_capacity(4);
    reactor.poll(&mut events, Some(Duration::MAX)).unwrap();
    let took = start.elapsed();
    thread.join().unwrap();
    assert!(
        took >= Duration::from_millis(40),
        "[{backend}] returned early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "[{backend}] {took:?}");
}

// ------------------------------------------------ closed while registered

/// Polls with a 50 ms timeout for 300 ms; returns (iterations, events for `key`).
fn watch(poller: &mut impl Poller, key: usize) -> (usize, Vec<Event>) {
    let mut events = Events::with_capacity(8);
    let mut seen = Vec::new();
    let mut iterations = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        iterations += 1;
        assert!(iterations < 1000, "[{}] spinning", poller.name());
        poller
            .poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("[{}] poll failed: {e}", poller.name()));
        seen.extend(events.iter().filter(|e| e.key() == key));
    }
    (iterations, seen)
}

/// docs/reliability.md#closed-while-registered, on poll, epoll and select: a
/// pipe's read end, ready with data, closed while registered. poll reports
/// `POLLNVAL` once as an error and disarms it; select reports its probe's
/// finding once; epoll forgot the fd with its last reference and reports
/// nothing. None of them spins: 300 ms of 50 ms polls is at most ~8 waits.
fn a_closed_registered_fd_is_reported_at_most_once_and_never_spins(backend: Backend) {
    // Exclusive: no other thread may reuse the closed fd's number.
    let _fds = fds_exclusive();
    let mut poller = new_poller(backend);
    let (read_end, write_end) = pipe();
    let fd = read_end.as_raw_fd();
    poller
        .register(fd, 1, Interest::READABLE, Trigger::Level)
        .unwrap();
    std::fs::File::from(write_end.try_clone().unwrap())
        .write_all(b"ready")
        .unwrap();
    drop(read_end);

    let (iterations, seen) = watch(&mut poller, 1);
    assert!(
        iterations <= 8,
        "[{backend}] {iterations} waits in 300 ms: spinning on a closed fd"
    );
    match backend {
        Backend::Epoll => assert!(seen.is_empty(), "[epoll] {seen:?}"),
        _ => {
            assert_eq!(seen.len(), 1, "[{backend}] exactly one report: {seen:?}");
            assert!(
                seen[0].is_error() && seen[0].is_readable(),
                "[{backend}] {:?}",
                seen[0]
            );
        }
    }
    // The registration can still be removed (epoll: the kernel already did).
    match poller.unregister(fd) {
        Ok(()) => assert_ne!(backend, Backend::Epoll),
        Err(err) => assert_eq!(
            (backend, err.raw_os_error()),
            (Backend::Epoll, Some(libc::EBADF)),
            "{err}"
        ),
    }
}

/// docs/reliability.md#closed-while-registered: on select a closed fd makes the
/// whole call fail with `EBADF`. The backend reports the closed fd once and
/// keeps serving a live one beside it.
#[test]
fn select_reports_a_closed_fd_once_and_keeps_serving_a_live_one() {
    let _fds = fds_exclusive();
    let mut poller = new_poller(Backend::Select);
    let (read_end, _write_end) = pipe();
    let closed_fd = read_end.as_raw_fd();
    let (mut live, mut live_peer) = socket_pair();
    poller
        .register(closed_fd, 1, Interest::READABLE, Trigger::Level)
        .unwrap();
    poller
        .register(live.as_raw_fd(), 2, Interest::READABLE, Trigger::Level)
        .unwrap();
    drop(read_end);

    let mut events = Events::with_capacity(8);
    let mut closed_reports = 0;
    for round in 0..5 {
        live_peer.write_all(&[round]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: live fd not served"
            );
            poller
                .poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            closed_reports += events.iter().filter(|e| e.key() == 1).count();
            if events.iter().any(|e| e.key() == 2) {
                break;
            }
        }
        let mut byte = [0; 1];
        live.read_exact(&mut byte).unwrap();
        assert_eq!(byte[0], round);
    }
    assert_eq!(closed_reports, 1, "the closed fd is reported exactly once");
    let (iterations, seen) = watch(&mut poller, 1);
    assert!(
        seen.is_empty() && iterations <= 8,
        "{iterations} waits, {seen:?}"
    );
}

// ---------------------------------------------------- spurious readiness

/// What a handler made of a readable event.
#[derive(Debug, PartialEq)]
enum Outcome {
    Data(Vec<u8>),
    Spurious,
    Closed,
}

/// A handler written the way the crate's examples are: readiness is a
/// hint, `WouldBlock` means "nothing after all".
fn on_readable(stream: &mut impl Read) -> Outcome {
    let mut buf = [0; 64];
    match stream.read(&mut buf) {
        Ok(0) => Outcome::Closed,
        Ok(n) => Outcome::Data(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Outcome::Spurious,
        Err(_) => Outcome::Closed,
    }
}

/// docs/reliability.md#spurious-readiness: a readable event for an empty socket
/// (injected here, as a spurious wake-up would be) reads `WouldBlock` and the
/// connection stays; real data afterwards still arrives.
fn a_spurious_readable_event_reads_would_block_and_keeps_the_connection(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = Reactor::with_backend(backend).unwrap();
    let (ours, mut theirs) = tcp_pair();
    let token = reactor.insert(ours, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    assert_eq!(reactor.poll(&mut events, Some(Duration::ZERO)).unwrap(), 0);
    events.push(Event::new(token.key(), true, false));
    for event in &events {
        let stream = reactor.get_mut(event.token()).unwrap();
        assert_eq!(on_readable(stream), Outcome::Spurious, "[{backend}]");
    }
    assert!(
        reactor.contains(token),
        "[{backend}] connection dropped on a spurious event"
    );
    theirs.write_all(b"real").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "[{backend}] no real event");
        reactor
            .poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        if events.iter().any(|e| e.token() == token) {
            break;
        }
    }
    let stream = reactor.get_mut(token).unwrap();
    assert_eq!(
        on_readable(stream),
        Outcome::Data(b"real".to_vec()),
        "[{backend}]"
    );
}

// ------------------------------------------------------------ half-close

const HALF_CLOSE_BYTES: usize = 100 * 1024;

/// docs/reliability.md#half-close: the peer sends 100 KiB and shuts down its
/// writing half. The reader takes `read_closed` as a hint only: it reads every
/// byte, then end of file, and can still write its answer back.
fn half_close<S>(backend: Backend, mut ours: S, mut theirs: S)
where
    S: Read + Write + AsRawFd + Send + 'static,
{
    let peer = std::thread::spawn(move || {
        let data: Vec<u8> = (0..HALF_CLOSE_BYTES).map(|i| (i % 251) as u8).collect();
        theirs.write_all(&data).unwrap();
        // SAFETY: shutdown(2) on a socket this thread owns.
        let ret = unsafe { libc::shutdown(theirs.as_raw_fd(), libc::SHUT_WR) };
        assert_eq!(ret, 0);
        let mut answer = Vec::new();
        theirs.read_to_end(&mut answer).unwrap();
        answer
    });
    let mut poller = new_poller(backend);
    poller
        .register(ours.as_raw_fd(), 1, Interest::READABLE, Trigger::Level)
        .unwrap();
    let mut received = Vec::with_capacity(HALF_CLOSE_BYTES);
    let mut events = Events::with_capacity(4);
    let deadline = Instant::now() + Duration::from_secs(10);
    'outer: loop {
        assert!(
            Instant::now() < deadline,
            "[{backend}] only {} bytes",
            received.len()
        );
        poller
            .poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        if events.is_empty() {
            continue;
        }
        let mut buf = [0; 16 * 1024];
        loop {
            match ours.read(&mut buf) {
                Ok(0) => break 'outer,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("[{backend}] read: {e}"),
            }
        }
    }
    assert_eq!(
        received.len(),
        HALF_CLOSE_BYTES,
        "[{backend}] bytes before EOF"
    );
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8),
        "[{backend}] data corrupted"
    );
    poller.unregister(ours.as_raw_fd()).unwrap();
    ours.write_all(format!("got {}", received.len()).as_bytes())
        .unwrap();
    drop(ours);
    let answer = peer.join().unwrap();
    assert_eq!(
        answer,
        format!("got {HALF_CLOSE_BYTES}").as_bytes(),
        "[{backend}]"
    );
}

fn a_half_closed_tcp_peer_is_read_to_the_end_and_still_written_to(backend: Backend) {
    let _fds = fds_shared();
    let (ours, theirs) = tcp_pair();
    theirs.set_nonblocking(false).unwrap();
    half_close(backend, ours, theirs);
}

fn a_half_closed_unix_peer_is_read_to_the_end_and_still_written_to(backend: Backend) {
    let _fds = fds_shared();
    let (ours, theirs) = socket_pair();
    theirs.set_nonblocking(false).unwrap();
    half_close(backend, ours, theirs);
}

// ---------------------------------------------- close-on-exec descriptors

fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert_ne!(
        flags,
        -1,
        "fcntl(F_GETFD): {}",
        std::io::Error::last_os_error()
    );
    flags & libc::FD_CLOEXEC != 0
}

/// The descriptors this process has open, from `/proc/self/fd`.
fn open_fds() -> BTreeSet<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// docs/reliability.md#close-on-exec-descriptors: every descriptor the library
/// creates for itself — the epoll instance, the waker's eventfd, both ends of
/// the signal pipe — is close-on-exec, and none of them reaches an exec'd
/// child.
#[test]
fn the_library_s_own_descriptors_are_close_on_exec() {
    let _fds = fds_exclusive();
    let before = open_fds();
    let epoll = EpollPoller::new().unwrap();
    assert!(is_cloexec(epoll.as_fd()), "epoll fd");
    let mut reactor: Reactor<UnixStream> = Reactor::with_backend(Backend::Poll).unwrap();
    let waker = reactor.waker().unwrap();
    assert!(is_cloexec(waker.as_fd()), "waker eventfd");
    let signals = Signals::new(&[libc::SIGUSR2]).unwrap();
    assert!(is_cloexec(signals.as_fd()), "signal pipe read end");
    // The write end is not exposed: find every new descriptor instead.
    let created: Vec<RawFd> = open_fds().difference(&before).copied().collect();
    assert!(
        created.len() >= 4,
        "epoll, eventfd and two pipe ends: {created:?}"
    );
    for &fd in &created {
        // The read_dir handle of open_fds() is gone by now; skip a vanished fd.
        // SAFETY: F_GETFD only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(
            flags == -1 || flags & libc::FD_CLOEXEC != 0,
            "fd {fd} is not close-on-exec"
        );
    }
    // And the proof: an exec'd child sees none of them.
    let out = std::process::Command::new("ls")
        .arg("/proc/self/fd")
        .output()
        .unwrap();
    let inherited: BTreeSet<RawFd> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    for fd in &created {
        assert!(
            !inherited.contains(fd),
            "fd {fd} leaked into a child: {inherited:?}"
        );
    }
    drop((epoll, waker, signals, reactor));
}
