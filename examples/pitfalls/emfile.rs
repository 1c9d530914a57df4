//! `emfile`: out of descriptors, `accept` fails with `EMFILE` and the
//! level-triggered loop spins.
//!
//! The connection stays in the listener's backlog, so the listener stays
//! readable; every wait returns at once, every `accept` fails again: 100 %
//! CPU serving nobody, and the client hangs (libev's documentation, "special
//! problem of accept()ing when you can't"). The fix is the reserve
//! descriptor: keep one spare fd open; on `EMFILE` close it, accept the
//! waiting connection, close that (the client sees end of file instead of
//! hanging), and reopen the spare — `reactor::Acceptor` does exactly that.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use reactor::{Accepted, Acceptor, AnyPoller, Backend, Events, Interest, Poller, Trigger};

use crate::{Result, check, count_for, errno, errno_name, heading, ms};

/// How long each loop is counted.
const WINDOW: Duration = Duration::from_millis(200);

/// Each wait's timeout: a loop that is not spinning makes WINDOW / TIMEOUT turns.
const TIMEOUT: Duration = Duration::from_millis(50);

/// An upper bound on the turns counted in one window.
const CAP: u64 = 5_000_000;

/// The descriptor limit set for the demonstration (RLIMIT_NOFILE).
const LIMIT: u64 = 64;

pub fn run(backends: &[Backend]) -> Result {
    println!(
        "emfile: RLIMIT_NOFILE lowered to {LIMIT} and every descriptor used up; one client waits in the backlog;"
    );
    println!(
        "each wait has a {} timeout, so a quiet loop makes about {} turns in {}",
        ms(TIMEOUT),
        WINDOW.as_millis() / TIMEOUT.as_millis(),
        ms(WINDOW)
    );
    let (soft, hard) = get_limit()?;
    if hard < LIMIT {
        println!("skipped: the hard descriptor limit ({hard}) is below {LIMIT}");
        return Ok(());
    }
    set_limit(LIMIT, hard)?;
    let result = backends.iter().try_for_each(|&b| one_backend(b));
    set_limit(soft, hard)?;
    result
}

fn one_backend(backend: Backend) -> Result {
    heading(&format!(
        "{backend}, broken: accept once per readable event, log the error, carry on"
    ));
    {
        let (listener, mut poller, client) = setup(backend)?;
        let fillers = exhaust("")?;
        let mut failures = 0;
        let mut last = 0;
        let turns = turns(&mut poller, || {
            // SAFETY: null address pointers are allowed when the peer's address is not wanted.
            let fd = unsafe {
                libc::accept4(
                    listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK,
                )
            };
            if fd == -1 {
                failures += 1;
                last = errno();
            }
            Ok(())
        })?;
        println!(
            "every {backend} wait returns at once (the listener stays readable); accept → -1 {}",
            errno_name(last)
        );
        println!(
            "broken: {turns} turns of the loop in {}, {failures} accept calls failed; the client is still waiting",
            ms(WINDOW)
        );
        drop(fillers);
        drop(client);
    }

    heading(&format!(
        "{backend}, fixed: reactor::Acceptor (a reserve descriptor)"
    ));
    let (listener, mut poller, mut client) = setup(backend)?;
    let mut acceptor = Acceptor::new();
    let fillers = exhaust(" (the reserve was opened first)")?;
    let mut shed = 0;
    let turns = turns(&mut poller, || {
        loop {
            match acceptor.accept(
                || listener.accept().map(|(s, _)| s),
                |s| s.set_nonblocking(true),
            )? {
                Accepted::Connection(stream) => drop(stream),
                Accepted::Shed => shed += 1,
                Accepted::Drained => return Ok(()),
            }
        }
    })?;
    drop(fillers);
    client.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 16];
    let answer = match client.read(&mut buf) {
        Ok(0) => "end of file: refused, not left hanging".to_owned(),
        Ok(n) => format!("{n} bytes"),
        Err(e) => format!("{e}"),
    };
    println!(
        "on EMFILE: close the reserve, accept, close the connection, reopen the reserve ({shed} connection shed)"
    );
    println!(
        "fixed: {turns} turns of the loop in {}; the client read {answer}",
        ms(WINDOW)
    );
    Ok(())
}

/// A listener with one client waiting in its backlog, and a level-triggered
/// poller watching it.
fn setup(backend: Backend) -> Result<(TcpListener, AnyPoller, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let mut poller = backend.new_poller()?;
    poller.register(listener.as_raw_fd(), 0, Interest::READABLE, Trigger::Level)?;
    Ok((listener, poller, client))
}

/// Opens /dev/null until the process is out of descriptors, and says so.
fn exhaust(note: &str) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    while fds.len() < LIMIT as usize {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fds.push(OwnedFd::from(f)),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                println!(
                    "{} descriptors opened on /dev/null until open() → EMFILE{note}",
                    fds.len()
                );
                return Ok(fds);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err("open() never failed with EMFILE".into())
}

/// The level-triggered loop, counted over `WINDOW`: each turn waits (at
/// most `TIMEOUT`) and calls `on_readable` if the listener was reported.
fn turns(poller: &mut AnyPoller, mut on_readable: impl FnMut() -> Result) -> Result<u64> {
    let mut events = Events::with_capacity(8);
    count_for(WINDOW, CAP, || {
        poller.poll(&mut events, Some(TIMEOUT))?;
        if events.is_empty() {
            Ok(())
        } else {
            on_readable()
        }
    })
}

fn get_limit() -> Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid place for getrlimit to write to.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    check(ret, "getrlimit")?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

fn set_limit(soft: u64, hard: u64) -> Result {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    check(ret, "setrlimit")?;
    Ok(())
}
