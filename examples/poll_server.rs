//! The course's `poll_server.py`, on the `Reactor` with the poll backend.
//!
//! ```text
//! cargo run --example poll_server -- --addr 127.0.0.1:8888
//! nc 127.0.0.1 8888          # type a line: the server prints it and answers 收到了
//! RUST_LOG=reactor=trace cargo run --example poll_server   # every poll(2) call, narrated
//! ```
//!
//! The Python it mirrors (from the course notes, as written — `Cinnect` typo
//! included; this version prints `Connect from`):
//!
//! ```python
//! from socket import *
//! from select import *
//! sockfd = socket()
//! sockfd.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
//! sockfd.bind(('0.0.0.0', 8888))
//! sockfd.listen(5)
//!
//! p = poll()                              # 创建poll对象
//! fdmap = {sockfd.fileno(): sockfd}       # 建立查找字典
//! p.register(sockfd, POLLIN | POLLERR)    # 注册要关注的IO
//!
//! while True:
//!     print('阻塞等待IO')
//!     events = p.poll()
//!     for fd, event in events:
//!         if fd == sockfd.fileno():
//!             connfd, addr = fdmap[fd].accept()
//!             print('Cinnect from', addr)
//!             p.register(connfd, POLLIN | POLLHUP)
//!             fdmap[connfd.fileno()] = connfd
//!         elif event & POLLIN:
//!             data = fdmap[fd].recv(1024)
//!             if not data:
//!                 p.unregister(fd)
//!                 fdmap[fd].close()
//!                 del fdmap[fd]
//!             print('Receive:', data.decode())
//!             fdmap[fd].send('收到了'.encode())   # ← the bug
//! ```
//!
//! **The bug, and the fix.** When a client disconnects, `recv` returns
//! `b''`; the Python unregisters the socket, closes it and deletes it from
//! `fdmap` — and then carries on to `print('Receive:', …)` and
//! `fdmap[fd].send(…)` on the key it has just deleted: a `KeyError` every
//! time, which kills the server at the first disconnect. (A reply sent to
//! the wrong person is the other classic; it needs the fd number reused by
//! an `accept` between two events of one `poll()` result.) Here the
//! handler decides *either* "reply" *or* "close" (`Next::Keep` / `Next::Close`
//! in `servers/src/course_server.rs`); closing removes the client from the
//! `Reactor`, whose generation-checked tokens make any later event for it
//! unreachable, and prints `Disconnect <peer>` instead of an empty `Receive:`.
//!
//! Also fixed: `recv(1024).decode()` raises on a multi-byte character split
//! between two reads — here an incomplete character is held until the rest
//! arrives, and invalid bytes print as `�`; `accept`/`send` block in the
//! Python, here every socket is non-blocking and unread replies are queued
//! (with backpressure); `EMFILE` on accept does not spin; SIGINT/SIGTERM stop
//! the server with exit status 0. The `阻塞等待IO` ("waiting for IO") line is
//! not printed: `RUST_LOG=reactor=trace` shows every wait instead.
//!
//! The loop is below, in this file; the steps it calls are in
//! `servers/src/course_server.rs`. `select_server`, `poll_server` and
//! `epoll_server` have the same loop but for the backend — diff them.

use clap::Parser;
use reactor::{Acceptor, Backend, Events};
use servers::course_server::{self, Source};
use servers::server;
use servers::{cli, stdout};

/// The course's poll server: prints what clients send and answers 收到了.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: cli::NetArgs,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Poll);
    cli::init_logging();
    let backend = cli.net.backend.choose(Backend::Poll);
    // sockfd.bind(…); sockfd.listen(…); p = poll(); p.register(sockfd, POLLIN)
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
