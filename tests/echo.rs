//! The `echo` example run as a user runs it, on every backend: exact echo
//! and half-close, a slow reader (1 MiB, memory bounded), 100 clients, a
//! client that never reads, out of descriptors, the descriptor-leak soak,
//! 1000 clients from one client-side loop, reset peers, signals and bad
//! arguments (docs/reliability.md); a bound smaller than one read, and
//! end of file while a backlog waits (the engine's slow path).

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{
    Example, Rng, SOON, cpu_share, fd_count, limit_nofile, rss_kib, set_linger_zero,
    write_until_stalled,
};
use reactor::{Backend, Events, Interest, Reactor, Trigger};

backend_tests!(
    echoes_every_byte_then_closes_after_half_close,
    one_mib_to_a_slow_reader_is_exact_and_memory_stays_bounded,
    hundred_concurrent_clients_get_their_own_bytes,
    a_client_that_never_reads_is_paused_not_buffered,
    a_bound_below_one_read_pauses_then_resumes_the_fast_path,
    half_close_with_a_backlog_sends_it_all_then_closes,
    out_of_descriptors_no_spin_and_recovery,
    no_descriptor_leak_over_a_thousand_connections,
    reset_peers_with_queued_output_do_not_kill_the_server,
    sigint_and_sigterm_exit_zero,
    a_thousand_clients_from_one_loop_are_echoed_exactly,
);

fn start(backend: Backend, extra: &[&str]) -> Example {
    let mut args = vec!["--addr", "127.0.0.1:0", "--backend", backend.name()];
    args.extend_from_slice(extra);
    Example::start("echo", &args)
}

/// The echo server on `backend` with `RLIMIT_NOFILE` set to `limit`.
fn start_with_nofile(backend: Backend, limit: u64) -> Example {
    Example::start_with(
        "echo",
        &["--addr", "127.0.0.1:0", "--backend", backend.name()],
        |command| limit_nofile(command, limit),
    )
}

fn connect(server: &Example) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(SOON)).unwrap();
    stream.set_write_timeout(Some(SOON)).unwrap();
    stream
}

/// `len` bytes of a pattern that catches reordering and loss.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Writes `data` and reads it back, exactly.
#[track_caller]
fn round_trip(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).expect("write");
    let mut back = vec![0u8; data.len()];
    stream.read_exact(&mut back).expect("read the echo");
    assert!(back == data, "echo differs");
}

/// The server's descriptor count with its loop running and no client:
/// counted while one client is connected (after a round trip the loop has
/// opened everything it opens), minus that client once it is gone.
fn settled_fd_count(server: &Example) -> usize {
    let mut client = connect(server);
    round_trip(&mut client, b"ready");
    let baseline = fd_count(server.pid()) - 1;
    drop(client);
    eventually(SOON, "the ready client closed", || {
        fd_count(server.pid()) == baseline
    });
    baseline
}

/// Polls `what` every 20 ms until it holds; fails after `wait`.
#[track_caller]
fn eventually(wait: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {wait:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn echoes_every_byte_then_closes_after_half_close(backend: Backend) {
    let server = start(backend, &[]);
    let mut client = connect(&server);
    round_trip(&mut client, b"hello");
    // 300 KiB in one go, then end of file: all of it comes back, then EOF.
    let data = pattern(300 * 1024, 7);
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let t = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    client.read_to_end(&mut back).expect("read to EOF");
    t.join().unwrap();
    assert!(
        back == data,
        "[{backend}] {} bytes back of {}",
        back.len(),
        data.len()
    );
}

fn one_mib_to_a_slow_reader_is_exact_and_memory_stays_bounded(backend: Backend) {
    let server = start(backend, &["--max-pending", "65536"]);
    let pid = server.pid();
    let mut client = connect(&server);
    round_trip(&mut client, b"warm up");
    let baseline = rss_kib(pid);
    let data = pattern(1 << 20, 3);
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let t = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
    });
    let mut back = vec![0u8; data.len()];
    let mut got = 0;
    let mut peak = baseline;
    while got < back.len() {
        let end = (got + 16 * 1024).min(back.len());
        let n = client.read(&mut back[got..end]).expect("read");
        assert!(n > 0, "[{backend}] early EOF at {got}");
        got += n;
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(3));
    }
    t.join().unwrap();
    assert!(back == data, "[{backend}] the echo differs");
    assert!(
        peak - baseline < 2048,
        "[{backend}] server RSS grew by {} KiB (baseline {baseline} KiB)",
        peak - baseline
    );
}

fn hundred_concurrent_clients_get_their_own_bytes(backend: Backend) {
    let server = start(backend, &[]);
    let mut clients: Vec<TcpStream> = (0..100).map(|_| connect(&server)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.write_all(&pattern(1000 + i, i as u8)).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut back = vec![0u8; 1000 + i];
        client.read_exact(&mut back).unwrap();
        assert!(back == pattern(1000 + i, i as u8), "[{backend}] client {i}");
    }
}

/// docs/reliability.md#slow-readers (echo): 10 MiB from a client that does not
/// read. The server stops reading from it once 256 KiB wait, so its memory
/// stays put, it does not spin, it serves others meanwhile, and everything that
/// was accepted comes back exactly once the client reads.
fn a_client_that_never_reads_is_paused_not_buffered(backend: Backend) {
    let server = start(backend, &[]);
    let mut hog = connect(&server);
    round_trip(&mut hog, b"warm up");
    let data = pattern(10 << 20, 9);
    let sent = send_until_paused(&server, &mut hog, &data, backend);
    let mut other = connect(&server);
    round_trip(&mut other, b"others are still served");
    // Now read: every accepted byte comes back, in order.
    read_back(&mut hog, &data[..sent], backend);
}

/// Writes `data` from a client that does not read until the server stops
/// taking it; checks that meanwhile the server's memory stayed put and that
/// it does not spin. Returns how much was sent.
#[track_caller]
fn send_until_paused(
    server: &Example,
    client: &mut TcpStream,
    data: &[u8],
    backend: Backend,
) -> usize {
    let pid = server.pid();
    let baseline = rss_kib(pid);
    client.set_nonblocking(true).unwrap();
    let sent = write_until_stalled(client, data, backend.name());
    let grown = rss_kib(pid).saturating_sub(baseline);
    assert!(
        grown < 2048,
        "[{backend}] server RSS grew by {grown} KiB after {sent} bytes"
    );
    let cpu = cpu_share(pid, Duration::from_millis(500));
    assert!(
        cpu < 0.05,
        "[{backend}] server at {:.0}% CPU while paused",
        cpu * 100.0
    );
    client.set_nonblocking(false).unwrap();
    sent
}

/// Reads exactly `sent`'s length back and compares.
#[track_caller]
fn read_back(client: &mut TcpStream, sent: &[u8], backend: Backend) {
    let mut back = vec![0u8; sent.len()];
    client.read_exact(&mut back).expect("read the backlog");
    assert!(back == sent, "[{backend}] echo of the burst differs");
}

/// `--max-pending` far below one read (64 KiB): the first send the kernel
/// cuts short leaves more than the bound queued, so the client is paused at
/// once, from the fast path. It stays paused without spinning, every byte
/// comes back in order once it reads, and then a plain round trip works
/// again (the connection is back on the fast path, watched for reading).
fn a_bound_below_one_read_pauses_then_resumes_the_fast_path(backend: Backend) {
    let server = start(backend, &["--max-pending", "100"]);
    let mut client = connect(&server);
    round_trip(&mut client, b"warm up");
    // The kernel's buffers on the server's side (up to 4 MiB sending, more
    // receiving) take part of the burst whatever the server does; what the
    // server holds itself is the bound plus one read.
    let data = pattern(16 << 20, 5);
    let sent = send_until_paused(&server, &mut client, &data, backend);
    read_back(&mut client, &data[..sent], backend);
    for i in 0..20u8 {
        round_trip(&mut client, &pattern(1000, i));
    }
}

/// The client sends until the server pushes back, then shuts down its
/// writing half without having read anything: the server still sends every
/// queued and unread byte, then closes.
fn half_close_with_a_backlog_sends_it_all_then_closes(backend: Backend) {
    let server = start(backend, &["--max-pending", "4096"]);
    let mut client = connect(&server);
    client.set_nonblocking(true).unwrap();
    let data = pattern(16 << 20, 11);
    let sent = write_until_stalled(&mut client, &data, backend.name());
    client.shutdown(Shutdown::Write).unwrap();
    client.set_nonblocking(false).unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).expect("read to EOF");
    assert!(
        back == data[..sent],
        "[{backend}] {} bytes back of {sent}",
        back.len()
    );
}

/// docs/reliability.md#out-of-descriptors: out of descriptors on accept. The
/// server runs with `RLIMIT_NOFILE=64`; clients fill every descriptor, 20 more
/// wait in the backlog. No spin, held clients still echo, and once some leave,
/// new clients are served within a second.
fn out_of_descriptors_no_spin_and_recovery(backend: Backend) {
    let server = start_with_nofile(backend, 64);
    let pid = server.pid();
    let free = 64 - settled_fd_count(&server);
    let mut held: Vec<TcpStream> = (0..free - 1)
        .map(|_| {
            let mut c = connect(&server);
            round_trip(&mut c, b"x");
            c
        })
        .collect();
    let extra: Vec<TcpStream> = (0..20).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let cpu = cpu_share(pid, Duration::from_secs(2));
    assert!(
        cpu < 0.05,
        "[{backend}] {:.0}% CPU while out of descriptors",
        cpu * 100.0
    );
    // The extra clients were refused: end of file or reset, promptly
    // (except the one that took the last descriptor).
    let mut refused = 0;
    for mut c in extra {
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 1];
        match c.read(&mut buf) {
            Ok(0) => refused += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => refused += 1,
            _ => {}
        }
    }
    assert!(
        refused >= 18,
        "[{backend}] only {refused} of 20 extra clients refused"
    );
    let started = Instant::now();
    for c in &mut held {
        round_trip(c, b"still here");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "[{backend}] held clients slow"
    );
    // Recovery: some leave, a newcomer is served within a second.
    held.truncate(held.len() - 10);
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let mut newcomer = connect(&server);
    round_trip(&mut newcomer, b"room again");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "[{backend}] recovery too slow"
    );
}

/// docs/reliability.md#descriptor-leaks: 1000 connect/echo/close cycles —
/// normal closes, resets with data in flight, and half-closes — with
/// `RLIMIT_NOFILE=32`: never out of descriptors, and the descriptor count back
/// to where it started.
fn no_descriptor_leak_over_a_thousand_connections(backend: Backend) {
    let server = start_with_nofile(backend, 32);
    let pid = server.pid();
    let baseline = settled_fd_count(&server);
    let data = pattern(2000, 1);
    for i in 0..1000 {
        let mut c = connect(&server);
        match i % 3 {
            0 => round_trip(&mut c, &data),
            1 => {
                // Reset with the echo still queued for us.
                c.write_all(&data).unwrap();
                set_linger_zero(&c);
            }
            _ => {
                c.write_all(&data).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                let mut back = Vec::new();
                c.read_to_end(&mut back).unwrap();
                assert!(back == data, "[{backend}] half-close cycle {i}");
            }
        }
    }
    eventually(
        SOON,
        &format!("[{backend}] fd count back to {baseline}"),
        || fd_count(pid) == baseline,
    );
    let mut c = connect(&server);
    round_trip(&mut c, b"after the soak");
}

/// docs/reliability.md#reset-peers-and-sigpipe: clients that reset with their
/// echo queued (the server's write gets ECONNRESET/EPIPE): no SIGPIPE death,
/// nothing leaked.
fn reset_peers_with_queued_output_do_not_kill_the_server(backend: Backend) {
    let server = start(backend, &[]);
    let pid = server.pid();
    let baseline = settled_fd_count(&server);
    let big = pattern(512 * 1024, 5);
    for _ in 0..20 {
        let mut c = connect(&server);
        c.set_nonblocking(true).unwrap();
        // As much as goes in without reading, so output queues up.
        let mut sent = 0;
        while sent < big.len() {
            match c.write(&big[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        set_linger_zero(&c);
    }
    eventually(
        SOON,
        &format!("[{backend}] fd count back to {baseline}"),
        || fd_count(pid) == baseline,
    );
    let mut c = connect(&server);
    round_trip(&mut c, b"alive");
}

/// One client of the many-connections load: its current message, how much of it went
/// out and how much came back.
struct LoadClient {
    /// Its number, for failure messages.
    index: usize,
    stream: TcpStream,
    message: Vec<u8>,
    sent: usize,
    echoed: usize,
    left: usize,
    refused: bool,
}

impl std::os::fd::AsFd for LoadClient {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// Many clients driven by one client-side event loop (not one thread
/// each: this crate's own `Reactor`, edge-triggered epoll, since the
/// clients' descriptors pass 1024), each sending random-length messages
/// and checking every byte of the echo. On select, connections past fd
/// 1023 are refused cleanly and the rest pass.
fn a_thousand_clients_from_one_loop_are_echoed_exactly(backend: Backend) {
    let server = start(backend, &[]);
    let clients_wanted = if backend == Backend::Select {
        1100
    } else {
        1000
    };
    let messages = 3;
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut clients: Reactor<LoadClient> = Reactor::with_backend(Backend::Epoll).unwrap();
    let mut ready = Vec::with_capacity(clients_wanted);
    for index in 0..clients_wanted {
        let stream = TcpStream::connect(server.addr()).expect("connect");
        stream.set_nonblocking(true).unwrap();
        let len = 1 + rng.below(4096);
        let client = LoadClient {
            index,
            stream,
            message: rng.bytes(len),
            sent: 0,
            echoed: 0,
            left: messages,
            refused: false,
        };
        let token = clients
            .insert_with(
                client,
                Interest::READABLE | Interest::WRITABLE,
                Trigger::Edge,
            )
            .map_err(|e| e.error)
            .expect("register a client");
        ready.push(token);
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 8192];
    let mut finished = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished < clients_wanted {
        assert!(
            Instant::now() < deadline,
            "[{backend}] only {finished} of {clients_wanted} finished"
        );
        for token in ready.drain(..) {
            let Some(c) = clients.get_mut(token) else {
                continue;
            };
            let i = c.index;
            if c.left == 0 || c.refused {
                continue;
            }
            // Edge-triggered: write and read until WouldBlock every time.
            'drive: loop {
                while c.sent < c.message.len() {
                    match c.stream.write(&c.message[c.sent..]) {
                        Ok(n) => c.sent += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::NotConnected => break,
                        Err(_) if c.echoed == 0 && c.left == messages => {
                            c.refused = true;
                            finished += 1;
                            break 'drive;
                        }
                        Err(e) => panic!("[{backend}] client {i} write: {e}"),
                    }
                }
                let untouched = c.echoed == 0 && c.left == messages;
                match c.stream.read(&mut buf) {
                    // Closed before any echo: refused (select past fd 1023).
                    Ok(0) if untouched => {
                        c.refused = true;
                        finished += 1;
                        break 'drive;
                    }
                    Err(e) if untouched && e.kind() == ErrorKind::ConnectionReset => {
                        c.refused = true;
                        finished += 1;
                        break 'drive;
                    }
                    Ok(0) => panic!("[{backend}] client {i}: end of file mid-stream"),
                    Ok(n) => {
                        let want = &c.message[c.echoed..c.echoed + n];
                        assert!(&buf[..n] == want, "[{backend}] client {i}: echo differs");
                        c.echoed += n;
                        if c.echoed == c.message.len() {
                            c.left -= 1;
                            if c.left == 0 {
                                finished += 1;
                                break 'drive;
                            }
                            let len = 1 + rng.below(4096);
                            c.message = rng.bytes(len);
                            c.sent = 0;
                            c.echoed = 0;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break 'drive,
                    Err(e) => panic!("[{backend}] client {i} read: {e}"),
                }
            }
        }
        clients
            .poll(&mut events, Some(Duration::from_millis(200)))
            .unwrap();
        ready.extend(events.iter().map(|e| e.token()));
    }
    let refused = clients.iter().filter(|(_, c)| c.refused).count();
    let passed = clients.iter().filter(|(_, c)| c.left == 0).count();
    if backend == Backend::Select {
        assert!(
            passed >= 1000 && refused >= 50,
            "[select] passed {passed}, refused {refused}"
        );
    } else {
        assert_eq!(passed, clients_wanted, "[{backend}] refused {refused}");
    }
}

fn sigint_and_sigterm_exit_zero(backend: Backend) {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut server = start(backend, &[]);
        let mut client = connect(&server);
        round_trip(&mut client, b"before");
        server.signal(signal);
        let status = server.wait_exit(SOON);
        assert_eq!(status.code(), Some(0), "[{backend}] {status:?}");
        let mut buf = [0u8; 4];
        assert_eq!(
            client.read(&mut buf).unwrap_or(0),
            0,
            "[{backend}] closed on stop"
        );
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--max-pending", "0"][..],
        &["--backend", "kqueue"],
        &["--nope"],
    ] {
        let out = std::process::Command::new(common::example_path("echo"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stderr.starts_with(b"error:"), "{args:?}");
    }
}
