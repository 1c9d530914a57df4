//! The pre-forking supervisor: the course's fork lessons as a server. The parent binds
//! the listener, forks `--workers N` children that each serve on it (echo
//! in `prefork_echo`, HTTP in `http_server`),
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
//! | file | job |
//! |---|---|
//! | `supervisor.rs` | the parent: forks, watches, reaps and replaces workers |
//! | `worker.rs` | the child after `fork`: a clean slate, then the server's own loop |
//! | `socket.rs` | the listener: shared, or one `SO_REUSEPORT` socket per worker |
//!
//! `prefork_echo` runs the echo engine in each worker and `http_server` the
//! web server; any server whose loop has the shape of [`Serve`] can be
//! pre-forked the same way.

mod socket;
mod supervisor;
mod worker;

pub use supervisor::{Prefork, Serve};
