//! Integers of any size, as much as the node needs: decimal and
//! hexadecimal text, terms, and addition (the `add` method).
//!
//! The magnitude is kept in 32-bit limbs, least significant first, with no
//! trailing zero limb; zero is never negative.

use std::cmp::Ordering;
use xmpp_bridge::etf::Term;

/// Most decimal digits read from text (reading is quadratic in them).
pub const MAX_DECIMAL_DIGITS: usize = 20_000;

/// Magnitudes longer than this many bytes are not written in decimal
/// (writing is quadratic): [`crate::convert`] writes them in hex.
pub const MAX_DECIMAL_BYTES: usize = 8192;

/// A signed integer of any size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigInt {
    negative: bool,
    limbs: Vec<u32>,
}

impl BigInt {
    fn new(negative: bool, mut limbs: Vec<u32>) -> BigInt {
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        let negative = negative && !limbs.is_empty();
        BigInt { negative, limbs }
    }

    /// Zero.
    pub fn zero() -> BigInt {
        BigInt::new(false, Vec::new())
    }

    /// From sign and little-endian magnitude bytes (a term's big integer).
    pub fn from_le_bytes(negative: bool, bytes: &[u8]) -> BigInt {
        let limbs = bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect();
        BigInt::new(negative, limbs)
    }

    /// Sign and little-endian magnitude bytes, no trailing zero byte.
    pub fn to_le_bytes(&self) -> (bool, Vec<u8>) {
        let mut bytes: Vec<u8> = self.limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        (self.negative, bytes)
    }

    /// The integer of a term, if it is one.
    pub fn from_term(t: &Term) -> Option<BigInt> {
        match t {
            Term::Int(i) => Some(BigInt::from_i128(i128::from(*i))),
            Term::BigInt {
                negative,
                magnitude,
            } => Some(BigInt::from_le_bytes(*negative, magnitude)),
            _ => None,
        }
    }

    /// From an unsigned integer.
    pub fn from_u64(u: u64) -> BigInt {
        BigInt::from_i128(i128::from(u))
    }

    fn from_i128(i: i128) -> BigInt {
        let m = i.unsigned_abs();
        let limbs = (0..4).map(|k| (m >> (32 * k)) as u32).collect();
        BigInt::new(i < 0, limbs)
    }

    /// The term: `Int` when it fits in 64 bits, `BigInt` otherwise.
    pub fn to_term(&self) -> Term {
        if self.limbs.len() <= 2 {
            let m = self
                .limbs
                .iter()
                .rev()
                .fold(0u64, |acc, &l| (acc << 32) | u64::from(l));
            if !self.negative && m <= i64::MAX as u64 {
                return Term::Int(m as i64);
            }
            if self.negative && m <= 1u64 << 63 {
                return Term::Int((m as i64).wrapping_neg());
            }
        }
        let (negative, magnitude) = self.to_le_bytes();
        Term::BigInt {
            negative,
            magnitude,
        }
    }

    /// Reads `-?[0-9]+` (at most [`MAX_DECIMAL_DIGITS`] digits).
    pub fn from_decimal(text: &str) -> Result<BigInt, String> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("not a decimal integer: {text:?}"));
        }
        if digits.len() > MAX_DECIMAL_DIGITS {
            return Err(format!(
                "an integer of {} digits is longer than the {MAX_DECIMAL_DIGITS} allowed \
                 (write it in hex: {{\"$hexint\": \"0x...\"}})",
                digits.len()
            ));
        }
        let mut limbs: Vec<u32> = Vec::new();
        // Nine digits at a time: multiply by 10^9 and add.
        let first = digits.len() % 9;
        let mut chunks = Vec::new();
        if first > 0 {
            chunks.push(&digits[..first]);
        }
        chunks.extend(
            digits.as_bytes()[first..]
                .chunks(9)
                .map(|c| std::str::from_utf8(c).expect("ASCII digits")),
        );
        for chunk in chunks {
            let scale = 10u64.pow(chunk.len() as u32);
            let mut carry: u64 = chunk.parse().expect("checked digits");
            for l in limbs.iter_mut() {
                let v = u64::from(*l) * scale + carry;
                *l = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                limbs.push(carry as u32);
            }
        }
        Ok(BigInt::new(negative, limbs))
    }

    /// Decimal digits, `-` first when negative.
    pub fn to_decimal(&self) -> String {
        if self.limbs.is_empty() {
            return "0".into();
        }
        let mut limbs = self.limbs.clone();
        let mut groups = Vec::new();
        while !limbs.is_empty() {
            // Divide by 10^9; the remainder is the next nine digits.
            let mut rem = 0u64;
            for l in limbs.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*l);
                *l = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            groups.push(rem as u32);
        }
        let mut s = String::new();
        if self.negative {
            s.push('-');
        }
        let mut groups = groups.iter().rev();
        if let Some(g) = groups.next() {
            s.push_str(&g.to_string());
        }
        for g in groups {
            s.push_str(&format!("{g:09}"));
        }
        s
    }

    /// Reads `-?0x[0-9a-fA-F]+`.
    pub fn from_hex(text: &str) -> Result<BigInt, String> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let digits = rest
            .strip_prefix("0x")
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("not a hex integer (-?0x...): {text:?}"))?;
        let limbs = digits
            .as_bytes()
            .rchunks(8)
            .map(|c| {
                let c = std::str::from_utf8(c).expect("ASCII hex digits");
                u32::from_str_radix(c, 16).expect("checked hex digits")
            })
            .collect();
        Ok(BigInt::new(negative, limbs))
    }

    /// `0x` and lowercase hex digits, `-` first when negative.
    pub fn to_hex(&self) -> String {
        let mut s = String::from(if self.negative { "-0x" } else { "0x" });
        let mut limbs = self.limbs.iter().rev();
        match limbs.next() {
            None => s.push('0'),
            Some(l) => s.push_str(&format!("{l:x}")),
        }
        for l in limbs {
            s.push_str(&format!("{l:08x}"));
        }
        s
    }

    fn cmp_magnitude(a: &[u32], b: &[u32]) -> Ordering {
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }

    /// The sum.
    pub fn add(&self, other: &BigInt) -> BigInt {
        let (a, b) = (&self.limbs, &other.limbs);
        if self.negative == other.negative {
            let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
            let mut carry = 0u64;
            for i in 0..a.len().max(b.len()) {
                let v =
                    u64::from(*a.get(i).unwrap_or(&0)) + u64::from(*b.get(i).unwrap_or(&0)) + carry;
                out.push(v as u32);
                carry = v >> 32;
            }
            out.push(carry as u32);
            return BigInt::new(self.negative, out);
        }
        // Opposite signs: the larger magnitude minus the smaller, with
        // the larger one's sign.
        let (big, small, negative) = match BigInt::cmp_magnitude(a, b) {
            Ordering::Less => (b, a, other.negative),
            _ => (a, b, self.negative),
        };
        let mut out = Vec::with_capacity(big.len());
        let mut borrow = 0i64;
        for (i, &x) in big.iter().enumerate() {
            let mut v = i64::from(x) - i64::from(*small.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        BigInt::new(negative, out)
    }

    /// Bytes of magnitude.
    pub fn magnitude_bytes(&self) -> usize {
        self.to_le_bytes().1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> BigInt {
        BigInt::from_decimal(s).unwrap()
    }

    #[test]
    fn decimal_round_trips() {
        for s in [
            "0",
            "1",
            "-1",
            "4294967295",
            "4294967296",
            "18446744073709551616",
            "-340282366920938463463374607431768211456",
            "1000000000000000000000000000000000000000000000000000000001",
        ] {
            assert_eq!(dec(s).to_decimal(), s);
        }
        assert_eq!(dec("-0").to_decimal(), "0");
        assert_eq!(dec("000123").to_decimal(), "123");
        assert!(BigInt::from_decimal("12a").is_err());
        assert!(BigInt::from_decimal("").is_err());
        assert!(BigInt::from_decimal(&"9".repeat(MAX_DECIMAL_DIGITS + 1)).is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(dec("255").to_hex(), "0xff");
        assert_eq!(dec("-4294967296").to_hex(), "-0x100000000");
        assert_eq!(BigInt::from_hex("0x0").unwrap().to_hex(), "0x0");
        let h = BigInt::from_hex("-0x123456789abcdef0123").unwrap();
        assert_eq!(h.to_hex(), "-0x123456789abcdef0123");
        assert_eq!(BigInt::from_hex("0xFF").unwrap(), dec("255"));
        for bad in ["ff", "0x", "0xg", "--0x1", "0X1"] {
            assert!(BigInt::from_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn terms_round_trip() {
        for t in [
            Term::Int(0),
            Term::Int(i64::MIN),
            Term::Int(i64::MAX),
            Term::BigInt {
                negative: false,
                magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0x80],
            },
            Term::BigInt {
                negative: true,
                magnitude: vec![1, 0, 0, 0, 0, 0, 0, 0x80],
            },
            Term::BigInt {
                negative: true,
                magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
            },
        ] {
            assert_eq!(BigInt::from_term(&t).unwrap().to_term(), t);
        }
        // -2^63 is a 64-bit integer.
        let t = Term::BigInt {
            negative: true,
            magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0x80],
        };
        assert_eq!(
            BigInt::from_term(&t).unwrap().to_term(),
            Term::Int(i64::MIN)
        );
        assert_eq!(BigInt::from_term(&Term::atom("x")), None);
    }

    #[test]
    fn addition_with_any_signs() {
        let cases = [
            ("1", "2", "3"),
            ("-5", "3", "-2"),
            ("5", "-7", "-2"),
            ("-5", "-7", "-12"),
            ("7", "-7", "0"),
            ("4294967295", "1", "4294967296"),
            ("18446744073709551616", "-1", "18446744073709551615"),
            (
                "123456789012345678901234567890",
                "987654321098765432109876543210",
                "1111111110111111111011111111100",
            ),
            (
                "-100000000000000000000000000000",
                "1",
                "-99999999999999999999999999999",
            ),
        ];
        for (a, b, sum) in cases {
            assert_eq!(dec(a).add(&dec(b)).to_decimal(), sum, "{a} + {b}");
            assert_eq!(dec(b).add(&dec(a)).to_decimal(), sum, "{b} + {a}");
        }
        assert_eq!(BigInt::zero().add(&BigInt::zero()).to_term(), Term::Int(0));
    }
}
