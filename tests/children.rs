//! Child processes through `poll`, in both modes: one `Pidfd` per child,
//! and the SIGCHLD `Reaper` fallback (forced with `ChildMode::Sigchld`, as on
//! a kernel without `pidfd_open`). Children come from `std::process::Command`
//! (never a raw `fork` in the multi-threaded harness). A `Reaper` reaps
//! *every* child of the process, so the tests take turns (`LOCK`).

#[macro_use]
mod common;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{SOON, zombies};
use reactor::{Backend, ChildMode, Events, ExitStatus, Interest, Pidfd, Reactor, Reaper, Token};

/// Children and SIGCHLD are per process: one test at a time.
static LOCK: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Children that all wait on one gate (their stdin) and run `script` when
/// it opens: closing the gate makes them exit within the same millisecond.
struct Gate {
    /// Our end; dropping it is EOF on every child's stdin.
    open: Option<UnixStream>,
    /// Their end, cloned into each child.
    theirs: UnixStream,
}

impl Gate {
    fn new() -> Gate {
        let (open, theirs) = UnixStream::pair().unwrap();
        Gate {
            open: Some(open),
            theirs,
        }
    }

    /// Spawns `sh -c 'read x; <script>'` behind the gate; returns its pid.
    #[expect(clippy::zombie_processes, reason = "the reactor under test reaps it")]
    fn spawn(&self, script: &str) -> i32 {
        let stdin = OwnedFd::from(self.theirs.try_clone().unwrap());
        let child = Command::new("sh")
            .args(["-c", &format!("read x; {script}")])
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sh");
        // The std handle is dropped without waiting: the reactor reaps it.
        child.id() as i32
    }

    fn open(&mut self) {
        self.open = None;
    }
}

/// What the reactor watches in these tests.
enum Source {
    Child(Pidfd),
    Reaper(Reaper),
}

impl std::os::fd::AsFd for Source {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Source::Child(p) => p.as_fd(),
            Source::Reaper(r) => r.as_fd(),
        }
    }
}

/// Watches `pids` in `mode` on `backend` until all have been reaped (or
/// `SOON` passes) and returns each one's status.
fn watch(
    backend: Backend,
    mode: ChildMode,
    gate: &mut Gate,
    pids: &[i32],
) -> HashMap<i32, ExitStatus> {
    let mut reactor: Reactor<Source> = Reactor::with_backend(backend).unwrap();
    let mut reaped = HashMap::new();
    match mode {
        ChildMode::Pidfd => {
            for &pid in pids {
                let pidfd = Pidfd::open(pid).unwrap();
                reactor
                    .insert(Source::Child(pidfd), Interest::READABLE)
                    .unwrap();
            }
        }
        ChildMode::Sigchld => {
            let token = reactor
                .insert(Source::Reaper(Reaper::new().unwrap()), Interest::READABLE)
                .unwrap();
            // Anything that exited before the handler existed.
            if let Some(Source::Reaper(r)) = reactor.get_mut(token) {
                reaped.extend(r.reap().unwrap());
            }
        }
    }
    gate.open();
    let deadline = Instant::now() + SOON;
    let mut events = Events::with_capacity(256);
    while reaped.len() < pids.len() && Instant::now() < deadline {
        reactor
            .poll(
                &mut events,
                Some(deadline.saturating_duration_since(Instant::now())),
            )
            .unwrap();
        let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
        for token in tokens {
            match reactor.get_mut(token) {
                Some(Source::Child(pidfd)) => {
                    let pid = pidfd.pid();
                    if let Some(status) = pidfd.try_wait().unwrap() {
                        reaped.insert(pid, status);
                        reactor.remove(token).unwrap();
                    }
                }
                Some(Source::Reaper(reaper)) => reaped.extend(reaper.reap().unwrap()),
                None => {}
            }
        }
    }
    reaped
}

backend_tests!(
    two_children_exiting_at_once_are_both_reaped_and_reported,
    exit_codes_and_signals_are_reported_right,
    a_hundred_children_exiting_together_are_all_reaped,
);

/// The modes this kernel offers: both, or only `Sigchld` without
/// `pidfd_open` (the `Pidfd` mode is then left out, and says so).
fn modes() -> Vec<ChildMode> {
    if ChildMode::detect() == ChildMode::Pidfd {
        vec![ChildMode::Pidfd, ChildMode::Sigchld]
    } else {
        eprintln!("pidfd_open unavailable: testing the SIGCHLD mode only");
        vec![ChildMode::Sigchld]
    }
}

fn two_children_exiting_at_once_are_both_reaped_and_reported(backend: Backend) {
    let _serial = serial();
    for mode in modes() {
        let mut gate = Gate::new();
        let a = gate.spawn("exit 3");
        let b = gate.spawn("kill -KILL $$");
        let reaped = watch(backend, mode, &mut gate, &[a, b]);
        assert_eq!(reaped.len(), 2, "[{backend}/{mode}] {reaped:?}");
        assert_eq!(
            reaped[&a].to_string(),
            "exited with 3",
            "[{backend}/{mode}]"
        );
        assert_eq!(
            reaped[&b].to_string(),
            "killed by SIGKILL",
            "[{backend}/{mode}]"
        );
        assert!(
            zombies(std::process::id() as i32).is_empty(),
            "[{backend}/{mode}]"
        );
    }
}

fn exit_codes_and_signals_are_reported_right(backend: Backend) {
    let _serial = serial();
    let cases: [(&str, Option<i32>, Option<i32>); 6] = [
        ("exit 0", Some(0), None),
        ("exit 1", Some(1), None),
        ("exit 255", Some(255), None),
        ("kill -TERM $$", None, Some(libc::SIGTERM)),
        ("kill -INT $$", None, Some(libc::SIGINT)),
        ("kill -SEGV $$", None, Some(libc::SIGSEGV)),
    ];
    for mode in modes() {
        let mut gate = Gate::new();
        let pids: Vec<i32> = cases
            .iter()
            .map(|(script, _, _)| gate.spawn(script))
            .collect();
        let reaped = watch(backend, mode, &mut gate, &pids);
        for (pid, (script, code, signal)) in pids.iter().zip(cases) {
            let status = reaped[pid];
            assert_eq!(
                (status.code(), status.signal().map(reactor::Signal::raw)),
                (code, signal),
                "[{backend}/{mode}] {script}: {status}"
            );
            assert_eq!(status.success(), code == Some(0));
            let std_status: std::process::ExitStatus = status.into();
            assert_eq!(std_status.code(), code);
        }
    }
}

/// docs/reliability.md#many-children-exit-at-once: 100 children exit within
/// milliseconds of each other; their SIGCHLDs coalesce, yet every one is reaped
/// and reported, and `/proc` shows no zombie a second later.
fn a_hundred_children_exiting_together_are_all_reaped(backend: Backend) {
    let _serial = serial();
    for mode in modes() {
        let mut gate = Gate::new();
        let pids: Vec<i32> = (0..100)
            .map(|i| gate.spawn(&format!("exit {}", i % 7)))
            .collect();
        let reaped = watch(backend, mode, &mut gate, &pids);
        assert_eq!(
            reaped.len(),
            100,
            "[{backend}/{mode}] reaped {} of 100",
            reaped.len()
        );
        for (i, pid) in pids.iter().enumerate() {
            assert_eq!(
                reaped[pid].code(),
                Some(i as i32 % 7),
                "[{backend}/{mode}] child {i}"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            zombies(std::process::id() as i32).is_empty(),
            "[{backend}/{mode}] zombies left"
        );
    }
}

#[test]
#[expect(clippy::zombie_processes, reason = "the pidfd under test reaps it")]
fn a_pidfd_reports_running_then_the_same_status_again() {
    let _serial = serial();
    if ChildMode::detect() != ChildMode::Pidfd {
        return;
    }
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let mut pidfd = Pidfd::open(child.id() as i32).unwrap();
    assert_eq!(pidfd.pid(), child.id() as i32);
    assert_eq!(pidfd.try_wait().unwrap(), None, "still running");
    pidfd.send_signal(libc::SIGTERM).unwrap();
    let mut reactor = Reactor::new().unwrap();
    let token = reactor.insert(pidfd, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(4);
    let start = Instant::now();
    reactor.poll(&mut events, Some(SOON)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "pidfd readable after {:?}",
        start.elapsed()
    );
    let pidfd = reactor.get_mut(token).unwrap();
    let status = pidfd.try_wait().unwrap().expect("exited");
    assert_eq!(status.to_string(), "killed by SIGTERM");
    assert_eq!(
        pidfd.try_wait().unwrap(),
        Some(status),
        "the status again, not ECHILD"
    );
    assert!(
        pidfd.send_signal(libc::SIGTERM).is_err(),
        "signalling a reaped child"
    );
}

#[test]
fn a_reaper_owns_sigchld_while_it_lives() {
    let _serial = serial();
    let reaper = Reaper::new().unwrap();
    assert!(Reaper::new().is_err(), "a second SIGCHLD owner");
    drop(reaper);
    drop(Reaper::new().unwrap());
    // With no children at all, reaping finds nothing (ECHILD is not an error).
    assert!(reactor::reap_exited().unwrap().is_empty());
}

/// docs/reliability.md#many-children-exit-at-once, second half: many sequential
/// child lifetimes through one `Reaper` leave no zombie behind, and each one is
/// reported exactly once.
#[test]
fn sequential_children_never_accumulate_zombies() {
    let _serial = serial();
    let mut reactor: Reactor<Reaper> = Reactor::new().unwrap();
    let token = reactor
        .insert(Reaper::new().unwrap(), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let mut reported = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..300 {
        let pid = Gate::new().spawn_exited(i % 5);
        while !reported.contains_key(&pid) {
            assert!(Instant::now() < deadline, "child {i} ({pid}) never reaped");
            reactor.poll(&mut events, Some(SOON)).unwrap();
            for (pid, status) in reactor.get_mut(token).unwrap().reap().unwrap() {
                assert!(
                    reported.insert(pid, status).is_none(),
                    "{pid} reported twice"
                );
            }
        }
        assert_eq!(reported[&pid].code(), Some(i % 5));
    }
    assert!(zombies(std::process::id() as i32).is_empty());
}

impl Gate {
    /// Spawns a child that exits with `code` at once (the gate is not
    /// used); the reactor under test reaps it.
    fn spawn_exited(&self, code: i32) -> i32 {
        Command::new("sh")
            .args(["-c", &format!("exit {code}")])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh")
            .id() as i32
    }
}
