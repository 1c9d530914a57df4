//! [`WriteQueue`]: one connection's unsent bytes, with a high-water mark.
//!
//! The rules it keeps, which every server here needs:
//!
//! - **Write first, queue the rest.** [`send`](WriteQueue::send) hands new
//!   bytes straight to the socket when nothing waits before them (no copy),
//!   and one `writev(2)` carries the queued bytes and the new ones together
//!   when something does. Only what the kernel did not take is copied in.
//! - **Partial writes are normal flow.** A short count or `EAGAIN` is not an
//!   error: the rest stays queued for the next writable event. A short write
//!   on a stream socket means its send buffer is full, so the queue stops
//!   there instead of spending one more call to be told `EAGAIN`.
//! - **Order.** Bytes leave in the order they were given.
//! - **Backpressure, not buffering.** Past the high-water mark the queue
//!   [`is_full`](WriteQueue::is_full): the caller stops *reading* from the
//!   peer (drops `READABLE` interest) until it drains, so TCP slows the peer
//!   down and the memory a connection holds stays near the mark.
//! - **`WRITABLE` only while something waits.** A level-triggered poller
//!   reports an idle socket writable on every turn; watching for it with an
//!   empty queue is a busy loop. [`interest`](WriteQueue::interest) says
//!   what to watch for now.
//! - **Memory it reports.** The bytes are one contiguous allocation, so
//!   [`capacity`](WriteQueue::capacity) is the memory held. Once drained, an
//!   allocation above 4 KiB is given back, so an idle connection holds
//!   little or nothing; dropping the queue frees it all.

use std::io::{ErrorKind, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd};

use crate::error::{Error, Result};
use crate::poller::Interest;

/// The high-water mark of [`WriteQueue::new`]: 64 KiB.
const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// A drained queue keeps an allocation up to this size for the next
/// backlog, and frees a larger one.
const KEEP_CAPACITY: usize = 4 * 1024;

/// How many pieces one `writev` carries at most (Linux's `IOV_MAX` is 1024;
/// past a few dozen, one more call costs less than gathering them).
const MAX_IOVECS: usize = 64;

/// Bytes waiting for a socket to take them, kept in order, with a
/// high-water mark for backpressure.
///
/// The queued bytes are `buf[head..]`: written bytes are skipped by moving
/// `head`, and the tail is moved to the front only when room is needed, so
/// a stream of partial writes costs no copying per write.
///
/// # Examples
///
/// A socket that takes only part of a write; the rest waits in the queue
/// until the peer reads.
///
/// ```
/// use std::io::Read;
/// use std::os::unix::net::UnixStream;
/// use reactor::{Interest, WriteQueue};
///
/// let (mut ours, mut theirs) = UnixStream::pair()?;
/// ours.set_nonblocking(true)?;
/// let mut queue = WriteQueue::new();
///
/// // More than any socket buffer holds: the kernel takes a part.
/// let big = vec![7u8; 4 << 20];
/// queue.send(&mut ours, &big)?;
/// assert!(!queue.is_empty());
/// assert_eq!(queue.interest(), Interest::WRITABLE); // full: stop reading
///
/// // The peer reads; each writable turn sends more.
/// let mut got = Vec::new();
/// let mut chunk = vec![0u8; 1 << 16];
/// while got.len() < big.len() {
///     queue.write_to(&mut ours)?;
///     let n = theirs.read(&mut chunk)?;
///     got.extend_from_slice(&chunk[..n]);
/// }
/// assert_eq!(got, big);
/// assert!(queue.is_empty());
/// assert_eq!(queue.interest(), Interest::READABLE); // nothing waits
/// assert_eq!(queue.capacity(), 0); // the backlog's memory went back
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `sent = sock.send(data); pending += data[sent:]`, and
/// `ep.modify(fd, EPOLLIN | EPOLLOUT)` while `pending` is not empty.
#[derive(Debug, Clone)]
pub struct WriteQueue {
    /// The allocation; the queued bytes are `buf[head..]`.
    buf: Vec<u8>,
    /// Start of the bytes not yet written.
    head: usize,
    /// At this many queued bytes the queue is full: stop reading.
    high_water: usize,
}

impl Default for WriteQueue {
    fn default() -> WriteQueue {
        WriteQueue::new()
    }
}

impl WriteQueue {
    /// An empty queue (no allocation) with a 64 KiB high-water mark.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let queue = WriteQueue::new();
    /// assert!(queue.is_empty());
    /// assert_eq!((queue.len(), queue.capacity(), queue.high_water()), (0, 0, 64 * 1024));
    /// ```
    ///
    /// Python: `pending = b""`
    pub fn new() -> WriteQueue {
        WriteQueue::with_high_water(DEFAULT_HIGH_WATER)
    }

    /// An empty queue that is full at `high_water` queued bytes (at least 1).
    ///
    /// The mark bounds what a caller *reads* while the peer is not reading,
    /// not what [`push`](Self::push) accepts: one response larger than the
    /// mark is still queued whole, and the caller stops reading until it has
    /// gone out. So a connection holds at most the mark plus whatever one
    /// read produced.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let mut queue = WriteQueue::with_high_water(4);
    /// queue.push(b"abc");
    /// assert!(!queue.is_full());
    /// assert_eq!(queue.room(), 1);
    /// queue.push(b"de");
    /// assert!(queue.is_full());
    /// assert_eq!(queue.room(), 0);
    /// ```
    ///
    /// Python: `if len(pending) >= HIGH_WATER: ep.modify(fd, EPOLLOUT)`
    pub fn with_high_water(high_water: usize) -> WriteQueue {
        WriteQueue {
            buf: Vec::new(),
            head: 0,
            high_water: high_water.max(1),
        }
    }

    /// Bytes queued and not yet written.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let mut queue = WriteQueue::new();
    /// queue.push(b"hello");
    /// assert_eq!(queue.len(), 5);
    /// ```
    ///
    /// Python: `len(pending)`
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Whether nothing waits to be written.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let mut queue = WriteQueue::new();
    /// assert!(queue.is_empty());
    /// queue.push(b"x");
    /// assert!(!queue.is_empty());
    /// ```
    ///
    /// Python: `not pending`
    pub fn is_empty(&self) -> bool {
        self.head == self.buf.len()
    }

    /// Bytes of memory the queue holds: its one allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let mut queue = WriteQueue::new();
    /// assert_eq!(queue.capacity(), 0);
    /// queue.push(&[0; 100]);
    /// assert!(queue.capacity() >= 100);
    /// ```
    ///
    /// Python: `sys.getsizeof(pending)`
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The high-water mark: at this many queued bytes, [`is_full`](Self::is_full).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// assert_eq!(WriteQueue::with_high_water(1000).high_water(), 1000);
    /// ```
    ///
    /// Python: `HIGH_WATER`
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// Whether the queue has reached its high-water mark: stop reading from
    /// the peer until it drains below.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let mut queue = WriteQueue::with_high_water(2);
    /// queue.push(b"ab");
    /// assert!(queue.is_full());
    /// ```
    ///
    /// Python: `len(pending) >= HIGH_WATER`
    pub fn is_full(&self) -> bool {
        self.len() >= self.high_water
    }

    /// How many more bytes fit below the high-water mark: how much a caller
    /// that echoes what it reads should read at most.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let mut queue = WriteQueue::with_high_water(10);
    /// queue.push(b"abc");
    /// assert_eq!(queue.room(), 7);
    /// ```
    ///
    /// Python: `HIGH_WATER - len(pending)`
    pub fn room(&self) -> usize {
        self.high_water.saturating_sub(self.len())
    }

    /// What to watch the connection for now: `READABLE` unless the queue is
    /// full, and `WRITABLE` only while something waits.
    ///
    /// Never empty (a full queue is never empty). A caller with reasons of
    /// its own (the peer closed, so no more reading) combines them with
    /// [`is_empty`](Self::is_empty) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Interest, WriteQueue};
    ///
    /// let mut queue = WriteQueue::with_high_water(4);
    /// assert_eq!(queue.interest(), Interest::READABLE);
    /// queue.push(b"ab");
    /// assert_eq!(queue.interest(), Interest::READABLE | Interest::WRITABLE);
    /// queue.push(b"cd");
    /// assert_eq!(queue.interest(), Interest::WRITABLE);
    /// ```
    ///
    /// Python: `EPOLLIN | (EPOLLOUT if pending else 0)`
    pub fn interest(&self) -> Interest {
        match (self.is_empty(), self.is_full()) {
            // Nothing waits: only reading.
            (true, _) => Interest::READABLE,
            // Something waits, under the mark: both.
            (false, false) => Interest::READABLE | Interest::WRITABLE,
            // Full: only writing, until it drains.
            (false, true) => Interest::WRITABLE,
        }
    }

    /// Queues `data` behind what is already queued, without writing.
    ///
    /// Accepts everything: the high-water mark is for the caller to respect
    /// by not reading (see [`with_high_water`](Self::with_high_water)).
    /// Useful to build several pieces before one [`write_to`](Self::write_to);
    /// to write at once, [`send`](Self::send) copies less.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::unix::net::UnixStream;
    /// use reactor::WriteQueue;
    ///
    /// let (mut ours, mut theirs) = UnixStream::pair()?;
    /// let mut queue = WriteQueue::new();
    /// queue.push(b"HTTP/1.1 200 OK\r\n");
    /// queue.push(b"\r\n");
    /// assert_eq!(queue.write_to(&mut ours)?, 19);
    /// let mut got = [0; 19];
    /// theirs.read_exact(&mut got)?;
    /// assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `pending += data`
    pub fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.make_room(data.len());
        self.buf.extend_from_slice(data);
    }

    /// Forgets everything queued (a connection being reset, say) and frees
    /// a large allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::WriteQueue;
    ///
    /// let mut queue = WriteQueue::new();
    /// queue.push(&[1; 10_000]);
    /// queue.clear();
    /// assert!(queue.is_empty());
    /// assert_eq!(queue.capacity(), 0);
    /// ```
    ///
    /// Python: `pending = b""`
    pub fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.release();
    }

    /// Writes queued bytes to `out` until the queue is empty or `out` takes
    /// no more; returns how many were written (0 when it would block).
    ///
    /// Call it when the socket is writable. `EINTR` is retried; `EAGAIN`
    /// and a short write end the call with the rest still queued.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] naming `write` and `out`'s descriptor for any other
    /// failure: `ECONNRESET`, `EPIPE` (Rust ignores `SIGPIPE`, so a closed
    /// peer is an error here, not a death), or a write of 0 bytes. The
    /// connection is then broken; what was written before stays counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::unix::net::UnixStream;
    /// use reactor::WriteQueue;
    ///
    /// let (mut ours, mut theirs) = UnixStream::pair()?;
    /// ours.set_nonblocking(true)?;
    /// let mut queue = WriteQueue::new();
    /// queue.push(b"queued while the socket was busy");
    /// queue.write_to(&mut ours)?;
    /// assert!(queue.is_empty());
    /// let mut got = [0; 32];
    /// theirs.read_exact(&mut got)?;
    /// assert_eq!(&got, b"queued while the socket was busy");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `sent = sock.send(pending); pending = pending[sent:]`
    pub fn write_to<W: Write + AsFd>(&mut self, out: &mut W) -> Result<usize> {
        let mut written = 0;
        while !self.is_empty() {
            let offered = self.len();
            match out.write(&self.buf[self.head..]) {
                Ok(0) => return Err(write_error(out, "write", ErrorKind::WriteZero.into())),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                    if n < offered {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(write_error(out, "write", e)),
            }
        }
        log::trace!(
            "write queue fd={}: wrote {written}, {} still queued",
            out.as_fd().as_raw_fd(),
            self.len()
        );
        Ok(written)
    }

    /// Writes `data` behind whatever is queued and queues what `out` did not
    /// take; returns how many bytes went out (queued ones included).
    ///
    /// With nothing queued, `data` goes straight to `write` and only the
    /// rest is copied; with a backlog, one `writev` carries both.
    ///
    /// # Errors
    ///
    /// As [`write_to`](Self::write_to), naming `write` or `writev`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::unix::net::UnixStream;
    /// use reactor::WriteQueue;
    ///
    /// let (mut ours, mut theirs) = UnixStream::pair()?;
    /// ours.set_nonblocking(true)?;
    /// let mut queue = WriteQueue::new();
    /// assert_eq!(queue.send(&mut ours, b"ping\n")?, 5);
    /// assert!(queue.is_empty()); // all taken, nothing copied
    /// let mut got = [0; 5];
    /// theirs.read_exact(&mut got)?;
    /// assert_eq!(&got, b"ping\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `pending += data; sent = sock.send(pending); pending = pending[sent:]`
    pub fn send<W: Write + AsFd>(&mut self, out: &mut W, data: &[u8]) -> Result<usize> {
        self.send_vectored(out, &[IoSlice::new(data)])
    }

    /// Writes the pieces `bufs`, in order, behind whatever is queued, with
    /// as few `writev` calls as the socket allows, and queues what it did
    /// not take; returns how many bytes went out (queued ones included).
    ///
    /// This is how a server answers several pipelined requests with one
    /// system call: each response's header and body are pieces, the body
    /// borrowed from wherever it lives, and only a remainder the socket
    /// refused is ever copied.
    ///
    /// # Errors
    ///
    /// As [`write_to`](Self::write_to), naming `writev`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{IoSlice, Read};
    /// use std::os::unix::net::UnixStream;
    /// use reactor::WriteQueue;
    ///
    /// let (mut ours, mut theirs) = UnixStream::pair()?;
    /// ours.set_nonblocking(true)?;
    /// let mut queue = WriteQueue::new();
    /// queue.push(b"first ");
    /// let pieces = [IoSlice::new(b"second "), IoSlice::new(b"third")];
    /// assert_eq!(queue.send_vectored(&mut ours, &pieces)?, 18);
    /// let mut got = [0; 18];
    /// theirs.read_exact(&mut got)?;
    /// assert_eq!(&got, b"first second third");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `sent = sock.sendmsg([pending, *pieces])`, then keep the rest.
    pub fn send_vectored<W: Write + AsFd>(
        &mut self,
        out: &mut W,
        bufs: &[IoSlice<'_>],
    ) -> Result<usize> {
        let queued = self.len();
        // The common case, one piece and no backlog: a plain write.
        let (taken, failure) = if queued == 0 && bufs.len() == 1 {
            write_some(out, &bufs[0])
        } else {
            self.writev_some(out, bufs)
        };
        // Forget what the kernel took of the backlog, then keep what it did
        // not take of the new pieces.
        self.consume(taken.min(queued));
        let mut skip = taken.saturating_sub(queued);
        for piece in bufs {
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            self.push(&piece[skip..]);
            skip = 0;
        }
        if let Some(err) = failure {
            return Err(err);
        }
        log::trace!(
            "write queue fd={}: wrote {taken}, {} still queued",
            out.as_fd().as_raw_fd(),
            self.len()
        );
        Ok(taken)
    }

    /// Hands the backlog and `bufs` to `writev` until all is taken, the
    /// socket would block, or a write is short; returns the bytes taken and
    /// the error that ended it, if one did.
    fn writev_some<W: Write + AsFd>(
        &self,
        out: &mut W,
        bufs: &[IoSlice<'_>],
    ) -> (usize, Option<Error>) {
        let queued = &self.buf[self.head..];
        let mut taken = 0;
        loop {
            // Gather up to MAX_IOVECS pieces, starting `taken` bytes in.
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut offered = 0;
            let mut skip = taken;
            for piece in std::iter::once(queued).chain(bufs.iter().map(|b| &b[..])) {
                if count == MAX_IOVECS {
                    break;
                }
                if skip >= piece.len() {
                    skip -= piece.len();
                    continue;
                }
                iov[count] = IoSlice::new(&piece[skip..]);
                offered += piece.len() - skip;
                count += 1;
                skip = 0;
            }
            if count == 0 {
                return (taken, None);
            }
            match out.write_vectored(&iov[..count]) {
                Ok(0) => {
                    let err = write_error(out, "writev", ErrorKind::WriteZero.into());
                    return (taken, Some(err));
                }
                Ok(n) => {
                    taken += n;
                    if n < offered {
                        return (taken, None);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return (taken, None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return (taken, Some(write_error(out, "writev", e))),
            }
        }
    }

    /// Forgets the first `n` queued bytes (written).
    fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head >= self.buf.len() {
            self.buf.clear();
            self.head = 0;
            self.release();
        }
    }

    /// Frees a drained allocation above [`KEEP_CAPACITY`].
    fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }

    /// Before appending `more` bytes: if they would not fit the allocation
    /// but would fit once the written bytes before `head` are dropped, move
    /// the queued tail to the front instead of growing.
    fn make_room(&mut self, more: usize) {
        if self.head > 0 && self.buf.len() + more > self.buf.capacity() {
            self.buf.copy_within(self.head.., 0);
            self.buf.truncate(self.buf.len() - self.head);
            self.head = 0;
        }
    }
}

/// Writes `data` once (retrying `EINTR`); returns the bytes taken and the
/// error that ended it, if one did.
fn write_some<W: Write + AsFd>(out: &mut W, data: &[u8]) -> (usize, Option<Error>) {
    if data.is_empty() {
        return (0, None);
    }
    loop {
        match out.write(data) {
            Ok(0) => {
                return (
                    0,
                    Some(write_error(out, "write", ErrorKind::WriteZero.into())),
                );
            }
            Ok(n) => return (n, None),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return (0, None),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (0, Some(write_error(out, "write", e))),
        }
    }
}

/// The error for a failed write on `out`.
fn write_error<W: AsFd>(out: &W, call: &'static str, source: std::io::Error) -> Error {
    Error::Sys {
        call,
        fd: Some(out.as_fd().as_raw_fd()),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::fs::File;
    use std::io;
    use std::os::fd::BorrowedFd;

    /// What a scripted socket does with the next write.
    enum Step {
        /// Takes at most this many bytes.
        Take(usize),
        /// `EAGAIN`.
        Block,
        /// `EINTR`.
        Interrupt,
        /// `ECONNRESET`.
        Reset,
    }

    /// A writer that follows a script, recording what it took and how many
    /// calls and pieces it saw.
    struct Script {
        steps: VecDeque<Step>,
        got: Vec<u8>,
        calls: usize,
        pieces: Vec<usize>,
        fd: File,
    }

    impl Script {
        fn new(steps: impl IntoIterator<Item = Step>) -> Script {
            Script {
                steps: steps.into_iter().collect(),
                got: Vec::new(),
                calls: 0,
                pieces: Vec::new(),
                fd: File::open("/dev/null").unwrap(),
            }
        }
    }

    impl AsFd for Script {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
    }

    impl Write for Script {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(data)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            self.pieces.push(bufs.len());
            match self.steps.pop_front().unwrap_or(Step::Block) {
                Step::Take(mut room) => {
                    let mut n = 0;
                    for b in bufs {
                        let k = room.min(b.len());
                        self.got.extend_from_slice(&b[..k]);
                        room -= k;
                        n += k;
                    }
                    Ok(n)
                }
                Step::Block => Err(ErrorKind::WouldBlock.into()),
                Step::Interrupt => Err(ErrorKind::Interrupted.into()),
                Step::Reset => Err(io::Error::from_raw_os_error(libc::ECONNRESET)),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_empty_queue_writes_new_data_directly_and_copies_only_the_rest() {
        let mut out = Script::new([Step::Take(3)]);
        let mut queue = WriteQueue::new();
        assert_eq!(queue.send(&mut out, b"abcdef").unwrap(), 3);
        assert_eq!(out.got, b"abc");
        assert_eq!(queue.len(), 3);
        assert_eq!(
            out.calls, 1,
            "a short write ends the call: the buffer is full"
        );
    }

    #[test]
    fn a_backlog_and_new_pieces_go_out_in_one_writev_in_order() {
        let mut out = Script::new([Step::Block, Step::Take(100)]);
        let mut queue = WriteQueue::new();
        queue.send(&mut out, b"one ").unwrap();
        assert_eq!(queue.len(), 4);
        let pieces = [
            IoSlice::new(b"two "),
            IoSlice::new(b""),
            IoSlice::new(b"three"),
        ];
        assert_eq!(queue.send_vectored(&mut out, &pieces).unwrap(), 13);
        assert_eq!(out.got, b"one two three");
        assert_eq!(out.pieces, [1, 3], "the empty piece is not handed over");
        assert!(queue.is_empty());
    }

    #[test]
    fn a_write_that_ends_inside_the_new_pieces_queues_their_tail() {
        let mut out = Script::new([Step::Block, Step::Take(6), Step::Take(100)]);
        let mut queue = WriteQueue::new();
        queue.send(&mut out, b"abcd").unwrap();
        let pieces = [IoSlice::new(b"ef"), IoSlice::new(b"ghij")];
        assert_eq!(queue.send_vectored(&mut out, &pieces).unwrap(), 6);
        assert_eq!(queue.len(), 4);
        queue.write_to(&mut out).unwrap();
        assert_eq!(out.got, b"abcdefghij");
    }

    #[test]
    fn interrupted_writes_are_retried_and_would_block_is_not_an_error() {
        let mut out = Script::new([Step::Interrupt, Step::Take(2), Step::Interrupt, Step::Block]);
        let mut queue = WriteQueue::new();
        queue.push(b"abcd");
        assert_eq!(queue.write_to(&mut out).unwrap(), 2);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.write_to(&mut out).unwrap(), 0);
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn a_reset_is_an_error_naming_the_call_and_the_fd() {
        let mut out = Script::new([Step::Reset]);
        let mut queue = WriteQueue::new();
        queue.push(b"abcd");
        let err = queue.write_to(&mut out).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
        let fd = out.fd.as_raw_fd();
        assert!(
            err.to_string()
                .starts_with(&format!("write on fd {fd} failed")),
            "{err}"
        );
    }

    #[test]
    fn a_failed_writev_after_progress_keeps_the_unsent_rest() {
        // 64+ pieces need two writev calls; the second fails.
        let pieces: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10]).collect();
        let slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        let mut out = Script::new([Step::Take(usize::MAX), Step::Reset]);
        let mut queue = WriteQueue::new();
        queue.push(b"x");
        let err = queue.send_vectored(&mut out, &slices).unwrap_err();
        assert!(err.to_string().starts_with("writev"), "{err}");
        assert_eq!(out.pieces, [MAX_IOVECS, 100 - (MAX_IOVECS - 1)]);
        assert_eq!(queue.len(), 1 + 1000 - out.got.len());
    }

    #[test]
    fn many_pieces_are_written_in_batches_of_at_most_max_iovecs() {
        let pieces: Vec<Vec<u8>> = (0..150u8).map(|i| vec![i; 3]).collect();
        let slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        let mut out = Script::new((0..3).map(|_| Step::Take(usize::MAX)));
        let mut queue = WriteQueue::new();
        assert_eq!(queue.send_vectored(&mut out, &slices).unwrap(), 450);
        assert_eq!(out.pieces, [64, 64, 22]);
        assert_eq!(out.got, pieces.concat());
    }

    #[test]
    fn the_high_water_mark_turns_reading_off_and_back_on() {
        let mut out = Script::new([Step::Block, Step::Take(5)]);
        let mut queue = WriteQueue::with_high_water(8);
        queue.send(&mut out, b"0123456789").unwrap();
        assert!(queue.is_full());
        assert_eq!(queue.interest(), Interest::WRITABLE);
        assert_eq!(queue.room(), 0);
        queue.write_to(&mut out).unwrap();
        assert!(!queue.is_full());
        assert_eq!(queue.interest(), Interest::READABLE | Interest::WRITABLE);
        assert_eq!(queue.room(), 3);
    }

    #[test]
    fn drained_memory_is_returned_above_the_kept_capacity() {
        let mut out = Script::new([Step::Block, Step::Take(usize::MAX)]);
        let mut queue = WriteQueue::new();
        queue.send(&mut out, &[1; 100_000]).unwrap();
        assert!(queue.capacity() >= 100_000);
        queue.write_to(&mut out).unwrap();
        assert_eq!(queue.capacity(), 0);

        // A small backlog keeps its allocation for the next one.
        let mut out = Script::new([Step::Block, Step::Take(usize::MAX)]);
        queue.send(&mut out, &[1; 100]).unwrap();
        let small = queue.capacity();
        queue.write_to(&mut out).unwrap();
        assert_eq!(queue.capacity(), small);
    }

    #[test]
    fn partial_writes_then_pushes_reuse_the_allocation_instead_of_growing() {
        let mut queue = WriteQueue::with_high_water(1 << 20);
        queue.push(&[0; 1000]);
        let cap = queue.capacity();
        for round in 0..50 {
            let mut out = Script::new([Step::Take(300)]);
            queue.write_to(&mut out).unwrap();
            queue.push(&[round; 300]);
            assert_eq!(queue.len(), 1000);
            assert_eq!(queue.capacity(), cap, "round {round}: grew");
        }
    }

    #[test]
    fn bytes_leave_in_order_through_any_pattern_of_partial_writes() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Script::new((1..400).map(|i| {
            if i % 3 == 0 {
                Step::Block
            } else {
                Step::Take(1 + i * 7 % 97)
            }
        }));
        let mut queue = WriteQueue::with_high_water(256);
        let mut fed = 0;
        while out.got.len() < data.len() && !out.steps.is_empty() {
            if !queue.is_full() && fed < data.len() {
                let end = (fed + queue.room()).min(data.len());
                queue.send(&mut out, &data[fed..end]).unwrap();
                fed = end;
            } else {
                queue.write_to(&mut out).unwrap();
            }
        }
        let mut rest = Script::new([Step::Take(usize::MAX)]);
        queue.write_to(&mut rest).unwrap();
        assert_eq!([&out.got[..], &rest.got[..]].concat(), data[..fed]);
    }
}
