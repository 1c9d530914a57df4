//! A member's bounded write queue: its unsent bytes, contiguous.
//!
//! Each line queued for a member is copied into that member's queue, one
//! byte after the other in a single allocation, so the memory a queue holds
//! is its allocation and nothing else: no per-line header, no pointer, no
//! allocator chunk per line. The allocation never grows past the bound
//! (`--max-queue`), so one member that does not read holds at most
//! `--max-queue` bytes of the server's memory; a line that would not fit is
//! refused and the caller drops the member as too slow (docs/reliability.md#slow-readers),
//! which frees the allocation at once. A queue that drains gives a large
//! allocation back, so an idle member costs little.
//!
//! Bytes leave in the order they were queued, so nothing is ever reordered,
//! and a line is only ever cut by a partial `write` that the next write
//! continues.
//!
//! Why not `reactor::WriteQueue`: its allocation grows by doubling, so it
//! may hold up to twice its high-water mark, and the chat's bound is a
//! promise about memory; here growth is capped at the bound itself.

use std::io::{self, ErrorKind, Write};

/// A drained queue keeps an allocation up to this size for the next burst,
/// and frees a larger one.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Bytes waiting for a socket to take them.
#[derive(Debug)]
pub struct OutQueue {
    /// The queued bytes are `buf[head..]`.
    buf: Vec<u8>,
    /// Bytes at the front already written.
    head: usize,
    /// Most bytes the queue (and its allocation) may hold.
    limit: usize,
}

impl OutQueue {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> OutQueue {
        OutQueue {
            buf: Vec::new(),
            head: 0,
            limit,
        }
    }

    /// Queues `bytes` unless that would pass the limit; `false` if refused
    /// (nothing is queued then: never half a line).
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let queued = self.queued();
        if queued + bytes.len() > self.limit {
            return false;
        }
        if self.buf.len() + bytes.len() > self.buf.capacity() {
            // Reuse the written front before growing.
            if self.head > 0 {
                self.buf.drain(..self.head);
                self.head = 0;
            }
            let need = self.buf.len() + bytes.len();
            if need > self.buf.capacity() {
                // Double, as Vec would, but never past the limit.
                let target = need.max(self.buf.capacity() * 2).min(self.limit);
                self.buf.reserve_exact(target - self.buf.len());
            }
        }
        self.buf.extend_from_slice(bytes);
        true
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    /// Bytes not yet written.
    pub fn queued(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Bytes of memory the queue holds (its allocation).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Writes until the queue is empty or the socket would block. Partial
    /// writes are normal: the rest waits for the next writable event.
    ///
    /// # Errors
    ///
    /// A write error other than `WouldBlock`/`Interrupted` (a reset peer:
    /// `ECONNRESET`, `EPIPE` — Rust ignores SIGPIPE, so it is an error here,
    /// not a death).
    pub fn write_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        while !self.is_empty() {
            match out.write(&self.buf[self.head..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.head += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Drained: start again at the front, and give a burst's memory back.
        self.buf.clear();
        self.head = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        Ok(())
    }
}
