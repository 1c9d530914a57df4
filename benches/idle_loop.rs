//! B8 — idle loop overhead, libevent's `bench_loop.c` design
//! (docs/benchmarks.md, "B8: idle loop"): one wait with a zero timeout and nothing ready, one
//! never-ready registration (an eventfd nobody writes).
//!
//! - interleaved rounds ([`reactor_bench::rounds`], the default): ns per
//!   turn, each variant calibrated to a fixed number of turns (about
//!   `--secs` seconds) and measured once per round in the order below, the
//!   process pinned to one CPU; per round, each variant ÷ `raw_epoll_wait0`,
//!   judged for `poller_epoll` and `reactor_epoll` against ≤ 1.05×.
//!   Variants: `poller_{select,poll,epoll,uring}` (the backend through the
//!   `Poller` trait), `reactor_{select,poll,epoll,uring}`
//!   (`Reactor::with_backend`), `reactor_epoll_1000_timers` (the same with
//!   1000 armed timers due in an hour), `mio_epoll` (`poll(Some(0))`),
//!   `polling_epoll` (`wait(Some(0))`), `libev_epoll` (`ev_run(EVRUN_NOWAIT)`)
//!   and `libevent_epoll` (`event_base_loop(EVLOOP_NONBLOCK)`, bench_loop.c's
//!   turn; both C peers skipped with a note when not installed) and
//!   `raw_epoll_wait0` (the floor).
//! - `--count-syscalls [N]`: runs each variant N and 10·N
//!   iterations under `strace -f -c` and prints the system calls per
//!   iteration (the difference of the two runs' totals over 9·N iterations,
//!   so the set-up calls cancel). The target is exactly 1. Exits 1 if a
//!   variant makes more than one call per iteration, 0 with a message if
//!   strace is missing.
//! - `--instructions`: user-space instructions per turn under callgrind.
//!
//! Run: `cargo bench -p reactor-bench --bench idle_loop -- --reduced` (5
//! rounds; `--quick` 3, `--full` 7, `--smoke` 1 round of one turn;
//! `--rounds R --secs S`, `--cpu K`, `--out DIR` for `b8_rounds.{csv,md}`)
//! and `-- --count-syscalls` (or `benches/run.sh`).

use reactor_bench as common;

use std::hint::black_box;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use reactor::{
    AnyPoller, Backend, EpollPoller, Events, Interest, PollPoller, Poller, Reactor, SelectPoller,
    Token, Trigger, UringPoller,
};
use reactor_bench::rounds::{self, Profile, Run, Variant};

/// Every variant, ours first; the C peers only where this build has them.
fn variants() -> Vec<&'static str> {
    let mut v = vec![
        "poller_select",
        "poller_poll",
        "poller_epoll",
        "poller_uring",
        "reactor_select",
        "reactor_poll",
        "reactor_epoll",
        "reactor_uring",
        "reactor_epoll_1000_timers",
        "mio_epoll",
        "polling_epoll",
    ];
    for peer in reactor_bench::peers::c_peers() {
        v.push(if peer.name == "libev" {
            "libev_epoll"
        } else {
            "libevent_epoll"
        });
    }
    v.push("raw_epoll_wait0");
    v
}

/// Ours (judged against the one-system-call target) or a peer (reported).
fn is_ours(variant: &str) -> bool {
    variant.starts_with("poller_") || variant.starts_with("reactor_")
}

/// One idle loop, ready to turn: `step()` does one zero-timeout wait.
struct Idle {
    _fd: OwnedFd,
    step: Box<dyn FnMut() -> usize>,
}

impl Idle {
    /// One turn. A method, so that a closure calling it owns the whole
    /// `Idle`, descriptor included (a closure naming only `step` would
    /// capture that field alone and let the descriptor close).
    #[inline]
    fn turn(&mut self) -> usize {
        (self.step)()
    }
}

fn idle(variant: &str) -> Idle {
    let fd = common::eventfd();
    let raw = fd.as_raw_fd();
    let zero = Some(Duration::ZERO);
    fn with_poller<P: Poller + 'static>(mut p: P, raw: i32) -> Box<dyn FnMut() -> usize> {
        p.register(raw, 0, Interest::READABLE, Trigger::Level)
            .expect("register");
        let mut events = Events::with_capacity(64);
        Box::new(move || p.poll(&mut events, Some(Duration::ZERO)).expect("poll"))
    }
    fn with_reactor(backend: Backend, fd: &OwnedFd, timers: usize) -> Box<dyn FnMut() -> usize> {
        let mut r: Reactor<OwnedFd, AnyPoller> = Reactor::with_backend(backend).expect("reactor");
        r.insert(fd.try_clone().expect("dup"), Interest::READABLE)
            .expect("insert");
        let far = Instant::now() + Duration::from_secs(3600);
        for i in 0..timers {
            r.timer_at(far + Duration::from_millis(i as u64), Token::from_key(i));
        }
        let mut events = Events::with_capacity(64);
        Box::new(move || r.poll(&mut events, Some(Duration::ZERO)).expect("poll"))
    }
    let step: Box<dyn FnMut() -> usize> = match variant {
        "poller_select" => with_poller(SelectPoller::new(), raw),
        "poller_poll" => with_poller(PollPoller::new(), raw),
        "poller_epoll" => with_poller(EpollPoller::new().expect("epoll"), raw),
        "poller_uring" => with_poller(UringPoller::new().expect("io_uring"), raw),
        "reactor_select" => with_reactor(Backend::Select, &fd, 0),
        "reactor_poll" => with_reactor(Backend::Poll, &fd, 0),
        "reactor_epoll" => with_reactor(Backend::Epoll, &fd, 0),
        "reactor_uring" => with_reactor(Backend::Uring, &fd, 0),
        "reactor_epoll_1000_timers" => with_reactor(Backend::Epoll, &fd, 1000),
        "mio_epoll" => {
            let mut poll = mio::Poll::new().expect("mio");
            poll.registry()
                .register(
                    &mut mio::unix::SourceFd(&raw),
                    mio::Token(0),
                    mio::Interest::READABLE,
                )
                .expect("mio register");
            let mut events = mio::Events::with_capacity(64);
            Box::new(move || {
                poll.poll(&mut events, zero).expect("mio poll");
                events.iter().count()
            })
        }
        "polling_epoll" => {
            let poller = polling::Poller::new().expect("polling");
            // SAFETY: `fd` outlives the poller (both live in the Idle).
            unsafe { poller.add(raw, polling::Event::readable(0)) }.expect("polling add");
            let mut events =
                polling::Events::with_capacity(std::num::NonZeroUsize::new(64).expect("64 > 0"));
            Box::new(move || {
                events.clear();
                poller.wait(&mut events, zero).expect("polling wait")
            })
        }
        "libev_epoll" | "libevent_epoll" => {
            let name = variant.trim_end_matches("_epoll");
            let peer =
                reactor_bench::peers::c_peer(name).expect("variants() lists built peers only");
            let mut b8 = reactor_bench::peers::B8::new(peer, raw, 0);
            Box::new(move || {
                b8.iter(1);
                0
            })
        }
        "raw_epoll_wait0" => {
            let ep = common::epoll_create();
            common::epoll_ctl(&ep, libc::EPOLL_CTL_ADD, raw, libc::EPOLLIN as u32, 0);
            let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
            Box::new(move || {
                // SAFETY: `evs` has room for 64 events.
                let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 64, 0) };
                n.max(0) as usize
            })
        }
        other => panic!("unknown variant {other}"),
    };
    Idle { _fd: fd, step }
}

/// The variants judged against ≤ 1.05× raw `epoll_wait(0)`.
const JUDGED: [&str; 2] = ["poller_epoll", "reactor_epoll"];
const TARGET: f64 = 1.05;
const RAW: &str = "raw_epoll_wait0";

/// B8 in interleaved rounds; writes `b8_rounds.{csv,md}`.
fn rounds(args: &[String]) {
    // Longer measurements than B1's and B5's: the target is a 5 % margin.
    let profile = Profile::from_args(args, 0.5);
    let out = rounds::out_dir(args);
    let mut run = Run::start("B8 idle loop", profile);
    let names = variants();
    let loops = names
        .iter()
        .map(|&variant| {
            let mut lp = idle(variant);
            Variant::new(variant, 1, move |reps| {
                let mut ready = 0;
                let start = Instant::now();
                for _ in 0..reps {
                    ready += black_box(lp.turn());
                }
                let took = start.elapsed();
                // Nobody writes the eventfd: an idle wait reports nothing.
                if ready != 0 {
                    return Err(format!("{ready} events from an idle loop"));
                }
                Ok(took)
            })
        })
        .collect();
    run.group("idle", loops);

    let mut md = format!("{}\n\n", run.method(&names));
    md.push_str(&format!(
        "Per turn (one zero-timeout wait, one never-ready eventfd), and × raw `epoll_wait(0)` \
         per round (target: `Poller` and `Reactor` on epoll ≤ {TARGET:.2}×; the others are \
         reported, not judged):\n\n\
         | variant | ns / turn | × raw `epoll_wait(0)` |\n|---|---|---|\n"
    ));
    for variant in &names {
        let target = JUDGED.contains(variant).then_some((TARGET, true));
        let _ = writeln!(
            md,
            "| {variant} | {} | {} |",
            rounds::show_ns(run.time("idle", variant)),
            if *variant == RAW {
                "1".to_owned()
            } else {
                run.show_ratio("idle", variant, RAW, target)
            }
        );
    }
    run.finish(&out, "b8_rounds", &md);
}

/// Child mode: set up, turn the loop `iters` times, exit.
fn syscall_child(variant: &str, iters: u64) {
    let mut lp = idle(variant);
    for _ in 0..iters {
        black_box((lp.step)());
    }
}

/// Total system calls (strace -c's "total" row) of one child run.
fn strace_total(variant: &str, iters: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out_file = std::env::temp_dir().join(format!(
        "idle_loop_strace_{}_{variant}_{iters}.txt",
        std::process::id()
    ));
    let status = Command::new("strace")
        .arg("-f")
        .arg("-c")
        .arg("-o")
        .arg(&out_file)
        .arg(&exe)
        .arg("--syscall-child")
        .arg(variant)
        .arg(iters.to_string())
        .status()
        .map_err(|e| format!("strace: {e}"))?;
    let text = std::fs::read_to_string(&out_file).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out_file);
    if !status.success() {
        return Err(format!("child failed: {status}\n{text}"));
    }
    // The "total" row: `100.00  0.0123  1  20123  5  total`; calls is the
    // column before errors (which may be blank).
    let line = text
        .lines()
        .find(|l| l.trim_end().ends_with("total"))
        .ok_or_else(|| format!("no total row in strace output:\n{text}"))?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok())
        .collect();
    // Integer columns on the total row: [calls] or [calls, errors]
    // (usecs/call may also be an integer: then it comes first).
    let floats = line.split_whitespace().filter(|w| w.contains('.')).count();
    let ints_before_total = line.split_whitespace().count() - 1 - floats;
    let calls = match (ints_before_total, nums.as_slice()) {
        (1, [calls]) => *calls,
        (2, [a, b]) => {
            // Either [usecs/call, calls] or [calls, errors]: strace prints
            // errors only when some call failed; our loops' set-up makes none
            // that matter, so take the larger as calls.
            *a.max(b)
        }
        (3, [_usecs, calls, _errors]) => *calls,
        _ => return Err(format!("cannot read strace total row: {line}")),
    };
    Ok(calls)
}

fn count_syscalls(n: u64) -> i32 {
    println!("{}", common::env_header());
    if Command::new("strace").arg("-V").output().is_err() {
        println!("strace not installed (apt-get install -y strace): syscall count skipped");
        return 0;
    }
    println!(
        "# B8 system calls per idle-loop iteration (strace -f -c, runs of {n} and {} iterations)",
        10 * n
    );
    println!("| variant | syscalls / iteration | target 1 |");
    println!("|---|---|---|");
    let mut failed = false;
    for variant in variants() {
        match (strace_total(variant, n), strace_total(variant, 10 * n)) {
            (Ok(a), Ok(b)) => {
                let per = (b as f64 - a as f64) / (9 * n) as f64;
                // Allow 0.1% of noise (a stray signal, a page fault's madvise).
                let met = (per - 1.0).abs() < 0.001;
                // Peers are reported, not judged.
                let ours = is_ours(variant);
                failed |= ours && !met;
                println!(
                    "| {variant} | {per:.4} | {} |",
                    if met {
                        "met"
                    } else if ours {
                        "MISS"
                    } else {
                        "(peer)"
                    }
                );
            }
            (Err(e), _) | (_, Err(e)) => {
                println!("| {variant} | error: {e} | MISS |");
                failed = true;
            }
        }
    }
    i32::from(failed)
}

/// Instructions (callgrind's `Ir`, user space only) of one child run.
fn callgrind_ir(variant: &str, iters: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&exe)
        .args(["--syscall-child", variant, &iters.to_string()])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!("child failed: {}", out.status));
    }
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.split_once("refs:").map(|(_, v)| v.replace(',', "")))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no 'refs:' line from callgrind".to_owned())
}

/// `--instructions`: user-space instructions per iteration (callgrind, runs
/// of 1000 and 11000 iterations). Deterministic, unlike wall time.
fn instructions() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("valgrind not installed: instruction counts skipped");
        return;
    }
    println!("# B8 user-space instructions per idle-loop iteration (valgrind --tool=callgrind)");
    println!("| variant | instructions / iteration |");
    println!("|---|---|");
    for variant in variants() {
        match (callgrind_ir(variant, 1000), callgrind_ir(variant, 11000)) {
            (Ok(a), Ok(b)) => println!("| {variant} | {:.0} |", (b as f64 - a as f64) / 10_000.0),
            (Err(e), _) | (_, Err(e)) => println!("| {variant} | error: {e} |"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--instructions") {
        instructions();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--syscall-child") {
        let variant = args.get(i + 1).map(String::as_str).unwrap_or("");
        let iters = args.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(0);
        syscall_child(variant, iters);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--count-syscalls") {
        let n = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(2000);
        std::process::exit(count_syscalls(n));
    }
    rounds(&args);
}
