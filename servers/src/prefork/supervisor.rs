//! The parent: forks the workers, watches them (pidfds, or SIGCHLD through
//! the self-pipe), reaps every one that exits and replaces those that died
//! unexpectedly; on SIGINT/SIGTERM it stops them all and reaps them.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use reactor::{Backend, ChildMode, Events, Interest, Pidfd, Reactor, Reaper, Signals, Token};

use super::socket::{Listen, resolve, reuseport_socket};
use super::worker::{block_stop_signals, ensure_single_threaded, set_signal_mask, worker};
use crate::cli;

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

/// A worker's loop: serves `listener` on a reactor of `backend` until
/// `stop` (SIGTERM/SIGINT) fires. `prefork_echo` passes the echo engine,
/// `http_server` the web server with its configuration (a closure: it runs
/// in each child after `fork`, on the child's copy of what it captured).
pub type Serve = Box<dyn Fn(TcpListener, Backend, Signals) -> reactor::Result<()>>;

/// What the parent needs to know, from the command line.
#[derive(Clone, Debug)]
pub struct Prefork {
    /// `--addr`.
    pub addr: String,
    /// The backend every process uses.
    pub backend: Backend,
    /// Size of the pool.
    pub workers: usize,
    /// How the parent learns that workers exited.
    pub mode: ChildMode,
    /// One `SO_REUSEPORT` listener per worker instead of a shared one.
    pub reuseport: bool,
}

/// The parent: its reactor, the listener it hands to workers, and who is alive.
struct Supervisor {
    /// The loop each worker runs.
    serve: Serve,
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

impl Prefork {
    /// Binds the listener, prints the `listening on` line, forks the
    /// workers and supervises them until SIGINT/SIGTERM; then exits 0.
    /// Start-up failures print an error and exit 1.
    pub fn run(
        self,
        serve: impl Fn(TcpListener, Backend, Signals) -> reactor::Result<()> + 'static,
    ) -> ! {
        ensure_single_threaded();

        // Shared: one non-blocking listener (the flag lives on the open file
        // description all workers share). SO_REUSEPORT: the parent only binds,
        // to reserve the port (a socket that never listens gets no
        // connections); each worker binds and listens on its own.
        let listener = if self.reuseport {
            let addr = resolve(&self.addr);
            reuseport_socket(addr, false)
                .unwrap_or_else(|err| cli::fail(format_args!("cannot bind {addr}: {err}")))
        } else {
            cli::bind_tcp(&self.addr)
        };
        let local = listener.local_addr().unwrap_or_else(|err| cli::fail(err));
        let mut reactor: Reactor<Source> =
            Reactor::with_backend(self.backend).unwrap_or_else(|err| cli::fail(err));
        reactor
            .insert(Source::Stop(cli::stop_signals()), Interest::READABLE)
            .unwrap_or_else(|err| cli::fail(err.error));
        if self.mode == ChildMode::Sigchld {
            let reaper = Reaper::new().unwrap_or_else(|err| cli::fail(err));
            reactor
                .insert(Source::Reaper(reaper), Interest::READABLE)
                .unwrap_or_else(|err| cli::fail(err.error));
        }
        log::info!("{} workers, child mode {}", self.workers, self.mode);
        cli::announce(local, self.backend);
        // SAFETY: getpid takes no arguments and cannot fail.
        let pid = unsafe { libc::getpid() };
        cli::say(format_args!(
            "supervisor pid {pid}; its workers: ps --ppid {pid}"
        ));

        let mut supervisor = Supervisor {
            serve: Box::new(serve),
            reactor,
            listener: Some(listener),
            reuseport: self.reuseport.then_some(local),
            backend: self.backend,
            mode: self.mode,
            workers: self.workers,
            live: HashMap::new(),
            owed: self.workers,
            retry_at: None,
            window: (Instant::now(), 0),
            stopping: None,
        };
        supervisor.run();
        std::process::exit(0);
    }
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
                cli::say("all workers stopped");
                return;
            }
            let timeout = self.next_timeout();
            if let Err(err) = self.reactor.poll(&mut events, timeout) {
                cli::fail(format_args!("poll: {err}"));
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
                                cli::say(format_args!(
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
                cli::say(format_args!("worker {pid} exited: {status}"));
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
            cli::say("second stop signal: killing the workers");
            libc::SIGKILL
        } else {
            cli::say("stopping workers");
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
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
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
                worker(listen, self.backend, unblock, &self.serve, parent)
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
                cli::say(format_args!("worker {pid} started"));
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
