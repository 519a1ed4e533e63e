//! Integers beyond 64 bits: between sign and magnitude (little-endian
//! bytes) and Rust's integers, decimal and hexadecimal text.

use super::codec::int_from_magnitude;
use super::Term;
use std::fmt::Write;

/// The magnitude bytes of `m`, with no trailing zero byte.
fn magnitude_of(m: u128) -> Vec<u8> {
    let bytes = m.to_le_bytes();
    let len = 16 - bytes.iter().rev().take_while(|&&b| b == 0).count();
    bytes[..len].to_vec()
}

/// `Int` when `i` fits in 64 bits, else `BigInt`.
pub(super) fn from_i128(i: i128) -> Term {
    match i64::try_from(i) {
        Ok(small) => Term::Int(small),
        Err(_) => Term::BigInt {
            negative: i < 0,
            magnitude: magnitude_of(i.unsigned_abs()),
        },
    }
}

/// `Int` when `u` fits in 64 bits, else `BigInt`.
pub(super) fn from_u128(u: u128) -> Term {
    match i64::try_from(u) {
        Ok(small) => Term::Int(small),
        Err(_) => Term::BigInt {
            negative: false,
            magnitude: magnitude_of(u),
        },
    }
}

/// The significant bytes of a magnitude (trailing zero bytes dropped).
fn significant(magnitude: &[u8]) -> &[u8] {
    let len = magnitude.len() - magnitude.iter().rev().take_while(|&&b| b == 0).count();
    &magnitude[..len]
}

/// Sign and magnitude of an integer term, when the magnitude fits 128
/// bits; `None` for bigger integers and for terms that are not integers.
pub(super) fn wide(term: &Term) -> Option<(bool, u128)> {
    match term {
        Term::Int(i) => Some((*i < 0, u128::from(i.unsigned_abs()))),
        Term::BigInt {
            negative,
            magnitude,
        } => wide_parts(*negative, magnitude),
        _ => None,
    }
}

/// [`wide`] from sign and magnitude.
pub(super) fn wide_parts(negative: bool, magnitude: &[u8]) -> Option<(bool, u128)> {
    let m = significant(magnitude);
    if m.len() > 16 {
        return None;
    }
    let mut le = [0u8; 16];
    le[..m.len()].copy_from_slice(m);
    Some((negative, u128::from_le_bytes(le)))
}

/// `-m` as an `i128`, if it fits.
pub(super) fn negate(m: u128) -> Option<i128> {
    if m <= 1u128 << 127 {
        Some((m as i128).wrapping_neg())
    } else {
        None
    }
}

/// The integer as an `f64` (nearest, or infinite when too big).
pub(super) fn to_f64(negative: bool, magnitude: &[u8]) -> f64 {
    let m = magnitude
        .iter()
        .rev()
        .fold(0.0f64, |acc, &b| acc * 256.0 + f64::from(b));
    if negative {
        -m
    } else {
        m
    }
}

/// Little-endian 32-bit limbs with no trailing zero limb.
fn limbs(magnitude: &[u8]) -> Vec<u32> {
    let mut limbs: Vec<u32> = significant(magnitude)
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(b)
        })
        .collect();
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    limbs
}

/// The integer in decimal. Quadratic: meant for integers of a few hundred
/// bytes at most (callers check).
pub(super) fn to_decimal(negative: bool, magnitude: &[u8]) -> String {
    const BASE: u64 = 1_000_000_000;
    let mut limbs = limbs(magnitude);
    if limbs.is_empty() {
        return "0".into();
    }
    // Base 10^9 digits, least significant first.
    let mut digits = Vec::new();
    while !limbs.is_empty() {
        let mut rem = 0u64;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / BASE) as u32;
            rem = cur % BASE;
        }
        digits.push(rem);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut s = String::with_capacity(digits.len() * 9 + 1);
    if negative {
        s.push('-');
    }
    let mut rev = digits.iter().rev();
    if let Some(first) = rev.next() {
        let _ = write!(s, "{first}");
    }
    for d in rev {
        let _ = write!(s, "{d:09}");
    }
    s
}

/// The integer in hexadecimal, `0x` first (`-0x` when negative). Linear.
pub(super) fn to_hex(negative: bool, magnitude: &[u8]) -> String {
    let m = significant(magnitude);
    let mut s = String::with_capacity(m.len() * 2 + 3);
    s.push_str(if negative { "-0x" } else { "0x" });
    match m.split_last() {
        None => s.push('0'),
        Some((top, rest)) => {
            let _ = write!(s, "{top:x}");
            for b in rest.iter().rev() {
                let _ = write!(s, "{b:02x}");
            }
        }
    }
    s
}

/// Most decimal digits [`parse`] reads (beyond, text is hexadecimal).
const MAX_DECIMAL_DIGITS: usize = 4096;

/// An integer term from what [`to_decimal`] or [`to_hex`] writes.
pub(super) fn parse(text: &str) -> Option<Term> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = match digits.strip_prefix("0x") {
        Some(hex) => parse_hex(hex)?,
        None => parse_decimal(digits)?,
    };
    Some(int_from_magnitude(negative, magnitude))
}

fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let nibbles: Vec<u8> = hex
        .bytes()
        .rev()
        .map(|c| (c as char).to_digit(16).map_or(0, |d| d as u8))
        .collect();
    let mut magnitude: Vec<u8> = nibbles
        .chunks(2)
        .map(|pair| pair[0] | pair.get(1).map_or(0, |hi| hi << 4))
        .collect();
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    Some(magnitude)
}

fn parse_decimal(digits: &str) -> Option<Vec<u8>> {
    if digits.is_empty()
        || digits.len() > MAX_DECIMAL_DIGITS
        || !digits.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // Little-endian 32-bit limbs; nine digits at a time.
    let mut limbs: Vec<u32> = Vec::new();
    for chunk in digits.as_bytes().chunks(9) {
        let mul = 10u64.pow(chunk.len() as u32);
        let mut carry = chunk
            .iter()
            .fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0'));
        for limb in &mut limbs {
            let cur = u64::from(*limb) * mul + carry;
            *limb = cur as u32;
            carry = cur >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut magnitude: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    Some(magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for i in [
            0i128,
            1,
            -1,
            999_999_999,
            1_000_000_000,
            i128::from(u64::MAX),
            i128::MAX,
            i128::MIN,
        ] {
            let (negative, magnitude) = (i < 0, magnitude_of(i.unsigned_abs()));
            assert_eq!(to_decimal(negative, &magnitude), i.to_string());
            assert_eq!(parse(&i.to_string()), Some(from_i128(i)), "{i}");
            let hex = to_hex(negative, &magnitude);
            assert_eq!(parse(&hex), Some(from_i128(i)), "{hex}");
        }
        assert_eq!(to_hex(false, &[0x01, 0xab]), "0xab01");
        // 2^200
        let mut m = vec![0u8; 25];
        m.push(1);
        let two_200 = "1606938044258990275541962092341162602522202993782792835301376";
        assert_eq!(to_decimal(false, &m), two_200);
        assert_eq!(
            parse(two_200),
            Some(Term::BigInt {
                negative: false,
                magnitude: m
            })
        );
        for bad in ["", "-", "0x", "1a", "0xg", "+1", " 1"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(to_f64(true, &[0, 0, 0, 0, 0, 0, 0, 0, 1]), -(2f64.powi(64)));
    }
}
