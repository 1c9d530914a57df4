//! `Range: bytes=…` for one range: which bytes of a file to send.
//!
//! The three forms (RFC 9110 §14.1.2): `bytes=a-b` (a through b, b clamped
//! to the end), `bytes=a-` (from a to the end), `bytes=-n` (the last n).
//! A syntactically broken header, another unit or several ranges are
//! *ignored*, as the RFC allows: the whole file is sent with `200`. A range
//! that starts past the end is unsatisfiable: `416` with
//! `Content-Range: bytes */size`.

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file: `200`.
    Whole,
    /// Bytes `start..end` (end exclusive): `206` with
    /// `Content-Range: bytes start-(end-1)/size`.
    Part {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Nothing of it can be sent: `416`.
    Unsatisfiable,
}

/// Reads the `Range` header `value` against a file of `size` bytes.
pub fn wanted(value: &[u8], size: u64) -> Wanted {
    let Some(spec) = strip_prefix_ignore_case(trim(value), b"bytes=") else {
        return Wanted::Whole;
    };
    let spec = trim(spec);
    if spec.contains(&b',') {
        return Wanted::Whole;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Wanted::Whole;
    };
    let (first, last) = (trim(&spec[..dash]), trim(&spec[dash + 1..]));
    match (number(first), number(last)) {
        // bytes=-n: the last n bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part {
                    start: size - n.min(size),
                    end: size,
                }
            }
        }
        // bytes=a-: from a to the end.
        (Some(a), None) if last.is_empty() => part(a, size, size),
        // bytes=a-b.
        (Some(a), Some(b)) if a <= b => part(a, b.saturating_add(1).min(size), size),
        // Anything else is not a range we understand: ignore it.
        _ => Wanted::Whole,
    }
}

fn part(start: u64, end: u64, size: u64) -> Wanted {
    if start >= size {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part { start, end }
    }
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &bytes[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        assert_eq!(wanted(b"bytes=0-4", 6), Wanted::Part { start: 0, end: 5 });
        assert_eq!(wanted(b"bytes=2-", 6), Wanted::Part { start: 2, end: 6 });
        assert_eq!(wanted(b"bytes=-2", 6), Wanted::Part { start: 4, end: 6 });
        assert_eq!(wanted(b" Bytes=1-1 ", 6), Wanted::Part { start: 1, end: 2 });
    }

    #[test]
    fn ends_past_the_file_are_clamped() {
        assert_eq!(wanted(b"bytes=3-100", 6), Wanted::Part { start: 3, end: 6 });
        assert_eq!(wanted(b"bytes=-100", 6), Wanted::Part { start: 0, end: 6 });
        assert_eq!(
            wanted(b"bytes=0-18446744073709551615", 6),
            Wanted::Part { start: 0, end: 6 }
        );
    }

    #[test]
    fn starts_past_the_end_are_unsatisfiable() {
        assert_eq!(wanted(b"bytes=6-", 6), Wanted::Unsatisfiable);
        assert_eq!(wanted(b"bytes=10-20", 6), Wanted::Unsatisfiable);
        assert_eq!(wanted(b"bytes=-0", 6), Wanted::Unsatisfiable);
        assert_eq!(wanted(b"bytes=0-", 0), Wanted::Unsatisfiable);
    }

    #[test]
    fn what_is_not_one_byte_range_is_ignored() {
        for value in [
            &b"bytes=0-1,3-4"[..],
            b"items=0-1",
            b"bytes=5-2",
            b"bytes=x-1",
            b"bytes=-",
            b"bytes=1",
            b"bytes=99999999999999999999-",
        ] {
            assert_eq!(
                wanted(value, 6),
                Wanted::Whole,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
