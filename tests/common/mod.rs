//! Helpers shared by every integration test: socket pairs, event
//! expectations that name their backend, and the harness that runs an
//! example binary as a user would (port 0, wait for `listening on`).
//!
//! Each test file includes this with `mod common;` and uses what it needs.
#![allow(dead_code)]

/// The backends every per-backend test runs on, written once: a module
/// name and the `Backend` variant it tests. [`backend_tests!`] and
/// [`BACKENDS`] both come from this list, so a new backend (one more
/// variant in `Backend::ALL`) is one more line here; the test
/// `the_test_backends_are_backend_all` (tests/poller_contract.rs) fails
/// until that line is added.
macro_rules! with_backends {
    ($then:ident ! ( $($args:tt)* )) => {
        $then! { $($args)* [
            select => Select,
            poll => Poll,
            epoll => Epoll,
            uring => Uring,
        ] }
    };
}

/// Instantiates each `fn name(backend: Backend)` once per backend, in a
/// module named after the backend, so every test name carries its backend
/// and a failure reads `poll::name` (CPython's `BaseSelectorTestCase`
/// mixin, in Rust). Test files use it through `#[macro_use] mod common;`:
///
/// ```ignore
/// backend_tests!(readable_after_the_peer_writes, unregister_stops_events);
/// ```
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($($test:ident),* $(,)?) => {
        with_backends!(backend_tests!(@each [$($test),*]));
    };
    (@each $tests:tt [$($module:ident => $variant:ident),* $(,)?]) => {
        $( backend_tests!(@one $module $variant $tests); )*
    };
    (@one $module:ident $variant:ident [$($test:ident),*]) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test(::reactor::Backend::$variant)
                }
            )*
        }
    };
}

/// Turns the list of [`with_backends!`] into a slice of `Backend`.
macro_rules! backend_slice {
    ([$($module:ident => $variant:ident),* $(,)?]) => {
        &[$(::reactor::Backend::$variant),*]
    };
}

/// Every backend the tests run on, in the order of [`with_backends!`]:
/// for the harness-free binaries ([`runner::Runner::per_backend`]) and for
/// tests that walk all backends inside one test on purpose.
pub const BACKENDS: &[Backend] = with_backends!(backend_slice!());

pub mod runner;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use reactor::{AnyPoller, Backend, Event, Events, Poller};

/// Generous default for "this should happen soon" (the machine is noisy).
pub const SOON: Duration = Duration::from_secs(5);

/// A poller of `backend`.
pub fn new_poller(backend: Backend) -> AnyPoller {
    backend
        .new_poller()
        .unwrap_or_else(|e| panic!("[{backend}] create poller: {e}"))
}

/// A connected, non-blocking `AF_UNIX` stream pair.
pub fn socket_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Polls until an event for `key` arrives (other keys' events, and
/// spurious wake-ups, are skipped) and returns it; fails after `SOON`.
#[track_caller]
pub fn expect_event(poller: &mut impl Poller, key: usize) -> Event {
    let deadline = Instant::now() + SOON;
    let mut events = Events::with_capacity(64);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "[{}] no event for key {key} within {SOON:?}",
            poller.name()
        );
        poller
            .poll(&mut events, Some(left))
            .unwrap_or_else(|e| panic!("[{}] poll: {e}", poller.name()));
        if let Some(event) = events.iter().find(|e| e.key() == key) {
            return *event;
        }
    }
}

/// Polls for `wait` and fails if an event for `key` arrives. Events for
/// other keys are tolerated.
#[track_caller]
pub fn expect_no_event(poller: &mut impl Poller, key: usize, wait: Duration) {
    let deadline = Instant::now() + wait;
    let mut events = Events::with_capacity(64);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        poller
            .poll(&mut events, Some(left))
            .unwrap_or_else(|e| panic!("[{}] poll: {e}", poller.name()));
        if let Some(event) = events.iter().find(|e| e.key() == key) {
            panic!("[{}] unexpected event {event:?}", poller.name());
        }
    }
}

/// Where cargo put the example binaries: `target/<profile>/examples/`,
/// found from this test binary's own path (`target/<profile>/deps/<test>`),
/// so it works under any `CARGO_TARGET_DIR`.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example binary {} not built (cargo test builds examples)",
        path.display()
    );
    path
}

/// A running example program, killed when dropped.
pub struct Example {
    /// The process.
    pub child: Child,
    /// Its stdin, if it was asked for.
    pub stdin: Option<ChildStdin>,
    /// The address (or path) from its `listening on` line.
    pub listening_on: String,
    /// Lines of stdout after the `listening on` line.
    lines: Receiver<String>,
    /// Lines of stderr.
    errors: Receiver<String>,
}

impl Example {
    /// Starts example `name` with `args` and waits for its `listening on …
    /// (backend: …)` line. Pass `--addr 127.0.0.1:0` (or `--path`) yourself.
    #[track_caller]
    pub fn start(name: &str, args: &[&str]) -> Example {
        Example::start_with(name, args, |_| {})
    }

    /// As [`Example::start`], with a hook to adjust the `Command` (set an
    /// rlimit in `pre_exec`, an environment variable, piped stdin).
    #[track_caller]
    pub fn start_with(name: &str, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Example {
        let mut command = Example::command(example_path(name));
        command.args(args);
        adjust(&mut command);
        Example::launch(command, &format!("{name} {args:?}"))
    }

    /// `program` with the defaults every example runs with: no stdin,
    /// stdout and stderr piped to the test, and no inherited
    /// `REACTOR_BACKEND`. Callers may override them afterwards.
    fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("REACTOR_BACKEND");
        command
    }

    /// Spawns `command` and waits for its `listening on … (backend: …)`
    /// line; `what` names it in failure messages.
    #[track_caller]
    fn launch(mut command: Command, what: &str) -> Example {
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stdin = child.stdin.take();
        let lines = read_lines(child.stdout.take().unwrap());
        let errors = read_lines(child.stderr.take().unwrap());
        let mut example = Example {
            child,
            stdin,
            listening_on: String::new(),
            lines,
            errors,
        };
        let first = example
            .next_line(Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "{what} printed no `listening on` line; stderr: {}",
                    example.stderr()
                )
            });
        let rest = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{what}: first line {first:?} is not `listening on …`"));
        let (addr, backend) = rest
            .split_once(" (backend: ")
            .expect("`(backend: …)` in the listening line");
        assert!(backend.ends_with(')'), "{first:?}");
        example.listening_on = addr.to_owned();
        example
    }

    /// The TCP address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listening_on.parse().expect("a socket address")
    }

    /// The next line of stdout, or `None` after `wait`.
    pub fn next_line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Reads stdout until a line satisfies `want`; fails after `SOON`.
    #[track_caller]
    pub fn expect_line(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SOON;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no stdout line {what} within {SOON:?}; stderr: {}",
                        self.stderr()
                    )
                }
            }
        }
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.errors.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill only sends a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill");
    }

    /// Waits for the process to exit; fails (and kills it) after `wait`.
    #[track_caller]
    pub fn wait_exit(&mut self, wait: Duration) -> ExitStatus {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "process did not exit within {wait:?}; stderr: {}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards each line of `pipe` into a channel, so reads can time out.
fn read_lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// CPU time (user + system, in clock ticks) a process has used, from
/// `/proc/<pid>/stat` fields 14 and 15: the busy-loop detector.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // The command name (field 2) may hold spaces; count from after its ')'.
    let after = &stat[stat.rfind(')').expect("')' in stat") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Fraction of one core that `pid` used during `window`.
pub fn cpu_share(pid: i32, window: Duration) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = cpu_ticks(pid);
    std::thread::sleep(window);
    (cpu_ticks(pid) - before) as f64 / hz / window.as_secs_f64()
}

/// How many descriptors `pid` has open.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Children of `ppid` that are zombies (state `Z`).
pub fn zombies(ppid: i32) -> Vec<i32> {
    children(ppid)
        .into_iter()
        .filter(|&(_, state)| state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// `(pid, state)` of every child of `ppid`, from `/proc/*/stat`.
pub fn children(ppid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if fields.len() > 1 && fields[1].parse::<i32>() == Ok(ppid) {
            out.push((pid, fields[0].chars().next().unwrap_or('?')));
        }
    }
    out
}

/// A close-on-exec copy of `fd` numbered `target` or above (`F_DUPFD_CLOEXEC`),
/// for tests that need high descriptor numbers.
pub fn dup_at_least(fd: &impl AsRawFd, target: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own; the result is
    // a new descriptor nothing else owns.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, target) };
    assert!(
        new >= target,
        "F_DUPFD_CLOEXEC to {target}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `new` is a fresh descriptor owned by no one else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(new) }
}

/// Resident memory of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`): the
/// unbounded-buffering detector.
pub fn rss_kib(pid: i32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Sets the child's `RLIMIT_NOFILE` (soft and hard) to `limit` before it
/// runs: for out-of-descriptor tests on an example.
pub fn limit_nofile(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let rlim = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: the closure runs between fork and exec and only calls
    // setrlimit, which is async-signal-safe; `rlim` is a copied value.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Makes the child start with descriptors `from..to` already open (on
/// `/dev/null`), so that what it opens itself gets the numbers below `from`
/// and, once those run out, numbers from `to` up: a cheap way to push a
/// server's connections past select's FD_SETSIZE.
pub fn occupy_fds(command: &mut Command, from: i32, to: i32) {
    use std::os::unix::process::CommandExt;
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    // SAFETY: the closure runs between fork and exec and only calls dup2,
    // which is async-signal-safe; `null` stays open in the parent's closure
    // for as long as the Command lives. dup2 leaves the copies without
    // close-on-exec, so they survive into the example.
    unsafe {
        command.pre_exec(move || {
            for fd in from..to {
                if libc::dup2(null.as_raw_fd(), fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

impl Example {
    /// As [`Example::start`], but run under a wrapper program:
    /// `wrapper[0] wrapper[1..] <example binary> args…` (e.g. `strace -f -e
    /// inject=…` to inject system-call failures). [`Example::pid`] is then the
    /// wrapper's pid, not the example's.
    #[track_caller]
    pub fn start_wrapped(wrapper: &[&str], name: &str, args: &[&str]) -> Example {
        let mut command = Example::command(wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(example_path(name))
            .args(args);
        Example::launch(command, &format!("{wrapper:?} {name} {args:?}"))
    }
}

/// Whether `program` can be run (found on `PATH`).
pub fn have_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Skips the running test unless `program` is installed: the runner of a
/// harness-free binary counts the test as skipped (see [`runner::skip`]).
pub fn require_program(program: &str) {
    if !have_program(program) {
        runner::skip(&format!("{program} is not installed"));
    }
}

/// A small seeded generator (xorshift64*), so a failing random test
/// repeats exactly: the one generator every test uses.
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (zero is replaced: xorshift would
    /// stay at zero for ever).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A connected TCP pair over loopback, both ends non-blocking:
/// `(accepted, connected)`.
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    server.set_nonblocking(true).unwrap();
    client.set_nonblocking(true).unwrap();
    (server, client)
}

/// Writes `data` to the non-blocking `stream` in chunks of up to 64 KiB
/// until all of it is sent or the peer has taken nothing for 300 ms (it
/// stopped reading); returns how many bytes went out. Fails after 20 s
/// (`what` names the test in messages).
#[track_caller]
pub fn write_until_stalled(stream: &mut impl std::io::Write, data: &[u8], what: &str) -> usize {
    let mut sent = 0;
    let mut stalled_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent < data.len() && stalled_since.elapsed() < Duration::from_millis(300) {
        assert!(Instant::now() < deadline, "[{what}] burst did not settle");
        let end = (sent + 64 * 1024).min(data.len());
        match stream.write(&data[sent..end]) {
            Ok(n) => {
                sent += n;
                stalled_since = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("[{what}] write: {e}"),
        }
    }
    sent
}

/// A close-on-exec, non-blocking pipe: `(read end, write end)`.
pub fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(ret, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// Makes the next `close` of `stream` send a TCP RST instead of a FIN
/// (`SO_LINGER {on, 0}`).
pub fn set_linger_zero(stream: &impl AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a live `linger` of the size given.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        ret,
        0,
        "setsockopt(SO_LINGER): {}",
        std::io::Error::last_os_error()
    );
}

/// Tests in one binary run on parallel threads and share one descriptor
/// table. Most take this lock shared; a test that needs the table to itself
/// (it opens thousands of fds, so that others' fds would climb past select's
/// 1024, or it closes an fd and must not see the number reused by another
/// thread) takes it exclusively with [`fds_exclusive`].
static FD_TABLE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Shares the descriptor table with the other ordinary tests.
pub fn fds_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    FD_TABLE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Has the descriptor table to itself until the guard drops.
pub fn fds_exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    FD_TABLE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
