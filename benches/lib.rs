//! Helpers shared by the benchmarks (the `reactor-bench` package's library):
//! the environment header every report starts with, non-blocking
//! socketpairs and eventfds, the descriptor limit, CPU pinning, one-byte
//! I/O, and the interleaved rounds that judge B1, B2, B5 and B8 ([`rounds`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub mod peers;
pub mod rounds;

/// The machine facts every report prints first (docs/benchmarks.md): `nproc`, the
/// kernel, `ulimit -n`, and the idle/mitigation settings from the kernel
/// command line.
pub fn env_header() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read_trimmed("/proc/sys/kernel/osrelease");
    let cmdline = read_trimmed("/proc/cmdline");
    let idle: Vec<&str> = cmdline
        .split_whitespace()
        .filter(|w| {
            w.starts_with("mitigations")
                || w.contains("idle")
                || w.contains("halt_poll")
                || w.starts_with("nohz")
        })
        .collect();
    let governor = read_trimmed("/sys/devices/system/cpu/cpuidle/current_governor_ro");
    format!(
        "# environment: nproc={nproc} kernel={kernel} ulimit -n={} cpuidle={} cmdline: {}",
        nofile_limit(),
        if governor.is_empty() { "?" } else { &governor },
        if idle.is_empty() {
            "-".to_owned()
        } else {
            idle.join(" ")
        }
    )
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The soft `RLIMIT_NOFILE`.
pub fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit the kernel fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    lim.rlim_cur
}

/// Descriptors open in this process now (`/proc/self/fd`).
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Whether `extra` more descriptors fit under the limit with some headroom;
/// prints a skip message when they do not.
pub fn fds_available(extra: u64, what: &str) -> bool {
    let limit = nofile_limit();
    let need = open_fds() + extra + 64;
    if need > limit {
        eprintln!("skipping {what}: needs about {need} descriptors, ulimit -n is {limit}");
        false
    } else {
        true
    }
}

/// A non-blocking, close-on-exec AF_UNIX stream socketpair.
pub fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(ret, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// `n` socketpairs.
pub fn socketpairs(n: usize) -> Vec<(OwnedFd, OwnedFd)> {
    (0..n).map(|_| socketpair()).collect()
}

/// A non-blocking eventfd that is never written: a one-descriptor idle
/// registration.
pub fn eventfd() -> OwnedFd {
    // SAFETY: eventfd takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: just created, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Writes one byte; panics on failure (the benchmarks' pipes never fill).
#[inline]
pub fn write_byte(fd: RawFd) {
    let b = [b'e'];
    // SAFETY: `b` is a valid 1-byte buffer.
    let n = unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
    debug_assert_eq!(n, 1);
    if n != 1 {
        panic!("write: {}", std::io::Error::last_os_error());
    }
}

/// Reads what is there (up to 64 bytes) and returns how many bytes came.
#[inline]
pub fn read_some(fd: RawFd) -> usize {
    let mut b = [0u8; 64];
    // SAFETY: `b` is a valid 64-byte buffer.
    let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
    if n < 0 { 0 } else { n as usize }
}

/// Pins the calling thread (or process, before it spawns threads) to `cpu`.
/// Returns false (and says why) where the CPU does not exist.
pub fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        eprintln!(
            "could not pin to cpu{cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    ok
}

/// An epoll instance (raw, for the plain libc peers).
pub fn epoll_create() -> OwnedFd {
    // SAFETY: no pointers.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(
        fd >= 0,
        "epoll_create1: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: just created.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `epoll_ctl(op, fd)` with `data.u64 = key`.
pub fn epoll_ctl(ep: &OwnedFd, op: libc::c_int, fd: RawFd, events: u32, key: u64) {
    let mut ev = libc::epoll_event { events, u64: key };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    let ret = unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &mut ev) };
    assert_eq!(ret, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
}

/// The median of a slice (sorted in place); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// CPU time (utime + stime, from `/proc/<pid>/stat`) a process has used,
/// in seconds: how the drivers charge a server for a round.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based).
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (tick(11) + tick(12)) as f64 / hz
}

/// Stops a server process: SIGTERM, three seconds to exit, then SIGKILL;
/// reaps it either way.
pub fn stop_child(child: &mut std::process::Child) {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Re-executes this benchmark binary as `--serve <arg>` (a server process
/// of the driver) and waits for its `listening on <addr> …` line; returns
/// the process and the address, or the reason it failed.
pub fn spawn_self_server(
    arg: &std::ffi::OsStr,
) -> Result<(std::process::Child, std::net::SocketAddr), String> {
    use std::io::BufRead;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .arg("--serve")
        .arg(arg)
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn server: {e}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the server said {line:?}"))?;
    Ok((child, addr))
}
