//! The course's `poll_server.py` / `epoll_server.py` loop, once, for every
//! backend: `select_server`, `poll_server` and `epoll_server` run this same
//! code and differ only in the backend they default to — which is the
//! point: the loop does not change when the system call does.
//!
//! Per event: the listener accepts (`Connect from <peer>`); a client's data
//! is printed (`Receive: <text>`) and answered with `收到了`; end of file or
//! an error unregisters and closes the client (`Disconnect <peer>`) and the
//! socket is never touched again. SIGINT/SIGTERM close everything and
//! return, so `main` exits 0.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use reactor::{Accepted, Acceptor, Backend, Events, Interest, Reactor, Signals, Token};

use crate::cli::{self, NetArgs, announce, bind_tcp, fail, stop_signals};

/// The reply the course sends for every message.
const REPLY: &str = "收到了";

/// Stop reading from a client whose unsent replies pass this many bytes,
/// until it reads them: backpressure instead of unbounded buffering.
const MAX_PENDING: usize = 64 * 1024;

/// Everything the loop watches: the course's `fdmap` values.
enum Source {
    /// The listening socket (`s` in the course).
    Listener(TcpListener),
    /// A connected client (`c`).
    Client(Client),
    /// SIGINT/SIGTERM, as events.
    Stop(Signals),
}

/// A client and the replies it has not read yet.
struct Client {
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

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Listener(l) => l.as_fd(),
            Source::Client(c) => c.stream.as_fd(),
            Source::Stop(s) => s.as_fd(),
        }
    }
}

/// What handling one client event decided.
enum Next {
    /// Keep it, watching for these.
    Keep(Interest),
    /// Close it (end of file or error).
    Close,
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(args: &NetArgs, default_backend: Backend) {
    let backend = args.backend.choose(default_backend);
    let listener = bind_tcp(&args.addr);
    let local = listener.local_addr().unwrap_or_else(|err| fail(err));
    let mut reactor: Reactor<Source> =
        Reactor::with_backend(backend).unwrap_or_else(|err| fail(err));
    let listen = reactor
        .insert(Source::Listener(listener), Interest::READABLE)
        .unwrap_or_else(|err| fail(err));
    reactor
        .insert(Source::Stop(stop_signals()), Interest::READABLE)
        .unwrap_or_else(|err| fail(err));
    announce(local, backend);

    let mut acceptor = Acceptor::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(err) = reactor.poll(&mut events, None) {
            fail(err);
        }
        for event in &events {
            let token = event.token();
            match reactor.get_mut(token) {
                // Stale: removed earlier in this batch.
                None => {}
                Some(Source::Listener(_)) => accept_all(&mut reactor, listen, &mut acceptor),
                Some(Source::Stop(signals)) => {
                    // Empty: a spurious wake-up, not a signal.
                    let stop = !signals.read().unwrap_or_default().is_empty();
                    if stop {
                        shut_down(&mut reactor);
                        return;
                    }
                }
                Some(Source::Client(client)) => {
                    let next = serve(client, event.is_readable(), event.is_writable());
                    update(&mut reactor, token, next);
                }
            }
        }
    }
}

/// Accepts every waiting connection (the listener is level-triggered, but
/// draining the backlog now saves a wake-up per client).
fn accept_all(reactor: &mut Reactor<Source>, listen: Token, acceptor: &mut Acceptor) {
    loop {
        let Some(Source::Listener(listener)) = reactor.get(listen) else {
            return;
        };
        let accepted = acceptor.accept(|| listener.accept(), |(s, _)| s.set_nonblocking(true));
        match accepted {
            Ok(Accepted::Connection((stream, peer))) => {
                cli::say(format_args!("Connect from {peer}"));
                let client = Client {
                    stream,
                    peer,
                    pending: VecDeque::new(),
                    partial: Vec::new(),
                    watching: Interest::READABLE,
                };
                if let Err(refused) = reactor.insert(Source::Client(client), Interest::READABLE) {
                    // select on fd ≥ 1024, say: this client goes, the others stay.
                    eprintln!("refusing {peer}: {}", refused.error);
                    cli::say(format_args!("Disconnect {peer}"));
                }
            }
            Ok(Accepted::Shed) => continue,
            Ok(Accepted::Drained) => return,
            Err(err) => fail(format_args!("accept failed: {err}")),
        }
    }
}

/// Reads what the client sent, prints it, queues a reply per chunk, and
/// writes as much of the queue as the socket takes.
fn serve(client: &mut Client, readable: bool, writable: bool) -> Next {
    if readable && client.pending.len() < MAX_PENDING {
        let mut buf = [0u8; 4096];
        match client.stream.read(&mut buf) {
            Ok(0) => {
                if !client.partial.is_empty() {
                    // The character never completed: print what there is.
                    cli::say(format_args!(
                        "Receive: {}",
                        String::from_utf8_lossy(&client.partial)
                    ));
                }
                return Next::Close;
            }
            Ok(n) => {
                if let Some(text) = decode(&mut client.partial, &buf[..n]) {
                    cli::say(format_args!("Receive: {text}"));
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
fn update(reactor: &mut Reactor<Source>, token: Token, next: Next) {
    match next {
        Next::Keep(interest) => {
            let Some(Source::Client(client)) = reactor.get_mut(token) else {
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
            if let Ok(Source::Client(client)) = reactor.remove(token) {
                cli::say(format_args!("Disconnect {}", client.peer));
            }
        }
    }
}

/// Graceful stop: close every client and the listener.
fn shut_down(reactor: &mut Reactor<Source>) {
    let tokens: Vec<Token> = reactor.iter().map(|(token, _)| token).collect();
    for token in tokens {
        if let Ok(Source::Client(client)) = reactor.remove(token) {
            cli::say(format_args!("Disconnect {}", client.peer));
        }
    }
}
