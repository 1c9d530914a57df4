//! The course's `unix_send.py`: a client on an `AF_UNIX` stream socket that
//! sends each line typed and prints the server's answer.
//!
//! ```text
//! cargo run --example unix_recv -- --path ./sock_file      # in one terminal
//! cargo run --example unix_send -- --path ./sock_file      # in another: type lines
//! printf 'hello\nworld\n' | cargo run --example unix_send  # or from a pipe
//! ```
//!
//! The Python it mirrors (from the course notes):
//!
//! ```python
//! from socket import *
//! sock_file = "./sock_file"
//! sockfd = socket(AF_UNIX, SOCK_STREAM)
//! sockfd.connect(sock_file)
//! while True:
//!     msg = input(">>")
//!     if msg:
//!         sockfd.send(msg.encode())
//!         print(sockfd.recv(1024).decode())
//!     else:
//!         break
//! sockfd.close()
//! ```
//!
//! Same behaviour: each line of standard input (without its line ending) is
//! sent as one message, the answer is printed on a line of its own, and an
//! empty line ends the session. Differences: end of input (a pipe, or
//! Ctrl-D) also ends it, with exit status 0, where `input()` raises
//! `EOFError`; the `>>` prompt is shown only when standard input is a
//! terminal, so piped output holds just the answers; the answer is awaited
//! through the reactor (`--backend`), and a server that closes the
//! connection is reported (exit 1) instead of printing empty answers.

use servers::cli;

use std::io::{BufRead, ErrorKind, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use clap::Parser;
use reactor::{Backend, Events, Interest, Reactor, Token};

/// The course's unix-socket client: sends each input line, prints the answer.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Path of the server's socket file
    #[arg(long, default_value = "./sock_file")]
    path: PathBuf,
    #[command(flatten)]
    backend: cli::BackendArg,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.backend.choose(Backend::Epoll);
    let shown = cli.path.display();
    let stream = UnixStream::connect(&cli.path)
        .unwrap_or_else(|err| cli::fail(format_args!("cannot connect to {shown}: {err}")));
    if let Err(err) = run(stream, backend) {
        cli::fail(err);
    }
}

/// Sends each line and prints each answer until an empty line or end of input.
fn run(stream: UnixStream, backend: Backend) -> Result<(), String> {
    stream
        .set_nonblocking(true)
        .map_err(|err| format!("cannot make the socket non-blocking: {err}"))?;
    let mut reactor: Reactor<UnixStream> =
        Reactor::with_backend(backend).map_err(|err| err.to_string())?;
    let token = reactor
        .insert(stream, Interest::READABLE)
        .map_err(|err| err.to_string())?;
    let mut events = Events::with_capacity(4);
    let prompt = std::io::stdin().is_terminal();
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        if prompt {
            print!(">>");
            let _ = std::io::stdout().flush();
        }
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(err) => return Err(format!("cannot read standard input: {err}")),
        }
        let msg = line.strip_suffix(b"\n").unwrap_or(&line);
        let msg = msg.strip_suffix(b"\r").unwrap_or(msg);
        if msg.is_empty() {
            return Ok(());
        }
        let answer = exchange(&mut reactor, token, &mut events, msg)?;
        println!("{}", String::from_utf8_lossy(&answer));
    }
}

/// Sends `msg` and waits for the answer (`sockfd.send(msg)` then
/// `sockfd.recv(1024)`), reading while it writes so that a long message
/// cannot deadlock against a server that answers every chunk.
fn exchange(
    reactor: &mut Reactor<UnixStream>,
    token: Token,
    events: &mut Events,
    msg: &[u8],
) -> Result<Vec<u8>, String> {
    let mut sent = 0;
    let mut answer = Vec::new();
    let mut watching = Interest::READABLE;
    loop {
        let Some(stream) = reactor.get_mut(token) else {
            return Err("the socket vanished from the reactor".into());
        };
        while sent < msg.len() {
            match stream.write(&msg[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("cannot send: {e}")),
            }
        }
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("cannot receive: {e}")),
            }
        }
        if sent == msg.len() && !answer.is_empty() {
            if watching != Interest::READABLE {
                reactor
                    .modify(token, Interest::READABLE)
                    .map_err(|err| err.to_string())?;
            }
            return Ok(answer);
        }
        // Writable only while part of the message is still unsent.
        let want = if sent < msg.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if want != watching {
            reactor.modify(token, want).map_err(|err| err.to_string())?;
            watching = want;
        }
        reactor.poll(events, None).map_err(|err| err.to_string())?;
    }
}
