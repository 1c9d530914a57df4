//! docs/reliability.md#interrupted-system-calls: `EINTR` while blocked in
//! `select`/`poll`/`epoll_wait`.
//!
//! A test binary of its own with `harness = false`, so the process is
//! single-threaded and every `SIGALRM` interrupts the very call under test
//! (in the multi-threaded libtest harness the signal could land on any
//! thread). For each backend a handler is installed with `sigaction`
//! *without* `SA_RESTART` and `setitimer(ITIMER_REAL)` fires it every
//! millisecond, so the wait is interrupted about 200 times:
//!
//! - `poll(200 ms)` with nothing ready returns 0 events after ≥ 180 ms (the
//!   timeout is not shortened) and ≤ 400 ms (it is not restarted in full at
//!   each signal: a storm would then never end);
//! - a pipe that a helper process writes at about 150 ms is reported then,
//!   storm or no storm.
//!
//! Prints `N passed, M failed, K skipped` last and exits non-zero on any
//! failure.

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::runner::Runner;
use common::{new_poller, socket_pair};
use reactor::{Backend, Events, Interest, Poller, Trigger};

/// How many times the handler ran.
static ALARMS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_alarm(_signal: libc::c_int) {
    ALARMS.fetch_add(1, Ordering::Relaxed);
}

/// Installs the counting handler, deliberately without `SA_RESTART`.
fn install_handler() {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_alarm as *const () as usize;
    action.sa_flags = 0;
    // SAFETY: sa_mask is a valid sigset_t inside `action`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is initialised; the handler only touches an atomic.
    let ret = unsafe { libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut()) };
    assert_eq!(ret, 0, "sigaction: {}", std::io::Error::last_os_error());
}

/// Starts (`Some(period)`) or stops (`None`) the `SIGALRM` storm.
fn storm(period: Option<Duration>) {
    let period = period.unwrap_or_default();
    let tv = libc::timeval {
        tv_sec: period.as_secs() as libc::time_t,
        tv_usec: period.subsec_micros() as libc::suseconds_t,
    };
    let timer = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: setitimer reads a live itimerval; the old value is not wanted.
    let ret = unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) };
    assert_eq!(ret, 0, "setitimer: {}", std::io::Error::last_os_error());
}

/// Stops the storm when dropped, even if the check panics.
struct Storm;

impl Storm {
    fn start() -> Storm {
        storm(Some(Duration::from_millis(1)));
        Storm
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        storm(None);
    }
}

/// `poll(200 ms)` with nothing ready: not shortened, not restarted.
fn timeout_is_neither_shortened_nor_restarted(backend: Backend) {
    let mut poller = new_poller(backend);
    let (ours, _theirs) = socket_pair();
    poller
        .register(ours.as_raw_fd(), 1, Interest::READABLE, Trigger::Level)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let alarms = ALARMS.load(Ordering::Relaxed);
    let storm = Storm::start();
    let start = Instant::now();
    let n = poller
        .poll(&mut events, Some(Duration::from_millis(200)))
        .expect("EINTR must not surface");
    let took = start.elapsed();
    drop(storm);
    let interrupts = ALARMS.load(Ordering::Relaxed) - alarms;
    assert_eq!(n, 0, "{events:?}");
    assert!(
        interrupts >= 20,
        "only {interrupts} SIGALRMs: the storm did not happen"
    );
    assert!(
        took >= Duration::from_millis(180),
        "returned early after {took:?} ({interrupts} signals)"
    );
    assert!(
        took <= Duration::from_millis(400),
        "took {took:?} ({interrupts} signals)"
    );
    println!("    {backend}: 200 ms poll took {took:?} through {interrupts} signals");
}

/// A pipe written by a helper process at ~150 ms is reported then.
fn a_pipe_written_at_150ms_is_reported_through_the_storm(backend: Backend) {
    let mut child = Command::new("sh")
        .args(["-c", "sleep 0.15; printf x"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let start = Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let mut poller = new_poller(backend);
    poller
        .register(stdout.as_raw_fd(), 2, Interest::READABLE, Trigger::Level)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let alarms = ALARMS.load(Ordering::Relaxed);
    let storm = Storm::start();
    let n = poller
        .poll(&mut events, Some(Duration::from_secs(2)))
        .expect("EINTR must not surface");
    let took = start.elapsed();
    drop(storm);
    let interrupts = ALARMS.load(Ordering::Relaxed) - alarms;
    let status = child.wait().expect("wait for sh");
    assert!(status.success(), "helper: {status}");
    assert_eq!(n, 1, "{events:?} after {took:?}");
    let event = events.iter().next().unwrap();
    assert!(event.key() == 2 && event.is_readable(), "{event:?}");
    assert!(
        interrupts >= 20,
        "only {interrupts} SIGALRMs: the storm did not happen"
    );
    assert!(
        took >= Duration::from_millis(120),
        "reported before the write: {took:?}"
    );
    assert!(took < Duration::from_secs(1), "reported late: {took:?}");
    let mut byte = [0; 1];
    stdout.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"x");
    println!("    {backend}: pipe reported after {took:?} through {interrupts} signals");
}

fn main() {
    install_handler();
    let mut runner = Runner::from_args();
    runner.per_backend(
        "timeout_is_neither_shortened_nor_restarted",
        timeout_is_neither_shortened_nor_restarted,
    );
    runner.per_backend(
        "a_pipe_written_at_150ms_is_reported_through_the_storm",
        a_pipe_written_at_150ms_is_reported_through_the_storm,
    );
    runner.finish()
}
