//! B2 — echo ping-pong: throughput and server CPU per message
//! (docs/benchmarks.md, "B2: echo"). A driver, not criterion (`harness = false`).
//!
//! Three single-threaded servers, each its own process (this binary
//! re-executed as `--serve ours|mio|libc`), pinned to CPU 0:
//! - `ours`: the `echo` example's engine (`servers/src/echo_engine.rs`)
//!   on `Reactor` with the epoll backend;
//! - `mio`: mio 1.x written as mio's own examples write it: edge-triggered,
//!   read until `WouldBlock`, echo what was read, queue what `write` did not
//!   take (connections in a `Slab`, like ours);
//! - `libc`: a plain level-triggered `epoll_wait` loop, one `read` and one
//!   `write` per readable event: the floor.
//!
//! One load generator (this process, pinned to CPU 1, busy-polling
//! `epoll_wait(0)`) keeps one message in flight per connection. Every
//! message carries its sequence number and connection id and every echoed
//! byte is compared with what was sent. Rounds run interleaved (ours, mio,
//! libc, ours, …) on connections opened once per configuration; the server's
//! CPU time comes from `/proc/<pid>/stat` (utime+stime) before and after each
//! round. Reported: the median of the per-round ratios ours/peer with min
//! and max, and each server's median msgs/s, CPU ns per message and CPU
//! utilisation.
//!
//! Profiles: `--quick` (3 rounds × 1 s, the default), `--full` (7 rounds ×
//! 3 s after a 1 s warm-up), `--reduced` (5 rounds × 2 s: the fewest rounds
//! a verdict accepts, for a machine without a quiet half hour), `--smoke` (1 round × 0.2 s at 1 and 10
//! connections: CI). Output: a CSV of every round and a markdown table in
//! `target/bench-results/` (`--out DIR` to change). Exits 1 only when a
//! byte was wrong or lost (that round's ratio is void); target misses are
//! printed as MISS.
//!
//! Run: `cargo bench --bench echo -- --full` (or `benches/run.sh`).

use reactor_bench as common;
use reactor_bench::rounds;
use servers::echo_engine;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every server, ours first; the C peers only where this build has them.
fn server_kinds() -> Vec<&'static str> {
    let mut v = vec!["ours", "mio", "polling"];
    v.extend(reactor_bench::peers::c_peers().iter().map(|p| p.name));
    v.push("libc");
    v
}
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

fn serve(kind: &str) -> ! {
    common::pin_to_cpu(SERVER_CPU);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(&format!("bind: {e}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| die(&e.to_string()));
    println!("listening on {addr} (server: {kind})");
    let _ = std::io::stdout().flush();
    let result = match kind {
        "ours" => {
            let stop = reactor::Signals::new(&[libc::SIGTERM, libc::SIGINT])
                .unwrap_or_else(|e| die(&e.to_string()));
            echo_engine::serve(
                listener,
                reactor::Backend::Epoll,
                stop,
                &echo_engine::EchoConfig::default(),
            )
            .map_err(|e| e.to_string())
        }
        "mio" => serve_mio(listener).map_err(|e| e.to_string()),
        "polling" => serve_polling(listener).map_err(|e| e.to_string()),
        "libc" => serve_libc(listener).map_err(|e| e.to_string()),
        other => match reactor_bench::peers::c_peer(other) {
            Some(peer) => listener
                .set_nonblocking(true)
                .map_err(|e| e.to_string())
                .and_then(|()| reactor_bench::peers::echo(peer, listener.as_raw_fd())),
            None => Err(format!("unknown server {other}")),
        },
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => die(&e),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("echo bench: {msg}");
    std::process::exit(2)
}

const MAX_PENDING: usize = 256 * 1024;

/// mio, as its `tcp_server` example is written (edge-triggered, read until
/// WouldBlock), with the same queue-and-backpressure rules as ours.
fn serve_mio(listener: TcpListener) -> std::io::Result<()> {
    use mio::net::{TcpListener as MioListener, TcpStream as MioStream};
    use mio::{Events, Interest, Poll, Token};
    struct Conn {
        stream: MioStream,
        pending: Vec<u8>,
        writable: bool,
    }
    const LISTENER: Token = Token(usize::MAX);
    listener.set_nonblocking(true)?;
    let mut listener = MioListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE,
                            )?;
                            entry.insert(Conn {
                                stream,
                                pending: Vec::new(),
                                writable: false,
                            });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let mut close = false;
            if event.is_writable() && !conn.pending.is_empty() {
                close |= flush(&mut conn.stream, &mut conn.pending);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                // Drain until WouldBlock (edge-triggered).
                close |= read_and_echo(&mut conn.stream, &mut buf, &mut conn.pending);
            }
            if close {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
                continue;
            }
            let want_write = !conn.pending.is_empty();
            if want_write != conn.writable {
                conn.writable = want_write;
                let interest = if want_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                poll.registry()
                    .reregister(&mut conn.stream, event.token(), interest)?;
            }
        }
    }
}

/// Reads until `WouldBlock` (or `MAX_PENDING` queued), echoing each read
/// at once while nothing is queued and queueing the rest: the idiomatic
/// loop of the mio and polling servers. True when the connection is done.
fn read_and_echo(stream: &mut (impl Read + Write), buf: &mut [u8], pending: &mut Vec<u8>) -> bool {
    while pending.len() < MAX_PENDING {
        match stream.read(buf) {
            Ok(0) => return true,
            Ok(n) if pending.is_empty() => match stream.write(&buf[..n]) {
                Ok(w) => pending.extend_from_slice(&buf[w..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => pending.extend_from_slice(&buf[..n]),
                Err(_) => return true,
            },
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}

/// Writes what it can of `pending`; true when the connection failed.
fn flush(stream: &mut impl Write, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match stream.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    false
}

/// The `polling` crate, as its documentation writes a server: oneshot
/// interest, re-armed with `modify` after every event; read until
/// `WouldBlock`, echo, queue what `write` did not take.
fn serve_polling(listener: TcpListener) -> std::io::Result<()> {
    use polling::{Event, Events, Poller};
    struct Conn {
        stream: TcpStream,
        pending: Vec<u8>,
    }
    // polling keeps usize::MAX for its own notifier.
    const LISTENER: usize = usize::MAX - 1;
    listener.set_nonblocking(true)?;
    let poller = Poller::new()?;
    // SAFETY: the listener outlives the poller's use of it (both live to
    // the end of this function, which never returns while serving).
    unsafe { poller.add(&listener, Event::readable(LISTENER))? };
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(std::num::NonZeroUsize::new(1024).expect("1024 > 0"));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        events.clear();
        if let Err(e) = poller.wait(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.key == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(true)?;
                            let entry = conns.vacant_entry();
                            // SAFETY: the stream stays in `conns` until it is
                            // deleted from the poller.
                            unsafe { poller.add(&stream, Event::readable(entry.key()))? };
                            entry.insert(Conn {
                                stream,
                                pending: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                poller.modify(&listener, Event::readable(LISTENER))?;
                continue;
            }
            let Some(conn) = conns.get_mut(event.key) else {
                continue;
            };
            let mut close = false;
            if event.writable && !conn.pending.is_empty() {
                close |= flush(&mut conn.stream, &mut conn.pending);
            }
            if event.readable {
                close |= read_and_echo(&mut conn.stream, &mut buf, &mut conn.pending);
            }
            if close {
                let conn = conns.remove(event.key);
                let _ = poller.delete(&conn.stream);
                continue;
            }
            // Oneshot: every event is followed by a re-arm.
            let interest = if conn.pending.is_empty() {
                Event::readable(event.key)
            } else {
                Event::all(event.key)
            };
            poller.modify(&conn.stream, interest)?;
        }
    }
}

/// The floor: level-triggered epoll, one read and one write per event,
/// connections indexed by fd.
fn serve_libc(listener: TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let lfd = listener.as_raw_fd();
    let ep = common::epoll_create();
    common::epoll_ctl(
        &ep,
        libc::EPOLL_CTL_ADD,
        lfd,
        libc::EPOLLIN as u32,
        lfd as u64,
    );
    let mut pending: Vec<Option<Vec<u8>>> = Vec::new();
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `evs` has room for 1024 events.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 1024, -1) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for ev in &evs[..n as usize] {
            let fd = ev.u64 as RawFd;
            let flags = ev.events;
            if fd == lfd {
                loop {
                    // SAFETY: null address pointers are allowed by accept4.
                    let c = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if c < 0 {
                        break;
                    }
                    if pending.len() <= c as usize {
                        pending.resize_with(c as usize + 1, || None);
                    }
                    pending[c as usize] = Some(Vec::new());
                    common::epoll_ctl(&ep, libc::EPOLL_CTL_ADD, c, libc::EPOLLIN as u32, c as u64);
                }
                continue;
            }
            let Some(Some(queue)) = pending.get_mut(fd as usize) else {
                continue;
            };
            let mut close = false;
            let was_empty = queue.is_empty();
            if flags & libc::EPOLLOUT as u32 != 0 && !queue.is_empty() {
                close |= raw_flush(fd, queue);
            }
            if !close && flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                // SAFETY: `buf` is valid for its length.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r == 0 {
                    close = true;
                } else if r > 0 {
                    let r = r as usize;
                    if queue.is_empty() {
                        // SAFETY: the first `r` bytes of `buf` were just read.
                        let w = unsafe { libc::write(fd, buf.as_ptr().cast(), r) };
                        if w >= 0 {
                            queue.extend_from_slice(&buf[w as usize..r]);
                        } else if std::io::Error::last_os_error().kind() == ErrorKind::WouldBlock {
                            queue.extend_from_slice(&buf[..r]);
                        } else {
                            close = true;
                        }
                    } else {
                        queue.extend_from_slice(&buf[..r]);
                    }
                } else if std::io::Error::last_os_error().kind() != ErrorKind::WouldBlock {
                    close = true;
                }
            }
            if close {
                pending[fd as usize] = None;
                // SAFETY: `fd` is ours (accepted above); close drops its epoll entry.
                unsafe { libc::close(fd) };
                continue;
            }
            if was_empty != queue.is_empty() || queue.len() >= MAX_PENDING {
                let interest = if queue.is_empty() {
                    libc::EPOLLIN
                } else if queue.len() >= MAX_PENDING {
                    libc::EPOLLOUT
                } else {
                    libc::EPOLLIN | libc::EPOLLOUT
                };
                common::epoll_ctl(&ep, libc::EPOLL_CTL_MOD, fd, interest as u32, fd as u64);
            }
        }
    }
}

fn raw_flush(fd: RawFd, queue: &mut Vec<u8>) -> bool {
    while !queue.is_empty() {
        // SAFETY: `queue` is valid for its length.
        let w = unsafe { libc::write(fd, queue.as_ptr().cast(), queue.len()) };
        if w < 0 {
            let err = std::io::Error::last_os_error();
            return match err.kind() {
                ErrorKind::WouldBlock => false,
                ErrorKind::Interrupted => continue,
                _ => true,
            };
        }
        queue.drain(..w as usize);
    }
    false
}

// ---------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------

struct Server {
    kind: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &'static str) -> Server {
        let (child, addr) = common::spawn_self_server(kind.as_ref())
            .unwrap_or_else(|e| die(&format!("server {kind}: {e}")));
        Server { kind, child, addr }
    }

    /// Starts the server under `valgrind --tool=callgrind` (its summary,
    /// with the instruction count, goes to stderr).
    fn launch_counted(kind: &'static str) -> Server {
        let exe = std::env::current_exe().unwrap_or_else(|e| die(&e.to_string()));
        let mut child = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(exe)
            .arg("--serve")
            .arg(kind)
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| die(&format!("spawn server: {e}")));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| die(&format!("server {kind}: {e}")));
        let addr = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| die(&format!("server {kind} said {line:?}")));
        Server { kind, child, addr }
    }

    /// Stops a server started under callgrind; its user-space instruction
    /// count (`I refs`).
    fn stop_counting(mut self) -> Result<u64, String> {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        let _ = self.child.wait();
        text.lines()
            .find_map(|l| l.split_once("refs:").map(|(_, v)| v.replace(',', "")))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{}: no 'refs:' line from callgrind", self.kind))
    }

    /// utime + stime, in seconds.
    fn cpu_seconds(&self) -> f64 {
        common::cpu_seconds(self.child.id())
    }

    fn stop(mut self) {
        common::stop_child(&mut self.child);
    }
}

struct Conn {
    stream: TcpStream,
    id: u32,
    seq: u64,
    out: Vec<u8>,
    sent: usize,
    inbuf: Vec<u8>,
    got: usize,
    in_flight: bool,
}

fn fill(msg: &mut [u8], id: u32, seq: u64) {
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8).wrapping_mul(31);
    }
    let n = msg.len().min(8);
    msg[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
    if msg.len() >= 12 {
        msg[8..12].copy_from_slice(&id.to_le_bytes());
    }
}

/// The connections to one server, plus the client's epoll set over them.
struct Load {
    conns: Vec<Conn>,
    ep: std::os::fd::OwnedFd,
    evs: Vec<libc::epoll_event>,
}

#[derive(Default)]
struct RoundResult {
    msgs: u64,
    secs: f64,
    cpu: f64,
    error: Option<String>,
}

impl Load {
    fn connect(addr: SocketAddr, n: usize, size: usize) -> Result<Load, String> {
        let ep = common::epoll_create();
        let mut conns = Vec::with_capacity(n);
        for id in 0..n {
            let stream = TcpStream::connect(addr).map_err(|e| format!("connect #{id}: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: `linger` is a valid struct of the size passed. Reset on
            // close: no TIME_WAIT pile-up across configurations.
            unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                )
            };
            common::epoll_ctl(
                &ep,
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                libc::EPOLLIN as u32,
                id as u64,
            );
            conns.push(Conn {
                stream,
                id: id as u32,
                seq: 0,
                out: vec![0; size],
                sent: 0,
                inbuf: vec![0; size],
                got: 0,
                in_flight: false,
            });
        }
        Ok(Load {
            conns,
            ep,
            evs: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        })
    }

    fn send_next(conn: &mut Conn) -> Result<(), String> {
        conn.seq += 1;
        fill(&mut conn.out, conn.id, conn.seq);
        conn.sent = 0;
        conn.got = 0;
        conn.in_flight = true;
        Load::push(conn)
    }

    fn push(conn: &mut Conn) -> Result<(), String> {
        while conn.sent < conn.out.len() {
            match conn.stream.write(&conn.out[conn.sent..]) {
                Ok(n) => conn.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("conn {} write: {e}", conn.id)),
            }
        }
        Ok(())
    }

    /// Runs ping-pong for `dur`, counting messages that came back complete
    /// and correct in the window; then lets the in-flight ones finish.
    fn round(&mut self, server: &Server, dur: Duration) -> RoundResult {
        let mut res = RoundResult::default();
        let cpu0 = server.cpu_seconds();
        let start = Instant::now();
        let end = start + dur;
        for c in &mut self.conns {
            if let Err(e) = Load::send_next(c) {
                res.error = Some(e);
                return res;
            }
        }
        let mut sending = true;
        let mut in_flight = self.conns.len();
        let mut partial_writes = false;
        let mut spins: u32 = 0;
        let drain_deadline = end + Duration::from_secs(5);
        while in_flight > 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                let now = Instant::now();
                if sending && now >= end {
                    sending = false;
                    res.secs = (now - start).as_secs_f64();
                    res.cpu = server.cpu_seconds() - cpu0;
                }
                if now >= drain_deadline {
                    res.error = Some(format!("{in_flight} messages never came back"));
                    return res;
                }
            }
            if partial_writes {
                partial_writes = false;
                for c in &mut self.conns {
                    if c.in_flight && c.sent < c.out.len() {
                        if let Err(e) = Load::push(c) {
                            res.error = Some(e);
                            return res;
                        }
                        partial_writes |= c.sent < c.out.len();
                    }
                }
            }
            // SAFETY: `evs` has room for its length.
            let n = unsafe {
                libc::epoll_wait(
                    self.ep.as_raw_fd(),
                    self.evs.as_mut_ptr(),
                    self.evs.len() as i32,
                    0,
                )
            };
            for i in 0..n.max(0) as usize {
                let c = &mut self.conns[self.evs[i].u64 as usize];
                let size = c.inbuf.len();
                match c.stream.read(&mut c.inbuf[c.got..]) {
                    Ok(0) => {
                        res.error = Some(format!("conn {}: server closed", c.id));
                        return res;
                    }
                    Ok(k) => c.got += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        res.error = Some(format!("conn {} read: {e}", c.id));
                        return res;
                    }
                }
                if c.got < size {
                    continue;
                }
                if !c.in_flight || c.sent < size || c.inbuf != c.out {
                    res.error = Some(format!(
                        "conn {} message {}: echoed bytes differ from those sent",
                        c.id, c.seq
                    ));
                    return res;
                }
                c.in_flight = false;
                in_flight -= 1;
                if sending {
                    res.msgs += 1;
                    if let Err(e) = Load::send_next(c) {
                        res.error = Some(e);
                        return res;
                    }
                    partial_writes |= c.sent < size;
                    in_flight += 1;
                }
            }
        }
        if sending {
            res.secs = start.elapsed().as_secs_f64();
            res.cpu = server.cpu_seconds() - cpu0;
        }
        res
    }
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

struct Profile {
    name: &'static str,
    conns: Vec<usize>,
    sizes: Vec<usize>,
    rounds: usize,
    secs: f64,
    warmup: f64,
}

struct Row {
    conns: usize,
    size: usize,
    round: usize,
    server: &'static str,
    res: RoundResult,
}

impl Row {
    fn rate(&self) -> f64 {
        self.res.msgs as f64 / self.res.secs.max(1e-9)
    }
    fn cpu_ns(&self) -> f64 {
        self.res.cpu * 1e9 / (self.res.msgs.max(1) as f64)
    }
    fn util(&self) -> f64 {
        self.res.cpu / self.res.secs.max(1e-9)
    }
}

/// One server under callgrind: connect, run ping-pong for `secs`, stop;
/// its instruction count and the messages counted.
fn counted_run(
    kind: &'static str,
    conns: usize,
    size: usize,
    secs: f64,
) -> Result<(u64, u64), String> {
    let server = Server::launch_counted(kind);
    let mut load = Load::connect(server.addr, conns, size)?;
    let res = load.round(&server, Duration::from_secs_f64(secs));
    let ir = server.stop_counting()?;
    drop(load);
    match res.error {
        Some(e) => Err(e),
        None => Ok((ir, res.msgs)),
    }
}

/// `--instructions`: each echo server's user-space instructions per
/// message (callgrind), 50 × 64 B and 100 × 4 KiB. Two runs per server, a
/// short and a long one, both including start-up and the connections'
/// set-up; the difference of their counts over the difference of their
/// messages is the cost per message, start-up subtracted. Deterministic per
/// message, whatever the machine's load.
fn instructions(out_dir: &str, short: f64, long: f64) -> i32 {
    let header = common::env_header();
    println!("{header}");
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("valgrind not installed: instruction counts skipped");
        return 0;
    }
    common::pin_to_cpu(CLIENT_CPU);
    let names = server_kinds();
    let mut md = format!(
        "B2 echo server, user-space instructions per message (valgrind --tool=callgrind; \
         runs of {short} s and {long} s, start-up subtracted):\n\n| server |"
    );
    let configs = [(50usize, 64usize), (100, 4096)];
    for (conns, size) in configs {
        md.push_str(&format!(" {conns} × {size} B |"));
    }
    md.push_str("\n|---|---|---|\n");
    let mut per: Vec<(&str, Vec<Option<f64>>)> = Vec::new();
    let mut failures = 0;
    for &kind in &names {
        let mut row = Vec::new();
        for (conns, size) in configs {
            let a = counted_run(kind, conns, size, short);
            let b = counted_run(kind, conns, size, long);
            match (a, b) {
                (Ok((ir_a, m_a)), Ok((ir_b, m_b))) if m_b > m_a => {
                    let v = (ir_b as f64 - ir_a as f64) / (m_b - m_a) as f64;
                    eprintln!(
                        "  {kind} {conns}×{size}: {m_a} / {m_b} msgs, {ir_a} / {ir_b} Ir → {v:.0} per message"
                    );
                    row.push(Some(v));
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("  {kind} {conns}×{size}: CORRECTNESS FAILURE or error: {e}");
                    failures += 1;
                    row.push(None);
                }
                _ => row.push(None),
            }
        }
        md.push_str(&format!("| {kind} |"));
        for v in &row {
            md.push_str(&v.map_or(" – |".to_owned(), |v| format!(" {v:.0} |")));
        }
        md.push('\n');
        per.push((kind, row));
    }
    // Verdicts: ours ≤ mio and ≤ libev, ≤ 1.2× the libc loop.
    let get = |k: &str, i: usize| per.iter().find(|(n, _)| *n == k).and_then(|(_, r)| r[i]);
    md.push_str("\n| target | ");
    md.push_str(&configs.map(|(c, s)| format!("{c} × {s} B")).join(" | "));
    md.push_str(" |\n|---|---|---|\n");
    for (peer, limit) in [("mio", 1.0), ("libev", 1.0), ("libc", 1.2)] {
        md.push_str(&format!("| ours ≤ {limit}× {peer} |"));
        for i in 0..configs.len() {
            match (get("ours", i), get(peer, i)) {
                (Some(o), Some(p)) => {
                    let r = o / p;
                    md.push_str(&format!(
                        " {r:.3} {} |",
                        if r <= limit { "met" } else { "MISS" }
                    ));
                }
                _ => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    let path = format!("{out_dir}/echo_instructions.md");
    if let Err(e) = std::fs::write(&path, &md) {
        eprintln!("{path}: {e}");
    }
    println!("{md}");
    i32::from(failures > 0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve(args.get(i + 1).map_or("", String::as_str));
    }
    let has = |f: &str| args.iter().any(|a| a == f);
    if has("--instructions") {
        let out_dir = args
            .iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .map_or_else(|| "target/bench-results".to_owned(), Clone::clone);
        let _ = std::fs::create_dir_all(&out_dir);
        let (short, long) = if has("--quick") {
            (0.5, 1.5)
        } else {
            (1.5, 4.5)
        };
        std::process::exit(instructions(&out_dir, short, long));
    }
    let profile = if has("--full") {
        Profile {
            name: "full",
            conns: vec![1, 10, 100, 1000],
            sizes: vec![64, 4096],
            rounds: 7,
            secs: 3.0,
            warmup: 1.0,
        }
    } else if has("--reduced") {
        Profile {
            name: "reduced",
            conns: vec![1, 10, 100, 1000],
            sizes: vec![64, 4096],
            rounds: 5,
            secs: 2.0,
            warmup: 0.5,
        }
    } else if has("--smoke") {
        Profile {
            name: "smoke",
            conns: vec![1, 10],
            sizes: vec![64, 4096],
            rounds: 1,
            secs: 0.2,
            warmup: 0.05,
        }
    } else {
        Profile {
            name: "quick",
            conns: vec![1, 10, 100, 1000],
            sizes: vec![64, 4096],
            rounds: 3,
            secs: 1.0,
            warmup: 0.3,
        }
    };
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| "target/bench-results".to_owned(), Clone::clone);
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        die(&format!("{out_dir}: {e}"));
    }
    let header = common::env_header();
    println!("{header}");
    let need = profile.conns.iter().max().copied().unwrap_or(0) as u64 * 3;
    if !common::fds_available(need, "B2 echo") {
        std::process::exit(0);
    }

    if let Some(note) = reactor_bench::peers::skipped_note() {
        println!("{note}");
    }
    let servers: Vec<Server> = server_kinds().into_iter().map(Server::start).collect();
    common::pin_to_cpu(CLIENT_CPU);
    let mut rows: Vec<Row> = Vec::new();
    let mut failures = 0;
    for &size in &profile.sizes {
        for &conns in &profile.conns {
            let mut loads = Vec::new();
            for s in &servers {
                match Load::connect(s.addr, conns, size) {
                    Ok(l) => loads.push(l),
                    Err(e) => die(&format!("{}: {e}", s.kind)),
                }
            }
            eprintln!(
                "B2 {} B × {conns} conns: {} rounds × {} s",
                size, profile.rounds, profile.secs
            );
            for (s, l) in servers.iter().zip(loads.iter_mut()) {
                let r = l.round(s, Duration::from_secs_f64(profile.warmup));
                if let Some(e) = r.error {
                    eprintln!("  warm-up {}: CORRECTNESS FAILURE: {e}", s.kind);
                    failures += 1;
                }
            }
            for round in 0..profile.rounds {
                for (s, l) in servers.iter().zip(loads.iter_mut()) {
                    let res = l.round(s, Duration::from_secs_f64(profile.secs));
                    if let Some(e) = &res.error {
                        eprintln!("  round {round} {}: CORRECTNESS FAILURE: {e}", s.kind);
                        failures += 1;
                    }
                    let row = Row {
                        conns,
                        size,
                        round,
                        server: s.kind,
                        res,
                    };
                    eprintln!(
                        "  round {round} {:>8}: {:>9.0} msg/s  {:>6.0} ns CPU/msg  util {:.0}%",
                        row.server,
                        row.rate(),
                        row.cpu_ns(),
                        row.util() * 100.0
                    );
                    rows.push(row);
                }
            }
        }
    }
    for s in servers {
        s.stop();
    }

    // CSV of every round.
    let mut csv = String::from(
        "profile,conns,size,round,server,msgs,secs,msgs_per_s,cpu_s,cpu_ns_per_msg,util,ok\n",
    );
    for r in &rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{:.4},{:.1},{:.4},{:.1},{:.3},{}\n",
            profile.name,
            r.conns,
            r.size,
            r.round,
            r.server,
            r.res.msgs,
            r.res.secs,
            r.rate(),
            r.res.cpu,
            r.cpu_ns(),
            r.util(),
            r.res.error.is_none()
        ));
    }
    let csv_path = format!("{out_dir}/echo.csv");
    if let Err(e) = std::fs::write(&csv_path, csv) {
        die(&format!("{csv_path}: {e}"));
    }

    // Markdown summary: every server's medians, then ours/peer per round.
    let names = server_kinds();
    let peers: Vec<&str> = names.iter().copied().filter(|&k| k != "ours").collect();
    let mut md = format!(
        "{header}\n\nB2 echo, profile `{}`: {} rounds × {} s, server on cpu{SERVER_CPU}, client on cpu{CLIENT_CPU}, \
         rounds interleaved ({}). Ratios are the median of per-round ratios ours/peer [min–max]; a range across \
         the target is *inconclusive*. CPU is server utime+stime per message; util is server CPU / wall time \
         (under 90% means the server was not saturated).\n\n",
        profile.name,
        profile.rounds,
        profile.secs,
        names.join(", ")
    );
    let configs: Vec<(usize, usize)> = profile
        .sizes
        .iter()
        .flat_map(|&size| profile.conns.iter().map(move |&conns| (conns, size)))
        .collect();
    let pick = |conns: usize, size: usize, server: &str| -> Vec<&Row> {
        rows.iter()
            .filter(|r| {
                r.conns == conns && r.size == size && r.server == server && r.res.error.is_none()
            })
            .collect()
    };
    let med = |conns: usize, size: usize, server: &str, f: &dyn Fn(&Row) -> f64| -> f64 {
        let mut v: Vec<f64> = pick(conns, size, server).iter().map(|r| f(r)).collect();
        common::median(&mut v)
    };
    let ratios = |conns: usize, size: usize, peer: &str, f: &dyn Fn(&Row) -> f64| {
        let ours = pick(conns, size, "ours");
        let theirs = pick(conns, size, peer);
        let v: Vec<f64> = ours
            .iter()
            .filter_map(|o| {
                theirs
                    .iter()
                    .find(|t| t.round == o.round)
                    .map(|t| f(o) / f(t))
            })
            .collect();
        rounds::stats(v)
    };
    let show = |s, target, at_most| rounds::show(s, Some((target, at_most)));
    let head = |first: &str, cols: &[&str]| {
        format!(
            "| conns | size | {first}{} |\n|---|---|---{}|\n",
            cols.iter().map(|c| format!(" | {c}")).collect::<String>(),
            "|---".repeat(cols.len())
        )
    };
    let vs: Vec<String> = peers.iter().map(|p| format!("vs {p}")).collect();
    let vs: Vec<&str> = vs.iter().map(String::as_str).collect();
    md.push_str("Throughput, msg/s (median; server util in brackets):\n\n");
    md.push_str(&head("ours", &peers));
    for &(conns, size) in &configs {
        md.push_str(&format!("| {conns} | {size} B"));
        for name in &names {
            md.push_str(&format!(
                " | {:.0} ({:.0}%)",
                med(conns, size, name, &Row::rate),
                med(conns, size, name, &Row::util) * 100.0
            ));
        }
        md.push_str(" |\n");
    }
    md.push_str("\nThroughput ours/peer (target: ≥ 1.00 against every peer at every size):\n\n");
    md.push_str(&head(vs[0], &vs[1..]));
    for &(conns, size) in &configs {
        md.push_str(&format!("| {conns} | {size} B"));
        for peer in &peers {
            md.push_str(&format!(
                " | {}",
                show(ratios(conns, size, peer, &Row::rate), 1.0, false)
            ));
        }
        md.push_str(" |\n");
    }
    md.push_str("\nServer CPU per message, ns (median):\n\n");
    md.push_str(&head("ours", &peers));
    for &(conns, size) in &configs {
        md.push_str(&format!("| {conns} | {size} B"));
        for name in &names {
            md.push_str(&format!(" | {:.0}", med(conns, size, name, &Row::cpu_ns)));
        }
        md.push_str(" |\n");
    }
    md.push_str("\nServer CPU per message ours/peer (target: ≤ 1.02× the libc loop, ≤ 0.98× every library):\n\n");
    md.push_str(&head(vs[0], &vs[1..]));
    for &(conns, size) in &configs {
        md.push_str(&format!("| {conns} | {size} B"));
        for peer in &peers {
            let target = if *peer == "libc" { 1.02 } else { 0.98 };
            md.push_str(&format!(
                " | {}",
                show(ratios(conns, size, peer, &Row::cpu_ns), target, true)
            ));
        }
        md.push_str(" |\n");
    }
    let md_path = format!("{out_dir}/echo.md");
    if let Err(e) = std::fs::write(&md_path, &md) {
        die(&format!("{md_path}: {e}"));
    }
    println!("{md}");
    println!("wrote {csv_path} and {md_path}");
    if failures > 0 {
        eprintln!("B2: {failures} correctness failure(s)");
        std::process::exit(1);
    }
}
