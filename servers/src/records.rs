//! Command-line pieces of `struct_send` / `struct_recv`: the `--format`
//! parser and a reader for records typed as text, like `1,zhang,1.75` or
//! Python's own `(1, b'zhang', 1.75)`.

use reactor::codec::{Struct, Value};

/// The largest record the examples accept: a receiver buffers up to one
/// record per client, so the format decides the memory a client can make it
/// hold.
pub const MAX_RECORD: usize = 1 << 20;

/// `--format`'s parser: a [`Struct`], refusing formats that make records of
/// 0 bytes (nothing to frame) or more than [`MAX_RECORD`].
pub fn parse_format(format: &str) -> Result<Struct, String> {
    let st = Struct::new(format).map_err(|err| err.to_string())?;
    match st.size() {
        0 => Err(format!("format {format:?} describes records of 0 bytes")),
        n if n > MAX_RECORD => Err(format!(
            "format {format:?} describes records of {n} bytes; the limit is {MAX_RECORD}"
        )),
        _ => Ok(st),
    }
}

/// What kind of Python value each field of `format` takes, in order: the
/// format is walked as `struct` does (byte order first, then `[count]char`;
/// `s` and `p` take one value whatever their count, `x` none).
fn kinds(format: &str) -> Vec<char> {
    let mut kinds = Vec::new();
    let mut count: Option<usize> = None;
    for (i, c) in format.chars().enumerate() {
        match c {
            '@' | '=' | '<' | '>' | '!' if i == 0 => {}
            c if c.is_ascii_whitespace() => {}
            '0'..='9' => {
                let digit = c as usize - '0' as usize;
                count = Some(count.unwrap_or(0).saturating_mul(10).saturating_add(digit));
            }
            's' | 'p' => {
                kinds.push('s');
                count = None;
            }
            'x' => count = None,
            c => {
                let kind = match c {
                    'c' => 's',
                    '?' => '?',
                    'e' | 'f' | 'd' => 'f',
                    _ => 'i',
                };
                // Bounded by the record size limit the format has passed.
                let n = count.take().unwrap_or(1).min(MAX_RECORD);
                kinds.extend(std::iter::repeat_n(kind, n));
            }
        }
    }
    kinds
}

/// Parses one record typed as text for `st`: comma-separated fields,
/// optionally inside parentheses. Integers as Python writes them (`-3`,
/// `0x1f`), floats (`1.75`, `inf`, `nan`), booleans (`True`, `False`, or
/// any number), bytes either as Python literals (`b'zh\x00'`) or plain text
/// (`zhang`, taken as its UTF-8 bytes).
pub fn parse_record(st: &Struct, text: &str) -> Result<Vec<Value>, String> {
    let mut inner = text.trim();
    if let Some(rest) = inner.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        inner = rest;
    }
    let mut fields = split_fields(inner)?;
    // Python's 1-tuple repr `(1,)` ends with an empty field.
    if fields.len() > 1 && fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    if fields.len() == 1 && fields[0].is_empty() {
        fields.clear();
    }
    let kinds = kinds(st.format());
    if fields.len() != kinds.len() {
        return Err(format!(
            "format {:?} takes {} values, got {}",
            st.format(),
            kinds.len(),
            fields.len()
        ));
    }
    fields
        .iter()
        .zip(&kinds)
        .enumerate()
        .map(|(i, (field, kind))| {
            parse_value(field, *kind).map_err(|why| format!("value {i} ({field:?}): {why}"))
        })
        .collect()
}

/// Splits on commas outside quotes.
fn split_fields(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                field.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == ',' => fields.push(std::mem::take(&mut field).trim().to_owned()),
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                field.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    fields.push(field.trim().to_owned());
    Ok(fields)
}

/// One field's text as the value its format character takes.
fn parse_value(text: &str, kind: char) -> Result<Value, String> {
    match kind {
        'i' => parse_int(text).map(Value::Int),
        'f' => match parse_int(text) {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => text
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| "not a number".to_owned()),
        },
        '?' => match text {
            "True" | "true" => Ok(Value::Bool(true)),
            "False" | "false" => Ok(Value::Bool(false)),
            _ => parse_int(text)
                .map(|n| Value::Bool(n != 0))
                .map_err(|_| "not True, False or a number".to_owned()),
        },
        _ => parse_bytes(text).map(Value::Bytes),
    }
}

/// A Python integer literal: optional sign, decimal or `0x`/`0o`/`0b`, `_` allowed.
fn parse_int(text: &str) -> Result<i128, String> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, digits) = match clean.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else {
        (10, lower.as_str())
    };
    let n = i128::from_str_radix(digits, radix).map_err(|_| "not an integer".to_owned())?;
    Ok(if negative { -n } else { n })
}

/// `b'…'` / `b"…"` with Python's escapes, or plain text as UTF-8.
fn parse_bytes(text: &str) -> Result<Vec<u8>, String> {
    let body = ["b'", "b\""]
        .iter()
        .find(|p| text.starts_with(**p))
        .and_then(|p| {
            let q = &p[1..];
            text[2..].strip_suffix(q)
        });
    let Some(body) = body else {
        return Ok(text.as_bytes().to_vec());
    };
    let mut out = Vec::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte =
                    u8::from_str_radix(&hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?;
                out.push(byte);
            }
            Some(c @ ('\\' | '\'' | '"')) => out.push(c as u8),
            Some(c) => return Err(format!("unknown escape \\{c}")),
            None => return Err("trailing backslash".into()),
        }
    }
    Ok(out)
}
