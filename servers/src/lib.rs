//! The layer under `reactor`'s example servers: what two or more examples
//! share, written once, so that each example's `main` is short enough to
//! read next to the Python it mirrors.
//!
//! | module | used by |
//! |---|---|
//! | [`cli`] | every server: `--addr`, `--backend`, the `listening on` line, stop signals |
//! | [`course_server`] | `select_server`, `poll_server`, `epoll_server` |
//! | [`echo_engine`] | `echo`, `prefork_echo`'s workers, the echo benchmark |
//! | [`chat`] | `epoll_chat` (and its tests, for the name rules) |
//! | [`prefork`] | `prefork_echo`, `http_server --workers N` |
//! | [`http`] | `http_server` |
//! | [`records`] | `struct_send`, `struct_recv` |
//! | [`server`] | every server with a listener: `Source`, the accept loop |
//! | [`stdout`] | the servers that print per message: stdout that never blocks |
//! | [`escape`] | the same servers: client text printed as Python's `repr` shows it |
//! | [`net`] | `proxy`: a TCP connect that does not wait for the handshake |
//! | [`relay`] | `proxy` and the benchmark's mio proxy: one direction's buffer, backpressure, half-close |
//!
//! It is a package of its own (`publish = false`) rather than a module each
//! example includes, so that every piece is compiled once and an unused one
//! is a warning, not a `dead_code` allowance.

pub mod chat;
pub mod cli;
pub mod course_server;
pub mod echo_engine;
pub mod escape;
pub mod http;
pub mod net;
pub mod prefork;
pub mod records;
pub mod relay;
pub mod server;
pub mod stdout;
