//! The `pitfalls` example, run as a user runs it: each sub-command must
//! make its failure happen (the `broken:` lines) and then show the fix
//! removing it (the `fixed:` lines), on every backend where it applies.
//! `docs/10-pitfalls.md` explains each one.
//!
//! The demonstrations measure real kernel behaviour (spins counted over a
//! window, wake-ups counted from context switches), so the thresholds here
//! are far from the typical figures: a spin makes tens of thousands of
//! calls where a quiet loop makes four.

#[macro_use]
mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::example_path;

/// One demonstration at a time: they measure CPU and scheduling, and
/// would disturb each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// No demonstration may take longer than this.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `pitfalls ARGS…` to completion and returns its standard output.
fn pitfalls(args: &[&str]) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(example_path("pitfalls"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pitfalls");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pitfalls {args:?} still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success(),
        "pitfalls {args:?}: {status}\nstdout:\n{out}\nstderr:\n{err}"
    );
    eprintln!("pitfalls {args:?} took {:?}", start.elapsed());
    out
}

/// The lines starting with `prefix`, in order.
fn lines<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The one line starting with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    let found = lines(out, prefix);
    assert_eq!(found.len(), 1, "want one line starting {prefix:?}:\n{out}");
    found[0]
}

/// The number right after the first `word` in `line`.
fn number_after(line: &str, word: &str) -> f64 {
    let rest = &line[line
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} not in {line:?}"))
        + word.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {word:?} in {line:?}"))
}

#[test]
fn dup_close_keeps_a_closed_fd_firing_until_deleted_first() {
    let out = pitfalls(&["dup-close"]);
    let broken = line(&out, "broken:");
    assert!(
        broken.starts_with("broken: 3 of 3 epoll_wait calls reported fd="),
        "{out}"
    );
    assert!(
        out.contains(") → -1 EBADF: the number is closed"),
        "DEL after close must fail with EBADF:\n{out}"
    );
    assert!(
        out.contains(") → -1 ENOENT: the registration is keyed on (fd, file)"),
        "{out}"
    );
    assert!(
        line(&out, "fixed:").starts_with("fixed: 0 of 3 epoll_wait calls"),
        "{out}"
    );
}

backend_tests!(
    backends: [select, poll, epoll],
    tests: [
        close_without_unregister_spins_or_goes_silent,
        the_herd_wakes_every_process_and_the_fixes_wake_one,
        emfile_spins_until_the_reserve_descriptor_sheds_the_client,
        a_signal_before_the_wait_is_lost_without_a_self_pipe,
        regular_files_are_always_ready_or_refused,
    ]
);

fn close_without_unregister_spins_or_goes_silent(backend: &str) {
    let out = pitfalls(&["close-unregister", "--backend", backend]);
    let broken = line(&out, "broken:");
    if backend == "epoll" {
        assert!(broken.contains(" with 0 events: silence"), "{out}");
        assert!(
            out.contains(") → EBADF: the kernel dropped the watch"),
            "{out}"
        );
    } else {
        let calls = number_after(broken, "returned");
        assert!(
            calls >= 100.0,
            "[{backend}] a closed fd must make the wait spin: {broken}"
        );
        let what = if backend == "poll" {
            "revents=POLLNVAL"
        } else {
            "-1 EBADF"
        };
        assert!(out.contains(what), "[{backend}] {what} not shown:\n{out}");
    }
    let fixed = line(&out, "fixed:");
    let calls = number_after(fixed, "returned");
    assert!(
        calls <= 8.0,
        "[{backend}] after unregister-then-close the wait must time out quietly: {fixed}"
    );
}

fn the_herd_wakes_every_process_and_the_fixes_wake_one(backend: &str) {
    let out = pitfalls(&["herd", "--backend", backend, "--workers", "4"]);
    let broken = line(&out, "broken:");
    let woke = number_after(broken, "broken:");
    assert!(
        woke >= 3.0,
        "[{backend}] one connection should wake (nearly) all 4 waiting processes: {broken}"
    );
    assert_eq!(
        number_after(broken, "; "),
        1.0,
        "exactly one accepts: {broken}"
    );
    let fixes = lines(&out, "fixed");
    let want = if backend == "epoll" { 2 } else { 1 };
    let skipped = lines(&out, "skipped:");
    assert_eq!(
        fixes.len() + skipped.len(),
        want,
        "[{backend}] fixes shown:\n{out}"
    );
    for s in skipped {
        eprintln!("[{backend}] {s}");
    }
    for fixed in fixes {
        let woke = number_after(fixed, "):");
        assert!(
            woke <= 2.0,
            "[{backend}] the fix should wake one process (EPOLLEXCLUSIVE: 'one or more'): {fixed}"
        );
        assert_eq!(
            number_after(fixed, "; "),
            1.0,
            "exactly one accepts: {fixed}"
        );
    }
}

fn emfile_spins_until_the_reserve_descriptor_sheds_the_client(backend: &str) {
    let out = pitfalls(&["emfile", "--backend", backend]);
    if let Some(skip) = lines(&out, "skipped:").first() {
        eprintln!("[{backend}] {skip}");
        return;
    }
    let broken = line(&out, "broken:");
    assert!(
        number_after(broken, "broken:") >= 100.0,
        "[{backend}] EMFILE must make the loop spin: {broken}"
    );
    assert!(out.contains("accept → -1 EMFILE"), "{out}");
    let fixed = line(&out, "fixed:");
    assert!(
        number_after(fixed, "fixed:") <= 10.0,
        "[{backend}] the reserve fd must stop the spin: {fixed}"
    );
    assert!(
        fixed.contains("end of file"),
        "[{backend}] the client must be refused, not left hanging: {fixed}"
    );
}

fn a_signal_before_the_wait_is_lost_without_a_self_pipe(backend: &str) {
    let out = pitfalls(&["lost-wakeup", "--backend", backend]);
    let broken = line(&out, "broken:");
    assert!(
        number_after(broken, "slept") >= 250.0,
        "[{backend}] the wait must sleep its whole timeout: {broken}"
    );
    let fixed = lines(&out, "fixed:");
    assert_eq!(fixed.len(), 2, "self-pipe and the p-variant:\n{out}");
    for f in fixed {
        assert!(
            number_after(f, "after") < 150.0,
            "[{backend}] the fix must return at once: {f}"
        );
    }
    assert!(
        out.contains("→ -1 EINTR"),
        "the p-variant is interrupted:\n{out}"
    );
}

fn regular_files_are_always_ready_or_refused(backend: &str) {
    let out = pitfalls(&["files", "--backend", backend]);
    let file = line(&out, "regular file ");
    if backend == "epoll" {
        assert!(file.ends_with("epoll_ctl(ADD) → -1 EPERM"), "{file}");
        assert!(line(&out, "/dev/null ").ends_with("-1 EPERM"), "{out}");
    } else {
        assert!(
            file.contains("at once"),
            "[{backend}] a regular file is always ready: {file}"
        );
    }
    assert!(
        out.contains("fixed: regular file  S_ISREG: read it directly"),
        "{out}"
    );
    if let Some(skip) = lines(&out, "skipped:").first() {
        eprintln!("[{backend}] {skip}");
        return;
    }
    let tty = lines(&out, "terminal ");
    assert_eq!(tty.len(), 2, "{out}");
    assert!(
        tty[0].ends_with("not ready (0)"),
        "[{backend}] an idle terminal waits: {}",
        tty[0]
    );
    assert!(
        tty[1].contains("at once (after"),
        "[{backend}] a typed line makes it ready: {}",
        tty[1]
    );
}

#[test]
fn edge_triggered_draining_starves_the_quiet_client_until_round_robin() {
    let out = pitfalls(&["edge-starvation"]);
    let broken = line(&out, "broken:");
    let fixed = line(&out, "fixed:");
    let broken_behind = number_after(broken, "behind");
    let fixed_behind = number_after(fixed, "behind");
    assert!(
        broken_behind >= 64.0,
        "draining until EAGAIN serves the flood first: {broken}"
    );
    assert!(
        fixed_behind <= 16.0,
        "round-robin serves the quiet client within one turn: {fixed}"
    );
    assert!(
        number_after(broken, "waited") > number_after(fixed, "waited"),
        "{broken}\n{fixed}"
    );
}

#[test]
fn sigpipe_kills_a_c_style_writer_and_not_rust() {
    let out = pitfalls(&["sigpipe"]);
    assert!(line(&out, "broken:").contains("killed by SIGPIPE"), "{out}");
    let fixed = lines(&out, "fixed:");
    assert_eq!(fixed.len(), 2, "{out}");
    assert!(
        fixed[0].contains("exited with 0"),
        "MSG_NOSIGNAL: {}",
        fixed[0]
    );
    assert!(
        fixed[1].contains("Err(BrokenPipe)"),
        "Rust ignores SIGPIPE: {}",
        fixed[1]
    );
    assert!(
        out.contains("SIG_IGN (set by Rust's runtime before main)"),
        "{out}"
    );
}

#[test]
fn fd_set_past_fd_setsize_aborts_in_c_and_is_refused_here() {
    let out = pitfalls(&["fd-setsize"]);
    if cfg!(target_env = "gnu") {
        assert!(line(&out, "broken:").contains("killed by SIGABRT"), "{out}");
    }
    assert!(
        out.contains("register(fd=1500) → Err: fd 1500 is above select()'s FD_SETSIZE"),
        "{out}"
    );
    let fixed = lines(&out, "fixed:");
    if fixed.is_empty() {
        eprintln!("{}", line(&out, "skipped:"));
    }
    for f in fixed {
        assert!(f.ends_with("→ readable"), "{f}");
    }
}
