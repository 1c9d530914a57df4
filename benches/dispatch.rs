//! B1 — dispatch cost versus idle descriptors, libevent's `bench.c` design
//! (docs/benchmarks.md, "B1: dispatch").
//!
//! N socketpairs, the read end of each registered for level-triggered
//! readability. A = 100 of them are made active by writing one byte; every
//! read callback reads its byte and, while writes remain (W = N), writes one
//! byte to the *next* pair, so A chains of events run through the set until
//! A + W bytes have been read. Only the chains are timed: registering the
//! N read ends before a measurement and removing them after is not
//! (set-up has its own group).
//!
//! Interleaved rounds ([`reactor_bench::rounds`]): at each N, every variant
//! is calibrated to a fixed number of chains (about `--secs` seconds), then
//! for R rounds each variant runs its chains once, in the fixed order
//! below; the process is pinned to one CPU. Groups, ns per element:
//! - `run/<N>`: the chains' run time per event (A + W events a chain);
//! - `setup/<N>`: register N then unregister all, per registration.
//!
//! The report gives each variant's median [min–max] and, per round,
//! ours/peer for `poller_epoll` and `reactor_epoll` against every epoll
//! peer, judged against ≤ 1.00× mio, libev and libevent. A lost byte is a
//! correctness failure (exit 1).
//!
//! Variants: `poller_{select,poll,epoll}` (the backend types through the
//! `Poller` trait), `reactor_{select,poll,epoll}` (`Reactor::with_backend`:
//! the fd→object map, generation check and backend dispatch included),
//! `mio_epoll` (mio 1.x, its own epoll; the token is the chain index, so
//! nothing is looked up), `mio_slab_epoll` (mio as an application uses it:
//! the token is a key into a `Slab` of its objects, looked up per event,
//! the work `Reactor` does), `polling_epoll` (the `polling`
//! crate as its docs use it: oneshot, re-armed with `modify` after each
//! event, so one more `epoll_ctl` per event), `libev_epoll` and
//! `libevent_epoll` (bench.c's callbacks in C against Debian's libev 4.33
//! and libevent 2.1.12, `benches/peers/*.c`; skipped with a note when not
//! installed) and `libc_epoll` (a plain level-triggered `epoll_wait` loop:
//! the floor). select runs only for
//! N ≤ 500 pairs (its fds must stay below FD_SETSIZE = 1024); a size whose
//! descriptors would pass `ulimit -n` is skipped with a message.
//!
//! Every variant reads with one `read` per event and writes with one
//! `write`, so the libraries differ only in how they wait and dispatch.
//! mio is edge-triggered; with one byte per wake-up a single read drains the
//! socket, so the chain is identical.
//!
//! Run: `cargo bench -p reactor-bench --bench dispatch -- --reduced` (5
//! rounds; `--quick` 3, `--full` 7, `--smoke` 1 round of one chain: the
//! event count only; `--rounds R --secs S` overrides, `--cpu K` pins
//! elsewhere, `--out DIR` for `b1_rounds.{csv,md}`), and `-- --instructions`
//! for the callgrind counts (or `benches/run.sh`).

use reactor_bench as common;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use reactor::{
    AnyPoller, Backend, EpollPoller, Events, Interest, PollPoller, Poller, Reactor, SelectPoller,
    Token, Trigger,
};
use reactor_bench::rounds::{self, Profile, Run, Variant};

/// Active chains (bench.c's `-a`).
const ACTIVE: usize = 100;
/// Pairs (bench.c's `-n`).
const SIZES: [usize; 4] = [100, 1000, 5000, 9500];
/// select's limit in pairs (2 fds per pair, all below 1024).
const SELECT_MAX_PAIRS: usize = 500;
/// Events buffer size, the same for every variant.
const BATCH: usize = 1024;

/// The chained-writes state of one run.
struct Chain<'a> {
    readers: &'a [RawFd],
    writers: &'a [RawFd],
    fired: usize,
    count: usize,
    writes: usize,
}

impl<'a> Chain<'a> {
    /// Starts a run: A active pairs spread evenly, W writes to come.
    fn start(readers: &'a [RawFd], writers: &'a [RawFd], writes: usize) -> Chain<'a> {
        let n = readers.len();
        let space = (n / ACTIVE).max(1);
        let mut fired = 0;
        for i in 0..ACTIVE.min(n) {
            common::write_byte(writers[i * space]);
            fired += 1;
        }
        Chain {
            readers,
            writers,
            fired,
            count: 0,
            writes,
        }
    }

    /// bench.c's `read_cb`.
    #[inline]
    fn on_read(&mut self, idx: usize) {
        self.count += common::read_some(self.readers[idx]);
        if self.writes > 0 {
            let mut next = idx + 1;
            if next >= self.writers.len() {
                next = 0;
            }
            common::write_byte(self.writers[next]);
            self.writes -= 1;
            self.fired += 1;
        }
    }

    fn done(&self) -> bool {
        self.count >= self.fired
    }
}

/// One event loop under test.
trait Loop {
    fn setup(&mut self, readers: &[RawFd]);
    fn teardown(&mut self, readers: &[RawFd]);
    fn run(&mut self, chain: &mut Chain<'_>);
}

/// A backend type used directly through the `Poller` trait.
struct PollerLoop<P: Poller> {
    poller: P,
    events: Events,
}

impl<P: Poller> Loop for PollerLoop<P> {
    fn setup(&mut self, readers: &[RawFd]) {
        for (i, &fd) in readers.iter().enumerate() {
            self.poller
                .register(fd, i, Interest::READABLE, Trigger::Level)
                .expect("register");
        }
    }
    fn teardown(&mut self, readers: &[RawFd]) {
        for &fd in readers {
            self.poller.unregister(fd).expect("unregister");
        }
    }
    fn run(&mut self, chain: &mut Chain<'_>) {
        while !chain.done() {
            self.poller.poll(&mut self.events, None).expect("poll");
            for ev in self.events.iter() {
                chain.on_read(ev.key());
            }
        }
    }
}

/// The object the `Reactor` variant stores: a borrowed read end and its index.
struct Pipe {
    fd: RawFd,
    idx: usize,
}

impl AsFd for Pipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the socketpairs outlive every reactor registration (they are
        // removed in teardown before the pairs are dropped).
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

/// `Reactor::with_backend`: what an application writes.
struct ReactorLoop {
    reactor: Reactor<Pipe, AnyPoller>,
    tokens: Vec<Token>,
    events: Events,
}

impl Loop for ReactorLoop {
    fn setup(&mut self, readers: &[RawFd]) {
        self.tokens.clear();
        for (idx, &fd) in readers.iter().enumerate() {
            let token = self
                .reactor
                .insert(Pipe { fd, idx }, Interest::READABLE)
                .expect("insert");
            self.tokens.push(token);
        }
    }
    fn teardown(&mut self, _readers: &[RawFd]) {
        for token in self.tokens.drain(..) {
            self.reactor.remove(token).expect("remove");
        }
    }
    fn run(&mut self, chain: &mut Chain<'_>) {
        while !chain.done() {
            self.reactor.poll(&mut self.events, None).expect("poll");
            for ev in self.events.iter() {
                if let Some(pipe) = self.reactor.get(ev.token()) {
                    chain.on_read(pipe.idx);
                }
            }
        }
    }
}

/// mio 1.x (epoll, edge-triggered).
struct MioLoop {
    poll: mio::Poll,
    events: mio::Events,
}

impl Loop for MioLoop {
    fn setup(&mut self, readers: &[RawFd]) {
        for (i, fd) in readers.iter().enumerate() {
            self.poll
                .registry()
                .register(
                    &mut mio::unix::SourceFd(fd),
                    mio::Token(i),
                    mio::Interest::READABLE,
                )
                .expect("mio register");
        }
    }
    fn teardown(&mut self, readers: &[RawFd]) {
        for fd in readers {
            self.poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(fd))
                .expect("mio deregister");
        }
    }
    fn run(&mut self, chain: &mut Chain<'_>) {
        while !chain.done() {
            self.poll.poll(&mut self.events, None).expect("mio poll");
            for ev in self.events.iter() {
                chain.on_read(ev.token().0);
            }
        }
    }
}

/// mio as an application uses it: the token is a key into a `Slab` of the
/// application's objects, looked up on every event (mio keeps nothing per
/// registration, so finding the object is the application's work — the
/// same work `Reactor` does for `reactor_epoll`).
struct MioSlabLoop {
    poll: mio::Poll,
    events: mio::Events,
    pipes: slab::Slab<Pipe>,
}

impl Loop for MioSlabLoop {
    fn setup(&mut self, readers: &[RawFd]) {
        for (idx, &fd) in readers.iter().enumerate() {
            let key = self.pipes.insert(Pipe { fd, idx });
            self.poll
                .registry()
                .register(
                    &mut mio::unix::SourceFd(&fd),
                    mio::Token(key),
                    mio::Interest::READABLE,
                )
                .expect("mio register");
        }
    }
    fn teardown(&mut self, _readers: &[RawFd]) {
        for (_, pipe) in self.pipes.iter() {
            self.poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&pipe.fd))
                .expect("mio deregister");
        }
        self.pipes.clear();
    }
    fn run(&mut self, chain: &mut Chain<'_>) {
        while !chain.done() {
            self.poll.poll(&mut self.events, None).expect("mio poll");
            for ev in self.events.iter() {
                if let Some(pipe) = self.pipes.get(ev.token().0) {
                    chain.on_read(pipe.idx);
                }
            }
        }
    }
}

/// The floor: a plain level-triggered epoll loop.
struct LibcLoop {
    ep: OwnedFd,
    buf: Vec<libc::epoll_event>,
}

impl Loop for LibcLoop {
    fn setup(&mut self, readers: &[RawFd]) {
        for (i, &fd) in readers.iter().enumerate() {
            common::epoll_ctl(
                &self.ep,
                libc::EPOLL_CTL_ADD,
                fd,
                libc::EPOLLIN as u32,
                i as u64,
            );
        }
    }
    fn teardown(&mut self, readers: &[RawFd]) {
        for &fd in readers {
            common::epoll_ctl(&self.ep, libc::EPOLL_CTL_DEL, fd, 0, 0);
        }
    }
    fn run(&mut self, chain: &mut Chain<'_>) {
        while !chain.done() {
            // SAFETY: `buf` has room for BATCH events.
            let n = unsafe {
                libc::epoll_wait(self.ep.as_raw_fd(), self.buf.as_mut_ptr(), BATCH as i32, -1)
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                assert_eq!(err.raw_os_error(), Some(libc::EINTR), "epoll_wait: {err}");
                continue;
            }
            for ev in &self.buf[..n as usize] {
                chain.on_read(ev.u64 as usize);
            }
        }
    }
}

/// The `polling` crate as its documentation uses it: oneshot interest,
/// re-armed with `modify` after each event.
struct PollingLoop {
    poller: polling::Poller,
    events: polling::Events,
    readers: Vec<RawFd>,
}

impl Loop for PollingLoop {
    fn setup(&mut self, readers: &[RawFd]) {
        self.readers = readers.to_vec();
        for (i, &fd) in readers.iter().enumerate() {
            // SAFETY: the socketpairs outlive the registration (teardown
            // deletes it before they are dropped).
            unsafe { self.poller.add(fd, polling::Event::readable(i)) }.expect("polling add");
        }
    }
    fn teardown(&mut self, readers: &[RawFd]) {
        for &fd in readers {
            // SAFETY: `fd` is open and registered (setup).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            self.poller.delete(fd).expect("polling delete");
        }
    }
    fn run(&mut self, chain: &mut Chain<'_>) {
        while !chain.done() {
            self.events.clear();
            self.poller
                .wait(&mut self.events, None)
                .expect("polling wait");
            for ev in self.events.iter() {
                chain.on_read(ev.key);
                // SAFETY: as in setup.
                let fd = unsafe { BorrowedFd::borrow_raw(self.readers[ev.key]) };
                self.poller
                    .modify(fd, polling::Event::readable(ev.key))
                    .expect("polling modify");
            }
        }
    }
}

/// libev or libevent (`benches/peers/*.c`), bench.c's callbacks in C.
struct CLoop(reactor_bench::peers::B1);

impl Loop for CLoop {
    fn setup(&mut self, readers: &[RawFd]) {
        self.0.setup(readers);
    }
    fn teardown(&mut self, _readers: &[RawFd]) {
        self.0.teardown();
    }
    fn run(&mut self, chain: &mut Chain<'_>) {
        let count = self.0.run(chain.writers, chain.fired, chain.writes);
        chain.count += count;
        chain.fired = chain.count;
        chain.writes = 0;
    }
}

fn variants(n: usize) -> Vec<(&'static str, Box<dyn Loop>)> {
    let mut v: Vec<(&'static str, Box<dyn Loop>)> = Vec::new();
    let events = || Events::with_capacity(BATCH);
    if n <= SELECT_MAX_PAIRS {
        v.push((
            "poller_select",
            Box::new(PollerLoop {
                poller: SelectPoller::new(),
                events: events(),
            }),
        ));
    }
    v.push((
        "poller_poll",
        Box::new(PollerLoop {
            poller: PollPoller::new(),
            events: events(),
        }),
    ));
    v.push((
        "poller_epoll",
        Box::new(PollerLoop {
            poller: EpollPoller::new().expect("epoll"),
            events: events(),
        }),
    ));
    for backend in Backend::ALL {
        if backend == Backend::Select && n > SELECT_MAX_PAIRS {
            continue;
        }
        let name = match backend {
            Backend::Select => "reactor_select",
            Backend::Poll => "reactor_poll",
            Backend::Epoll => "reactor_epoll",
            Backend::Uring => "reactor_uring",
        };
        v.push((
            name,
            Box::new(ReactorLoop {
                reactor: Reactor::with_backend(backend).expect("reactor"),
                tokens: Vec::with_capacity(n),
                events: events(),
            }),
        ));
    }
    v.push((
        "mio_epoll",
        Box::new(MioLoop {
            poll: mio::Poll::new().expect("mio"),
            events: mio::Events::with_capacity(BATCH),
        }),
    ));
    v.push((
        "mio_slab_epoll",
        Box::new(MioSlabLoop {
            poll: mio::Poll::new().expect("mio"),
            events: mio::Events::with_capacity(BATCH),
            pipes: slab::Slab::with_capacity(n),
        }),
    ));
    v.push((
        "polling_epoll",
        Box::new(PollingLoop {
            poller: polling::Poller::new().expect("polling"),
            events: polling::Events::with_capacity(
                std::num::NonZeroUsize::new(BATCH).expect("BATCH > 0"),
            ),
            readers: Vec::new(),
        }),
    ));
    for peer in reactor_bench::peers::c_peers() {
        let name = match peer.name {
            "libev" => "libev_epoll",
            _ => "libevent_epoll",
        };
        v.push((
            name,
            Box::new(CLoop(reactor_bench::peers::B1::new(peer, n))),
        ));
    }
    v.push((
        "libc_epoll",
        Box::new(LibcLoop {
            ep: common::epoll_create(),
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; BATCH],
        }),
    ));
    v
}

/// The run of one variant at N: register the N read ends, time `reps`
/// chains of A + W events, unregister. A lost byte is a failure.
fn run_variant<'a>(
    name: &'static str,
    mut lp: Box<dyn Loop>,
    readers: &'a [RawFd],
    writers: &'a [RawFd],
) -> Variant<'a> {
    let n = readers.len();
    let events = ACTIVE.min(n) + n;
    Variant::new(name, events, move |reps| {
        lp.setup(readers);
        let mut total = Duration::ZERO;
        let mut result = Ok(());
        for _ in 0..reps {
            let start = Instant::now();
            let mut chain = Chain::start(readers, writers, n);
            lp.run(&mut chain);
            total += start.elapsed();
            if chain.count != events {
                result = Err(format!("{} of {events} events at N={n}", chain.count));
                break;
            }
        }
        lp.teardown(readers);
        result.map(|()| total)
    })
}

/// The set-up of one variant at N: `reps` times register N, unregister all.
fn setup_variant<'a>(
    name: &'static str,
    mut lp: Box<dyn Loop>,
    readers: &'a [RawFd],
) -> Variant<'a> {
    Variant::new(name, readers.len(), move |reps| {
        let start = Instant::now();
        for _ in 0..reps {
            lp.setup(readers);
            lp.teardown(readers);
        }
        Ok(start.elapsed())
    })
}

/// The judged variants and peers, in the tables' order.
const JUDGED: [&str; 2] = ["poller_epoll", "reactor_epoll"];
/// Each peer and its target (ours/peer ≤ target), `None` when reported only.
const PEERS: [(&str, Option<f64>); 6] = [
    ("mio_epoll", Some(1.0)),
    ("mio_slab_epoll", Some(1.0)),
    ("polling_epoll", None),
    ("libev_epoll", Some(1.0)),
    ("libevent_epoll", Some(1.0)),
    ("libc_epoll", None),
];

/// B1 in interleaved rounds at every N; writes `b1_rounds.{csv,md}`.
fn rounds(args: &[String]) {
    let profile = Profile::from_args(args, 0.2);
    let out = rounds::out_dir(args);
    let mut run = Run::start("B1 dispatch", profile);
    let mut sizes = Vec::new();
    for n in SIZES {
        if !common::fds_available(2 * n as u64 + 16, &format!("b1 at N={n}")) {
            continue;
        }
        sizes.push(n);
        let pairs = common::socketpairs(n);
        let readers: Vec<RawFd> = pairs.iter().map(|(r, _)| r.as_raw_fd()).collect();
        let writers: Vec<RawFd> = pairs.iter().map(|(_, w)| w.as_raw_fd()).collect();
        let runs = variants(n)
            .into_iter()
            .map(|(name, lp)| run_variant(name, lp, &readers, &writers))
            .collect();
        run.group(&format!("run/{n}"), runs);
        let setups = variants(n)
            .into_iter()
            .map(|(name, lp)| setup_variant(name, lp, &readers))
            .collect();
        run.group(&format!("setup/{n}"), setups);
    }

    let names: Vec<&str> = variants(100).iter().map(|(name, _)| *name).collect();
    let groups = |kind: &str| -> Vec<(String, String)> {
        sizes
            .iter()
            .map(|n| (format!("{kind}/{n}"), format!("N={n}")))
            .collect()
    };
    let mut md = format!("{}\n\n", run.method(&names));
    md.push_str("Run time per event (A = 100 active chains, W = N chained writes):\n\n");
    md.push_str(&rounds::times_table(&run, &groups("run"), &names));
    md.push_str(
        "\nRun time per event, ours/peer (targets: `Poller` and `Reactor` on epoll ≤ 1.00× mio, \
         libev and libevent; polling and the libc loop are reported, not judged):\n\n\
         | N | peer | poller_epoll/peer | reactor_epoll/peer |\n|---|---|---|---|\n",
    );
    for &n in &sizes {
        let group = format!("run/{n}");
        for (peer, target) in PEERS {
            if !run.has(&group, peer) {
                continue;
            }
            let _ = write!(md, "| {n} | {peer} |");
            for ours in JUDGED {
                let shown = run.show_ratio(&group, ours, peer, target.map(|t| (t, true)));
                let _ = write!(md, " {shown} |");
            }
            md.push('\n');
        }
    }
    md.push_str("\nSet-up per registration (register N, then unregister all; per fd):\n\n");
    md.push_str(&rounds::times_table(&run, &groups("setup"), &names));
    run.finish(&out, "b1_rounds", &md);
}

/// Child mode for `--instructions`: N pairs, register once, `runs` runs,
/// unregister.
fn instructions_child(variant: &str, n: usize, runs: usize) {
    let pairs = common::socketpairs(n);
    let readers: Vec<RawFd> = pairs.iter().map(|(r, _)| r.as_raw_fd()).collect();
    let writers: Vec<RawFd> = pairs.iter().map(|(_, w)| w.as_raw_fd()).collect();
    let Some((_, mut lp)) = variants(n).into_iter().find(|(name, _)| *name == variant) else {
        eprintln!("unknown variant {variant} at N={n}");
        std::process::exit(2);
    };
    lp.setup(&readers);
    for _ in 0..runs {
        let mut chain = Chain::start(&readers, &writers, n);
        lp.run(&mut chain);
        assert_eq!(chain.count, ACTIVE.min(n) + n, "{variant}: lost bytes");
    }
    lp.teardown(&readers);
}

/// Instructions (callgrind's `Ir`, user space only) of one child run.
fn callgrind_ir(variant: &str, n: usize, runs: usize) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&exe)
        .args([
            "--instructions-child",
            variant,
            &n.to_string(),
            &runs.to_string(),
        ])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("child failed: {}", out.status));
    }
    text.lines()
        .find_map(|l| l.split_once("refs:").map(|(_, v)| v.replace(',', "")))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no 'refs:' line from callgrind".to_owned())
}

/// `--instructions`: user-space instructions per event for every variant
/// at N = 100 and 1000, from two callgrind runs (1 and 4 runs of the chain,
/// so set-up and tear-down cancel). Deterministic, unlike wall time.
fn instructions() {
    println!("{}", common::env_header());
    if std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("valgrind not installed: instruction counts skipped");
        return;
    }
    println!(
        "# B1 user-space instructions per event (valgrind --tool=callgrind; runs of 1 and 4 chains)"
    );
    let sizes = [100usize, 1000];
    print!("| variant |");
    for n in sizes {
        print!(" N={n} |");
    }
    println!("\n|---|---|---|");
    let names: Vec<&str> = variants(100).iter().map(|(name, _)| *name).collect();
    for name in names {
        print!("| {name} |");
        for n in sizes {
            if name.ends_with("select") && n > SELECT_MAX_PAIRS {
                print!(" – |");
                continue;
            }
            match (callgrind_ir(name, n, 1), callgrind_ir(name, n, 4)) {
                (Ok(a), Ok(b)) => {
                    let per = (b as f64 - a as f64) / (3 * (ACTIVE + n)) as f64;
                    print!(" {per:.0} |");
                }
                (Err(e), _) | (_, Err(e)) => print!(" error: {e} |"),
            }
        }
        println!();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--instructions-child") {
        let arg = |k: usize| args.get(i + k).map_or("", String::as_str);
        instructions_child(
            arg(1),
            arg(2).parse().unwrap_or(100),
            arg(3).parse().unwrap_or(1),
        );
        return;
    }
    if args.iter().any(|a| a == "--instructions") {
        instructions();
        return;
    }
    rounds(&args);
}
