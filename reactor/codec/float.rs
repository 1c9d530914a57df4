//! Floats the way CPython handles them: binary16/binary32 conversions for the
//! `e` and `f` codes, and `repr(float)` for printing.
//!
//! Rust's `as` casts already round to nearest, ties to even, which is what
//! CPython's C casts do; what needs care is the edges. Overflow: CPython's
//! `PyFloat_Pack2`/`PyFloat_Pack4` refuse a finite value that rounds to
//! infinity ("float too large to pack with e format"), while inf and nan pack
//! fine. NaN: an x86-64 C cast keeps the sign and the top payload bits and
//! sets the quiet bit; that is written out bit by bit here rather than left to
//! `as`, whose NaN payloads Rust does not promise.

/// Packs `x` as IEEE 754 binary16 bits, as CPython's `PyFloat_Pack2` does;
/// `None` if a finite `x` is too large (it would round to infinity).
///
/// Every NaN becomes `0x7e00` with the sign of `x`, as in CPython 3.11.
pub(crate) fn f64_to_half(x: f64) -> Option<u16> {
    let sign = u16::from(x.is_sign_negative()) << 15;
    if x.is_nan() {
        return Some(sign | 0x7e00);
    }
    if x.is_infinite() {
        return Some(sign | 0x7c00);
    }
    let a = x.abs();
    if a == 0.0 {
        return Some(sign);
    }
    // Exact: a = m * 2^e with m < 2^53 an integer.
    let bits = a.to_bits();
    let biased = (bits >> 52) as i32;
    let (m, e) = if biased == 0 {
        (bits & ((1 << 52) - 1), -1074)
    } else {
        (bits & ((1 << 52) - 1) | (1 << 52), biased - 1075)
    };
    // The half's unit in the last place: 2^-24 for subnormals, else
    // 2^(exp - 10) where 2^exp <= a < 2^(exp + 1).
    let exp = e + 63 - m.leading_zeros() as i32; // floor(log2(a))
    let ulp_exp = exp.max(-14) - 10;
    // q = a / 2^ulp_exp rounded half to even (an integer, up to 2048).
    let shift = ulp_exp - e;
    let q = if shift <= 0 {
        // a is a multiple of the ulp already (only for huge a; caught below).
        u64::MAX
    } else if shift >= 64 {
        0
    } else {
        let whole = m >> shift;
        let rest = m & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        if rest > half || (rest == half && whole & 1 == 1) {
            whole + 1
        } else {
            whole
        }
    };
    if exp >= 16 || q == u64::MAX {
        return None;
    }
    // q counts ulps: below 2^-14 the exponent field is 0 and q is the
    // mantissa; above, q includes the implicit bit, and a carry into 2048
    // moves to the next binade, which the addition does by itself.
    let magnitude = if exp < -14 {
        q // subnormal (q may round up to 1024: the smallest normal, encoded right)
    } else {
        (((exp + 15) as u64) << 10) + (q - 1024)
    };
    if magnitude >= 0x7c00 {
        return None;
    }
    Some(sign | magnitude as u16)
}

/// Unpacks IEEE 754 binary16 bits, as CPython's `PyFloat_Unpack2` does.
pub(crate) fn half_to_f64(h: u16) -> f64 {
    let negative = h & 0x8000 != 0;
    let exp = i32::from((h >> 10) & 0x1f);
    let mantissa = f64::from(h & 0x3ff);
    let magnitude = match exp {
        // inf, or nan (CPython keeps only the sign)
        0x1f if mantissa == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        // subnormal: mantissa * 2^-24
        0 => mantissa * 2f64.powi(-24),
        // normal: (1 + mantissa/1024) * 2^(exp - 15); all exact
        _ => (1.0 + mantissa / 1024.0) * 2f64.powi(exp - 15),
    };
    if negative { -magnitude } else { magnitude }
}

/// Packs `x` as IEEE 754 binary32 bits, rounding to nearest, ties to even.
///
/// `None` if a finite `x` rounds to infinity and `strict` is set: CPython
/// refuses that for the standard sizes (`PyFloat_Pack4`) but lets a native
/// `f` overflow to infinity (a plain C cast in `np_float`).
pub(crate) fn f64_to_single(x: f64, strict: bool) -> Option<u32> {
    if x.is_nan() {
        // What the C cast does on x86-64: sign kept, quiet bit set, payload truncated.
        let bits = x.to_bits();
        let sign = ((bits >> 63) as u32) << 31;
        let payload = ((bits >> 29) & 0x003f_ffff) as u32;
        return Some(sign | 0x7fc0_0000 | payload);
    }
    let y = x as f32;
    if strict && y.is_infinite() && x.is_finite() {
        return None;
    }
    Some(y.to_bits())
}

/// Widens IEEE 754 binary32 bits to `f64` (exact; a NaN keeps sign and payload).
pub(crate) fn single_to_f64(bits: u32) -> f64 {
    let y = f32::from_bits(bits);
    if y.is_nan() {
        let sign = u64::from(bits >> 31) << 63;
        let payload = u64::from(bits & 0x003f_ffff) << 29;
        return f64::from_bits(sign | 0x7ff8_0000_0000_0000 | payload);
    }
    f64::from(y)
}

/// Writes `x` exactly as Python's `repr(float)` does.
///
/// The digits are the shortest that read back as the same double (Rust's
/// `{:e}` and Python's `repr` both produce those). Python then writes them
/// positionally when the decimal exponent is in `-4..16` (`0.0001`, `1.0`,
/// `1000000000000000.0`) and in scientific notation otherwise (`1e-05`,
/// `1e+16`, `1.5e-07`): an exponent of at least two digits with its sign, and
/// no `.0` on a lone digit.
pub(crate) fn write_repr(out: &mut impl std::fmt::Write, x: f64) -> std::fmt::Result {
    if x.is_nan() {
        return out.write_str("nan");
    }
    if x.is_infinite() {
        return out.write_str(if x < 0.0 { "-inf" } else { "inf" });
    }
    if x.is_sign_negative() {
        out.write_char('-')?;
    }
    // "d.ddde<exp>" with the shortest round-trip digits. When two candidates
    // of that length are equally close to x and both read back as x, `{:e}`
    // picks the larger where Python's dtoa picks the even one
    // (255.598541259765625 is 255.59854125976562 in Python), so prefer the
    // exact, ties-to-even `{:.N$e}` with the same number of digits, if it
    // reads back as x. (At a power of two it may not: the gap below is half
    // the gap above, and 2^-24 is 5.960464477539063e-08, not ...062.)
    let shortest = format!("{:e}", x.abs());
    let len = shortest
        .split('e')
        .next()
        .unwrap_or("")
        .bytes()
        .filter(u8::is_ascii_digit)
        .count();
    let even = format!("{:.*e}", len.saturating_sub(1), x.abs());
    let sci = if even.parse() == Ok(x.abs()) {
        even
    } else {
        shortest
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let (first, rest) = digits.split_at(1);

    if !(-4..16).contains(&exp) {
        out.write_str(first)?;
        if !rest.is_empty() {
            write!(out, ".{rest}")?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        return write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        write!(
            out,
            "0.{}{digits}",
            "0".repeat(point.unsigned_abs() as usize)
        )
    } else if point as usize >= digits.len() {
        write!(
            out,
            "{digits}{}.0",
            "0".repeat(point as usize - digits.len())
        )
    } else {
        let (int, frac) = digits.split_at(point as usize);
        write!(out, "{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        let mut s = String::new();
        write_repr(&mut s, x).unwrap();
        s
    }

    #[test]
    fn repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (1.75, "1.75"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (123456.789, "123456.789"),
            (f64::from(1.1f32), "1.100000023841858"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (f64::from(f32::from_bits(0x437f_993a)), "255.59854125976562"), // a tie: even wins
            (0.0, "0.0"),
            (2f64.powi(-24), "5.960464477539063e-08"),
            (100.0, "100.0"),
        ];
        for (x, want) in cases {
            assert_eq!(repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn half_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let x = half_to_f64(h);
            if x.is_nan() {
                continue;
            }
            assert_eq!(f64_to_half(x), Some(h), "{h:#06x} {x}");
        }
    }

    #[test]
    fn half_overflow_and_ties() {
        assert_eq!(f64_to_half(65504.0), Some(0x7bff));
        assert_eq!(f64_to_half(65519.99), Some(0x7bff));
        assert_eq!(f64_to_half(65520.0), None);
        assert_eq!(f64_to_half(2f64.powi(-25)), Some(0)); // tie to even: 0
        assert_eq!(f64_to_half(1.5 * 2f64.powi(-24)), Some(2)); // tie to even: 2
        assert_eq!(f64_to_half(-f64::NAN), Some(0xfe00));
    }
}
