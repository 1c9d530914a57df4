//! The responses to one read's requests, gathered to go out together.
//!
//! A client that pipelines 16 requests gets them read in one `read`; the
//! 16 responses are built here — heads and small bodies copied into one
//! buffer, larger in-memory bodies borrowed from the file cache as they are
//! — and handed to the connection's [`WriteQueue`] as one list of pieces:
//! one `writev` for the lot, and only what the socket refuses is copied.

use std::io::IoSlice;
use std::net::TcpStream;
use std::ops::Range;
use std::rc::Rc;

use reactor::WriteQueue;

/// Bodies shorter than this are copied into the batch; longer ones are
/// their own `writev` piece.
const COPY_BELOW: usize = 1024;

/// One piece of the batch, in order.
#[derive(Debug)]
enum Piece {
    /// Bytes of the batch's own buffer.
    Own(Range<usize>),
    /// Part of a cached file's contents.
    Shared(Rc<[u8]>, Range<usize>),
}

/// Responses waiting to be written, in order.
#[derive(Debug, Default)]
pub struct Batch {
    /// Heads and small bodies.
    buf: Vec<u8>,
    /// The pieces, in order.
    pieces: Vec<Piece>,
    /// Bytes of `buf` already covered by a piece.
    sealed: usize,
    /// Total bytes, all pieces.
    len: usize,
}

impl Batch {
    /// The buffer heads are written into.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Adds `body[range]` after what is in the buffer.
    pub fn body(&mut self, body: &Rc<[u8]>, range: Range<usize>) {
        if range.len() < COPY_BELOW {
            self.buf.extend_from_slice(&body[range]);
            return;
        }
        self.seal();
        self.len += range.len();
        self.pieces.push(Piece::Shared(body.clone(), range));
    }

    /// Bytes gathered so far.
    pub fn len(&self) -> usize {
        self.len + (self.buf.len() - self.sealed)
    }

    /// Whether nothing is gathered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the current run of buffer bytes into a piece.
    fn seal(&mut self) {
        if self.buf.len() > self.sealed {
            self.len += self.buf.len() - self.sealed;
            self.pieces.push(Piece::Own(self.sealed..self.buf.len()));
            self.sealed = self.buf.len();
        }
    }

    /// Hands everything to `queue` for `stream` (written at once as far as
    /// the socket takes it, the rest queued), and empties the batch.
    ///
    /// # Errors
    ///
    /// The write failed: the connection is broken.
    pub fn send(
        &mut self,
        queue: &mut WriteQueue,
        stream: &mut TcpStream,
    ) -> reactor::Result<usize> {
        self.seal();
        let mut sent = 0;
        let mut result = Ok(());
        for chunk in self.pieces.chunks(64) {
            let mut slices = [IoSlice::new(&[]); 64];
            for (slot, piece) in slices.iter_mut().zip(chunk) {
                *slot = IoSlice::new(match piece {
                    Piece::Own(range) => &self.buf[range.clone()],
                    Piece::Shared(body, range) => &body[range.clone()],
                });
            }
            match queue.send_vectored(stream, &slices[..chunk.len()]) {
                Ok(n) => sent += n,
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        self.clear();
        result.map(|()| sent)
    }

    /// Forgets everything gathered.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pieces.clear();
        self.sealed = 0;
        self.len = 0;
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn heads_and_bodies_arrive_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let big: Rc<[u8]> = vec![b'x'; 5000].into();
        let small: Rc<[u8]> = b"hello\n"[..].into();
        let mut batch = Batch::default();
        batch.buf().extend_from_slice(b"H1|");
        batch.body(&big, 10..4010);
        batch.buf().extend_from_slice(b"|H2|");
        batch.body(&small, 0..6);
        batch.buf().extend_from_slice(b"|H3");
        assert_eq!(batch.len(), 3 + 4000 + 4 + 6 + 3);
        let mut queue = WriteQueue::new();
        assert_eq!(batch.send(&mut queue, &mut server).unwrap(), 4016);
        assert!(batch.is_empty());
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        let expected = [&b"H1|"[..], &[b'x'; 4000], b"|H2|hello\n|H3"].concat();
        assert_eq!(got, expected);
    }
}
