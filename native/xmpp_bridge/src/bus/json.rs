//! Terms and XEP-0335 JSON (docs/PROTOCOL.md §3): a call that comes with
//! `<json/>` arguments is answered with a `<json/>` result, so the
//! arguments are turned into terms for the handler and its result back
//! into JSON.
//!
//! JSON to term: `null` is `nil`, booleans are the atoms `true`/`false`,
//! numbers are integers when they are integral (beyond 64 bits too) and
//! floats otherwise, strings are binaries, arrays are lists, objects are
//! maps with binary keys (as `Payload.Json` reads them on the Elixir
//! side). Term to JSON: the reverse, plus: other atoms and printable
//! binaries are strings, tuples are arrays, maps with keys that are not
//! all strings or atoms are arrays of `[key, value]` pairs, integers
//! beyond 64 bits are strings of digits. Binaries that are not UTF-8 and
//! improper lists have no JSON form.

use crate::etf::Term;
use serde_json::{Map, Number, Value};

/// A JSON value as a term.
pub fn json_to_term(v: &Value) -> Term {
    match v {
        Value::Null => Term::Atom("nil".into()),
        Value::Bool(b) => Term::Atom(if *b { "true" } else { "false" }.into()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Term::Int(i)
            } else if let Some(u) = n.as_u64() {
                let bytes = u.to_le_bytes();
                let len = 8 - bytes.iter().rev().take_while(|&&b| b == 0).count();
                Term::BigInt {
                    negative: false,
                    magnitude: bytes[..len].to_vec(),
                }
            } else {
                Term::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Term::Binary(s.as_bytes().to_vec()),
        Value::Array(items) => Term::List(items.iter().map(json_to_term).collect()),
        Value::Object(map) => Term::Map(
            map.iter()
                .map(|(k, v)| (Term::Binary(k.as_bytes().to_vec()), json_to_term(v)))
                .collect(),
        ),
    }
}

/// A term as JSON, or why it has none.
pub fn term_to_json(t: &Term) -> Result<Value, String> {
    Ok(match t {
        Term::Int(i) => Value::Number((*i).into()),
        Term::BigInt {
            negative,
            magnitude,
        } => {
            if !negative && magnitude.len() <= 8 {
                let mut le = [0u8; 8];
                le[..magnitude.len()].copy_from_slice(magnitude);
                Value::Number(u64::from_le_bytes(le).into())
            } else {
                let digits = super::render::magnitude_to_decimal(magnitude);
                Value::String(if *negative {
                    format!("-{digits}")
                } else {
                    digits
                })
            }
        }
        Term::Float(f) => Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("the float {f} has no JSON form"))?,
        Term::Atom(a) => match a.as_str() {
            "nil" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(a.clone()),
        },
        Term::Binary(b) => Value::String(
            String::from_utf8(b.clone())
                .map_err(|_| "a binary that is not UTF-8 has no JSON form".to_string())?,
        ),
        Term::List(items) | Term::Tuple(items) => {
            Value::Array(items.iter().map(term_to_json).collect::<Result<_, _>>()?)
        }
        Term::ImproperList(..) => return Err("an improper list has no JSON form".into()),
        Term::Map(pairs) => {
            let keys: Option<Vec<String>> = pairs
                .iter()
                .map(|(k, _)| match k {
                    Term::Binary(b) => String::from_utf8(b.clone()).ok(),
                    Term::Atom(a) => Some(a.clone()),
                    _ => None,
                })
                .collect();
            match keys {
                Some(keys) => {
                    let mut m = Map::new();
                    for (k, (_, v)) in keys.into_iter().zip(pairs) {
                        m.insert(k, term_to_json(v)?);
                    }
                    Value::Object(m)
                }
                None => Value::Array(
                    pairs
                        .iter()
                        .map(|(k, v)| Ok(Value::Array(vec![term_to_json(k)?, term_to_json(v)?])))
                        .collect::<Result<_, String>>()?,
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_terms() {
        let v = json!({"a": [1, -2, 2.5, "x", null, true, false, {"b": []}], "big": 18446744073709551615u64});
        let t = json_to_term(&v);
        assert_eq!(term_to_json(&t).unwrap(), v);
    }

    #[test]
    fn terms_without_a_json_twin() {
        let t = Term::Tuple(vec![Term::Atom("ok".into()), Term::Int(1)]);
        assert_eq!(term_to_json(&t).unwrap(), json!(["ok", 1]));
        let t = Term::Map(vec![(Term::Int(1), Term::Int(2))]);
        assert_eq!(term_to_json(&t).unwrap(), json!([[1, 2]]));
        assert!(term_to_json(&Term::Binary(vec![255])).is_err());
        assert!(term_to_json(&Term::ImproperList(vec![], Box::new(Term::Int(1)))).is_err());
        let big = Term::BigInt {
            negative: true,
            magnitude: vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
        };
        assert_eq!(term_to_json(&big).unwrap(), json!("-18446744073709551616"));
    }
}
