//! Plumbing shared by every example server, written once: the command line
//! (`--addr`, `--backend`, `--help`), the choice of backend (flag, then
//! `REACTOR_BACKEND`, then the example's own), the trace log, the
//! `listening on …` line tests wait for, and the signals that stop a server.

use std::fmt::Display;
use std::io::Write;
use std::net::{TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;

use reactor::{Backend, Signals};

/// `--addr` and `--backend`, flattened into each TCP example's own `Cli`.
#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub addr: String,
    #[command(flatten)]
    pub backend: BackendArg,
}

/// `--backend`, for examples that take `--path` instead of `--addr`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArg {
    /// select, poll or epoll [default: $REACTOR_BACKEND, else the example's own]
    #[arg(long)]
    pub backend: Option<Backend>,
}

impl BackendArg {
    /// The flag, else `REACTOR_BACKEND`, else `default`. A bad
    /// `REACTOR_BACKEND` is a usage error (exit 2), like a bad flag.
    pub fn choose(&self, default: Backend) -> Backend {
        if let Some(backend) = self.backend {
            return backend;
        }
        match Backend::from_env() {
            Ok(backend) => backend.unwrap_or(default),
            Err(err) => {
                eprintln!("error: {}: {err}", Backend::ENV_VAR);
                std::process::exit(2);
            }
        }
    }
}

/// Installs the logger: quiet unless `RUST_LOG` asks, e.g.
/// `RUST_LOG=reactor=trace` to narrate every system call.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
}

/// Prints the one line that says the server is ready, and flushes it: tests
/// (and people) wait for it before connecting.
pub fn announce(addr: impl Display, backend: Backend) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not kill the server; it can still serve.
    let _ = writeln!(out, "listening on {addr} (backend: {backend})");
    let _ = out.flush();
}

/// Prints one line to stdout and flushes it at once: tests and people read
/// it as it happens, and a server that forks must not leave it in a buffer
/// the child would copy. A closed stdout (the server piped into `head`)
/// must not kill a server that can still serve, so write errors are
/// ignored where `println!` would panic.
pub fn say(line: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints a fatal start-up error naming what failed, and exits with 1.
pub fn fail(what: impl Display) -> ! {
    eprintln!("error: {what}");
    std::process::exit(1);
}

/// Binds a non-blocking TCP listener on `addr`, or exits with a message.
pub fn bind_tcp(addr: &str) -> TcpListener {
    let addrs = match addr.to_socket_addrs() {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(err) => fail(format_args!("cannot resolve --addr {addr}: {err}")),
    };
    let listener = match TcpListener::bind(&addrs[..]) {
        Ok(listener) => listener,
        Err(err) => fail(format_args!("cannot listen on {addr}: {err}")),
    };
    if let Err(err) = listener.set_nonblocking(true) {
        fail(format_args!("cannot make the listener non-blocking: {err}"));
    }
    // std listens with a backlog of 128. A burst of connections past that
    // (500 chat clients joining at once) has the kernel drop handshakes,
    // and those clients join a second later, out of order. Calling listen
    // again on a listening socket only changes the backlog; the kernel caps
    // it at net.core.somaxconn.
    // SAFETY: listen takes no pointers; the fd is the listener we own.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } == -1 {
        let err = std::io::Error::last_os_error();
        fail(format_args!(
            "listen(fd={}, backlog={LISTEN_BACKLOG}): {err}",
            listener.as_raw_fd()
        ));
    }
    listener
}

/// The accept queue asked of the kernel: Redis's and nginx's 511.
pub const LISTEN_BACKLOG: libc::c_int = 511;

/// SIGINT and SIGTERM as events: the graceful-stop signals of every server.
pub fn stop_signals() -> Signals {
    Signals::new(&[libc::SIGINT, libc::SIGTERM])
        .unwrap_or_else(|err| fail(format_args!("cannot install signal handlers: {err}")))
}
