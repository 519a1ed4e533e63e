//! The byte codec: [`decode`] and [`encode`] between ETF bytes and
//! [`Term`]s (see the module docs of [`super`]).

use super::Term;
use std::fmt;

/// The version byte every ETF term starts with.
pub const VERSION: u8 = 131;

/// Deepest nesting [`decode`] accepts by default. Decoding recurses: the
/// limit also bounds the stack it uses (scheduler threads have small ones).
pub const DEFAULT_MAX_DEPTH: usize = 128;

const SMALL_INTEGER: u8 = 97;
const INTEGER: u8 = 98;
const FLOAT: u8 = 99;
const NEW_FLOAT: u8 = 70;
const ATOM: u8 = 100;
const SMALL_ATOM: u8 = 115;
const ATOM_UTF8: u8 = 118;
const SMALL_ATOM_UTF8: u8 = 119;
const SMALL_TUPLE: u8 = 104;
const LARGE_TUPLE: u8 = 105;
const NIL: u8 = 106;
const STRING: u8 = 107;
const LIST: u8 = 108;
const BINARY: u8 = 109;
const SMALL_BIG: u8 = 110;
const LARGE_BIG: u8 = 111;
const MAP: u8 = 116;
const BIT_BINARY: u8 = 77;

/// Why bytes are not a term we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtfError {
    /// The first byte is not 131.
    Version(u8),
    /// The input ends inside a term.
    Truncated,
    /// Bytes are left after the term.
    Trailing(usize),
    /// A term kind refused on purpose: `pid`, `port`, `reference`, `fun`,
    /// `bit string`, `compressed term`, `distribution header`, ...
    Refused(&'static str),
    /// A tag this reader does not know.
    UnknownTag(u8),
    /// Nested deeper than the limit.
    TooDeep(usize),
    /// An atom that is not valid UTF-8 or longer than 255 characters.
    BadAtom,
    /// A float that is not finite, or an old-style float that does not parse.
    BadFloat,
}

impl fmt::Display for EtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtfError::Version(v) => write!(f, "not an ETF term: version byte {v}, not 131"),
            EtfError::Truncated => f.write_str("the term is truncated"),
            EtfError::Trailing(n) => write!(f, "{n} bytes after the term"),
            EtfError::Refused(what) => write!(f, "a {what} cannot cross the bus"),
            EtfError::UnknownTag(t) => write!(f, "unknown ETF tag {t}"),
            EtfError::TooDeep(limit) => write!(f, "nested deeper than {limit}"),
            EtfError::BadAtom => f.write_str("an atom that is not valid"),
            EtfError::BadFloat => f.write_str("a float that is not finite"),
        }
    }
}

impl std::error::Error for EtfError {}

/// Decodes one term (version byte first) with the default depth limit;
/// every byte must be used.
pub fn decode(bytes: &[u8]) -> Result<Term, EtfError> {
    decode_with(bytes, DEFAULT_MAX_DEPTH)
}

/// [`decode`] with a depth limit of its own.
pub fn decode_with(bytes: &[u8], max_depth: usize) -> Result<Term, EtfError> {
    match bytes.first() {
        None => return Err(EtfError::Truncated),
        Some(&VERSION) => {}
        Some(&v) => return Err(EtfError::Version(v)),
    }
    let mut r = Reader {
        b: bytes,
        pos: 1,
        max_depth,
    };
    let term = r.term(0)?;
    match bytes.len() - r.pos {
        0 => Ok(term),
        n => Err(EtfError::Trailing(n)),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], EtfError> {
        if n > self.left() {
            return Err(EtfError::Truncated);
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, EtfError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, EtfError> {
        let s = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([s[0], s[1]])))
    }

    fn u32(&mut self) -> Result<usize, EtfError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }

    /// A count of things each at least `min_bytes` long: more than the
    /// input can hold is a lie, refused before anything is allocated.
    fn count(&self, n: usize, min_bytes: usize) -> Result<usize, EtfError> {
        if n.saturating_mul(min_bytes) > self.left() {
            Err(EtfError::Truncated)
        } else {
            Ok(n)
        }
    }

    fn atom(&mut self, len: usize, latin1: bool) -> Result<Term, EtfError> {
        let bytes = self.take(len)?;
        let name = if latin1 {
            bytes.iter().map(|&c| char::from(c)).collect()
        } else {
            std::str::from_utf8(bytes)
                .map_err(|_| EtfError::BadAtom)?
                .to_owned()
        };
        if name.chars().count() > 255 {
            return Err(EtfError::BadAtom);
        }
        Ok(Term::Atom(name))
    }

    fn elements(&mut self, n: usize, depth: usize) -> Result<Vec<Term>, EtfError> {
        let n = self.count(n, 1)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.term(depth + 1)?);
        }
        Ok(v)
    }

    fn big(&mut self, n: usize) -> Result<Term, EtfError> {
        let negative = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(EtfError::Truncated),
        };
        let mut magnitude = self.take(n)?.to_vec();
        while magnitude.last() == Some(&0) {
            magnitude.pop();
        }
        Ok(int_from_magnitude(negative, magnitude))
    }

    fn term(&mut self, depth: usize) -> Result<Term, EtfError> {
        if depth > self.max_depth {
            return Err(EtfError::TooDeep(self.max_depth));
        }
        let tag = self.u8()?;
        Ok(match tag {
            SMALL_INTEGER => Term::Int(i64::from(self.u8()?)),
            INTEGER => {
                let s = self.take(4)?;
                Term::Int(i64::from(i32::from_be_bytes([s[0], s[1], s[2], s[3]])))
            }
            NEW_FLOAT => {
                let s = self.take(8)?;
                let f = f64::from_be_bytes(s.try_into().expect("8 bytes"));
                if !f.is_finite() {
                    return Err(EtfError::BadFloat);
                }
                Term::Float(f)
            }
            FLOAT => {
                let s = self.take(31)?;
                let text = std::str::from_utf8(s).map_err(|_| EtfError::BadFloat)?;
                let f: f64 = text
                    .trim_end_matches('\0')
                    .trim()
                    .parse()
                    .map_err(|_| EtfError::BadFloat)?;
                if !f.is_finite() {
                    return Err(EtfError::BadFloat);
                }
                Term::Float(f)
            }
            ATOM | SMALL_ATOM | ATOM_UTF8 | SMALL_ATOM_UTF8 => {
                let n = if matches!(tag, SMALL_ATOM | SMALL_ATOM_UTF8) {
                    usize::from(self.u8()?)
                } else {
                    self.u16()?
                };
                self.atom(n, matches!(tag, ATOM | SMALL_ATOM))?
            }
            SMALL_TUPLE => {
                let n = usize::from(self.u8()?);
                Term::Tuple(self.elements(n, depth)?)
            }
            LARGE_TUPLE => {
                let n = self.u32()?;
                Term::Tuple(self.elements(n, depth)?)
            }
            NIL => Term::List(Vec::new()),
            STRING => {
                let n = self.u16()?;
                let s = self.take(n)?;
                Term::List(s.iter().map(|&c| Term::Int(i64::from(c))).collect())
            }
            LIST => {
                let n = self.u32()?;
                let mut items = self.elements(n, depth)?;
                // As binary_to_term/1 reads them: `[1 | [2]]` is the proper
                // `[1, 2]`, and a list of no elements is its tail.
                match self.term(depth + 1)? {
                    Term::List(tail) => {
                        items.extend(tail);
                        Term::List(items)
                    }
                    Term::ImproperList(more, tail) => {
                        items.extend(more);
                        Term::ImproperList(items, tail)
                    }
                    tail if items.is_empty() => tail,
                    tail => Term::ImproperList(items, Box::new(tail)),
                }
            }
            BINARY => {
                let n = self.u32()?;
                Term::Binary(self.take(n)?.to_vec())
            }
            SMALL_BIG => {
                let n = usize::from(self.u8()?);
                self.big(n)?
            }
            LARGE_BIG => {
                let n = self.u32()?;
                self.big(n)?
            }
            MAP => {
                let n = self.u32()?;
                let n = self.count(n, 2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.term(depth + 1)?;
                    let v = self.term(depth + 1)?;
                    pairs.push((k, v));
                }
                Term::Map(pairs)
            }
            BIT_BINARY => return Err(EtfError::Refused("bit string")),
            88 | 103 => return Err(EtfError::Refused("pid")),
            89 | 102 | 120 => return Err(EtfError::Refused("port")),
            90 | 101 | 114 => return Err(EtfError::Refused("reference")),
            112 | 113 | 117 => return Err(EtfError::Refused("fun")),
            80 => return Err(EtfError::Refused("compressed term")),
            68 | 82 => return Err(EtfError::Refused("distribution header")),
            other => return Err(EtfError::UnknownTag(other)),
        })
    }
}

/// An integer from sign and magnitude: `Int` when it fits in 64 bits.
pub(super) fn int_from_magnitude(negative: bool, magnitude: Vec<u8>) -> Term {
    if magnitude.len() <= 8 {
        let mut le = [0u8; 8];
        le[..magnitude.len()].copy_from_slice(&magnitude);
        let m = u64::from_le_bytes(le);
        if !negative && m <= i64::MAX as u64 {
            return Term::Int(m as i64);
        }
        if negative && m <= 1u64 << 63 {
            return Term::Int((m as i64).wrapping_neg());
        }
    }
    Term::BigInt {
        negative,
        magnitude,
    }
}

/// Writes `term` as `term_to_binary/1` would (version byte first).
pub fn encode(term: &Term) -> Vec<u8> {
    let mut out = vec![VERSION];
    write(term, &mut out);
    out
}

fn write_len32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("ETF lengths are 32 bits");
    out.extend_from_slice(&n.to_be_bytes());
}

fn write_big(out: &mut Vec<u8>, negative: bool, magnitude: &[u8]) {
    if let Ok(n) = u8::try_from(magnitude.len()) {
        out.push(SMALL_BIG);
        out.push(n);
    } else {
        out.push(LARGE_BIG);
        write_len32(out, magnitude.len());
    }
    out.push(u8::from(negative));
    out.extend_from_slice(magnitude);
}

fn is_byte(t: &Term) -> bool {
    matches!(t, Term::Int(0..=255))
}

fn write(term: &Term, out: &mut Vec<u8>) {
    match term {
        Term::Int(i) => {
            if let Ok(small) = u8::try_from(*i) {
                out.push(SMALL_INTEGER);
                out.push(small);
            } else if let Ok(i) = i32::try_from(*i) {
                out.push(INTEGER);
                out.extend_from_slice(&i.to_be_bytes());
            } else {
                let m = i.unsigned_abs().to_le_bytes();
                let len = 8 - m.iter().rev().take_while(|&&b| b == 0).count();
                write_big(out, *i < 0, &m[..len]);
            }
        }
        Term::BigInt {
            negative,
            magnitude,
        } => write_big(out, *negative, magnitude),
        Term::Float(f) => {
            out.push(NEW_FLOAT);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Term::Atom(name) => {
            if let Ok(n) = u8::try_from(name.len()) {
                out.push(SMALL_ATOM_UTF8);
                out.push(n);
            } else {
                out.push(ATOM_UTF8);
                let n = u16::try_from(name.len()).expect("atoms are at most 255 characters");
                out.extend_from_slice(&n.to_be_bytes());
            }
            out.extend_from_slice(name.as_bytes());
        }
        Term::Binary(b) => {
            out.push(BINARY);
            write_len32(out, b.len());
            out.extend_from_slice(b);
        }
        Term::List(items) if items.is_empty() => out.push(NIL),
        Term::List(items) if items.len() <= usize::from(u16::MAX) && items.iter().all(is_byte) => {
            // term_to_binary/1 writes a list of bytes as STRING_EXT.
            out.push(STRING);
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            for t in items {
                if let Term::Int(b) = t {
                    out.push(*b as u8);
                }
            }
        }
        Term::List(items) => {
            out.push(LIST);
            write_len32(out, items.len());
            items.iter().for_each(|t| write(t, out));
            out.push(NIL);
        }
        Term::ImproperList(items, tail) => {
            out.push(LIST);
            write_len32(out, items.len());
            items.iter().for_each(|t| write(t, out));
            write(tail, out);
        }
        Term::Tuple(items) => {
            if let Ok(n) = u8::try_from(items.len()) {
                out.push(SMALL_TUPLE);
                out.push(n);
            } else {
                out.push(LARGE_TUPLE);
                write_len32(out, items.len());
            }
            items.iter().for_each(|t| write(t, out));
        }
        Term::Map(pairs) => {
            out.push(MAP);
            write_len32(out, pairs.len());
            for (k, v) in pairs {
                write(k, out);
                write(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn atom(s: &str) -> Term {
        Term::Atom(s.into())
    }

    #[test]
    fn the_protocol_example_decodes() {
        // docs/PROTOCOL.md §2: term_to_binary({hello, 1}).
        let bytes = base64::engine::general_purpose::STANDARD
            .decode("g2gCZAAFaGVsbG9hAQ==")
            .unwrap();
        let t = decode(&bytes).unwrap();
        assert_eq!(t, Term::Tuple(vec![atom("hello"), Term::Int(1)]));
        // We write atoms as UTF-8 (as OTP 26 does); OTP 25 wrote this one
        // as Latin-1 ATOM_EXT. Both read back the same.
        assert_eq!(decode(&encode(&t)).unwrap(), t);
    }

    /// Bytes `term_to_binary/1` (OTP 25) gives, written out by hand.
    #[test]
    fn what_term_to_binary_writes() {
        let cases: Vec<(Vec<u8>, Term)> = vec![
            (vec![131, 97, 42], Term::Int(42)),
            (vec![131, 98, 255, 255, 255, 255], Term::Int(-1)),
            // 2^64
            (
                vec![131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                Term::BigInt {
                    negative: false,
                    magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
                },
            ),
            // -(2^40)
            (
                vec![131, 110, 6, 1, 0, 0, 0, 0, 0, 1],
                Term::Int(-(1 << 40)),
            ),
            (vec![131, 70, 63, 248, 0, 0, 0, 0, 0, 0], Term::Float(1.5)),
            (vec![131, 106], Term::List(vec![])),
            // "ab" as a charlist
            (
                vec![131, 107, 0, 2, 97, 98],
                Term::List(vec![Term::Int(97), Term::Int(98)]),
            ),
            (
                vec![131, 109, 0, 0, 0, 3, 0xE2, 0x9C, 0x93],
                Term::Binary("✓".as_bytes().to_vec()),
            ),
            // [1 | 2]
            (
                vec![131, 108, 0, 0, 0, 1, 97, 1, 97, 2],
                Term::ImproperList(vec![Term::Int(1)], Box::new(Term::Int(2))),
            ),
            // #{a => 1}
            (
                vec![131, 116, 0, 0, 0, 1, 100, 0, 1, 97, 97, 1],
                Term::Map(vec![(atom("a"), Term::Int(1))]),
            ),
            // 'café' as a UTF-8 atom
            (vec![131, 119, 5, 99, 97, 102, 0xC3, 0xA9], atom("café")),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(&bytes).as_ref(), Ok(&want), "{bytes:?}");
            assert_eq!(decode(&encode(&want)).as_ref(), Ok(&want), "{want:?}");
        }
        // The encoder picks the forms term_to_binary picks.
        assert_eq!(encode(&Term::Int(42)), vec![131, 97, 42]);
        assert_eq!(encode(&Term::Int(-1)), vec![131, 98, 255, 255, 255, 255]);
        assert_eq!(
            encode(&Term::Int(-(1 << 40))),
            vec![131, 110, 6, 1, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            encode(&Term::Int(i64::MIN)),
            vec![131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128]
        );
    }

    #[test]
    fn a_term_printed_by_otp_25() {
        // term_to_binary(#{<<"k">> => [1.5, -70000, 1 bsl 64, {ok, caf}]})
        let bytes = [
            131, 116, 0, 0, 0, 1, 109, 0, 0, 0, 1, 107, 108, 0, 0, 0, 4, 70, 63, 248, 0, 0, 0, 0,
            0, 0, 98, 255, 254, 238, 144, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 104, 2, 100, 0, 2,
            111, 107, 100, 0, 3, 99, 97, 102, 106,
        ];
        let want = Term::Map(vec![(
            Term::Binary(b"k".to_vec()),
            Term::List(vec![
                Term::Float(1.5),
                Term::Int(-70000),
                Term::BigInt {
                    negative: false,
                    magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
                },
                Term::Tuple(vec![atom("ok"), atom("caf")]),
            ]),
        )]);
        assert_eq!(decode(&bytes), Ok(want.clone()));
        // Ours differs only in the atoms: SMALL_ATOM_UTF8 (1-byte length)
        // instead of ATOM_EXT (2 bytes), as OTP 26 writes them.
        let ours = encode(&want);
        assert_eq!(ours.len() + 2, bytes.len());
        assert_eq!(decode(&ours), Ok(want));
    }

    #[test]
    fn what_cannot_cross_the_bus_is_refused_by_name() {
        for (bytes, what) in [
            // self() from a node, NEW_PID_EXT
            (
                vec![131, 88, 100, 0, 1, b'n', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                "pid",
            ),
            (
                vec![131, 90, 0, 1, 100, 0, 1, b'n', 0, 0, 0, 0, 0, 0, 0, 1],
                "reference",
            ),
            (
                vec![131, 113, 100, 0, 1, b'm', 100, 0, 1, b'f', 97, 1],
                "fun",
            ),
            (
                vec![131, 89, 100, 0, 1, b'n', 0, 0, 0, 1, 0, 0, 0, 0],
                "port",
            ),
            (vec![131, 77, 0, 0, 0, 1, 3, 0xE0], "bit string"),
            (vec![131, 80, 0, 0, 0, 10, 120, 156], "compressed term"),
        ] {
            assert_eq!(decode(&bytes), Err(EtfError::Refused(what)), "{bytes:?}");
        }
        // Inside a container too.
        assert_eq!(
            decode(&[131, 104, 2, 97, 1, 89, 100, 0, 1, b'n', 0, 0, 0, 1, 0, 0, 0, 0]),
            Err(EtfError::Refused("port"))
        );
    }

    #[test]
    fn lies_and_bombs_are_refused_before_allocating() {
        // A list of 2^32-1 elements in 7 bytes.
        assert_eq!(
            decode(&[131, 108, 255, 255, 255, 255, 106]),
            Err(EtfError::Truncated)
        );
        // A map of 2^32-1 pairs, a binary of 4 GB, a tuple of 2^32-1.
        assert_eq!(
            decode(&[131, 116, 255, 255, 255, 255]),
            Err(EtfError::Truncated)
        );
        assert_eq!(
            decode(&[131, 109, 255, 255, 255, 255, 0]),
            Err(EtfError::Truncated)
        );
        assert_eq!(
            decode(&[131, 105, 255, 255, 255, 255]),
            Err(EtfError::Truncated)
        );
        // Deep nesting: [[[[...]]]], 1000 levels, then 100.
        let nested = |levels: usize| {
            let mut b = vec![131];
            for _ in 0..levels {
                b.extend_from_slice(&[108, 0, 0, 0, 1]);
            }
            b.push(106);
            b.extend(std::iter::repeat_n(106, levels));
            b
        };
        assert_eq!(
            decode(&nested(1000)),
            Err(EtfError::TooDeep(DEFAULT_MAX_DEPTH))
        );
        assert!(decode(&nested(100)).is_ok());
        assert_eq!(decode_with(&nested(100), 50), Err(EtfError::TooDeep(50)));
    }

    #[test]
    fn bad_framing_is_named() {
        assert_eq!(decode(&[]), Err(EtfError::Truncated));
        assert_eq!(decode(&[130, 97, 1]), Err(EtfError::Version(130)));
        assert_eq!(decode(&[131, 97]), Err(EtfError::Truncated));
        assert_eq!(decode(&[131, 97, 1, 0, 0]), Err(EtfError::Trailing(2)));
        assert_eq!(decode(&[131, 200]), Err(EtfError::UnknownTag(200)));
        assert_eq!(decode(&[131, 119, 1, 0xFF]), Err(EtfError::BadAtom));
        // NaN is not a term.
        let mut nan = vec![131, 70];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert_eq!(decode(&nan), Err(EtfError::BadFloat));
        assert_eq!(
            EtfError::Refused("pid").to_string(),
            "a pid cannot cross the bus"
        );
    }

    #[test]
    fn lists_read_as_binary_to_term_reads_them() {
        // [1 | [2]] is the proper [1, 2]; [1 | [2 | 3]] is [1, 2 | 3].
        assert_eq!(
            decode(&[131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106]),
            Ok(Term::List(vec![Term::Int(1), Term::Int(2)]))
        );
        assert_eq!(
            decode(&[131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 97, 3]),
            Ok(Term::ImproperList(
                vec![Term::Int(1), Term::Int(2)],
                Box::new(Term::Int(3))
            ))
        );
        // A list of no elements is its tail: binary_to_term gives 1.
        assert_eq!(decode(&[131, 108, 0, 0, 0, 0, 97, 1]), Ok(Term::Int(1)));
        // [1 | "ab"] (a STRING_EXT tail)
        assert_eq!(
            decode(&[131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 97, 98]),
            Ok(Term::List(vec![Term::Int(1), Term::Int(97), Term::Int(98)]))
        );
    }

    #[test]
    fn lists_of_bytes_are_written_as_strings() {
        // term_to_binary([1, 2, 3])
        let bytes = Term::List(vec![Term::Int(1), Term::Int(2), Term::Int(3)]);
        assert_eq!(encode(&bytes), vec![131, 107, 0, 3, 1, 2, 3]);
        // Not when an element is not a byte, nor beyond 65535 elements.
        assert_eq!(
            encode(&Term::List(vec![Term::Int(1), Term::Int(256)])),
            vec![131, 108, 0, 0, 0, 2, 97, 1, 98, 0, 0, 1, 0, 106]
        );
        let long = Term::List(vec![Term::Int(7); 65536]);
        let out = encode(&long);
        assert_eq!(&out[..6], &[131, 108, 0, 1, 0, 0]);
        assert_eq!(decode(&out), Ok(long));
        let max = Term::List(vec![Term::Int(7); 65535]);
        let out = encode(&max);
        assert_eq!(&out[..4], &[131, 107, 255, 255]);
        assert_eq!(decode(&out), Ok(max));
    }

    #[test]
    fn nested_terms_round_trip() {
        let t = Term::Map(vec![
            (
                Term::Binary(b"users".to_vec()),
                Term::List(vec![
                    Term::Tuple(vec![
                        atom("user"),
                        Term::Binary("Élodie".into()),
                        Term::Int(-7),
                    ]),
                    Term::Tuple(vec![atom("user"), Term::Binary(vec![]), Term::Float(-0.25)]),
                ]),
            ),
            (
                Term::Int(i64::MAX),
                Term::BigInt {
                    negative: true,
                    magnitude: vec![1; 300],
                },
            ),
            (atom("ok"), Term::Tuple((0..300).map(Term::Int).collect())),
        ]);
        assert_eq!(decode(&encode(&t)), Ok(t));
    }
}
