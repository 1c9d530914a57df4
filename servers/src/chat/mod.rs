//! The course's group chat room (群聊聊天室) as a real server.
//!
//! ```text
//! cargo run --example epoll_chat                      # 127.0.0.1:8888, epoll
//! cargo run --example chat_client -- --addr 127.0.0.1:8888
//! nc 127.0.0.1 8888                                    # or any line-based client
//! ```
//!
//! Type a name, then lines; lines typed on the server's own terminal go to
//! everyone as `[admin] …`. The protocol, a transcript and the design are in
//! `docs/chat.md`.
//!
//! **The course's design, and this one.** The homework keeps a user table
//! `{name: address}`, forwards client → server → other clients, and — to
//! read from the keyboard and the network at once — forks: one process
//! blocks on `input()`, the other on `recv`. The server, too, needs a
//! second process for the administrator's announcements. Here one process
//! and one `Reactor` do it all: the listener, every client, the
//! administrator's stdin and the stop signals are all descriptors in the
//! same poll set, and each is served when it is ready. Nothing ever blocks,
//! so one slow member cannot stall the room: its lines wait in its own
//! bounded queue, and it is dropped when that fills.
//!
//! | file | idea |
//! |---|---|
//! | `server.rs` | the event loop: accept, read lines, broadcast, drop the slow |
//! | `names.rs` | which names are valid, and when two collide |
//! | `protocol.rs` | every line the server sends; cleaning message text |
//! | `room.rs` | members in join order, names taken |
//! | `client.rs` | one connection's state |
//! | `queue.rs` | a member's bounded queue of unsent bytes |
//! | `telnet.rs` | telnet's option negotiation, stripped and refused |

mod client;
pub mod names;
pub mod protocol;
pub mod queue;
mod room;
mod server;
pub mod telnet;

pub use server::{Config, serve};
