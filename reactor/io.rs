//! Buffering between a program and its sockets: what `write` did not take.
//!
//! A non-blocking socket takes as many bytes as its send buffer has room
//! for, and no more: `send` returns a count, and the course's servers
//! (`c.send(data)`) quietly assume it is always all of them. A real server
//! keeps the rest and sends it when the socket is writable again, in order,
//! without letting one slow reader make it hold unbounded memory.
//! [`WriteQueue`] is that piece, once, for every server in this crate: the
//! output side of libevent's `bufferevent`.

mod write_queue;

pub use write_queue::WriteQueue;
