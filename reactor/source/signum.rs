//! [`Signal`]: a signal number as a type of its own, so that public
//! signatures take `Signal::TERM` rather than a bare `libc::c_int`.

use std::fmt;

use libc::c_int;

/// A signal, such as `SIGTERM`: what [`Signals`](crate::Signals) watches,
/// [`Pidfd::send_signal`](crate::Pidfd::send_signal) sends and
/// [`ExitStatus::signal`](crate::ExitStatus::signal) reports.
///
/// The constants name the signals a server meets; any other number goes
/// through [`from_raw`](Signal::from_raw) (or `From<c_int>`, so `&[libc::SIGINT]`
/// still works where a signal is taken). Compares equal to its number.
///
/// # Examples
///
/// ```
/// use reactor::Signal;
///
/// assert_eq!(Signal::TERM.name(), "SIGTERM");
/// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
/// assert_eq!(Signal::from_raw(2), Signal::INT);
/// assert_eq!(Signal::INT.raw(), 2);
/// assert_eq!(Signal::USR1, libc::SIGUSR1);
/// ```
///
/// Python: `signal.Signals.SIGTERM`
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(c_int);

impl Signal {
    /// `SIGHUP`: the terminal hung up; daemons reload on it.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGINT`: Ctrl-C.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGQUIT`: Ctrl-\.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGKILL`: cannot be caught.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// `SIGUSR1`: the program's own.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2`: the program's own.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGPIPE`: a write to a closed pipe or socket.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// `SIGALRM`: an `alarm(2)` expired.
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// `SIGTERM`: please stop.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGCHLD`: a child stopped or exited.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// `SIGCONT`: continue if stopped.
    pub const CONT: Signal = Signal(libc::SIGCONT);
    /// `SIGSTOP`: cannot be caught.
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// `SIGTSTP`: Ctrl-Z.
    pub const TSTP: Signal = Signal(libc::SIGTSTP);
    /// `SIGWINCH`: the terminal was resized.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);

    /// The signal with number `number` (checked where it is used: an
    /// out-of-range number makes `Signals::new` or `send_signal` fail).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(reactor::Signal::from_raw(15), reactor::Signal::TERM);
    /// ```
    ///
    /// Python: `signal.Signals(15)`
    pub const fn from_raw(number: c_int) -> Signal {
        Signal(number)
    }

    /// The signal's number.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(reactor::Signal::KILL.raw(), 9);
    /// ```
    ///
    /// Python: `int(signal.SIGKILL)`
    pub const fn raw(self) -> c_int {
        self.0
    }

    /// `"SIGTERM"`, …; `"signal"` for a number without a name here.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(reactor::Signal::CHLD.name(), "SIGCHLD");
    /// ```
    ///
    /// Python: `signal.Signals(n).name`
    pub fn name(self) -> &'static str {
        super::signal::signal_name(self)
    }
}

impl From<c_int> for Signal {
    fn from(number: c_int) -> Signal {
        Signal(number)
    }
}

impl From<Signal> for c_int {
    fn from(signal: Signal) -> c_int {
        signal.0
    }
}

impl PartialEq<c_int> for Signal {
    fn eq(&self, number: &c_int) -> bool {
        self.0 == *number
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "signal" => write!(f, "signal {}", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
