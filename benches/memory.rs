//! Memory per registration: the heap bytes each event library adds per
//! registered descriptor, measured with glibc's `mallinfo2()` (Rust's
//! allocator and the C libraries both allocate through malloc) in a fresh
//! child process per variant: allocated bytes after registering N eventfds
//! minus before, divided by N.
//!
//! What each variant registers, N times (the object is the descriptor
//! itself, 4 bytes, in every variant):
//! - `reactor_epoll`: `Reactor::insert` (slab slot with fd and generation,
//!   the generation table; the epoll backend keeps nothing else);
//! - `reactor_poll`: the same on the poll backend (plus its `pollfd` array
//!   and registration table);
//! - `mio_epoll`: `Registry::register`, plus the `Slab` of objects an
//!   application needs to get from a token back to its object;
//! - `polling_epoll`: `Poller::add`, plus the same `Slab`;
//! - `libev`: one `ev_io` per descriptor (the caller's array) started on an
//!   epoll loop (libev's per-fd `ANFD` array and change list grow with it);
//! - `libevent`: one `struct event` per descriptor (`event_assign` +
//!   `event_add`; libevent's evmap and change list grow with it);
//! - `raw_epoll`: `epoll_ctl` alone: 0 bytes of user memory.
//!
//! The kernel's own cost per epoll registration (an `epitem`, from
//! `/proc/slabinfo`'s `eventpoll_epi` object size, plus its wait-queue
//! entry) is printed alongside: every epoll-based variant pays it.
//!
//! Run: `cargo bench -p reactor-bench --bench memory` (or `benches/run.sh`).

use reactor_bench as common;
use reactor_bench::peers;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Registrations per measurement: below the 20 000-descriptor limit with
/// room for the process's own.
const N: usize = 8_000;

/// Heap bytes in use (glibc's count of allocated chunks, headers included).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

struct Fd(OwnedFd);

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Registers `fds` with `variant`; returns the heap bytes that added and a
/// guard keeping the registrations alive until it is dropped.
fn measure(variant: &str, mut fds: Vec<OwnedFd>) -> Option<(usize, Box<dyn std::any::Any>)> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // The descriptors move out with `drain`, which keeps the Vec's memory:
    // freeing it mid-measurement would be counted against the variant.
    let before;
    let keep: Box<dyn std::any::Any> = match variant {
        "reactor_epoll" | "reactor_poll" => {
            let backend = if variant == "reactor_poll" {
                reactor::Backend::Poll
            } else {
                reactor::Backend::Epoll
            };
            let mut reactor: reactor::Reactor<Fd> =
                reactor::Reactor::with_backend(backend).expect("reactor");
            before = heap_in_use();
            for fd in fds.drain(..) {
                reactor
                    .insert(Fd(fd), reactor::Interest::READABLE)
                    .map_err(|e| e.error)
                    .expect("insert");
            }
            Box::new((reactor, fds))
        }
        "mio_epoll" => {
            let poll = mio::Poll::new().expect("mio");
            let mut objects: slab::Slab<OwnedFd> = slab::Slab::new();
            before = heap_in_use();
            for fd in fds.drain(..) {
                let key = objects.insert(fd);
                let raw = objects[key].as_raw_fd();
                poll.registry()
                    .register(
                        &mut mio::unix::SourceFd(&raw),
                        mio::Token(key),
                        mio::Interest::READABLE,
                    )
                    .expect("mio register");
            }
            Box::new((poll, objects, fds))
        }
        "polling_epoll" => {
            let poller = polling::Poller::new().expect("polling");
            let mut objects: slab::Slab<OwnedFd> = slab::Slab::new();
            before = heap_in_use();
            for fd in fds.drain(..) {
                let key = objects.insert(fd);
                // SAFETY: the descriptor stays in `objects`, alive and
                // registered, until the guard drops the poller first.
                unsafe { poller.add(objects[key].as_raw_fd(), polling::Event::readable(key)) }
                    .expect("polling add");
            }
            Box::new((poller, objects, fds))
        }
        "raw_epoll" => {
            let ep = common::epoll_create();
            before = heap_in_use();
            for (i, &fd) in raw.iter().enumerate() {
                common::epoll_ctl(&ep, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, i as u64);
            }
            Box::new((ep, fds))
        }
        name => {
            let peer = peers::c_peer(name)?;
            before = heap_in_use();
            let mut b1 = peers::B1::new(peer, raw.len());
            b1.setup(&raw);
            Box::new((b1, fds))
        }
    };
    Some((heap_in_use().saturating_sub(before), keep))
}

const VARIANTS: [&str; 7] = [
    "reactor_epoll",
    "reactor_poll",
    "mio_epoll",
    "polling_epoll",
    "libev",
    "libevent",
    "raw_epoll",
];

/// The kernel's `eventpoll_epi` object size, if /proc/slabinfo is readable.
fn kernel_epitem_bytes() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("eventpoll_epi "))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn child(variant: &str) {
    let fds: Vec<OwnedFd> = (0..N).map(|_| common::eventfd()).collect();
    match measure(variant, fds) {
        Some((bytes, keep)) => {
            println!("{bytes}");
            drop(keep);
        }
        None => println!("skipped"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(args.get(i + 1).map_or("", String::as_str));
        return;
    }
    if !common::fds_available(N as u64 + 64, "memory per registration") {
        return;
    }
    println!("{}", common::env_header());
    if let Some(note) = peers::skipped_note() {
        println!("{note}");
    }
    println!(
        "# Memory per registration ({N} eventfds, heap bytes from mallinfo2, fresh process each)"
    );
    println!("| variant | heap bytes / registration |");
    println!("|---|---|");
    let exe = std::env::current_exe().expect("current_exe");
    let mut ok = true;
    for variant in VARIANTS {
        let out = std::process::Command::new(&exe)
            .args(["--child", variant])
            .output();
        let text = match &out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            Ok(o) => {
                ok = false;
                format!("error: {}", o.status)
            }
            Err(e) => {
                ok = false;
                format!("error: {e}")
            }
        };
        match text.parse::<f64>() {
            Ok(bytes) => println!("| {variant} | {:.1} |", bytes / N as f64),
            Err(_) if text == "skipped" => println!("| {variant} | skipped (not built) |"),
            Err(_) => println!("| {variant} | {text} |"),
        }
    }
    match kernel_epitem_bytes() {
        Some(b) => println!(
            "\nkernel, every epoll variant: eventpoll_epi object {b} B per registration (/proc/slabinfo), plus its wait-queue entry"
        ),
        None => {
            println!("\nkernel: /proc/slabinfo not readable; about 160 B per epoll registration")
        }
    }
    if !ok {
        std::process::exit(1);
    }
}
