//! The chat room's pure logic, run by `cargo test`: name rules and
//! collision keys (docs/reliability.md#hostile-chat-names), message
//! cleaning (docs/reliability.md#impersonation) and a member's bounded
//! queue (docs/reliability.md#slow-readers). The modules are the
//! server's own, from the `servers` package.

use servers::chat::{names, protocol, queue};

use std::io::Write;

#[test]
fn valid_names() {
    for name in [
        "alice",
        "张三",
        "Ünïcødé",
        "bob_2",
        "a",
        &"x".repeat(32),
        &"界".repeat(32),
        "/who?",
        "a]b",
        "a*b",
    ] {
        let ok = names::validate(name.as_bytes()).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert_eq!(ok.display, name);
    }
}

#[test]
fn invalid_names_say_why() {
    let cases: &[(&[u8], &str)] = &[
        (b"\xff\xfe", "not valid UTF-8"),
        (b"ab\xc3", "not valid UTF-8"),
        (b"", "empty"),
        (&[b'a'; 33], "longer than 32 characters"),
        (b"a b", "U+0020"),
        (b"\talice", "U+0009"),
        (b"bob\r[server]", "U+000D"),
        (b"\x1b[2J", "U+001B"),
        ("alice\u{200B}".as_bytes(), "U+200B"),
        ("a\u{202E}txt".as_bytes(), "U+202E"),
        ("a\u{2066}b".as_bytes(), "U+2066"),
        ("\u{FEFF}bom".as_bytes(), "U+FEFF"),
        ("soft\u{AD}hy".as_bytes(), "U+00AD"),
        ("nb\u{A0}sp".as_bytes(), "U+00A0"),
        ("ideo\u{3000}sp".as_bytes(), "U+3000"),
        ("line\u{2028}sep".as_bytes(), "U+2028"),
        ("c1\u{85}".as_bytes(), "U+0085"),
        ("tag\u{E0041}".as_bytes(), "U+E0041"),
        (b"admin", "reserved"),
        (b"SERVER", "reserved"),
        ("ａｄｍｉｎ".as_bytes(), "reserved"),
        (b"[admin]", "may not start with ["),
        (b"*x", "may not start with *"),
        (b"!bang", "may not start with !"),
        ("［x".as_bytes(), "may not start with ["),
        ("＊x".as_bytes(), "may not start with *"),
        // Invisible (Default_Ignorable), blank, stacked, mixed, look-alike.
        ("obs\u{34F}erver".as_bytes(), "invisible character (U+034F)"),
        ("alice\u{FE0F}".as_bytes(), "invisible character (U+FE0F)"),
        ("\u{3164}".as_bytes(), "invisible character (U+3164)"),
        ("\u{2800}".as_bytes(), "no letter or digit"),
        (b"*", "no letter or digit"),
        (
            "a\u{301}\u{302}\u{303}\u{304}".as_bytes(),
            "combining marks",
        ),
        ("\u{430}dmin".as_bytes(), "mixes scripts (Cyrillic, Latin)"),
        (
            "\u{455}\u{435}\u{433}\u{475}\u{435}\u{433}".as_bytes(),
            "reserved",
        ),
    ];
    for (raw, why) in cases {
        let err = names::validate(raw).expect_err(&format!("{raw:?} accepted"));
        assert!(err.contains(why), "{raw:?}: {err:?} should say {why:?}");
    }
}

#[test]
fn collision_keys_fold_width_and_case() {
    let key = |s: &str| names::validate(s.as_bytes()).unwrap().key;
    assert_eq!(key("alice"), "alice");
    assert_eq!(key("Alice"), "alice");
    assert_eq!(key("ａｌｉｃｅ"), "alice");
    assert_eq!(key("ＡＬＩＣＥ"), "alice");
    assert_eq!(key("ﬁsh"), "fish"); // the fi ligature
    assert_ne!(key("alice"), key("alicé"));
    assert_eq!(key("张三"), "张三");
    // Confusable skeletons (TR39): what reads the same collides.
    assert_eq!(key("a1ice"), "alice");
    assert_eq!(key("0bserver"), key("observer"));
    assert_eq!(key("rnallory"), key("mallory"));
    // A few combining marks are fine (Vietnamese needs two).
    assert!(names::validate("e\u{301}\u{323}va".as_bytes()).is_ok());
}

#[test]
fn category_tables_match_the_standard_library_where_it_can_tell() {
    // Every Zs character is whitespace to Rust; Cc is char::is_control.
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        if names::is_space_separator(c) {
            assert!(c.is_whitespace(), "U+{:04X}", c as u32);
        }
        if names::is_format(c) {
            assert!(
                !c.is_control() && !c.is_alphanumeric(),
                "U+{:04X}",
                c as u32
            );
        }
    }
}

#[test]
fn message_text_cannot_forge_lines() {
    assert_eq!(protocol::clean_text(b"hi"), "hi");
    assert_eq!(protocol::clean_text(b"a\tb"), "a\tb");
    assert_eq!(protocol::clean_text(b"x\ry"), "xy");
    assert_eq!(protocol::clean_text(b"\x1b[31mred"), "[31mred");
    assert_eq!(
        protocol::clean_text("\u{202E}evil\u{2066}".as_bytes()),
        "evil"
    );
    assert_eq!(
        protocol::clean_text("a\u{85}b\u{7f}c\u{2028}d".as_bytes()),
        "abcd"
    );
    assert_eq!(
        protocol::clean_text("👨\u{200D}👩".as_bytes()),
        "👨\u{200D}👩"
    );
    assert_eq!(protocol::clean_text(b"bad \xff byte"), "bad \u{FFFD} byte");
    assert_eq!(
        &*protocol::message("alice", "[admin] x"),
        b"alice: [admin] x\n"
    );
    assert_eq!(
        &*protocol::welcome("b", &["a", "b"]),
        b"* welcome b, online: a, b\n"
    );
    assert_eq!(&*protocol::who(&["a"]), b"* online: a\n");
    assert_eq!(&*protocol::left_too_slow("x"), b"* x left (too slow)\n");
}

#[test]
fn commands_are_exact() {
    use protocol::Command;
    assert_eq!(protocol::parse(b"/who"), Command::Who);
    assert_eq!(protocol::parse(b"/quit  "), Command::Quit);
    assert_eq!(protocol::parse(b"/who me"), Command::Text(b"/who me"));
    assert_eq!(protocol::parse(b" /quit"), Command::Text(b" /quit"));
}

/// A writer that takes at most `chunk` bytes a call, then blocks.
struct Trickle {
    out: Vec<u8>,
    chunk: usize,
    budget: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.budget == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.chunk).min(self.budget);
        self.out.extend_from_slice(&buf[..n]);
        self.budget -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn queue_is_bounded_in_memory_and_keeps_order_across_partial_writes() {
    let mut q = queue::OutQueue::new(15);
    assert!(q.push(b"0123456789\n"));
    assert!(!q.push(b"0123456789\n"), "past the bound");
    assert!(q.push(b"abc\n"));
    assert!(q.capacity() <= 15, "the allocation is the bound");
    let mut out = Trickle {
        out: Vec::new(),
        chunk: 3,
        budget: 7,
    };
    q.write_to(&mut out).unwrap();
    assert_eq!(out.out, b"0123456");
    assert_eq!(q.queued(), 8);
    // Room made by the partial write is reused, not grown into.
    assert!(q.push(b"xyz\n"));
    assert!(q.capacity() <= 15);
    out.budget = 100;
    q.write_to(&mut out).unwrap();
    assert_eq!(out.out, b"0123456789\nabc\nxyz\n");
    assert!(q.is_empty());
}

#[test]
fn a_queue_never_allocates_past_its_bound_and_frees_a_burst() {
    let limit = 1_000_000;
    let mut q = queue::OutQueue::new(limit);
    let line = [b'm'; 5];
    while q.push(&line) {
        assert!(q.capacity() <= limit, "{} > {limit}", q.capacity());
    }
    assert!(q.queued() > limit - line.len());
    let mut out = Trickle {
        out: Vec::new(),
        chunk: usize::MAX,
        budget: usize::MAX,
    };
    q.write_to(&mut out).unwrap();
    assert_eq!(q.capacity(), 0, "a drained burst gives its memory back");
}
