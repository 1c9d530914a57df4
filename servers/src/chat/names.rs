//! Name rules: which names a member may take, and the key under
//! which two names collide.
//!
//! The course's chat room keeps `users = {name: addr}` and only checks
//! `if name in users`. That lets `alice` and `Alice` both in, and any byte
//! string at all as a name: a newline, an ANSI escape that clears the
//! screen, a right-to-left override (`alice\u{202E}txt`) that shows the
//! rest of the line backwards. Here a name is checked before it is compared:
//!
//! - valid UTF-8 (no lossy U+FFFD replacement: invalid bytes are refused);
//! - 1 to 32 characters (Chinese names welcome: `张三` is two characters);
//! - no whitespace, control or invisible formatting character anywhere
//!   (Unicode categories Zs, Cc and Cf — zero-width spaces and bidi marks
//!   included — plus the line and paragraph separators);
//! - not `admin` or `server`, and not starting with `[`, `*` or `!` (the
//!   prefixes of the server's own lines), judged after normalisation so
//!   `ＡＤＭＩＮ` and `［x` are refused too.
//!
//! Two names collide when their *keys* are equal: the NFKC compatibility
//! normalisation, then lowercase. `ａｌｉｃｅ` (fullwidth), `Alice` and
//! `alice` all have the key `alice`.

use unicode_normalization::UnicodeNormalization;

/// Longest name, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 32;

/// Names nobody may take (compared by key).
const RESERVED: [&str; 2] = ["admin", "server"];

/// A name that passed the rules, with its collision key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// As the member typed it; shown to everyone.
    pub display: String,
    /// NFKC, then lowercase: equal keys mean the same member.
    pub key: String,
}

/// Checks `raw` (one line, without its `\n`) against the rules; the error
/// is the reason sent back as `! invalid name: <reason>`.
pub fn validate(raw: &[u8]) -> Result<Name, String> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("not valid UTF-8".to_owned());
    };
    let count = text.chars().count();
    if count == 0 {
        return Err("empty".to_owned());
    }
    if count > MAX_NAME_CHARS {
        return Err(format!("longer than {MAX_NAME_CHARS} characters"));
    }
    if let Some(c) = text.chars().find(|&c| is_forbidden(c)) {
        return Err(format!(
            "contains a space, control or formatting character (U+{:04X})",
            c as u32
        ));
    }
    let key = key(text);
    if RESERVED.contains(&key.as_str()) {
        return Err(format!("{text} is reserved"));
    }
    for first in [text.chars().next(), key.chars().next()]
        .into_iter()
        .flatten()
    {
        if matches!(first, '[' | '*' | '!') {
            return Err(format!("may not start with {first}"));
        }
    }
    Ok(Name {
        display: text.to_owned(),
        key,
    })
}

/// The collision key: NFKC compatibility normalisation, then lowercase.
pub fn key(name: &str) -> String {
    name.nfkc().collect::<String>().to_lowercase()
}

/// Whitespace (Zs and the rest), control (Cc) or format (Cf): never in a name.
pub fn is_forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || is_space_separator(c) || is_format(c)
}

/// Unicode general category Zs (space separators), Unicode 15.
pub fn is_space_separator(c: char) -> bool {
    matches!(
        c as u32,
        0x0020 | 0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000
    )
}

/// Unicode general category Cf (format characters: soft hyphen, zero-width
/// space and joiners, bidi marks, embeddings, overrides and isolates, the
/// byte order mark, interlinear annotation, tags), Unicode 15.
pub fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}
