//! The course's `unix_recv.py`: a server on an `AF_UNIX` stream socket that
//! prints each message and answers `Receive`.
//!
//! ```text
//! cargo run --example unix_recv -- --path ./sock_file
//! cargo run --example unix_send -- --path ./sock_file     # type lines; each is answered Receive
//! python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect('./sock_file'); s.send(b'hi'); print(s.recv(64))"
//! ```
//!
//! The Python it mirrors (from the course notes):
//!
//! ```python
//! from socket import *
//! import os
//! sock_file = './sock_file'
//! if os.path.exists(sock_file):      # 判断文件是否已经存在
//!     os.remove(sock_file)           # ← deletes whatever is there
//! sockfd = socket(AF_UNIX, SOCK_STREAM)
//! sockfd.bind(sock_file)
//! sockfd.listen(3)
//! while True:
//!     c, addr = sockfd.accept()
//!     while True:
//!         data = c.recv(1024)
//!         if data:
//!             print(data.decode())
//!             c.send(b"Receive")
//!         else:
//!             break
//!     c.close()
//! sockfd.close()
//! ```
//!
//! **The bugs, and the fixes.**
//!
//! - *It deletes whatever file sits at the path*: a typo'd `--path` could
//!   remove someone's data, and a second server would silently steal the
//!   socket of a running one. Here the path is removed only if it is a
//!   socket (`S_ISSOCK`, checked with `lstat`, so a symlink is never
//!   followed) **and** connecting to it is refused (`ECONNREFUSED`: a stale
//!   file left by a server that was killed). A live server's socket, or any
//!   other kind of file, is an error naming the path, exit status 1, and
//!   nothing is deleted.
//! - *One client at a time*: the inner `while` serves one client until it
//!   leaves while the others wait in the backlog. Here every client is in
//!   the reactor at once.
//! - *The file stays behind* after Ctrl-C. Here SIGINT/SIGTERM close every
//!   client, remove the socket file (if it is still ours) and exit 0.
//! - *Paths longer than `sun_path` (107 bytes)* are refused with a clear
//!   error instead of being truncated; the socket file is created with mode
//!   0600 (owner only) whatever the umask.
//! - A UTF-8 character split between two reads is held until complete
//!   (`data.decode()` raises on it); invalid bytes print as `�`.

use servers::escape::escape;
use servers::{cli, stdout};

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use reactor::{Acceptor, Backend, Events, Interest, Reactor, Token};
use servers::server;

/// What the server answers to every message, as the course's does.
const REPLY: &[u8] = b"Receive";

/// Stop reading from a client whose unread replies pass this many bytes.
const MAX_PENDING: usize = 64 * 1024;

/// The longest path `sun_path` holds, leaving room for its NUL.
const MAX_PATH: usize = 107;

/// The course's unix-socket server: prints each message and answers Receive.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Path of the socket file
    #[arg(long, default_value = "./sock_file", value_parser = non_empty_path)]
    path: PathBuf,
    #[command(flatten)]
    backend: cli::BackendArg,
}

/// What the reactor watches: the listener, the stop signals, the clients.
type Source = server::Source<Client, UnixListener>;

/// A client: its socket, replies it has not read, a split UTF-8 character.
struct Client {
    stream: UnixStream,
    pending: VecDeque<u8>,
    partial: Vec<u8>,
    watching: Interest,
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// The socket file this server created; removed on the way out, if it is
/// still the same file (nobody replaced it meanwhile).
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(err) = std::fs::remove_file(&self.path) {
            eprintln!("error: cannot remove {}: {err}", self.path.display());
        }
    }
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.backend.choose(Backend::Epoll);
    let path = cli.path;
    let (listener, file) = bind(&path).unwrap_or_else(|err| cli::fail(err));
    // Printing never blocks the loop: see servers::stdout.
    stdout::install();
    let (reactor, listen) = server::with_listener(listener, backend);
    cli::announce(path.display(), backend);
    let result = serve(reactor, listen);
    file.remove();
    if let Err(err) = result {
        cli::fail(err);
    }
}

/// Checks the path, removes a stale socket file, and binds with mode 0600.
fn bind(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    let shown = path.display();
    let len = path.as_os_str().len();
    if len > MAX_PATH {
        return Err(format!(
            "socket path {shown} is {len} bytes; a unix socket path holds at most {MAX_PATH} (sun_path)"
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(format!("cannot inspect {shown}: {err}")),
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(format!(
                "{shown} exists and is not a socket; not removing it (choose another --path)"
            ));
        }
        Ok(_) => match probe(path) {
            Probe::Alive => return Err(format!("{shown}: another server is listening on it")),
            Probe::Stale => {
                log::info!("removing stale socket file {shown} (nobody answers on it)");
                std::fs::remove_file(path)
                    .map_err(|err| format!("cannot remove stale socket {shown}: {err}"))?;
            }
            Probe::Unknown(err) => {
                return Err(format!("{shown} is a socket but cannot be checked: {err}"));
            }
        },
    }
    // The file gets 0777 & !umask: make that 0600 for the bind. The process
    // is still single-threaded here, so no other file sees this umask.
    // SAFETY: umask only swaps the process's file-creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above; restores the caller's mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|err| format!("cannot listen on {shown}: {err}"))?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|err| format!("cannot inspect {shown} after bind: {err}"))?;
    let file = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if let Err(err) = listener.set_nonblocking(true) {
        file.remove();
        return Err(format!("cannot make the listener non-blocking: {err}"));
    }
    Ok((listener, file))
}

/// `--path`: any path but the empty one.
fn non_empty_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path is empty".to_owned());
    }
    Ok(PathBuf::from(text))
}

/// What is behind a socket file.
enum Probe {
    /// A server: it accepted, or its backlog is full (the connect did not
    /// finish within [`PROBE_WAIT`]), or it listened by the retry.
    Alive,
    /// Refused twice, [`PROBE_RETRY`] apart: nobody listens.
    Stale,
    /// Something else went wrong; nothing is removed.
    Unknown(std::io::Error),
}

/// How long a connect may take before the server counts as alive and busy.
const PROBE_WAIT: Duration = Duration::from_millis(500);

/// A refused connect is tried again after this long: another process may
/// have bound the path and be about to `listen`.
const PROBE_RETRY: Duration = Duration::from_millis(250);

/// Asks whether a server is behind the socket file at `path`, without
/// ever blocking: a blocking `connect` to a live server whose backlog is
/// full waits forever. "Refused" (`ECONNREFUSED`) means no listener: the
/// file is stale — or another process has bound it and not yet called
/// `listen`, so a refusal is believed only if it happens again after
/// [`PROBE_RETRY`].
fn probe(path: &Path) -> Probe {
    match connect_within(path, PROBE_WAIT) {
        Err(err) if err.raw_os_error() == Some(libc::ECONNREFUSED) => {}
        Err(err) if err.kind() == ErrorKind::TimedOut => return Probe::Alive,
        Err(err) => return Probe::Unknown(err),
        Ok(()) => return Probe::Alive,
    }
    std::thread::sleep(PROBE_RETRY);
    match connect_within(path, PROBE_WAIT) {
        Err(err) if err.raw_os_error() == Some(libc::ECONNREFUSED) => Probe::Stale,
        Err(err) if err.kind() == ErrorKind::TimedOut => Probe::Alive,
        Err(err) => Probe::Unknown(err),
        Ok(()) => Probe::Alive,
    }
}

/// A non-blocking `connect` to `path`, waited for at most `wait`;
/// `TimedOut` if it did not finish (a full backlog).
fn connect_within(path: &Path, wait: Duration) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: socket takes no pointers; the descriptor is owned just below.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // The path's length was checked against sun_path by the caller.
    for (dst, src) in addr.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: connect reads a sockaddr_un of the size given, from our stack.
    let ret = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // A unix socket whose backlog is full answers EAGAIN at once (a
        // blocking connect would wait for room): alive, just not accepting.
        Some(libc::EAGAIN) => Err(ErrorKind::TimedOut.into()),
        Some(libc::EINPROGRESS) => {
            let mut pfd = libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: poll reads and writes one pollfd on our stack.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                return Err(ErrorKind::TimedOut.into());
            }
            let mut so_error: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes one c_int and its length, both ours.
            unsafe {
                libc::getsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut so_error as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            match so_error {
                0 => Ok(()),
                code => Err(std::io::Error::from_raw_os_error(code)),
            }
        }
        _ => Err(err),
    }
}

/// The loop: accept, print, answer `Receive`, until SIGINT/SIGTERM.
fn serve(mut reactor: Reactor<Source>, listen: Token) -> reactor::Result<()> {
    let mut acceptor = Acceptor::new();
    let mut events = Events::with_capacity(256);
    loop {
        reactor.poll(&mut events, None)?;
        for event in &events {
            let token = event.token();
            match reactor.get_mut(token) {
                // Stale: closed earlier in this batch.
                None => {}
                Some(Source::Listener(_)) => {
                    server::accept_all(&mut reactor, listen, &mut acceptor, open, |_, err| {
                        cli::warn_refused("a client", err);
                    })?
                }
                Some(Source::Stop(signals)) => {
                    if !server::stop_requested(signals) {
                        continue; // a spurious wake-up of the signal pipe
                    }
                    stdout::finish();
                    return Ok(());
                }
                // stdout takes more of the messages waiting for it.
                Some(Source::Stdout(_)) => stdout::on_writable(),
                Some(Source::Conn(client)) => {
                    match handle(client, event.is_readable(), event.is_writable()) {
                        Some(interest) if interest == client.watching => {}
                        Some(interest) => {
                            client.watching = interest;
                            if reactor.modify(token, interest).is_err() {
                                drop(reactor.remove(token));
                            }
                        }
                        None => drop(reactor.remove(token)),
                    }
                }
            }
        }
        stdout::watch(&mut reactor, Source::Stdout);
    }
}

/// A new client, with nothing queued for it.
fn open(stream: UnixStream, _peer: std::os::unix::net::SocketAddr) -> Option<Client> {
    Some(Client {
        stream,
        pending: VecDeque::new(),
        partial: Vec::new(),
        watching: Interest::READABLE,
    })
}

/// Reads and prints a message, queues `Receive`, writes what the socket
/// takes. Returns the interest needed next, or `None` to close.
fn handle(client: &mut Client, readable: bool, writable: bool) -> Option<Interest> {
    if readable && client.pending.len() < MAX_PENDING {
        let mut buf = [0u8; 1024];
        match client.stream.read(&mut buf) {
            Ok(0) => {
                if !client.partial.is_empty() {
                    cli::say(escape(&String::from_utf8_lossy(&client.partial)));
                }
                return None;
            }
            Ok(n) => {
                if let Some(text) = servers::course_server::decode(&mut client.partial, &buf[..n]) {
                    // Escaped, as Python's repr shows it: no terminal
                    // escape or forged line gets through.
                    cli::say(escape(&text));
                }
                client.pending.extend(REPLY);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => return None,
        }
    }
    if writable || !client.pending.is_empty() {
        while !client.pending.is_empty() {
            let (front, _) = client.pending.as_slices();
            match client.stream.write(front) {
                Ok(n) => drop(client.pending.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
    Some(if client.pending.len() >= MAX_PENDING {
        Interest::WRITABLE
    } else if client.pending.is_empty() {
        Interest::READABLE
    } else {
        Interest::READABLE | Interest::WRITABLE
    })
}
