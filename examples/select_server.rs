//! The course's server loop on `select(2)`: the `Reactor` with the select
//! backend.
//!
//! ```text
//! cargo run --example select_server -- --addr 127.0.0.1:8888
//! nc 127.0.0.1 8888          # type a line: the server prints it and answers 收到了
//! RUST_LOG=reactor=trace cargo run --example select_server  # every select(2) call, narrated
//! ```
//!
//! The course introduces `select` first (section 1 of its IO-multiplexing
//! notes) and shows the full server with `poll()`; written with
//! `select.select` the same loop, bug included, reads:
//!
//! ```python
//! from socket import *
//! from select import select
//! sockfd = socket()
//! sockfd.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
//! sockfd.bind(('0.0.0.0', 8888))
//! sockfd.listen(5)
//! rlist = [sockfd]                          # the fds to watch for reading
//!
//! while True:
//!     rs, ws, xs = select(rlist, [], [])
//!     for r in rs:
//!         if r is sockfd:
//!             connfd, addr = r.accept()
//!             print('Connect from', addr)
//!             rlist.append(connfd)
//!         else:
//!             data = r.recv(1024)
//!             if not data:
//!                 rlist.remove(r)
//!                 r.close()
//!             print('Receive:', data.decode())
//!             r.send('收到了'.encode())     # ← the bug: sends on a closed socket
//! ```
//!
//! **The bugs, and the fixes.** As in `poll_server.py`, a client that
//! disconnects is closed and then sent `收到了` anyway (`OSError: Bad file
//! descriptor` kills the server). Here the handler either replies or closes,
//! never both, and a closed client is out of the `Reactor` for good
//! (generation-checked tokens). Second, `select` can only watch descriptors
//! below `FD_SETSIZE` (1024): Python raises `ValueError: filedescriptor out
//! of range in select()` from the *loop*, taking every client down with it.
//! Here registering such a connection fails with a typed error
//! (`Error::FdTooLarge`); the shared loop prints `Disconnect <peer>` for it,
//! closes it, and keeps serving the others. Use `--backend poll` or `epoll`
//! for more than about a thousand clients.
//!
//! Also fixed, as in the other two: split UTF-8 held until complete,
//! non-blocking sockets with queued replies and backpressure, no `EMFILE`
//! spin, graceful SIGINT/SIGTERM (exit 0).
//!
//! The loop is below, in this file; the steps it calls are in
//! `servers/src/course_server.rs`. `select_server`, `poll_server` and
//! `epoll_server` have the same loop but for the backend — diff them.

use clap::Parser;
use reactor::{Acceptor, Backend, Events};
use servers::course_server::{self, Source};
use servers::server;
use servers::{cli, stdout};

/// The course's select server: prints what clients send and answers 收到了.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: cli::NetArgs,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Select);
    cli::init_logging();
    let backend = cli.net.backend.choose(Backend::Select);
    // sockfd.bind(…); sockfd.listen(…); rlist = [sockfd]; p.register(sockfd, POLLIN)
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
