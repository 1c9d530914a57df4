//! `prefork_echo`: the course's fork lessons as a server. The parent binds
//! the listener, forks `--workers N` children that each serve echo on it,
//! and supervises them: it reaps every worker that exits, replaces the ones
//! that died unexpectedly, and on SIGINT/SIGTERM stops them all and exits 0.
//!
//! ```text
//! cargo run --example prefork_echo -- --addr 127.0.0.1:8888 --workers 4
//! ps --ppid <parent pid>           # the workers; never a <defunct> (zombie) among them
//! kill -9 <a worker pid>           # → worker <pid> exited: killed by SIGKILL
//!                                  #   worker <new pid> started
//! kill <parent pid>                # → every worker stopped and reaped, exit 0
//! RUST_LOG=reactor=trace cargo run --example prefork_echo   # pidfd_open, waitid, …
//! ```
//!
//! The course's fork pattern, and what changes here:
//!
//! ```python
//! pid = os.fork()
//! if pid < 0:   print("create process failed")
//! elif pid == 0: handle(c); os._exit(0)          # the child
//! else:          signal.signal(SIGCHLD, SIG_IGN)  # the parent: auto-reap
//! ```
//!
//! - **Reaping.** The course ignores SIGCHLD so the kernel reaps for it
//!   (`SIG_IGN`), which throws away the exit status a supervisor needs to
//!   say *why* a worker died. Here the parent's reactor watches the workers
//!   (one pidfd each, or SIGCHLD through the self-pipe with `--child-mode
//!   sigchld`) and reaps each with `waitid`/`waitpid(-1, WNOHANG)` until none
//!   is left: no zombie (僵尸进程) outlives one turn of the loop. See
//!   `reactor::Pidfd` and `reactor::Reaper`.
//! - **Each child builds its own poller after the fork.** An epoll instance
//!   is a kernel object; `fork` copies the *descriptor*, not the instance,
//!   so parent and child would share one interest list. A child's
//!   `EPOLL_CTL_DEL` (or `ADD`) would change the parent's registrations, and
//!   the two would steal each other's events. So the worker first closes
//!   every inherited descriptor except stdio and the listener (the parent's
//!   epoll, its signal pipes, its siblings' pidfds), then makes a new
//!   reactor and its own `Signals` (which take SIGTERM over from the
//!   handlers it inherited: see `reactor::Signals` on fork). SIGTERM and
//!   SIGINT stay blocked from just before the `fork` until the worker's
//!   handlers are in place, so a stop that arrives during start-up is
//!   delivered to them rather than to the inherited ones.
//! - **No parent code runs twice.** Everything is flushed before `fork`, so
//!   no buffered line is printed by both processes. The worker never returns
//!   into the parent's code: it ends with `_exit`, even if it panics, so no
//!   destructor of the parent's objects runs in the child.
//! - **One inherited listener** (the default). All workers accept on the
//!   same listening socket, inherited across `fork` (the kernel wakes them
//!   all; one wins the `accept`, the others see `EAGAIN`). The alternative,
//!   `--reuseport`: each worker binds its own listener to the same port
//!   with `SO_REUSEPORT` (the parent only binds a socket to reserve the
//!   port, and never listens on it), and the kernel spreads connections
//!   among the listeners by hash: no thundering herd, but connections still
//!   queued on a dying worker's socket are reset with it.
//! - **fork in a Rust program.** Only the calling thread survives `fork`,
//!   so a lock held by another thread stays locked forever in the child.
//!   This program forks only while it has a single thread, and checks it.
//! - **fork failing** (`EAGAIN`: too many processes; `ENOMEM`) is logged and
//!   retried later; restarts are rate-limited to `--workers` per second, so
//!   a worker that crashes at start-up cannot become a fork bomb.
//!
//! The supervisor, the worker and the socket set-up live in the `servers`
//! package (`servers/src/prefork/`), shared with `http_server --workers`.

use clap::Parser;
use reactor::{Backend, ChildMode};
use servers::cli;
use servers::echo_engine::{self, EchoConfig};
use servers::prefork::Prefork;

/// A pre-forking echo server: N worker processes share one listener.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: servers::cli::NetArgs,
    /// Worker processes [default: number of CPUs]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// How the parent learns that workers exited: pidfd or sigchld [default: pidfd if the kernel has it]
    #[arg(long)]
    child_mode: Option<ChildMode>,
    /// Give each worker its own SO_REUSEPORT listener instead of sharing one
    #[arg(long)]
    reuseport: bool,
}

fn main() {
    let cli: Cli = cli::parse(Backend::Epoll);
    cli::init_logging();
    let workers = cli.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let prefork = Prefork {
        addr: cli.net.addr.clone(),
        backend: cli.net.backend.choose(Backend::Epoll),
        workers,
        mode: cli.child_mode.unwrap_or_else(ChildMode::detect),
        reuseport: cli.reuseport,
    };
    prefork.run(|listener, backend, stop| {
        echo_engine::serve(listener, backend, stop, &EchoConfig::default())
    })
}
