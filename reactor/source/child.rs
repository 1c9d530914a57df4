//! Child processes as event sources: learn through `poll` that a child
//! exited, and reap it, so that no zombie is ever left behind.
//!
//! # Zombies and orphans, as the course puts them
//!
//! - **僵尸进程 (zombie)**: "子进程先于父进程退出，但是父进程没有处理子进程的退出
//!   状态" — the child exited first and the parent has not collected its exit
//!   status. The kernel keeps part of its PCB (pid, status, resource usage)
//!   until someone does; many zombies waste memory and, worse, pids. Shown as
//!   state `Z` in `ps` and `/proc/<pid>/stat`.
//! - **孤儿进程 (orphan)**: "父进程先于子进程退出" — the parent exited first. The
//!   system adopts the orphan (init, or the nearest subreaper), which reaps it
//!   when it exits, so an orphan never becomes a zombie. The course's "二级子进程"
//!   (double fork) uses exactly that: the middle child exits at once, is reaped
//!   by `waitpid`, and the grandchild, an orphan, is someone else's problem.
//!
//! The cure for zombies is the course's: the parent *handles* each child's
//! exit with `wait`/`waitpid`. A server cannot block in `os.wait()`, so it
//! must learn *when* a child exited without blocking, which is what this
//! module turns into ordinary `poll` events, in one of two ways ([`ChildMode`]):
//!
//! 1. **pidfd** (Linux ≥ 5.4, preferred: `pidfd_open` came in 5.3,
//!    `waitid(P_PIDFD)` in 5.4): [`Pidfd::open`] gives a descriptor
//!    for one child, which becomes readable when the child exits. Insert it
//!    into the [`Reactor`](crate::Reactor) like a socket; when it is readable
//!    [`Pidfd::try_wait`] reaps exactly that child with
//!    `waitid(P_PIDFD, fd, WEXITED | WNOHANG)`. Nothing global is touched: no
//!    signal handler, no `waitpid(-1)` stealing other code's children, and no
//!    pid-reuse race ([`Pidfd::send_signal`] cannot hit a recycled pid).
//! 2. **SIGCHLD** (the fallback when `pidfd_open` says `ENOSYS`, or
//!    `waitid(P_PIDFD)` says `EINVAL`): a
//!    [`Reaper`] turns SIGCHLD into an event through [`Signals`]' self-pipe,
//!    and [`Reaper::reap`] calls `waitpid(-1, WNOHANG)` **in a loop until it
//!    returns 0 or `ECHILD`**. The loop is the whole point: SIGCHLD signals
//!    coalesce (signal(7): standard signals do not queue), so when five
//!    children exit together the parent may see one SIGCHLD; one `waitpid`
//!    per signal would leave four zombies (docs/reliability.md, "Many children exit at once"). This is tokio's
//!    and libev's (`ev_child`) approach. It owns *every* child of the
//!    process: a `std::process::Child::wait` elsewhere in the same program
//!    would find its child already reaped (`ECHILD`).
//!
//! The code that reaps is [`Pidfd::try_wait`] and [`reap_exited`]; the
//! `prefork_echo` example shows both modes in a real server
//! (`--child-mode pidfd|sigchld`).
//!
//! # `signal(SIGCHLD, SIG_IGN)`: the course's third way, and why not here
//!
//! The course also shows `signal.signal(signal.SIGCHLD, signal.SIG_IGN)`: with
//! SIGCHLD ignored (or `SA_NOCLDWAIT`) the kernel reaps children itself and
//! no zombie is ever made. The price is that the exit status is thrown away
//! and *waiting becomes impossible*: `waitpid(pid)` blocks until **all**
//! children have exited and then fails with `ECHILD` (wait(2) NOTES), a
//! pidfd still becomes readable but `waitid` on it fails with `ECHILD`, and
//! so does any `std::process::Command::status()` in the same process. A
//! supervisor must know which worker died and how, so this module never
//! uses auto-reap; [`Reaper::new`] installs a real handler, replacing
//! `SIG_IGN` for as long as it lives, and [`Pidfd::try_wait`] reports
//! `ECHILD` as an error that says someone else reaped the child.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::source::{Signal, Signals, signal_name};
use crate::sys;

/// How a child process ended: the wait status `waitpid` reports.
///
/// Prints as the course would explain it: `exited with 3`, `killed by
/// SIGKILL`, `killed by SIGSEGV (core dumped)`.
///
/// # Examples
///
/// ```
/// use reactor::ExitStatus;
///
/// assert_eq!(ExitStatus::from_raw(3 << 8).to_string(), "exited with 3");
/// assert_eq!(ExitStatus::from_raw(3 << 8).code(), Some(3));
/// assert_eq!(ExitStatus::from_raw(libc::SIGKILL).to_string(), "killed by SIGKILL");
/// assert_eq!(ExitStatus::from_raw(libc::SIGKILL).signal(), Some(reactor::Signal::KILL));
/// assert!(ExitStatus::from_raw(0).success());
/// ```
///
/// Python: `pid, status = os.waitpid(pid, os.WNOHANG)`; `status // 256` is
/// the exit code, as the course notes say ("status除以256才是真正的退出状态").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus(libc::c_int);

impl ExitStatus {
    /// Wraps a raw wait status, as `waitpid` fills it in.
    pub const fn from_raw(status: libc::c_int) -> ExitStatus {
        ExitStatus(status)
    }

    /// The raw wait status.
    pub const fn raw(self) -> libc::c_int {
        self.0
    }

    /// The exit code, if the child called `exit` (`WIFEXITED`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// use std::process::Command;
    /// use reactor::ExitStatus;
    ///
    /// let exited = Command::new("sh").args(["-c", "exit 3"]).status()?;
    /// let exited = ExitStatus::from_raw(exited.into_raw());
    /// assert_eq!((exited.code(), exited.signal(), exited.success()), (Some(3), None, false));
    /// let killed = Command::new("sh").args(["-c", "kill -9 $$"]).status()?;
    /// let killed = ExitStatus::from_raw(killed.into_raw());
    /// assert_eq!((killed.code(), killed.signal()), (None, Some(reactor::Signal::KILL)));
    /// assert!(ExitStatus::from_raw(Command::new("true").status()?.into_raw()).success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `os.WIFEXITED(status) and os.WEXITSTATUS(status)`
    pub fn code(self) -> Option<i32> {
        libc::WIFEXITED(self.0).then(|| libc::WEXITSTATUS(self.0))
    }

    /// The signal that killed the child, if one did (`WIFSIGNALED`).
    ///
    /// # Examples
    ///
    /// See the example on [`code`](ExitStatus::code).
    ///
    /// Python: `os.WIFSIGNALED(status) and os.WTERMSIG(status)`
    pub fn signal(self) -> Option<Signal> {
        libc::WIFSIGNALED(self.0).then(|| Signal::from_raw(libc::WTERMSIG(self.0)))
    }

    /// Whether the child dumped core as it died.
    pub fn core_dumped(self) -> bool {
        libc::WIFSIGNALED(self.0) && libc::WCOREDUMP(self.0)
    }

    /// Whether the child exited with code 0.
    ///
    /// # Examples
    ///
    /// See the example on [`code`](ExitStatus::code).
    ///
    /// Python: `os.waitstatus_to_exitcode(status) == 0`
    pub fn success(self) -> bool {
        self.code() == Some(0)
    }

    /// The status `waitid` describes with `si_code` and `si_status`.
    fn from_siginfo(code: libc::c_int, status: libc::c_int) -> ExitStatus {
        match code {
            // Normal exit: the code goes in bits 8..16, as waitpid puts it.
            libc::CLD_EXITED => ExitStatus((status & 0xff) << 8),
            // Killed: the signal in the low 7 bits, 0x80 if it dumped core.
            libc::CLD_DUMPED => ExitStatus((status & 0x7f) | 0x80),
            _ => ExitStatus(status & 0x7f),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(code) = self.code() {
            write!(f, "exited with {code}")
        } else if let Some(signal) = self.signal() {
            write!(f, "killed by {signal}")?;
            if self.core_dumped() {
                f.write_str(" (core dumped)")?;
            }
            Ok(())
        } else {
            write!(f, "wait status {:#x}", self.0)
        }
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExitStatus({self})")
    }
}

impl From<ExitStatus> for std::process::ExitStatus {
    fn from(status: ExitStatus) -> std::process::ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        std::process::ExitStatus::from_raw(status.0)
    }
}

/// How this process learns that its children exited (see the module docs).
///
/// # Examples
///
/// ```
/// use reactor::ChildMode;
///
/// // Linux ≥ 5.4 has pidfd_open and waitid(P_PIDFD); older kernels (or a seccomp filter) fall back.
/// let mode = ChildMode::detect();
/// assert!(matches!(mode, ChildMode::Pidfd | ChildMode::Sigchld));
/// assert_eq!("sigchld".parse::<ChildMode>()?, ChildMode::Sigchld);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `os.pidfd_open` and `os.P_PIDFD` exist (3.9+, Linux ≥ 5.4), else `signal.SIGCHLD`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildMode {
    /// One [`Pidfd`] per child, each in the reactor.
    Pidfd,
    /// One [`Reaper`] for all children: SIGCHLD, then `waitpid(-1, WNOHANG)`.
    Sigchld,
}

/// `detect`'s cached answer: 0 unknown, 1 pidfd, 2 sigchld.
static DETECTED: AtomicU8 = AtomicU8::new(0);

impl ChildMode {
    /// [`Pidfd`] if this kernel has both calls that mode uses — `pidfd_open`
    /// (Linux 5.3) and `waitid(P_PIDFD)` (Linux 5.4) — else
    /// [`Sigchld`](ChildMode::Sigchld). Probed once, on this process's own
    /// pid: on Linux 5.3 `pidfd_open` works but `waitid(P_PIDFD)` fails with
    /// `EINVAL`, which would make every [`Pidfd::try_wait`] fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::ChildMode;
    ///
    /// let mode = ChildMode::detect();
    /// assert_eq!(ChildMode::detect(), mode); // probed once, then remembered
    /// assert_eq!(mode.name().parse::<ChildMode>()?, mode);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `hasattr(os, "pidfd_open")` and `hasattr(os, "P_PIDFD")` (and calls that do not fail with `ENOSYS` or `EINVAL`)
    pub fn detect() -> ChildMode {
        match DETECTED.load(Ordering::Relaxed) {
            1 => return ChildMode::Pidfd,
            2 => return ChildMode::Sigchld,
            _ => {}
        }
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() };
        let mode = match Pidfd::open(me).and_then(|probe| probe.probe_waitid()) {
            Ok(()) => ChildMode::Pidfd,
            Err(err) => {
                log::trace!("pidfds unusable ({err}): falling back to SIGCHLD");
                ChildMode::Sigchld
            }
        };
        DETECTED.store(
            if mode == ChildMode::Pidfd { 1 } else { 2 },
            Ordering::Relaxed,
        );
        mode
    }

    /// `"pidfd"` or `"sigchld"`.
    pub fn name(self) -> &'static str {
        match self {
            ChildMode::Pidfd => "pidfd",
            ChildMode::Sigchld => "sigchld",
        }
    }
}

impl fmt::Display for ChildMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChildMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<ChildMode, String> {
        match s {
            "pidfd" => Ok(ChildMode::Pidfd),
            "sigchld" => Ok(ChildMode::Sigchld),
            _ => Err(format!(
                "unknown child mode {s:?}: expected pidfd or sigchld"
            )),
        }
    }
}

/// A descriptor for one child process (`pidfd_open(2)`): readable once the
/// child has exited.
///
/// Insert it into a [`Reactor`](crate::Reactor) with
/// [`Interest::READABLE`](crate::Interest::READABLE); when its event comes,
/// call [`try_wait`](Pidfd::try_wait) to reap the child, then remove it
/// (it stays readable).
///
/// # Examples
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
/// use reactor::{ChildMode, Events, Interest, Pidfd, Reactor};
///
/// if ChildMode::detect() == ChildMode::Pidfd {
///     let child = Command::new("sh").args(["-c", "exit 3"]).spawn()?;
///     let mut reactor = Reactor::new()?;
///     let token = reactor.insert(Pidfd::open(child.id() as i32)?, Interest::READABLE)?;
///     let mut events = Events::with_capacity(4);
///     let status = loop {
///         reactor.poll(&mut events, Some(Duration::from_secs(10)))?;
///         if let Some(status) = reactor.get_mut(token).unwrap().try_wait()? {
///             break status;
///         }
///     };
///     reactor.remove(token)?;
///     assert_eq!(status.to_string(), "exited with 3");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `fd = os.pidfd_open(pid)`; `poller.register(fd, POLLIN)`
#[derive(Debug)]
pub struct Pidfd {
    /// The child's pid, for messages (the fd is what identifies it).
    pid: libc::pid_t,
    /// The pidfd: close-on-exec, as every pidfd is.
    fd: OwnedFd,
    /// Its exit status, once reaped; later `try_wait`s return it again.
    status: Option<ExitStatus>,
}

impl Pidfd {
    /// Opens a pidfd for `pid`, which should be a child of this process (a
    /// pidfd for any process can be polled, but only a child can be reaped).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) from `pidfd_open`: `ENOSYS` on kernels before 5.3
    /// (use a [`Reaper`] instead), `ESRCH` if no such process exists (an
    /// exited but unreaped child still exists, as a zombie, so this is not
    /// racy for children).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Command;
    /// use reactor::{ChildMode, Pidfd};
    ///
    /// if ChildMode::detect() == ChildMode::Pidfd {
    ///     let mut child = Command::new("true").spawn()?;
    ///     let pidfd = Pidfd::open(child.id() as i32)?;
    ///     assert_eq!(pidfd.pid(), child.id() as i32);
    ///     child.wait()?; // reaped by std this time; no zombie is left
    ///     assert!(Pidfd::open(i32::MAX).is_err()); // ESRCH: no such process
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `fd = os.pidfd_open(pid)`
    pub fn open(pid: libc::pid_t) -> Result<Pidfd> {
        Pidfd::open_pid(pid)
    }

    /// Opens a pidfd for a child started with [`std::process::Command`]:
    /// no pid to convert, no libc. Reap it through the pidfd
    /// ([`try_wait`](Pidfd::try_wait)), not with `child.wait()` as well.
    ///
    /// # Errors
    ///
    /// As [`open`](Pidfd::open): `ENOSYS` before Linux 5.3.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Command;
    /// use reactor::{ChildMode, Pidfd, Signal};
    ///
    /// if ChildMode::detect() == ChildMode::Pidfd {
    ///     let child = Command::new("sleep").arg("10").spawn()?;
    ///     let mut pidfd = Pidfd::from_child(&child)?;
    ///     pidfd.send_signal(Signal::TERM)?;
    ///     while pidfd.try_wait()?.is_none() {
    ///         std::thread::sleep(std::time::Duration::from_millis(5)); // a real loop polls
    ///     }
    ///     assert_eq!(pidfd.try_wait()?.unwrap().signal(), Some(Signal::TERM));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `os.pidfd_open(proc.pid)` for a `subprocess.Popen`
    pub fn from_child(child: &std::process::Child) -> Result<Pidfd> {
        match libc::pid_t::try_from(child.id()) {
            Ok(pid) => Pidfd::open_pid(pid),
            Err(_) => Err(Error::Sys {
                call: "pidfd_open",
                fd: None,
                source: std::io::Error::from_raw_os_error(libc::ESRCH),
            }),
        }
    }

    fn open_pid(pid: libc::pid_t) -> Result<Pidfd> {
        // SAFETY: pidfd_open takes a pid and flags, no pointers; it returns
        // a new fd or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = sys::check(ret as libc::c_int, "pidfd_open", None)?;
        log::trace!("pidfd_open(pid={pid}) → fd={fd}");
        // SAFETY: the kernel just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Pidfd {
            pid,
            fd,
            status: None,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Whether `waitid(P_PIDFD)` works on this kernel, asked on a pidfd that
    /// is not our child (our own): a kernel that knows `P_PIDFD` (Linux
    /// 5.4+) answers `ECHILD`, an older one `EINVAL`.
    fn probe_waitid(&self) -> Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        match waitid_nohang(fd, &mut info) {
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                log::trace!("waitid(P_PIDFD, fd={fd}) → ECHILD (not our child): supported");
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Reaps the child if it has exited: `Some(status)`, else `None`.
    /// Never blocks. After the child is reaped, returns the same status
    /// again.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys) from `waitid`; `ECHILD` means the child was reaped
    /// elsewhere (a `waitpid(-1)` loop, or `SIGCHLD` set to `SIG_IGN`) and
    /// its status is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Command;
    /// use std::time::Duration;
    /// use reactor::{ChildMode, Pidfd};
    ///
    /// if ChildMode::detect() == ChildMode::Pidfd {
    ///     let child = Command::new("sleep").arg("10").spawn()?;
    ///     let mut pidfd = Pidfd::open(child.id() as i32)?;
    ///     assert_eq!(pidfd.try_wait()?, None); // still running; it never blocks
    ///     pidfd.send_signal(libc::SIGTERM)?;
    ///     let status = loop {
    ///         if let Some(status) = pidfd.try_wait()? { break status; }
    ///         std::thread::sleep(Duration::from_millis(5)); // a real loop would poll
    ///     };
    ///     assert_eq!(status.signal(), Some(reactor::Signal::TERM));
    ///     assert_eq!(pidfd.try_wait()?, Some(status)); // reaped once, reported again
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)`
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        waitid_nohang(self.fd.as_raw_fd(), &mut info)?;
        // SAFETY: waitid filled in a SIGCHLD-style siginfo (or left it zero).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            // WNOHANG and the child is still running.
            log::trace!(
                "waitid(P_PIDFD, fd={}) → still running",
                self.fd.as_raw_fd()
            );
            return Ok(None);
        }
        let status = ExitStatus::from_siginfo(info.si_code, status);
        log::trace!(
            "waitid(P_PIDFD, fd={}) → pid {pid} {status}: reaped",
            self.fd.as_raw_fd()
        );
        self.status = Some(status);
        Ok(Some(status))
    }

    /// Sends `signal` to the child through its pidfd
    /// (`pidfd_send_signal(2)`): unlike `kill(pid)`, it can never reach an
    /// unrelated process that reused the pid after the child was reaped.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`](crate::Error::Sys); `ESRCH` if the child has already exited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Command;
    /// use std::time::Duration;
    /// use reactor::{ChildMode, Pidfd};
    ///
    /// if ChildMode::detect() == ChildMode::Pidfd {
    ///     let child = Command::new("sleep").arg("10").spawn()?;
    ///     let mut pidfd = Pidfd::open(child.id() as i32)?;
    ///     pidfd.send_signal(libc::SIGKILL)?;
    ///     while pidfd.try_wait()?.is_none() {
    ///         std::thread::sleep(Duration::from_millis(5));
    ///     }
    ///     // Reaped: the pid may be reused, but the pidfd reaches no one now.
    ///     let err = pidfd.send_signal(libc::SIGKILL).unwrap_err();
    ///     assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `signal.pidfd_send_signal(fd, sig)`
    pub fn send_signal(&self, signal: impl Into<Signal>) -> Result<()> {
        let signal = signal.into().raw();
        // SAFETY: no pointers are passed (info = NULL means "as kill(2)").
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        sys::check(
            ret as libc::c_int,
            "pidfd_send_signal",
            Some(self.fd.as_raw_fd()),
        )?;
        log::trace!(
            "pidfd_send_signal(fd={}, {})",
            self.fd.as_raw_fd(),
            signal_name(signal)
        );
        Ok(())
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG)` into `info`, `EINTR` retried.
fn waitid_nohang(fd: RawFd, info: &mut libc::siginfo_t) -> Result<libc::c_int> {
    sys::retry("waitid(P_PIDFD)", Some(fd), || {
        // SAFETY: `info` is writable; `fd` is a live pidfd.
        unsafe {
            libc::waitid(
                libc::P_PIDFD,
                fd as libc::id_t,
                info,
                libc::WEXITED | libc::WNOHANG,
            )
        }
    })
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The SIGCHLD fallback: one source for all children, readable after any of
/// them exits; [`reap`](Reaper::reap) collects every exited child.
///
/// Owns SIGCHLD for the process while it lives (one [`Signals`] per
/// signal), and reaps *every* child, including ones spawned by other code.
/// After creating it, call `reap` once: a child that exited before the
/// handler was installed sent its SIGCHLD to nobody.
///
/// # Examples
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
/// use reactor::{Events, Interest, Reactor, Reaper};
///
/// let mut reactor = Reactor::new()?;
/// let token = reactor.insert(Reaper::new()?, Interest::READABLE)?;
/// let child = Command::new("true").spawn()?;
/// let mut events = Events::with_capacity(4);
/// let mut reaped = Vec::new();
/// while reaped.is_empty() {
///     reactor.poll(&mut events, Some(Duration::from_millis(100)))?;
///     reaped = reactor.get_mut(token).unwrap().reap()?;
/// }
/// assert_eq!(reaped[0].0, child.id() as i32);
/// assert!(reaped[0].1.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `signal.signal(SIGCHLD, handler)` where the handler loops on
/// `os.waitpid(-1, os.WNOHANG)`
#[derive(Debug)]
pub struct Reaper {
    /// SIGCHLD through the self-pipe.
    signals: Signals,
}

impl Reaper {
    /// Installs the SIGCHLD handler.
    ///
    /// # Errors
    ///
    /// As [`Signals::new`]: `EBUSY` if another `Signals` watches SIGCHLD.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::Reaper;
    ///
    /// let mut reaper = Reaper::new()?;
    /// assert!(Reaper::new().is_err()); // one SIGCHLD owner per process (EBUSY)
    /// assert!(reaper.reap()?.is_empty()); // no child has exited
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `signal.signal(signal.SIGCHLD, handler)`
    pub fn new() -> Result<Reaper> {
        Ok(Reaper {
            signals: Signals::new(&[libc::SIGCHLD])?,
        })
    }

    /// Consumes the pending SIGCHLD (if any), then reaps every exited child
    /// with [`reap_exited`]. Returns `(pid, status)` for each, possibly none
    /// (signals coalesce, and a child may have been reaped by an earlier
    /// call already).
    ///
    /// # Errors
    ///
    /// As [`Signals::read`] and [`reap_exited`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Command;
    /// use std::time::Duration;
    /// use reactor::Reaper;
    ///
    /// let mut reaper = Reaper::new()?;
    /// let mut pids = Vec::new();
    /// for _ in 0..3 {
    ///     pids.push(Command::new("true").spawn()?.id() as i32);
    /// }
    /// let mut reaped = Vec::new();
    /// while reaped.len() < 3 {
    ///     // However many SIGCHLDs coalesced, one call collects every exited child.
    ///     reaped.extend(reaper.reap()?.into_iter().map(|(pid, _)| pid));
    ///     std::thread::sleep(Duration::from_millis(5)); // a real loop would poll
    /// }
    /// pids.sort();
    /// reaped.sort();
    /// assert_eq!(reaped, pids);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: the SIGCHLD handler's `while (pid := os.waitpid(-1, os.WNOHANG)[0]): ...`
    pub fn reap(&mut self) -> Result<Vec<(libc::pid_t, ExitStatus)>> {
        self.signals.read()?;
        reap_exited()
    }

    /// Sends `signal` to the child `pid` (`kill(2)`), as `Child::id()`
    /// gives it: no `unsafe` libc call in the program. Only signal a child
    /// this reaper has not reaped yet: once reaped, its pid may be reused
    /// (a [`Pidfd`] has no such race).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] from `kill`: `ESRCH` if no such process, `EINVAL`
    /// for a bad signal.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Command;
    /// use reactor::{Reaper, Signal};
    ///
    /// let mut reaper = Reaper::new()?;
    /// let child = Command::new("sleep").arg("10").spawn()?;
    /// reaper.send_signal(child.id(), Signal::TERM)?;
    /// let status = loop {
    ///     if let Some((_, status)) = reaper.reap()?.into_iter().next() { break status; }
    ///     std::thread::sleep(std::time::Duration::from_millis(5)); // a real loop polls
    /// };
    /// assert_eq!(status.signal(), Some(Signal::TERM));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Python: `os.kill(pid, signal.SIGTERM)`
    pub fn send_signal(&self, pid: u32, signal: impl Into<Signal>) -> Result<()> {
        let signal = signal.into();
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return Err(Error::Sys {
                call: "kill",
                fd: None,
                source: std::io::Error::from_raw_os_error(libc::ESRCH),
            });
        };
        // SAFETY: kill takes two integers and no pointer; a positive pid
        // names one process (never a group: pid_t::try_from refused values
        // that would wrap to negative).
        let ret = unsafe { libc::kill(pid, signal.raw()) };
        sys::check(ret, "kill", None)?;
        log::trace!("kill(pid={pid}, {signal}) → ok");
        Ok(())
    }
}

impl AsFd for Reaper {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.signals.as_fd()
    }
}

/// Reaps every child that has exited: `waitpid(-1, WNOHANG)` until it
/// returns 0 (children remain, none exited) or fails with `ECHILD` (no
/// children at all). Never blocks.
///
/// This loop, not one `waitpid` per SIGCHLD, is what leaves no zombie when
/// signals coalesce.
///
/// # Errors
///
/// [`Error::Sys`](crate::Error::Sys) if `waitpid` fails with anything but `ECHILD` or `EINTR`
/// (retried).
///
/// # Examples
///
/// ```
/// let mut child = std::process::Command::new("true").spawn()?;
/// let pid = child.id() as i32;
/// let mut reaped = Vec::new();
/// for _ in 0..500 {
///     reaped.extend(reactor::reap_exited()?);
///     if reaped.iter().any(|&(p, _)| p == pid) { break; }
///     std::thread::sleep(std::time::Duration::from_millis(10));
/// }
/// assert!(reaped.iter().any(|&(p, status)| p == pid && status.success()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Python: `while True: pid, status = os.waitpid(-1, os.WNOHANG); if pid == 0: break`
pub fn reap_exited() -> Result<Vec<(libc::pid_t, ExitStatus)>> {
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: `status` is a writable int.
        let waited = sys::retry("waitpid(-1, WNOHANG)", None, || unsafe {
            libc::waitpid(-1, &mut status, libc::WNOHANG)
        });
        match waited {
            // Children remain, none has exited.
            Ok(0) => break,
            // No children at all: nothing left to reap.
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break,
            Err(e) => return Err(e),
            // One exited child reaped; look for more.
            Ok(pid) => {
                let status = ExitStatus::from_raw(status);
                log::trace!("waitpid(-1, WNOHANG) → pid {pid} {status}: reaped");
                reaped.push((pid, status));
            }
        }
    }
    if reaped.is_empty() {
        log::trace!("waitpid(-1, WNOHANG) → no exited child");
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_print_like_the_course_explains_them() {
        assert_eq!(ExitStatus::from_raw(0).to_string(), "exited with 0");
        assert_eq!(
            ExitStatus::from_raw(255 << 8).to_string(),
            "exited with 255"
        );
        assert_eq!(
            ExitStatus::from_raw(libc::SIGTERM).to_string(),
            "killed by SIGTERM"
        );
        assert_eq!(
            ExitStatus::from_raw(libc::SIGSEGV | 0x80).to_string(),
            "killed by SIGSEGV (core dumped)"
        );
        assert_eq!(ExitStatus::from_raw(40).to_string(), "killed by signal 40");
    }

    #[test]
    fn siginfo_and_wait_status_agree() {
        assert_eq!(
            ExitStatus::from_siginfo(libc::CLD_EXITED, 3),
            ExitStatus::from_raw(3 << 8)
        );
        assert_eq!(
            ExitStatus::from_siginfo(libc::CLD_KILLED, 9),
            ExitStatus::from_raw(9)
        );
        assert!(ExitStatus::from_siginfo(libc::CLD_DUMPED, 11).core_dumped());
    }

    #[test]
    fn modes_parse() {
        assert_eq!("pidfd".parse::<ChildMode>(), Ok(ChildMode::Pidfd));
        assert!("fork".parse::<ChildMode>().is_err());
    }
}
