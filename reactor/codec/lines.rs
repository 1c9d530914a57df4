//! [`LineBuffer`]: splits a byte stream into `\n`-terminated lines, with a
//! length limit enforced before the buffer grows.

use std::collections::VecDeque;

/// Default size of one read into [`LineBuffer::spare`].
const DEFAULT_READ_CHUNK: usize = 4096;

/// What [`LineBuffer::next_line`] found: a line, or the news that one was too long.
///
/// A line borrows from the buffer, so take what you need from it before
/// pushing more bytes.
///
/// # Examples
///
/// ```
/// use reactor::codec::{Line, LineBuffer};
///
/// let mut lines = LineBuffer::new(5);
/// lines.push(b"hi\r\nway too long\n");
/// assert_eq!(lines.next_line(), Some(Line::Complete(b"hi")));
/// assert_eq!(lines.next_line(), Some(Line::TooLong));
/// ```
///
/// Python: `line` from `line, buf = buf.split(b'\n', 1)`, or `if len(line) > MAX_LINE:`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line, without its `\n` and without one trailing `\r`.
    Complete(&'a [u8]),
    /// A line longer than the limit was dropped. Reported once per such line;
    /// its bytes up to and including the next `\n` are discarded.
    TooLong,
}

/// Splits received bytes into lines for a line protocol (the chat room, `nc`).
///
/// A line ends at `\n`; one `\r` before it is stripped, so `telnet`'s `\r\n`
/// works. The buffer works on bytes: a multi-byte UTF-8 character split
/// across two reads stays whole, because nothing is handed out before its
/// `\n`. Checking UTF-8 is the caller's job.
///
/// **The limit.** A line may hold `max_line` bytes (not counting `\n` and
/// `\r`). A longer line is never buffered whole: as soon as an unterminated
/// line passes the limit its bytes are dropped, [`Line::TooLong`] is reported
/// once, in order, and everything up to and including the next `\n` is
/// discarded; the line after it is read normally. These are tokio-util
/// `LinesCodec::new_with_max_length` semantics: the client stays connected
/// (the chat room answers `! line too long`). So a peer sending 10 MiB
/// without a newline costs at most `max_line + 1 + read_chunk` bytes of
/// buffer, provided the caller drains lines after each read, as below.
///
/// **Reading without a copy.** [`spare`](LineBuffer::spare) returns the free
/// space to `read` into (never empty: the limit is enforced before it could
/// fill up, so a `read` into a zero-length slice — and its `0`, mistaken for
/// EOF — cannot happen), and [`filled`](LineBuffer::filled) says how much was
/// read. [`push`](LineBuffer::push) copies from a slice instead.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use reactor::codec::{Line, LineBuffer};
///
/// let (mut client, mut server) = UnixStream::pair()?;
/// client.write_all("alice: 你好\r\nbob: hi\nunfin".as_bytes())?;
///
/// let mut lines = LineBuffer::new(4096);
/// let n = server.read(lines.spare())?;
/// lines.filled(n);
/// let mut got = Vec::new();
/// while let Some(line) = lines.next_line() {
///     match line {
///         Line::Complete(bytes) => got.push(String::from_utf8_lossy(bytes).into_owned()),
///         Line::TooLong => got.push("! line too long".to_owned()),
///     }
/// }
/// assert_eq!(got, ["alice: 你好", "bob: hi"]);
/// assert_eq!(lines.pending(), 5); // "unfin" waits for its newline
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Python: `buf += c.recv(4096)`, then `while b'\n' in buf: line, buf = buf.split(b'\n', 1)`
#[derive(Clone, Debug)]
pub struct LineBuffer {
    /// Storage; `buf[head..end]` holds data, the rest is space to read into.
    buf: Vec<u8>,
    /// Start of the data not yet handed out.
    head: usize,
    /// Start of the unterminated last line: `buf[head..tail]` is complete lines.
    tail: usize,
    /// End of the data.
    end: usize,
    /// Positions in `buf` where an over-long line was dropped, in order.
    too_long: VecDeque<usize>,
    /// Dropping input up to the next `\n`, after an over-long line.
    discarding: bool,
    /// Longest line accepted, not counting `\n` and one `\r`.
    max_line: usize,
    /// Size of the slice [`spare`](LineBuffer::spare) returns.
    read_chunk: usize,
}

impl LineBuffer {
    /// An empty buffer accepting lines of up to `max_line` bytes, reading
    /// 4096 bytes at a time.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::LineBuffer;
    ///
    /// let lines = LineBuffer::new(4096);
    /// assert_eq!(lines.max_line(), 4096);
    /// ```
    ///
    /// Python: `buf = b''`
    pub fn new(max_line: usize) -> LineBuffer {
        LineBuffer::with_read_chunk(max_line, DEFAULT_READ_CHUNK)
    }

    /// An empty buffer whose [`spare`](LineBuffer::spare) offers `read_chunk`
    /// bytes (at least 1) per read.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::LineBuffer;
    ///
    /// let mut lines = LineBuffer::with_read_chunk(80, 512);
    /// assert_eq!(lines.spare().len(), 512);
    /// ```
    ///
    /// Python: `c.recv(512)`
    pub fn with_read_chunk(max_line: usize, read_chunk: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            head: 0,
            tail: 0,
            end: 0,
            too_long: VecDeque::new(),
            discarding: false,
            max_line,
            read_chunk: read_chunk.max(1),
        }
    }

    /// The longest line accepted, in bytes, not counting `\n` and `\r`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::LineBuffer;
    ///
    /// assert_eq!(LineBuffer::new(10).max_line(), 10);
    /// ```
    ///
    /// Python: `MAX_LINE`
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// How many received bytes wait in the buffer (complete lines not yet
    /// taken, and the unterminated last line).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::LineBuffer;
    ///
    /// let mut lines = LineBuffer::new(10);
    /// lines.push(b"ab\ncd");
    /// assert_eq!(lines.pending(), 5);
    /// ```
    ///
    /// Python: `len(buf)`
    pub fn pending(&self) -> usize {
        self.end - self.head
    }

    /// The buffer's allocated size in bytes, to check that it stays bounded.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::LineBuffer;
    ///
    /// let mut lines = LineBuffer::with_read_chunk(100, 1000);
    /// lines.push(&[b'x'; 1_000_000]);
    /// assert!(lines.capacity() <= 100 + 2 + 1000);
    /// ```
    ///
    /// Python: `sys.getsizeof(buf)`
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Free space to read into: `read_chunk` bytes, never zero.
    ///
    /// Read into it, then call [`filled`](LineBuffer::filled) with the count
    /// read. The buffer makes room first by moving the data left over from
    /// taken lines to the front.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::{Line, LineBuffer};
    ///
    /// let mut lines = LineBuffer::new(100);
    /// let spare = lines.spare();
    /// spare[..3].copy_from_slice(b"hi\n");
    /// lines.filled(3);
    /// assert_eq!(lines.next_line(), Some(Line::Complete(b"hi")));
    /// ```
    ///
    /// Python: `data = c.recv(4096)`
    pub fn spare(&mut self) -> &mut [u8] {
        // Move what is left to the front rather than grow (free when
        // everything was taken).
        if self.head > 0 && (self.head == self.end || self.end + self.read_chunk > self.buf.len()) {
            self.buf.copy_within(self.head..self.end, 0);
            let shift = self.head;
            self.head = 0;
            self.tail -= shift;
            self.end -= shift;
            for at in &mut self.too_long {
                *at -= shift;
            }
        }
        let want = self.end + self.read_chunk;
        if self.buf.len() < want {
            self.buf.reserve_exact(want - self.buf.len());
            self.buf.resize(want, 0);
        }
        &mut self.buf[self.end..want]
    }

    /// Records that `n` bytes were read into [`spare`](LineBuffer::spare).
    ///
    /// Scans them for line ends and enforces the limit. `n` larger than the
    /// spare space is clamped; `0` (EOF) does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::LineBuffer;
    ///
    /// let mut lines = LineBuffer::new(100);
    /// lines.spare()[0] = b'x';
    /// lines.filled(1);
    /// assert_eq!(lines.pending(), 1);
    /// ```
    ///
    /// Python: `buf += data`
    pub fn filled(&mut self, n: usize) {
        let start = self.end;
        self.end += n.min(self.buf.len() - self.end);
        self.absorb(start);
    }

    /// Copies received bytes in, a read chunk at a time, so that even one
    /// huge push never buffers more than the limit allows.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::{Line, LineBuffer};
    ///
    /// let mut lines = LineBuffer::new(100);
    /// lines.push(b"one\ntw");
    /// lines.push(b"o\n");
    /// assert_eq!(lines.next_line(), Some(Line::Complete(b"one")));
    /// assert_eq!(lines.next_line(), Some(Line::Complete(b"two")));
    /// assert_eq!(lines.next_line(), None);
    /// ```
    ///
    /// Python: `buf += data`
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
    }

    /// Takes the next complete line, or the report of a dropped over-long
    /// one; `None` when no complete line is buffered.
    ///
    /// Call it until `None` after each read: lines not taken stay buffered.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::{Line, LineBuffer};
    ///
    /// let mut lines = LineBuffer::new(3);
    /// lines.push(b"abc\r\nabcd\nok\n");
    /// assert_eq!(lines.next_line(), Some(Line::Complete(b"abc")));
    /// assert_eq!(lines.next_line(), Some(Line::TooLong));
    /// assert_eq!(lines.next_line(), Some(Line::Complete(b"ok")));
    /// assert_eq!(lines.next_line(), None);
    /// ```
    ///
    /// Python: `line, buf = buf.split(b'\n', 1)`
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        if self.too_long.front() == Some(&self.head) {
            self.too_long.pop_front();
            return Some(Line::TooLong);
        }
        if self.head == self.tail {
            return None;
        }
        // buf[head..tail] is whole lines, so a '\n' is there.
        let rest = &self.buf[self.head..self.tail];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(rest.len() - 1);
        let start = self.head;
        self.head += len + 1;
        let mut line = &self.buf[start..start + len];
        if let [text @ .., b'\r'] = line {
            line = text;
        }
        if line.len() > self.max_line {
            // Completed within one read, so it never grew past the limit
            // unseen; drop it here.
            return Some(Line::TooLong);
        }
        Some(Line::Complete(line))
    }

    /// Like [`next_line`](LineBuffer::next_line), for when the peer has
    /// closed: once no complete line is left, the unterminated last line (if
    /// any) is taken as a line too.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::{Line, LineBuffer};
    ///
    /// let mut lines = LineBuffer::new(100);
    /// lines.push(b"last words");
    /// assert_eq!(lines.next_line(), None);
    /// assert_eq!(lines.next_line_at_eof(), Some(Line::Complete(b"last words")));
    /// assert_eq!(lines.next_line_at_eof(), None);
    /// ```
    ///
    /// Python: `if buf: handle(buf)` after `recv` returned `b''`
    pub fn next_line_at_eof(&mut self) -> Option<Line<'_>> {
        if self.head == self.tail && self.too_long.is_empty() && self.tail < self.end {
            // Make the tail a complete line, as if the '\n' had come.
            self.tail = self.end;
            let start = self.head;
            self.head = self.end;
            let mut line = &self.buf[start..self.end];
            if let [text @ .., b'\r'] = line {
                line = text;
            }
            return Some(Line::Complete(line));
        }
        self.next_line()
    }

    /// Scans the bytes from `start` to `end`, just received.
    ///
    /// Three things can happen to them. While discarding (after an over-long
    /// line) they are dropped up to and including the first `\n`. Then the
    /// last `\n` among them moves `tail`: everything before it is complete
    /// lines. Finally, if the unterminated line after it is already longer
    /// than a line may be, it is dropped, and discarding starts. That last
    /// check is what keeps the buffer bounded: the tail never exceeds
    /// `max_line + 1` bytes (the `+ 1` for a `\r` whose `\n` is yet to come)
    /// between reads.
    fn absorb(&mut self, mut start: usize) {
        if self.discarding {
            match self.buf[start..self.end].iter().position(|&b| b == b'\n') {
                None => {
                    self.end = start;
                    return;
                }
                Some(i) => {
                    self.buf.copy_within(start + i + 1..self.end, start);
                    self.end -= i + 1;
                    self.discarding = false;
                }
            }
        }
        if let Some(i) = self.buf[start..self.end].iter().rposition(|&b| b == b'\n') {
            self.tail = start + i + 1;
        }
        start = self.tail;
        let partial = self.end - start;
        let over = partial > self.max_line.saturating_add(1)
            || (partial == self.max_line.saturating_add(1) && self.buf[self.end - 1] != b'\r');
        if over {
            self.end = start;
            self.too_long.push_back(start);
            self.discarding = true;
        }
    }
}
