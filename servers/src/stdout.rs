//! Standard output that never blocks the loop: one more non-blocking
//! source in the reactor, with a bounded queue.
//!
//! A server that prints each message with a blocking `write(1, …)` stops
//! the moment its stdout stops being read: piped into `| sleep 600`, or a
//! terminal paused with Ctrl-S. Every other client then waits for it, and
//! SIGTERM is caught but never acted on, because the loop that would read
//! the signal pipe is stuck in `write`. Here a line goes out at once if
//! stdout takes it; otherwise it waits in a queue of at most
//! [`QUEUE_LIMIT`] bytes while the reactor watches stdout for writable.
//! What does not fit is not waited for: it is counted, and once the queue
//! has drained, one line says so — `… 1234 lines dropped` — where the gap
//! is. Lines are kept or dropped whole, never cut.
//!
//! **Not blocking without touching anyone else's descriptor.** `O_NONBLOCK`
//! belongs to the *open file description*, which fd 1 shares with the
//! shell and every other program writing to the same terminal or pipe:
//! setting it on fd 1 would hand them `EAGAIN` errors they do not expect
//! (and it would stay set if this process were killed). So, by what stdout
//! is:
//!
//! - a **socket**: `send(…, MSG_DONTWAIT)` makes one call non-blocking, and
//!   the description's flags are never changed;
//! - a **pipe, FIFO or terminal**: opened again through `/proc/self/fd/1`,
//!   which gives this process a description of its own on the same pipe or
//!   terminal, made non-blocking; fd 1 is left as it was (the new
//!   descriptor is moved to 64 or above, so the server's own descriptors
//!   keep the numbers the guide's traces show);
//! - a **regular file** (or anything epoll cannot watch, like `/dev/null`):
//!   writing to it never waits for a reader, so it is written directly;
//! - only if reopening fails (no `/proc`), fd 1 itself is made non-blocking
//!   and its flags are restored by [`finish`] on the way out.
//!
//! The queue is process-wide, as stdout is: [`crate::cli::say`] queues here
//! once [`install`] has run. The loop adds the source with [`watch`] after
//! each turn, calls [`on_writable`] for its events, and [`finish`] before
//! exiting, which flushes for at most [`FINISH_WITHIN`] — a stop signal is
//! honoured within a second whatever stdout does.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reactor::{Interest, Reactor, Token};

/// Most bytes of whole lines waiting for stdout.
pub const QUEUE_LIMIT: usize = 64 * 1024;

/// How long [`finish`] tries to flush the queue at exit.
pub const FINISH_WITHIN: Duration = Duration::from_millis(500);

/// The queue, once installed.
static OUTPUT: Mutex<Option<Output>> = Mutex::new(None);

/// How lines reach stdout without waiting.
#[derive(Debug)]
enum Writer {
    /// A regular file, `/dev/null`…: written directly, never waits.
    Direct,
    /// fd 1 is a socket: `send` with `MSG_DONTWAIT`.
    Socket,
    /// A description of our own on the same pipe or terminal, non-blocking.
    Private(OwnedFd),
    /// fd 1 itself made non-blocking; its flags before, to restore.
    Shared(libc::c_int),
}

/// stdout's queue and what was dropped.
#[derive(Debug)]
struct Output {
    writer: Writer,
    /// Lines not yet written: `buf[head..]`.
    buf: Vec<u8>,
    head: usize,
    /// Lines dropped since the last report.
    dropped: u64,
    /// A write failed for good (`EPIPE`: the reader is gone): print nothing more.
    broken: bool,
    /// Our watch in the reactor, while the queue is not empty.
    token: Option<Token>,
}

/// What a server's reactor adds to watch stdout: a duplicate of the
/// descriptor lines are written to (so removing it closes only the copy).
#[derive(Debug)]
pub struct StdoutFd(OwnedFd);

impl std::os::fd::AsFd for StdoutFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Routes [`crate::cli::say`] through a non-blocking, bounded queue. Call it
/// once, before the `listening on` line.
pub fn install() {
    let output = Output {
        writer: open_writer(),
        buf: Vec::new(),
        head: 0,
        dropped: 0,
        broken: false,
        token: None,
    };
    log::debug!("stdout: {:?}", output.writer);
    *lock() = Some(output);
}

/// Queues one line (the `\n` is added) if [`install`] has run; `false`
/// otherwise, and the caller prints it the ordinary way.
pub fn say(line: &str) -> bool {
    match lock().as_mut() {
        Some(output) => {
            output.line(line);
            true
        }
        None => false,
    }
}

/// After each turn of the loop: watches stdout for writable while lines
/// wait, and stops watching once they are written. `wrap` makes the
/// server's source from the descriptor.
pub fn watch<S: std::os::fd::AsFd>(reactor: &mut Reactor<S>, wrap: impl FnOnce(StdoutFd) -> S) {
    let mut guard = lock();
    let Some(output) = guard.as_mut() else {
        return;
    };
    let waiting = output.head < output.buf.len() || output.dropped > 0;
    match (waiting, output.token) {
        (true, None) => {
            let Some(fd) = output.watch_fd() else {
                return;
            };
            match reactor.insert(wrap(StdoutFd(fd)), Interest::WRITABLE) {
                Ok(token) => output.token = Some(token),
                // Not pollable: the next line, or finish, flushes it.
                Err(refused) => log::debug!("stdout cannot be watched: {}", refused.error),
            }
        }
        (false, Some(token)) => {
            output.token = None;
            drop(reactor.remove(token));
        }
        _ => {}
    }
}

/// stdout is writable: writes what waits (and the report of what was
/// dropped, once there is room for it).
pub fn on_writable() {
    if let Some(output) = lock().as_mut() {
        output.flush();
    }
}

/// On the way out: flushes for at most [`FINISH_WITHIN`], says how many
/// lines were dropped, and gives fd 1 its flags back if they were changed.
pub fn finish() {
    let Some(mut output) = lock().take() else {
        return;
    };
    let deadline = Instant::now() + FINISH_WITHIN;
    loop {
        output.flush();
        let left = deadline.saturating_duration_since(Instant::now());
        if output.broken || (output.head == output.buf.len() && output.dropped == 0) {
            break;
        }
        if left.is_zero() {
            let unsent = output.buf[output.head..]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            log::warn!(
                "stdout: {} line(s) unprinted at exit",
                unsent as u64 + output.dropped
            );
            break;
        }
        let mut pfd = libc::pollfd {
            fd: output.fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: poll reads and writes one pollfd we own; EINTR just loops.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Output>> {
    // A panic while holding the lock leaves the queue usable.
    OUTPUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Output {
    /// Queues `line`, or counts it as dropped.
    fn line(&mut self, line: &str) {
        if self.broken {
            return;
        }
        self.flush();
        let need = line.len() + 1;
        // While some are dropped, drop until the report is out, so the
        // report stands exactly where the gap is.
        if self.dropped > 0 || self.buf.len() - self.head + need > QUEUE_LIMIT {
            self.dropped += 1;
            return;
        }
        self.compact();
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.flush();
    }

    /// Writes until the queue is empty or stdout would block; then, if
    /// lines were dropped and the queue is empty, queues the report.
    fn flush(&mut self) {
        loop {
            while self.head < self.buf.len() && !self.broken {
                match self.write(&self.buf[self.head..]) {
                    Ok(n) => self.head += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) => {
                        // EPIPE (the reader left) or worse: printing is over,
                        // serving is not.
                        log::warn!("stdout: {e}; printing nothing more");
                        self.broken = true;
                    }
                }
            }
            self.buf.clear();
            self.head = 0;
            if self.buf.capacity() > QUEUE_LIMIT {
                self.buf = Vec::new();
            }
            if self.dropped == 0 || self.broken {
                return;
            }
            let report = format!("… {} lines dropped\n", self.dropped);
            self.dropped = 0;
            self.buf.extend_from_slice(report.as_bytes());
        }
    }

    /// Moves the queued bytes to the front when half the buffer is spent.
    fn compact(&mut self) {
        if self.head > 0 && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// One write without waiting.
    fn write(&self, data: &[u8]) -> io::Result<usize> {
        let fd = self.fd();
        let n = match self.writer {
            // SAFETY: send reads `data.len()` bytes from a live slice; fd 1
            // is the process's stdout.
            Writer::Socket => unsafe {
                libc::send(
                    fd,
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            },
            // SAFETY: write reads `data.len()` bytes from a live slice to a
            // descriptor this process owns (fd 1 or its reopened copy).
            _ => unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) },
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// The descriptor written to.
    fn fd(&self) -> RawFd {
        match &self.writer {
            Writer::Private(fd) => fd.as_raw_fd(),
            _ => 1,
        }
    }

    /// A copy of the descriptor to watch; `None` for direct writing.
    fn watch_fd(&self) -> Option<OwnedFd> {
        if matches!(self.writer, Writer::Direct) {
            return None;
        }
        // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we hold open; the
        // result is new and owned by nothing else.
        let copy = unsafe { libc::fcntl(self.fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if copy < 0 {
            log::debug!("stdout: dup: {}", io::Error::last_os_error());
            return None;
        }
        // SAFETY: `copy` is a fresh descriptor only this OwnedFd owns.
        Some(unsafe { OwnedFd::from_raw_fd(copy) })
    }
}

impl Drop for Output {
    /// Gives fd 1 back its flags if they were changed.
    fn drop(&mut self) {
        if let Writer::Shared(flags) = self.writer {
            // SAFETY: F_SETFL takes an int; fd 1 stays open.
            unsafe { libc::fcntl(1, libc::F_SETFL, flags) };
        }
    }
}

/// Chooses how to write to fd 1 without blocking (see the module docs).
fn open_writer() -> Writer {
    // SAFETY: fstat writes one `stat` into memory we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; fd 1 is only inspected.
    if unsafe { libc::fstat(1, &mut st) } == -1 {
        return Writer::Direct;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => return Writer::Socket,
        libc::S_IFIFO | libc::S_IFCHR => {}
        _ => return Writer::Direct,
    }
    // /dev/null and its kind never block and cannot be polled.
    if st.st_mode & libc::S_IFMT == libc::S_IFCHR && !is_tty() {
        return Writer::Direct;
    }
    let reopened = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/proc/self/fd/1");
    match reopened {
        Ok(file) => Writer::Private(out_of_the_way(OwnedFd::from(file))),
        Err(err) => {
            log::debug!(
                "stdout: cannot reopen /proc/self/fd/1 ({err}); setting O_NONBLOCK on fd 1"
            );
            // SAFETY: F_GETFL takes no argument and returns an int; fd 1 stays open.
            let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
            if flags == -1 {
                return Writer::Direct;
            }
            // SAFETY: F_SETFL takes an int; fd 1 stays open.
            if unsafe { libc::fcntl(1, libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1 {
                return Writer::Direct;
            }
            Writer::Shared(flags)
        }
    }
}

/// The lowest number the reopened stdout is moved to.
const PRIVATE_FD_FLOOR: libc::c_int = 64;

/// Moves `fd` to a number of [`PRIVATE_FD_FLOOR`] or more, so that the
/// server's own descriptors (listener, signal pipe, clients) get the
/// numbers they would have without it, as the guide's traces show them.
/// Under a low descriptor limit it stays where it is.
fn out_of_the_way(fd: OwnedFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own; the result
    // is new and owned by nothing else.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, PRIVATE_FD_FLOOR) };
    if moved < 0 {
        return fd;
    }
    // SAFETY: `moved` is a fresh descriptor only this OwnedFd owns; `fd`
    // is closed when it is dropped here.
    unsafe { OwnedFd::from_raw_fd(moved) }
}

fn is_tty() -> bool {
    // SAFETY: isatty only queries fd 1.
    unsafe { libc::isatty(1) == 1 }
}
