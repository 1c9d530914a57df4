//! Received text made safe to print on a terminal or in a log: the
//! course servers print what clients send, and a client's `ESC ] 0 ; …`
//! would retitle the terminal, `ESC [ 2 J` clear it, and a newline start a
//! forged `Disconnect …` line.

use std::fmt::Write;

/// `text` as Python's `repr` shows a `str`, without the quotes: printable
/// characters (Chinese included) as they are; `\t`, `\n`, `\r` and `\\` as
/// those escapes; every other control, format (bidi overrides, zero-width
/// characters) or separator character as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
/// One line ending at the very end (what `nc` sends after each line) is
/// dropped first, so `hello\n` prints as `hello`.
pub fn escape(text: &str) -> String {
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if shown_as_is(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out
}

/// Whether Python's `repr` would print `c` itself: not a control, format,
/// separator (but the plain space) or private-use/unassigned character.
fn shown_as_is(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    !matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Other | GeneralCategoryGroup::Separator
    )
}
