//! `reactor::codec::Struct` against CPython's `struct` module.
//!
//! `tests/data/struct_vectors.txt` is written by `tests/struct_vectors.py`
//! (CPython 3.11, x86-64 Linux); its header says what each line means. Every
//! `pack` vector is packed and compared byte for byte, then unpacked and
//! printed with `Values` and compared with Python's `repr` of the tuple.

use reactor::Error;
use reactor::codec::{Struct, Value, Values};

/// The vectors file, read once.
fn vectors() -> &'static str {
    static VECTORS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VECTORS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/struct_vectors.txt");
        std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e} (regenerate with `python3 tests/struct_vectors.py`)")
        })
    })
}

// ---------------------------------------------------------------------------
// A parser for the Python reprs in the vectors file: a tuple of ints,
// floats, True/False and bytes literals.

fn parse_tuple(text: &str) -> Vec<Value> {
    try_parse_tuple(text)
        .unwrap_or_else(|| panic!("not a tuple of int, float, bool, bytes: {text}"))
}

/// `None` if it holds a `str` (only some error vectors do: `Value` has no `str`).
fn try_parse_tuple(text: &str) -> Option<Vec<Value>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let mut values = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (value, after) = parse_value(rest)?;
        values.push(value);
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(values)
}

fn parse_value(text: &str) -> Option<(Value, &str)> {
    if let Some(body) = text.strip_prefix('b') {
        return Some(parse_bytes(body));
    }
    if text.starts_with(['\'', '"']) {
        return None;
    }
    let end = text.find([',', ')']).unwrap_or(text.len());
    let (token, rest) = text.split_at(end);
    let token = token.trim();
    let value = match token {
        "True" => Value::Bool(true),
        "False" => Value::Bool(false),
        _ => match token.parse::<i128>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(
                token
                    .parse()
                    .unwrap_or_else(|_| panic!("bad token {token:?}")),
            ),
        },
    };
    Some((value, rest))
}

fn parse_bytes(text: &str) -> (Value, &str) {
    let quote = text.as_bytes()[0];
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match bytes[i] {
            b'\\' => {
                let (byte, len) = match bytes[i + 1] {
                    b'x' => {
                        let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
                        (u8::from_str_radix(hex, 16).unwrap(), 4)
                    }
                    b'n' => (b'\n', 2),
                    b't' => (b'\t', 2),
                    b'r' => (b'\r', 2),
                    other => (other, 2),
                };
                out.push(byte);
                i += len;
            }
            b if b == quote => break,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (Value::Bytes(out), &text[i + 1..])
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn records(kind: &str) -> impl Iterator<Item = Vec<&'static str>> + '_ {
    vectors()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(move |fields| fields[0] == kind)
}

// ---------------------------------------------------------------------------
// The vectors.

#[test]
fn vectors_file_is_not_empty() {
    assert!(records("pack").count() > 1000);
    assert!(records("unpack").count() > 1000);
    assert!(records("error").count() > 100);
}

#[test]
fn pack_matches_cpython_byte_for_byte() {
    let mut failures = Vec::new();
    for record in records("pack") {
        let [_, format, values, packed, unpacked] = record[..] else {
            panic!("bad record {record:?}")
        };
        let st = Struct::new(format).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let values = parse_tuple(values);
        match st.pack(&values) {
            Ok(bytes) if hex(&bytes) == packed => {}
            Ok(bytes) => failures.push(format!(
                "pack {format:?} {values:?}: got {} want {packed}",
                hex(&bytes)
            )),
            Err(e) => failures.push(format!("pack {format:?} {values:?}: {e}")),
        }
        if unpacked != "-" {
            check_unpack(&st, format, packed, unpacked, &mut failures);
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn unpack_and_repr_match_cpython() {
    let mut failures = Vec::new();
    for record in records("unpack") {
        let [_, format, packed, unpacked] = record[..] else {
            panic!("bad record {record:?}")
        };
        let st = Struct::new(format).unwrap();
        check_unpack(&st, format, packed, unpacked, &mut failures);
    }
    assert_no_failures(&failures);
}

/// Unpacks the hex `packed` and compares the printed tuple with CPython's
/// `unpacked`, noting any difference in `failures`.
fn check_unpack(
    st: &Struct,
    format: &str,
    packed: &str,
    unpacked: &str,
    failures: &mut Vec<String>,
) {
    match st.unpack(&unhex(packed)) {
        Ok(back) if Values(&back).to_string() == unpacked => {}
        Ok(back) => failures.push(format!(
            "unpack {format:?} {packed}: got {} want {unpacked}",
            Values(&back)
        )),
        Err(e) => failures.push(format!("unpack {format:?} {packed}: {e}")),
    }
}

/// Fails with the count and the first 40 differences, if any.
#[track_caller]
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}

#[test]
fn size_matches_calcsize() {
    for record in records("size") {
        let [_, format, size] = record[..] else {
            panic!("bad record {record:?}")
        };
        assert_eq!(
            Struct::new(format).unwrap().size().to_string(),
            size,
            "calcsize({format:?})"
        );
    }
}

#[test]
fn every_cpython_error_is_an_error_here() {
    for record in records("error") {
        let [_, phase, format, arg, python] = record[..] else {
            panic!("bad record {record:?}")
        };
        let values = match phase {
            "bytes" | "format" => Vec::new(),
            _ => match try_parse_tuple(arg) {
                Some(values) => values,
                None => continue, // a Python str: not representable, so not testable
            },
        };
        let result = Struct::new(format).and_then(|st| match phase {
            "bytes" => st.unpack(&unhex(arg)).map(drop),
            _ => st.pack(&values).map(drop),
        });
        let context = format!("{phase} {format:?} {arg} (Python: {python})");
        match (phase, result) {
            ("format", Err(Error::StructFormat { .. })) => {}
            ("count", Err(Error::StructSize { what: "values", .. })) => {}
            ("value", Err(Error::StructValue { .. })) => {}
            ("bytes", Err(Error::StructSize { what: "bytes", .. })) => {}
            (_, Ok(())) => panic!("no error for {context}"),
            (_, Err(e)) => panic!("wrong error for {context}: {e:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Typed errors.

#[test]
fn bad_format_char_names_its_position() {
    let err = Struct::new("<ihz").unwrap_err();
    let Error::StructFormat {
        format, position, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((format.as_str(), *position), ("<ihz", 3));
    assert!(
        err.to_string()
            .starts_with("bad struct format \"<ihz\" at character 3"),
        "{err}"
    );
}

#[test]
fn n_is_native_only() {
    for format in ["<n", ">N", "!n", "=N", "<P"] {
        let err = Struct::new(format).unwrap_err();
        assert!(
            matches!(err, Error::StructFormat { position: 1, .. }),
            "{format}: {err:?}"
        );
        assert!(err.to_string().contains("native"), "{err}");
    }
    assert_eq!(Struct::new("n").unwrap().size(), 8);
    assert_eq!(Struct::new("@N").unwrap().size(), 8);
}

#[test]
fn out_of_range_names_field_index_and_code() {
    let st = Struct::new("<hb").unwrap();
    let err = st.pack(&[Value::from(1), Value::from(300)]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::StructValue {
                index: 1,
                code: 'b',
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "struct field 1 ('b'): 300 is out of range -128..=127"
    );

    let st = Struct::new("Q").unwrap();
    assert_eq!(st.pack(&[Value::from(u64::MAX)]).unwrap(), [0xff; 8]);
    let err = st.pack(&[Value::Int(1 << 64)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "struct field 0 ('Q'): 18446744073709551616 is out of range 0..=18446744073709551615"
    );
    let err = st.pack(&[Value::from(-1)]).unwrap_err();
    assert!(matches!(
        err,
        Error::StructValue {
            index: 0,
            code: 'Q',
            ..
        }
    ));
}

#[test]
fn wrong_types_are_value_errors() {
    let st = Struct::new("i5sfc").unwrap();
    let cases: [(usize, [Value; 4]); 4] = [
        (0, [1.5.into(), b"a".into(), 1.0.into(), b"c".into()]),
        (1, [1.into(), 5.into(), 1.0.into(), b"c".into()]),
        (2, [1.into(), b"a".into(), b"x".into(), b"c".into()]),
        (3, [1.into(), b"a".into(), 1.0.into(), b"cc".into()]),
    ];
    for (bad, values) in cases {
        let err = st.pack(&values).unwrap_err();
        assert!(
            matches!(err, Error::StructValue { index, .. } if index == bad),
            "{err:?}"
        );
    }
    let err = Struct::new("<e")
        .unwrap()
        .pack(&[Value::from(1e6)])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "struct field 0 ('e'): float too large to pack with e format"
    );
    let err = Struct::new("<f")
        .unwrap()
        .pack(&[Value::from(1e39)])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "struct field 0 ('f'): float too large to pack with f format"
    );
}

#[test]
fn wrong_value_count_is_a_size_error() {
    let st = Struct::new("i5sf").unwrap();
    let err = st
        .pack(&[Value::from(1), Value::from(b"zhang")])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::StructSize {
                what: "values",
                expected: 3,
                got: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "struct values: expected 3, got 2");
}

#[test]
fn short_or_long_buffer_is_a_size_error() {
    let st = Struct::new("i5sf").unwrap();
    for len in [0, 1, 15, 17, 1024] {
        let err = st.unpack(&vec![0; len]).unwrap_err();
        assert!(
            matches!(err, Error::StructSize { what: "bytes", expected: 16, got } if got == len),
            "{err:?}"
        );
    }
    assert!(st.unpack_from(&[0; 15]).is_err());
    assert_eq!(st.unpack_from(&[0; 20]).unwrap().len(), 3);
}

#[test]
fn pack_into_appends_without_reallocating_and_is_untouched_on_error() {
    let st = Struct::new("!IH").unwrap();
    let mut out = Vec::with_capacity(3 * st.size());
    let ptr = out.as_ptr();
    for i in 0..3u32 {
        st.pack_into(&mut out, &[Value::from(i), Value::from(7)])
            .unwrap();
    }
    assert_eq!(out.as_ptr(), ptr);
    assert_eq!(hex(&out), "000000000007000000010007000000020007");
    assert!(
        st.pack_into(&mut out, &[Value::from(1), Value::from(-7)])
            .is_err()
    );
    assert_eq!(out.len(), 18);
}

#[test]
fn course_record_round_trips_and_prints_like_python() {
    let st = Struct::new("i5sf").unwrap();
    let data = st.pack(&[1.into(), b"zhang".into(), 1.75.into()]).unwrap();
    assert_eq!(hex(&data), "010000007a68616e670000000000e03f");
    assert_eq!(
        Values(&st.unpack(&data).unwrap()).to_string(),
        "(1, b'zhang', 1.75)"
    );
    let data = st.pack(&[2.into(), b"li".into(), 1.1.into()]).unwrap();
    assert_eq!(
        Values(&st.unpack(&data).unwrap()).to_string(),
        "(2, b'li\\x00\\x00\\x00', 1.100000023841858)"
    );
}

#[test]
fn tuples_print_like_python() {
    assert_eq!(Values(&[]).to_string(), "()");
    assert_eq!(Values(&[Value::Int(5)]).to_string(), "(5,)");
    assert_eq!(
        Values(&[
            Value::Bool(true),
            Value::Float(-0.0),
            Value::Float(f64::NAN),
            Value::from(&b"'\""[..])
        ])
        .to_string(),
        "(True, -0.0, nan, b'\\'\"')"
    );
}

#[test]
fn a_record_too_big_to_allocate_is_an_error_not_an_abort() {
    let st = Struct::new("9223372036854775807x").unwrap();
    assert_eq!(st.size(), isize::MAX as usize);
    assert!(matches!(
        st.pack(&[]),
        Err(Error::StructAlloc { what: "bytes", .. })
    ));
    assert!(Struct::new("9223372036854775807x1x").is_err());
}

#[test]
fn hostile_formats_do_not_panic() {
    // Huge counts and odd characters: each is refused with the reason
    // CPython gives (`total struct size too long`, `bad char in struct
    // format`), or accepted with CPython's size; never a panic. A "too
    // long" points at the first character of the item that makes the
    // record too large (its count), whichever check caught it.
    const TOO_LONG: &str = "total struct size too long";
    let expected: [(&str, Answer); 11] = [
        ("18446744073709551615x", Err((0, TOO_LONG))),
        ("18446744073709551616x", Err((0, TOO_LONG))),
        ("9223372036854775807x", Ok(9_223_372_036_854_775_807)),
        ("9223372036854775807x1x", Err((20, TOO_LONG))),
        ("@9223372036854775807c0q", Err((21, TOO_LONG))),
        ("4611686018427387904h", Err((0, TOO_LONG))),
        ("\u{0}", Err((0, "is not a format character"))),
        ("3\u{0}", Err((1, "is not a format character"))),
        ("<\u{1F600}", Err((1, "is not a format character"))),
        ("@@", Err((1, "byte order may only come first"))),
        (
            "99999999999999999999999999999999999999999999999999s",
            Err((0, TOO_LONG)),
        ),
    ];
    for (format, want) in expected {
        match (Struct::new(format), want) {
            (Ok(st), Ok(size)) => assert_eq!(st.size(), size, "{format:?}"),
            (
                Err(Error::StructFormat {
                    position, reason, ..
                }),
                Err((at, why)),
            ) => assert!(
                position == at && reason.contains(why),
                "{format:?}: refused at {position} ({reason}), expected at {at} ({why})"
            ),
            (got, want) => panic!("{format:?}: got {got:?}, expected {want:?}"),
        }
    }
    // Every byte after each prefix: exactly what CPython accepts, with its
    // size (x86-64), and a record of 0xff bytes always unpacks.
    for byte in 0..=255u8 {
        for prefix in ["", "<", "@", "2", "<0"] {
            let format = format!("{prefix}{}", byte as char);
            let want = expected_size(prefix, byte as char);
            match Struct::new(&format) {
                Ok(st) => {
                    assert_eq!(Some(st.size()), want, "{format:?} accepted");
                    let values = st.unpack(&vec![0xff; st.size()]);
                    assert!(values.is_ok(), "{format:?}: {values:?}");
                }
                Err(err) => {
                    assert_eq!(want, None, "{format:?} refused: {err}");
                    assert!(
                        matches!(err, Error::StructFormat { .. }),
                        "{format:?}: {err}"
                    );
                }
            }
        }
    }
}

/// What `Struct::new` should answer: the size, or where and why it refuses.
type Answer = Result<usize, (usize, &'static str)>;

/// CPython's `struct.calcsize(prefix + c)` on x86-64 Linux for the prefixes
/// of `hostile_formats_do_not_panic`, or `None` where it raises.
fn expected_size(prefix: &str, c: char) -> Option<usize> {
    if c.is_ascii_whitespace() || c == '\u{b}' {
        // Whitespace is ignored, but a count must be followed by its character.
        return ["", "<", "@"].contains(&prefix).then_some(0);
    }
    if "!<=>@".contains(c) {
        return (prefix.is_empty()).then_some(0);
    }
    let native = matches!(prefix, "" | "@" | "2");
    let size = match c {
        'x' | 'c' | 'b' | 'B' | '?' | 's' | 'p' => 1,
        'h' | 'H' | 'e' => 2,
        'i' | 'I' | 'f' => 4,
        'q' | 'Q' | 'd' => 8,
        'l' | 'L' => {
            if native {
                8
            } else {
                4
            }
        }
        'n' | 'N' | 'P' if native => 8,
        _ => return None,
    };
    Some(match prefix {
        "2" => 2 * size,
        "<0" => 0,
        _ => size,
    })
}
