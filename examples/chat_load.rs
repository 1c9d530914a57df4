//! A load generator for `epoll_chat`: N clients in one process (one
//! `Reactor`, not N threads) each send M messages as fast as the server
//! takes them, and every client counts the lines it receives. It prints how
//! many of the expected `N × M × (N − 1)` deliveries arrived and how fast.
//!
//! ```text
//! cargo run --release --example epoll_chat -- --addr 127.0.0.1:9000 &
//! cargo run --release --example chat_load -- --addr 127.0.0.1:9000 --clients 200 --messages 100
//! ```
//!
//! Bounded: it stops after `--seconds` whatever happened, and reports a
//! shortfall (a client the server dropped as too slow counts as one).

use servers::cli;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use clap::Parser;
use reactor::{Backend, Events, Interest, Reactor};

/// Floods an epoll_chat server and measures delivered lines per second.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The server's address
    #[arg(long, default_value = "127.0.0.1:8888", value_parser = cli::parse_addr)]
    addr: String,
    /// How many clients
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=20_000))]
    clients: u32,
    /// Messages each client sends
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    messages: u32,
    /// Bytes of text per message
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4000))]
    size: u32,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[command(flatten)]
    backend: cli::BackendArg,
}

/// One simulated member.
struct Member {
    stream: TcpStream,
    /// Which client (its name is `load<index>`).
    index: usize,
    /// Messages sent so far.
    sent: u32,
    /// Encoded bytes not yet written.
    out: Vec<u8>,
    /// Lines received during the measurement.
    received: u64,
    /// The server closed us.
    closed: bool,
    watching: Interest,
}

impl std::os::fd::AsFd for Member {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let n = cli.clients as usize;
    let backend = cli.backend.choose(Backend::Epoll);
    // Log everyone in, blocking (set-up, not measured).
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let stream = TcpStream::connect(&cli.addr)
            .unwrap_or_else(|e| cli::fail(format_args!("connect {}: {e}", cli.addr)));
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| cli::fail(e)));
        let mut line = String::new();
        let _ = reader.read_line(&mut line); // the prompt
        (&stream)
            .write_all(format!("load{i}\n").as_bytes())
            .unwrap_or_else(|e| cli::fail(e));
        line.clear();
        let _ = reader.read_line(&mut line);
        if !line.starts_with("* welcome") {
            cli::fail(format_args!("client {i} not let in: {line:?}"));
        }
        streams.push((stream, reader));
    }
    // Client i sees the joins of clients i+1..n: read them so the
    // measurement counts messages only.
    for (i, (_, reader)) in streams.iter_mut().enumerate() {
        for _ in i + 1..n {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
        }
    }
    let mut reactor: Reactor<Member> =
        Reactor::with_backend(backend).unwrap_or_else(|e| cli::fail(e));
    for (index, (stream, reader)) in streams.into_iter().enumerate() {
        drop(reader);
        stream
            .set_nonblocking(true)
            .unwrap_or_else(|e| cli::fail(e));
        let member = Member {
            stream,
            index,
            sent: 0,
            out: Vec::new(),
            received: 0,
            closed: false,
            watching: Interest::READABLE | Interest::WRITABLE,
        };
        reactor
            .insert(member, Interest::READABLE | Interest::WRITABLE)
            .unwrap_or_else(|e| cli::fail(e.error));
    }

    let expected_each = u64::from(cli.messages) * (n as u64 - 1);
    let payload = "x".repeat(cli.size as usize);
    let start = Instant::now();
    let limit = start + Duration::from_secs(cli.seconds);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0usize; // members that received everything or were closed
    let mut last_line = start;
    let (mut delivered, mut dropped) = (0u64, 0usize);
    while done < n && Instant::now() < limit {
        let left = limit.saturating_duration_since(Instant::now());
        if let Err(e) = reactor.poll(&mut events, Some(left)) {
            cli::fail(e);
        }
        for event in &events {
            let token = event.token();
            let Some(m) = reactor.get_mut(token) else {
                continue;
            };
            if event.is_readable() && !m.closed {
                loop {
                    match m.stream.read(&mut buf) {
                        Ok(0) => {
                            m.closed = true;
                            done += 1;
                            break;
                        }
                        Ok(k) => {
                            let before = m.received;
                            m.received += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
                            last_line = Instant::now();
                            if before < expected_each && m.received >= expected_each {
                                done += 1;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            m.closed = true;
                            done += 1;
                            break;
                        }
                    }
                }
            }
            if event.is_writable() && !m.closed {
                let index = m.index;
                while m.out.len() < 16 * 1024 && m.sent < cli.messages {
                    m.out
                        .extend_from_slice(format!("{index} {} {payload}\n", m.sent).as_bytes());
                    m.sent += 1;
                }
                match m.stream.write(&m.out) {
                    Ok(k) => drop(m.out.drain(..k)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => m.closed = true,
                }
            }
            let want = if m.closed {
                None
            } else if m.out.is_empty() && m.sent == cli.messages {
                Some(Interest::READABLE)
            } else {
                Some(Interest::READABLE | Interest::WRITABLE)
            };
            match want {
                Some(want) if want != m.watching => {
                    m.watching = want;
                    let _ = reactor.modify(token, want);
                }
                Some(_) => {}
                None => {
                    if let Ok(m) = reactor.remove(token) {
                        delivered += m.received.min(expected_each);
                        dropped += 1;
                    }
                }
            }
        }
    }
    let elapsed = last_line.duration_since(start).as_secs_f64().max(1e-9);
    for (_, m) in reactor.iter() {
        delivered += m.received.min(expected_each);
    }
    let expected = expected_each * n as u64;
    let sent = u64::from(cli.messages) * n as u64;
    println!(
        "{n} clients × {} messages of {} B: {delivered} of {expected} lines delivered in {elapsed:.2} s \
         = {:.0} lines/s out, {:.0} messages/s in; {dropped} client(s) closed by the server",
        cli.messages,
        cli.size,
        delivered as f64 / elapsed,
        sent as f64 / elapsed,
    );
    if delivered < expected {
        std::process::exit(1);
    }
}
