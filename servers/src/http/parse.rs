//! One request head, from bytes to what the server needs of it, with the
//! parsing itself done by `httparse` (the HTTP/1 parser under hyper):
//! no hand-written request-line or header tokenizer here, only the
//! decisions the limits and RFC 9112 ask for.
//!
//! | what the bytes hold | outcome |
//! |---|---|
//! | a complete, valid head | [`Parsed::Complete`] |
//! | the start of one, within `max_head` | [`Parsed::Partial`]: read more |
//! | more than `max_head` bytes without the end of the head | `431`, or `414` if the request line alone is longer |
//! | more than `max_headers` fields | `431` |
//! | a version other than 1.0 / 1.1 (the HTTP/2 preface) | `505` |
//! | `Transfer-Encoding` (chunked bodies) | `501` |
//! | `Content-Length` over `max_body` | `413` |
//! | anything else malformed, a bad or doubled `Content-Length`, HTTP/1.1 without `Host` | `400` |

use std::mem::MaybeUninit;

use super::limits::Limits;
use super::respond::Status;

/// The request methods the server tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: as `GET`, without the body.
    Head,
    /// Anything else: `405`.
    Other,
}

/// What the server needs of one request head. Borrows the bytes it was
/// parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The method.
    pub method: Method,
    /// The method as sent (for the access log).
    pub method_text: &'a str,
    /// The request target as sent (`/a%20b?x`).
    pub target: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The connection stays open after the response (1.1 unless
    /// `Connection: close`; 1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// Bytes of request body that follow the head (`Content-Length`).
    pub body: u64,
    /// The `Range` header's value, if any.
    pub range: Option<&'a [u8]>,
    /// The `If-Modified-Since` header's value, if any.
    pub if_modified_since: Option<&'a [u8]>,
    /// Length of the head in bytes (where the body or next request starts).
    pub len: usize,
}

/// The outcome of parsing the start of a buffer.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole head.
    Complete(Head<'a>),
    /// Not yet a whole head, and within the limits: read more.
    Partial,
    /// Refused with this status; the connection closes after it. When the
    /// request line was readable, `line` has it for the access log.
    Reject {
        /// The status to answer.
        status: Status,
        /// The request line's method, target and version, if parsed.
        line: Option<(&'a str, &'a str, u8)>,
    },
}

/// The most header fields `Limits::max_headers` may allow.
pub const MAX_HEADERS: usize = 1024;

/// Parses the head at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    // Scratch space for the parser's view of the header fields, left
    // uninitialised: httparse writes the ones it finds, so a request costs
    // no clearing of a thousand slots.
    let mut headers = [const { MaybeUninit::<httparse::Header<'a>>::uninit() }; MAX_HEADERS];
    let allowed = limits.max_headers.clamp(1, MAX_HEADERS);
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(buf, &mut headers[..allowed]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head {
                reject(too_large(buf, limits), None)
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return reject(Status::HEADERS_TOO_LARGE, None),
        Err(httparse::Error::Version) => return reject(Status::VERSION_NOT_SUPPORTED, None),
        Err(_) => return reject(Status::BAD_REQUEST, None),
    };
    let (Some(method_text), Some(target), Some(minor)) =
        (request.method, request.path, request.version)
    else {
        return reject(Status::BAD_REQUEST, None);
    };
    let line = Some((method_text, target, minor));
    if len > limits.max_head {
        return reject(too_large(buf, limits), line);
    }
    let mut head = Head {
        method: match method_text {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => Method::Other,
        },
        method_text,
        target,
        minor,
        keep_alive: minor == 1,
        body: 0,
        range: None,
        if_modified_since: None,
        len,
    };
    let mut host = false;
    let mut length: Option<u64> = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(header.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return reject(Status::BAD_REQUEST, line);
            };
            if length.is_some_and(|earlier| earlier != n) {
                return reject(Status::BAD_REQUEST, line);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return reject(Status::NOT_IMPLEMENTED, line);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            host = true;
        } else if name.eq_ignore_ascii_case("range") {
            head.range = Some(header.value);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            head.if_modified_since = Some(header.value);
        }
    }
    if minor == 1 && !host {
        return reject(Status::BAD_REQUEST, line);
    }
    head.body = length.unwrap_or(0);
    if head.body > limits.max_body {
        return reject(Status::CONTENT_TOO_LARGE, line);
    }
    Parsed::Complete(head)
}

fn reject<'a>(status: Status, line: Option<(&'a str, &'a str, u8)>) -> Parsed<'a> {
    Parsed::Reject { status, line }
}

/// `414` if the request line alone passes the limit, else `431`.
fn too_large(buf: &[u8], limits: &Limits) -> Status {
    let window = &buf[..buf.len().min(limits.max_head + 1)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) if end <= limits.max_head => Status::HEADERS_TOO_LARGE,
        _ => Status::URI_TOO_LONG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(buf: &[u8], limits: &Limits) -> Result<(Head<'static>, usize), Option<u16>> {
        let buf: &'static [u8] = Box::leak(buf.to_vec().into_boxed_slice());
        match parse(buf, limits) {
            Parsed::Complete(head) => Ok((head, head.len)),
            Parsed::Partial => Err(None),
            Parsed::Reject { status, .. } => Err(Some(status.code)),
        }
    }

    fn status_of(buf: &[u8]) -> Option<u16> {
        parse_with(buf, &Limits::default()).err().flatten()
    }

    #[test]
    fn a_get_with_keep_alive_by_default_in_1_1() {
        let (head, len) = parse_with(
            b"GET /x?y HTTP/1.1\r\nHost: a\r\n\r\nGET",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            (head.method, head.target, head.minor),
            (Method::Get, "/x?y", 1)
        );
        assert!(head.keep_alive);
        assert_eq!(len, 30);
    }

    #[test]
    fn connection_headers_decide_keep_alive() {
        let l = Limits::default();
        let close = parse_with(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            &l,
        );
        assert!(!close.unwrap().0.keep_alive);
        let old = parse_with(b"GET / HTTP/1.0\r\n\r\n", &l);
        assert!(!old.unwrap().0.keep_alive);
        let kept = parse_with(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &l);
        assert!(kept.unwrap().0.keep_alive);
    }

    #[test]
    fn each_limit_answers_its_status() {
        let limits = Limits {
            max_head: 64,
            max_headers: 3,
            max_body: 10,
            ..Limits::default()
        };
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse_with(long_line.as_bytes(), &limits).err(),
            Some(Some(414))
        );
        let long_head = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "b".repeat(60));
        assert_eq!(
            parse_with(long_head.as_bytes(), &limits).err(),
            Some(Some(431))
        );
        let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse_with(many, &limits).err(), Some(Some(431)));
        let body = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_with(body, &limits).err(), Some(Some(413)));
        let short = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(parse_with(short, &limits).unwrap().0.body, 10);
    }

    #[test]
    fn bad_requests() {
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\n\r\n"),
            Some(400),
            "1.1 without Host"
        );
        assert_eq!(status_of(b"GET\x01 / HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(
            status_of(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status_of(
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            ),
            Some(400)
        );
        assert_eq!(
            status_of(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(501)
        );
    }

    #[test]
    fn other_versions_and_the_http2_preface_are_505() {
        assert_eq!(status_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(505));
        assert_eq!(status_of(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), Some(505));
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert_eq!(status_of(b"GET / HTTP/1.1\r\nHost:"), None);
        assert!(parse_with(b"GET / HTTP/1.1\r\nHost:", &Limits::default()).is_err());
    }

    #[test]
    fn ranges_and_dates_are_kept() {
        let (head, _) = parse_with(
            b"HEAD /f HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nIf-Modified-Since: x\r\n\r\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(head.method, Method::Head);
        assert_eq!(head.range, Some(&b"bytes=0-1"[..]));
        assert_eq!(head.if_modified_since, Some(&b"x"[..]));
    }
}
