//! One connection's state, kept in the `Reactor` beside its socket.
//!
//! A connection goes through three states:
//!
//! ```text
//!   accept ──▶ Naming ──valid, free name──▶ Member ──error, too slow──▶ gone
//!                │  ▲ invalid / taken name     │
//!                │  └───────────────────────────┘ (stays Naming)
//!                ├──login timeout──▶ Closing ──queue flushed (or 1 s)──▶ gone
//!                └──error──▶ gone (nobody is told: it never joined)
//!   Naming or Member ──/quit, EOF──▶ Closing (out of the room at once)
//!   any state ──SIGINT/SIGTERM──▶ Closing
//! ```
//!
//! `Closing` sends what is queued (`! login timeout`, `* server shutting
//! down`) before the socket is shut down and closed, within a bound.

use std::net::{SocketAddr, TcpStream};

use reactor::codec::LineBuffer;
use reactor::{Interest, TimerId};

use super::queue::OutQueue;
use super::telnet::Telnet;

/// Where a connection is in its life.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    /// Connected, no valid name yet; the timer is the login deadline (set
    /// right after the connection enters the reactor).
    Naming { timer: Option<TimerId> },
    /// Logged in (the name lives in the `Room`).
    Member,
    /// Flushing its last lines before closing; the timer bounds the wait
    /// (`None` during shutdown, which has one deadline for everyone).
    Closing { timer: Option<TimerId> },
}

/// A connected client.
#[derive(Debug)]
pub struct Client {
    /// The socket (non-blocking).
    pub stream: TcpStream,
    /// Who it is, for the log.
    pub peer: SocketAddr,
    /// Received bytes, split into lines (`None` while being handled).
    pub lines: Option<LineBuffer>,
    /// Lines to send.
    pub queue: OutQueue,
    /// Naming, member or closing.
    pub state: State,
    /// Where its input is in telnet's grammar (a command may be split
    /// across reads).
    pub telnet: Telnet,
    /// What the reactor watches it for now (writable only while the queue
    /// is not empty: an idle writable interest would wake the loop forever).
    pub watching: Interest,
    /// Already in the list of queues to flush at the end of this turn.
    pub dirty: bool,
    /// To be dropped at the end of this turn (too slow, or a failed
    /// write): nothing more is queued for it.
    pub doomed: bool,
}

impl Client {
    /// A fresh connection in the `Naming` state.
    pub fn new(stream: TcpStream, peer: SocketAddr, max_line: usize, max_queue: usize) -> Client {
        Client {
            stream,
            peer,
            lines: Some(LineBuffer::new(max_line)),
            queue: OutQueue::new(max_queue),
            state: State::Naming { timer: None },
            telnet: Telnet::default(),
            watching: Interest::READABLE,
            dirty: false,
            doomed: false,
        }
    }
}
