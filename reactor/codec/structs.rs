//! [`Struct`]: a compiled format that packs values into bytes and back.

use std::fmt;

use super::float;
use super::format::{self, Field, Kind, Layout};
use super::value::Value;
use crate::error::{Error, Result};

/// A compiled `struct` format: packs a record of [`Value`]s into bytes and
/// unpacks bytes into values, byte-for-byte as Python's `struct.Struct` does.
///
/// The format is parsed once, in [`Struct::new`]; `pack` and `unpack` then
/// walk a list of fields with precomputed offsets. Everything Python's
/// `struct` module documents is supported: the byte orders `@` (native, the
/// default), `=`, `<`, `>` and `!`; the format characters
/// `x c b B ? h H i I l L q Q n N P e f d s p` (`n`, `N` and `P` only in native
/// mode); repeat counts (`3i`, `10s`, `0s`); whitespace between items; and
/// native alignment (`calcsize('@ci')` is 8).
///
/// Nothing here trusts its input: a format string or a buffer from the
/// network gives an [`Error`], never a panic.
///
/// # Examples
///
/// ```
/// use reactor::codec::{Struct, Value, Values};
///
/// // The course's record: an int, 5 bytes, a float.
/// let st = Struct::new("i5sf")?;
/// assert_eq!(st.size(), 16); // 4 + 5 + 3 bytes of padding to align the float + 4
///
/// let data = st.pack(&[Value::from(1), Value::from(b"zhang"), Value::from(1.75)])?;
/// assert_eq!(data, b"\x01\x00\x00\x00zhang\x00\x00\x00\x00\x00\xe0\x3f");
///
/// let record = st.unpack(&data)?;
/// assert_eq!(Values(&record).to_string(), "(1, b'zhang', 1.75)");
/// # Ok::<(), reactor::Error>(())
/// ```
///
/// Python:
/// `st = struct.Struct('i5sf'); data = st.pack(1, b'zhang', 1.75); print(st.unpack(data))`
#[derive(Clone, PartialEq, Eq)]
pub struct Struct {
    /// The format string as given.
    format: String,
    /// The parsed fields.
    layout: Layout,
}

impl Struct {
    /// Parses a format string.
    ///
    /// # Errors
    ///
    /// [`Error::StructFormat`], with the index of the offending character,
    /// for anything Python's `struct.Struct(format)` rejects: an unknown
    /// character (`"z"`), a byte-order character not at the start (`"i<"`),
    /// `n`, `N` or `P` outside native mode (`"<n"`), a count with no
    /// character after it (`"3"`), or a total size past `isize::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Error, codec::Struct};
    ///
    /// assert_eq!(Struct::new("<ci")?.size(), 5);
    /// assert_eq!(Struct::new("@ci")?.size(), 8);
    /// let err = Struct::new("<iin").unwrap_err();
    /// assert!(matches!(err, Error::StructFormat { position: 3, .. }));
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `st = struct.Struct('<ci')`
    pub fn new(format: &str) -> Result<Struct> {
        Ok(Struct {
            format: format.to_owned(),
            layout: format::parse(format)?,
        })
    }

    /// The size in bytes of one packed record.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Struct;
    ///
    /// assert_eq!(Struct::new("i5sf")?.size(), 16);
    /// assert_eq!(Struct::new("!hh")?.size(), 4);
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `st.size` or `struct.calcsize('i5sf')`
    pub fn size(&self) -> usize {
        self.layout.size
    }

    /// The format string this was built from.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Struct;
    ///
    /// assert_eq!(Struct::new("i5sf")?.format(), "i5sf");
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `st.format`
    pub fn format(&self) -> &str {
        &self.format
    }

    /// How many values a record holds: what `pack` takes and `unpack` returns.
    ///
    /// Pad bytes (`x`) hold none; `10s` holds one.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Struct;
    ///
    /// assert_eq!(Struct::new("i5sf")?.len(), 3);
    /// assert_eq!(Struct::new("3xh0i")?.len(), 1);
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `len(st.unpack(bytes(st.size)))`
    pub fn len(&self) -> usize {
        self.layout.values
    }

    /// Whether a record holds no values (the format is empty or only padding).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::Struct;
    ///
    /// assert!(Struct::new("4x")?.is_empty());
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `not st.unpack(bytes(st.size))`
    pub fn is_empty(&self) -> bool {
        self.layout.values == 0
    }

    /// Packs one record into a new `Vec` of exactly [`size`](Struct::size) bytes.
    ///
    /// See [`pack_into`](Struct::pack_into) for how each value is checked.
    ///
    /// # Errors
    ///
    /// As [`pack_into`](Struct::pack_into).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::{Struct, Value};
    ///
    /// let st = Struct::new(">hc?")?;
    /// let data = st.pack(&[Value::from(-2), Value::from(b"a"), Value::from(7)])?;
    /// assert_eq!(data, b"\xff\xfea\x01");
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `data = st.pack(-2, b'a', 7)`
    pub fn pack(&self, values: &[Value]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.pack_into(&mut out, values)?;
        Ok(out)
    }

    /// Packs one record onto the end of `out`.
    ///
    /// Appends exactly [`size`](Struct::size) bytes; it allocates only if
    /// `out` lacks the capacity. Pad bytes, and alignment padding, are zero.
    /// Each value is converted as Python converts it:
    ///
    /// - integer codes take an `Int` (or a `Bool`, as 0 or 1) in the code's range;
    /// - `?` takes anything and packs its truthiness (`0`, `0.0`, `b''` and `False` are false);
    /// - `e`, `f`, `d` take a `Float` or an `Int` (or a `Bool`); a finite value too
    ///   large for `e`, or for `f` with a standard size (`<f` etc.), is an error,
    ///   while a native `f` overflows to infinity as CPython's does; `inf` and `nan` always pack;
    /// - `c` takes a 1-byte `Bytes`;
    /// - `s` takes `Bytes`, truncated or NUL-padded to the count;
    /// - `p` takes `Bytes`: a length byte (`min(len, count - 1, 255)`), then the
    ///   bytes, truncated or NUL-padded.
    ///
    /// # Errors
    ///
    /// [`Error::StructSize`] (`what: "values"`) if `values` does not hold
    /// [`len`](Struct::len) values; [`Error::StructValue`], naming the value's
    /// index and format character, if a value has the wrong type or does not
    /// fit: `struct field 0 ('b'): 300 is out of range -128..=127`;
    /// [`Error::StructAlloc`] if the record is too large to allocate
    /// (`"1000000000000x"`). On error `out` is left as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Error, codec::{Struct, Value}};
    ///
    /// let st = Struct::new("<bH")?;
    /// let mut out = Vec::with_capacity(64);
    /// st.pack_into(&mut out, &[Value::from(-1), Value::from(0x1234)])?;
    /// st.pack_into(&mut out, &[Value::from(true), Value::from(65535)])?;
    /// assert_eq!(out, b"\xff\x34\x12\x01\xff\xff");
    ///
    /// let err = st.pack_into(&mut out, &[Value::from(300), Value::from(0)]).unwrap_err();
    /// assert_eq!(err.to_string(), "struct field 0 ('b'): 300 is out of range -128..=127");
    /// assert!(matches!(st.pack_into(&mut out, &[]), Err(Error::StructSize { expected: 2, got: 0, .. })));
    /// assert_eq!(out.len(), 6);
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `out += st.pack(-1, 0x1234)` (or `st.pack_into(buffer, offset, -1, 0x1234)`)
    pub fn pack_into(&self, out: &mut Vec<u8>, values: &[Value]) -> Result<()> {
        if values.len() != self.layout.values {
            return Err(Error::StructSize {
                what: "values",
                expected: self.layout.values,
                got: values.len(),
            });
        }
        let start = out.len();
        if out.try_reserve(self.layout.size).is_err() {
            return Err(Error::StructAlloc {
                what: "bytes",
                size: self.layout.size,
            });
        }
        out.resize(start + self.layout.size, 0);
        let record = &mut out[start..];
        let mut values = values.iter().enumerate();
        for field in &self.layout.fields {
            for item in 0..field.values() {
                // Both lengths were checked above, so neither runs out.
                let Some((index, value)) = values.next() else {
                    break;
                };
                let at = field.offset + item * field.size;
                let Some(slot) = record.get_mut(at..at + field.size) else {
                    break;
                };
                if let Err(reason) = self.pack_one(field, value, slot) {
                    out.truncate(start);
                    return Err(Error::StructValue {
                        index,
                        code: field.code,
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes one value into its `slot` (already zeroed, exactly the item's size).
    fn pack_one(&self, field: &Field, value: &Value, slot: &mut [u8]) -> Result<(), String> {
        match field.kind {
            // Pad bytes take no value and are never reached here.
            Kind::Pad => {}
            Kind::Signed | Kind::Unsigned => {
                let n = match *value {
                    Value::Int(n) => n,
                    Value::Bool(b) => i128::from(b),
                    _ => return Err(wrong_type("an integer", value)),
                };
                let (lo, hi) = int_range(field.kind, slot.len());
                if !(lo..=hi).contains(&n) {
                    return Err(format!("{n} is out of range {lo}..={hi}"));
                }
                self.put(slot, &n.to_le_bytes());
            }
            Kind::Bool => slot.fill(u8::from(value.truthy())),
            Kind::Half | Kind::Single | Kind::Double => {
                let x = match *value {
                    Value::Float(x) => x,
                    // Python's int-to-float rounds to nearest, ties to even, as `as` does.
                    Value::Int(n) => n as f64,
                    Value::Bool(b) => f64::from(u8::from(b)),
                    _ => return Err(wrong_type("a float", value)),
                };
                let too_large = || format!("float too large to pack with {} format", field.code);
                match field.kind {
                    Kind::Half => {
                        let bits = float::f64_to_half(x).ok_or_else(too_large)?;
                        self.put(slot, &bits.to_le_bytes());
                    }
                    Kind::Single => {
                        // Only the native table lets `f` overflow (a C cast in CPython).
                        let strict = !self.layout.native;
                        let bits = float::f64_to_single(x, strict).ok_or_else(too_large)?;
                        self.put(slot, &bits.to_le_bytes());
                    }
                    _ => self.put(slot, &x.to_bits().to_le_bytes()),
                }
            }
            Kind::Char => match value {
                // (`slot` is one byte.)
                Value::Bytes(b) if b.len() == slot.len() => slot.copy_from_slice(b),
                _ => return Err(wrong_type("bytes of length 1", value)),
            },
            Kind::Bytes => {
                let Value::Bytes(b) = value else {
                    return Err(wrong_type("bytes", value));
                };
                let n = b.len().min(slot.len());
                slot[..n].copy_from_slice(&b[..n]);
            }
            Kind::Pascal => {
                let Value::Bytes(b) = value else {
                    return Err(wrong_type("bytes", value));
                };
                // A `0p` field has no room even for its length byte: CPython writes nothing.
                if let Some((len_byte, rest)) = slot.split_first_mut() {
                    let n = b.len().min(rest.len());
                    rest[..n].copy_from_slice(&b[..n]);
                    *len_byte = n.min(255) as u8;
                }
            }
        }
        Ok(())
    }

    /// Copies the low `slot.len()` bytes of a little-endian number into
    /// `slot`, in this format's byte order.
    fn put(&self, slot: &mut [u8], le: &[u8]) {
        let n = slot.len().min(le.len());
        slot[..n].copy_from_slice(&le[..n]);
        if !self.layout.little {
            slot.reverse();
        }
    }

    /// Unpacks one record from exactly [`size`](Struct::size) bytes.
    ///
    /// Integers come back as `Int`, `?` as `Bool` (any non-zero byte is
    /// `True`, as in Python), `e`/`f`/`d` as `Float` (an `f` widened exactly,
    /// so `1.1` packed as `f` comes back as `1.100000023841858`), `c`/`s`/`p`
    /// as `Bytes` (an `s` keeps its NUL padding; a `p` length byte larger
    /// than the field is clamped to it). Pad bytes are skipped, whatever
    /// they hold.
    ///
    /// # Errors
    ///
    /// [`Error::StructSize`] (`what: "bytes"`) if `data` is not exactly
    /// [`size`](Struct::size) bytes long; [`Error::StructAlloc`] if the list
    /// of values is too large to allocate.
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::{Error, codec::{Struct, Values}};
    ///
    /// let st = Struct::new("<hxe?3p")?;
    /// let record = st.unpack(b"\x01\x02\xff\x00\x3c\x02\x05ab")?;
    /// assert_eq!(Values(&record).to_string(), "(513, 1.0, True, b'ab')");
    ///
    /// let err = st.unpack(b"\x01\x02").unwrap_err();
    /// assert!(matches!(err, Error::StructSize { what: "bytes", expected: 9, got: 2 }));
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `st.unpack(data)`
    pub fn unpack(&self, data: &[u8]) -> Result<Vec<Value>> {
        if data.len() != self.layout.size {
            return Err(Error::StructSize {
                what: "bytes",
                expected: self.layout.size,
                got: data.len(),
            });
        }
        let mut values = Vec::new();
        if values.try_reserve_exact(self.layout.values).is_err() {
            return Err(Error::StructAlloc {
                what: "values",
                size: self.layout.values,
            });
        }
        for field in &self.layout.fields {
            for item in 0..field.values() {
                let at = field.offset + item * field.size;
                let Some(slot) = data.get(at..at + field.size) else {
                    break;
                };
                values.push(self.unpack_one(field, slot));
            }
        }
        Ok(values)
    }

    /// Unpacks one record from the front of `data`, which may be longer.
    ///
    /// Handy for a receive buffer that holds a record and then some: unpack
    /// the first [`size`](Struct::size) bytes, then drop them.
    ///
    /// # Errors
    ///
    /// [`Error::StructSize`] (`what: "bytes"`) if `data` is shorter than
    /// [`size`](Struct::size).
    ///
    /// # Examples
    ///
    /// ```
    /// use reactor::codec::{Struct, Value};
    ///
    /// let st = Struct::new("!H")?;
    /// assert_eq!(st.unpack_from(b"\x00\x07rest")?, [Value::Int(7)]);
    /// assert!(st.unpack_from(b"\x00").is_err());
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// Python: `st.unpack_from(data)`
    pub fn unpack_from(&self, data: &[u8]) -> Result<Vec<Value>> {
        match data.get(..self.layout.size) {
            Some(record) => self.unpack(record),
            None => Err(Error::StructSize {
                what: "bytes",
                expected: self.layout.size,
                got: data.len(),
            }),
        }
    }

    /// Reads one item from its `slot` (exactly the item's size).
    fn unpack_one(&self, field: &Field, slot: &[u8]) -> Value {
        match field.kind {
            Kind::Signed | Kind::Unsigned => {
                let raw = self.get(slot);
                let bits = 8 * slot.len() as u32;
                let n = if field.kind == Kind::Signed && bits < 128 {
                    // Sign-extend from the field's width.
                    ((raw << (128 - bits)) as i128) >> (128 - bits)
                } else {
                    raw as i128
                };
                Value::Int(n)
            }
            // Any non-zero byte is True, as in Python.
            Kind::Bool => Value::Bool(slot.iter().any(|&b| b != 0)),
            Kind::Half => Value::Float(float::half_to_f64(self.get(slot) as u16)),
            Kind::Single => Value::Float(float::single_to_f64(self.get(slot) as u32)),
            Kind::Double => Value::Float(f64::from_bits(self.get(slot) as u64)),
            Kind::Char | Kind::Bytes => Value::Bytes(slot.to_vec()),
            Kind::Pascal => match slot.split_first() {
                Some((&len, rest)) => Value::Bytes(rest[..rest.len().min(len.into())].to_vec()),
                // `0p`: CPython raises SystemError here; an empty string is the sane answer.
                None => Value::Bytes(Vec::new()),
            },
            // Pad bytes give no value and are never reached here.
            Kind::Pad => Value::Bytes(Vec::new()),
        }
    }

    /// Reads a number of up to 16 bytes in this format's byte order.
    fn get(&self, slot: &[u8]) -> u128 {
        let fold = |n: u128, &b: &u8| n << 8 | u128::from(b);
        if self.layout.little {
            slot.iter().rev().fold(0, fold)
        } else {
            slot.iter().fold(0, fold)
        }
    }
}

/// The inclusive range of an integer field of `size` bytes.
fn int_range(kind: Kind, size: usize) -> (i128, i128) {
    let bits = (8 * size).min(127) as u32;
    if kind == Kind::Signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// The reason for a value of the wrong Python type.
fn wrong_type(wanted: &str, value: &Value) -> String {
    format!("expected {wanted}, got {} {value}", value.type_name())
}

impl fmt::Debug for Struct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Struct")
            .field("format", &self.format)
            .field("size", &self.layout.size)
            .finish()
    }
}
