//! Echo on epoll and on io_uring, oneshot and level: messages per second and
//! the server's system calls per message. A driver, not criterion.
//!
//! Where io_uring can win: in oneshot mode an epoll server pays one
//! `epoll_ctl(MOD)` per event to re-arm, while the uring backend queues the
//! re-arm and submits it inside the next `io_uring_enter`, the call that
//! waits anyway. Level mode is the control: there epoll needs no re-arm and
//! uring still re-arms every reported fd.
//!
//! The server is this binary re-executed as `--serve BACKEND TRIGGER`, a
//! plain `Poller` loop (accept; on readable: one `read`, one `write` of what
//! came, and for oneshot a `modify` that re-arms), pinned to CPU 0. The load
//! generator is this process, pinned to CPU 1: `C` connections, one 64-byte
//! message in flight on each, every echoed byte checked. Rounds interleave
//! the four servers (epoll/oneshot, uring/oneshot, epoll/level,
//! uring/level, then again) so that a noisy neighbour hurts all of them
//! alike; the table gives each server's median msgs/s, the median of the
//! per-round ratios uring/epoll with min and max, and the server's CPU time
//! per message (from `/proc/<pid>/schedstat`), which a busy machine
//! disturbs less than the rate.
//!
//! System calls: one more run per server under `strace -c -f` for a fixed
//! number of messages; the counts are divided by the messages. strace slows
//! the server down but does not change which calls it makes.
//!
//! Run: `cargo bench --bench uring_oneshot` (`-- --rounds 7 --secs 2` for a
//! longer run, `-- --smoke` for a correctness-only pass).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reactor::{Backend, EpollPoller, Events, Interest, Poller, Trigger};
use reactor_bench::median;

/// Bytes per message.
const MSG: usize = 64;
/// The listener's key; connections use their slab index.
const LISTENER: usize = usize::MAX;

/// The four servers, in the order each round runs them.
const SERVERS: [(&str, &str); 4] = [
    ("epoll", "oneshot"),
    ("uring", "oneshot"),
    ("epoll", "level"),
    ("uring", "level"),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve(&args[2], &args[3]);
    }
    let flag = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let smoke = args.iter().any(|a| a == "--smoke");
    let rounds = if smoke { 1 } else { flag("--rounds", 5) };
    let secs = Duration::from_millis(if smoke { 200 } else { flag("--secs", 1) * 1000 });
    let conns_list: &[usize] = if smoke { &[1, 10] } else { &[1, 10, 100] };
    reactor_bench::pin_to_cpu(1);

    println!("# echo, {MSG}-byte messages: epoll vs io_uring, oneshot and level\n");
    println!("{rounds} interleaved rounds of {secs:?} per server and connection count.\n");
    println!(
        "| conns | trigger | epoll msgs/s | uring msgs/s | uring/epoll median (min–max) | server CPU µs/msg epoll | uring |"
    );
    println!("|---:|---|---:|---:|---|---:|---:|");
    for &conns in conns_list {
        let mut rates: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
        let mut cpu: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
        for _ in 0..rounds {
            for server in SERVERS {
                let round = run_round(server, conns, Load::For(secs), None);
                rates.entry(server).or_default().push(round.rate);
                cpu.entry(server).or_default().push(round.cpu_us_per_msg);
            }
        }
        for trigger in ["oneshot", "level"] {
            let epoll = &rates[&("epoll", trigger)];
            let uring = &rates[&("uring", trigger)];
            let mut ratios: Vec<f64> = uring.iter().zip(epoll).map(|(u, e)| u / e).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "| {conns} | {trigger} | {:.0} | {:.0} | {:.2}× ({:.2}–{:.2}) | {:.1} | {:.1} |",
                median(&mut epoll.clone()),
                median(&mut uring.clone()),
                median(&mut ratios.clone()),
                ratios[0],
                ratios[ratios.len() - 1],
                median(&mut cpu[&("epoll", trigger)].clone()),
                median(&mut cpu[&("uring", trigger)].clone()),
            );
        }
    }

    if !have_strace() {
        println!("\nstrace not installed: system calls per message skipped");
        return;
    }
    let messages = if smoke { 2_000 } else { 20_000 };
    println!("\n## Server system calls per message (strace -c -f, {messages} messages)\n");
    for conns in [1, 10] {
        println!("{conns} connection(s):\n");
        println!("| server | per message | calls |");
        println!("|---|---:|---|");
        for server in SERVERS {
            let counts = count_syscalls(server, conns, messages);
            let total: u64 = counts.values().sum();
            let mut top: Vec<_> = counts.iter().filter(|(_, n)| **n * 100 > total).collect();
            top.sort_by(|a, b| b.1.cmp(a.1));
            let top: Vec<String> = top
                .iter()
                .map(|(name, n)| format!("{name} {:.2}", **n as f64 / messages as f64))
                .collect();
            println!(
                "| {}/{} | {:.2} | {} |",
                server.0,
                server.1,
                total as f64 / messages as f64,
                top.join(", ")
            );
        }
        println!();
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// The echo loop on one backend and trigger; exits when the last client
/// has gone (so that strace, tracing it, prints its summary).
fn serve(backend: &str, trigger: &str) {
    reactor_bench::pin_to_cpu(0);
    let backend: Backend = backend.parse().expect("backend");
    let trigger = if trigger == "oneshot" {
        Trigger::Oneshot
    } else {
        Trigger::Level
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    println!("listening on {}", listener.local_addr().unwrap());
    let _ = std::io::stdout().flush();
    let mut poller = backend.new_poller().expect("poller");
    let lfd = listener.as_raw_fd();
    poller
        .register(lfd, LISTENER, Interest::READABLE, Trigger::Level)
        .expect("register listener");
    let mut conns: slab::Slab<TcpStream> = slab::Slab::new();
    let mut served = false;
    let mut events = Events::with_capacity(256);
    let mut buf = [0u8; 4096];
    while !served || !conns.is_empty() {
        poller.poll(&mut events, None).expect("poll");
        for event in &events {
            let key = event.key();
            if key == LISTENER {
                while let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true).expect("nonblocking");
                    stream.set_nodelay(true).expect("nodelay");
                    let fd = stream.as_raw_fd();
                    let key = conns.insert(stream);
                    poller
                        .register(fd, key, Interest::READABLE, trigger)
                        .expect("register");
                    served = true;
                }
                continue;
            }
            let Some(stream) = conns.get_mut(key) else {
                continue;
            };
            let fd = stream.as_raw_fd();
            match stream.read(&mut buf) {
                // One message in flight per connection: the write never blocks.
                Ok(n) if n > 0 => stream.write_all(&buf[..n]).expect("write"),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // End of file or an error: the client has gone.
                _ => {
                    poller.unregister(fd).expect("unregister");
                    conns.remove(key);
                    continue;
                }
            }
            if trigger == Trigger::Oneshot {
                poller
                    .modify(fd, key, Interest::READABLE, trigger)
                    .expect("re-arm");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------

/// How long a round runs: for a time, or for a number of messages.
#[derive(Clone, Copy)]
enum Load {
    For(Duration),
    Messages(u64),
}

/// What one round measured.
struct Round {
    /// Messages echoed per second.
    rate: f64,
    /// The server's CPU time per message, in microseconds.
    cpu_us_per_msg: f64,
}

/// Starts `server`, runs `conns` ping-pong connections for `load`, closes
/// them, waits for the server to exit, and says what it measured.
fn run_round(server: (&str, &str), conns: usize, load: Load, wrapper: Option<&[&str]>) -> Round {
    let mut child = spawn_server(server, wrapper);
    let addr = read_addr(&mut child);
    let mut poller = EpollPoller::new().expect("epoll");
    let mut streams = Vec::with_capacity(conns);
    for key in 0..conns {
        let stream = TcpStream::connect(&addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_nonblocking(true).unwrap();
        poller
            .register(stream.as_raw_fd(), key, Interest::READABLE, Trigger::Level)
            .unwrap();
        streams.push((stream, 0u64, 0usize)); // (stream, sequence, bytes of the echo so far)
    }
    for (key, (stream, seq, _)) in streams.iter_mut().enumerate() {
        stream.write_all(&message(key, *seq)).unwrap();
    }
    let mut events = Events::with_capacity(256);
    let mut buf = [0u8; MSG];
    let mut done = 0u64;
    let cpu_before = cpu_ns(child.id());
    let start = Instant::now();
    let finished = |done: u64| match load {
        Load::For(d) => start.elapsed() >= d,
        Load::Messages(n) => done >= n,
    };
    while !finished(done) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "round stuck at {done}"
        );
        poller
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        for event in &events {
            let key = event.key();
            let (stream, seq, got) = &mut streams[key];
            match stream.read(&mut buf[*got..]) {
                Ok(0) => panic!("{server:?} closed connection {key}"),
                Ok(n) => *got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{server:?} read: {e}"),
            }
            if *got < MSG {
                continue;
            }
            assert_eq!(buf, message(key, *seq), "{server:?}: a wrong echo");
            (*seq, *got) = (*seq + 1, 0);
            done += 1;
            stream.write_all(&message(key, *seq)).unwrap();
        }
    }
    let rate = done as f64 / start.elapsed().as_secs_f64();
    let cpu_us_per_msg = (cpu_ns(child.id()) - cpu_before) as f64 / 1000.0 / done as f64;
    drop(streams);
    let status = child.wait().expect("wait for the server");
    assert!(status.success(), "{server:?} exited with {status}");
    Round {
        rate,
        cpu_us_per_msg,
    }
}

/// CPU time `pid` has used, in nanoseconds: the first field of
/// `/proc/<pid>/schedstat` (the server is single-threaded).
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Message `seq` of connection `key`: both numbers, then a filler pattern.
fn message(key: usize, seq: u64) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&(key as u64).to_le_bytes());
    m[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[16..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    m
}

fn spawn_server(server: (&str, &str), wrapper: Option<&[&str]>) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let mut command = match wrapper {
        Some(w) => {
            let mut c = Command::new(w[0]);
            c.args(&w[1..]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    command
        .args(["--serve", server.0, server.1])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server")
}

/// The address from the server's `listening on` line.
fn read_addr(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the listening line");
    line.trim()
        .strip_prefix("listening on ")
        .expect("a listening line")
        .to_owned()
}

/// Runs `server` under `strace -c -f` for `messages` messages and returns
/// its calls by system call name.
fn count_syscalls(server: (&str, &str), conns: usize, messages: u64) -> BTreeMap<String, u64> {
    let out = std::env::temp_dir().join(format!(
        "uring_oneshot-{}-{}-{}.strace",
        std::process::id(),
        server.0,
        server.1
    ));
    let out_path = out.to_str().unwrap();
    let wrapper = ["strace", "-c", "-f", "-U", "name,calls", "-o", out_path];
    run_round(server, conns, Load::Messages(messages), Some(&wrapper));
    let text = std::fs::read_to_string(&out).expect("strace summary");
    let _ = std::fs::remove_file(&out);
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, calls) = (words.next()?, words.next()?.parse().ok()?);
            (name != "total").then(|| (name.to_owned(), calls))
        })
        .collect()
}

fn have_strace() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok()
}
