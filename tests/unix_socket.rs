//! `unix_recv` / `unix_send` run as a user runs them, on every backend: the
//! course's exchange, many clients, and the socket-file edge cases of
//! docs/reliability.md#unix-socket-files (stale socket, regular file, live
//! server, long path, mode 0600, removal on SIGINT/SIGTERM) and the
//! descriptor-leak soak (docs/reliability.md#descriptor-leaks).

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Example, SOON, example_path, fd_count, limit_nofile};
use reactor::Backend;

backend_tests!(
    unix_send_lines_are_printed_and_answered,
    hundred_concurrent_clients,
    a_stale_socket_from_a_killed_server_is_replaced,
    a_regular_file_at_the_path_is_an_error_and_untouched,
    a_live_servers_socket_is_an_error_and_keeps_working,
    the_socket_file_is_owner_only_and_removed_on_stop,
    no_descriptor_leak_over_many_connections,
    a_path_too_long_for_sun_path_is_refused_not_truncated,
    a_live_server_with_a_full_backlog_is_detected_without_hanging,
    a_socket_bound_but_not_yet_listening_is_left_alone,
    received_text_is_printed_escaped,
);

/// A fresh, empty directory for one test's socket files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reactor-unix-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn sock(&self) -> PathBuf {
        self.0.join("sock_file")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(path: &Path, backend: Backend) -> Example {
    Example::start(
        "unix_recv",
        &[
            "--path",
            path.to_str().unwrap(),
            "--backend",
            backend.name(),
        ],
    )
}

/// Runs `name args` to completion with `input` on stdin; fails after `SOON`.
#[track_caller]
fn run(name: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(example_path(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("REACTOR_BACKEND")
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(SOON) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill only signals the child we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{name} {args:?} did not finish within {SOON:?}");
        }
    }
}

/// Starts `unix_recv` expecting it to refuse: exit status 1, and stderr.
#[track_caller]
fn refused(path: &Path, backend: Backend) -> String {
    let out = run(
        "unix_recv",
        &[
            "--path",
            path.to_str().unwrap(),
            "--backend",
            backend.name(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "[{backend}] {out:?}");
    assert!(
        out.stdout.is_empty(),
        "[{backend}] no `listening on` line: {out:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One message over a raw socket: the answer is `Receive`.
#[track_caller]
fn ask(path: &Path, msg: &str) {
    let mut s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(SOON)).unwrap();
    s.write_all(msg.as_bytes()).unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"Receive");
}

fn unix_send_lines_are_printed_and_answered(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let server = start(&path, backend);
    assert_eq!(server.listening_on, path.to_str().unwrap());
    let p = path.to_str().unwrap();
    let out = run(
        "unix_send",
        &["--path", p, "--backend", backend.name()],
        "hello\n你好\n".as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "[{backend}] {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Receive\nReceive\n",
        "[{backend}]"
    );
    assert_eq!(server.expect_line("hello", |_| true), "hello");
    assert_eq!(server.expect_line("你好", |_| true), "你好");
    // A second client after the first left; an empty line ends it, as in the course.
    let out = run(
        "unix_send",
        &["--path", p, "--backend", backend.name()],
        b"again\r\n\nnot sent\n",
    );
    assert_eq!(out.status.code(), Some(0), "[{backend}] {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Receive\n",
        "[{backend}]"
    );
    assert_eq!(server.expect_line("again", |_| true), "again");
    assert!(
        server.next_line(Duration::from_millis(200)).is_none(),
        "[{backend}] `not sent` was sent"
    );
}

fn hundred_concurrent_clients(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let server = start(&path, backend);
    let mut clients: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(SOON)).unwrap();
        c.write_all(format!("client {i}").as_bytes()).unwrap();
    }
    for c in &mut clients {
        let mut buf = [0u8; 7];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"Receive", "[{backend}]");
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 100 {
        seen.insert(server.expect_line("client i", |l| l.starts_with("client ")));
    }
}

fn a_stale_socket_from_a_killed_server_is_replaced(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let mut first = start(&path, backend);
    first.signal(libc::SIGKILL);
    first.wait_exit(SOON);
    let meta = std::fs::symlink_metadata(&path).expect("the killed server left its socket file");
    assert!(meta.file_type().is_socket());
    let server = start(&path, backend);
    ask(&path, "after the stale file");
    server.expect_line("after the stale file", |l| l == "after the stale file");
}

fn a_regular_file_at_the_path_is_an_error_and_untouched(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    std::fs::write(&path, b"precious data").unwrap();
    let err = refused(&path, backend);
    assert!(
        err.contains(path.to_str().unwrap()),
        "[{backend}] error names the path: {err}"
    );
    assert!(err.contains("not a socket"), "[{backend}] {err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"precious data",
        "[{backend}] file untouched"
    );
    // A directory is not a socket either.
    let sub = dir.0.join("a_dir");
    std::fs::create_dir(&sub).unwrap();
    refused(&sub, backend);
    assert!(sub.is_dir());
}

fn a_live_servers_socket_is_an_error_and_keeps_working(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let server = start(&path, backend);
    let err = refused(&path, backend);
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("another server"),
        "[{backend}] {err}"
    );
    ask(&path, "first still serves");
    server.expect_line("first still serves", |l| l == "first still serves");
}

fn a_path_too_long_for_sun_path_is_refused_not_truncated(backend: Backend) {
    let dir = TempDir::new();
    let prefix = dir.0.to_str().unwrap().len() + 1;
    let name = "s".repeat(120 - prefix);
    let path = dir.0.join(&name);
    assert_eq!(path.as_os_str().len(), 120);
    let err = refused(&path, backend);
    assert!(
        err.contains("120 bytes") && err.contains("107"),
        "[{backend}] {err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        0,
        "[{backend}] nothing created"
    );
}

fn the_socket_file_is_owner_only_and_removed_on_stop(backend: Backend) {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let dir = TempDir::new();
        let path = dir.sock();
        let mut server = Example::start_with(
            "unix_recv",
            &[
                "--path",
                path.to_str().unwrap(),
                "--backend",
                backend.name(),
            ],
            |c| {
                use std::os::unix::process::CommandExt;
                // SAFETY: umask is async-signal-safe and only sets the child's mask.
                unsafe {
                    c.pre_exec(|| {
                        libc::umask(0o022);
                        Ok(())
                    });
                }
            },
        );
        let mode = std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "[{backend}] mode {mode:o} under umask 022");
        ask(&path, "bye");
        server.signal(signal);
        let status = server.wait_exit(SOON);
        assert_eq!(status.code(), Some(0), "[{backend}] {status:?}");
        assert!(
            !path.exists(),
            "[{backend}] socket file left behind after signal {signal}"
        );
    }
}

#[test]
fn unix_send_without_a_server_fails_naming_the_path() {
    let dir = TempDir::new();
    let path = dir.sock();
    let out = run("unix_send", &["--path", path.to_str().unwrap()], b"hello\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(path.to_str().unwrap()));
}

/// docs/reliability.md#descriptor-leaks for the unix demo: 500
/// connect/send/close cycles under `RLIMIT_NOFILE=32`, the descriptor count
/// back to where it started.
fn no_descriptor_leak_over_many_connections(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let server = Example::start_with(
        "unix_recv",
        &[
            "--path",
            path.to_str().unwrap(),
            "--backend",
            backend.name(),
        ],
        |c| limit_nofile(c, 32),
    );
    ask(&path, "ready");
    std::thread::sleep(Duration::from_millis(100));
    let baseline = fd_count(server.pid());
    for i in 0..500 {
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"x").unwrap();
        if i % 2 == 0 {
            // Leave without reading the answer.
            continue;
        }
        let mut buf = [0u8; 7];
        s.set_read_timeout(Some(SOON)).unwrap();
        s.read_exact(&mut buf).unwrap();
    }
    let deadline = std::time::Instant::now() + SOON;
    while fd_count(server.pid()) != baseline {
        assert!(
            std::time::Instant::now() < deadline,
            "[{backend}] fds {} ≠ {baseline}",
            fd_count(server.pid())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ask(&path, "after the soak");
}

/// A new unix stream socket (close-on-exec, plus `flags`) and the address
/// of `path`, ready for `bind` or `connect`.
fn unix_socket(path: &Path, flags: i32) -> (std::os::fd::OwnedFd, libc::sockaddr_un) {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: socket takes no pointers; the result is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags,
            0,
        )
    };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
        *dst = *src as libc::c_char;
    }
    (owned, addr)
}

/// The size `bind` and `connect` are given with a `sockaddr_un`.
const ADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;

/// A unix socket at `path`, bound; listening with `backlog` if given.
fn raw_unix_socket(path: &Path, backlog: Option<i32>) -> std::os::fd::OwnedFd {
    use std::os::fd::AsRawFd;
    let (socket, addr) = unix_socket(path, 0);
    // SAFETY: bind reads a sockaddr_un of the size given, from our stack.
    let ret = unsafe { libc::bind(socket.as_raw_fd(), (&raw const addr).cast(), ADDR_LEN) };
    assert_eq!(ret, 0, "bind: {}", std::io::Error::last_os_error());
    if let Some(backlog) = backlog {
        // SAFETY: listen takes no pointers.
        assert_eq!(unsafe { libc::listen(socket.as_raw_fd(), backlog) }, 0);
    }
    socket
}

/// A live server whose backlog is full (it stopped accepting): a blocking
/// connect would wait forever. The probe gives up after a short deadline
/// and treats the socket as alive.
fn a_live_server_with_a_full_backlog_is_detected_without_hanging(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let _listener = raw_unix_socket(&path, Some(0));
    let mut queued = Vec::new();
    while let Some(connected) = nonblocking_connect(&path) {
        queued.push(connected);
        assert!(queued.len() < 1000, "the backlog never filled");
    }
    let start = std::time::Instant::now();
    let err = refused(&path, backend);
    assert!(err.contains("another server"), "[{backend}] {err}");
    assert!(start.elapsed() < Duration::from_secs(3), "[{backend}]");
    assert!(path.exists(), "[{backend}] the live socket was removed");
}

/// A non-blocking connect to `path`; `None` once the backlog is full.
fn nonblocking_connect(path: &Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let (socket, addr) = unix_socket(path, libc::SOCK_NONBLOCK);
    // SAFETY: connect reads a sockaddr_un of the size given, from our stack.
    let ret = unsafe { libc::connect(socket.as_raw_fd(), (&raw const addr).cast(), ADDR_LEN) };
    (ret == 0).then_some(socket)
}

/// Another process has bound the path and is about to listen: the first
/// probe is refused, the retry finds it listening. It is not deleted.
fn a_socket_bound_but_not_yet_listening_is_left_alone(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let socket = raw_unix_socket(&path, None);
    let listener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        use std::os::fd::AsRawFd;
        // SAFETY: listen takes no pointers; the socket is ours.
        assert_eq!(unsafe { libc::listen(socket.as_raw_fd(), 8) }, 0);
        socket
    });
    let err = refused(&path, backend);
    assert!(err.contains("another server"), "[{backend}] {err}");
    let _socket = listener.join().unwrap();
    assert!(
        path.exists(),
        "[{backend}] the other process's socket was removed"
    );
}

/// A client's bytes are printed escaped (as Python's `repr` shows them).
fn received_text_is_printed_escaped(backend: Backend) {
    let dir = TempDir::new();
    let path = dir.sock();
    let server = start(&path, backend);
    let attack = "hi\x1b]0;PWNED\x07\x1b[2J\nDisconnect 10.0.0.1:4444";
    ask(&path, attack);
    server.expect_line("the attack, escaped", |l| {
        l == r"hi\x1b]0;PWNED\x07\x1b[2J\nDisconnect 10.0.0.1:4444"
    });
    ask(&path, "plain line\n");
    server.expect_line("a plain line", |l| l == "plain line");
}
