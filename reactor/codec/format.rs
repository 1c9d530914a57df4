//! Parsing a `struct` format string into a layout: which fields, how big, where.
//!
//! This is CPython's `prepare_s` (Modules/_struct.c) in Rust. A format is an
//! optional byte-order character followed by items; an item is an optional
//! decimal repeat count and a format character. Whitespace between items is
//! skipped (but not between a count and its character: `"3 i"` is an error,
//! as in Python).
//!
//! | prefix | byte order | sizes | alignment |
//! |---|---|---|---|
//! | `@` (or none) | native | native (`l` is 8 bytes on x86-64 Linux) | native: each field starts at a multiple of its own alignment |
//! | `=` | native | standard | none |
//! | `<` | little-endian | standard | none |
//! | `>`, `!` | big-endian (network) | standard | none |
//!
//! Native alignment pads *before* a field only, never after the last one:
//! `calcsize('@ic')` is 5, `calcsize('@ci')` is 8, and `calcsize('@c0i')` is 4
//! (a zero count still aligns — Python's documented trick for trailing padding).

use std::mem::{align_of, size_of};
use std::os::raw::{c_int, c_long, c_longlong, c_short, c_void};

use crate::error::{Error, Result};

/// What a format character stores, which decides how a value is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `x`: a zero byte; takes no value.
    Pad,
    /// `c`: one byte, given as a 1-byte `bytes`.
    Char,
    /// `b h i l q n`: two's-complement integer.
    Signed,
    /// `B H I L Q N P`: unsigned integer.
    Unsigned,
    /// `?`: one byte, 0 or 1.
    Bool,
    /// `e`: IEEE 754 binary16.
    Half,
    /// `f`: IEEE 754 binary32.
    Single,
    /// `d`: IEEE 754 binary64.
    Double,
    /// `s`: fixed-size bytes, NUL-padded.
    Bytes,
    /// `p`: Pascal string, a length byte then the bytes.
    Pascal,
}

/// One run of identical items in a format: `"3h"` is one field of three items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// The format character.
    pub(crate) code: char,
    /// What it stores.
    pub(crate) kind: Kind,
    /// Bytes per item (for `s` and `p`, the whole field: `"10s"` is one 10-byte item).
    pub(crate) size: usize,
    /// Number of items (1 for `s` and `p`, the pad length for `x`).
    pub(crate) items: usize,
    /// Offset of the first item from the start of the record.
    pub(crate) offset: usize,
}

impl Field {
    /// How many values this field takes and gives (pad bytes take none).
    pub(crate) fn values(&self) -> usize {
        if self.kind == Kind::Pad {
            0
        } else {
            self.items
        }
    }
}

/// A parsed format: everything `pack` and `unpack` need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Native mode (`@` or no prefix): native sizes and alignment.
    pub(crate) native: bool,
    /// Multi-byte fields are little-endian.
    pub(crate) little: bool,
    /// The fields, in order, with their offsets.
    pub(crate) fields: Vec<Field>,
    /// Total size in bytes.
    pub(crate) size: usize,
    /// Number of values a record holds.
    pub(crate) values: usize,
}

/// Python's `Py_ISSPACE`: the whitespace allowed between items.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `(kind, size, alignment)` of a format character, or `None` if the table
/// has no such character. The native table has `n`, `N` and `P`; the
/// standard one does not (CPython's `native_table` vs `lilendian_table`).
fn lookup(code: char, native: bool) -> Option<(Kind, usize, usize)> {
    // Native sizes and alignments are the C compiler's, as in CPython.
    fn n<T>(kind: Kind) -> (Kind, usize, usize) {
        (kind, size_of::<T>(), align_of::<T>())
    }
    let entry = match (code, native) {
        ('x', _) => (Kind::Pad, 1, 1),
        ('c', _) => (Kind::Char, 1, 1),
        ('b', _) => (Kind::Signed, 1, 1),
        ('B', _) => (Kind::Unsigned, 1, 1),
        ('?', _) => (Kind::Bool, 1, 1),
        ('s', _) => (Kind::Bytes, 1, 1),
        ('p', _) => (Kind::Pascal, 1, 1),
        // Native: the C types' sizes and alignments.
        ('h', true) => n::<c_short>(Kind::Signed),
        ('H', true) => n::<c_short>(Kind::Unsigned),
        ('i', true) => n::<c_int>(Kind::Signed),
        ('I', true) => n::<c_int>(Kind::Unsigned),
        ('l', true) => n::<c_long>(Kind::Signed),
        ('L', true) => n::<c_long>(Kind::Unsigned),
        ('q', true) => n::<c_longlong>(Kind::Signed),
        ('Q', true) => n::<c_longlong>(Kind::Unsigned),
        ('n', true) => n::<isize>(Kind::Signed),
        ('N', true) => n::<usize>(Kind::Unsigned),
        ('P', true) => n::<*const c_void>(Kind::Unsigned),
        ('e', true) => n::<c_short>(Kind::Half),
        ('f', true) => n::<f32>(Kind::Single),
        ('d', true) => n::<f64>(Kind::Double),
        // Standard: fixed sizes, no alignment.
        ('h', false) => (Kind::Signed, 2, 1),
        ('H', false) => (Kind::Unsigned, 2, 1),
        ('i' | 'l', false) => (Kind::Signed, 4, 1),
        ('I' | 'L', false) => (Kind::Unsigned, 4, 1),
        ('q', false) => (Kind::Signed, 8, 1),
        ('Q', false) => (Kind::Unsigned, 8, 1),
        ('e', false) => (Kind::Half, 2, 1),
        ('f', false) => (Kind::Single, 4, 1),
        ('d', false) => (Kind::Double, 8, 1),
        _ => return None,
    };
    Some(entry)
}

/// Parses `format` the way `struct.Struct(format)` does.
///
/// Errors carry the character index of the offending character. Sizes are
/// computed with checked arithmetic and capped at `isize::MAX` (the most a
/// `Vec` can hold), so no format string can overflow or panic.
pub(crate) fn parse(format: &str) -> Result<Layout> {
    let err = |position: usize, reason: String| Error::StructFormat {
        format: format.to_owned(),
        position,
        reason,
    };
    let too_long_at = |position: usize| err(position, "total struct size too long".to_owned());

    let mut chars = format.chars().enumerate().peekable();
    let (native, little) = match chars.peek().map(|&(_, c)| c) {
        Some('<') => (false, true),
        Some('>' | '!') => (false, false),
        Some('=') => (false, cfg!(target_endian = "little")),
        Some('@') => (true, cfg!(target_endian = "little")),
        _ => (true, cfg!(target_endian = "little")),
    };
    if matches!(chars.peek(), Some((_, '<' | '>' | '!' | '=' | '@'))) {
        chars.next();
    }

    let mut layout = Layout {
        native,
        little,
        fields: Vec::new(),
        size: 0,
        values: 0,
    };
    while let Some((mut position, mut code)) = chars.next() {
        if is_space(code) {
            continue;
        }
        // An optional repeat count, then the character it repeats. Every
        // "too long" error points at the item's first character (its count,
        // if it has one): the item that makes the record too large.
        let start = position;
        let too_long = || too_long_at(start);
        let mut count = 1usize;
        if let Some(digit) = code.to_digit(10) {
            count = digit as usize;
            loop {
                match chars.next() {
                    Some((_, c @ '0'..='9')) => {
                        count = count
                            .checked_mul(10)
                            .and_then(|n| n.checked_add(c as usize - '0' as usize))
                            .ok_or_else(too_long)?;
                    }
                    Some((p, c)) => {
                        (position, code) = (p, c);
                        break;
                    }
                    None => {
                        let end = format.chars().count();
                        return Err(err(
                            end,
                            "repeat count given without format specifier".to_owned(),
                        ));
                    }
                }
            }
        }

        let Some((kind, item_size, align)) = lookup(code, native) else {
            let reason = match code {
                'n' | 'N' | 'P' => format!(
                    "'{code}' exists only in native mode: use '@' or no prefix, not '{}'",
                    format.chars().next().unwrap_or('@')
                ),
                '0'..='9' | '<' | '>' | '!' | '=' | '@' => format!(
                    "{code:?} is not a format character here: byte order may only come first, \
                     and a count must be followed by its character"
                ),
                _ => format!(
                    "{code:?} is not a format character (expected one of x c b B ? h H i I l L q Q n N P e f d s p)"
                ),
            };
            return Err(err(position, reason));
        };

        // Native mode aligns each field to its own alignment, even with count 0.
        if native && align > 1 {
            layout.size = layout
                .size
                .checked_next_multiple_of(align)
                .ok_or_else(too_long)?;
        }
        let field = match kind {
            Kind::Bytes | Kind::Pascal => Field {
                code,
                kind,
                size: count,
                items: 1,
                offset: layout.size,
            },
            _ => Field {
                code,
                kind,
                size: item_size,
                items: count,
                offset: layout.size,
            },
        };
        layout.size = field
            .size
            .checked_mul(field.items)
            .and_then(|n| n.checked_add(layout.size))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(too_long)?;
        layout.values += field.values();
        if field.size * field.items > 0 || field.values() > 0 {
            layout.fields.push(field);
        }
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(format: &str) -> usize {
        parse(format).unwrap().size
    }

    #[test]
    fn native_alignment_pads_before_fields_only() {
        assert_eq!(size("@ic"), 5);
        assert_eq!(size("@ci"), 8);
        assert_eq!(size("c0i"), 4);
        assert_eq!(size("<ci"), 5);
        assert_eq!(size("i5sf"), 16);
    }

    #[test]
    fn python_whitespace_is_skipped_between_items() {
        assert_eq!(size("<2i\r\x0bb\x0c \t\nh"), 11);
        assert!(parse("3 i").is_err());
    }

    #[test]
    fn errors_point_at_the_character() {
        let Err(Error::StructFormat { position, .. }) = parse("<iin") else {
            panic!("parsed")
        };
        assert_eq!(position, 3);
        let Err(Error::StructFormat { position, .. }) = parse("ié") else {
            panic!("parsed")
        };
        assert_eq!(position, 1);
    }
}
