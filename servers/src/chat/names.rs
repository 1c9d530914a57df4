//! Name rules: which names a member may take, and the key under
//! which two names collide.
//!
//! The course's chat room keeps `users = {name: addr}` and only checks
//! `if name in users`. That lets `alice` and `Alice` both in, and any byte
//! string at all as a name: a newline, an ANSI escape that clears the
//! screen, a right-to-left override (`alice\u{202E}txt`) that shows the
//! rest of the line backwards, or a name that *looks* like another one.
//! Here a name is checked before it is compared:
//!
//! - valid UTF-8 (no lossy U+FFFD replacement: invalid bytes are refused);
//! - 1 to 32 characters (Chinese names welcome: `张三` is two characters);
//! - no whitespace, control or formatting character anywhere (Unicode
//!   categories Zs, Zl, Zp, Cc and Cf: zero-width spaces and bidi marks
//!   included);
//! - no invisible character at all: Unicode's Default_Ignorable_Code_Point
//!   set (the combining grapheme joiner U+034F, variation selectors such as
//!   U+FE0F, the Hangul filler U+3164…), which would let `obs\u{34F}erver`
//!   sit next to `observer`;
//! - at least one letter or digit, so no name looks blank (U+2800, the
//!   braille blank, is a symbol) or is only punctuation;
//! - at most [`MAX_MARKS`] combining marks on one character (Vietnamese
//!   needs two; a tower of 31 draws over the lines around it);
//! - one script (Unicode TR39's mixed-script test: Latin with Cyrillic is
//!   refused, Japanese kanji with kana is one script), so `аdmin` with a
//!   Cyrillic `а` is not a second `admin`;
//! - not `admin` or `server`, and not starting with `[`, `*` or `!` (the
//!   prefixes of the server's own lines), judged on the key below so
//!   `ＡＤＭＩＮ`, `ѕеrvеr` (all Cyrillic) and `［x` are refused too.
//!
//! Two names collide when their *keys* are equal. The key is the TR39
//! confusable *skeleton* of the name after NFKC compatibility normalisation
//! and lowercasing (then lowercased once more, as the skeleton of `0` is
//! `O`): `ａｌｉｃｅ` (fullwidth), `Alice` and `alice` all have the key
//! `alice`, and so does `a1ice`, which reads the same. The Unicode data
//! comes from the unicode-rs crates (`unicode-security` for TR39's
//! skeleton, identifier types and script sets, `unicode-normalization`,
//! `unicode-properties` for general categories), not from tables here.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_script::{Script, UnicodeScript};
use unicode_security::confusable_detection::skeleton;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, MixedScript};

/// Longest name, in characters (not bytes).
pub const MAX_NAME_CHARS: usize = 32;

/// Most combining marks allowed on one character (after decomposition).
pub const MAX_MARKS: usize = 3;

/// Names nobody may take (compared by key).
const RESERVED: [&str; 2] = ["admin", "server"];

/// A name that passed the rules, with its collision key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// As the member typed it; shown to everyone.
    pub display: String,
    /// The confusable skeleton of its NFKC, lowercased form: equal keys
    /// mean names that look the same.
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
    if let Some(c) = text.chars().find(|&c| is_invisible(c)) {
        return Err(format!(
            "contains an invisible character (U+{:04X})",
            c as u32
        ));
    }
    if !text.chars().any(char::is_alphanumeric) {
        return Err("has no letter or digit".to_owned());
    }
    if most_marks(text) > MAX_MARKS {
        return Err(format!(
            "more than {MAX_MARKS} combining marks on one character"
        ));
    }
    if !text.is_single_script() {
        return Err(format!("mixes scripts ({})", scripts(text).join(", ")));
    }
    let key = key(text);
    if RESERVED.iter().any(|reserved| key == self::key(reserved)) {
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

/// The collision key: NFKC, lowercase, TR39 skeleton, lowercase again.
pub fn key(name: &str) -> String {
    let folded = name.nfkc().collect::<String>().to_lowercase();
    skeleton(&folded).collect::<String>().to_lowercase()
}

/// Whitespace (Zs and the rest), control (Cc), format (Cf), or a line or
/// paragraph separator: never in a name.
pub fn is_forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || is_space_separator(c) || is_format(c) || {
        matches!(
            c.general_category(),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        )
    }
}

/// Unicode's Default_Ignorable_Code_Point: drawn as nothing at all.
pub fn is_invisible(c: char) -> bool {
    c.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

/// Unicode general category Zs (space separators).
pub fn is_space_separator(c: char) -> bool {
    c.general_category() == GeneralCategory::SpaceSeparator
}

/// Unicode general category Cf (format characters: soft hyphen, zero-width
/// space and joiners, bidi marks, embeddings, overrides and isolates, the
/// byte order mark, interlinear annotation, tags).
pub fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

/// The longest run of combining marks in the canonical decomposition.
fn most_marks(text: &str) -> usize {
    let (mut most, mut run) = (0, 0);
    for c in text.nfd() {
        run = if is_combining_mark(c) { run + 1 } else { 0 };
        most = most.max(run);
    }
    most
}

/// The scripts used, in order of first use (Common and Inherited, shared
/// by every script, left out).
fn scripts(text: &str) -> Vec<String> {
    let mut seen: Vec<Script> = Vec::new();
    for c in text.chars() {
        let script = c.script();
        if !matches!(script, Script::Common | Script::Inherited | Script::Unknown)
            && !seen.contains(&script)
        {
            seen.push(script);
        }
    }
    seen.iter().map(|s| s.full_name().to_owned()).collect()
}
