//! `prefork_echo` end to end, driven as a user runs it: the real binary on
//! port 0, real sockets, `kill -9` on real workers, `/proc` for zombies.
//! Nothing here forks inside the test process.
//!
//! A `harness = false` binary run by the shared runner (tests/common/runner.rs),
//! so that the fault-injection tests needing strace are counted as skipped
//! where it is not installed.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::runner::Runner;
use common::{Example, SOON, fd_count, zombies};
use reactor::Backend;

fn main() {
    let mut runner = Runner::from_args();
    runner.per_backend(
        "starts_n_workers_and_echoes_across_50_connections",
        starts_n_workers_and_echoes_across_50_connections,
    );
    runner.test(
        "killed_worker_is_reported_and_replaced_with_pidfds",
        killed_worker_is_reported_and_replaced_with_pidfds,
    );
    runner.test(
        "killed_worker_is_reported_and_replaced_with_sigchld",
        killed_worker_is_reported_and_replaced_with_sigchld,
    );
    runner.test(
        "no_zombie_lingers_with_pidfds",
        no_zombie_lingers_with_pidfds,
    );
    runner.test(
        "no_zombie_lingers_with_sigchld",
        no_zombie_lingers_with_sigchld,
    );
    runner.test(
        "sigterm_stops_every_worker_and_exits_0",
        sigterm_stops_every_worker_and_exits_0,
    );
    runner.test("graceful_shutdown_under_load", graceful_shutdown_under_load);
    runner.test(
        "parent_fd_count_returns_to_baseline_after_replacements",
        parent_fd_count_returns_to_baseline_after_replacements,
    );
    runner.test("restarts_are_rate_limited", restarts_are_rate_limited);
    runner.per_backend(
        "workers_die_with_a_killed_parent",
        workers_die_with_a_killed_parent,
    );
    runner.test("bad_arguments_exit_2", bad_arguments_exit_2);
    runner.test(
        "a_failed_fork_is_logged_and_retried",
        a_failed_fork_is_logged_and_retried,
    );
    runner.test(
        "without_pidfd_open_the_server_falls_back_to_sigchld",
        without_pidfd_open_the_server_falls_back_to_sigchld,
    );
    runner.test(
        "eintr_in_blocking_calls_is_retried",
        eintr_in_blocking_calls_is_retried,
    );
    runner.test(
        "reuseport_workers_listen_on_one_port",
        reuseport_workers_listen_on_one_port,
    );
    runner.test("every_line_is_printed_once", every_line_is_printed_once);
    runner.finish()
}

/// Starts `prefork_echo` with `workers` workers and `extra` flags, and
/// returns it with the pids of the workers it announced.
#[track_caller]
fn start(workers: usize, extra: &[&str]) -> (Example, Vec<i32>) {
    let n = workers.to_string();
    let mut args = vec!["--addr", "127.0.0.1:0", "--workers", &n];
    args.extend_from_slice(extra);
    let example = Example::start("prefork_echo", &args);
    let pids = (0..workers).map(|_| started(&example)).collect();
    (example, pids)
}

/// Waits for the next `worker <pid> started` line and returns the pid.
#[track_caller]
fn started(example: &Example) -> i32 {
    let line = example.expect_line("`worker <pid> started`", |l| l.ends_with(" started"));
    worker_pid(&line)
}

/// The pid in `worker <pid> …`.
fn worker_pid(line: &str) -> i32 {
    line.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// Whether process `pid` exists (in any state, zombies included).
fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Sends `signal` to `pid`.
fn kill(pid: i32, signal: libc::c_int) {
    // SAFETY: kill only sends a signal.
    let ret = unsafe { libc::kill(pid, signal) };
    assert_eq!(ret, 0, "kill({pid}, {signal})");
}

/// One echo round trip on a new connection.
#[track_caller]
fn echo_once(example: &Example, message: &[u8]) {
    let mut stream = TcpStream::connect(example.addr()).expect("connect");
    stream.set_read_timeout(Some(SOON)).unwrap();
    stream.write_all(message).unwrap();
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).expect("echo");
    assert_eq!(back, message);
}

fn starts_n_workers_and_echoes_across_50_connections(backend: Backend) {
    let (mut example, pids) = start(3, &["--backend", backend.name()]);
    assert_eq!(
        pids.iter().collect::<HashSet<_>>().len(),
        3,
        "[{backend}] distinct pids {pids:?}"
    );
    let streams: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(example.addr()).unwrap())
        .collect();
    for (i, mut stream) in streams.into_iter().enumerate() {
        stream.set_read_timeout(Some(SOON)).unwrap();
        let message = format!("[{backend}] connection {i} says hello\n");
        stream.write_all(message.as_bytes()).unwrap();
        let mut back = vec![0; message.len()];
        stream
            .read_exact(&mut back)
            .unwrap_or_else(|e| panic!("[{backend}] echo {i}: {e}"));
        assert_eq!(back, message.as_bytes());
    }
    example.signal(libc::SIGTERM);
    assert_eq!(example.wait_exit(SOON).code(), Some(0), "[{backend}]");
}

/// `kill -9` of a worker: reported with its signal, replaced within 2 s,
/// the replacement serves, and afterwards the parent still reacts to
/// SIGTERM (a worker's life and death do not disturb the parent's
/// registrations: docs/reliability.md#dead-workers-and-zombies).
fn killed_worker_is_reported_and_replaced(mode: &str) {
    let (mut example, pids) = start(2, &["--child-mode", mode]);
    let mut victim = pids[0];
    for round in 0..3 {
        let killed_at = Instant::now();
        kill(victim, libc::SIGKILL);
        let line = example.expect_line("`worker <pid> exited`", |l| l.contains(" exited: "));
        assert_eq!(
            line,
            format!("worker {victim} exited: killed by SIGKILL"),
            "[{mode}]"
        );
        let replacement = started(&example);
        assert!(
            killed_at.elapsed() < Duration::from_secs(2),
            "[{mode}] replaced after {:?}",
            killed_at.elapsed()
        );
        assert!(!pids.contains(&replacement), "[{mode}]");
        assert!(
            !zombies(example.pid()).contains(&victim),
            "[{mode}] {victim} left a zombie"
        );
        echo_once(&example, format!("[{mode}] after round {round}").as_bytes());
        victim = replacement;
    }
    example.signal(libc::SIGTERM);
    assert_eq!(example.wait_exit(SOON).code(), Some(0), "[{mode}]");
}

fn killed_worker_is_reported_and_replaced_with_pidfds() {
    killed_worker_is_reported_and_replaced("pidfd");
}

fn killed_worker_is_reported_and_replaced_with_sigchld() {
    killed_worker_is_reported_and_replaced("sigchld");
}

/// docs/reliability.md#dead-workers-and-zombies: while workers are killed over
/// and over, `/proc` never shows a zombie child of the parent that lives longer
/// than a moment (one turn of its loop; sampled every 5 ms, a zombie seen for
/// 100 ms fails).
fn no_zombie_lingers(mode: &str) {
    let (mut example, mut live) = start(4, &["--child-mode", mode]);
    let parent = example.pid();
    let mut first_seen: std::collections::HashMap<i32, Instant> = Default::default();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut kills = 0;
    while Instant::now() < deadline {
        if kills < 8 && !live.is_empty() {
            // Two at once, so their SIGCHLDs may coalesce.
            for pid in live.drain(..2.min(live.len())) {
                kill(pid, libc::SIGKILL);
                kills += 1;
            }
        }
        while let Some(line) = example.next_line(Duration::ZERO) {
            if line.ends_with(" started") {
                live.push(worker_pid(&line));
            }
        }
        for zombie in zombies(parent) {
            let since = *first_seen.entry(zombie).or_insert_with(Instant::now);
            assert!(
                since.elapsed() < Duration::from_millis(100),
                "[{mode}] zombie {zombie} for {:?}",
                since.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(kills >= 8, "[{mode}] killed {kills}");
    assert!(zombies(parent).is_empty(), "[{mode}]");
    example.signal(libc::SIGTERM);
    assert_eq!(example.wait_exit(SOON).code(), Some(0), "[{mode}]");
}

fn no_zombie_lingers_with_pidfds() {
    no_zombie_lingers("pidfd");
}

fn no_zombie_lingers_with_sigchld() {
    no_zombie_lingers("sigchld");
}

fn sigterm_stops_every_worker_and_exits_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let (mut example, pids) = start(3, &[]);
        echo_once(&example, b"ping");
        example.signal(signal);
        for _ in &pids {
            example.expect_line("`worker <pid> exited: exited with 0`", |l| {
                l.ends_with("exited: exited with 0")
            });
        }
        assert_eq!(example.wait_exit(SOON).code(), Some(0), "signal {signal}");
        let left: Vec<i32> = pids.iter().copied().filter(|&p| exists(p)).collect();
        assert!(left.is_empty(), "workers left after exit: {left:?}");
    }
}

/// docs/reliability.md#graceful-shutdown: 50 clients echoing non-stop when
/// SIGTERM arrives: exit 0 within a bound, and every client sees its connection
/// end (no hang).
fn graceful_shutdown_under_load() {
    let (mut example, pids) = start(2, &[]);
    let addr = example.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream.set_read_timeout(Some(SOON)).unwrap();
                let message = format!("client {i} ").repeat(20);
                let mut back = vec![0; message.len()];
                let mut rounds = 0;
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if stream.write_all(message.as_bytes()).is_err() {
                        break; // reset by the stopping worker
                    }
                    match stream.read_exact(&mut back) {
                        Ok(()) => {
                            assert_eq!(back, message.as_bytes());
                            rounds += 1;
                        }
                        Err(_) => break, // EOF or reset: the worker stopped
                    }
                    if stop.load(std::sync::atomic::Ordering::Relaxed) && rounds > 1_000_000 {
                        break;
                    }
                }
                rounds
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    example.signal(libc::SIGTERM);
    let status = example.wait_exit(SOON);
    let took = signalled.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let rounds: Vec<usize> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    assert!(
        rounds.iter().all(|&r| r > 0),
        "every client was served before the stop: {rounds:?}"
    );
    assert!(pids.iter().all(|&p| !exists(p)));
}

/// docs/reliability.md#fork-hygiene: the parent's descriptors return to their
/// baseline after workers are killed and replaced (no leaked pidfds or pipes).
fn parent_fd_count_returns_to_baseline_after_replacements() {
    for mode in ["pidfd", "sigchld"] {
        let (mut example, pids) = start(2, &["--child-mode", mode]);
        let baseline = fd_count(example.pid());
        let mut victim = pids[0];
        for _ in 0..5 {
            kill(victim, libc::SIGKILL);
            example.expect_line("`exited`", |l| {
                l.starts_with(&format!("worker {victim} exited"))
            });
            victim = started(&example);
        }
        echo_once(&example, b"still serving");
        assert_eq!(fd_count(example.pid()), baseline, "[{mode}] parent fds");
        example.signal(libc::SIGTERM);
        assert_eq!(example.wait_exit(SOON).code(), Some(0), "[{mode}]");
    }
}

/// A crash loop cannot become a fork bomb: killing every worker as soon as
/// it starts is met with at most `--workers` restarts a second.
fn restarts_are_rate_limited() {
    let (mut example, mut live) = start(2, &[]);
    let begin = Instant::now();
    let mut restarts = 0;
    while begin.elapsed() < Duration::from_millis(1500) {
        for pid in live.drain(..) {
            unsafe_kill(pid);
        }
        if let Some(line) = example.next_line(Duration::from_millis(20))
            && line.ends_with(" started")
        {
            restarts += 1;
            live.push(worker_pid(&line));
        }
    }
    // 1.5 s at 2 a second: at most 2 windows' worth, plus one in flight.
    assert!(restarts <= 6, "{restarts} restarts in 1.5 s");
    assert!(
        restarts >= 2,
        "{restarts} restarts: the pool was not refilled"
    );
    example.signal(libc::SIGTERM);
    assert_eq!(example.wait_exit(SOON).code(), Some(0));
}

/// `kill -9` that may race with the process already being gone (ESRCH is fine).
fn unsafe_kill(pid: i32) {
    // SAFETY: kill only sends a signal.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn bad_arguments_exit_2() {
    for args in [
        &["--workers", "0"][..],
        &["--workers", "many"],
        &["--child-mode", "fork"],
    ] {
        let status = std::process::Command::new(common::example_path("prefork_echo"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run prefork_echo");
        assert_eq!(status.code(), Some(2), "{args:?}");
    }
}

/// docs/reliability.md#failed-forks-and-crash-loops: `fork` failing with
/// `EAGAIN` (injected into glibc's `clone` with strace) is logged and retried;
/// the pool fills up anyway and the server keeps serving. Skipped when strace
/// is not installed.
fn a_failed_fork_is_logged_and_retried() {
    common::require_program("strace");
    let wrapper = [
        "strace",
        "-f",
        "-o",
        "/dev/null",
        "-e",
        "trace=clone",
        "-e",
        "inject=clone:error=EAGAIN:when=2",
    ];
    let mut example = Example::start_wrapped(
        &wrapper,
        "prefork_echo",
        &["--addr", "127.0.0.1:0", "--workers", "3"],
    );
    let pids: Vec<i32> = (0..3).map(|_| started(&example)).collect();
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 3);
    let mut stderr = String::new();
    let deadline = Instant::now() + SOON;
    while !stderr.contains("fork failed") && Instant::now() < deadline {
        stderr += &example.stderr();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(stderr.contains("retrying"), "stderr: {stderr}");
    echo_once(&example, b"served after a failed fork");
    kill(traced_pid(&example), libc::SIGTERM);
    for _ in 0..3 {
        example.expect_line("`exited with 0`", |l| l.ends_with("exited: exited with 0"));
    }
    example.expect_line("`all workers stopped`", |l| l == "all workers stopped");
    assert_eq!(example.wait_exit(SOON).code(), Some(0));
}

/// docs/reliability.md#no-pidfd_open: on a kernel without `pidfd_open`
/// (simulated with strace: `ENOSYS`), the server detects it and falls back to
/// SIGCHLD reaping, still reporting and replacing killed workers.
fn without_pidfd_open_the_server_falls_back_to_sigchld() {
    common::require_program("strace");
    let wrapper = [
        "strace",
        "-f",
        "-o",
        "/dev/null",
        "-e",
        "trace=pidfd_open",
        "-e",
        "inject=pidfd_open:error=ENOSYS",
        "-E",
        "RUST_LOG=prefork_echo=info,servers=info",
    ];
    let mut example = Example::start_wrapped(
        &wrapper,
        "prefork_echo",
        &["--addr", "127.0.0.1:0", "--workers", "2"],
    );
    let victim = started(&example);
    started(&example);
    let stderr = example.stderr();
    assert!(stderr.contains("child mode sigchld"), "stderr: {stderr}");
    kill(victim, libc::SIGKILL);
    let line = example.expect_line("`exited`", |l| l.contains(" exited: "));
    assert_eq!(line, format!("worker {victim} exited: killed by SIGKILL"));
    started(&example);
    echo_once(&example, b"sigchld mode");
    kill(traced_pid(&example), libc::SIGTERM);
    example.expect_line("`all workers stopped`", |l| l == "all workers stopped");
    assert_eq!(example.wait_exit(SOON).code(), Some(0));
}

/// The pid of the example running under strace: strace's only child.
fn traced_pid(example: &Example) -> i32 {
    let children = common::children(example.pid());
    assert_eq!(children.len(), 1, "strace's children: {children:?}");
    children[0].0
}

/// docs/reliability.md#interrupted-calls-in-the-pre-fork-server: `EINTR` in the
/// blocking calls of parent and workers (injected with strace into every third
/// `epoll_wait` and every second `accept4` and `waitid`) is retried: the server
/// serves, replaces a killed worker, and stops cleanly.
fn eintr_in_blocking_calls_is_retried() {
    common::require_program("strace");
    let wrapper = [
        "strace",
        "-f",
        "-o",
        "/dev/null",
        "-e",
        "trace=epoll_wait,accept4,waitid",
        "-e",
        "inject=epoll_wait:error=EINTR:when=2+3",
        "-e",
        "inject=accept4:error=EINTR:when=1+2",
        "-e",
        "inject=waitid:error=EINTR:when=1+2",
    ];
    let mut example = Example::start_wrapped(
        &wrapper,
        "prefork_echo",
        &[
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--child-mode",
            "pidfd",
        ],
    );
    let victim = started(&example);
    started(&example);
    for i in 0..20 {
        echo_once(&example, format!("interrupted {i}").as_bytes());
    }
    kill(victim, libc::SIGKILL);
    let line = example.expect_line("`exited`", |l| l.contains(" exited: "));
    assert_eq!(line, format!("worker {victim} exited: killed by SIGKILL"));
    started(&example);
    echo_once(&example, b"after the replacement");
    kill(traced_pid(&example), libc::SIGTERM);
    example.expect_line("`all workers stopped`", |l| l == "all workers stopped");
    assert_eq!(example.wait_exit(SOON).code(), Some(0));
}

/// `--reuseport`: every worker has its own SO_REUSEPORT listener on the
/// port the parent reserved; connections reach them all, and a
/// replacement worker joins the group.
fn reuseport_workers_listen_on_one_port() {
    let (mut example, pids) = start(3, &["--reuseport"]);
    for i in 0..50 {
        echo_once(&example, format!("reuseport {i}").as_bytes());
    }
    kill(pids[0], libc::SIGKILL);
    example.expect_line("`exited`", |l| l.contains(" exited: killed by SIGKILL"));
    started(&example);
    for i in 0..20 {
        echo_once(&example, format!("after the replacement {i}").as_bytes());
    }
    example.signal(libc::SIGTERM);
    assert_eq!(example.wait_exit(SOON).code(), Some(0));
    assert!(pids.iter().all(|&p| !exists(p)));
}

/// docs/reliability.md#fork-hygiene: every line is printed once (stdout is
/// flushed before each fork and workers leave with `_exit`, so no buffered line
/// is printed twice).
fn every_line_is_printed_once() {
    let (mut example, pids) = start(3, &[]);
    kill(pids[1], libc::SIGKILL);
    let mut lines = vec![];
    let deadline = Instant::now() + SOON;
    while !lines.iter().any(|l: &String| l.ends_with(" started")) && Instant::now() < deadline {
        lines.extend(example.next_line(Duration::from_millis(50)));
    }
    example.signal(libc::SIGTERM);
    assert_eq!(example.wait_exit(SOON).code(), Some(0));
    while let Some(line) = example.next_line(Duration::from_millis(200)) {
        lines.push(line);
    }
    let unique: HashSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "duplicated lines: {lines:#?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("listening on")),
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" exited: ")).count(),
        4,
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("all workers stopped")
    );
}

/// Whether `pid` is gone or a zombie (dead, waiting for whoever inherited it).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|close| stat[close + 2..].chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}

/// `kill -9` of the parent: the workers die with it (they do not serve the
/// port as orphans), so a restarted supervisor can bind the port again.
/// The parent's pid is printed in its first lines, for `ps --ppid`.
fn workers_die_with_a_killed_parent(backend: Backend) {
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--backend",
        backend.name(),
    ];
    let mut example = Example::start("prefork_echo", &args);
    let parent = example.pid();
    let mut said = false;
    let mut pids = Vec::new();
    while pids.len() < 2 {
        let line = example
            .next_line(SOON)
            .unwrap_or_else(|| panic!("[{backend}] workers not started"));
        if line.ends_with(" started") {
            pids.push(worker_pid(&line));
        } else {
            said |= line.contains(&format!("pid {parent}"));
        }
    }
    assert!(
        said,
        "[{backend}] the parent's pid is not printed before the workers"
    );
    echo_once(&example, b"before");
    let addr = example.addr();
    kill(parent, libc::SIGKILL);
    let _ = example.wait_exit(SOON);
    let deadline = Instant::now() + SOON;
    for pid in pids {
        while !dead(pid) {
            assert!(
                Instant::now() < deadline,
                "[{backend}] worker {pid} outlived its parent"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Nothing serves the port any more: a new supervisor can bind it.
    let deadline = Instant::now() + SOON;
    while std::net::TcpListener::bind(addr).is_err() {
        assert!(Instant::now() < deadline, "[{backend}] {addr} still taken");
        std::thread::sleep(Duration::from_millis(20));
    }
}
