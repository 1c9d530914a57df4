//! A server whose stdout nobody reads (piped into `sleep 600`, or a
//! terminal stopped with Ctrl-S) keeps serving: what does not fit in its
//! bounded output queue is counted and reported as `… N lines dropped`, and
//! SIGTERM still stops it within a second. Run on the five servers that
//! print per message (`select_server`, `poll_server`, `epoll_server`,
//! `struct_recv`, `unix_recv`), on every backend.

#[macro_use]
mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{SOON, example_path};
use reactor::Backend;

/// A connection to the server under test, TCP or unix.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Tcp(s) => s,
            Conn::Unix(s) => s,
        }
    }
    fn set_nonblocking(&self, on: bool) {
        match self {
            Conn::Tcp(s) => s.set_nonblocking(on).unwrap(),
            Conn::Unix(s) => s.set_nonblocking(on).unwrap(),
        }
    }
    fn set_read_timeout(&self, wait: Duration) {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(Some(wait)).unwrap(),
            Conn::Unix(s) => s.set_read_timeout(Some(wait)).unwrap(),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One of the servers, with its stdout going into a pipe the test holds
/// and (mostly) does not read.
struct Server {
    child: Child,
    /// The read end of the server's stdout.
    out: File,
    /// Where clients connect: a TCP address or a socket path.
    at: String,
    unix: bool,
    /// Removed on drop (unix_recv's directory).
    dir: Option<PathBuf>,
}

impl Server {
    fn start(name: &str, backend: Backend) -> Server {
        let (read, write) = pipe();
        // The smallest pipe the kernel allows (one page): it fills at once.
        // SAFETY: F_SETPIPE_SZ takes an int, on a pipe we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        let mut command = Command::new(example_path(name));
        let mut dir = None;
        if name == "unix_recv" {
            let d = std::env::temp_dir()
                .join(format!("reactor-stdout-{}-{backend}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            command.args(["--path", d.join("sock").to_str().unwrap()]);
            dir = Some(d);
        } else {
            command.args(["--addr", "127.0.0.1:0"]);
        }
        let child = command
            .args(["--backend", backend.name()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::null())
            .env_remove("REACTOR_BACKEND")
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let mut out = File::from(read);
        let first = read_line(&mut out);
        let at = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_once(" (backend: "))
            .unwrap_or_else(|| panic!("{name}: first line {first:?}"))
            .0
            .to_owned();
        Server {
            child,
            out,
            at,
            unix: dir.is_some(),
            dir,
        }
    }

    fn connect(&self) -> Conn {
        let conn = if self.unix {
            Conn::Unix(UnixStream::connect(&self.at).expect("connect"))
        } else {
            Conn::Tcp(TcpStream::connect(&self.at).expect("connect"))
        };
        conn.set_read_timeout(SOON);
        conn
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the exit; `None` if it takes longer than `wait`.
    fn wait_exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are fresh descriptors owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Reads one line byte by byte (so nothing after it is consumed).
fn read_line(out: &mut File) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).expect("read stdout") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// What one message to `name` looks like on the wire, and the reply.
fn message(name: &str) -> (Vec<u8>, &'static [u8]) {
    match name {
        // One i5sf record: (1, b'zhang', 1.75).
        "struct_recv" => (
            b"\x01\x00\x00\x00zhang\x00\x00\x00\x00\x00\xe0\x3f".to_vec(),
            b"",
        ),
        "unix_recv" => (b"ping".to_vec(), b"Receive"),
        _ => (b"ping".to_vec(), "收到了".as_bytes()),
    }
}

/// Sends about 300 KB from a client that does not read, so the server has
/// far more to print than the pipe holds.
fn flood(server: &Server, name: &str) -> Conn {
    let mut hog = server.connect();
    hog.set_nonblocking(true);
    let (one, _) = message(name);
    let chunk: Vec<u8> = one.iter().copied().cycle().take(one.len() * 256).collect();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while sent < 300_000 && Instant::now() < deadline {
        match hog.stream().write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("flood: {e}"),
        }
    }
    // Until the server has read it all (nothing left in the hog's send
    // queue), so the lines it printed are more than stdout could take.
    let fd = match &hog {
        Conn::Tcp(s) => s.as_raw_fd(),
        Conn::Unix(s) => s.as_raw_fd(),
    };
    let deadline = Instant::now() + SOON;
    loop {
        let mut unsent: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int; `fd` is our open socket.
        unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unsent) };
        if unsent == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    hog
}

/// A second client is served while the first floods stdout.
#[track_caller]
fn others_are_served(server: &Server, name: &str, backend: Backend) {
    let (msg, reply) = message(name);
    let mut other = server.connect();
    other.stream().write_all(&msg).unwrap();
    if reply.is_empty() {
        // struct_recv does not answer: the sign of life is that it
        // accepts and reads (the send buffer drains).
        other.stream().write_all(&msg.repeat(64)).unwrap();
        return;
    }
    let mut got = vec![0u8; reply.len()];
    let start = Instant::now();
    other
        .stream()
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("[{name} {backend}] no reply while stdout is full: {e}"));
    assert_eq!(got, reply);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "[{name} {backend}]"
    );
}

fn stdout_full_never_freezes(name: &str, backend: Backend) {
    let mut server = Server::start(name, backend);
    let hog = flood(&server, name);
    others_are_served(&server, name, backend);
    if name != "struct_recv" {
        // A fresh connection is accepted and answered, too.
        others_are_served(&server, name, backend);
    }

    // Drain stdout: the lines that did not fit are reported.
    let mut out = server.out.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
            let shown = String::from_utf8_lossy(&text);
            if let Some(at) = shown.find(" lines dropped") {
                let _ = tx.send(shown[..at + 14].rsplit('\n').next().unwrap().to_owned());
                break;
            }
        }
    });
    let report = rx
        .recv_timeout(SOON)
        .unwrap_or_else(|_| panic!("[{name} {backend}] no `… N lines dropped` line"));
    let count: u64 = report
        .trim_start_matches("… ")
        .trim_end_matches(" lines dropped")
        .parse()
        .unwrap_or_else(|_| panic!("[{name} {backend}] {report:?}"));
    assert!(count > 0, "[{name} {backend}] {report:?}");

    // Block stdout again, then stop: within a second, exit 0.
    let hog2 = flood(&server, name);
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(3));
    let took = start.elapsed();
    let status =
        status.unwrap_or_else(|| panic!("[{name} {backend}] SIGTERM ignored while stdout is full"));
    assert_eq!(status.code(), Some(0), "[{name} {backend}]");
    assert!(
        took < Duration::from_millis(1500),
        "[{name} {backend}] {took:?}"
    );
    drop((hog, hog2));
}

fn select_server_stdout_full_never_freezes(backend: Backend) {
    stdout_full_never_freezes("select_server", backend);
}

fn poll_server_stdout_full_never_freezes(backend: Backend) {
    stdout_full_never_freezes("poll_server", backend);
}

fn epoll_server_stdout_full_never_freezes(backend: Backend) {
    stdout_full_never_freezes("epoll_server", backend);
}

fn struct_recv_stdout_full_never_freezes(backend: Backend) {
    stdout_full_never_freezes("struct_recv", backend);
}

fn unix_recv_stdout_full_never_freezes(backend: Backend) {
    stdout_full_never_freezes("unix_recv", backend);
}

backend_tests!(
    select_server_stdout_full_never_freezes,
    poll_server_stdout_full_never_freezes,
    epoll_server_stdout_full_never_freezes,
    struct_recv_stdout_full_never_freezes,
    unix_recv_stdout_full_never_freezes,
);
