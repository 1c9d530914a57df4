//! A terminal client for `epoll_chat`: the one-process answer to the
//! course's fork-based client.
//!
//! ```text
//! cargo run --example chat_client -- --addr 127.0.0.1:8888
//! ```
//!
//! The course's client has two things to wait for at once — the keyboard
//! and the server — and blocking calls can wait for only one, so it forks:
//!
//! ```python
//! pid = os.fork()
//! if pid == 0:
//!     while True:                     # child: keyboard → server
//!         msg = input("发言:")
//!         s.sendto(("C %s %s" % (name, msg)).encode(), ADDR)
//! else:
//!     while True:                     # parent: server → screen
//!         data, addr = s.recvfrom(1024)
//!         print(data.decode())
//! ```
//!
//! Here one process puts both descriptors, stdin and the socket, in one
//! `Reactor` and serves whichever is ready: lines typed go to the server
//! (queued if the socket is full, and stdin is not read while the queue is
//! over 64 KiB), lines from the server are printed as they arrive. The
//! name is simply the first line typed; the server's `* `/`! ` lines say
//! whether it was taken.
//!
//! Every line typed goes to the server, commands included: `/who`,
//! `/help` (the list of commands) and `/quit` are answered by the room.
//!
//! **Ending.** When the server closes the connection the client says so on
//! stderr, `* connection closed by server`, and exits: with status 0 if
//! that was expected — the server said `* server shutting down`, or this
//! side left (`/quit`, or end of input) — and 1 otherwise (the server
//! vanished, or closed it for a login timeout, say). At end of input
//! (Ctrl-D, or the end of a piped file) it sends what is queued, shuts down
//! its writing half — the server sees end of file, tells the others
//! `* <name> left` and closes — and exits when the server has closed, so
//! every line the server sent before is printed. `/quit` works the same
//! way from the server's side.

use servers::cli;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use clap::Parser;
use reactor::{Backend, Events, Interest, Reactor, Token};

/// Stop reading stdin while this much typed text waits for the socket.
const MAX_PENDING: usize = 64 * 1024;

/// Joins an epoll_chat room from a terminal.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The server's address
    #[arg(long, default_value = "127.0.0.1:8888", value_parser = cli::parse_addr)]
    addr: String,
    #[command(flatten)]
    backend: cli::BackendArg,
}

/// The two descriptors the client waits on.
enum Source {
    /// The keyboard (a duplicate of fd 0, left blocking; read once per event).
    Stdin(File),
    /// The connection to the server.
    Server(TcpStream),
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Stdin(f) => f.as_fd(),
            Source::Server(s) => s.as_fd(),
        }
    }
}

/// The keyboard's state.
#[derive(Debug)]
enum Stdin {
    /// In the reactor.
    Watched(Token),
    /// Out of the reactor while too much typed text waits for the socket.
    Parked(File),
    /// Cannot be watched (epoll refuses regular files): read directly,
    /// which never blocks for a file.
    Direct,
    /// End of input.
    Done,
}

/// The client's state between events.
struct Client {
    reactor: Reactor<Source>,
    server: Token,
    /// Where stdin is.
    stdin: Stdin,
    /// Typed bytes the socket has not taken yet.
    pending: Vec<u8>,
    /// What the server socket is watched for.
    watching: Interest,
    /// Writing half shut down (after end of input).
    shut: bool,
    /// The lines the server sent, watched for `* server shutting down`.
    from_server: LineWatch,
    /// The lines typed, watched for `/quit`.
    typed: LineWatch,
}

/// Watches a byte stream for one exact line, without keeping more than the
/// start of the current line.
struct LineWatch {
    /// The line looked for, without its `\n`.
    want: &'static [u8],
    /// The start of the current line (at most `want.len() + 1` bytes).
    current: Vec<u8>,
    /// Whether the line has been seen.
    seen: bool,
}

impl LineWatch {
    fn new(want: &'static [u8]) -> LineWatch {
        LineWatch {
            want,
            current: Vec::new(),
            seen: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.seen |= self.current.trim_ascii_end() == self.want;
                self.current.clear();
            } else if self.current.len() <= self.want.len() + 8 {
                self.current.push(byte);
            }
        }
    }
}

/// What reading from the server found.
enum Heard {
    /// Lines (or nothing yet): keep going.
    More,
    /// End of file: the server closed the connection.
    Closed,
    /// Our stdout is gone (its reader left): nothing left to do.
    NoReader,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.backend.choose(Backend::Epoll);
    let stream = match TcpStream::connect(&cli.addr) {
        Ok(stream) => stream,
        Err(err) => cli::fail(format_args!("cannot connect to {}: {err}", cli.addr)),
    };
    if let Err(err) = stream.set_nonblocking(true) {
        cli::fail(format_args!("cannot make the socket non-blocking: {err}"));
    }
    let mut reactor = Reactor::with_backend(backend).unwrap_or_else(|err| cli::fail(err));
    let server = reactor
        .insert(Source::Server(stream), Interest::READABLE)
        .unwrap_or_else(|err| cli::fail(err));
    let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => match reactor.insert(Source::Stdin(File::from(fd)), Interest::READABLE) {
            Ok(token) => Stdin::Watched(token),
            Err(_) => Stdin::Direct,
        },
        Err(_) => Stdin::Done,
    };
    let mut client = Client {
        reactor,
        server,
        stdin,
        pending: Vec::new(),
        watching: Interest::READABLE,
        shut: false,
        from_server: LineWatch::new(b"* server shutting down"),
        typed: LineWatch::new(b"/quit"),
    };
    match client.run() {
        Ok(Heard::Closed) => {
            eprintln!("* connection closed by server");
            let expected = client.from_server.seen || client.typed.seen || client.shut;
            std::process::exit(if expected { 0 } else { 1 });
        }
        Ok(_) => {}
        Err(err) => cli::fail(err),
    }
}

impl Client {
    /// Runs until the server closes the connection (or stdout goes away).
    fn run(&mut self) -> Result<Heard, String> {
        let mut events = Events::with_capacity(8);
        loop {
            let direct = matches!(self.stdin, Stdin::Direct);
            if direct && self.pending.len() < MAX_PENDING {
                self.read_stdin_directly();
            }
            self.flush()?;
            let direct = matches!(self.stdin, Stdin::Direct) && self.pending.len() < MAX_PENDING;
            let timeout = direct.then_some(std::time::Duration::ZERO);
            self.reactor
                .poll(&mut events, timeout)
                .map_err(|e| e.to_string())?;
            for event in &events {
                match self.reactor.get_mut(event.token()) {
                    Some(Source::Server(stream)) if event.is_readable() => {
                        match from_server(stream, &mut self.from_server)? {
                            Heard::More => {}
                            done => return Ok(done),
                        }
                    }
                    Some(Source::Server(_)) => {}
                    Some(Source::Stdin(file)) => {
                        let mut buf = [0u8; 4096];
                        match file.read(&mut buf) {
                            Ok(0) => self.stdin_done(),
                            Ok(n) => {
                                self.typed.feed(&buf[..n]);
                                self.pending.extend_from_slice(&buf[..n]);
                            }
                            Err(e) if e.kind() == ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                            Err(err) => {
                                log::warn!("stdin: {err}");
                                self.stdin_done();
                            }
                        }
                    }
                    None => {}
                }
            }
        }
    }

    /// Reads a chunk of a stdin that cannot be polled (a regular file).
    fn read_stdin_directly(&mut self) {
        let mut buf = [0u8; 4096];
        match std::io::stdin().lock().read(&mut buf) {
            Ok(0) => self.stdin_done(),
            Ok(n) => {
                self.typed.feed(&buf[..n]);
                self.pending.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => self.stdin_done(),
        }
    }

    /// End of input: stop watching stdin; the socket's writing half is
    /// shut down once the pending text is sent.
    fn stdin_done(&mut self) {
        if let Stdin::Watched(token) = self.stdin {
            let _ = self.reactor.remove(token);
        }
        self.stdin = Stdin::Done;
    }

    /// Sends pending text; adjusts what is watched (writable only while
    /// text is pending, stdin only while there is room for more).
    fn flush(&mut self) -> Result<(), String> {
        let Some(Source::Server(stream)) = self.reactor.get_mut(self.server) else {
            return Err("connection lost".to_owned());
        };
        while !self.pending.is_empty() {
            match stream.write(&self.pending) {
                Ok(n) => drop(self.pending.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(format!("connection lost: {err}")),
            }
        }
        let done = matches!(self.stdin, Stdin::Done);
        if self.pending.is_empty() && done && !self.shut {
            let _ = stream.shutdown(Shutdown::Write);
            self.shut = true;
        }
        let want = if self.pending.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if want != self.watching {
            self.watching = want;
            self.reactor
                .modify(self.server, want)
                .map_err(|e| e.to_string())?;
        }
        // Backpressure: stdin leaves the reactor while the queue is full.
        let full = self.pending.len() >= MAX_PENDING;
        match std::mem::replace(&mut self.stdin, Stdin::Done) {
            Stdin::Watched(token) if full => {
                if let Ok(Source::Stdin(file)) = self.reactor.remove(token) {
                    self.stdin = Stdin::Parked(file);
                }
            }
            Stdin::Parked(file) if !full => {
                let token = self
                    .reactor
                    .insert(Source::Stdin(file), Interest::READABLE)
                    .map_err(|e| e.error.to_string())?;
                self.stdin = Stdin::Watched(token);
            }
            other => self.stdin = other,
        }
        Ok(())
    }
}

/// Prints what the server sent, watching its lines.
fn from_server(mut stream: &TcpStream, lines: &mut LineWatch) -> Result<Heard, String> {
    let mut buf = [0u8; 16 * 1024];
    match stream.read(&mut buf) {
        Ok(0) => Ok(Heard::Closed),
        Ok(n) => {
            lines.feed(&buf[..n]);
            let mut out = std::io::stdout().lock();
            // A closed stdout (the reader went away): nothing left to do.
            if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                return Ok(Heard::NoReader);
            }
            Ok(Heard::More)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
            Ok(Heard::More)
        }
        // A reset is the server closing too, just less politely.
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(Heard::Closed),
        Err(err) => Err(format!("connection lost: {err}")),
    }
}
