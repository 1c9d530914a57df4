//! `Signals` in the multi-threaded test harness: delivery to a blocked
//! `poll` from another thread, coalescing without loss, the four signals a
//! server cares about, ownership, and errno. Signal handlers are
//! process-wide, so the tests take turns (`LOCK`). The signal storm
//! and fork tests run in single-threaded binaries: `signal_storm.rs`,
//! `fork_safety.rs`.

#[macro_use]
mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::SOON;
use reactor::Backend;
use reactor::{Events, Interest, Reactor, Signals};

backend_tests!(
    a_signal_from_another_thread_wakes_a_blocked_poll,
    several_deliveries_coalesce_into_one_report_and_none_is_lost,
);

/// Handlers are per process: one test at a time.
static LOCK: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends `signal` to this whole process (any thread may run the handler).
fn kill_self(signal: libc::c_int) {
    // SAFETY: kill only sends a signal; a handler is installed for it.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
}

/// Polls until the `Signals` at `token` has something to report.
#[track_caller]
fn wait_signals(reactor: &mut Reactor<Signals>, token: reactor::Token) -> Vec<libc::c_int> {
    let deadline = Instant::now() + SOON;
    let mut events = Events::with_capacity(8);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "[{}] no signal within {SOON:?}",
            reactor.backend_name()
        );
        reactor.poll(&mut events, Some(left)).unwrap();
        if events.iter().any(|e| e.token() == token) {
            let got = reactor.get_mut(token).unwrap().read().unwrap();
            if !got.is_empty() {
                return got.into_iter().map(reactor::Signal::raw).collect();
            }
        }
    }
}

fn a_signal_from_another_thread_wakes_a_blocked_poll(backend: Backend) {
    let _serial = serial();
    let mut reactor = Reactor::with_backend(backend).unwrap();
    let token = reactor
        .insert(Signals::new(&[libc::SIGUSR1]).unwrap(), Interest::READABLE)
        .unwrap();
    let start = Instant::now();
    let sender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        kill_self(libc::SIGUSR1);
    });
    let mut events = Events::with_capacity(8);
    let n = reactor
        .poll(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    let waited = start.elapsed();
    sender.join().unwrap();
    assert_eq!(n, 1, "[{backend}]");
    assert!(
        waited >= Duration::from_millis(40) && waited < SOON,
        "[{backend}] woke after {waited:?}"
    );
    assert_eq!(
        reactor.get_mut(token).unwrap().read().unwrap(),
        vec![libc::SIGUSR1],
        "[{backend}]"
    );
}

fn several_deliveries_coalesce_into_one_report_and_none_is_lost(backend: Backend) {
    let _serial = serial();
    let mut reactor = Reactor::with_backend(backend).unwrap();
    let signals = Signals::new(&[libc::SIGUSR1, libc::SIGUSR2]).unwrap();
    let token = reactor.insert(signals, Interest::READABLE).unwrap();
    for _ in 0..10 {
        kill_self(libc::SIGUSR2);
        kill_self(libc::SIGUSR1);
    }
    // Twenty deliveries, a handful of reports at most: they coalesce.
    // (A process-directed signal may land on any thread, a little
    // later, so gather until both were seen.)
    let mut got = Vec::new();
    let mut reports = 0;
    while !(got.contains(&libc::SIGUSR1) && got.contains(&libc::SIGUSR2)) {
        got.extend(wait_signals(&mut reactor, token));
        reports += 1;
    }
    assert!(
        got.len() <= 4 && reports <= 2,
        "[{backend}] {got:?} in {reports} reports"
    );
    // Let stragglers land, take them, and then the pipe is empty: no
    // event, nothing to read.
    std::thread::sleep(Duration::from_millis(50));
    reactor.get_mut(token).unwrap().read().unwrap();
    let mut events = Events::with_capacity(8);
    let n = reactor
        .poll(&mut events, Some(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(n, 0, "[{backend}] read left the pipe readable");
    assert!(reactor.get_mut(token).unwrap().read().unwrap().is_empty());
    // No lost wake-up: the next signal wakes poll again.
    kill_self(libc::SIGUSR2);
    assert_eq!(
        wait_signals(&mut reactor, token),
        vec![libc::SIGUSR2],
        "[{backend}]"
    );
}

#[test]
fn sigint_sigterm_sighup_and_sigchld_arrive_as_events() {
    let _serial = serial();
    let wanted = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD];
    let mut reactor = Reactor::new().unwrap();
    let token = reactor
        .insert(Signals::new(&wanted).unwrap(), Interest::READABLE)
        .unwrap();
    for &signal in wanted.iter().rev() {
        kill_self(signal);
    }
    let mut got = Vec::new();
    while got.len() < wanted.len() {
        got.extend(wait_signals(&mut reactor, token));
    }
    got.sort();
    let mut want = wanted.to_vec();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_signal_has_one_owner_at_a_time_and_is_freed_on_drop() {
    let _serial = serial();
    let first = Signals::new(&[libc::SIGUSR1, libc::SIGUSR2]).unwrap();
    let err = Signals::new(&[libc::SIGHUP, libc::SIGUSR2]).unwrap_err();
    assert!(
        matches!(err, reactor::Error::SignalTaken { signal, .. } if signal == libc::SIGUSR2),
        "{err}"
    );
    // The refused call left nothing behind: SIGHUP is still free.
    drop(Signals::new(&[libc::SIGHUP]).unwrap());
    drop(first);
    let again = Signals::new(&[libc::SIGUSR2]).unwrap();
    assert_eq!(again.signals(), vec![libc::SIGUSR2]);
    assert!(!again.is_inherited());
}

/// The action a signal has now.
fn current_action(signal: libc::c_int) -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is valid; sigaction with a null new action
    // only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

#[test]
fn dropping_restores_the_previous_action() {
    let _serial = serial();
    // SAFETY: setting SIG_IGN for SIGUSR2 is harmless in this process.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
    let signals = Signals::new(&[libc::SIGUSR2]).unwrap();
    assert_ne!(current_action(libc::SIGUSR2), libc::SIG_IGN);
    drop(signals);
    assert_eq!(current_action(libc::SIGUSR2), libc::SIG_IGN);
    // SAFETY: back to the default.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_DFL) };
}

#[test]
fn the_handler_preserves_errno() {
    let _serial = serial();
    let mut signals = Signals::new(&[libc::SIGUSR1]).unwrap();
    for _ in 0..100 {
        // SAFETY: errno is this thread's; raise runs the handler on this
        // thread before it returns, and does not itself set errno on success.
        unsafe {
            *libc::__errno_location() = libc::EBADF;
            assert_eq!(libc::raise(libc::SIGUSR1), 0);
            assert_eq!(
                *libc::__errno_location(),
                libc::EBADF,
                "the handler clobbered errno"
            );
        }
    }
    assert_eq!(signals.read().unwrap(), vec![libc::SIGUSR1]);
}
