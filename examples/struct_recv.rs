//! The course's `struct_recv.py`: receives fixed-size records packed with
//! Python's `struct` module and prints each one as Python prints the tuple.
//!
//! ```text
//! cargo run --example struct_recv -- --addr 127.0.0.1:8888      # prints (1, b'zhang', 1.75)
//! cargo run --example struct_send -- --addr 127.0.0.1:8888
//! python3 -c "import socket,struct; s=socket.create_connection(('127.0.0.1',8888)); s.send(struct.pack('i5sf',1,b'zhang',1.75))"
//! ```
//!
//! The Python it mirrors (from the course notes):
//!
//! ```python
//! from socket import *
//! import struct
//! s = socket()
//! s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
//! s.bind(('0.0.0.0', 8888))
//! s.listen(5)
//! st = struct.Struct('i5sf')         # 确定数据结构
//! c, addr = s.accept()
//! data = c.recv(1024)
//! data = st.unpack(data)             # ← assumes one recv is one whole record
//! print(data)
//! c.close()
//! s.close()
//! ```
//!
//! **The bug, and the fix.** `recv(1024)` returns whatever TCP has so far:
//! half a record (`struct.error: unpack requires a buffer of 16 bytes`), or
//! several records sent back to back (the same error, for 32 bytes). TCP is
//! a byte stream, not a message stream. Here each client has a buffer: bytes
//! are appended as they arrive, every complete record at its front is
//! unpacked and printed (`Struct::unpack_from`, `Struct::size`), and the
//! rest waits for more. A partial record left when the client closes is
//! reported on stderr and dropped.
//!
//! Also: any number of clients, one after another or at once (the Python
//! serves one record from one client and exits); `--format` takes any
//! Python `struct` format (a bad one is a usage error, exit 2); SIGINT /
//! SIGTERM stop it with exit status 0.

use servers::{cli, stdout};

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use clap::Parser;
use reactor::codec::{Struct, Values};
use reactor::{Acceptor, Backend, Events, Reactor, Token};
use servers::server;

/// Receives struct-packed records over TCP and prints each as a Python tuple.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: cli::NetArgs,
    /// Python struct format of one record
    #[arg(long, default_value = "i5sf", value_parser = servers::records::parse_format)]
    format: Struct,
}

/// What the reactor watches: the listener, the stop signals, the clients.
type Source = server::Source<Client>;

/// A client and the bytes of its next record received so far.
struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    /// Received bytes not yet unpacked: less than one record between events.
    buffer: Vec<u8>,
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.net.backend.choose(Backend::Epoll);
    // Printing never blocks the loop: see servers::stdout.
    stdout::install();
    let (reactor, listen) = server::start(&cli.net.addr, backend);
    if let Err(err) = serve(reactor, listen, &cli.format) {
        cli::fail(err);
    }
}

/// The loop: accept, reassemble, print, until SIGINT/SIGTERM.
fn serve(mut reactor: Reactor<Source>, listen: Token, st: &Struct) -> reactor::Result<()> {
    let mut acceptor = Acceptor::new();
    let mut events = Events::with_capacity(256);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        reactor.poll(&mut events, None)?;
        for event in &events {
            let token = event.token();
            match reactor.get_mut(token) {
                // Stale: closed earlier in this batch.
                None => {}
                Some(Source::Listener(_)) => {
                    server::accept_all(&mut reactor, listen, &mut acceptor, open, |c, err| {
                        cli::warn_refused(c.peer, err);
                    })?
                }
                Some(Source::Stop(signals)) => {
                    if !server::stop_requested(signals) {
                        continue; // a spurious wake-up of the signal pipe
                    }
                    stdout::finish();
                    return Ok(());
                }
                // stdout takes more of the records waiting for it.
                Some(Source::Stdout(_)) => stdout::on_writable(),
                Some(Source::Conn(client)) => {
                    let alive = receive(client, st, &mut chunk);
                    if !alive {
                        drop(reactor.remove(token));
                    }
                }
            }
        }
        stdout::watch(&mut reactor, Source::Stdout);
    }
}

/// A new client, with nothing of its first record yet.
fn open(stream: TcpStream, peer: SocketAddr) -> Option<Client> {
    log::info!("connect from {peer}");
    Some(Client {
        stream,
        peer,
        buffer: Vec::new(),
    })
}

/// Reads once, prints every complete record, keeps the partial one.
/// Returns `false` when the client is gone.
fn receive(client: &mut Client, st: &Struct, chunk: &mut [u8]) -> bool {
    let n = match client.stream.read(chunk) {
        Ok(0) => {
            if !client.buffer.is_empty() {
                eprintln!(
                    "{}: closed with {} bytes of a partial record ({}-byte records); dropped",
                    client.peer,
                    client.buffer.len(),
                    st.size()
                );
            }
            log::info!("disconnect {}", client.peer);
            return false;
        }
        Ok(n) => n,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
            return true;
        }
        Err(err) => {
            log::info!("{}: {err}", client.peer);
            return false;
        }
    };
    let size = st.size();
    let mut data = &chunk[..n];
    // Complete the record started by an earlier read.
    if !client.buffer.is_empty() {
        let take = (size - client.buffer.len()).min(data.len());
        client.buffer.extend_from_slice(&data[..take]);
        data = &data[take..];
        if client.buffer.len() < size {
            return true;
        }
        print_record(st, &client.buffer);
        client.buffer.clear();
    }
    // Whole records straight from the read buffer, without copying.
    while data.len() >= size {
        print_record(st, &data[..size]);
        data = &data[size..];
    }
    // The start of the next record waits for the rest.
    client.buffer.extend_from_slice(data);
    true
}

/// Prints one record as Python prints the unpacked tuple.
fn print_record(st: &Struct, record: &[u8]) {
    match st.unpack_from(record) {
        Ok(values) => cli::say(format_args!("{}", Values(&values))),
        // Cannot happen: `record` is exactly one record long.
        Err(err) => eprintln!("error: {err}"),
    }
}
