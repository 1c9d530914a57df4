//! `Reactor`: the fd-to-object map with generation-checked tokens, its `Waker`,
//! no stale event reaching a new object even when the slab slot and the fd
//! number are both reused within one batch
//! (docs/reliability.md#stale-events-after-reuse), and a million wakes without
//! a drain never blocking (docs/reliability.md#signal-storms). Every test runs
//! on select, poll and epoll.

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{fds_exclusive, fds_shared, socket_pair};
use reactor::{Backend, Error, Events, Interest, Reactor, Token};

backend_tests!(
    insert_get_modify_and_remove_work,
    remove_hands_the_object_back_open,
    a_stale_token_reaches_nothing,
    a_slot_and_fd_reused_in_one_batch_get_no_stale_event,
    a_waker_on_another_thread_wakes_a_blocked_poll,
    a_million_wakes_without_a_drain_never_block,
    a_refused_insert_hands_the_object_back,
);

fn reactor<T>(backend: Backend) -> Reactor<T> {
    Reactor::with_backend(backend).unwrap()
}

/// Polls until an event for `token` arrives; fails after 5 s.
#[track_caller]
fn expect_token<T>(reactor: &mut Reactor<T>, token: Token) -> reactor::Event {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut events = Events::with_capacity(16);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "[{}] no event for {token:?}",
            reactor.backend_name()
        );
        reactor.poll(&mut events, Some(left)).unwrap();
        if let Some(event) = events.iter().find(|e| e.token() == token) {
            return *event;
        }
    }
}

fn insert_get_modify_and_remove_work(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let (ours, mut theirs) = socket_pair();
    let fd = ours.as_raw_fd();
    let token = reactor.insert(ours, Interest::READABLE).unwrap();
    assert_eq!(reactor.len(), 1);
    assert!(reactor.contains(token));
    assert_eq!(reactor.get(token).unwrap().as_raw_fd(), fd);

    theirs.write_all(b"ab").unwrap();
    assert!(expect_token(&mut reactor, token).is_readable());
    let mut buf = [0; 2];
    reactor
        .get_mut(token)
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    assert_eq!(&buf, b"ab");

    reactor.modify(token, Interest::WRITABLE).unwrap();
    let event = expect_token(&mut reactor, token);
    assert!(
        event.is_writable() && !event.is_readable(),
        "[{backend}] {event:?}"
    );

    let object = reactor.remove(token).unwrap();
    assert_eq!(object.as_raw_fd(), fd);
    assert!(reactor.is_empty());
}

fn remove_hands_the_object_back_open(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let (ours, mut theirs) = socket_pair();
    let token = reactor.insert(ours, Interest::READABLE).unwrap();
    let mut ours = reactor.remove(token).unwrap();
    // Still open and usable: a round trip through it.
    ours.write_all(b"back").unwrap();
    let mut buf = [0; 4];
    theirs.set_nonblocking(false).unwrap();
    theirs.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"back");
    // And no longer watched.
    theirs.write_all(b"x").unwrap();
    let mut events = Events::with_capacity(4);
    reactor
        .poll(&mut events, Some(Duration::from_millis(50)))
        .unwrap();
    assert!(events.is_empty(), "[{backend}] {events:?}");
}

fn a_stale_token_reaches_nothing(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let (a, _a_peer) = socket_pair();
    let (b, _b_peer) = socket_pair();
    let old = reactor.insert(a, Interest::READABLE).unwrap();
    reactor.remove(old).unwrap();
    let new = reactor.insert(b, Interest::READABLE).unwrap();
    assert_ne!(old, new, "[{backend}] a reused slot gets a new generation");
    assert!(reactor.get(old).is_none());
    assert!(reactor.get_mut(old).is_none());
    assert!(!reactor.contains(old));
    assert!(matches!(
        reactor.modify(old, Interest::WRITABLE),
        Err(Error::StaleToken { .. })
    ));
    assert!(matches!(reactor.remove(old), Err(Error::StaleToken { .. })));
    // The new object is untouched by all of that.
    assert!(reactor.get(new).is_some());
    assert_eq!(reactor.len(), 1);
}

/// docs/reliability.md#stale-events-after-reuse, step by step: A and B
/// registered, both peers written, B's peer closed (so B's event carries HUP);
/// one `poll` returns both; A's handler removes and drops B, then makes C with
/// `socketpair()` (lowest free fd: B's) and inserts it (the slab reuses B's
/// slot); the batch goes on. B's event must not reach C.
fn a_slot_and_fd_reused_in_one_batch_get_no_stale_event(backend: Backend) {
    // Exclusive: another thread must not take B's fd number in between.
    let _fds = fds_exclusive();
    let mut reactor = reactor::<UnixStream>(backend);
    let (a, mut a_peer) = socket_pair();
    let (b, mut b_peer) = socket_pair();
    let b_fd = b.as_raw_fd();
    assert!(a.as_raw_fd() < b_fd);
    let ta = reactor.insert(a, Interest::READABLE).unwrap();
    let tb = reactor.insert(b, Interest::READABLE).unwrap();
    // A first, so that every backend lists A's event before B's (select
    // scans by fd, poll by registration, epoll by arrival).
    a_peer.write_all(b"a").unwrap();
    b_peer.write_all(b"b").unwrap();
    drop(b_peer);

    let mut events = Events::with_capacity(16);
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "[{backend}] A and B not in one batch: {events:?}"
        );
        reactor
            .poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
    }
    let keys: Vec<Token> = events.iter().map(|e| e.token()).collect();
    assert_eq!(
        keys,
        [ta, tb],
        "[{backend}] the batch must hold A's event, then B's"
    );

    let mut tc = None;
    let mut c_peer = None;
    let mut delivered = Vec::new();
    for event in &events {
        let token = event.token();
        let Some(object) = reactor.get_mut(token) else {
            continue; // stale: its object is gone
        };
        delivered.push((token, *event));
        if token == ta {
            let mut buf = [0; 1];
            object.read_exact(&mut buf).unwrap();
            // A's handler: close B, open C on B's fd and B's slot.
            drop(reactor.remove(tb).unwrap());
            let (x, y) = socket_pair();
            let (c, peer) = if x.as_raw_fd() == b_fd {
                (x, y)
            } else {
                (y, x)
            };
            assert_eq!(
                c.as_raw_fd(),
                b_fd,
                "[{backend}] C did not get B's fd number"
            );
            let token_c = reactor.insert(c, Interest::READABLE).unwrap();
            assert_eq!(
                token_c.key() & 0xffff_ffff,
                tb.key() & 0xffff_ffff,
                "[{backend}] slot not reused"
            );
            assert_ne!(token_c, tb);
            tc = Some(token_c);
            c_peer = Some(peer);
        }
    }
    let tc = tc.expect("A's handler ran");
    assert_eq!(
        delivered.len(),
        1,
        "[{backend}] only A's event is live: {delivered:?}"
    );
    assert_eq!(delivered[0].0, ta);

    // C is open and quiet: no HUP, no read event, and it still works.
    reactor
        .poll(&mut events, Some(Duration::from_millis(50)))
        .unwrap();
    assert!(
        events.iter().all(|e| e.token() != tc && e.token() != tb),
        "[{backend}] {events:?}"
    );
    let mut c_peer = c_peer.unwrap();
    c_peer.write_all(b"c").unwrap();
    let event = expect_token(&mut reactor, tc);
    assert!(
        !event.is_hangup() && !event.is_error(),
        "[{backend}] {event:?}"
    );
    let mut buf = [0; 1];
    reactor.get_mut(tc).unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"c");
}

fn a_waker_on_another_thread_wakes_a_blocked_poll(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let (ours, _theirs) = socket_pair();
    reactor.insert(ours, Interest::READABLE).unwrap();
    let waker = reactor.waker().unwrap();
    let start = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wake().unwrap();
    });
    let mut events = Events::with_capacity(8);
    let n = reactor
        .poll(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    let took = start.elapsed();
    thread.join().unwrap();
    assert_eq!(
        n, 0,
        "[{backend}] the wake itself is not reported: {events:?}"
    );
    assert!(
        took >= Duration::from_millis(40),
        "[{backend}] woke too early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "[{backend}] not woken: {took:?}"
    );
    // Drained: the next poll blocks again for its whole timeout.
    let start = Instant::now();
    reactor
        .poll(&mut events, Some(Duration::from_millis(50)))
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "[{backend}] wake not drained"
    );
}

/// docs/reliability.md#signal-storms: 10⁶ wakes with no `poll` in between never
/// block (the eventfd counter just grows), then one `poll` returns at once and
/// drains them all.
fn a_million_wakes_without_a_drain_never_block(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let waker = reactor.waker().unwrap();
    let start = Instant::now();
    let thread = std::thread::spawn(move || {
        for _ in 0..1_000_000 {
            waker.wake().unwrap();
        }
    });
    thread.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "[{backend}] {:?}",
        start.elapsed()
    );
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    reactor
        .poll(&mut events, Some(Duration::from_secs(5)))
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "[{backend}] pending wakes did not end the wait"
    );
    let start = Instant::now();
    reactor
        .poll(&mut events, Some(Duration::from_millis(50)))
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "[{backend}] a million wakes not drained by one read"
    );
}

fn a_refused_insert_hands_the_object_back(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<Rc<UnixStream>>(backend);
    let (ours, mut theirs) = socket_pair();
    let ours = Rc::new(ours);
    let token = reactor
        .insert(Rc::clone(&ours), Interest::READABLE)
        .unwrap();
    let err = reactor
        .insert(Rc::clone(&ours), Interest::WRITABLE)
        .unwrap_err();
    assert!(
        matches!(err.error, Error::FdInUse { .. }),
        "[{backend}] {err:?}"
    );
    assert!(
        Rc::ptr_eq(&err.object, &ours),
        "[{backend}] not the same object back"
    );
    assert_eq!(
        reactor.len(),
        1,
        "[{backend}] a refused insert takes no slot"
    );
    drop(err);
    // The first registration is unchanged.
    theirs.write_all(b"x").unwrap();
    let event = expect_token(&mut reactor, token);
    assert!(!event.is_writable(), "[{backend}] {event:?}");
    let mut buf = [0; 1];
    match (&*ours).read(&mut buf) {
        Ok(1) => {}
        other => panic!("[{backend}] read: {other:?}"),
    }
    assert!(matches!((&*ours).read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock));
}

/// select's limit comes back the same way: the object, and an error that
/// says what to do.
#[test]
fn select_refuses_a_high_fd_and_hands_it_back() {
    let _fds = fds_shared();
    let mut reactor = reactor::<std::os::fd::OwnedFd>(Backend::Select);
    let (ours, _theirs) = socket_pair();
    let high = common::dup_at_least(&ours, 1500);
    let fd = high.as_raw_fd();
    let err = reactor.insert(high, Interest::READABLE).unwrap_err();
    assert!(
        matches!(err.error, Error::FdTooLarge { fd: f, limit: 1024 } if f == fd),
        "{err:?}"
    );
    assert_eq!(err.object.as_raw_fd(), fd);
    // SAFETY: F_GETFD only reads the descriptor table.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_ne!(flags, -1, "the fd came back open");
    assert!(reactor.is_empty());
}
