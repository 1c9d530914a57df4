//! From a request target (`/a%20b/../c.txt?x=1`) to a path under the root
//! (`c.txt`), or a refusal: the first of the two walls that keep every
//! request inside `--root` (the second, for symbolic links, is in `files`).
//!
//! The steps, in order:
//!
//! 1. The query (`?…`) and fragment (`#…`) are cut off; an absolute-form
//!    target (`http://host/path`) keeps only its path.
//! 2. Percent-escapes are decoded (`%2e%2e` is `..`, `%2F` is `/`); a broken
//!    escape (`%zz`, `%4`) is a bad request. Decoding comes *before* the
//!    dot-segments are resolved, so an encoded `..` is caught like a plain
//!    one.
//! 3. A decoded NUL byte (`%00`) is refused: the kernel would cut the path
//!    there, serving a file other than the one named.
//! 4. The path is cut at `/`; empty and `.` segments are dropped, `..`
//!    removes the segment before it, and a `..` with nothing left to remove
//!    (one that would climb out of the root) is refused.

use std::fmt;

/// Why a target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a path at all, or a broken percent-escape: `400 Bad Request`.
    Malformed,
    /// A path that names nothing we may serve (climbs out of the root,
    /// holds a NUL): `404 Not Found`, exactly as for a missing file, so a
    /// prober learns nothing.
    Outside,
}

/// A request path, decoded and normalised: segments joined by `/`, none of
/// them empty, `.` or `..`; empty for the root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// The relative path, as bytes (Linux file names are bytes).
    pub path: Vec<u8>,
    /// The target ended with `/` (a directory was asked for).
    pub trailing_slash: bool,
}

impl fmt::Display for Normalised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.path))
    }
}

/// Decodes and normalises `target` into `out` (cleared first, its
/// allocation reused).
pub fn normalise(target: &str, out: &mut Normalised) -> Result<(), Refused> {
    out.path.clear();
    out.trailing_slash = false;
    let mut target = target.as_bytes();
    // Absolute form: `http://host:port/path` keeps `/path`.
    if let Some(rest) = strip_scheme(target) {
        target = match rest.iter().position(|&b| b == b'/') {
            Some(slash) => &rest[slash..],
            None => b"/",
        };
    }
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let target = &target[..end];
    if target.first() != Some(&b'/') {
        return Err(Refused::Malformed);
    }
    // The common case, nothing to decode or resolve: copy it as it is.
    if is_plain(target) {
        out.path.extend_from_slice(&target[1..]);
        out.trailing_slash = target.len() > 1 && target.ends_with(b"/");
        if out.trailing_slash {
            out.path.pop();
        }
        return Ok(());
    }
    let decoded = percent_decode(target)?;
    if decoded.contains(&0) {
        return Err(Refused::Outside);
    }
    out.trailing_slash = decoded.len() > 1 && decoded.ends_with(b"/");
    // Segments kept so far, as (start, end) in `out.path`.
    let mut kept: Vec<usize> = Vec::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => match kept.pop() {
                Some(start) => out.path.truncate(start.saturating_sub(1)),
                None => return Err(Refused::Outside),
            },
            name => {
                if !out.path.is_empty() {
                    out.path.push(b'/');
                }
                kept.push(out.path.len());
                out.path.extend_from_slice(name);
            }
        }
    }
    // A path ending in `/.` or `/..` asked for a directory too.
    if decoded.ends_with(b"/.") || decoded.ends_with(b"/..") {
        out.trailing_slash = !out.path.is_empty();
    }
    Ok(())
}

/// No escape, no empty segment, no segment starting with a dot: nothing
/// for the general path to change.
fn is_plain(target: &[u8]) -> bool {
    !target.contains(&b'%') && !target.windows(2).any(|w| w == b"//" || w == b"/.")
}

/// `http://` or `https://` (any case) stripped, if the target starts so.
fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is refused.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hi = input.get(i + 1).and_then(|&b| hex(b));
            let lo = input.get(i + 2).and_then(|&b| hex(b));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(Refused::Malformed),
            }
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a file name for use in a link: everything but
/// unreserved characters is escaped, so the name cannot break out of the
/// `href` or be read as a path separator.
pub fn percent_encode(name: &[u8], out: &mut String) {
    for &b in name {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(target: &str) -> Result<String, Refused> {
        let mut out = Normalised {
            path: Vec::new(),
            trailing_slash: false,
        };
        normalise(target, &mut out).map(|()| {
            let slash = if out.trailing_slash { "/" } else { "" };
            format!("{}{slash}", String::from_utf8_lossy(&out.path))
        })
    }

    #[test]
    fn plain_paths_lose_their_leading_slash_and_query() {
        assert_eq!(norm("/"), Ok(String::new()));
        assert_eq!(norm("/hello.txt"), Ok("hello.txt".into()));
        assert_eq!(norm("/a/b.css?v=3#top"), Ok("a/b.css".into()));
        assert_eq!(norm("/docs/"), Ok("docs/".into()));
        assert_eq!(norm("http://example.com/x.txt"), Ok("x.txt".into()));
        assert_eq!(norm("HTTP://example.com"), Ok(String::new()));
    }

    #[test]
    fn dot_segments_inside_the_root_are_resolved() {
        assert_eq!(norm("/a/./b/../c.txt"), Ok("a/c.txt".into()));
        assert_eq!(norm("//a///b"), Ok("a/b".into()));
        assert_eq!(norm("/a/.."), Ok(String::new()));
        assert_eq!(norm("/a/b/.."), Ok("a/".into()));
    }

    #[test]
    fn climbing_out_of_the_root_is_refused_however_it_is_spelled() {
        for target in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/.%2e/x",
            "/a/%2e%2e/%2e%2e/x",
        ] {
            assert_eq!(norm(target), Err(Refused::Outside), "{target}");
        }
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert_eq!(norm("/hello.txt%00.html"), Err(Refused::Outside));
    }

    #[test]
    fn escapes_are_decoded_and_broken_ones_are_bad_requests() {
        assert_eq!(norm("/a%20b.txt"), Ok("a b.txt".into()));
        assert_eq!(norm("/%E4%BD%A0"), Ok("你".into()));
        assert_eq!(norm("/bad%zz"), Err(Refused::Malformed));
        assert_eq!(norm("/bad%4"), Err(Refused::Malformed));
        assert_eq!(norm("*"), Err(Refused::Malformed));
        assert_eq!(norm("relative"), Err(Refused::Malformed));
    }

    #[test]
    fn names_are_encoded_for_links() {
        let mut out = String::new();
        percent_encode("a b/<x>&\"é".as_bytes(), &mut out);
        assert_eq!(out, "a%20b%2F%3Cx%3E%26%22%C3%A9");
    }
}
