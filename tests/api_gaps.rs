//! The API a Rust engineer reaches for first, one test per gap it closed:
//! two objects borrowed at once, pause without unregistering (and no system
//! call for a `modify` that changes nothing), a token reserved before its
//! object exists, timers that follow their objects, a wake reported as an
//! event, `std` types in and `libc` types out, and a descriptor closed
//! behind the map's back. Every reactor test runs on select, poll and epoll.

#[macro_use]
mod common;

use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{fds_exclusive, fds_shared, socket_pair};
use reactor::{
    AnyPoller, Backend, Error, Events, Interest, Poller, Reactor, Signal, Signals, TimerId, Token,
    Trigger,
};

backend_tests!(
    two_objects_borrowed_at_once,
    a_paused_object_stays_registered_and_quiet,
    a_modify_that_changes_nothing_makes_no_system_call,
    a_token_reserved_before_its_object_exists,
    remove_cancels_the_objects_timers,
    remove_drops_a_fired_but_untaken_timer,
    an_owner_less_timer_carries_a_value,
    reset_works_on_a_fired_but_untaken_timer,
    a_wake_is_an_event_with_its_own_token_when_asked,
    insert_errors_convert_to_io_errors,
    remove_after_the_fd_was_closed_behind_the_maps_back,
    an_fd_reused_behind_the_maps_back_loses_no_registration,
);

fn reactor<T>(backend: Backend) -> Reactor<T> {
    Reactor::with_backend(backend).unwrap()
}

/// The tokens of the events one `poll` of at most `wait` reports.
fn poll_tokens<T, P: Poller>(reactor: &mut Reactor<T, P>, wait: Duration) -> Vec<Token> {
    let mut events = Events::with_capacity(16);
    reactor.poll(&mut events, Some(wait)).unwrap();
    events.iter().map(|e| e.token()).collect()
}

/// Polls until an event for `token` arrives; fails after 5 s.
#[track_caller]
fn expect_token<T, P: Poller>(reactor: &mut Reactor<T, P>, token: Token) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !poll_tokens(reactor, deadline.saturating_duration_since(Instant::now())).contains(&token)
    {
        assert!(
            Instant::now() < deadline,
            "[{}] no event for {token:?}",
            reactor.backend_name()
        );
    }
}

/// Polls until a timer fires (object-owned or owner-less); fails after 5 s.
#[track_caller]
fn poll_until_a_timer_fires<T>(reactor: &mut Reactor<T>) -> (Option<Token>, Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        poll_tokens(reactor, Duration::from_millis(100));
        let object = reactor.next_expired().map(|(_, t)| t);
        let value = reactor.next_expired_value().map(|(_, v)| v);
        if object.is_some() || value.is_some() {
            return (object, value);
        }
    }
    panic!("[{}] no timer fired within 5 s", reactor.backend_name());
}

fn two_objects_borrowed_at_once(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let (a, mut a_peer) = socket_pair();
    let (b, mut b_peer) = socket_pair();
    let ta = reactor.insert(a, Interest::READABLE).unwrap();
    let tb = reactor.insert(b, Interest::READABLE).unwrap();

    // Forward from a to b with both borrowed: no scratch copy, no second lookup.
    a_peer.write_all(b"through").unwrap();
    expect_token(&mut reactor, ta);
    let [a, b] = reactor.get_disjoint_mut([ta, tb]).expect("both live");
    let mut buf = [0; 16];
    let n = a.read(&mut buf).unwrap();
    b.write_all(&buf[..n]).unwrap();
    let mut got = [0; 7];
    b_peer.set_nonblocking(false).unwrap();
    b_peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"through");

    // The same token twice would alias: refused, like std's.
    assert!(reactor.get_disjoint_mut([ta, ta]).is_none());
    // A stale token is refused even when its slot is reused.
    reactor.remove(tb).unwrap();
    let (c, _c_peer) = socket_pair();
    let tc = reactor.insert(c, Interest::READABLE).unwrap();
    assert!(reactor.get_disjoint_mut([ta, tb]).is_none());
    assert!(reactor.get_disjoint_mut([ta, tc]).is_some());
    assert!(reactor.get_disjoint_mut::<0>([]).is_some());
}

fn a_paused_object_stays_registered_and_quiet(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let (a, mut peer) = socket_pair();
    let token = reactor.insert(a, Interest::READABLE).unwrap();
    peer.write_all(b"x").unwrap();
    expect_token(&mut reactor, token);

    reactor.pause(token).unwrap();
    assert!(reactor.is_paused(token));
    // Readable, and even hung up: a paused object reports nothing.
    drop(peer);
    assert!(poll_tokens(&mut reactor, Duration::from_millis(50)).is_empty());
    assert!(reactor.get(token).is_some(), "still in the map");
    reactor.pause(token).unwrap(); // pausing twice is harmless

    reactor.resume(token).unwrap();
    assert!(!reactor.is_paused(token));
    expect_token(&mut reactor, token);

    // modify on a paused object arms it with the new interest.
    reactor.pause(token).unwrap();
    reactor
        .modify(token, Interest::READABLE | Interest::WRITABLE)
        .unwrap();
    assert!(!reactor.is_paused(token));
    expect_token(&mut reactor, token);
    // A paused object is removed cleanly.
    reactor.pause(token).unwrap();
    reactor.remove(token).unwrap();
    assert!(matches!(
        reactor.pause(token),
        Err(Error::StaleToken { .. })
    ));
}

/// A poller that counts the calls that reach the backend.
struct Counting {
    inner: AnyPoller,
    calls: Rc<Cell<usize>>,
}

impl Poller for Counting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn register(&mut self, fd: RawFd, key: usize, i: Interest, t: Trigger) -> reactor::Result<()> {
        self.calls.set(self.calls.get() + 1);
        self.inner.register(fd, key, i, t)
    }
    fn modify(&mut self, fd: RawFd, key: usize, i: Interest, t: Trigger) -> reactor::Result<()> {
        self.calls.set(self.calls.get() + 1);
        self.inner.modify(fd, key, i, t)
    }
    fn unregister(&mut self, fd: RawFd) -> reactor::Result<()> {
        self.calls.set(self.calls.get() + 1);
        self.inner.unregister(fd)
    }
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> reactor::Result<usize> {
        self.inner.poll(events, timeout)
    }
}

fn a_modify_that_changes_nothing_makes_no_system_call(backend: Backend) {
    let _fds = fds_shared();
    let calls = Rc::new(Cell::new(0));
    let inner = backend.new_poller().unwrap();
    let mut reactor = Reactor::with_poller(Counting {
        inner,
        calls: Rc::clone(&calls),
    });
    let (a, _peer) = socket_pair();
    let token = reactor.insert(a, Interest::READABLE).unwrap();
    assert_eq!(calls.get(), 1, "insert registers");
    reactor.modify(token, Interest::READABLE).unwrap();
    reactor
        .modify_with(token, Interest::READABLE, Trigger::Level)
        .unwrap();
    assert_eq!(
        calls.get(),
        1,
        "modify to the same interest reached the poller"
    );
    reactor.modify(token, Interest::WRITABLE).unwrap();
    assert_eq!(calls.get(), 2, "a real change reaches the poller");
    reactor.modify(token, Interest::WRITABLE).unwrap();
    assert_eq!(calls.get(), 2);
    reactor.pause(token).unwrap();
    reactor.pause(token).unwrap();
    assert_eq!(calls.get(), 3, "pausing twice costs one call");
    reactor.resume(token).unwrap();
    reactor.resume(token).unwrap();
    assert_eq!(calls.get(), 4, "resuming twice costs one call");
    // A oneshot re-arm is a change every time: it must reach the poller.
    reactor
        .modify_with(token, Interest::WRITABLE, Trigger::Oneshot)
        .unwrap();
    reactor
        .modify_with(token, Interest::WRITABLE, Trigger::Oneshot)
        .unwrap();
    assert_eq!(calls.get(), 6, "a oneshot re-arm was swallowed");
    // watch(None) is pause, watch(Some) is modify: the same bookkeeping.
    reactor.watch(token, None).unwrap();
    reactor
        .watch(token, Interest::from_flags(false, false))
        .unwrap();
    assert_eq!(calls.get(), 7, "watch(None) twice costs one call");
    reactor.watch(token, Some(Interest::READABLE)).unwrap();
    reactor.watch(token, Some(Interest::READABLE)).unwrap();
    assert_eq!(calls.get(), 8);
}

fn a_token_reserved_before_its_object_exists(backend: Backend) {
    let _fds = fds_shared();
    /// An object that knows its own token and its partner's.
    struct Half {
        stream: UnixStream,
        me: Token,
        partner: Token,
    }
    impl AsFd for Half {
        fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            self.stream.as_fd()
        }
    }
    let mut reactor = reactor::<Half>(backend);
    let (a, b) = socket_pair();
    let (ta, tb) = (reactor.reserve(), reactor.reserve());
    assert_ne!(ta, tb);
    assert!(
        reactor.get(ta).is_none(),
        "a reserved token names no object yet"
    );
    let half = |stream, me, partner| Half {
        stream,
        me,
        partner,
    };
    reactor
        .insert_at(ta, half(a, ta, tb), Interest::WRITABLE)
        .unwrap();
    reactor
        .insert_at(tb, half(b, tb, ta), Interest::WRITABLE)
        .unwrap();
    assert_eq!(reactor.get(ta).unwrap().partner, tb);
    assert_eq!(reactor.get(tb).unwrap().me, tb);
    expect_token(&mut reactor, ta);
    expect_token(&mut reactor, tb);
    // Filling a token twice, or a token never reserved, is refused.
    let (c, _d) = socket_pair();
    let err = reactor
        .insert_at(ta, half(c, ta, tb), Interest::READABLE)
        .unwrap_err();
    assert!(
        matches!(err.error, Error::StaleToken { .. }),
        "{:?}",
        err.error
    );
    // An unused reservation is given back with remove.
    let spare = reactor.reserve();
    assert_eq!(reactor.len(), 2, "a reservation is not an object");
    assert!(reactor.remove(spare).is_err(), "no object to hand back");
    let (e, _f) = socket_pair();
    let err = reactor
        .insert_at(spare, half(e, spare, spare), Interest::READABLE)
        .unwrap_err();
    assert!(matches!(err.error, Error::StaleToken { .. }));
}

fn remove_cancels_the_objects_timers(backend: Backend) {
    let _fds = fds_shared();
    let mut reactor = reactor::<UnixStream>(backend);
    let (a, _peer) = socket_pair();
    let token = reactor.insert(a, Interest::READABLE).unwrap();
    let _login = reactor.timer_after(Duration::from_millis(5), token);
    let _idle = reactor.timer_after(Duration::from_millis(10), token);
    let other = reactor.timer_value_after(Duration::from_millis(30), 7);
    reactor.remove(token).unwrap();
    // The object's timers never fire with its stale token; the others do.
    assert_eq!(poll_until_a_timer_fires(&mut reactor), (None, Some(7)));
    assert!(!reactor.cancel_timer(other));
    assert_eq!(reactor.next_expired(), None);
}

/// A reactor holding one object whose timer fired in the last `poll` and
/// was not taken yet: the reactor, the object's peer, its token, the timer.
fn with_a_fired_timer(backend: Backend) -> (Reactor<UnixStream>, UnixStream, Token, TimerId) {
    let mut reactor = reactor::<UnixStream>(backend);
    let (a, peer) = socket_pair();
    let token = reactor.insert(a, Interest::READABLE).unwrap();
    let id = reactor.timer_after(Duration::ZERO, token);
    std::thread::sleep(Duration::from_millis(2));
    poll_tokens(&mut reactor, Duration::ZERO);
    (reactor, peer, token, id)
}

fn remove_drops_a_fired_but_untaken_timer(backend: Backend) {
    let _fds = fds_shared();
    let (mut reactor, _peer, token, _) = with_a_fired_timer(backend);
    reactor.remove(token).unwrap();
    assert_eq!(
        reactor.next_expired(),
        None,
        "a removed object's timer was reported"
    );
}

fn an_owner_less_timer_carries_a_value(backend: Backend) {
    let mut reactor = reactor::<UnixStream>(backend);
    let id = reactor.timer_value_after(Duration::from_millis(5), 0xfeed);
    assert_eq!(poll_until_a_timer_fires(&mut reactor), (None, Some(0xfeed)));
    assert_eq!(reactor.next_expired_value(), None);
    assert!(!reactor.cancel_timer(id), "a fired timer is not pending");
}

fn reset_works_on_a_fired_but_untaken_timer(backend: Backend) {
    let _fds = fds_shared();
    // The idle timer fired, but a message arrived in the same turn: push it back.
    let (mut reactor, _peer, token, idle) = with_a_fired_timer(backend);
    let start = Instant::now();
    assert!(reactor.reset_timer(idle, start + Duration::from_millis(40)));
    assert_eq!(
        reactor.next_expired(),
        None,
        "the reset timer still reported its old firing"
    );
    assert_eq!(poll_until_a_timer_fires(&mut reactor), (Some(token), None));
    assert!(start.elapsed() >= Duration::from_millis(40));
    // Once taken, it is gone: reset arms nothing.
    assert!(!reactor.reset_timer(idle, Instant::now()));
}

fn a_wake_is_an_event_with_its_own_token_when_asked(backend: Backend) {
    let mut reactor = reactor::<UnixStream>(backend);
    let waker = reactor.waker().unwrap();
    reactor.report_wakes(true);
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        waker.wake()
    });
    let start = Instant::now();
    let tokens = poll_tokens(&mut reactor, Duration::from_secs(10));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        tokens,
        [Token::WAKER],
        "a wake is told apart from a timeout"
    );
    thread.join().unwrap().unwrap();
    // Drained: the next poll times out with nothing.
    assert!(poll_tokens(&mut reactor, Duration::from_millis(10)).is_empty());
}

fn insert_errors_convert_to_io_errors(backend: Backend) {
    let _fds = fds_shared();
    fn twice(reactor: &mut Reactor<&UnixStream>, s: &'static UnixStream) -> io::Result<()> {
        reactor.insert(s, Interest::READABLE)?;
        reactor.insert(s, Interest::READABLE)?; // `?` in an io::Result function
        Ok(())
    }
    let mut reactor = reactor::<&UnixStream>(backend);
    let (a, _b) = socket_pair();
    let a: &'static UnixStream = Box::leak(Box::new(a));
    let err = twice(&mut reactor, a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("still held by"), "{err}");
}

/// An object that owns a descriptor number but lets it be closed elsewhere.
#[derive(Debug)]
struct Raw(RawFd);
impl AsFd for Raw {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the tests keep the number open while the reactor uses it,
        // except where closing it behind the map's back is the point.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}

fn close(fd: RawFd) {
    // SAFETY: closing a number the test owns; nothing else closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

fn remove_after_the_fd_was_closed_behind_the_maps_back(backend: Backend) {
    let _fds = fds_exclusive();
    let mut reactor = reactor::<Raw>(backend);
    let (a, mut peer) = socket_pair();
    let copy = a.try_clone().unwrap(); // keeps the socket alive: epoll keeps watching it
    let fd = a.as_raw_fd();
    std::mem::forget(a);
    let token = reactor.insert(Raw(fd), Interest::READABLE).unwrap();
    peer.write_all(b"unread").unwrap();
    close(fd); // behind the map's back
    // remove says so, with a typed error naming the token and the fd,
    // instead of Ok while epoll keeps reporting the stale token forever.
    match reactor.remove(token) {
        Err(Error::FdClosed { fd: got, .. }) => assert_eq!(got, fd),
        other => panic!("[{backend}] remove after close: {other:?}"),
    }
    assert!(reactor.get(token).is_none());
    drop(copy);
}

fn an_fd_reused_behind_the_maps_back_loses_no_registration(backend: Backend) {
    let _fds = fds_exclusive();
    let mut reactor = reactor::<Raw>(backend);
    let (a, _a_peer) = socket_pair();
    let fd = a.as_raw_fd();
    std::mem::forget(a);
    let old = reactor.insert(Raw(fd), Interest::READABLE).unwrap();
    close(fd); // behind the map's back...
    let (b, mut b_peer) = socket_pair(); // ...and the number is handed out again
    assert_eq!(
        b.as_raw_fd(),
        fd,
        "the kernel reuses the lowest free number"
    );
    // Every backend refuses it while the old object holds the number, and says why.
    let err = reactor
        .insert(Raw(b.as_raw_fd()), Interest::READABLE)
        .unwrap_err();
    assert!(
        matches!(err.error, Error::FdInUse { .. }),
        "{:?}",
        err.error
    );
    assert!(
        err.error.to_string().contains(&format!("{old:?}")),
        "{}",
        err.error
    );
    // Removing the old object must not unregister the new one.
    let _ = reactor.remove(old);
    let new = reactor
        .insert(Raw(b.as_raw_fd()), Interest::READABLE)
        .unwrap();
    b_peer.write_all(b"x").unwrap();
    expect_token(&mut reactor, new);
    drop(reactor.remove(new));
    drop(b);
}

// Not per backend: children and descriptors, with std types only.

/// `sleep 30`, its stdout as asked.
fn sleeper(stdout: Stdio) -> std::process::Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .stdout(stdout)
        .spawn()
        .unwrap()
}

#[test]
fn a_child_from_std_is_signalled_without_libc() {
    let mut child = sleeper(Stdio::null());
    let pidfd = match reactor::Pidfd::from_child(&child) {
        Ok(pidfd) => pidfd,
        Err(err) => {
            println!("no pidfd here ({err}); Reaper::send_signal is tested instead");
            let reaper = reactor::Reaper::new().unwrap();
            reaper.send_signal(child.id(), Signal::TERM).unwrap();
            let status = child.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(15)
            );
            return;
        }
    };
    pidfd.send_signal(Signal::TERM).unwrap();
    let mut reactor: Reactor<reactor::Pidfd> = Reactor::new().unwrap();
    let token = reactor.insert(pidfd, Interest::READABLE).unwrap();
    expect_token(&mut reactor, token);
    let status = reactor
        .get_mut(token)
        .unwrap()
        .try_wait()
        .unwrap()
        .expect("exited");
    assert_eq!(status.signal(), Some(Signal::TERM));
    drop(child.wait());
}

#[test]
fn signals_are_a_type_not_a_number() {
    let signals = Signals::new(&[Signal::USR2]).unwrap();
    assert_eq!(signals.signals(), [Signal::USR2]);
    assert_eq!(Signal::TERM.name(), "SIGTERM");
    assert_eq!(Signal::TERM.to_string(), "SIGTERM");
    assert_eq!(Signal::from_raw(2), Signal::INT);
    assert_eq!(Signal::INT.raw(), 2);
}

#[test]
fn any_asfd_is_made_non_blocking() {
    let mut child = sleeper(Stdio::piped());
    let mut stdout = child.stdout.take().unwrap();
    reactor::set_nonblocking(&stdout).unwrap();
    let mut buf = [0; 8];
    let err = stdout.read(&mut buf).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::WouldBlock,
        "the read blocked or failed: {err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn from_env_honours_reactor_backend_and_new_does_not() {
    // Run in a child process: the environment is process-wide.
    if std::env::var_os("API_GAPS_CHILD").is_some() {
        let r: Reactor<UnixStream> = Reactor::from_env().unwrap();
        let n: Reactor<UnixStream> = Reactor::new().unwrap();
        println!("{} {}", r.backend_name(), n.backend_name());
        return;
    }
    // This test again, in a child with REACTOR_BACKEND=value.
    let run = |value: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "from_env_honours_reactor_backend_and_new_does_not",
            ])
            .arg("--nocapture")
            .env("API_GAPS_CHILD", "1")
            .env("REACTOR_BACKEND", value)
            .output()
            .unwrap()
    };
    for (value, want) in [
        ("poll", "poll epoll"),
        ("select", "select epoll"),
        ("", "epoll epoll"),
    ] {
        let text = String::from_utf8_lossy(&run(value).stdout).into_owned();
        assert!(
            text.lines().any(|l| l == want),
            "REACTOR_BACKEND={value:?}: {text}"
        );
    }
    assert!(
        !run("kqueue").status.success(),
        "a bad REACTOR_BACKEND is an error, not a silent default"
    );
}
