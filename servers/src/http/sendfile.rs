//! A large file's body, sent with `sendfile(2)` as the socket takes it.
//!
//! `sendfile(out, in, &offset, count)` moves file pages to a socket inside
//! the kernel: the file is never read into this process, so a 1 GiB
//! download costs no memory here, and a slow reader costs only the socket's
//! own buffer. With a non-blocking socket it returns as soon as the socket
//! buffer is full; the rest waits for the next writable event, while the
//! loop serves everyone else. Each call passes its own offset, so the file
//! position is never used and one open descriptor serves any number of
//! connections at once.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

/// Most bytes handed to the kernel in one turn for one connection: past
/// it the connection waits for the next turn, so one fast reader of a huge
/// file cannot starve the others.
const TURN_BUDGET: u64 = 4 * 1024 * 1024;

/// The part of a file still to send.
#[derive(Debug)]
pub struct FileBody {
    /// The open file (shared with the cache and other connections).
    file: Rc<File>,
    /// Next byte to send.
    offset: u64,
    /// One past the last byte to send.
    end: u64,
}

impl FileBody {
    /// Bytes `start..end` of `file`.
    pub fn new(file: Rc<File>, start: u64, end: u64) -> FileBody {
        FileBody {
            file,
            offset: start,
            end,
        }
    }

    /// Whether everything has been sent.
    pub fn is_done(&self) -> bool {
        self.offset >= self.end
    }

    /// Sends what the socket `out` takes, up to one turn's budget; returns
    /// the bytes sent. `EAGAIN` and a short count end the call as normal flow.
    ///
    /// # Errors
    ///
    /// The socket failed (a reset peer), or the file ended before the
    /// promised length (truncated while being served: the response can no
    /// longer be completed, and the connection must close).
    pub fn send(&mut self, out: RawFd) -> io::Result<u64> {
        let mut sent = 0;
        while !self.is_done() && sent < TURN_BUDGET {
            let count = (self.end - self.offset).min(TURN_BUDGET - sent);
            match sendfile(out, self.file.as_raw_fd(), &mut self.offset, count) {
                Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "file truncated")),
                Ok(n) => {
                    sent += n;
                    if n < count {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        log::trace!(
            "sendfile(fd={out}) sent {sent}, {} left",
            self.end - self.offset
        );
        Ok(sent)
    }
}

/// One `sendfile(2)` call: up to `count` bytes of `file` from `*offset` to
/// `out`; `*offset` moves past what was sent.
fn sendfile(out: RawFd, file: RawFd, offset: &mut u64, count: u64) -> io::Result<u64> {
    let mut off = libc::off_t::try_from(*offset).map_err(|_| ErrorKind::InvalidInput)?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    // SAFETY: both descriptors are open (the caller owns them for the
    // call's duration) and `off` is a live off_t the kernel may update.
    let n = unsafe { libc::sendfile(out, file, &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = off as u64;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_body_goes_out_in_pieces_as_the_reader_reads() {
        let path = std::env::temp_dir().join(format!("sendfile-test-{}", std::process::id()));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        File::create(&path).unwrap().write_all(&data).unwrap();
        let file = Rc::new(File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut body = FileBody::new(file, 100, 2_900_000);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        let mut calls = 0;
        while !body.is_done() {
            body.send(ours.as_raw_fd()).unwrap();
            calls += 1;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(ours);
        assert!(calls > 1, "a socket buffer cannot hold 2.9 MB");
        assert_eq!(reader.join().unwrap(), &data[100..2_900_000]);
    }
}
