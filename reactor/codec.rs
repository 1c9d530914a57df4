//! Turning bytes into messages and back: Python's `struct` records, and lines.
//!
//! TCP delivers a stream of bytes, not messages: one `recv` may return half a
//! record or three of them. A server needs a *codec* to cut the stream into
//! messages. The course uses two.
//!
//! **Records: [`Struct`].** The course's `struct_send.py` / `struct_recv.py`
//! lesson ("发送更丰富的数据结构") packs `(1, b'zhang', 1.75)` with
//! `struct.Struct('i5sf')` into 16 bytes and unpacks them on the other side.
//! [`Struct`] is that class, byte-for-byte compatible with CPython's: the same
//! format strings (byte orders `@ = < > !`, characters
//! `x c b B ? h H i I l L q Q n N P e f d s p`, repeat counts, native
//! alignment), the same bytes out, the same values back. A record is a slice
//! of [`Value`]s (Python's `int`, `bool`, `float`, `bytes`), and [`Values`]
//! prints one exactly as Python prints the tuple, so `struct_recv` and
//! `struct_recv.py` print the same line. Since a record has a fixed size, a
//! receiver buffers until it has [`Struct::size`] bytes and unpacks that many
//! — unlike the course's `recv(1024)`, which assumes one `recv` is one record.
//!
//! **Lines: [`LineBuffer`].** The chat room speaks lines. [`LineBuffer`]
//! collects received bytes and hands out complete `\n`-terminated lines,
//! enforcing a maximum line length before it buffers more than that, so a
//! client that never sends a newline cannot exhaust memory.
//!
//! | Python course | this module |
//! |---|---|
//! | `st = struct.Struct('i5sf')` | `let st = Struct::new("i5sf")?;` |
//! | `st.size` | [`st.size()`](Struct::size) |
//! | `data = st.pack(1, b'zhang', 1.75)` | [`st.pack(&[1.into(), b"zhang".into(), 1.75.into()])?`](Struct::pack) |
//! | `st.unpack(data)` | [`st.unpack(&data)?`](Struct::unpack) |
//! | `print(st.unpack(data))` | `println!("{}", Values(&st.unpack(&data)?))` |
//! | `struct.error` | [`Error::StructFormat`], [`Error::StructValue`], [`Error::StructSize`] |
//! | `buf.split(b'\n', 1)` | [`LineBuffer::next_line`] |
//!
//! # Examples
//!
//! ```
//! use reactor::codec::{Struct, Value, Values};
//!
//! let st = Struct::new("i5sf")?;
//! let data = st.pack(&[Value::from(1), Value::from(b"zhang"), Value::from(1.75)])?;
//! assert_eq!(data.len(), st.size());
//! assert_eq!(Values(&st.unpack(&data)?).to_string(), "(1, b'zhang', 1.75)");
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! Python:
//!
//! ```python
//! import struct
//! st = struct.Struct('i5sf')
//! data = st.pack(1, b'zhang', 1.75)
//! print(st.unpack(data))          # (1, b'zhang', 1.75)
//! ```
//!
//! [`Error::StructFormat`]: crate::Error::StructFormat
//! [`Error::StructValue`]: crate::Error::StructValue
//! [`Error::StructSize`]: crate::Error::StructSize

mod float;
mod format;
mod lines;
mod structs;
mod value;

pub use lines::{Line, LineBuffer};
pub use structs::Struct;
pub use value::{Value, Values};
