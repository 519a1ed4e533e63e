//! JSON text <-> terms, for XEP-0335 payloads. Objects become maps with
//! binary keys, arrays lists, strings binaries, `null` `nil`.

use crate::atoms;
use crate::error::{NifError, NifResult};
use rustler::types::map::MapIterator;
use rustler::{Atom, Encoder, Env, Term, TermType};
use serde_json::{Map, Number, Value};

/// Deepest nesting converted, both ways (terms are walked recursively).
const MAX_DEPTH: usize = 128;

fn bad(detail: impl Into<String>) -> NifError {
    NifError::InvalidJson(detail.into())
}

pub fn encode(t: Term<'_>) -> NifResult<String> {
    let v = to_value(t, 0)?;
    serde_json::to_string(&v).map_err(|e| bad(e.to_string()))
}

fn key(t: Term<'_>) -> NifResult<String> {
    if let Ok(s) = t.decode::<String>() {
        return Ok(s);
    }
    if t.get_type() == TermType::Atom {
        return t.atom_to_string().map_err(|_| bad("unreadable atom key"));
    }
    Err(bad("object keys must be binaries or atoms"))
}

fn to_value(t: Term<'_>, depth: usize) -> NifResult<Value> {
    if depth > MAX_DEPTH {
        return Err(bad(format!("nested deeper than {MAX_DEPTH}")));
    }
    crate::from_term::spend(1)?;
    match t.get_type() {
        TermType::Atom => {
            let a: Atom = t.decode().map_err(|_| bad("atom"))?;
            if a == atoms::nil() {
                Ok(Value::Null)
            } else if a == atoms::true_() {
                Ok(Value::Bool(true))
            } else if a == atoms::false_() {
                Ok(Value::Bool(false))
            } else {
                Ok(Value::String(t.atom_to_string().map_err(|_| bad("atom"))?))
            }
        }
        TermType::Binary => {
            let s = t
                .decode::<String>()
                .map_err(|_| bad("binary is not UTF-8"))?;
            crate::from_term::spend_text(s.len())?;
            Ok(Value::String(s))
        }
        TermType::Integer => {
            if let Ok(i) = t.decode::<i64>() {
                Ok(Value::Number(i.into()))
            } else if let Ok(u) = t.decode::<u64>() {
                Ok(Value::Number(u.into()))
            } else {
                Err(bad("integer does not fit in 64 bits"))
            }
        }
        TermType::Float => {
            let f: f64 = t.decode().map_err(|_| bad("float"))?;
            Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| bad("non-finite float"))
        }
        TermType::List => {
            let items: Vec<Term> = t.decode().map_err(|_| bad("improper list"))?;
            items
                .into_iter()
                .map(|i| to_value(i, depth + 1))
                .collect::<NifResult<Vec<_>>>()
                .map(Value::Array)
        }
        TermType::Map => {
            let mut m = Map::new();
            for (k, v) in MapIterator::new(t).ok_or_else(|| bad("map"))? {
                m.insert(key(k)?, to_value(v, depth + 1)?);
            }
            Ok(Value::Object(m))
        }
        _ => Err(bad(
            "only maps, lists, binaries, numbers, booleans and nil have a JSON form",
        )),
    }
}

pub fn decode<'a>(env: Env<'a>, input: &[u8]) -> NifResult<Term<'a>> {
    let v: Value = serde_json::from_slice(input).map_err(|e| bad(e.to_string()))?;
    Ok(to_term(env, &v))
}

fn to_term<'a>(env: Env<'a>, v: &Value) -> Term<'a> {
    match v {
        Value::Null => atoms::nil().encode(env),
        Value::Bool(b) => b.encode(env),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.encode(env)
            } else if let Some(u) = n.as_u64() {
                u.encode(env)
            } else {
                n.as_f64().unwrap_or(0.0).encode(env)
            }
        }
        Value::String(s) => crate::binary(env, s.as_bytes()),
        Value::Array(a) => a
            .iter()
            .map(|i| to_term(env, i))
            .collect::<Vec<_>>()
            .encode(env),
        Value::Object(o) => {
            let keys: Vec<Term> = o.keys().map(|k| crate::binary(env, k.as_bytes())).collect();
            let values: Vec<Term> = o.values().map(|v| to_term(env, v)).collect();
            Term::map_from_term_arrays(env, &keys, &values)
                .unwrap_or_else(|_| atoms::nil().encode(env))
        }
    }
}
