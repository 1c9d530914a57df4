//! The steps of the course's `poll_server.py` / `epoll_server.py`, for the
//! loops in `select_server`, `poll_server` and `epoll_server` (each example
//! shows its loop in its own file, next to the Python it mirrors; the three
//! loops are the same but for the backend, which is the point: the loop
//! does not change when the system call does).
//!
//! Per event: the listener accepts ([`accept`]: `Connect from <peer>`); a
//! client's data is printed (`Receive: <text>`, escaped as Python's `repr`
//! shows text, so no client can move the cursor or forge a log line) and
//! answered with `收到了`
//! ([`serve`] decides, [`update`] applies); end of file or an error
//! unregisters and closes the client (`Disconnect <peer>`) and the socket is
//! never touched again. SIGINT/SIGTERM: [`shut_down`] closes everything.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use reactor::{Acceptor, Event, Interest, Reactor, Token};

use crate::cli::{self, fail};
use crate::escape::escape;
use crate::server;

/// The reply the course sends for every message.
const REPLY: &str = "收到了";

/// Stop reading from a client whose unsent replies pass this many bytes,
/// until it reads them: backpressure instead of unbounded buffering.
const MAX_PENDING: usize = 64 * 1024;

/// What the reactor watches: the listener, the stop signals, the clients.
pub type Source = server::Source<Client>;

/// A client and the replies it has not read yet.
pub struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    /// Reply bytes `write` has not taken yet (a slow reader).
    pending: VecDeque<u8>,
    /// The first bytes of a UTF-8 character whose rest has not arrived yet
    /// (at most 3): printed with the next chunk, not as `�`.
    partial: Vec<u8>,
    /// What the reactor watches it for now, so unchanged interest costs no
    /// system call.
    watching: Interest,
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// What handling one client event decided.
pub enum Next {
    /// Keep it, watching for these.
    Keep(Interest),
    /// Close it (end of file or error).
    Close,
}

/// Accepts every waiting client: `Connect from <peer>`, then it is
/// registered for reading. Exits the server if `accept` fails for a reason
/// other than an empty backlog or running out of descriptors.
///
/// Python: `connfd, addr = fdmap[fd].accept(); p.register(connfd, POLLIN); fdmap[connfd.fileno()] = connfd`
pub fn accept(reactor: &mut Reactor<Source>, listen: Token, acceptor: &mut Acceptor) {
    let accepted = server::accept_all(
        reactor,
        listen,
        acceptor,
        |stream, peer| {
            cli::say(format_args!("Connect from {peer}"));
            Some(Client {
                stream,
                peer,
                pending: VecDeque::new(),
                partial: Vec::new(),
                watching: Interest::READABLE,
            })
        },
        |client, err| {
            cli::warn_refused(client.peer, err);
            cli::say(format_args!("Disconnect {}", client.peer));
        },
    );
    if let Err(err) = accepted {
        fail(format_args!("accept failed: {err}"));
    }
}

/// Reads what the client sent, prints it, queues a reply per chunk, and
/// writes as much of the queue as the socket takes.
pub fn serve(client: &mut Client, event: &Event) -> Next {
    let (readable, writable) = (event.is_readable(), event.is_writable());
    if readable && client.pending.len() < MAX_PENDING {
        let mut buf = [0u8; 4096];
        match client.stream.read(&mut buf) {
            Ok(0) => {
                if !client.partial.is_empty() {
                    // The character never completed: print what there is.
                    let text = String::from_utf8_lossy(&client.partial);
                    cli::say(format_args!("Receive: {}", escape(&text)));
                }
                return Next::Close;
            }
            Ok(n) => {
                if let Some(text) = decode(&mut client.partial, &buf[..n]) {
                    // Escaped: a client's ESC or newline cannot rewrite
                    // the terminal or forge a line of this log.
                    cli::say(format_args!("Receive: {}", escape(&text)));
                }
                client.pending.extend(REPLY.as_bytes());
            }
            // Spurious readiness: nothing to read after all.
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
    if (writable || !client.pending.is_empty()) && flush(client).is_err() {
        return Next::Close;
    }
    let mut interest = Interest::READABLE;
    if client.pending.len() >= MAX_PENDING {
        // Backpressure: stop reading until the client reads our replies.
        interest = Interest::WRITABLE;
    } else if !client.pending.is_empty() {
        interest = interest | Interest::WRITABLE;
    }
    Next::Keep(interest)
}

/// Decodes one chunk as UTF-8 (invalid bytes as `�`), after the bytes held
/// back from the previous chunk; an incomplete character at the end is held
/// back in `partial` for the next one. `None` if there is nothing to print
/// yet (the chunk was only the start of a character).
pub fn decode(partial: &mut Vec<u8>, chunk: &[u8]) -> Option<String> {
    partial.extend_from_slice(chunk);
    let end = partial.len() - incomplete_tail(partial);
    let held = partial.split_off(end);
    let text = String::from_utf8_lossy(partial).into_owned();
    *partial = held;
    (end > 0).then_some(text)
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 character
/// whose continuation bytes have not arrived (0 to 3).
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 == 0x80 {
            // A continuation byte: the lead byte is further back.
            continue;
        }
        let needs = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            // ASCII, or a byte no character starts with: nothing to wait for.
            _ => 1,
        };
        return if needs > back { back } else { 0 };
    }
    0
}

/// Writes queued bytes until the socket would block. Partial writes are
/// normal: what is left waits for the next writable event.
fn flush(client: &mut Client) -> io::Result<()> {
    while !client.pending.is_empty() {
        let (front, _) = client.pending.as_slices();
        match client.stream.write(front) {
            Ok(n) => drop(client.pending.drain(..n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Applies `serve`'s decision. Closing means: unregister, close, print —
/// and forget the socket (the course's version sent `收到了` on it after
/// closing it).
pub fn update(reactor: &mut Reactor<Source>, token: Token, next: Next) {
    match next {
        Next::Keep(interest) => {
            let Some(Source::Conn(client)) = reactor.get_mut(token) else {
                return;
            };
            if client.watching == interest {
                return;
            }
            client.watching = interest;
            if let Err(err) = reactor.modify(token, interest) {
                eprintln!("modify failed: {err}");
                update(reactor, token, Next::Close);
            }
        }
        Next::Close => {
            if let Ok(Source::Conn(client)) = reactor.remove(token) {
                cli::say(format_args!("Disconnect {}", client.peer));
            }
        }
    }
}

/// Graceful stop: close every client (`Disconnect <peer>`) and the listener.
pub fn shut_down(reactor: &mut Reactor<Source>) {
    let tokens: Vec<Token> = reactor.iter().map(|(token, _)| token).collect();
    for token in tokens {
        if let Ok(Source::Conn(client)) = reactor.remove(token) {
            cli::say(format_args!("Disconnect {}", client.peer));
        }
    }
}
