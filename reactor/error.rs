//! The crate's one error type.
//!
//! Every variant says what went wrong in words a learner can act on: which
//! system call, which file descriptor, and why. Python raises `OSError` with an
//! errno for most of these; here the common mistakes (registering twice,
//! handing `select()` a descriptor it cannot hold) get a variant of their own
//! so that a program can match on them.

use std::io;
use std::os::fd::RawFd;

/// Everything that can go wrong in `reactor`.
///
/// System-call failures keep the call's name, the descriptor and the `errno`
/// (as an [`io::Error`]), so the message reads like
/// `epoll_ctl(ADD) on fd 7 failed: Bad file descriptor (os error 9)`.
///
/// # Examples
///
/// ```
/// use reactor::{Backend, Error, Interest, Poller, Trigger};
///
/// let mut poller = Backend::Select.new_poller()?;
/// let err = poller.register(1500, 0, Interest::READABLE, Trigger::Level).unwrap_err();
/// assert!(matches!(err, Error::FdTooLarge { fd: 1500, .. }));
/// assert!(err.to_string().contains("use the poll or epoll backend"));
/// # Ok::<(), reactor::Error>(())
/// ```
///
/// Python: `except OSError as e: print(e.errno, e.strerror)`
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `register` was called for a descriptor the poller already watches.
    #[error(
        "fd {fd} is already registered with the {backend} poller; call modify to change its interest"
    )]
    AlreadyRegistered {
        /// The backend's name (`"select"`, `"poll"`, `"epoll"`).
        backend: &'static str,
        /// The descriptor.
        fd: RawFd,
    },

    /// `modify` or `unregister` was called for a descriptor the poller does not watch.
    #[error("fd {fd} is not registered with the {backend} poller; call register first")]
    NotRegistered {
        /// The backend's name.
        backend: &'static str,
        /// The descriptor.
        fd: RawFd,
    },

    /// The backend cannot honour the requested trigger mode.
    #[error(
        "the {backend} backend has no {trigger} triggering; use Trigger::Level or Trigger::Oneshot, or the epoll backend"
    )]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// The trigger that was asked for (`"edge"`, say).
        trigger: &'static str,
    },

    /// `select()` cannot watch a descriptor whose number is `FD_SETSIZE` or more:
    /// `FD_SET` would write past the end of the `fd_set` bitmap.
    #[error(
        "fd {fd} is above select()'s FD_SETSIZE limit of {limit}; use the poll or epoll backend"
    )]
    FdTooLarge {
        /// The descriptor.
        fd: RawFd,
        /// `FD_SETSIZE` (1024 on Linux).
        limit: usize,
    },

    /// A negative number was passed where a file descriptor was expected.
    #[error("fd {fd} is not a file descriptor: descriptors are never negative")]
    InvalidFd {
        /// The number that was passed.
        fd: RawFd,
    },

    /// A system call failed.
    #[error("{call}{} failed: {source}", on_fd(*.fd))]
    Sys {
        /// The call, with its operation where it has one (`"epoll_ctl(ADD)"`).
        call: &'static str,
        /// The descriptor it was called on, if any.
        fd: Option<RawFd>,
        /// The `errno`, as an I/O error.
        #[source]
        source: io::Error,
    },

    /// A [`Reactor`](crate::Reactor) already holds as many objects as a
    /// [`Token`](crate::Token) can name.
    #[error(
        "cannot insert fd {fd}: the reactor already holds {limit} objects, the most a token can name"
    )]
    TooManyObjects {
        /// The descriptor that was refused.
        fd: RawFd,
        /// How many objects a reactor can hold.
        limit: usize,
    },

    /// A signal number that cannot be watched: not a signal, or one whose
    /// handler cannot be changed (`SIGKILL`, `SIGSTOP`).
    #[error(
        "signal {signal} cannot be watched: it is not a signal number a handler can be installed for"
    )]
    InvalidSignal {
        /// The number that was given.
        signal: i32,
    },

    /// Another live [`Signals`](crate::Signals) in this process already
    /// watches the signal: a signal has one handler, so one owner.
    #[error(
        "{name} is already watched by another Signals in this process; drop it first or share it"
    )]
    SignalTaken {
        /// The signal's number.
        signal: i32,
        /// Its name (`"SIGINT"`).
        name: &'static str,
    },

    /// The kernel will not let this process use a backend: io_uring compiled
    /// out (`ENOSYS`), disabled or forbidden (`EPERM`: the sysctl
    /// `kernel.io_uring_disabled`, a seccomp filter), or too old.
    #[error("the {backend} backend is unavailable: {reason}; use the epoll backend instead")]
    Unavailable {
        /// The backend's name (`"uring"`).
        backend: &'static str,
        /// Why, naming the system call and errno or the missing feature.
        reason: String,
        /// The `errno`, when a system call failed.
        #[source]
        source: Option<io::Error>,
    },

    /// A backend name that is not `select`, `poll`, `epoll` or `uring`.
    #[error("unknown backend {name:?}: expected one of select, poll, epoll, uring")]
    UnknownBackend {
        /// What was given.
        name: String,
    },

    /// A [`Token`](crate::Token) that names no live object: the object was
    /// removed (and its slot perhaps reused by another).
    #[error(
        "token {token} does not name a live object: it was removed, or its slot now holds another object"
    )]
    StaleToken {
        /// The token's key, as printed by `Debug`.
        token: String,
    },

    /// `insert` was given a descriptor number that an object still in the
    /// map registered: the same descriptor twice, or the holder's
    /// descriptor was closed without `remove` and the kernel handed the
    /// number out again. Every backend refuses it the same way.
    #[error(
        "fd {fd} is still held by {holder} in this reactor: the same descriptor twice, or {holder}'s descriptor was closed without remove and the number reused; remove {holder} first"
    )]
    FdInUse {
        /// The descriptor number.
        fd: RawFd,
        /// The token of the object holding it, as printed by `Debug`.
        holder: String,
    },

    /// `remove` found the object's descriptor closed, or its number naming
    /// another file: it was closed behind the map's back. The map cannot
    /// unregister it (epoll keeps reporting a closed descriptor while any
    /// copy of it is open), so it says so instead of returning `Ok`.
    #[error(
        "{token}'s fd {fd} was closed before remove (or the number now names another file), so it could not be unregistered; epoll keeps reporting it while any copy of it is open. Call remove before closing"
    )]
    FdClosed {
        /// The removed object's token, as printed by `Debug`.
        token: String,
        /// The descriptor number it registered.
        fd: RawFd,
    },

    /// A `struct` format string that cannot be parsed.
    #[error("bad struct format {format:?} at character {position}: {reason}")]
    StructFormat {
        /// The whole format string.
        format: String,
        /// Index (in characters) of the offending character.
        position: usize,
        /// What is wrong, in words.
        reason: String,
    },

    /// A value that does not fit the format field it was packed into.
    #[error("struct field {index} ('{code}'): {reason}")]
    StructValue {
        /// Zero-based index of the field among the values.
        index: usize,
        /// The format character of the field.
        code: char,
        /// What is wrong, in words.
        reason: String,
    },

    /// A record too large to build in memory: `"1000000000000x"` is a valid
    /// format, but packing it needs a terabyte (Python raises `MemoryError`).
    #[error("cannot allocate memory for a struct record of {size} {what}")]
    StructAlloc {
        /// What could not be allocated (`"bytes"`, `"values"`).
        what: &'static str,
        /// How many the record needs.
        size: usize,
    },

    /// Packing or unpacking with the wrong number of values or bytes.
    #[error("struct {what}: expected {expected}, got {got}")]
    StructSize {
        /// What was counted (`"values"`, `"bytes"`).
        what: &'static str,
        /// How many the format needs.
        expected: usize,
        /// How many were given.
        got: usize,
    },
}

fn on_fd(fd: Option<RawFd>) -> String {
    match fd {
        Some(fd) => format!(" on fd {fd}"),
        None => String::new(),
    }
}

impl Error {
    /// The `errno` of a failed system call, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Backend, Interest, Poller, Trigger};
    ///
    /// let mut poller = Backend::Epoll.new_poller()?;
    /// // 10_000 is (almost certainly) not an open descriptor here.
    /// let err = poller.register(10_000, 0, Interest::READABLE, Trigger::Level).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `e.errno`
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } => source.raw_os_error(),
            Error::Unavailable { source, .. } => source.as_ref()?.raw_os_error(),
            _ => None,
        }
    }

    /// Builds a system-call error from the current `errno`.
    pub(crate) fn last_os(call: &'static str, fd: Option<RawFd>) -> Error {
        Error::Sys {
            call,
            fd,
            source: io::Error::last_os_error(),
        }
    }
}

impl From<Error> for io::Error {
    /// Keeps the `errno` where there is one, so `?` in an `io::Result`
    /// function still lets the caller match on `ErrorKind`.
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::Sys { source, .. } => source.kind(),
            Error::AlreadyRegistered { .. } | Error::FdInUse { .. } => io::ErrorKind::AlreadyExists,
            Error::NotRegistered { .. } | Error::StaleToken { .. } => io::ErrorKind::NotFound,
            Error::Unsupported { .. } | Error::Unavailable { .. } => io::ErrorKind::Unsupported,
            Error::StructAlloc { .. } => io::ErrorKind::OutOfMemory,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
