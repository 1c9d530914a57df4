//! `select_server`, `poll_server` and `epoll_server` run as a user runs them
//! (port 0, real sockets), each on its own backend: the course's exchange
//! (`Connect from`, `Receive:`, reply `收到了`, `Disconnect`), a second and a
//! hundredth client, a UTF-8 character split between reads, reset peers,
//! select's descriptor limit, and SIGINT (docs/reliability.md).

#[macro_use]
mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Example, SOON, occupy_fds, set_linger_zero};
use reactor::Backend;

backend_tests!(
    course_exchange_then_a_second_client,
    hundred_concurrent_clients_each_get_their_reply,
    a_utf8_character_split_between_reads_prints_whole,
    reset_peers_are_cleaned_up_once_and_the_server_lives,
    select_refuses_fds_past_its_limit_cleanly,
    sigint_and_sigterm_exit_zero,
    a_burst_from_a_client_that_never_reads_keeps_memory_bounded,
    received_text_is_printed_escaped,
);

/// The reply the course's server sends for every message.
const REPLY: &str = "收到了";

/// The course's server for `backend`; io_uring has no course server of its
/// own, so `epoll_server` runs it with `--backend uring`.
fn start(backend: Backend) -> Example {
    match backend {
        Backend::Uring => Example::start(
            "epoll_server",
            &["--addr", "127.0.0.1:0", "--backend", "uring"],
        ),
        _ => Example::start(&format!("{backend}_server"), &["--addr", "127.0.0.1:0"]),
    }
}

fn connect(server: &Example) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(SOON)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `n` bytes (failing after `SOON`).
#[track_caller]
fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream
        .read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// One full course exchange on a fresh connection.
#[track_caller]
fn exchange(server: &Example, text: &str) {
    let mut client = connect(server);
    let me = client.local_addr().unwrap().to_string();
    server.expect_line("Connect from <client>", |l| {
        l == format!("Connect from {me}")
    });
    client.write_all(text.as_bytes()).unwrap();
    server.expect_line("Receive: <text>", |l| l == format!("Receive: {text}"));
    assert_eq!(
        read_n(&mut client, REPLY.len()),
        REPLY.as_bytes(),
        "the reply is 收到了 in UTF-8"
    );
    drop(client);
    server.expect_line("Disconnect <client>", |l| l == format!("Disconnect {me}"));
}

fn course_exchange_then_a_second_client(backend: Backend) {
    let server = start(backend);
    exchange(&server, "hello");
    exchange(&server, "你好, second client");
}

fn hundred_concurrent_clients_each_get_their_reply(backend: Backend) {
    let server = start(backend);
    let mut clients: Vec<TcpStream> = (0..100).map(|_| connect(&server)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.write_all(format!("message {i}").as_bytes()).unwrap();
    }
    for client in &mut clients {
        assert_eq!(read_n(client, REPLY.len()), REPLY.as_bytes(), "[{backend}]");
    }
    let mut seen = HashSet::new();
    while seen.len() < 100 {
        let line = server.expect_line("Receive: message i", |l| l.starts_with("Receive: message "));
        assert!(seen.insert(line.clone()), "[{backend}] {line} twice");
    }
    let peers: HashSet<String> = clients
        .iter()
        .map(|c| format!("Disconnect {}", c.local_addr().unwrap()))
        .collect();
    drop(clients);
    let mut gone = HashSet::new();
    while gone.len() < 100 {
        let line = server.expect_line("Disconnect", |l| l.starts_with("Disconnect "));
        assert!(peers.contains(&line), "[{backend}] unexpected {line}");
        assert!(gone.insert(line.clone()), "[{backend}] {line} twice");
    }
}

fn a_utf8_character_split_between_reads_prints_whole(backend: Backend) {
    let server = start(backend);
    let mut client = connect(&server);
    let bytes = "你好".as_bytes();
    // Two bytes of 你: a chunk of its own (the reply proves it was read alone).
    client.write_all(&bytes[..2]).unwrap();
    assert_eq!(read_n(&mut client, REPLY.len()), REPLY.as_bytes());
    client.write_all(&bytes[2..]).unwrap();
    assert_eq!(read_n(&mut client, REPLY.len()), REPLY.as_bytes());
    let line = server.expect_line("Receive:", |l| l.starts_with("Receive:"));
    assert_eq!(
        line, "Receive: 你好",
        "[{backend}] no � for a split character"
    );
    // Invalid bytes are shown, not fatal.
    client.write_all(b"a\xffb").unwrap();
    assert_eq!(read_n(&mut client, REPLY.len()), REPLY.as_bytes());
    server.expect_line("Receive: a�b", |l| l == "Receive: a\u{fffd}b");
}

fn reset_peers_are_cleaned_up_once_and_the_server_lives(backend: Backend) {
    let server = start(backend);
    let mut peers = HashSet::new();
    for i in 0..50 {
        let mut client = connect(&server);
        peers.insert(format!("Disconnect {}", client.local_addr().unwrap()));
        // The reply is written to a peer that has already reset (EPIPE /
        // ECONNRESET on the server's write): no SIGPIPE death.
        client.write_all(format!("bye {i}").as_bytes()).unwrap();
        set_linger_zero(&client);
        drop(client);
    }
    let mut gone = HashSet::new();
    while gone.len() < peers.len() {
        let line = server.expect_line("Disconnect", |l| l.starts_with("Disconnect "));
        assert!(peers.contains(&line), "[{backend}] unexpected {line}");
        assert!(gone.insert(line.clone()), "[{backend}] {line} twice");
    }
    // Still serving, and no second Disconnect for anyone.
    exchange(&server, "still here");
    while let Some(line) = server.next_line(Duration::from_millis(200)) {
        assert!(!peers.contains(&line), "[{backend}] {line} printed twice");
    }
}

/// The server starts with fds 20..1024 taken, so its first few clients get
/// fds below 20 and the rest get fds ≥ 1024: select must refuse those
/// cleanly (a `Disconnect`, end of file for the client) and keep serving;
/// poll and epoll take them all.
fn select_refuses_fds_past_its_limit_cleanly(backend: Backend) {
    let server = Example::start_with(
        "epoll_server",
        &["--addr", "127.0.0.1:0", "--backend", backend.name()],
        |command| occupy_fds(command, 20, 1024),
    );
    let mut served = 0;
    let mut refused = 0;
    let mut clients = Vec::new();
    for i in 0..30 {
        let mut client = connect(&server);
        client.write_all(format!("client {i}").as_bytes()).unwrap();
        let mut buf = [0u8; REPLY.len()];
        match client.read_exact(&mut buf) {
            Ok(()) => {
                assert_eq!(&buf, REPLY.as_bytes());
                served += 1;
            }
            // Closed at once: refused.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                refused += 1
            }
            Err(e) => panic!("[{backend}] client {i}: {e}"),
        }
        clients.push(client);
    }
    if backend == Backend::Select {
        assert!(
            served >= 5 && refused >= 10,
            "[select] served {served}, refused {refused}"
        );
    } else {
        assert_eq!(served, 30, "[{backend}] served {served}, refused {refused}");
    }
    // The clients it kept still work.
    let mut first = clients.swap_remove(0);
    first.write_all(b"again").unwrap();
    assert_eq!(
        read_n(&mut first, REPLY.len()),
        REPLY.as_bytes(),
        "[{backend}]"
    );
}

fn sigint_and_sigterm_exit_zero(backend: Backend) {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut server = start(backend);
        let client = connect(&server);
        server.expect_line("Connect from", |l| l.starts_with("Connect from "));
        server.signal(signal);
        let status = server.wait_exit(SOON);
        assert_eq!(
            status.code(),
            Some(0),
            "[{backend}] signal {signal}: {status:?}"
        );
        // The client sees end of file: the server closed it.
        let mut client = client;
        let mut buf = [0u8; 16];
        let started = Instant::now();
        assert_eq!(client.read(&mut buf).unwrap_or(0), 0);
        assert!(started.elapsed() < SOON);
    }
}

#[test]
fn bad_arguments_exit_2() {
    for name in ["select_server", "poll_server", "epoll_server"] {
        let out = std::process::Command::new(common::example_path(name))
            .args(["--backend", "kqueue"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("kqueue"),
            "{name}"
        );
    }
}

/// docs/reliability.md#slow-readers for the course loop: 10 MiB from a client
/// that never reads its replies. Replies queue up to a bound, then the server
/// stops reading from that client; its memory stays put and others are still
/// served.
fn a_burst_from_a_client_that_never_reads_keeps_memory_bounded(backend: Backend) {
    let server = start(backend);
    let pid = server.pid();
    exchange(&server, "warm up");
    let baseline = common::rss_kib(pid);
    let mut hog = connect(&server);
    hog.set_nonblocking(true).unwrap();
    let sent = common::write_until_stalled(&mut hog, &vec![b'a'; 10 << 20], backend.name());
    let grown = common::rss_kib(pid).saturating_sub(baseline);
    assert!(
        grown < 4096,
        "[{backend}] server RSS grew by {grown} KiB after {sent} bytes"
    );
    let mut other = connect(&server);
    other.write_all(b"others").unwrap();
    assert_eq!(
        read_n(&mut other, REPLY.len()),
        REPLY.as_bytes(),
        "[{backend}] others served"
    );
}

#[test]
fn help_exits_zero_for_every_example() {
    for name in [
        "select_server",
        "poll_server",
        "epoll_server",
        "echo",
        "unix_recv",
        "unix_send",
        "struct_recv",
        "struct_send",
    ] {
        let out = std::process::Command::new(common::example_path(name))
            .arg("--help")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{name} --help"
        );
    }
}

/// A client's bytes are printed escaped, as Python's `repr` shows them: an
/// escape sequence cannot retitle or clear the terminal, and a newline
/// cannot start a forged log line. One trailing newline (what `nc` sends)
/// is not part of the text.
fn received_text_is_printed_escaped(backend: Backend) {
    let server = start(backend);
    let mut client = connect(&server);
    server.expect_line("Connect from", |l| l.starts_with("Connect from "));
    let attack = "hi\x1b]0;PWNED\x07\x1b[2J\nDisconnect 10.0.0.1:4444";
    client.write_all(attack.as_bytes()).unwrap();
    let line = server.expect_line("Receive:", |l| l.starts_with("Receive: "));
    assert_eq!(
        line, r"Receive: hi\x1b]0;PWNED\x07\x1b[2J\nDisconnect 10.0.0.1:4444",
        "[{backend}]"
    );
    read_n(&mut client, REPLY.len());
    for (sent, shown) in [
        ("hello\n", r"hello"),
        ("crlf\r\n", r"crlf"),
        ("tab\there\\ 你好\u{202E}", r"tab\there\\ 你好\u202e"),
    ] {
        client.write_all(sent.as_bytes()).unwrap();
        let line = server.expect_line("Receive:", |l| l.starts_with("Receive: "));
        assert_eq!(line, format!("Receive: {shown}"), "[{backend}] {sent:?}");
        read_n(&mut client, REPLY.len());
    }
}

/// Select refuses every connection on an fd ≥ 1024; one warning per
/// refusal flooded the log. Now at most one a second, with a count.
#[test]
fn select_refusals_are_warned_about_at_most_once_a_second() {
    let server = Example::start_with("select_server", &["--addr", "127.0.0.1:0"], |command| {
        occupy_fds(command, 20, 1024)
    });
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(connect(&server));
    }
    // Every refused client sees end of file.
    for client in &mut clients[10..] {
        let mut buf = [0u8; 1];
        let _ = client.read(&mut buf);
    }
    std::thread::sleep(Duration::from_millis(300));
    let stderr = server.stderr();
    let warnings = stderr.lines().filter(|l| l.contains("1024")).count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warning lines for one burst of refusals:\n{stderr}"
    );
}
