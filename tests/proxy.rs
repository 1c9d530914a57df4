//! The `proxy` example, run as a user runs it, on select, poll and epoll:
//! curl through it to Python's `http.server`, a large transfer checksummed
//! both ways, a reader that stops (memory stays bounded), half-close, the
//! idle timeout, and a clean exit on SIGINT and SIGTERM.

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Example, rss_kib};
use reactor::Backend;

backend_tests!(
    curl_through_it_to_python_http_server,
    a_large_transfer_arrives_intact_both_ways,
    a_reader_that_stops_keeps_memory_bounded,
    half_close_is_passed_on_both_ways,
    an_idle_pair_is_closed_and_a_busy_one_is_not,
    sigint_and_sigterm_exit_0,
);

/// Starts the proxy on `backend`, forwarding to `to`.
fn proxy(backend: Backend, to: SocketAddr, extra: &[&str]) -> Example {
    let to = to.to_string();
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--backend",
        backend.name(),
        "--to",
        &to,
    ];
    args.extend_from_slice(extra);
    Example::start("proxy", &args)
}

/// A connected client with a read timeout, so a failure cannot hang a test.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// FNV-1a, 64 bits: enough to tell two byte streams apart.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash = (*hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift), hashed as they are made.
fn pattern(seed: u64, len: usize) -> (Vec<u8>, u64) {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut hash = 0xcbf2_9ce4_8422_2325;
    fnv(&mut hash, &data);
    (data, hash)
}

/// Reads to end of file, hashing; returns (bytes, hash).
fn drain(stream: &mut TcpStream) -> (usize, u64) {
    let (mut total, mut hash, mut buf) = (0, 0xcbf2_9ce4_8422_2325, vec![0; 64 * 1024]);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (total, hash),
            Ok(n) => {
                fnv(&mut hash, &buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read after {total} bytes: {e}"),
        }
    }
}

/// An upstream that accepts one connection and runs `serve` on it.
fn upstream<R: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> R + Send + 'static,
) -> (SocketAddr, JoinHandle<R>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        serve(stream)
    });
    (addr, thread)
}

fn curl_through_it_to_python_http_server(backend: Backend) {
    // Never passes unrun: without the tools it fails, saying which is missing.
    common::require_program("python3");
    common::require_program("curl");
    let dir = std::env::temp_dir().join(format!("proxy-test-{}-{backend}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (body, _) = pattern(7, 3 << 20);
    std::fs::write(dir.join("file.bin"), &body).unwrap();
    let mut server = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let port: u16 = first
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("http.server said {first:?}"));
    let proxy = proxy(backend, SocketAddr::from(([127, 0, 0, 1], port)), &[]);
    for _ in 0..3 {
        let got = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "20"])
            .arg(format!("http://{}/file.bin", proxy.addr()))
            .output()
            .unwrap();
        assert!(
            got.status.success(),
            "[{backend}] curl: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert!(
            got.stdout == body,
            "[{backend}] {} bytes, not the file",
            got.stdout.len()
        );
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn a_large_transfer_arrives_intact_both_ways(backend: Backend) {
    const LEN: usize = 24 << 20;
    let (down, down_hash) = pattern(1, LEN);
    let (up, up_hash) = pattern(2, LEN);
    // The upstream sends `down` while it reads `up`, then half-closes.
    let (addr, server) = upstream(move |mut stream| {
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            writer.write_all(&down).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let got = drain(&mut stream);
        sender.join().unwrap();
        got
    });
    let proxy = proxy(backend, addr, &[]);
    let mut client = connect(proxy.addr());
    let mut writer = client.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&up).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let start = Instant::now();
    assert_eq!(
        drain(&mut client),
        (LEN, down_hash),
        "[{backend}] downstream"
    );
    sender.join().unwrap();
    assert_eq!(
        server.join().unwrap(),
        (LEN, up_hash),
        "[{backend}] upstream"
    );
    eprintln!(
        "[{backend}] 2 × {} MiB through the proxy in {:?}",
        LEN >> 20,
        start.elapsed()
    );
}

fn a_reader_that_stops_keeps_memory_bounded(backend: Backend) {
    // The upstream writes as fast as it can, for at most 256 MiB or 3 s;
    // the client never reads. TCP must stall the writer: the proxy buffers
    // at most 64 KiB per direction, plus what the kernel holds.
    let (addr, server) = upstream(|mut stream| {
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (chunk, start, mut sent) = (vec![7u8; 64 * 1024], Instant::now(), 0usize);
        while sent < 256 << 20 && start.elapsed() < Duration::from_secs(3) {
            match stream.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        sent
    });
    let proxy = proxy(backend, addr, &[]);
    let before = rss_kib(proxy.pid());
    let client = connect(proxy.addr());
    std::thread::sleep(Duration::from_millis(1500));
    let during = rss_kib(proxy.pid());
    let sent = server.join().unwrap();
    assert!(
        sent < 32 << 20,
        "[{backend}] the upstream sent {} MiB to a reader that stopped",
        sent >> 20
    );
    assert!(
        during < before + 4096,
        "[{backend}] RSS grew from {before} to {during} KiB"
    );
    drop(client);
}

fn half_close_is_passed_on_both_ways(backend: Backend) {
    // The client says "request" and shuts its writing half; the upstream
    // sees end of file only then, answers, and closes.
    let (addr, server) = upstream(|mut stream| {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        stream.write_all(b"answer to: ").unwrap();
        stream.write_all(&got).unwrap();
        got
    });
    let proxy = proxy(backend, addr, &[]);
    let mut client = connect(proxy.addr());
    client.write_all(b"request").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "answer to: request", "[{backend}]");
    assert_eq!(server.join().unwrap(), b"request");
}

fn an_idle_pair_is_closed_and_a_busy_one_is_not(backend: Backend) {
    // Two pairs, idle timeout 0.4 s: one says nothing, the other a byte
    // every 100 ms for 1.2 s.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0; 64];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = proxy(backend, addr, &["--idle-timeout", "0.4"]);
    let start = Instant::now();
    let mut idle = connect(proxy.addr());
    let mut busy = connect(proxy.addr());
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(100));
        busy.write_all(b"x").unwrap();
        let mut one = [0; 1];
        busy.read_exact(&mut one).unwrap();
    }
    assert!(start.elapsed() > Duration::from_millis(1200));
    let mut buf = [0; 1];
    assert_eq!(
        idle.read(&mut buf).unwrap(),
        0,
        "[{backend}] idle pair still open"
    );
    busy.write_all(b"y").unwrap();
    busy.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"y", "[{backend}] the busy pair was closed");
    echo.join().unwrap();
}

fn sigint_and_sigterm_exit_0(backend: Backend) {
    let (addr, _server) = upstream(|_stream| ());
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut proxy = proxy(backend, addr, &[]);
        proxy.signal(signal);
        let status = proxy.wait_exit(Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "[{backend}] signal {signal}: {status}"
        );
    }
}
