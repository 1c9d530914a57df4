//! A member's bounded write queue of shared lines.
//!
//! A broadcast is encoded once into a reference-counted [`Bytes`]; each
//! member's queue holds a reference to it (a pointer and a count, not a
//! copy), plus, for the line at the front, how much of it the socket has
//! already taken. Lines leave in the order they were queued, so nothing is
//! ever reordered, and a line is only ever cut by a partial `write` that
//! the next write continues.
//!
//! The bound (`--max-queue`) is on the bytes not yet written, each line
//! charged 16 bytes more for its place in the ring. A line that
//! would take the queue past it is refused, and the caller drops the member
//! as too slow (docs/reliability.md, "Slow readers"): one member that does not read can hold at
//! most `--max-queue` bytes of the server's memory, and never slows the
//! others, since nothing ever waits for it.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Write};

use super::protocol::Bytes;

/// What one queued line costs beyond its bytes: the `Rc<[u8]>` in the
/// ring (a pointer and a length). The line's bytes are shared, but each
/// member is charged for them in full, so the bound holds per member.
const ENTRY_COST: usize = std::mem::size_of::<Bytes>();

/// An emptied queue whose ring holds more slots than this frees it.
const SHRINK_ABOVE: usize = 256;

/// How many lines one `writev` hands the kernel at most.
const MAX_IOVECS: usize = 64;

/// Lines waiting for a socket to take them.
#[derive(Debug)]
pub struct OutQueue {
    /// The lines, oldest first.
    lines: VecDeque<Bytes>,
    /// Bytes of the front line already written.
    offset: usize,
    /// Bytes queued and not yet written.
    queued: usize,
    /// What the queue charges against the limit: the bytes, plus the
    /// reference each line costs in the ring.
    charged: usize,
    /// Most bytes the queue may hold.
    limit: usize,
}

impl OutQueue {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> OutQueue {
        OutQueue {
            lines: VecDeque::new(),
            offset: 0,
            queued: 0,
            charged: 0,
            limit,
        }
    }

    /// Queues `line` unless that would pass the limit; `false` if refused.
    pub fn push(&mut self, line: Bytes) -> bool {
        let cost = line.len() + ENTRY_COST;
        if self.charged + cost > self.limit {
            return false;
        }
        self.queued += line.len();
        self.charged += cost;
        self.lines.push_back(line);
        true
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes not yet written.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Writes (with `writev`, up to 64 lines a call) until the queue is
    /// empty or the socket would block. Partial writes are normal: the rest
    /// waits for the next writable event.
    ///
    /// # Errors
    ///
    /// A write error other than `WouldBlock`/`Interrupted` (a reset peer:
    /// `ECONNRESET`, `EPIPE` — Rust ignores SIGPIPE, so it is an error here,
    /// not a death).
    pub fn write_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        while !self.lines.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, line) in self.lines.iter().take(MAX_IOVECS).enumerate() {
                let skip = if i == 0 { self.offset } else { 0 };
                slices[i] = IoSlice::new(&line[skip..]);
                count += 1;
            }
            match out.write_vectored(&slices[..count]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Forgets the first `n` written bytes.
    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.lines.front() else {
                break;
            };
            let left = front.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            if let Some(line) = self.lines.pop_front() {
                self.charged -= line.len() + ENTRY_COST;
            }
        }
        // A burst grew the ring; once drained, give the memory back so an
        // idle member costs little.
        if self.lines.is_empty() && self.lines.capacity() > SHRINK_ABOVE {
            self.lines = VecDeque::new();
        }
    }
}
