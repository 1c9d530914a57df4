//! [`Relay`]: one direction of a proxy, the bytes read from one socket and
//! not yet written to the other, with backpressure and half-close.
//!
//! It knows nothing of event loops: `examples/proxy.rs` (on `reactor`) and
//! the benchmark's mio proxy both pump through it, so that what differs
//! between the two programs is the event-loop API alone.

use std::io::{self, ErrorKind, Read, Write};
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

/// The bytes read from one side and not yet written to the other, at most
/// the capacity given to [`Relay::new`], and whether that side's end of
/// file has been read and passed on.
#[derive(Debug)]
pub struct Relay {
    /// Read and not yet written: `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source sent its end of file...
    eof: bool,
    /// ...and it was passed on as `shutdown(SHUT_WR)` of the destination.
    shut: bool,
}

impl Relay {
    /// An empty relay that holds at most `capacity` bytes (at least one).
    ///
    /// # Examples
    ///
    /// ```
    /// let relay = servers::relay::Relay::new(64 * 1024);
    /// assert!(relay.wants_read() && !relay.wants_write() && !relay.done());
    /// ```
    pub fn new(capacity: usize) -> Relay {
        Relay {
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }

    /// Whether the source should be read: no end of file yet, and room.
    pub fn wants_read(&self) -> bool {
        !self.eof && self.end < self.buf.len()
    }

    /// Whether the destination should be written: bytes wait, or an end
    /// of file not passed on yet.
    pub fn wants_write(&self) -> bool {
        self.start < self.end || (self.eof && !self.shut)
    }

    /// Whether this direction is over: end of file read and passed on.
    pub fn done(&self) -> bool {
        self.shut
    }

    /// Moves what it can: reads `from` while there is room, writes `to`
    /// while it takes bytes, until neither moves (`WouldBlock`). Once the
    /// end of file is read and every byte written, shuts `to`'s writing
    /// half (not while `to` is still connecting: that would abort the
    /// connect). Returns whether a byte moved.
    ///
    /// # Errors
    ///
    /// A read, write or shutdown failing other than with `WouldBlock`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use servers::relay::Relay;
    ///
    /// let ((mut client, mut from), (mut to, mut server)) = (UnixStream::pair()?, UnixStream::pair()?);
    /// from.set_nonblocking(true)?;
    /// let mut relay = Relay::new(16);
    /// client.write_all(b"hello")?;
    /// drop(client); // end of file
    /// assert!(relay.pump(&mut from, &mut to)?);
    /// assert!(relay.done()); // passed on as shutdown(SHUT_WR)
    /// let mut got = String::new();
    /// server.read_to_string(&mut got)?;
    /// assert_eq!(got, "hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pump(&mut self, from: &mut impl Read, to: &mut (impl Write + AsFd)) -> io::Result<bool> {
        let mut moved = false;
        loop {
            let mut progress = false;
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            }
            if self.wants_read() {
                match from.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => (self.end, progress) = (self.end + n, true),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if self.start < self.end {
                match to.write(&self.buf[self.start..self.end]) {
                    Ok(n) => (self.start, progress) = (self.start + n, true),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            moved |= progress;
            if !progress {
                break;
            }
        }
        if self.eof && self.start == self.end && !self.shut {
            self.shut = shut_write(to)?;
        }
        Ok(moved)
    }
}

/// `shutdown(SHUT_WR)` on a connected socket; `Ok(false)`, doing nothing,
/// while it is not connected yet (`getpeername` says `ENOTCONN`).
fn shut_write(socket: &impl AsFd) -> io::Result<bool> {
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: all-zero bytes are a valid sockaddr_storage (plain integers).
    let mut peer: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `peer` has room for `len` bytes; the kernel writes at most that.
    if unsafe { libc::getpeername(fd, (&raw mut peer).cast(), &mut len) } == -1 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOTCONN) => Ok(false),
            _ => Err(err),
        };
    }
    // SAFETY: shutdown takes two integers; the fd is the caller's socket.
    if unsafe { libc::shutdown(fd, libc::SHUT_WR) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}
