//! Terms as JSON and back, the way the command line writes and reads them.
//!
//! Plain JSON reads as [`xmpp_bridge::bus::json`] (and `Payload.Json` on
//! the Elixir side) reads it: `null` is `nil`, booleans are `true` and
//! `false`, integral numbers are integers of any size, other numbers are
//! floats, strings are binaries, arrays are lists, objects are maps with
//! binary keys. What plain JSON cannot say is written as an object with
//! one member whose key is a tag:
//!
//! | JSON | term |
//! |------|------|
//! | `{"$atom": "ok"}` | the atom `:ok` (`nil`, `true`, `false` are JSON's own) |
//! | `{"$tuple": [1, 2]}` | the tuple `{1, 2}` |
//! | `{"$binary": "AAH/"}` | a binary, by its Base64 (for bytes that are not UTF-8) |
//! | `{"$map": [[k, v], ...]}` | a map with keys of any kind |
//! | `{"$improper": [[1, 2], 3]}` | the improper list `[1, 2 \| 3]` |
//! | `{"$hexint": "-0x1f"}` | an integer, in hex (how integers beyond 8 KiB are written) |
//!
//! Writing uses the same rules, so what the node prints reads back as the
//! same term: [`term_to_json`] then [`json_to_term`] is the identity on
//! every term (a map whose only key is a tag name is written with `$map`).

use crate::bigint::{BigInt, MAX_DECIMAL_BYTES};
use crate::json::Json;
use base64::Engine;
use xmpp_bridge::etf::{Term, MAX_ATOM_CHARS};

const ATOM: &str = "$atom";
const TUPLE: &str = "$tuple";
const BINARY: &str = "$binary";
const MAP: &str = "$map";
const IMPROPER: &str = "$improper";
const HEXINT: &str = "$hexint";

const TAGS: [&str; 6] = [ATOM, TUPLE, BINARY, MAP, IMPROPER, HEXINT];

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn tagged(tag: &str, v: Json) -> Json {
    Json::Object(vec![(tag.to_owned(), v)])
}

/// The term as JSON (see the module's table).
pub fn term_to_json(t: &Term) -> Json {
    match t {
        Term::Int(i) => Json::int(*i),
        Term::BigInt { .. } => {
            let n = BigInt::from_term(t).expect("an integer");
            if n.magnitude_bytes() > MAX_DECIMAL_BYTES {
                tagged(HEXINT, Json::String(n.to_hex()))
            } else {
                Json::Number(n.to_decimal())
            }
        }
        // Debug always writes a `.` or an exponent, so it reads back as a
        // float; ETF floats are finite.
        Term::Float(f) => Json::Number(format!("{f:?}")),
        Term::Atom(a) => match a.as_str() {
            "nil" => Json::Null,
            "true" => Json::Bool(true),
            "false" => Json::Bool(false),
            _ => tagged(ATOM, Json::str(a.clone())),
        },
        Term::Binary(b) => match std::str::from_utf8(b) {
            Ok(s) => Json::str(s),
            Err(_) => tagged(BINARY, Json::String(b64().encode(b))),
        },
        Term::List(items) => Json::Array(items.iter().map(term_to_json).collect()),
        Term::Tuple(items) => tagged(TUPLE, Json::Array(items.iter().map(term_to_json).collect())),
        Term::ImproperList(items, tail) => tagged(
            IMPROPER,
            Json::Array(vec![
                Json::Array(items.iter().map(term_to_json).collect()),
                term_to_json(tail),
            ]),
        ),
        Term::Map(pairs) => {
            let keys: Option<Vec<&str>> = pairs
                .iter()
                .map(|(k, _)| match k {
                    Term::Binary(b) => std::str::from_utf8(b).ok(),
                    _ => None,
                })
                .collect();
            match keys {
                Some(keys) if !(keys.len() == 1 && TAGS.contains(&keys[0])) => Json::Object(
                    keys.into_iter()
                        .zip(pairs)
                        .map(|(k, (_, v))| (k.to_owned(), term_to_json(v)))
                        .collect(),
                ),
                _ => tagged(
                    MAP,
                    Json::Array(
                        pairs
                            .iter()
                            .map(|(k, v)| Json::Array(vec![term_to_json(k), term_to_json(v)]))
                            .collect(),
                    ),
                ),
            }
        }
    }
}

/// The term a JSON value stands for, or why it stands for none.
pub fn json_to_term(j: &Json) -> Result<Term, String> {
    Ok(match j {
        Json::Null => Term::nil(),
        Json::Bool(b) => Term::atom(if *b { "true" } else { "false" }),
        Json::Number(n) => number(n)?,
        Json::String(s) => Term::binary(s.as_bytes()),
        Json::Array(items) => Term::List(items.iter().map(json_to_term).collect::<Result<_, _>>()?),
        Json::Object(members) => match members.as_slice() {
            [(tag, v)] if TAGS.contains(&tag.as_str()) => tagged_term(tag, v)?,
            _ => {
                let mut seen = std::collections::HashSet::new();
                let mut pairs = Vec::with_capacity(members.len());
                for (k, v) in members {
                    if !seen.insert(k.as_str()) {
                        return Err(format!("the key {k:?} appears twice in an object"));
                    }
                    pairs.push((Term::binary(k.as_bytes()), json_to_term(v)?));
                }
                Term::Map(pairs)
            }
        },
    })
}

fn number(n: &str) -> Result<Term, String> {
    if n.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let f: f64 = n.parse().map_err(|_| format!("not a number: {n}"))?;
        if !f.is_finite() {
            return Err(format!("the number {n} is too large for a float"));
        }
        Ok(Term::Float(f))
    } else {
        match n.parse::<i64>() {
            Ok(i) => Ok(Term::Int(i)),
            Err(_) => Ok(BigInt::from_decimal(n)?.to_term()),
        }
    }
}

fn tagged_term(tag: &str, v: &Json) -> Result<Term, String> {
    let items = |v: &Json| -> Result<Vec<Term>, String> {
        match v {
            Json::Array(items) => items.iter().map(json_to_term).collect(),
            _ => Err(format!("{tag} takes an array")),
        }
    };
    match tag {
        ATOM => match v {
            Json::String(name) if name.chars().count() <= MAX_ATOM_CHARS => Ok(Term::atom(name)),
            Json::String(_) => Err(format!("an atom has at most {MAX_ATOM_CHARS} characters")),
            _ => Err("$atom takes a string (the atom's name)".into()),
        },
        TUPLE => Ok(Term::Tuple(items(v)?)),
        BINARY => match v {
            Json::String(s) => b64()
                .decode(s)
                .map(Term::Binary)
                .map_err(|e| format!("$binary takes Base64: {e}")),
            _ => Err("$binary takes a string (Base64)".into()),
        },
        HEXINT => match v {
            Json::String(s) => Ok(BigInt::from_hex(s)?.to_term()),
            _ => Err("$hexint takes a string (-?0x...)".into()),
        },
        MAP => {
            let Json::Array(pairs) = v else {
                return Err("$map takes an array of [key, value] pairs".into());
            };
            let mut out: Vec<(Term, Term)> = Vec::with_capacity(pairs.len());
            for pair in pairs {
                let Json::Array(kv) = pair else {
                    return Err("$map takes an array of [key, value] pairs".into());
                };
                let [k, v] = kv.as_slice() else {
                    return Err("$map takes an array of [key, value] pairs".into());
                };
                let k = json_to_term(k)?;
                if out.iter().any(|(seen, _)| *seen == k) {
                    return Err("a key appears twice in a $map".into());
                }
                out.push((k, json_to_term(v)?));
            }
            Ok(Term::Map(out))
        }
        IMPROPER => {
            let Json::Array(parts) = v else {
                return Err("$improper takes [[items...], tail]".into());
            };
            let [head, tail] = parts.as_slice() else {
                return Err("$improper takes [[items...], tail]".into());
            };
            let head = items(head)?;
            let tail = json_to_term(tail)?;
            if head.is_empty() {
                return Err("an improper list has at least one item before its tail".into());
            }
            if matches!(tail, Term::List(_) | Term::ImproperList(..)) {
                return Err("the tail of an improper list is not a list".into());
            }
            Ok(Term::ImproperList(head, Box::new(tail)))
        }
        _ => unreachable!("TAGS lists every tag"),
    }
}

/// Reads JSON text as a term.
pub fn parse_term(text: &str) -> Result<Term, String> {
    let j = crate::json::parse(text).map_err(|e| e.to_string())?;
    json_to_term(&j)
}

/// Base64 ETF text as a term (read as defensively as any peer's).
pub fn parse_etf(text: &str) -> Result<Term, String> {
    let bytes = b64()
        .decode(text.trim())
        .map_err(|e| format!("not Base64: {e}"))?;
    xmpp_bridge::etf::decode(&bytes).map_err(|e| format!("not a term: {e}"))
}

/// The term as Base64 ETF.
pub fn etf_base64(t: &Term) -> String {
    b64().encode(xmpp_bridge::etf::encode(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Term {
        parse_term(text).unwrap()
    }

    fn round_trips(term: Term) {
        let j = term_to_json(&term);
        let text = j.to_string();
        assert_eq!(parse_term(&text).unwrap(), term, "through {text}");
    }

    #[test]
    fn plain_json_reads_as_the_bus_reads_it() {
        assert_eq!(t("null"), Term::nil());
        assert_eq!(
            t("[true, false]"),
            Term::list(vec![Term::atom("true"), Term::atom("false")])
        );
        assert_eq!(t("-7"), Term::Int(-7));
        assert_eq!(t("2.5"), Term::Float(2.5));
        assert_eq!(t("1e2"), Term::Float(100.0));
        assert_eq!(t("\"hé\""), Term::binary("hé"));
        assert_eq!(
            t(r#"{"a": 1}"#),
            Term::map(vec![(Term::binary("a"), Term::Int(1))])
        );
        // The same as the library's own conversion for plain JSON.
        let v = serde_json::json!({"k": [1, -2, 2.5, "x", null, true, {"n": []}]});
        assert_eq!(t(&v.to_string()), xmpp_bridge::bus::json::json_to_term(&v));
    }

    #[test]
    fn integers_of_any_size() {
        let big = t("123456789012345678901234567890");
        assert_eq!(
            term_to_json(&big).to_string(),
            "123456789012345678901234567890"
        );
        assert_eq!(t("9223372036854775807"), Term::Int(i64::MAX));
        assert!(matches!(
            t("9223372036854775808"),
            Term::BigInt {
                negative: false,
                ..
            }
        ));
        assert_eq!(t("-9223372036854775808"), Term::Int(i64::MIN));
        assert_eq!(t(r#"{"$hexint": "-0xff"}"#), Term::Int(-255));
        // Beyond 8 KiB of magnitude an integer is written in hex.
        let huge = Term::BigInt {
            negative: true,
            magnitude: vec![7; MAX_DECIMAL_BYTES + 1],
        };
        let text = term_to_json(&huge).to_string();
        assert!(text.starts_with(r#"{"$hexint":"-0x707"#), "{}", &text[..20]);
        round_trips(huge);
    }

    #[test]
    fn tags_say_what_json_cannot() {
        assert_eq!(
            t(r#"{"$tuple": [{"$atom": "job"}, 42]}"#),
            Term::tuple(vec![Term::atom("job"), Term::Int(42)])
        );
        assert_eq!(t(r#"{"$binary": "AAH/"}"#), Term::binary(vec![0, 1, 255]));
        assert_eq!(
            t(r#"{"$map": [[1, "one"], [{"$atom": "a"}, []]]}"#),
            Term::map(vec![
                (Term::Int(1), Term::binary("one")),
                (Term::atom("a"), Term::list(vec![]))
            ])
        );
        assert_eq!(
            t(r#"{"$improper": [[1, 2], 3]}"#),
            Term::ImproperList(vec![Term::Int(1), Term::Int(2)], Box::new(Term::Int(3)))
        );
        // An unknown `$` key, or more than one member, is a map.
        assert_eq!(
            t(r#"{"$other": 1}"#),
            Term::map(vec![(Term::binary("$other"), Term::Int(1))])
        );
    }

    #[test]
    fn every_term_round_trips() {
        round_trips(Term::tuple(vec![
            Term::atom("ok"),
            Term::atom("nil"),
            Term::Float(-0.0),
            Term::Float(1e300),
            Term::Float(std::f64::consts::PI),
            Term::Float(1e-7),
            Term::binary(vec![0xff, 0]),
            Term::binary(""),
            Term::list(vec![]),
            Term::tuple(vec![]),
            Term::map(vec![]),
            Term::map(vec![(Term::binary("$atom"), Term::binary("not an atom"))]),
            Term::map(vec![(Term::atom("key"), Term::Int(1))]),
            Term::map(vec![(Term::binary(vec![0xff]), Term::Int(1))]),
            Term::ImproperList(vec![Term::Int(1)], Box::new(Term::binary("t"))),
            Term::BigInt {
                negative: true,
                magnitude: vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
            },
        ]));
    }

    #[test]
    fn bad_json_terms_are_refused_with_a_reason() {
        for (text, why) in [
            (r#"{"$atom": 1}"#, "$atom takes a string"),
            (r#"{"$tuple": 1}"#, "$tuple takes an array"),
            (r#"{"$binary": "!!"}"#, "Base64"),
            (r#"{"$map": [[1]]}"#, "pairs"),
            (r#"{"$map": [[1, 2], [1, 3]]}"#, "twice"),
            (r#"{"$improper": [[], 1]}"#, "at least one item"),
            (r#"{"$improper": [[1], [2]]}"#, "not a list"),
            (r#"{"$hexint": "12"}"#, "hex"),
            (r#"{"a": 1, "a": 2}"#, "twice"),
            ("1e999", "too large"),
            ("[1,", "not JSON"),
        ] {
            let e = parse_term(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
        let long = format!(r#"{{"$atom": "{}"}}"#, "a".repeat(MAX_ATOM_CHARS + 1));
        assert!(parse_term(&long).unwrap_err().contains("at most"));
    }

    #[test]
    fn etf_text_reads_defensively() {
        let term = Term::tuple(vec![Term::atom("ok"), Term::Int(1)]);
        assert_eq!(parse_etf(&etf_base64(&term)).unwrap(), term);
        assert!(parse_etf("%%").unwrap_err().contains("Base64"));
        assert!(parse_etf("AQID").unwrap_err().contains("not a term"));
    }
}
