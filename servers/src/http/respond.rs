//! Writing response heads and error pages: status lines, the headers every
//! response carries (`Server`, `Date`, `Content-Length`, and `Connection`
//! when it differs from the version's default), and the short HTML body of
//! an error that says what went wrong.

use std::io::Write;

use super::clock::Clock;

/// The `Server` header's value.
pub const SERVER: &str = "reactor-http";

/// A status code and its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The three-digit code.
    pub code: u16,
    /// The reason phrase of RFC 9110.
    pub reason: &'static str,
    /// One sentence for the error page.
    pub detail: &'static str,
}

impl Status {
    const fn new(code: u16, reason: &'static str, detail: &'static str) -> Status {
        Status {
            code,
            reason,
            detail,
        }
    }

    /// `200 OK`.
    pub const OK: Status = Status::new(200, "OK", "");
    /// `206 Partial Content`.
    pub const PARTIAL: Status = Status::new(206, "Partial Content", "");
    /// `301 Moved Permanently` (a directory asked for without its `/`).
    pub const MOVED: Status = Status::new(301, "Moved Permanently", "This is a directory.");
    /// `304 Not Modified`.
    pub const NOT_MODIFIED: Status = Status::new(304, "Not Modified", "");
    /// `400 Bad Request`.
    pub const BAD_REQUEST: Status =
        Status::new(400, "Bad Request", "The request could not be parsed.");
    /// `403 Forbidden`.
    pub const FORBIDDEN: Status = Status::new(403, "Forbidden", "The file cannot be read.");
    /// `404 Not Found`.
    pub const NOT_FOUND: Status = Status::new(404, "Not Found", "There is no such file here.");
    /// `405 Method Not Allowed`.
    pub const METHOD_NOT_ALLOWED: Status = Status::new(
        405,
        "Method Not Allowed",
        "This server only answers GET and HEAD.",
    );
    /// `408 Request Timeout`.
    pub const REQUEST_TIMEOUT: Status = Status::new(
        408,
        "Request Timeout",
        "The request headers did not arrive in time.",
    );
    /// `413 Content Too Large`.
    pub const CONTENT_TOO_LARGE: Status = Status::new(
        413,
        "Content Too Large",
        "The request body is larger than this server accepts.",
    );
    /// `414 URI Too Long`.
    pub const URI_TOO_LONG: Status = Status::new(
        414,
        "URI Too Long",
        "The request line is longer than this server accepts.",
    );
    /// `416 Range Not Satisfiable`.
    pub const RANGE_NOT_SATISFIABLE: Status = Status::new(
        416,
        "Range Not Satisfiable",
        "The requested range starts past the end of the file.",
    );
    /// `431 Request Header Fields Too Large`.
    pub const HEADERS_TOO_LARGE: Status = Status::new(
        431,
        "Request Header Fields Too Large",
        "The request headers are larger or more numerous than this server accepts.",
    );
    /// `501 Not Implemented`.
    pub const NOT_IMPLEMENTED: Status = Status::new(
        501,
        "Not Implemented",
        "Transfer-Encoding on requests is not supported; send Content-Length.",
    );
    /// `503 Service Unavailable`.
    pub const UNAVAILABLE: Status = Status::new(
        503,
        "Service Unavailable",
        "The server has too many connections; try again later.",
    );
    /// `505 HTTP Version Not Supported`.
    pub const VERSION_NOT_SUPPORTED: Status = Status::new(
        505,
        "HTTP Version Not Supported",
        "This server speaks HTTP/1.0 and HTTP/1.1.",
    );
}

/// The status line and the headers every response starts with.
pub fn start(out: &mut Vec<u8>, status: Status, clock: &Clock) {
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: {SERVER}\r\nDate: {}\r\n",
        status.code,
        status.reason,
        clock.http_date()
    );
}

/// `Connection` where it differs from what the request's version implies,
/// then the blank line that ends the head.
pub fn finish(out: &mut Vec<u8>, keep_alive: bool, minor: u8) {
    match (keep_alive, minor) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n\r\n"),
        (true, 0) => out.extend_from_slice(b"Connection: keep-alive\r\n\r\n"),
        (true, _) => out.extend_from_slice(b"\r\n"),
    }
}

/// A whole error response: head and (unless `head_only`) a short HTML
/// body; `extra` holds further header lines, each ending in CRLF. Returns
/// the body's length, for the access log.
pub fn error(
    out: &mut Vec<u8>,
    status: Status,
    clock: &Clock,
    extra: &str,
    keep_alive: bool,
    head_only: bool,
) -> usize {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1><p>{detail}</p></body></html>\n",
        code = status.code,
        reason = status.reason,
        detail = status.detail,
    );
    start(out, status, clock);
    let _ = write!(
        out,
        "Content-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n{extra}",
        body.len()
    );
    finish(out, keep_alive, 1);
    if head_only {
        0
    } else {
        out.extend_from_slice(body.as_bytes());
        body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn an_error_has_every_header_and_a_body_of_that_length() {
        let clock = Clock::new();
        let mut out = Vec::new();
        let n = error(&mut out, Status::NOT_FOUND, &clock, "", true, false);
        let (head, body) = text(&out).split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\nServer: reactor-http\r\nDate: "));
        assert!(head.contains(&format!("Content-Length: {n}")));
        assert_eq!(body.len(), n);
        assert!(body.contains("There is no such file here."));
        assert!(!head.contains("Connection"));
    }

    #[test]
    fn head_only_errors_keep_the_length_and_drop_the_body() {
        let clock = Clock::new();
        let mut out = Vec::new();
        let n = error(
            &mut out,
            Status::METHOD_NOT_ALLOWED,
            &clock,
            "Allow: GET, HEAD\r\n",
            false,
            true,
        );
        assert_eq!(n, 0);
        let text = text(&out);
        assert!(
            text.ends_with("Allow: GET, HEAD\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn connection_is_said_only_when_it_differs_from_the_default() {
        let mut out = Vec::new();
        finish(&mut out, true, 0);
        assert_eq!(out, b"Connection: keep-alive\r\n\r\n");
        out.clear();
        finish(&mut out, true, 1);
        assert_eq!(out, b"\r\n");
    }
}
