//! `files`: what each multiplexer makes of a regular file, `/dev/null` and
//! a terminal.
//!
//! Readiness is a property of streams (sockets, pipes, terminals): "a read
//! would not block". A regular file never makes a reader wait for anybody,
//! so select and poll report it ready at once, at every call — even at end
//! of file — and epoll refuses to watch it: `epoll_ctl` fails with `EPERM`
//! ("The target file fd does not support epoll", epoll_ctl(2)). A loop that
//! waits on a file for "more data" spins on select and poll and fails to
//! start on epoll, typically as `prog < file`, when stdin is a file. A
//! terminal is a real stream: all three wait until a line is typed.
//!
//! The fix: do not multiplex regular files. Check with `fstat` (`S_ISREG`)
//! and read them directly; keep the multiplexer for streams.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use reactor::{Backend, Interest, Poller, Trigger};

use crate::{
    Result, check, epoll_ctl, epoll_instance, epoll_wait, errno, errno_name, heading,
    poll_readable, select_readable,
};

pub fn run(backends: &[Backend]) -> Result {
    println!(
        "files: a regular file (at end of file), /dev/null and a terminal (a pseudo-terminal, nothing typed),"
    );
    println!("each watched for reading with a zero timeout");
    let dir = std::env::temp_dir().join(format!("pitfalls-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("notes.txt");
    std::fs::write(&path, "my notes\n")?;
    let file = std::fs::File::open(&path)?;
    std::io::Read::read_to_end(&mut &file, &mut Vec::new())?; // at end of file
    let null = std::fs::File::open("/dev/null")?;
    let mut targets = vec![
        ("regular file", file.as_raw_fd()),
        ("/dev/null", null.as_raw_fd()),
    ];
    // A container without /dev/pts has no terminal to show.
    let pty = match Pty::open() {
        Ok(pty) => {
            targets.push(("terminal", pty.slave.as_raw_fd()));
            Some(pty)
        }
        Err(err) => {
            println!("skipped: no pseudo-terminal here ({err}): the terminal rows are left out");
            None
        }
    };
    for &backend in backends {
        heading(&format!("{backend}"));
        for &(name, fd) in &targets {
            println!("{name:<13} {}", readiness(backend, fd));
        }
        if let Some(pty) = &pty {
            // Something typed on the terminal: now it is readable.
            (&pty.master_file()?).write_all(b"hello\n")?;
            // The line discipline passes the line on asynchronously.
            std::thread::sleep(Duration::from_millis(20));
            println!(
                "{:<13} {} (after \"hello\\n\" was typed)",
                "terminal",
                readiness(backend, pty.slave.as_raw_fd())
            );
            pty.drain();
        }
        let mut poller = backend.new_poller()?;
        match poller.register(file.as_raw_fd(), 0, Interest::READABLE, Trigger::Level) {
            Ok(()) => {
                println!(
                    "broken: reactor's {backend} backend accepts the regular file, and will report it ready at every poll"
                );
                poller.unregister(file.as_raw_fd())?;
            }
            Err(err) => {
                println!("broken: reactor's {backend} backend refuses the regular file: {err}")
            }
        }
    }
    heading("fixed: fstat first; read regular files directly, and whatever epoll refuses (EPERM)");
    let mut epoll = Backend::Epoll.new_poller()?;
    for (name, fd) in targets {
        let verdict = if is_regular(fd)? {
            "S_ISREG: read it directly, no poller".to_owned()
        } else {
            match epoll.register(fd, 0, Interest::READABLE, Trigger::Level) {
                Ok(()) => {
                    epoll.unregister(fd)?;
                    "a stream: registered".to_owned()
                }
                Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                    "not pollable (EPERM): read it directly".to_owned()
                }
                Err(err) => format!("register failed: {err}"),
            }
        };
        println!("fixed: {name:<13} {verdict}");
    }
    drop(file);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// What one zero-timeout wait for reading says about `fd`.
fn readiness(backend: Backend, fd: RawFd) -> String {
    match backend {
        // Left out by raw_backends.
        Backend::Uring => crate::RAW_ONLY.to_owned(),
        Backend::Select => match select_readable(fd, Duration::ZERO) {
            (-1, e) => format!("select → -1 {}", errno_name(e)),
            (0, _) => "select → not ready (0)".to_owned(),
            _ => "select → readable at once".to_owned(),
        },
        Backend::Poll => match poll_readable(fd, 0) {
            (-1, _) => format!("poll → -1 {}", errno_name(errno())),
            (n, revents) if n > 0 && revents & libc::POLLIN != 0 => {
                "poll → POLLIN at once".to_owned()
            }
            _ => "poll → not ready (0)".to_owned(),
        },
        Backend::Epoll => {
            let epoll = match epoll_instance() {
                Ok(epoll) => epoll,
                Err(err) => return err.to_string(),
            };
            if epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, 0).is_err() {
                return format!("epoll_ctl(ADD) → -1 {}", errno_name(errno()));
            }
            match epoll_wait(&epoll, 0) {
                Ok(ready) if !ready.is_empty() => {
                    "epoll_ctl(ADD) → 0; epoll_wait → EPOLLIN at once".to_owned()
                }
                Ok(_) => "epoll_ctl(ADD) → 0; epoll_wait → not ready (0)".to_owned(),
                Err(err) => err.to_string(),
            }
        }
    }
}

fn is_regular(fd: RawFd) -> Result<bool> {
    // SAFETY: an all-zero stat is a valid place for fstat to write to.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid; `fd` is open.
    check(unsafe { libc::fstat(fd, &mut st) }, "fstat")?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

/// A pseudo-terminal: the master (the "keyboard and screen") and the slave
/// (what a program sees as its terminal).
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    fn open() -> Result<Pty> {
        // SAFETY: plain system call with valid flags.
        let ret = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
        let m = check(ret, "posix_openpt")?;
        // SAFETY: `m` was just returned by posix_openpt and is owned by nobody else.
        let master = unsafe { OwnedFd::from_raw_fd(m) };
        // SAFETY: `master` is an open pty master.
        check(unsafe { libc::grantpt(m) }, "grantpt")?;
        // SAFETY: as above.
        check(unsafe { libc::unlockpt(m) }, "unlockpt")?;
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: `name` has room for 128 bytes, as passed.
        let ret = unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
        if ret != 0 {
            return Err(format!("ptsname_r: {}", errno_name(ret)).into());
        }
        // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
        let s = check(
            unsafe {
                libc::open(
                    name.as_ptr(),
                    libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
                )
            },
            "open(pts)",
        )?;
        // SAFETY: `s` was just returned by open and is owned by nobody else.
        let slave = unsafe { OwnedFd::from_raw_fd(s) };
        Ok(Pty { master, slave })
    }

    fn master_file(&self) -> Result<std::fs::File> {
        Ok(std::fs::File::from(self.master.try_clone()?))
    }

    /// Reads what was typed, so the terminal is quiet again.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        // Bounded: a terminal holds little, and the slave is non-blocking.
        for _ in 0..64 {
            // SAFETY: `buf` is valid for 64 bytes.
            let n =
                unsafe { libc::read(self.slave.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }
}
