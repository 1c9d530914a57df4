//! One client connection: reading requests, answering them in order, and
//! the state it is in.
//!
//! ```text
//!            ┌──── request done, keep-alive ◀───┐
//!            ▼                                  │
//!   Open: read ─▶ parse ─▶ respond ─▶ write (queue, then sendfile)
//!            │ Connection: close, an error, 408 │
//!            ▼                                  ▼
//!   Closing: send what is queued ─▶ Lingering: shutdown(WR), read and drop
//!                                   until EOF or the linger time ─▶ close
//! ```
//!
//! Rules it keeps:
//!
//! - **In order.** A response is never written before the one before it.
//!   A large file's body goes out with `sendfile` after its head; requests
//!   pipelined behind it wait in the connection's buffer, and are answered
//!   when the body is done, without waiting for another read event.
//! - **One write per read.** All the responses to one read's requests are
//!   gathered in a [`Batch`] and written together.
//! - **Backpressure.** The connection stops reading while its
//!   [`WriteQueue`] is full or a file body is being sent: a client that
//!   pipelines without reading is held back by TCP, not by our memory.
//! - **Lingering close.** Closing a socket with unread input makes the
//!   kernel send a reset, which can destroy the error response still in
//!   flight. So after an error the server shuts down its sending side and
//!   reads and drops what the client still sends, for a bounded time.

use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Instant;

use reactor::{Interest, TimerId, WriteQueue};

use super::access_log::{AccessLog, Line};
use super::batch::Batch;
use super::clock::Clock;
use super::files::{Body, FileInfo, Files, Found, not_modified_since};
use super::limits::Limits;
use super::parse::{Head, Method, Parsed, parse};
use super::range::{Wanted, wanted};
use super::respond::{self, Status};
use super::sendfile::FileBody;
use super::target::{self, Normalised, Refused};

/// Response bytes a connection may have waiting before it stops reading
/// requests (16 pipelined 4 KiB pages fit).
const OUT_HIGH_WATER: usize = 128 * 1024;

/// Everything connections share: the server's state outside the reactor.
#[derive(Debug)]
pub struct Shared {
    /// The limits.
    pub limits: Limits,
    /// The files and their cache.
    pub files: Files,
    /// The `Date` and log time.
    pub clock: Clock,
    /// The access log.
    pub log: AccessLog,
    /// The time at the start of this turn of the loop.
    pub now: Instant,
    /// The one read buffer.
    read_buf: Vec<u8>,
    /// The responses being gathered.
    batch: Batch,
    /// The current request's path, decoded (its allocation reused).
    path: Normalised,
}

impl Shared {
    /// State for serving `files` within `limits`, logging unless `quiet`.
    pub fn new(files: Files, limits: Limits, quiet: bool) -> Shared {
        Shared {
            limits,
            files,
            clock: Clock::new(),
            log: AccessLog::new(!quiet),
            now: Instant::now(),
            read_buf: vec![0; 64 * 1024],
            batch: Batch::default(),
            path: Normalised {
                path: Vec::new(),
                trailing_slash: false,
            },
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading requests and answering them.
    Open,
    /// No more requests: sending what is queued, then lingering.
    Closing,
    /// Sent everything and shut down writing; dropping input until EOF or
    /// this deadline.
    Lingering(Instant),
    /// Finished: close now.
    Done,
}

/// What a timer found when it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Not yet: the deadline moved.
    NotYet,
    /// A request's head is late: answer `408`, then close.
    Head,
    /// Idle, not reading its response, or done lingering: close.
    Close,
}

/// One client.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// The client's address, for the log.
    peer: IpAddr,
    /// Bytes read and not yet parsed: a partial head, or requests waiting
    /// behind a file body. Empty (no allocation) most of the time.
    inbuf: Vec<u8>,
    /// Response bytes the socket has not taken yet.
    out: WriteQueue,
    /// A file body to send once `out` is empty.
    file: Option<FileBody>,
    /// Request body bytes still to read and drop.
    discard: u64,
    /// Bytes in `inbuf` were left unparsed because output held them back
    /// (a file body, a full queue): answer them once it has gone.
    held_back: bool,
    /// When closing, the client may still be sending (an error cut its
    /// request short, or more requests were pipelined): linger.
    unread: bool,
    /// Where it is in its life.
    state: State,
    /// The client shut down its sending side.
    eof: bool,
    /// When the head now in `inbuf` began arriving.
    head_started: Option<Instant>,
    /// Last time bytes moved either way.
    last_io: Instant,
    /// What the reactor watches it for.
    pub watching: Interest,
    /// Its timer, and the deadline that timer is set for.
    pub timer: Option<(TimerId, Instant)>,
}

impl Conn {
    /// A new connection from `peer`, accepted at `now`.
    pub fn new(stream: TcpStream, peer: IpAddr, now: Instant) -> Conn {
        Conn {
            stream,
            peer,
            inbuf: Vec::new(),
            out: WriteQueue::with_high_water(OUT_HIGH_WATER),
            file: None,
            discard: 0,
            held_back: false,
            unread: false,
            state: State::Open,
            eof: false,
            head_started: None,
            last_io: now,
            watching: Interest::READABLE,
            timer: None,
        }
    }

    /// Handles readiness; returns what to watch for next, or `None` to close.
    pub fn ready(&mut self, sh: &mut Shared, readable: bool) -> Option<Interest> {
        self.drive(sh).ok()?;
        if readable {
            let lingering = matches!(self.state, State::Lingering(_));
            if lingering && self.linger(sh) {
                // Dropped input until the client closed.
                return None;
            }
            // Held back by output, or closing: not reading now.
            if self.takes_requests() {
                self.read_requests(sh).ok()?;
            }
        }
        self.drive(sh).ok()?;
        self.interest()
    }

    /// The time this connection must be looked at again.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        match (self.state, self.head_started) {
            (State::Lingering(until), _) => until,
            (State::Done, _) => self.last_io,
            _ if self.sending() => self.last_io + limits.send_timeout,
            (_, Some(started)) => started + limits.header_timeout,
            _ => self.last_io + limits.idle_timeout,
        }
    }

    /// Its deadline passed (or moved): what to do.
    pub fn expired(&mut self, sh: &mut Shared) -> Expired {
        if sh.now < self.deadline(&sh.limits) {
            return Expired::NotYet;
        }
        if self.state == State::Open && !self.sending() && self.head_started.is_some() {
            Expired::Head
        } else {
            Expired::Close
        }
    }

    /// Answers `408` to a late head and starts closing; returns what to
    /// watch for, or `None` to close at once.
    pub fn time_out_head(&mut self, sh: &mut Shared) -> Option<Interest> {
        self.inbuf = Vec::new();
        self.head_started = None;
        self.reject(sh, Status::REQUEST_TIMEOUT, None);
        sh.batch.send(&mut self.out, &mut self.stream).ok()?;
        self.last_io = sh.now;
        self.drive(sh).ok()?;
        self.interest()
    }

    /// Something is waiting to be written.
    fn sending(&self) -> bool {
        !self.out.is_empty() || self.file.is_some()
    }

    /// Open, and not held back by output.
    fn takes_requests(&self) -> bool {
        self.state == State::Open && self.file.is_none() && !self.out.is_full()
    }

    /// Writes what waits (queue, then file body), answers requests that
    /// waited behind a file body, and moves `Closing` to `Lingering` once
    /// all is sent.
    fn drive(&mut self, sh: &mut Shared) -> io::Result<()> {
        loop {
            if !self.out.is_empty() {
                if self.out.write_to(&mut self.stream)? > 0 {
                    self.last_io = sh.now;
                }
                if !self.out.is_empty() {
                    return Ok(());
                }
            }
            if let Some(body) = &mut self.file {
                if body.send(self.stream.as_raw_fd())? > 0 {
                    self.last_io = sh.now;
                }
                if !body.is_done() {
                    return Ok(());
                }
                self.file = None;
            }
            match self.state {
                State::Closing if !self.unread => {
                    // Everything is sent and nothing more is coming.
                    self.state = State::Done;
                    return Ok(());
                }
                State::Closing => {
                    // Everything is sent: no more from us; drop what the
                    // client still sends, for a while, then close.
                    let _ = self.stream.shutdown(Shutdown::Write);
                    self.state = State::Lingering(sh.now + sh.limits.linger);
                    return Ok(());
                }
                State::Open if self.held_back => {
                    // Requests that waited behind a file body or a full
                    // queue, now that the output has gone.
                    self.held_back = false;
                    let pending = std::mem::take(&mut self.inbuf);
                    self.serve(sh, &pending, 0)?;
                    if self.out.is_empty() && self.file.is_none() {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Reads and answers requests until the socket is drained, the client
    /// is done, or output holds us back.
    fn read_requests(&mut self, sh: &mut Shared) -> io::Result<()> {
        let mut buf = std::mem::take(&mut sh.read_buf);
        let result = loop {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => {
                    log::trace!(
                        "read(fd={}) → 0: the client is done sending",
                        self.stream.as_raw_fd()
                    );
                    self.eof = true;
                    break Ok(());
                }
                Ok(n) => {
                    log::trace!("read(fd={}) → {n} bytes", self.stream.as_raw_fd());
                    n
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            self.last_io = sh.now;
            let result = if self.inbuf.is_empty() {
                self.serve(sh, &buf[..n], 0)
            } else {
                let mut pending = std::mem::take(&mut self.inbuf);
                let old = pending.len();
                pending.extend_from_slice(&buf[..n]);
                self.serve(sh, &pending, old)
            };
            if let Err(err) = result {
                break Err(err);
            }
            // A short read: the socket is (very likely) drained, and level
            // triggering says so again if not.
            if n < buf.len() || !self.takes_requests() {
                break Ok(());
            }
        };
        sh.read_buf = buf;
        result
    }

    /// Parses and answers the requests in `data` (new bytes start at
    /// `fresh`), keeps what is left for later, and writes the answers.
    fn serve(&mut self, sh: &mut Shared, data: &[u8], fresh: usize) -> io::Result<()> {
        let mut pos = 0;
        // A head can only end at a line end: a slow client adding bytes to
        // a partial head is not parsed again until one arrives.
        let worth_parsing = fresh == 0 || data[fresh..].contains(&b'\n') || self.discard > 0;
        let mut completed = false;
        while pos < data.len() {
            if self.discard > 0 {
                let take = self.discard.min((data.len() - pos) as u64);
                self.discard -= take;
                pos += take as usize;
                continue;
            }
            if !(self.takes_requests() && sh.batch.len() + self.out.len() < self.out.high_water()) {
                // Output holds the rest back; `drive` comes back for it.
                self.held_back = self.state == State::Open;
                break;
            }
            if !worth_parsing && data.len() <= sh.limits.max_head {
                break;
            }
            match parse(&data[pos..], &sh.limits) {
                Parsed::Complete(head) => {
                    pos += head.len;
                    self.discard = head.body;
                    completed = true;
                    self.respond(sh, &head);
                }
                Parsed::Partial => break,
                Parsed::Reject { status, line } => {
                    let line = line.map(|(method, target, minor)| Line {
                        method,
                        target,
                        minor,
                    });
                    self.reject(sh, status, line);
                    pos = data.len();
                }
            }
        }
        if self.state != State::Open {
            // Closing: whatever else was sent is never read.
            self.unread |= pos < data.len() || self.discard > 0;
            pos = data.len();
        }
        let rest = &data[pos..];
        if completed || rest.is_empty() {
            self.head_started = None;
        }
        if !rest.is_empty() && self.head_started.is_none() {
            self.head_started = Some(sh.now);
        }
        self.inbuf.clear();
        self.inbuf.extend_from_slice(rest);
        if self.inbuf.is_empty() {
            self.inbuf = Vec::new();
        }
        if !sh.batch.is_empty() && sh.batch.send(&mut self.out, &mut self.stream)? > 0 {
            self.last_io = sh.now;
        }
        Ok(())
    }

    /// Answers one complete request into the batch.
    fn respond(&mut self, sh: &mut Shared, head: &Head<'_>) {
        let line = Some(Line {
            method: head.method_text,
            target: head.target,
            minor: head.minor,
        });
        let keep = head.keep_alive;
        let head_only = head.method == Method::Head;
        if head.method == Method::Other {
            let n = respond::error(
                sh.batch.buf(),
                Status::METHOD_NOT_ALLOWED,
                &sh.clock,
                "Allow: GET, HEAD\r\n",
                keep,
                false,
            );
            self.logged(sh, line, Status::METHOD_NOT_ALLOWED, n as u64, keep);
            return;
        }
        let found = match target::normalise(head.target, &mut sh.path) {
            Ok(()) => sh.files.find(&sh.path, sh.now),
            Err(Refused::Outside) => Found::Missing,
            Err(Refused::Malformed) => {
                self.reject(sh, Status::BAD_REQUEST, line);
                return;
            }
        };
        let (status, bytes) = match found {
            Found::File(info) => self.file_response(sh, head, &info),
            Found::Listing(page) => {
                let buf = sh.batch.buf();
                respond::start(buf, Status::OK, &sh.clock);
                let _ = std::io::Write::write_fmt(
                    buf,
                    format_args!(
                        "Content-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n",
                        page.len()
                    ),
                );
                respond::finish(buf, keep, head.minor);
                if !head_only {
                    buf.extend_from_slice(page.as_bytes());
                }
                (Status::OK, if head_only { 0 } else { page.len() as u64 })
            }
            // A directory without its `/`: send the client there.
            Found::Redirect => {
                let mut location = String::from("Location: /");
                for (i, segment) in sh.path.path.split(|&b| b == b'/').enumerate() {
                    if i > 0 {
                        location.push('/');
                    }
                    target::percent_encode(segment, &mut location);
                }
                location.push_str("/\r\n");
                error_page(sh, Status::MOVED, &location, keep, head_only)
            }
            Found::Missing => error_page(sh, Status::NOT_FOUND, "", keep, head_only),
            Found::Busy => error_page(
                sh,
                Status::UNAVAILABLE,
                "Retry-After: 1\r\n",
                keep,
                head_only,
            ),
            Found::Forbidden => error_page(sh, Status::FORBIDDEN, "", keep, head_only),
        };
        log::trace!(
            "fd={}: {} {} → {} ({bytes} body bytes{})",
            self.stream.as_raw_fd(),
            head.method_text,
            head.target,
            status.code,
            if self.file.is_some() {
                ", by sendfile"
            } else {
                ""
            }
        );
        self.logged(sh, line, status, bytes, keep);
    }

    /// A file's response: `200`, `206`, `304` or `416`; its head into the
    /// batch, its body into the batch (in memory) or `self.file` (sendfile).
    fn file_response(
        &mut self,
        sh: &mut Shared,
        head: &Head<'_>,
        info: &Rc<FileInfo>,
    ) -> (Status, u64) {
        let keep = head.keep_alive;
        let head_only = head.method == Method::Head;
        if let Some(since) = head.if_modified_since
            && not_modified_since(info.modified, since)
        {
            let buf = sh.batch.buf();
            respond::start(buf, Status::NOT_MODIFIED, &sh.clock);
            buf.extend_from_slice(&info.whole_headers);
            respond::finish(buf, keep, head.minor);
            return (Status::NOT_MODIFIED, 0);
        }
        let (status, start, end) = match head.range.map_or(Wanted::Whole, |r| wanted(r, info.size))
        {
            Wanted::Whole => {
                let buf = sh.batch.buf();
                respond::start(buf, Status::OK, &sh.clock);
                buf.extend_from_slice(&info.whole_headers);
                (Status::OK, 0, info.size)
            }
            Wanted::Part { start, end } => {
                let buf = sh.batch.buf();
                respond::start(buf, Status::PARTIAL, &sh.clock);
                let _ = std::io::Write::write_fmt(
                    buf,
                    format_args!(
                        "Content-Type: {}\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\n\
                         Last-Modified: {}\r\nAccept-Ranges: bytes\r\n",
                        info.content_type,
                        end - start,
                        start,
                        end - 1,
                        info.size,
                        info.last_modified
                    ),
                );
                (Status::PARTIAL, start, end)
            }
            Wanted::Unsatisfiable => {
                let extra = format!("Content-Range: bytes */{}\r\n", info.size);
                let n = respond::error(
                    sh.batch.buf(),
                    Status::RANGE_NOT_SATISFIABLE,
                    &sh.clock,
                    &extra,
                    keep,
                    head_only,
                );
                return (Status::RANGE_NOT_SATISFIABLE, n as u64);
            }
        };
        respond::finish(sh.batch.buf(), keep, head.minor);
        if head_only || start == end {
            return (status, 0);
        }
        match &info.body {
            Body::Memory(bytes) => sh.batch.body(bytes, start as usize..end as usize),
            Body::File(file) => self.file = Some(FileBody::new(file.clone(), start, end)),
        }
        (status, end - start)
    }

    /// An error that ends the connection: its response into the batch, the
    /// log line, and `Closing`.
    fn reject(&mut self, sh: &mut Shared, status: Status, line: Option<Line<'_>>) {
        let n = respond::error(sh.batch.buf(), status, &sh.clock, "", false, false);
        self.logged(sh, line, status, n as u64, false);
        self.unread = true;
    }

    /// Logs a response; a response that closes the connection moves it to
    /// `Closing`.
    fn logged(
        &mut self,
        sh: &mut Shared,
        line: Option<Line<'_>>,
        status: Status,
        bytes: u64,
        keep: bool,
    ) {
        sh.log
            .record(self.peer, &sh.clock, line, status.code, bytes);
        if !keep {
            self.state = State::Closing;
            self.discard = 0;
        }
    }

    /// Reads and drops input while lingering; true when it is time to close.
    fn linger(&mut self, sh: &mut Shared) -> bool {
        let mut buf = std::mem::take(&mut sh.read_buf);
        let close = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        sh.read_buf = buf;
        close
    }

    /// What to watch for now, or `None` when the connection is finished.
    fn interest(&self) -> Option<Interest> {
        match self.state {
            State::Done => None,
            State::Lingering(_) => Some(Interest::READABLE),
            State::Closing => Some(Interest::WRITABLE),
            State::Open if self.eof => {
                // The client is done sending: finish what we owe, then close.
                self.sending().then_some(Interest::WRITABLE)
            }
            State::Open if self.file.is_some() => Some(Interest::WRITABLE),
            State::Open => Some(self.out.interest()),
        }
    }
}

/// An error page that keeps the connection (as `keep` says) into the
/// batch; the status and body length, for the log.
fn error_page(
    sh: &mut Shared,
    status: Status,
    extra: &str,
    keep: bool,
    head_only: bool,
) -> (Status, u64) {
    let n = respond::error(sh.batch.buf(), status, &sh.clock, extra, keep, head_only);
    (status, n as u64)
}
