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

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use clap::Parser;
use common::echo_engine::{self, EchoConfig};
use reactor::{Backend, ChildMode, Events, Interest, Pidfd, Reactor, Reaper, Signals, Token};

/// A pre-forking echo server: N worker processes share one listener.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    net: common::NetArgs,
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

/// How long workers get to stop after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long to wait before retrying a failed `fork`.
const FORK_RETRY: Duration = Duration::from_millis(200);

/// What the parent's reactor watches.
enum Source {
    /// SIGINT and SIGTERM: stop everything.
    Stop(Signals),
    /// SIGCHLD mode: one source for all workers.
    Reaper(Reaper),
    /// pidfd mode: one per worker.
    Worker(Pidfd),
}

impl std::os::fd::AsFd for Source {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Source::Stop(s) => s.as_fd(),
            Source::Reaper(r) => r.as_fd(),
            Source::Worker(p) => p.as_fd(),
        }
    }
}

/// The parent: its reactor, the listener it hands to workers, and who is alive.
struct Supervisor {
    reactor: Reactor<Source>,
    listener: Option<TcpListener>,
    /// `--reuseport`: the address each worker binds its own listener to.
    reuseport: Option<SocketAddr>,
    backend: Backend,
    mode: ChildMode,
    /// Size of the pool.
    workers: usize,
    /// Live workers: pid → their pidfd's token (pidfd mode).
    live: HashMap<libc::pid_t, Option<Token>>,
    /// Workers to start as soon as the rate limit and `fork` allow.
    owed: usize,
    /// Earliest time to try starting owed workers again.
    retry_at: Option<Instant>,
    /// Starts in the current one-second window, for the rate limit.
    window: (Instant, usize),
    /// Set once SIGINT/SIGTERM arrived: when the workers were told to stop.
    stopping: Option<Instant>,
}

fn main() {
    let cli = Cli::parse();
    common::init_logging();
    let backend = cli.net.backend.choose(Backend::Epoll);
    let workers = cli.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let mode = cli.child_mode.unwrap_or_else(ChildMode::detect);
    ensure_single_threaded();

    // Shared: one non-blocking listener (the flag lives on the open file
    // description all workers share). SO_REUSEPORT: the parent only binds,
    // to reserve the port (a socket that never listens gets no
    // connections); each worker binds and listens on its own.
    let listener = if cli.reuseport {
        let addr = resolve(&cli.net.addr);
        reuseport_socket(addr, false)
            .unwrap_or_else(|err| common::fail(format_args!("cannot bind {addr}: {err}")))
    } else {
        common::bind_tcp(&cli.net.addr)
    };
    let local = listener
        .local_addr()
        .unwrap_or_else(|err| common::fail(err));
    let mut reactor: Reactor<Source> =
        Reactor::with_backend(backend).unwrap_or_else(|err| common::fail(err));
    reactor
        .insert(Source::Stop(common::stop_signals()), Interest::READABLE)
        .unwrap_or_else(|err| common::fail(err.error));
    if mode == ChildMode::Sigchld {
        let reaper = Reaper::new().unwrap_or_else(|err| common::fail(err));
        reactor
            .insert(Source::Reaper(reaper), Interest::READABLE)
            .unwrap_or_else(|err| common::fail(err.error));
    }
    log::info!("{workers} workers, child mode {mode}");
    common::announce(local, backend);

    let mut supervisor = Supervisor {
        reactor,
        listener: Some(listener),
        reuseport: cli.reuseport.then_some(local),
        backend,
        mode,
        workers,
        live: HashMap::new(),
        owed: workers,
        retry_at: None,
        window: (Instant::now(), 0),
        stopping: None,
    };
    supervisor.run();
    std::process::exit(0);
}

impl Supervisor {
    /// The parent's loop: until stopped and every worker is reaped.
    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        self.start_owed();
        // The first workers are not restarts: the rate limit starts now.
        self.window = (Instant::now(), 0);
        loop {
            if self.stopping.is_some() && self.live.is_empty() {
                common::say("all workers stopped");
                return;
            }
            let timeout = self.next_timeout();
            if let Err(err) = self.reactor.poll(&mut events, timeout) {
                common::fail(format_args!("poll: {err}"));
            }
            let mut stop = false;
            let mut exited = Vec::new();
            for event in &events {
                let token = event.token();
                match self.reactor.get_mut(token) {
                    None => {}
                    Some(Source::Stop(signals)) => {
                        stop |= !signals.read().unwrap_or_default().is_empty();
                    }
                    Some(Source::Reaper(reaper)) => match reaper.reap() {
                        Ok(reaped) => exited.extend(reaped),
                        Err(err) => log::error!("reaping: {err}"),
                    },
                    Some(Source::Worker(pidfd)) => {
                        let pid = pidfd.pid();
                        match pidfd.try_wait() {
                            Ok(Some(status)) => exited.push((pid, status)),
                            Ok(None) => {}
                            Err(err) => {
                                // Reaped by someone else (SIG_IGN?): gone,
                                // but its status is lost.
                                self.forget(pid);
                                common::say(format_args!(
                                    "worker {pid} exited: status unknown ({err})"
                                ));
                                if self.stopping.is_none() {
                                    self.owed += 1;
                                }
                            }
                        }
                    }
                }
            }
            for (pid, status) in exited {
                self.forget(pid);
                common::say(format_args!("worker {pid} exited: {status}"));
                if self.stopping.is_none() {
                    self.owed += 1;
                }
            }
            if stop {
                self.stop();
            }
            self.check_stop_deadline();
            self.start_owed();
        }
    }

    /// How long `poll` may wait: until a retry or the stop deadline.
    fn next_timeout(&self) -> Option<Duration> {
        let deadline = match self.stopping {
            Some(since) => Some(since + STOP_GRACE),
            None if self.owed > 0 => self.retry_at,
            None => None,
        };
        deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Stops watching `pid` (it has been reaped).
    fn forget(&mut self, pid: libc::pid_t) {
        if let Some(Some(token)) = self.live.remove(&pid) {
            let _ = self.reactor.remove(token);
        }
    }

    /// SIGINT/SIGTERM: close the listener, tell every worker to stop. A
    /// second signal kills them at once.
    fn stop(&mut self) {
        let signal = if self.stopping.is_some() {
            common::say("second stop signal: killing the workers");
            libc::SIGKILL
        } else {
            common::say("stopping workers");
            self.stopping = Some(Instant::now());
            libc::SIGTERM
        };
        self.listener = None;
        self.owed = 0;
        self.signal_all(signal);
    }

    /// Past the grace period, workers that ignored SIGTERM are killed.
    fn check_stop_deadline(&mut self) {
        if let Some(since) = self.stopping
            && since.elapsed() >= STOP_GRACE
            && !self.live.is_empty()
        {
            log::warn!("workers still alive after {STOP_GRACE:?}: SIGKILL");
            self.signal_all(libc::SIGKILL);
            self.stopping = Some(Instant::now());
        }
    }

    /// Sends `signal` to every live worker (through its pidfd when there is
    /// one, which cannot hit a recycled pid).
    fn signal_all(&self, signal: libc::c_int) {
        for (&pid, &token) in &self.live {
            let sent = match token.and_then(|t| self.reactor.get(t)) {
                Some(Source::Worker(pidfd)) => pidfd.send_signal(signal).map_err(|e| e.to_string()),
                // SAFETY: `pid` is our unreaped child, so the pid cannot
                // have been reused yet.
                _ => match unsafe { libc::kill(pid, signal) } {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error().to_string()),
                },
            };
            if let Err(err) = sent {
                log::warn!("signalling worker {pid}: {err}");
            }
        }
    }

    /// Starts the workers owed, within the rate limit; on `fork` failure,
    /// tries again after `FORK_RETRY`.
    fn start_owed(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        self.retry_at = None;
        while self.owed > 0 && self.stopping.is_none() {
            if now.duration_since(self.window.0) >= Duration::from_secs(1) {
                self.window = (now, 0);
            }
            if self.window.1 >= self.workers {
                log::warn!("restart limit ({} a second) reached: waiting", self.workers);
                self.retry_at = Some(self.window.0 + Duration::from_secs(1));
                return;
            }
            match self.spawn_worker() {
                Ok(()) => {
                    self.owed -= 1;
                    self.window.1 += 1;
                }
                Err(err) => {
                    eprintln!("fork failed: {err}; retrying in {FORK_RETRY:?}");
                    self.retry_at = Some(now + FORK_RETRY);
                    return;
                }
            }
        }
    }

    /// Forks one worker and starts watching it.
    fn spawn_worker(&mut self) -> std::io::Result<()> {
        let Some(listener) = self.listener.as_ref().map(|l| l.as_raw_fd()) else {
            return Ok(());
        };
        // Anything buffered now would be printed by both processes.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // Stop signals are blocked across the fork, so that one arriving
        // before the worker has its own handlers waits for them instead of
        // finding the inherited ones (which would kill it with the default
        // action, not stop it gracefully).
        let unblock = block_stop_signals();
        // SAFETY: this process is single-threaded (checked at start), so the
        // child gets a consistent copy of every lock; it runs only
        // `worker`, which never returns into this code.
        let pid = unsafe { libc::fork() };
        if pid != 0 {
            set_signal_mask(&unblock);
        }
        match pid {
            -1 => Err(std::io::Error::last_os_error()),
            0 => {
                let listen = match self.reuseport {
                    Some(addr) => Listen::ReusePort(addr),
                    None => Listen::Shared(listener),
                };
                worker(listen, self.backend, unblock)
            }
            pid => {
                let token = match self.mode {
                    ChildMode::Sigchld => None,
                    ChildMode::Pidfd => match Pidfd::open(pid) {
                        Ok(pidfd) => match self
                            .reactor
                            .insert(Source::Worker(pidfd), Interest::READABLE)
                        {
                            Ok(token) => Some(token),
                            Err(err) => return Err(self.abandon(pid, err.error)),
                        },
                        Err(err) => return Err(self.abandon(pid, err)),
                    },
                };
                self.live.insert(pid, token);
                common::say(format_args!("worker {pid} started"));
                Ok(())
            }
        }
    }

    /// A worker we cannot watch is killed and reaped at once, so it never
    /// becomes an unwatched zombie.
    fn abandon(&self, pid: libc::pid_t, err: reactor::Error) -> std::io::Error {
        // SAFETY: `pid` is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut status = 0;
        // SAFETY: blocking wait for a child we just killed; `status` is writable.
        while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
        std::io::Error::other(format!("cannot watch worker {pid}: {err}"))
    }
}

/// The worker, in the child after `fork`. Never returns: ends with `_exit`.
fn worker(listen: Listen, backend: Backend, unblock: libc::sigset_t) -> ! {
    let code = std::panic::catch_unwind(|| {
        let listener = match listen {
            Listen::Shared(fd) => {
                close_inherited(fd);
                // SAFETY: the parent gave us this descriptor and
                // close_inherited kept it; from here on this TcpListener is
                // its only owner in this process.
                unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) }
            }
            Listen::ReusePort(addr) => {
                close_inherited(-1);
                match reuseport_socket(addr, true) {
                    Ok(listener) => listener,
                    Err(err) => {
                        eprintln!("worker: cannot listen on {addr}: {err}");
                        return 1;
                    }
                }
            }
        };
        let stop = match Signals::new(&[libc::SIGTERM, libc::SIGINT]) {
            Ok(stop) => stop,
            Err(err) => {
                eprintln!("worker: cannot install signal handlers: {err}");
                return 1;
            }
        };
        // Our handlers are in place: a stop signal that came early is
        // delivered to them now.
        set_signal_mask(&unblock);
        match echo_engine::serve(listener, backend, stop, &EchoConfig::default()) {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("worker: {err}");
                1
            }
        }
    })
    .unwrap_or(101);
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process without running atexit handlers or
    // destructors, none of which belong to this child.
    unsafe { libc::_exit(code) }
}

/// Where a worker gets its listener.
enum Listen {
    /// The parent's listener, inherited (this descriptor).
    Shared(libc::c_int),
    /// A listener of its own, bound with SO_REUSEPORT to this address.
    ReusePort(SocketAddr),
}

/// Closes every descriptor above stderr except `keep` (none if `keep` < 3):
/// the parent's epoll instance, signal pipes and pidfds must not be used
/// (or kept open) here.
fn close_inherited(keep: libc::c_int) {
    let ranges = if keep < 3 {
        [(3, libc::c_int::MAX), (1, 0)]
    } else {
        [(3, keep - 1), (keep + 1, libc::c_int::MAX)]
    };
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range takes no pointers; the descriptors it closes
        // belong to objects of the parent that this process never uses
        // (it never returns into the parent's code).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) };
        if ret == -1 {
            log::warn!(
                "close_range({first}, {last}): {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// `--addr` as one socket address, or exit 1.
fn resolve(addr: &str) -> SocketAddr {
    match addr.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => common::fail(format_args!("--addr {addr} resolves to nothing")),
        Err(err) => common::fail(format_args!("cannot resolve --addr {addr}: {err}")),
    }
}

/// A non-blocking, close-on-exec TCP socket with SO_REUSEADDR and
/// SO_REUSEPORT, bound to `addr`; listening if `listen`.
fn reuseport_socket(addr: SocketAddr, listen: bool) -> std::io::Result<TcpListener> {
    use std::os::fd::FromRawFd;
    let check = |ret: libc::c_int| {
        if ret == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    };
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket takes no pointers.
    let fd = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: a new descriptor that nothing else owns.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: `one` is a live c_int and its size is passed.
        check(unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    // SAFETY: an all-zero sockaddr_storage is valid and large enough for
    // either address family.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is aligned and sized for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is aligned and sized for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds a valid address of `len` bytes.
    check(unsafe {
        libc::bind(
            fd,
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    })?;
    if listen {
        // SAFETY: listen takes no pointers.
        check(unsafe { libc::listen(fd, 1024) })?;
    }
    Ok(TcpListener::from(socket))
}

/// Blocks SIGTERM and SIGINT; returns the mask to restore.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: zeroed sigset_t values are valid for sigemptyset/sigaddset to
    // fill in, and sigprocmask only reads `block` and writes `old`.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTERM);
        libc::sigaddset(&mut block, libc::SIGINT);
        if libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old) == -1 {
            log::warn!("sigprocmask: {}", std::io::Error::last_os_error());
        }
        old
    }
}

/// Restores a mask saved by `block_stop_signals`.
fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is a valid sigset_t; the old mask is not wanted.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) } == -1 {
        log::warn!("sigprocmask: {}", std::io::Error::last_os_error());
    }
}

/// Exits with an error unless this process has exactly one thread.
fn ensure_single_threaded() {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads != 1 {
        common::fail(format_args!(
            "prefork_echo must fork from a single thread; it has {threads}"
        ));
    }
}
