//! Fork with a live poller (docs/reliability.md#fork-with-a-live-poller)
//! and `Signals` across `fork`.
//! A `harness = false` binary: `fork` is only sound from a single-threaded
//! process, so this never runs inside the multi-threaded test harness.
//! `cargo test --test fork_safety`.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::runner::Runner;
use common::socket_pair;
use reactor::{Backend, Events, ExitStatus, Interest, Reactor, Signals};

fn main() {
    let mut runner = Runner::from_args();
    runner.per_backend(
        "child_dropping_its_copy_leaves_the_parent_registered",
        child_dropping_its_copy_leaves_the_parent_registered,
    );
    runner.test(
        "epoll::a_child_unregistering_from_a_shared_epoll_breaks_the_parent",
        epoll_is_shared_across_fork,
    );
    runner.test(
        "signals_in_a_child_take_over_or_fall_back_to_the_default",
        signals_across_fork,
    );
    runner.finish()
}

/// Forks; the child runs `child` and `_exit`s with its code (101 if it
/// panics: it must never return into the parent's code). Returns the
/// child's exit status.
fn fork_and_wait(child: impl FnOnce() -> i32) -> ExitStatus {
    let _ = std::io::stdout().flush();
    // SAFETY: this binary is single-threaded; the child only runs `child`
    // and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is writable.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1 {
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINTR)
        );
    }
    ExitStatus::from_raw(status)
}

/// Polls briefly; returns the events' tokens.
fn poll_tokens(reactor: &mut Reactor<UnixStream>, wait: Duration) -> Vec<reactor::Token> {
    let mut events = Events::with_capacity(8);
    reactor.poll(&mut events, Some(wait)).unwrap();
    events.iter().map(|e| e.token()).collect()
}

/// The parent registers a socketpair end and forks; the child drops
/// its copy of the reactor (closing, never `EPOLL_CTL_DEL`) and builds its
/// own reactor, which works independently. The parent still gets its
/// event, and never sees the child's descriptors.
fn child_dropping_its_copy_leaves_the_parent_registered(backend: Backend) {
    let mut reactor = Reactor::with_backend(backend).unwrap();
    let (a, mut b) = socket_pair();
    let token = reactor.insert(a, Interest::READABLE).unwrap();
    // The closure only runs in the child; the parent keeps `Some`.
    let mut shared = Some(reactor);
    let status = fork_and_wait(|| {
        drop(shared.take());
        let mut own = Reactor::with_backend(backend).unwrap();
        let (c, mut d) = socket_pair();
        let mine = own.insert(c, Interest::READABLE).unwrap();
        d.write_all(b"child").unwrap();
        let tokens = poll_tokens(&mut own, Duration::from_secs(5));
        if tokens == [mine] { 0 } else { 1 }
    });
    assert!(status.success(), "[{backend}] child: {status}");
    b.write_all(b"parent").unwrap();
    let reactor = shared.as_mut().unwrap();
    let tokens = poll_tokens(reactor, Duration::from_secs(5));
    assert_eq!(
        tokens,
        vec![token],
        "[{backend}] the parent lost its registration or saw the child's"
    );
}

/// The hazard the docs warn about, shown: epoll's interest list belongs to
/// the kernel object that parent and child share, so a child's `remove`
/// (`EPOLL_CTL_DEL`) unregisters the parent's descriptor too.
fn epoll_is_shared_across_fork() {
    let mut reactor = Reactor::with_backend(Backend::Epoll).unwrap();
    let (a, mut b) = socket_pair();
    let token = reactor.insert(a, Interest::READABLE).unwrap();
    let status = fork_and_wait(|| match reactor.remove(token) {
        Ok(_) => 0,
        Err(_) => 1,
    });
    assert!(status.success(), "child: {status}");
    b.write_all(b"lost").unwrap();
    let tokens = poll_tokens(&mut reactor, Duration::from_millis(100));
    assert!(
        tokens.is_empty(),
        "expected the child's EPOLL_CTL_DEL to remove the parent's registration"
    );
}

/// `Signals` across `fork`: the child inherits the parent's handlers, but
/// its signals never reach the parent's pipe. A signal the child takes
/// over (`Signals::new` in the child) arrives on the child's own pipe; one
/// it did not take over gets the default action (SIGTERM kills it).
/// Dropping the inherited `Signals` in the child disturbs nothing.
fn signals_across_fork() {
    let mut inherited = Some(Signals::new(&[libc::SIGUSR1, libc::SIGTERM]).unwrap());
    let status = fork_and_wait(|| {
        if !inherited.as_ref().is_some_and(Signals::is_inherited) {
            return 2;
        }
        let mut own = match Signals::new(&[libc::SIGUSR1]) {
            Ok(own) => own,
            Err(_) => return 3,
        };
        // SAFETY: raise sends a signal to this (child) thread.
        unsafe { libc::raise(libc::SIGUSR1) };
        if own.read().ok() != Some(vec![reactor::Signal::USR1]) {
            return 4;
        }
        drop(inherited.take()); // the inherited copy: closes fds, touches no handler
        // SAFETY: as above.
        unsafe { libc::raise(libc::SIGUSR1) };
        if own.read().ok() != Some(vec![reactor::Signal::USR1]) {
            return 5;
        }
        // Not taken over: the default action, death by SIGTERM.
        // SAFETY: as above.
        unsafe { libc::raise(libc::SIGTERM) };
        6
    });
    assert_eq!(
        status.signal(),
        Some(reactor::Signal::TERM),
        "child: {status}"
    );
    let parent = inherited.as_mut().unwrap();
    assert!(
        parent.read().unwrap().is_empty(),
        "the child's signals reached the parent's pipe"
    );
    // SAFETY: raise sends a signal to this thread; the parent's handler is intact.
    unsafe { libc::raise(libc::SIGTERM) };
    assert_eq!(parent.read().unwrap(), vec![libc::SIGTERM]);
}
