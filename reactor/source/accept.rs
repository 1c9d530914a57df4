//! [`Acceptor`]: `accept` in a level-triggered loop without spinning when
//! the process runs out of file descriptors.
//!
//! The course's servers call `s.accept()` once per readable event. That is
//! fine until `accept` fails with `EMFILE` ("too many open files"): the
//! connection stays in the kernel's backlog, the listener stays readable,
//! and a level-triggered loop wakes up, fails, and wakes up again — 100 % CPU
//! while serving nobody (libev's documentation calls this out; libuv and
//! node have had bugs about it).
//!
//! The fix used here is libev's and libuv's *reserve descriptor*: keep one
//! spare fd open (on `/dev/null`). On `EMFILE`, close it, accept the waiting
//! connection, close that at once (the client sees end of file instead of
//! hanging), and reopen the spare. Errors that accept(2) documents as
//! transient (`ECONNABORTED`, `EPROTO`, `ENOBUFS`, …) are skipped.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What one [`Acceptor::accept`] call did.
#[derive(Debug)]
pub enum Accepted<S> {
    /// A new connection, already non-blocking.
    Connection(S),
    /// The backlog is empty: wait for the listener's next event.
    Drained,
    /// A connection was refused (accepted and closed at once) because the
    /// process is out of descriptors, or a transient error was skipped.
    /// Call `accept` again.
    Shed,
}

/// Accepts connections, surviving `EMFILE`, `ENFILE` and transient errors.
///
/// # Examples
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use reactor::{Accepted, Acceptor};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// listener.set_nonblocking(true)?;
/// let _client = TcpStream::connect(listener.local_addr()?)?;
/// let mut acceptor = Acceptor::new();
/// loop {
///     match acceptor.accept(|| listener.accept().map(|(s, _)| s), |s| s.set_nonblocking(true))? {
///         Accepted::Connection(stream) => { drop(stream); break; }
///         Accepted::Shed => continue,
///         Accepted::Drained => std::thread::yield_now(), // a real loop would poll
///     }
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Python: `c, addr = s.accept()` inside `try: … except OSError`
#[derive(Debug)]
pub struct Acceptor {
    /// The spare descriptor given up on `EMFILE`; `None` while given up.
    reserve: Option<File>,
    /// When the out-of-descriptors warning was last logged (at most once a second).
    last_warning: Option<Instant>,
}

impl Default for Acceptor {
    fn default() -> Acceptor {
        Acceptor::new()
    }
}

impl Acceptor {
    /// Opens the reserve descriptor.
    pub fn new() -> Acceptor {
        Acceptor {
            reserve: open_reserve(),
            last_warning: None,
        }
    }

    /// Accepts one connection with `accept` and makes it non-blocking with
    /// `setup`.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] naming `accept`, only for errors that mean the
    /// listener itself is broken (`EBADF`, `EINVAL`, `ENOTSOCK`); everything
    /// else is handled here.
    ///
    /// # Examples
    ///
    /// See the type-level example on [`Acceptor`].
    ///
    /// Python: `c, addr = s.accept()`
    pub fn accept<S>(
        &mut self,
        mut accept: impl FnMut() -> io::Result<S>,
        setup: impl FnOnce(&S) -> io::Result<()>,
    ) -> Result<Accepted<S>> {
        let err = match accept() {
            Ok(stream) => {
                return match setup(&stream) {
                    Ok(()) => Ok(Accepted::Connection(stream)),
                    // Could not make it non-blocking: drop it rather than let
                    // it block the whole loop later.
                    Err(err) => {
                        log::warn!("accepted connection dropped: {err}");
                        Ok(Accepted::Shed)
                    }
                };
            }
            Err(err) => err,
        };
        match err.raw_os_error() {
            Some(libc::EAGAIN) => Ok(Accepted::Drained),
            Some(libc::EMFILE | libc::ENFILE) => {
                self.warn(&err);
                // Free one descriptor, take the waiting connection with it
                // and close it, then take the descriptor back.
                match self.reserve.take() {
                    Some(reserve) => {
                        drop(reserve);
                        let refused = accept();
                        // Close the refused connection *before* reopening
                        // the reserve, or the reserve finds no free fd.
                        let result = match refused {
                            Ok(connection) => {
                                log::trace!(
                                    "out of descriptors: closed the reserve fd, accepted and closed one connection"
                                );
                                drop(connection);
                                Ok(Accepted::Shed)
                            }
                            // Linux's accept reports EMFILE before it looks
                            // at the backlog, so EMFILE does not mean a
                            // connection is waiting. With a descriptor free
                            // the truth shows: the backlog is empty. Report
                            // Drained, or the caller's next accept says EMFILE
                            // again and the loop never ends (libuv b3ab332).
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                                log::trace!(
                                    "out of descriptors: closed the reserve fd, backlog empty"
                                );
                                Ok(Accepted::Drained)
                            }
                            Err(err) => {
                                log::debug!("accept with the reserve fd given up: {err}");
                                Ok(Accepted::Shed)
                            }
                        };
                        self.reserve = open_reserve();
                        result
                    }
                    // No reserve to give up (another thread took the fd):
                    // report Drained so the caller waits for an event
                    // instead of spinning; retry the reserve next time.
                    None => {
                        self.reserve = open_reserve();
                        Ok(Accepted::Drained)
                    }
                }
            }
            Some(
                libc::EINTR
                | libc::ECONNABORTED
                | libc::EPROTO
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH,
            ) => {
                log::debug!("accept: transient error skipped: {err}");
                Ok(Accepted::Shed)
            }
            _ => Err(Error::Sys {
                call: "accept",
                fd: None,
                source: err,
            }),
        }
    }

    /// Logs running out of descriptors at most once a second.
    fn warn(&mut self, err: &io::Error) {
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now - t >= Duration::from_secs(1))
        {
            log::warn!("accept: {err}; refusing new connections until descriptors free up");
            self.last_warning = Some(now);
        }
    }
}

fn open_reserve() -> Option<File> {
    File::open("/dev/null").ok()
}
