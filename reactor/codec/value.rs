//! [`Value`], one packed or unpacked field, and [`Values`], a record printed
//! the way Python prints a tuple.

use std::fmt;

use super::float;

/// One value of a record: what Python passes to `pack` and gets from `unpack`.
///
/// Python's `struct` works with four Python types, and so does this enum:
///
/// | variant | Python type | format characters |
/// |---|---|---|
/// | [`Int`](Value::Int) | `int` | `b B h H i I l L q Q n N P` |
/// | [`Bool`](Value::Bool) | `bool` | `?` |
/// | [`Float`](Value::Float) | `float` | `e f d` |
/// | [`Bytes`](Value::Bytes) | `bytes` | `c s p` |
///
/// `Int` holds an `i128`, so every value of every integer code fits
/// (`Q` goes up to 2⁶⁴ − 1). Packing is as lenient as Python: a `Bool`
/// packs into an integer field as 0 or 1, an `Int` into a float field, and
/// anything into `?` by its truthiness.
///
/// `Display` writes the value as Python's `repr` does: `1`, `True`, `1.75`,
/// `1e-05`, `nan`, `b'zhang'`, `b'\x00it\'s'`.
///
/// # Examples
///
/// ```
/// use reactor::codec::Value;
///
/// let record = [Value::from(1), Value::from(b"zhang"), Value::from(1.75)];
/// assert_eq!(record[1], Value::Bytes(b"zhang".to_vec()));
/// assert_eq!(record[0].to_string(), "1");
/// assert_eq!(Value::from(&b"it's\n"[..]).to_string(), r#"b"it's\n""#);
/// assert_eq!(Value::from(1e16).to_string(), "1e+16");
/// assert_eq!(Value::from(u64::MAX).as_int(), Some(18446744073709551615));
/// ```
///
/// Python: `(1, b'zhang', 1.75)`
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer (Python `int`).
    Int(i128),
    /// A boolean (Python `bool`).
    Bool(bool),
    /// A float (Python `float`, a double).
    Float(f64),
    /// A byte string (Python `bytes`).
    Bytes(Vec<u8>),
}

impl Value {
    /// The integer, if this is an [`Int`](Value::Int).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Value;
    ///
    /// assert_eq!(Value::from(-5i8).as_int(), Some(-5));
    /// assert_eq!(Value::from(true).as_int(), None);
    /// ```
    ///
    /// Python: `isinstance(v, int) and not isinstance(v, bool)`
    pub fn as_int(&self) -> Option<i128> {
        match *self {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The boolean, if this is a [`Bool`](Value::Bool).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Value;
    ///
    /// assert_eq!(Value::from(true).as_bool(), Some(true));
    /// assert_eq!(Value::from(1).as_bool(), None);
    /// ```
    ///
    /// Python: `v if isinstance(v, bool) else None`
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The float, if this is a [`Float`](Value::Float).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Value;
    ///
    /// assert_eq!(Value::from(1.75).as_float(), Some(1.75));
    /// assert_eq!(Value::from(2).as_float(), None);
    /// ```
    ///
    /// Python: `v if isinstance(v, float) else None`
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::Float(x) => Some(x),
            _ => None,
        }
    }

    /// The bytes, if this is a [`Bytes`](Value::Bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Value;
    ///
    /// assert_eq!(Value::from("zhang").as_bytes(), Some(&b"zhang"[..]));
    /// assert_eq!(Value::from(0).as_bytes(), None);
    /// ```
    ///
    /// Python: `v if isinstance(v, bytes) else None`
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Python's truthiness, which is what a `?` field packs.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Int(n) => *n != 0,
            Value::Bool(b) => *b,
            // nan is true in Python: it is not equal to 0.0
            Value::Float(x) => *x != 0.0,
            Value::Bytes(b) => !b.is_empty(),
        }
    }

    /// The Python type name, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            /// An [`Int`](Value::Int).
            fn from(n: $t) -> Value {
                Value::Int(n as i128)
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, usize);

impl From<bool> for Value {
    /// A [`Bool`](Value::Bool).
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    /// A [`Float`](Value::Float).
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<f32> for Value {
    /// A [`Float`](Value::Float), widened exactly (so `1.1f32` prints as `1.100000023841858`).
    fn from(x: f32) -> Value {
        Value::Float(f64::from(x))
    }
}

impl From<Vec<u8>> for Value {
    /// A [`Bytes`](Value::Bytes).
    fn from(b: Vec<u8>) -> Value {
        Value::Bytes(b)
    }
}

impl From<&[u8]> for Value {
    /// A [`Bytes`](Value::Bytes), copied.
    fn from(b: &[u8]) -> Value {
        Value::Bytes(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    /// A [`Bytes`](Value::Bytes), copied: `Value::from(b"zhang")`.
    fn from(b: &[u8; N]) -> Value {
        Value::Bytes(b.to_vec())
    }
}

impl From<&str> for Value {
    /// A [`Bytes`](Value::Bytes) holding the UTF-8 encoding (Python: `s.encode()`).
    fn from(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }
}

impl fmt::Display for Value {
    /// Python's `repr` of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Float(x) => float::write_repr(f, *x),
            Value::Bytes(b) => write_bytes_repr(f, b),
        }
    }
}

/// Python's `repr(bytes)`: `b'...'`, or `b"..."` when that needs no escape
/// for a quote; `\\`, `\t`, `\n`, `\r` and the quote escaped, other bytes
/// outside printable ASCII as `\xhh`.
fn write_bytes_repr(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    f.write_str("b")?;
    f.write_str(if quote == b'"' { "\"" } else { "'" })?;
    // Write runs of plain characters in one call.
    let mut plain = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = match byte {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\'' if quote == b'\'' => "\\'",
            b'"' if quote == b'"' => "\\\"",
            0x20..=0x7e => continue,
            _ => "",
        };
        // Bytes before i are printable ASCII, so this is valid UTF-8.
        f.write_str(std::str::from_utf8(&bytes[plain..i]).unwrap_or_default())?;
        plain = i + 1;
        if escape.is_empty() {
            write!(f, "\\x{byte:02x}")?;
        } else {
            f.write_str(escape)?;
        }
    }
    f.write_str(std::str::from_utf8(&bytes[plain..]).unwrap_or_default())?;
    f.write_str(if quote == b'"' { "\"" } else { "'" })
}

/// A record printed as Python prints a tuple: `(1, b'zhang', 1.75)`.
///
/// One value gets a trailing comma, `(5,)`, and none prints `()`, as in
/// Python. Each value is written with [`Value`]'s `Display`, which is
/// Python's `repr`.
///
/// # Examples
///
/// ```
/// use reactor::codec::{Struct, Value, Values};
///
/// let st = Struct::new("i5sf")?;
/// let record = st.unpack(&st.pack(&[1.into(), b"zhang".into(), 1.75.into()])?)?;
/// assert_eq!(Values(&record).to_string(), "(1, b'zhang', 1.75)");
/// assert_eq!(Values(&[Value::Int(5)]).to_string(), "(5,)");
/// assert_eq!(Values(&[]).to_string(), "()");
/// # Ok::<(), reactor::Error>(())
/// ```
///
/// Python: `print(st.unpack(data))`
#[derive(Clone, Copy, Debug)]
pub struct Values<'a>(pub &'a [Value]);

impl fmt::Display for Values<'_> {
    /// Python's `repr` of the tuple.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{value}")?;
        }
        if self.0.len() == 1 {
            f.write_str(",")?;
        }
        f.write_str(")")
    }
}
