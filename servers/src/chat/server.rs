//! The chat room's event loop: the listener, every client, the
//! administrator's stdin and the stop signals in one reactor.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use reactor::codec::{Line, LineBuffer};
use reactor::{Accepted, Acceptor, Backend, Events, Interest, Reactor, Signals, TimerId, Token};

use super::client::{Client, State};
use super::names;
use super::protocol::{self, Bytes, Command};
use super::room::Room;
use crate::cli::{self, NetArgs};

/// How long a closing connection may take to flush its last lines, and how
/// long shutdown waits for every queue to drain.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

/// Most connections accepted (or refused) per turn of the loop.
const ACCEPT_BATCH: usize = 64;

/// Limits from the command line.
pub struct Config {
    /// Longest line a client may send, in bytes.
    pub max_line: usize,
    /// How long a new connection has to choose a valid name.
    pub login_timeout: Duration,
    /// Bytes that may wait for one client before it is dropped as too slow.
    pub max_queue: usize,
    /// Most connections at once.
    pub max_clients: usize,
}

/// Everything the reactor watches.
enum Source {
    /// The listening socket.
    Listener(TcpListener),
    /// SIGINT / SIGTERM.
    Stop(Signals),
    /// The administrator's stdin (a duplicate of fd 0).
    Admin(File, LineBuffer),
    /// A connection.
    Client(Client),
}

impl AsFd for Source {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::Listener(l) => l.as_fd(),
            Source::Stop(s) => s.as_fd(),
            Source::Admin(f, _) => f.as_fd(),
            Source::Client(c) => c.stream.as_fd(),
        }
    }
}

/// Why a member leaves, which decides what the others are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leave {
    /// `/quit`, end of file, or an error: `* <name> left`.
    Normal,
    /// Its queue passed `--max-queue`: `* <name> left (too slow)`.
    TooSlow,
}

/// The server: the reactor and the room.
struct Chat {
    reactor: Reactor<Source>,
    room: Room,
    config: Config,
    listener: Option<Token>,
    acceptor: Acceptor,
    /// Connections in the reactor (any state).
    clients: usize,
    /// Clients with lines queued this turn, flushed at its end.
    dirty: Vec<Token>,
    /// Clients to drop at the end of the turn (queue overflowed, or a
    /// write failed), and how to announce it.
    doomed: Vec<(Token, Leave)>,
    /// Set by SIGINT/SIGTERM: everyone is closing, exit by this instant.
    stopping: Option<Instant>,
}

/// Runs the chat room on `net.addr` until SIGINT/SIGTERM; start-up
/// failures print an error and exit 1. A `--max-queue` that cannot hold
/// the longest line the server may send is a usage error (exit 2): with
/// it, every member would be dropped as too slow by one legal line.
pub fn serve(net: &NetArgs, backend: Backend, config: Config) {
    let longest = protocol::longest_line(config.max_line);
    if config.max_queue < longest {
        cli::usage_error(format_args!(
            "--max-queue {} cannot hold the longest line the server may send ({longest} bytes \
             with --max-line {}); use --max-queue {longest} or more",
            config.max_queue, config.max_line
        ));
    }
    return_queue_memory();
    let listener = cli::bind_tcp(&net.addr);
    let local = listener.local_addr().unwrap_or_else(|err| cli::fail(err));
    let mut reactor = Reactor::with_backend(backend).unwrap_or_else(|err| cli::fail(err));
    let listen = reactor
        .insert(Source::Listener(listener), Interest::READABLE)
        .unwrap_or_else(|err| cli::fail(err));
    reactor
        .insert(Source::Stop(cli::stop_signals()), Interest::READABLE)
        .unwrap_or_else(|err| cli::fail(err));
    watch_stdin(&mut reactor, config.max_line);
    let mut chat = Chat {
        reactor,
        room: Room::default(),
        config,
        listener: Some(listen),
        acceptor: Acceptor::new(),
        clients: 0,
        dirty: Vec::new(),
        doomed: Vec::new(),
        stopping: None,
    };
    cli::announce(local, backend);
    if let Err(err) = chat.run() {
        cli::fail(err);
    }
}

/// Members' queues above 64 KiB get memory straight from the kernel
/// (`mmap`), so freeing one — a member dropped as too slow, a burst
/// drained — gives it back at once. glibc would otherwise raise its mmap
/// threshold after the first such free (up to 32 MiB) and keep later
/// queues in its heap, where freed memory mostly stays with the process.
#[cfg(target_env = "gnu")]
fn return_queue_memory() {
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // connection exists, from the only thread.
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024) } != 1 {
        log::debug!("mallopt(M_MMAP_THRESHOLD) refused");
    }
}

/// Other C libraries keep their own policy.
#[cfg(not(target_env = "gnu"))]
fn return_queue_memory() {}

/// Adds the server's stdin to the reactor, for admin lines. A duplicate of
/// fd 0 is watched and read once per readable event, so stdin is never
/// switched to non-blocking (that flag would be shared with the terminal
/// and the shell). Some stdins cannot be watched (epoll refuses regular
/// files and `/dev/null`): then the room runs without announcements.
///
/// A server started in the background (`epoll_chat &`) leaves its terminal
/// alone: reading it would stop the process with SIGTTIN.
fn watch_stdin(reactor: &mut Reactor<Source>, max_line: usize) {
    // SAFETY: isatty, tcgetpgrp and getpgrp only query the process and fd 0.
    let background = unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) != libc::getpgrp() };
    if background {
        log::info!("no admin input: started in the background of its terminal");
        return;
    }
    let stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(err) => {
            log::info!("no admin input: cannot duplicate stdin: {err}");
            return;
        }
    };
    let source = Source::Admin(stdin, LineBuffer::new(max_line));
    if let Err(refused) = reactor.insert(source, Interest::READABLE) {
        log::info!("no admin input: stdin cannot be watched: {}", refused.error);
    }
}

impl Chat {
    /// The event loop: until SIGINT/SIGTERM and the queues have drained.
    fn run(&mut self) -> reactor::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self
                .stopping
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            self.reactor.poll(&mut events, timeout)?;
            for event in &events {
                let token = event.token();
                // Removed earlier in this batch: a stale event.
                let Some(source) = self.reactor.get(token) else {
                    continue;
                };
                match source {
                    Source::Listener(_) => self.accept_all(token),
                    // A second signal while stopping: stop now.
                    Source::Stop(_) => {
                        if self.on_signal(token) {
                            return Ok(());
                        }
                    }
                    Source::Admin(..) => self.on_admin(token),
                    Source::Client(_) => {
                        if event.is_readable() {
                            self.on_readable(token);
                        }
                        if event.is_writable() {
                            self.mark_dirty(token);
                        }
                    }
                }
            }
            while let Some((id, token)) = self.reactor.next_expired() {
                self.on_timer(id, token);
            }
            self.settle();
            if let Some(deadline) = self.stopping
                && (self.clients == 0 || Instant::now() >= deadline)
            {
                log::info!("shut down; {} connection(s) closed unflushed", self.clients);
                return Ok(());
            }
        }
    }

    /// Accepts waiting connections, at most [`ACCEPT_BATCH`] per turn so a
    /// flood cannot starve the members (the listener is level-triggered:
    /// the rest wait for the next turn); past `--max-clients`, answers
    /// `! room full` and closes.
    fn accept_all(&mut self, listen: Token) {
        // The cap keeps one turn of the loop short under a connection flood,
        // so members' messages are not starved by accepting.
        for _ in 0..ACCEPT_BATCH {
            let Some(Source::Listener(listener)) = self.reactor.get(listen) else {
                return;
            };
            let accepted = self
                .acceptor
                .accept(|| listener.accept(), |(s, _)| s.set_nonblocking(true));
            let (stream, peer) = match accepted {
                Ok(Accepted::Connection(conn)) => conn,
                Ok(Accepted::Shed) => continue,
                Ok(Accepted::Drained) => return,
                Err(err) => {
                    log::error!("accept failed, no longer accepting: {err}");
                    self.close_listener();
                    return;
                }
            };
            if self.clients >= self.config.max_clients {
                log::info!("{peer}: room full");
                refuse(stream, &protocol::room_full());
                continue;
            }
            keepalive(&stream);
            let client = Client::new(stream, peer, self.config.max_line, self.config.max_queue);
            let token = match self
                .reactor
                .insert(Source::Client(client), Interest::READABLE)
            {
                Ok(token) => token,
                Err(refused) => {
                    // select and an fd ≥ 1024, say: this one goes, the room stays.
                    cli::warn_refused(peer, &refused.error);
                    if let Source::Client(client) = refused.object {
                        refuse(client.stream, &protocol::room_full());
                    }
                    continue;
                }
            };
            self.clients += 1;
            log::debug!("{peer} connected as {token:?}");
            let timer = self.reactor.timer_after(self.config.login_timeout, token);
            if let Some(client) = self.client(token) {
                client.state = State::Naming { timer: Some(timer) };
            }
            self.send(token, protocol::prompt());
        }
    }

    /// SIGINT/SIGTERM: the first starts a graceful stop, a second (while
    /// stopping) means stop now. Returns whether to stop now.
    fn on_signal(&mut self, token: Token) -> bool {
        let Some(Source::Stop(signals)) = self.reactor.get_mut(token) else {
            return false;
        };
        match signals.read() {
            Ok(seen) if seen.is_empty() => false, // a spurious wake-up
            Ok(_) if self.stopping.is_some() => true,
            Ok(_) => {
                self.shut_down();
                false
            }
            Err(err) => {
                log::error!("reading the signal pipe: {err}");
                false
            }
        }
    }

    /// Graceful stop: stop accepting, tell every client, and give the
    /// queues [`CLOSE_BOUND`] to drain.
    fn shut_down(&mut self) {
        log::info!("shutting down");
        self.stopping = Some(Instant::now() + CLOSE_BOUND);
        self.close_listener();
        let line = protocol::shutting_down();
        let tokens: Vec<Token> = self
            .reactor
            .iter()
            .filter(|(_, s)| matches!(s, Source::Client(_) | Source::Admin(..)))
            .map(|(t, _)| t)
            .collect();
        for token in tokens {
            match self.reactor.get_mut(token) {
                Some(Source::Client(client)) => {
                    if let State::Naming { timer: Some(id) } | State::Closing { timer: Some(id) } =
                        client.state
                    {
                        self.reactor.cancel_timer(id);
                    }
                }
                Some(Source::Admin(..)) => {
                    let _ = self.reactor.remove(token);
                    continue;
                }
                _ => continue,
            }
            let _ = self.room.leave(token);
            self.send(token, line.clone());
            if let Some(client) = self.client(token) {
                client.state = State::Closing { timer: None };
            }
        }
    }

    fn close_listener(&mut self) {
        if let Some(listen) = self.listener.take() {
            let _ = self.reactor.remove(listen);
        }
    }

    /// A line (or end of file) on the administrator's stdin.
    fn on_admin(&mut self, token: Token) {
        let Some(Source::Admin(stdin, lines)) = self.reactor.get_mut(token) else {
            return;
        };
        // One read per readable event: stdin stays blocking, and readiness
        // says this read will not block.
        let eof = match stdin.read(lines.spare()) {
            Ok(0) => true,
            Ok(n) => {
                lines.filled(n);
                false
            }
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::WouldBlock => {
                false
            }
            Err(err) => {
                log::warn!("stdin: {err}");
                true
            }
        };
        let mut announcements = Vec::new();
        loop {
            let line = if eof {
                lines.next_line_at_eof()
            } else {
                lines.next_line()
            };
            match line {
                None => break,
                Some(Line::TooLong) => log::warn!("admin line too long, dropped"),
                Some(Line::Complete(bytes)) => {
                    let text = protocol::clean_text(bytes);
                    if !text.is_empty() {
                        announcements.push(protocol::admin(&text));
                    }
                }
            }
        }
        if eof {
            // The room goes on without announcements.
            log::info!("stdin closed: no more admin announcements");
            let _ = self.reactor.remove(token);
        }
        for line in announcements {
            self.broadcast(&line, None);
        }
    }

    /// Reads once from a client and handles every complete line.
    fn on_readable(&mut self, token: Token) {
        let Some(client) = self.client(token) else {
            return;
        };
        let Some(mut lines) = client.lines.take() else {
            return;
        };
        let mut replies = Vec::new();
        let spare = lines.spare();
        let eof = match client.stream.read(spare) {
            Ok(0) => true,
            Ok(n) => {
                // Telnet's option negotiation is stripped before the bytes
                // are split into lines, and every option refused.
                let text = client.telnet.filter(&mut spare[..n], &mut replies);
                lines.filled(text);
                false
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                false
            }
            Err(err) => {
                log::debug!("{}: read: {err}", client.peer);
                self.leave(token, Leave::Normal);
                return;
            }
        };
        if !replies.is_empty() {
            self.send(token, replies.into());
        }
        loop {
            let line = if eof {
                lines.next_line_at_eof()
            } else {
                lines.next_line()
            };
            let Some(line) = line else { break };
            if !self.on_line(token, line) {
                return; // gone: its buffer goes with it
            }
        }
        if eof {
            // Like /quit: what was queued for it is still sent.
            self.depart(token);
        } else if let Some(client) = self.client(token) {
            client.lines = Some(lines);
        }
    }

    /// Handles one line from a client; `false` if the client is gone.
    fn on_line(&mut self, token: Token, line: Line<'_>) -> bool {
        let Some(client) = self.client(token) else {
            return false;
        };
        let naming = match client.state {
            State::Naming { .. } => true,
            State::Member => false,
            State::Closing { .. } => return true, // no longer listening
        };
        let bytes = match line {
            Line::TooLong => {
                self.send(token, protocol::line_too_long());
                return true;
            }
            Line::Complete(bytes) => bytes,
        };
        match protocol::parse(bytes) {
            Command::Quit => {
                self.depart(token);
                false
            }
            Command::Help => {
                self.send(token, protocol::help());
                true
            }
            Command::Who => {
                let line = protocol::who(&self.room.names());
                self.send(token, line);
                true
            }
            Command::Text(name) if naming => {
                self.login(token, name);
                true
            }
            Command::Text(text) => {
                let text = protocol::clean_text(text);
                if !text.is_empty()
                    && let Some(name) = self.room.name(token)
                {
                    let line = protocol::message(name, &text);
                    self.broadcast(&line, Some(token));
                }
                true
            }
        }
    }

    /// A name from a client in the `Naming` state.
    fn login(&mut self, token: Token, raw: &[u8]) {
        let name = match names::validate(raw) {
            Ok(name) => name,
            Err(reason) => {
                self.send(token, protocol::invalid_name(&reason));
                return;
            }
        };
        if self.room.is_taken(&name.key) {
            self.send(token, protocol::name_taken(&name.display));
            return;
        }
        let Some(client) = self.client(token) else {
            return;
        };
        if let State::Naming { timer: Some(id) } = client.state {
            client.state = State::Member;
            self.reactor.cancel_timer(id);
        } else {
            client.state = State::Member;
        }
        log::debug!("{token:?} logged in as {}", name.display);
        let display = name.display.clone();
        self.room.join(token, name);
        let welcome = protocol::welcome(&display, &self.room.names());
        self.send(token, welcome);
        self.broadcast(&protocol::joined(&display), Some(token));
    }

    /// A timer fired: a login deadline, or the bound on a closing flush.
    fn on_timer(&mut self, id: TimerId, token: Token) {
        let Some(client) = self.client(token) else {
            return;
        };
        match client.state {
            State::Naming { timer: Some(t) } if t == id => {
                log::debug!("{}: login timeout", client.peer);
                let bound = self.reactor.timer_after(CLOSE_BOUND, token);
                if let Some(client) = self.client(token) {
                    client.state = State::Closing { timer: Some(bound) };
                }
                self.send(token, protocol::login_timeout());
            }
            State::Closing { timer: Some(t) } if t == id => self.close(token),
            _ => {} // a stale timer
        }
    }

    /// Queues `line` for one client. If its queue would pass the limit,
    /// one write is tried first; if it still does not fit, the client is
    /// marked too slow and dropped at the end of the turn.
    fn send(&mut self, token: Token, line: Bytes) {
        let Some(Source::Client(client)) = self.reactor.get_mut(token) else {
            return;
        };
        if client.doomed {
            return;
        }
        let fits = client.queue.push(&line) || {
            match client.queue.write_to(&mut client.stream) {
                Ok(()) => client.queue.push(&line),
                Err(err) => {
                    log::debug!("{}: write: {err}", client.peer);
                    client.doomed = true;
                    self.doomed.push((token, Leave::Normal));
                    return;
                }
            }
        };
        if !fits {
            client.doomed = true;
            self.doomed.push((token, Leave::TooSlow));
        } else if !client.dirty {
            client.dirty = true;
            self.dirty.push(token);
        }
    }

    /// Queues `line` (encoded once) for every member but `except`.
    fn broadcast(&mut self, line: &Bytes, except: Option<Token>) {
        let tokens: Vec<Token> = self.room.tokens().filter(|&t| Some(t) != except).collect();
        for token in tokens {
            self.send(token, line.clone());
        }
    }

    fn mark_dirty(&mut self, token: Token) {
        if let Some(client) = self.client(token)
            && !client.dirty
        {
            client.dirty = true;
            self.dirty.push(token);
        }
    }

    /// End of a turn: drop the too slow (which may queue `left` lines),
    /// flush every queue that got lines, and watch for writable exactly
    /// where something is still queued.
    fn settle(&mut self) {
        loop {
            if let Some((token, why)) = self.doomed.pop() {
                self.leave(token, why);
                continue;
            }
            let Some(token) = self.dirty.pop() else {
                break;
            };
            let Some(client) = self.client(token) else {
                continue;
            };
            client.dirty = false;
            if let Err(err) = client.queue.write_to(&mut client.stream) {
                log::debug!("{}: write: {err}", client.peer);
                self.leave(token, Leave::Normal);
                continue;
            }
            let closing = matches!(client.state, State::Closing { .. });
            if closing && client.queue.is_empty() {
                self.close(token);
                continue;
            }
            // A closing client is not read any more (at end of file a
            // readable interest would fire forever): it is only flushed.
            let want = match (closing, client.queue.is_empty()) {
                (false, true) => Interest::READABLE,
                (false, false) => Interest::READABLE | Interest::WRITABLE,
                (true, _) => Interest::WRITABLE,
            };
            if want != client.watching {
                client.watching = want;
                if let Err(err) = self.reactor.modify(token, want) {
                    log::warn!("modify {token:?}: {err}");
                    self.leave(token, Leave::Normal);
                }
            }
        }
    }

    /// A client goes: out of the reactor (closing the socket), out of the
    /// room, and if it was a member the others are told, once.
    fn leave(&mut self, token: Token, why: Leave) {
        let Ok(Source::Client(client)) = self.reactor.remove(token) else {
            return; // already gone: exactly one cleanup
        };
        self.clients -= 1;
        if let State::Naming { timer: Some(id) } | State::Closing { timer: Some(id) } = client.state
        {
            self.reactor.cancel_timer(id);
        }
        log::debug!(
            "{} ({token:?}) left: {why:?}, {} byte(s) unsent",
            client.peer,
            client.queue.queued()
        );
        drop(client);
        if let Some(name) = self.room.leave(token) {
            let line = match why {
                Leave::Normal => protocol::left(&name),
                Leave::TooSlow => protocol::left_too_slow(&name),
            };
            self.broadcast(&line, None);
        }
    }

    /// `/quit` or end of file: a clean leave. The member is out of the room
    /// at once (the others are told, the name is free), but the connection
    /// stays until everything already queued for it is written, for at most
    /// [`CLOSE_BOUND`]: nothing a client was sent is lost because it left.
    fn depart(&mut self, token: Token) {
        if let Some(name) = self.room.leave(token) {
            self.broadcast(&protocol::left(&name), Some(token));
        }
        let Some(client) = self.client(token) else {
            return;
        };
        let old = std::mem::replace(&mut client.state, State::Closing { timer: None });
        if let State::Naming { timer: Some(id) } | State::Closing { timer: Some(id) } = old {
            self.reactor.cancel_timer(id);
        }
        if let State::Closing { timer: None } = old
            && self.stopping.is_some()
        {
            // Shutting down: the one deadline for everyone applies.
            self.mark_dirty(token);
            return;
        }
        let bound = self.reactor.timer_after(CLOSE_BOUND, token);
        if let Some(client) = self.client(token) {
            client.state = State::Closing { timer: Some(bound) };
        }
        self.mark_dirty(token);
    }

    /// Closes a client in the `Closing` state: its last lines are sent (or
    /// their time is up); shut down writing so the peer sees end of file.
    fn close(&mut self, token: Token) {
        if let Some(client) = self.client(token) {
            let _ = client.stream.shutdown(Shutdown::Write);
        }
        self.leave(token, Leave::Normal);
    }

    fn client(&mut self, token: Token) -> Option<&mut Client> {
        match self.reactor.get_mut(token) {
            Some(Source::Client(client)) => Some(client),
            _ => None,
        }
    }
}

/// Best effort: one line to a connection that is not let in, then close.
fn refuse(mut stream: TcpStream, line: &[u8]) {
    let _ = stream.write(line);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Turns on TCP keepalive, so a vanished peer is noticed eventually.
fn keepalive(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid c_int
    // on a socket we own.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret == -1 {
        log::debug!("SO_KEEPALIVE: {}", std::io::Error::last_os_error());
    }
}
