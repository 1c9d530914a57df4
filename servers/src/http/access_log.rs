//! The access log: one line per response on stdout, in the Common Log
//! Format that every log tool reads (Apache's and nginx's default):
//!
//! ```text
//! 127.0.0.1 - - [30/Nov/2026:13:40:01 +0000] "GET /hello.txt HTTP/1.1" 200 6
//! ```
//!
//! Lines are gathered during one turn of the loop and written with one
//! `write` at its end (or sooner past 64 KiB), not one call per request.
//! What came from the network (method, target) is escaped, so a request
//! cannot forge a log line: bytes outside printable ASCII, `"` and `\`
//! become `\xHH`.

use std::io::Write;
use std::net::IpAddr;

use super::clock::Clock;

/// Past this many gathered bytes, the log is written at once.
const FLUSH_ABOVE: usize = 64 * 1024;

/// The request line as the log shows it.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The method as sent.
    pub method: &'a str,
    /// The target as sent.
    pub target: &'a str,
    /// The minor version (HTTP/1.x).
    pub minor: u8,
}

/// Lines waiting to be written to stdout.
#[derive(Debug, Default)]
pub struct AccessLog {
    /// Off with `--quiet`.
    enabled: bool,
    /// Lines gathered this turn.
    buf: Vec<u8>,
}

impl AccessLog {
    /// A log that records lines if `enabled`.
    pub fn new(enabled: bool) -> AccessLog {
        AccessLog {
            enabled,
            buf: Vec::new(),
        }
    }

    /// Records one response. `line` is `None` when the request line could
    /// not be read (the log shows `"-"`, as Apache does); `bytes` is the
    /// body length sent (`-` when 0).
    pub fn record(
        &mut self,
        peer: IpAddr,
        clock: &Clock,
        line: Option<Line<'_>>,
        status: u16,
        bytes: u64,
    ) {
        if !self.enabled {
            return;
        }
        let _ = write!(self.buf, "{peer} - - [{}] \"", clock.log_time());
        if let Some(line) = line {
            escape_into(&mut self.buf, line.method);
            self.buf.push(b' ');
            escape_into(&mut self.buf, line.target);
            let _ = write!(self.buf, " HTTP/1.{}", line.minor);
        } else {
            self.buf.push(b'-');
        }
        let _ = match bytes {
            0 => writeln!(self.buf, "\" {status} -"),
            n => writeln!(self.buf, "\" {status} {n}"),
        };
        if self.buf.len() > FLUSH_ABOVE {
            self.flush();
        }
    }

    /// Writes the gathered lines to stdout (a closed stdout is ignored: the
    /// server keeps serving).
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&self.buf);
        let _ = out.flush();
        self.buf.clear();
        if self.buf.capacity() > 4 * FLUSH_ABOVE {
            self.buf = Vec::new();
        }
    }

    /// The gathered, unwritten text (for tests).
    #[cfg(test)]
    fn pending(&self) -> &str {
        std::str::from_utf8(&self.buf).unwrap_or("")
    }
}

fn escape_into(out: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_in_common_log_format() {
        let clock = Clock::new();
        let mut log = AccessLog::new(true);
        let line = Line {
            method: "GET",
            target: "/hello.txt",
            minor: 1,
        };
        log.record("127.0.0.1".parse().unwrap(), &clock, Some(line), 200, 6);
        let expected = format!(
            "127.0.0.1 - - [{}] \"GET /hello.txt HTTP/1.1\" 200 6\n",
            clock.log_time()
        );
        assert_eq!(log.pending(), expected);
    }

    #[test]
    fn requests_cannot_forge_lines_and_empty_bodies_are_a_dash() {
        let clock = Clock::new();
        let mut log = AccessLog::new(true);
        let line = Line {
            method: "GET",
            target: "/x\" 200 1\n1.2.3.4\u{e9}",
            minor: 0,
        };
        log.record("::1".parse().unwrap(), &clock, Some(line), 404, 0);
        log.record("::1".parse().unwrap(), &clock, None, 400, 0);
        let text = log.pending();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("\"GET /x\\x22 200 1\\x0A1.2.3.4\\xC3\\xA9 HTTP/1.0\" 404 -"),
            "{text}"
        );
        assert!(text.ends_with("\"-\" 400 -\n"), "{text}");
    }

    #[test]
    fn quiet_records_nothing() {
        let clock = Clock::new();
        let mut log = AccessLog::new(false);
        log.record("127.0.0.1".parse().unwrap(), &clock, None, 400, 0);
        assert_eq!(log.pending(), "");
    }
}
