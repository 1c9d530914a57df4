//! `reactor::codec::LineBuffer`: fragmented and coalesced input, the
//! line-length limit (oversized input), and never a zero-length read
//! (spurious readiness); see docs/reliability.md.

use reactor::codec::{Line, LineBuffer};

/// What a sequence of `next_line` calls produced, owned.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Line(Vec<u8>),
    TooLong,
}

fn line(text: &str) -> Got {
    Got::Line(text.as_bytes().to_vec())
}

fn drain(lines: &mut LineBuffer, out: &mut Vec<Got>) {
    while let Some(next) = lines.next_line() {
        out.push(match next {
            Line::Complete(bytes) => Got::Line(bytes.to_vec()),
            Line::TooLong => Got::TooLong,
        });
    }
}

/// Pushes `chunks` one by one, draining after each, as a server does.
fn feed(lines: &mut LineBuffer, chunks: &[&[u8]]) -> Vec<Got> {
    let mut out = Vec::new();
    for chunk in chunks {
        lines.push(chunk);
        drain(lines, &mut out);
    }
    out
}

/// The same, through `spare`/`filled` (the zero-copy read path).
fn feed_via_spare(
    lines: &mut LineBuffer,
    data: &[u8],
    sizes: &mut impl FnMut() -> usize,
) -> Vec<Got> {
    let mut out = Vec::new();
    let mut data = data;
    while !data.is_empty() {
        let spare = lines.spare();
        assert!(!spare.is_empty(), "spare() must never be empty");
        let n = sizes().clamp(1, spare.len()).min(data.len());
        spare[..n].copy_from_slice(&data[..n]);
        lines.filled(n);
        data = &data[n..];
        drain(lines, &mut out);
    }
    out
}

#[test]
fn byte_at_a_time_gives_the_same_lines() {
    let data = b"hello\nworld\r\n\n3\n";
    let mut lines = LineBuffer::new(100);
    let chunks: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(
        feed(&mut lines, &chunks),
        [line("hello"), line("world"), line(""), line("3")]
    );
    assert_eq!(lines.pending(), 0);
}

#[test]
fn a_hundred_lines_in_one_push() {
    let data: String = (0..100).map(|i| format!("line {i}\n")).collect();
    let mut lines = LineBuffer::new(100);
    let got = feed(&mut lines, &[data.as_bytes()]);
    let want: Vec<Got> = (0..100).map(|i| line(&format!("line {i}"))).collect();
    assert_eq!(got, want);
}

#[test]
fn crlf_loses_one_cr_only() {
    let mut lines = LineBuffer::new(100);
    let got = feed(&mut lines, &[b"a\r\nb\r\r\n\r\nc\rd\n"]);
    assert_eq!(got, [line("a"), line("b\r"), line(""), line("c\rd")]);
}

#[test]
fn cr_and_lf_split_across_reads() {
    let mut lines = LineBuffer::new(3);
    // Exactly max_line bytes, then '\r' in one read and '\n' in the next.
    let got = feed(&mut lines, &[b"abc\r", b"\nxyz\n"]);
    assert_eq!(got, [line("abc"), line("xyz")]);
}

#[test]
fn split_utf8_is_never_split_into_a_line() {
    let text = "你好, мир 👋\n";
    let bytes = text.as_bytes();
    for cut in 1..bytes.len() {
        let mut lines = LineBuffer::new(100);
        lines.push(&bytes[..cut]);
        assert_eq!(lines.next_line(), None, "cut at {cut}");
        lines.push(&bytes[cut..]);
        assert_eq!(
            lines.next_line(),
            Some(Line::Complete(text.trim_end().as_bytes()))
        );
    }
}

#[test]
fn exactly_max_line_is_accepted_and_one_more_is_not() {
    let max = 10;
    let exact = "x".repeat(max);
    let over = "y".repeat(max + 1);
    let mut lines = LineBuffer::new(max);
    let input = format!("{exact}\n{exact}\r\n{over}\nnext\n{over}\r\nlast\n");
    assert_eq!(
        feed(&mut lines, &[input.as_bytes()]),
        [
            line(&exact),
            line(&exact),
            Got::TooLong,
            line("next"),
            Got::TooLong,
            line("last")
        ]
    );
    // The same, a byte at a time (the over-long line is caught before its '\n').
    let mut lines = LineBuffer::new(max);
    let chunks: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
    assert_eq!(
        feed(&mut lines, &chunks),
        [
            line(&exact),
            line(&exact),
            Got::TooLong,
            line("next"),
            Got::TooLong,
            line("last")
        ]
    );
}

#[test]
fn too_long_is_reported_once_and_discards_to_the_next_newline() {
    let mut lines = LineBuffer::with_read_chunk(8, 4);
    let mut out = Vec::new();
    for _ in 0..100 {
        lines.push(b"zzzzzzzzzzzz");
        drain(&mut lines, &mut out);
    }
    lines.push(b"zz\nafter\n");
    drain(&mut lines, &mut out);
    assert_eq!(out, [Got::TooLong, line("after")]);
}

#[test]
fn two_over_long_lines_back_to_back_are_two_reports() {
    let mut lines = LineBuffer::with_read_chunk(2, 1);
    lines.push(b"aaaa\nbbbb\nok\n");
    let mut out = Vec::new();
    drain(&mut lines, &mut out);
    assert_eq!(out, [Got::TooLong, Got::TooLong, line("ok")]);
}

#[test]
fn ten_mib_without_newline_keeps_the_buffer_bounded() {
    let max = 4096;
    let chunk = 4096;
    let mut lines = LineBuffer::with_read_chunk(max, chunk);
    let block = vec![b'A'; 65536];
    let mut out = Vec::new();
    // One big push, then many reads through spare(): neither grows the buffer.
    lines.push(&vec![b'A'; 10 << 20]);
    drain(&mut lines, &mut out);
    for _ in 0..(10 << 20) / block.len() {
        let mut rest = &block[..];
        while !rest.is_empty() {
            let spare = lines.spare();
            assert!(!spare.is_empty());
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            lines.filled(n);
            rest = &rest[n..];
            drain(&mut lines, &mut out);
            assert!(
                lines.capacity() <= max + 1 + chunk,
                "capacity {}",
                lines.capacity()
            );
            assert!(lines.pending() <= max + 1);
        }
    }
    lines.push(b"\nhello\n");
    drain(&mut lines, &mut out);
    assert_eq!(out, [Got::TooLong, line("hello")]);
    assert!(lines.capacity() <= max + 1 + chunk);
}

#[test]
fn buffer_filled_to_max_line_still_offers_a_nonempty_read() {
    // docs/reliability.md#spurious-readiness: never read into a
    // zero-length slice.
    let max = 16;
    let mut lines = LineBuffer::with_read_chunk(max, max);
    let spare = lines.spare();
    spare.fill(b'q');
    lines.filled(max);
    assert_eq!(lines.next_line(), None);
    assert_eq!(lines.spare().len(), max);
    lines.filled(1); // one more 'q': over the limit
    assert_eq!(lines.next_line(), Some(Line::TooLong));
    assert_eq!(lines.spare().len(), max);
}

#[test]
fn unterminated_last_line_at_eof() {
    let mut lines = LineBuffer::new(100);
    lines.push(b"one\ntwo");
    assert_eq!(lines.next_line_at_eof(), Some(Line::Complete(b"one")));
    assert_eq!(lines.next_line_at_eof(), Some(Line::Complete(b"two")));
    assert_eq!(lines.next_line_at_eof(), None);
    assert_eq!(lines.pending(), 0);
}

#[test]
fn filled_more_than_offered_is_clamped() {
    let mut lines = LineBuffer::with_read_chunk(100, 4);
    lines.spare().copy_from_slice(b"ab\nc");
    lines.filled(1000);
    assert_eq!(lines.pending(), 4);
    assert_eq!(lines.next_line(), Some(Line::Complete(b"ab")));
    let mut fresh = LineBuffer::new(100);
    fresh.filled(10); // no spare() yet: nothing was offered
    assert_eq!(fresh.pending(), 0);
}

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the buffer must produce for `data`, computed the obvious way.
fn reference(data: &[u8], max: usize) -> Vec<Got> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default(); // unterminated (or "" after a final '\n')
    for part in parts {
        let part = part.strip_suffix(b"\r").unwrap_or(part);
        out.push(if part.len() > max {
            Got::TooLong
        } else {
            Got::Line(part.to_vec())
        });
    }
    // An unterminated line is reported as soon as no '\n' could save it.
    let tail = tail.strip_suffix(b"\r").unwrap_or(tail);
    if tail.len() > max {
        out.push(Got::TooLong);
    }
    out
}

#[test]
fn random_split_points_give_the_same_lines() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet: &[&[u8]] = &[
        b"a",
        b"b",
        b"\n",
        b"\r\n",
        b"\r",
        "é".as_bytes(),
        "你".as_bytes(),
        b" ",
    ];
    for round in 0..400 {
        let max = rng.below(12);
        let chunk = 1 + rng.below(9);
        let mut data = Vec::new();
        for _ in 0..rng.below(300) {
            data.extend_from_slice(alphabet[rng.below(alphabet.len())]);
        }
        let want = reference(&data, max);

        // Random pieces through push().
        let mut lines = LineBuffer::with_read_chunk(max, chunk);
        let mut pieces = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(20)).min(rest.len());
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(
            feed(&mut lines, &pieces),
            want,
            "round {round}: push, max {max}, data {data:?}"
        );
        assert!(
            lines.capacity() <= max + 1 + chunk + 20,
            "round {round}: capacity {}",
            lines.capacity()
        );

        // Random read sizes through spare()/filled().
        let mut lines = LineBuffer::with_read_chunk(max, chunk);
        let mut sizes = || 1 + rng.below(chunk);
        assert_eq!(
            feed_via_spare(&mut lines, &data, &mut sizes),
            want,
            "round {round}: spare, max {max}, data {data:?}"
        );
        assert!(
            lines.capacity() <= max + 1 + chunk,
            "round {round}: capacity {}",
            lines.capacity()
        );
    }
}
