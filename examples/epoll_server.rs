//! The course's `epoll_server.py`, on the `Reactor` with the epoll backend.
//!
//! ```text
//! cargo run --example epoll_server -- --addr 127.0.0.1:8888
//! nc 127.0.0.1 8888          # type a line: the server prints it and answers 收到了
//! RUST_LOG=reactor=trace cargo run --example epoll_server   # every system call, narrated
//! ```
//!
//! The Python it mirrors (from the course notes, abridged):
//!
//! ```python
//! s = socket(); s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
//! s.bind(('0.0.0.0', 8888)); s.listen(5)
//! ep = select.epoll()
//! ep.register(s, EPOLLIN | EPOLLERR)
//! fdmap = {s.fileno(): s}
//! while True:
//!     events = ep.poll()
//!     for fd, event in events:
//!         if fd == s.fileno():
//!             c, addr = fdmap[fd].accept()
//!             print("Connect from", addr)
//!             ep.register(c, EPOLLIN | EPOLLHUP)
//!             fdmap[c.fileno()] = c
//!         elif event & EPOLLIN:
//!             data = fdmap[fd].recv(1024)
//!             if not data:
//!                 ep.unregister(fd)
//!                 fdmap[fd].close()
//!                 del fdmap[fd]
//!             print("Receive:", data.decode())
//!             fdmap[fd].send('收到了'.encode())   # ← the bug
//! ```
//!
//! **The bug, and the fix.** On end of file the Python unregisters, closes
//! and deletes the client, then falls through to `fdmap[fd].send(…)`: the
//! key was just deleted, so that raises `KeyError` every time and the
//! server dies at the first disconnect. (The subtler classic, a reply sent
//! to someone else, needs the fd number reused by an `accept` between two
//! events of one `poll()` result: an fd-keyed dict cannot tell the two
//! clients apart.) Here closing returns from the
//! handler, and the client lives inside the `Reactor`, whose generation-
//! checked tokens make an event for a closed client unreachable.
//!
//! Also fixed: the Python blocks in `accept`/`send`; here every socket is
//! non-blocking, replies a slow client has not read are queued (and reading
//! from it pauses while the queue is full), `EMFILE` on accept does not spin,
//! and SIGINT/SIGTERM stop the server cleanly with exit status 0.
//!
//! The loop is below, in this file; the steps it calls are in
//! `servers/src/course_server.rs`. `select_server`, `poll_server` and
//! `epoll_server` have the same loop but for the backend — diff them.

use clap::Parser;
use reactor::{Acceptor, Backend, Events};
use servers::course_server::{self, Source};
use servers::server;
use servers::{cli, stdout};

/// The course's epoll server: prints what clients send and answers 收到了.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: cli::NetArgs,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.net.backend.choose(Backend::Epoll);
    // sockfd.bind(…); sockfd.listen(…); ep = epoll(); p.register(sockfd, POLLIN)
    // Printing never blocks the loop: see servers::stdout.
    stdout::install();
    let (mut reactor, listen) = server::start(&cli.net.addr, backend);
    let mut acceptor = Acceptor::new();
    let mut events = Events::with_capacity(1024);
    loop {
        // events = p.poll()
        if let Err(err) = reactor.poll(&mut events, None) {
            cli::fail(err);
        }
        // for fd, event in events:
        for event in &events {
            let token = event.token();
            match reactor.get_mut(token) {
                // Stale: this client was closed earlier in the same batch.
                None => {}
                // if fd == sockfd.fileno(): connfd, addr = fdmap[fd].accept()
                Some(Source::Listener(_)) => {
                    course_server::accept(&mut reactor, listen, &mut acceptor)
                }
                // Ctrl-C or SIGTERM: close every client, exit 0.
                Some(Source::Stop(signals)) => {
                    if !server::stop_requested(signals) {
                        continue; // a spurious wake-up of the signal pipe
                    }
                    course_server::shut_down(&mut reactor);
                    stdout::finish();
                    return;
                }
                // stdout takes more of what waits for it.
                Some(Source::Stdout(_)) => stdout::on_writable(),
                // elif event & POLLIN: data = fdmap[fd].recv(1024) …
                // Either reply or close, never both (the course's bug).
                Some(Source::Conn(client)) => {
                    let next = course_server::serve(client, event);
                    course_server::update(&mut reactor, token, next);
                }
            }
        }
        stdout::watch(&mut reactor, Source::Stdout);
    }
}
