//! The `<body/>` of a term message: the term in Elixir syntax, as
//! `inspect/1` prints it, cut at [`BODY_LIMIT`] bytes (docs/PROTOCOL.md
//! §5.2). Only humans and ordinary clients read it, so it follows
//! `inspect/1` closely but not slavishly (floats, for one, are printed the
//! way Rust prints them, with `.0` added where Elixir would have it).

use crate::etf::Term;
use std::fmt::Write as _;

/// Longest body, in bytes of UTF-8, the ellipsis included.
pub const BODY_LIMIT: usize = 1024;

const ELLIPSIS: &str = "…";

/// Integers longer than this (in bytes of magnitude) are not converted to
/// decimal: they would be cut anyway, and converting is quadratic.
const MAX_DECIMAL_BYTES: usize = 4096;

/// `term` in Elixir syntax, at most [`BODY_LIMIT`] bytes long (a longer
/// rendering is cut on a character boundary and ends with `…`).
pub fn render(term: &Term) -> String {
    render_with_limit(term, BODY_LIMIT)
}

/// [`render`] with a limit of its own (at least the ellipsis' 3 bytes).
pub fn render_with_limit(term: &Term, limit: usize) -> String {
    let limit = limit.max(ELLIPSIS.len());
    let mut w = Out {
        s: String::new(),
        // One byte more than the limit tells "exactly at the limit" from
        // "longer than the limit".
        cap: limit + 1,
    };
    // Err only means "full": the rest would be cut anyway.
    let _ = write_term(&mut w, term);
    if w.s.len() <= limit {
        return w.s;
    }
    let mut cut = limit - ELLIPSIS.len();
    while !w.s.is_char_boundary(cut) {
        cut -= 1;
    }
    w.s.truncate(cut);
    w.s.push_str(ELLIPSIS);
    w.s
}

/// A string that stops growing at `cap` bytes; writing past it fails, so
/// that rendering a huge term stops early.
struct Out {
    s: String,
    cap: usize,
}

struct Full;

type R = Result<(), Full>;

impl Out {
    fn push(&mut self, text: &str) -> R {
        let room = self.cap - self.s.len();
        if text.len() <= room {
            self.s.push_str(text);
            Ok(())
        } else {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.s.push_str(&text[..end]);
            // Pad to the cap so the caller sees that it was reached.
            while self.s.len() < self.cap {
                self.s.push('.');
            }
            Err(Full)
        }
    }

    fn push_char(&mut self, c: char) -> R {
        let mut buf = [0u8; 4];
        self.push(c.encode_utf8(&mut buf))
    }
}

fn write_term(w: &mut Out, t: &Term) -> R {
    match t {
        Term::Int(i) => w.push(&i.to_string()),
        Term::BigInt {
            negative,
            magnitude,
        } => {
            if *negative {
                w.push("-")?;
            }
            if magnitude.len() > MAX_DECIMAL_BYTES {
                // Far beyond the limit in decimal, and quadratic to convert.
                return w.push(&format!("(an integer of {} bytes)", magnitude.len()));
            }
            w.push(&magnitude_to_decimal(magnitude))
        }
        Term::Float(f) => w.push(&float(*f)),
        Term::Atom(a) => write_atom(w, a),
        Term::Binary(b) => write_binary(w, b),
        Term::List(items) => write_list(w, items),
        Term::ImproperList(items, tail) => {
            w.push("[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.push(", ")?;
                }
                write_term(w, item)?;
            }
            w.push(" | ")?;
            write_term(w, tail)?;
            w.push("]")
        }
        Term::Tuple(items) => {
            w.push("{")?;
            write_seq(w, items)?;
            w.push("}")
        }
        Term::Map(pairs) => write_map(w, pairs),
    }
}

fn write_seq(w: &mut Out, items: &[Term]) -> R {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            w.push(", ")?;
        }
        write_term(w, item)?;
    }
    Ok(())
}

/// A float as Elixir prints it: always with a fraction, `1.0e20` rather
/// than `1e20`.
fn float(f: f64) -> String {
    let s = format!("{f:?}");
    match s.find('e') {
        Some(e) if !s[..e].contains('.') => format!("{}.0{}", &s[..e], &s[e..]),
        _ => s,
    }
}

/// The decimal digits of a little-endian magnitude.
pub(crate) fn magnitude_to_decimal(magnitude: &[u8]) -> String {
    // Base 10^9 limbs, least significant first.
    let mut limbs: Vec<u32> = vec![0];
    for &byte in magnitude.iter().rev() {
        // limbs = limbs * 256 + byte
        let mut carry = u64::from(byte);
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * 256 + carry;
            *limb = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push((carry % 1_000_000_000) as u32);
            carry /= 1_000_000_000;
        }
    }
    let mut s = limbs.last().expect("one limb at least").to_string();
    for limb in limbs.iter().rev().skip(1) {
        let _ = write!(s, "{limb:09}");
    }
    s
}

const OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "++", "--", "==", "!=", "===", "!==", "<", ">", "<=", ">=", "&&", "||",
    "!", "<>", "|>", "<<<", ">>>", "&&&", "|||", "^^^", "~~~", "<-", "->", "\\\\", "::", "..",
    "=~", "@", "^", "&", "|", "<<>>", "%", "%{}", "{}", "...", "=>", ".", "=",
];

/// An atom that needs no quotes after `:` (`:ok`, `:valid?`, `:user@host`).
fn is_identifier(a: &str) -> bool {
    let mut chars = a.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_') {
        return false;
    }
    let rest = chars.as_str();
    let body = rest.strip_suffix(['?', '!']).unwrap_or(rest);
    body.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
}

/// `Elixir.Foo.Bar`, printed `Foo.Bar`.
fn alias(a: &str) -> Option<&str> {
    let rest = a.strip_prefix("Elixir.")?;
    let ok = rest.split('.').all(|seg| {
        let mut c = seg.chars();
        c.next().is_some_and(|f| f.is_ascii_uppercase())
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    ok.then_some(rest)
}

fn write_atom(w: &mut Out, a: &str) -> R {
    if matches!(a, "true" | "false" | "nil") {
        return w.push(a);
    }
    if let Some(alias) = alias(a) {
        return w.push(alias);
    }
    w.push(":")?;
    if is_identifier(a) || OPERATORS.contains(&a) {
        w.push(a)
    } else {
        write_quoted(w, a)
    }
}

/// An atom as a keyword key: `name: ` or `"odd name": `.
fn write_key(w: &mut Out, a: &str) -> R {
    if is_identifier(a) {
        w.push(a)?;
    } else {
        write_quoted(w, a)?;
    }
    w.push(": ")
}

/// What `String.printable?/1` accepts, as chars.
fn printable(c: char) -> bool {
    matches!(c,
        '\u{20}'..='\u{7E}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}'
        | '\n' | '\r' | '\t' | '\u{0B}' | '\u{08}' | '\u{0C}' | '\u{1B}' | '\u{7F}' | '\u{07}')
}

/// `"text"` with Elixir's escapes (`\"`, `\\`, `\n`, `\#{`, ...).
fn write_quoted(w: &mut Out, s: &str) -> R {
    w.push("\"")?;
    write_escaped(w, s, '"')?;
    w.push("\"")
}

fn write_escaped(w: &mut Out, s: &str, quote: char) -> R {
    let mut prev_hash = false;
    for c in s.chars() {
        let esc = match c {
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{0B}' => Some("\\v"),
            '\u{08}' => Some("\\b"),
            '\u{0C}' => Some("\\f"),
            '\u{1B}' => Some("\\e"),
            '\u{7F}' => Some("\\d"),
            '\u{07}' => Some("\\a"),
            _ => None,
        };
        if let Some(e) = esc {
            w.push(e)?;
        } else if c == quote {
            w.push("\\")?;
            w.push_char(c)?;
        } else if c == '{' && prev_hash {
            // "#{" would be interpolation: inspect writes "\#{".
            w.s.pop();
            w.push("\\#{")?;
        } else if !printable(c) {
            w.push(&format!("\\u{{{:X}}}", u32::from(c)))?;
        } else {
            w.push_char(c)?;
        }
        prev_hash = c == '#';
    }
    Ok(())
}

fn write_binary(w: &mut Out, b: &[u8]) -> R {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(printable) => write_quoted(w, s),
        _ => {
            w.push("<<")?;
            for (i, byte) in b.iter().enumerate() {
                if i > 0 {
                    w.push(", ")?;
                }
                w.push(&byte.to_string())?;
            }
            w.push(">>")
        }
    }
}

/// The text of a list of integers that are all printable characters.
fn charlist(items: &[Term]) -> Option<String> {
    items
        .iter()
        .map(|t| match t {
            Term::Int(i) => u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .filter(|c| printable(*c)),
            _ => None,
        })
        .collect()
}

fn keyword_key(t: &Term) -> Option<&str> {
    match t {
        Term::Tuple(kv) if kv.len() == 2 => match &kv[0] {
            Term::Atom(a) => Some(a),
            _ => None,
        },
        _ => None,
    }
}

fn write_list(w: &mut Out, items: &[Term]) -> R {
    if items.is_empty() {
        return w.push("[]");
    }
    if let Some(text) = charlist(items) {
        w.push("~c\"")?;
        write_escaped(w, &text, '"')?;
        return w.push("\"");
    }
    w.push("[")?;
    if items.iter().all(|t| keyword_key(t).is_some()) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                w.push(", ")?;
            }
            let Term::Tuple(kv) = item else {
                unreachable!("checked above")
            };
            write_key(w, keyword_key(item).expect("checked above"))?;
            write_term(w, &kv[1])?;
        }
    } else {
        write_seq(w, items)?;
    }
    w.push("]")
}

fn write_map(w: &mut Out, pairs: &[(Term, Term)]) -> R {
    let struct_name = pairs.iter().find_map(|(k, v)| match (k, v) {
        (Term::Atom(k), Term::Atom(v)) if k == "__struct__" => alias(v),
        _ => None,
    });
    let shown: Vec<&(Term, Term)> = pairs
        .iter()
        .filter(|(k, _)| {
            !(struct_name.is_some() && matches!(k, Term::Atom(a) if a == "__struct__"))
        })
        .collect();
    match struct_name {
        Some(name) => {
            w.push("%")?;
            w.push(name)?;
            w.push("{")?;
        }
        None => w.push("%{")?,
    }
    let all_atoms = shown.iter().all(|(k, _)| matches!(k, Term::Atom(_)));
    for (i, (k, v)) in shown.iter().enumerate() {
        if i > 0 {
            w.push(", ")?;
        }
        match k {
            Term::Atom(a) if all_atoms => write_key(w, a)?,
            _ => {
                write_term(w, k)?;
                w.push(" => ")?;
            }
        }
        write_term(w, v)?;
    }
    w.push("}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(s: &str) -> Term {
        Term::Atom(s.into())
    }
    fn bin(s: &str) -> Term {
        Term::Binary(s.as_bytes().to_vec())
    }

    #[test]
    fn the_protocol_example() {
        let t = Term::Tuple(vec![
            atom("job"),
            Term::Int(42),
            Term::Map(vec![(bin("state"), atom("done"))]),
        ]);
        assert_eq!(render(&t), r#"{:job, 42, %{"state" => :done}}"#);
    }

    #[test]
    fn atoms_as_elixir_prints_them() {
        for (a, want) in [
            ("ok", ":ok"),
            ("valid?", ":valid?"),
            ("nonode@nohost", ":nonode@nohost"),
            ("true", "true"),
            ("nil", "nil"),
            ("Elixir.Foo.Bar", "Foo.Bar"),
            ("Elixir.foo", ":\"Elixir.foo\""),
            ("hello world", ":\"hello world\""),
            ("a\"b", ":\"a\\\"b\""),
            ("+", ":+"),
            ("", ":\"\""),
            ("Foo", ":Foo"),
            ("1a", ":\"1a\""),
        ] {
            assert_eq!(render(&atom(a)), want, "{a}");
        }
    }

    #[test]
    fn binaries_printable_or_not() {
        assert_eq!(render(&bin("héllo")), "\"héllo\"");
        assert_eq!(render(&bin("a\"b\\c\nd#{x}")), r#""a\"b\\c\nd\#{x}""#);
        assert_eq!(render(&Term::Binary(vec![1, 2, 255])), "<<1, 2, 255>>");
        assert_eq!(render(&Term::Binary(vec![0])), "<<0>>");
        assert_eq!(render(&Term::Binary(vec![])), "\"\"");
    }

    #[test]
    fn lists_keywords_charlists_maps() {
        let kw = Term::List(vec![
            Term::Tuple(vec![atom("a"), Term::Int(1)]),
            Term::Tuple(vec![atom("b c"), Term::Int(2)]),
        ]);
        assert_eq!(render(&kw), r#"[a: 1, "b c": 2]"#);
        assert_eq!(
            render(&Term::List(vec![Term::Int(104), Term::Int(105)])),
            "~c\"hi\""
        );
        assert_eq!(
            render(&Term::List(vec![Term::Int(1), Term::Int(2)])),
            "[1, 2]"
        );
        assert_eq!(render(&Term::List(vec![])), "[]");
        assert_eq!(
            render(&Term::ImproperList(
                vec![Term::Int(1)],
                Box::new(Term::Int(2))
            )),
            "[1 | 2]"
        );
        assert_eq!(
            render(&Term::Map(vec![(atom("a"), Term::Int(1))])),
            "%{a: 1}"
        );
        assert_eq!(
            render(&Term::Map(vec![
                (atom("a"), Term::Int(1)),
                (bin("b"), Term::Int(2))
            ])),
            r#"%{:a => 1, "b" => 2}"#
        );
        assert_eq!(render(&Term::Map(vec![])), "%{}");
        assert_eq!(
            render(&Term::Map(vec![
                (
                    atom("__struct__"),
                    atom("Elixir.XmppBridge.Bus.UnknownAtom")
                ),
                (atom("name"), bin("zz")),
            ])),
            r#"%XmppBridge.Bus.UnknownAtom{name: "zz"}"#
        );
        assert_eq!(render(&Term::Tuple(vec![])), "{}");
    }

    #[test]
    fn numbers() {
        assert_eq!(render(&Term::Int(-7)), "-7");
        assert_eq!(render(&Term::Float(1.5)), "1.5");
        assert_eq!(render(&Term::Float(2.0)), "2.0");
        assert_eq!(render(&Term::Float(1e20)), "1.0e20");
        assert_eq!(render(&Term::Float(-2.5e-7)), "-2.5e-7");
        // 2^64 and -(2^64 * 10^9 + 5) style magnitudes.
        let big = Term::BigInt {
            negative: false,
            magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
        };
        assert_eq!(render(&big), "18446744073709551616");
        let big = Term::BigInt {
            negative: true,
            magnitude: vec![0xff; 16],
        };
        assert_eq!(render(&big), format!("-{}", u128::MAX));
        assert_eq!(magnitude_to_decimal(&[]), "0");
    }

    #[test]
    fn long_renderings_are_cut_at_the_limit_with_an_ellipsis() {
        let t = Term::List((0..1000).map(Term::Int).collect());
        let s = render(&t);
        assert_eq!(s.len(), BODY_LIMIT);
        assert!(s.ends_with('…'));
        assert!(s.starts_with("[0, 1, 2, "));
        // Cut on a character boundary.
        let t = Term::Binary("é".repeat(600).into_bytes());
        let s = render(&t);
        assert!(s.len() <= BODY_LIMIT && s.ends_with('…'), "{}", s.len());
        // Exactly at the limit: not cut.
        let t = Term::Binary("x".repeat(BODY_LIMIT - 2).into_bytes());
        assert_eq!(render(&t).len(), BODY_LIMIT);
        assert!(!render(&t).ends_with('…'));
        // A huge term is not rendered in full before it is cut.
        let t = Term::List(vec![Term::Binary(vec![b'a'; 50_000_000])]);
        assert_eq!(render(&t).len(), BODY_LIMIT);
    }
}
