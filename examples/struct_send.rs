//! The course's `struct_send.py`: packs records with Python's `struct`
//! layout and sends them over TCP.
//!
//! ```text
//! cargo run --example struct_recv -- --addr 127.0.0.1:8888       # in one terminal
//! cargo run --example struct_send -- --addr 127.0.0.1:8888       # sends (1, b'zhang', 1.75)
//! cargo run --example struct_send -- --values 2,li,1.8 --values "(3, b'wang', 1.65)"
//! printf '4,zhao,1.7\n5,qian,1.9\n' | cargo run --example struct_send -- --stdin
//! cargo run --example struct_send -- --format '!hd' --values -1,2.5
//! ```
//!
//! The Python it mirrors (from the course notes):
//!
//! ```python
//! from socket import *
//! import struct
//! s = socket()
//! s.connect(('0.0.0.0', 8888))
//! st = struct.Struct('i5sf')
//! data = st.pack(1, b'zhang', 1.75)      # 将数据打包发送
//! s.send(data)                           # ← may send only part of it
//! s.close()
//! ```
//!
//! With no `--values` and no `--stdin` it sends exactly what the Python
//! sends, `(1, b'zhang', 1.75)`. Records are typed as comma-separated
//! fields, or as Python prints the tuple, so `struct_recv`'s output can be
//! fed back in: integers (`-3`, `0x1f`), floats (`1.75`, `inf`), booleans
//! (`True`), bytes as plain text (`zhang`) or a Python literal
//! (`b'zh\x00'`). Each record sent is echoed as `sent (…)`, showing what
//! was packed (what `struct_recv` will print), and a bytes value cut short
//! by its field is warned about on stderr: Python's `struct` truncates it
//! silently.
//!
//! **The bug, and the fix.** `s.send(data)` may send only part of the
//! record and says how much in its return value, which the Python ignores
//! (`sendall` is the call that loops). Here every record is written whole.
//! A record that does not fit the format is refused with the field and the
//! reason (`struct field 0 ('i'): 3000000000 is out of range …`) instead
//! of a traceback.

use servers::cli;

use std::io::{BufRead, IsTerminal, Write};
use std::net::TcpStream;

use clap::Parser;
use reactor::Backend;
use reactor::codec::{Struct, Value, Values};

use servers::records::{parse_format, parse_record};

/// Sends struct-packed records over TCP (by default the course's (1, b'zhang', 1.75)).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "\
Records are comma-separated fields, optionally in parentheses as Python prints
a tuple: --values 1,zhang,1.75 or --values \"(1, b'zhang', 1.75)\".
With neither --values nor --stdin, sends the course's record (1, b'zhang', 1.75)."
)]
struct Cli {
    /// Address of the receiver
    #[arg(long, default_value = "127.0.0.1:8888", value_parser = cli::parse_addr)]
    addr: String,
    /// Python struct format of one record
    #[arg(long, default_value = "i5sf", value_parser = parse_format)]
    format: Struct,
    /// A record to send (repeat for several)
    #[arg(long = "values", value_name = "RECORD")]
    values: Vec<String>,
    /// Also read records from standard input, one per line
    #[arg(long)]
    stdin: bool,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let st = &cli.format;
    let mut records = Vec::new();
    for text in &cli.values {
        match parse_record(st, text) {
            Ok(values) => records.push(values),
            Err(why) => usage(format_args!("--values {text:?}: {why}")),
        }
    }
    if records.is_empty() && !cli.stdin {
        records.push(vec![
            Value::from(1),
            Value::from(b"zhang"),
            Value::from(1.75),
        ]);
    }
    // Check every command-line record before connecting.
    let mut packed = Vec::new();
    for values in &records {
        match pack(st, values) {
            Ok(record) => packed.push(record),
            Err(err) => usage(format_args!("record {}: {err}", Values(values))),
        }
    }
    let mut stream = TcpStream::connect(&cli.addr)
        .unwrap_or_else(|err| cli::fail(format_args!("cannot connect to {}: {err}", cli.addr)));
    for (bytes, shown) in &packed {
        send(&mut stream, bytes, shown);
    }
    let mut bad = false;
    if cli.stdin {
        if std::io::stdin().is_terminal() {
            eprintln!("type records, one per line ({}); Ctrl-D ends", st.format());
        }
        for (number, line) in std::io::stdin().lock().lines().enumerate() {
            let line = line.unwrap_or_else(|err| cli::fail(format_args!("stdin: {err}")));
            if line.trim().is_empty() {
                continue;
            }
            let packed = parse_record(st, &line)
                .and_then(|values| pack(st, &values).map_err(|e| e.to_string()));
            match packed {
                Ok((bytes, shown)) => send(&mut stream, &bytes, &shown),
                Err(why) => {
                    eprintln!("error: line {}: {why}; skipped", number + 1);
                    bad = true;
                }
            }
        }
    }
    std::process::exit(i32::from(bad));
}

/// Packs one record; returns its bytes and what they hold, as Python
/// prints the tuple `st.unpack` would give back — which is what goes on
/// the wire, not what was typed: `--values 4,你好,2.5` with `5s` sends
/// only the first 5 of the 6 bytes of `你好`, and an `f` holds 1.1 as
/// 1.100000023841858. A bytes value cut short is warned about on stderr,
/// as Python's `struct` silently does not.
fn pack(st: &Struct, values: &[Value]) -> reactor::Result<(Vec<u8>, String)> {
    let bytes = st.pack(values)?;
    let sent = st.unpack(&bytes)?;
    for (index, (given, kept)) in values.iter().zip(&sent).enumerate() {
        if let (Value::Bytes(given), Value::Bytes(kept)) = (given, kept)
            && given.len() > kept.len()
        {
            eprintln!(
                "warning: field {index}: {} bytes truncated to {} ({} sent)",
                given.len(),
                kept.len(),
                sent[index],
            );
        }
    }
    Ok((bytes, Values(&sent).to_string()))
}

/// Writes one whole record (`sendall`), or exits with a message.
fn send(stream: &mut TcpStream, bytes: &[u8], shown: &str) {
    if let Err(err) = stream.write_all(bytes) {
        cli::fail(format_args!("cannot send: {err}"));
    }
    println!("sent {shown}");
}

/// A bad record on the command line: a usage error, exit status 2.
fn usage(what: impl std::fmt::Display) -> ! {
    eprintln!("error: {what}");
    std::process::exit(2);
}
