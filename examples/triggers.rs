//! Level, edge and oneshot triggering side by side, so the difference is
//! seen rather than told.
//!
//! ```text
//! cargo run --example triggers                    # epoll: all three triggers
//! cargo run --example triggers -- --backend poll  # edge is refused on poll and select
//! RUST_LOG=reactor=trace cargo run --example triggers   # the system calls behind each round
//! ```
//!
//! Three `AF_UNIX` socket pairs, one per trigger, are watched by *one*
//! poller for `READABLE`. Every round does the same things to all three —
//! writes the same bytes, or nothing — then polls once and reads at most
//! two bytes from each socket that reported, so data is deliberately left
//! behind. The output says, per round and per trigger, whether an event
//! came and how many bytes are still unread:
//!
//! - **level** reports while unread data remains, and stops when drained;
//! - **edge** reports only when *new* data arrives, so the bytes it leaves
//!   behind are stranded until more come (drain until `WouldBlock`!);
//! - **oneshot** reports once, then is silent until `modify` re-arms it.
//!
//! The course only names edge triggering (`EPOLLET`, 边缘触发) as one of
//! epoll's advantages; in Python the same experiment is
//!
//! ```python
//! ep = select.epoll()
//! ep.register(a_level, select.EPOLLIN)
//! ep.register(a_edge, select.EPOLLIN | select.EPOLLET)
//! ep.register(a_once, select.EPOLLIN | select.EPOLLONESHOT)
//! for w in writers: w.send(b"abcdef")
//! print(ep.poll(0.1))        # all three
//! for r in readers: r.recv(2)
//! print(ep.poll(0.1))        # only the level-triggered one
//! ```
//!
//! The output is deterministic (socket pairs deliver at once), so the guide
//! (`docs/04-epoll.md`) shows it verbatim and `tests/guide.rs` checks that
//! it still matches. `--emit json` prints the same run as data instead (per
//! trigger: the flags reported in each round and the bytes left unread),
//! which `docs/pictures/timeline.py` draws as the guide's timeline picture.

use servers::cli;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use reactor::{Backend, Event, Events, Interest, Poller, Trigger};

/// Level, edge and oneshot on one poller: which triggers report, round by round.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    backend: cli::BackendArg,
    /// What to print: the narrated run, or the run as JSON data
    #[arg(long, value_enum, default_value_t = Emit::Text)]
    emit: Emit,
}

/// `--emit`: the narrated run (the default) or JSON data.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Emit {
    Text,
    Json,
}

/// Set for `--emit json`: the narration is not printed.
static QUIET: AtomicBool = AtomicBool::new(false);

/// `println!`, unless the run is emitting JSON.
macro_rules! say {
    ($($arg:tt)*) => {
        if !QUIET.load(Ordering::Relaxed) {
            println!($($arg)*);
        }
    };
}

/// How long each round's `poll` waits when nothing is ready. Ready sockets
/// return at once; this only bounds the rounds where nobody reports.
const WAIT: Duration = Duration::from_millis(100);

/// Bytes read per event: less than was written, on purpose.
const READ_SIZE: usize = 2;

/// One watched socket pair.
struct Pair {
    trigger: Trigger,
    /// The end the poller watches and we read from.
    reader: UnixStream,
    /// The end we write to; `None` once closed.
    writer: Option<UnixStream>,
    /// Bytes written and not yet read.
    unread: usize,
    /// Whether `register` accepted this trigger.
    registered: bool,
    /// One mark per round: `IN`-style flags or `-`.
    history: Vec<String>,
    /// Bytes left unread at the end of each round.
    unread_history: Vec<usize>,
}

/// What a round does before it polls.
enum Step {
    Write(&'static [u8]),
    Nothing,
    RearmOneshot,
    CloseWriters,
}

const ROUNDS: [(Step, &str); 6] = [
    (Step::Write(b"abcdef"), "write \"abcdef\" to all three"),
    (Step::Nothing, "nothing new"),
    (Step::Write(b"gh"), "write \"gh\" to all three"),
    (Step::RearmOneshot, "modify() re-arms the oneshot socket"),
    (Step::Nothing, "nothing new"),
    (Step::CloseWriters, "close the three writing ends"),
];

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let backend = cli.backend.choose(Backend::Epoll);
    QUIET.store(cli.emit == Emit::Json, Ordering::Relaxed);
    if let Err(err) = run(backend, cli.emit) {
        cli::fail(err);
    }
}

fn run(backend: Backend, emit: Emit) -> Result<(), Box<dyn std::error::Error>> {
    let mut poller = backend.new_poller()?;
    say!("backend: {backend}");
    say!(
        "each round: do the step, poll once, read at most {READ_SIZE} bytes from each socket that reported"
    );
    say!();

    let mut pairs = Vec::new();
    for (key, trigger) in [Trigger::Level, Trigger::Edge, Trigger::Oneshot]
        .into_iter()
        .enumerate()
    {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        let registered = match poller.register(reader.as_raw_fd(), key, Interest::READABLE, trigger)
        {
            Ok(()) => true,
            Err(err) => {
                say!("register {trigger:<7} → refused: {err}");
                false
            }
        };
        pairs.push(Pair {
            trigger,
            reader,
            writer: Some(writer),
            unread: 0,
            registered,
            history: Vec::new(),
            unread_history: Vec::new(),
        });
    }
    if pairs.iter().any(|p| !p.registered) {
        say!();
    }

    let mut events = Events::with_capacity(8);
    for (number, (step, what)) in ROUNDS.iter().enumerate() {
        say!("round {}: {what}", number + 1);
        for (key, pair) in pairs.iter_mut().enumerate() {
            match step {
                Step::Write(bytes) => {
                    if let Some(writer) = pair.writer.as_mut() {
                        writer.write_all(bytes)?;
                        pair.unread += bytes.len();
                    }
                }
                Step::RearmOneshot if pair.trigger == Trigger::Oneshot && pair.registered => {
                    let fd = pair.reader.as_raw_fd();
                    poller.modify(fd, key, Interest::READABLE, Trigger::Oneshot)?;
                }
                Step::CloseWriters => pair.writer = None,
                _ => {}
            }
        }

        poller.poll(&mut events, Some(WAIT))?;
        for (key, pair) in pairs.iter_mut().enumerate() {
            let event = events.iter().find(|e| e.key() == key).copied();
            report(pair, event)?;
        }
        say!();
    }

    say!("summary (event flags per round, - for no event):");
    let mut header = format!("{:<9}", "");
    for number in 1..=ROUNDS.len() {
        header.push_str(&format!("{:<14}", format!("round {number}")));
    }
    say!("{}", header.trim_end());
    for pair in &pairs {
        let mut line = format!("{:<9}", pair.trigger.to_string());
        if pair.registered {
            for mark in &pair.history {
                line.push_str(&format!("{mark:<14}"));
            }
        } else {
            line.push_str(&format!(
                "(not registered: {backend} has no {} triggering)",
                pair.trigger
            ));
        }
        say!("{}", line.trim_end());
    }
    if emit == Emit::Json {
        println!("{}", json(backend, &pairs));
    }
    Ok(())
}

/// The run as JSON: the rounds' steps, then per trigger whether it was
/// registered, the flags reported in each round (`-` for none) and the
/// bytes left unread after each round.
fn json(backend: Backend, pairs: &[Pair]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    let steps = list(ROUNDS.iter().map(|(_, what)| quote(what)).collect());
    let triggers = pairs
        .iter()
        .map(|p| {
            format!(
                "{{\"trigger\": {}, \"registered\": {}, \"events\": {}, \"unread\": {}}}",
                quote(&p.trigger.to_string()),
                p.registered,
                list(p.history.iter().map(|h| quote(h)).collect()),
                list(p.unread_history.iter().map(|u| u.to_string()).collect()),
            )
        })
        .collect::<Vec<_>>()
        .join(",\n    ");
    format!(
        "{{\n  \"backend\": {},\n  \"rounds\": {steps},\n  \"triggers\": [\n    {triggers}\n  ]\n}}",
        quote(backend.name())
    )
}

/// Prints one trigger's line for this round, reading from its socket if it
/// reported.
fn report(pair: &mut Pair, event: Option<Event>) -> std::io::Result<()> {
    let name = pair.trigger.to_string();
    if !pair.registered {
        say!("  {name:<8} (not registered)");
        return Ok(());
    }
    let Some(event) = event else {
        pair.history.push("-".to_owned());
        pair.unread_history.push(pair.unread);
        let why = match pair.trigger {
            Trigger::Level => "nothing to read",
            Trigger::Edge => "nothing NEW arrived",
            Trigger::Oneshot => "disarmed until modify()",
        };
        say!(
            "  {name:<8} -{:16}{} unread; no event: {why}",
            "",
            bytes(pair.unread)
        );
        return Ok(());
    };
    let flags = flag_names(&event);
    let mut buf = [0u8; READ_SIZE];
    let got = loop {
        match pair.reader.read(&mut buf) {
            Ok(n) => break Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    let read = match got {
        Ok(0) => "read → 0 (end of file)".to_owned(),
        Ok(n) => {
            pair.unread -= n;
            format!("read {:?}", String::from_utf8_lossy(&buf[..n]))
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => "read → WouldBlock".to_owned(),
        Err(e) => return Err(e),
    };
    say!(
        "  {name:<8} {flags:<17}{read}, {} unread",
        bytes(pair.unread)
    );
    pair.history.push(flags);
    pair.unread_history.push(pair.unread);
    Ok(())
}

/// `3 bytes`, `1 byte`.
fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// The event's flags as the trace log spells them: `IN|RDHUP|HUP`.
fn flag_names(event: &Event) -> String {
    let names = [
        (event.is_readable(), "IN"),
        (event.is_writable(), "OUT"),
        (event.is_priority(), "PRI"),
        (event.is_read_closed(), "RDHUP"),
        (event.is_hangup(), "HUP"),
        (event.is_error(), "ERR"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "none".to_owned()
    } else {
        set.join("|")
    }
}
