//! Plumbing shared by every example server, written once: the command line
//! (`--addr`, `--backend`, `--help`), the choice of backend (flag, then
//! `REACTOR_BACKEND`, then the example's own), the trace log, the
//! `listening on …` line tests wait for, and the signals that stop a server.

use std::fmt::Display;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reactor::{Backend, Signal, Signals};

use crate::stdout;

/// `--addr` and `--backend`, flattened into each TCP example's own `Cli`.
#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8888", value_parser = parse_addr)]
    pub addr: String,
    #[command(flatten)]
    pub backend: BackendArg,
}

/// `--backend`, for examples that take `--path` instead of `--addr`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArg {
    /// select, poll, epoll or uring (io_uring) [default: $REACTOR_BACKEND, else the example's own]
    #[arg(long)]
    pub backend: Option<Backend>,
}

/// `HOST:PORT` as `--addr` takes it: a port from 0 to 65535 and a host
/// (a name, an IPv4 address, or an IPv6 one in brackets). Checked when the
/// command line is parsed, so `--addr 0.0.0.0:99999` is a usage error
/// (exit status 2) in every example, like any other bad flag value.
///
/// # Errors
///
/// What is wrong with it, for clap's `invalid value` message.
pub fn parse_addr(text: &str) -> Result<String, String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected HOST:PORT, e.g. 127.0.0.1:8888".to_owned());
    };
    if host.is_empty() {
        return Err("the host is missing: expected HOST:PORT, e.g. 127.0.0.1:8888".to_owned());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 address goes in brackets: [::1]:8888".to_owned());
    }
    match port.parse::<u16>() {
        Ok(_) => Ok(text.to_owned()),
        Err(_) => Err(format!("port {port:?} is not a number from 0 to 65535")),
    }
}

/// Parses the command line of an example whose own backend is `default`,
/// with `--help` naming the backend it will use when `--backend` is not
/// given: `[default: epoll]`, or `[default: poll, from REACTOR_BACKEND]`.
/// Errors (and `--help`) exit as clap's `parse` does: status 2 (0).
pub fn parse<C: clap::Parser>(default: Backend) -> C {
    let using = match Backend::from_env() {
        Ok(Some(backend)) => format!("{backend}, from {}", Backend::ENV_VAR),
        Ok(None) => default.to_string(),
        Err(_) => format!("{default}; {} is not a backend", Backend::ENV_VAR),
    };
    let mut command = C::command();
    if command.get_arguments().any(|a| a.get_id() == "backend") {
        command = command.mut_arg("backend", |arg| {
            arg.help(format!("select, poll or epoll [default: {using}]"))
        });
    }
    let matches = command.get_matches();
    C::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
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
    if stdout::say(&format!("listening on {addr} (backend: {backend})")) {
        return;
    }
    let mut out = std::io::stdout().lock();
    // A closed stdout must not kill the server; it can still serve.
    let _ = writeln!(out, "listening on {addr} (backend: {backend})");
    let _ = out.flush();
}

/// Prints one line to stdout and flushes it at once: tests and people read
/// it as it happens, and a server that forks must not leave it in a buffer
/// the child would copy. A closed stdout (the server piped into `head`)
/// must not kill a server that can still serve, so write errors are
/// ignored where `println!` would panic. Once [`stdout::install`] has run,
/// the line goes through its bounded, non-blocking queue instead.
pub fn say(line: impl Display) {
    if stdout::say(&line.to_string()) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints a usage error (a flag value that cannot work), and exits with 2
/// as clap does for the ones it catches itself.
pub fn usage_error(what: impl Display) -> ! {
    eprintln!("error: {what}");
    std::process::exit(2);
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
    Signals::new(&[Signal::INT, Signal::TERM])
        .unwrap_or_else(|err| fail(format_args!("cannot install signal handlers: {err}")))
}

/// Refused connections (select and an fd ≥ 1024, say) warned about at
/// most once a second, as the out-of-descriptors warning is: a flood of
/// them is one line a second saying how many, not one line each.
static REFUSALS: Mutex<(Option<Instant>, u64)> = Mutex::new((None, 0));

/// Logs that the connection from `peer` was refused for `why`, at most
/// once a second; the refusals in between are counted in the next line.
pub fn warn_refused(peer: impl Display, why: impl Display) {
    let mut guard = REFUSALS.lock().unwrap_or_else(|p| p.into_inner());
    let (last, quiet) = &mut *guard;
    let now = Instant::now();
    if last.is_some_and(|t| now - t < Duration::from_secs(1)) {
        *quiet += 1;
        return;
    }
    if *quiet > 0 {
        log::warn!("refusing {peer}: {why} ({quiet} more refused in the last second)");
    } else {
        log::warn!("refusing {peer}: {why}");
    }
    *last = Some(now);
    *quiet = 0;
}

/// A number of seconds, possibly fractional, positive and finite: the
/// value of `--idle-timeout`, `--login-timeout` and the like.
///
/// # Errors
///
/// A message for clap when `text` is not such a number.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(servers::cli::parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
/// assert!(servers::cli::parse_seconds("0").is_err());
/// assert!(servers::cli::parse_seconds("soon").is_err());
/// ```
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 1e9) {
        return Err(format!("{text} must be above 0 and at most 1e9 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `HOST:PORT` resolved to its first address: the value of `--to`.
///
/// # Errors
///
/// A message for clap when `text` does not resolve.
///
/// # Examples
///
/// ```
/// let addr = servers::cli::parse_socket_addr("127.0.0.1:8000").unwrap();
/// assert_eq!(addr.port(), 8000);
/// assert!(servers::cli::parse_socket_addr("no port").is_err());
/// ```
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}
