//! External Term Format: for every input,
//! - etf::decode never panics (whatever it refuses, it refuses with an
//!   error), nor does reading the term into typed Rust values;
//! - what decodes encodes, and the bytes decode to the same term;
//! - encoding is a fixed point: encode(decode(encode(t))) == encode(t);
//! - the term passes through serde untouched: to_term(&t) == t and
//!   from_term::<Term>(t) == t;
//! - a typed value read from the term goes back to a term that reads as
//!   the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xmpp_bridge::etf::{self, Atom, Term};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Shape {
    Empty,
    One(i64),
    Pair(u8, String),
    Named { id: u128, tags: Vec<Atom> },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Record {
    name: String,
    n: Option<i32>,
    ratio: f64,
    #[serde(with = "serde_bytes_like")]
    raw: Vec<u8>,
    shapes: Vec<Shape>,
    extra: BTreeMap<String, Term>,
}

/// `Vec<u8>` as a binary (what serde_bytes does), written here to keep
/// the fuzz crate's dependencies to serde.
mod serde_bytes_like {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

/// `T` read from `t`: if it reads, its term reads back as the same value.
fn typed<T>(t: &Term)
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let Ok(value) = etf::from_term_ref::<T>(t) else {
        return;
    };
    let again = etf::to_term(&value)
        .unwrap_or_else(|e| panic!("{value:?} read from {t:?} does not serialize: {e}"));
    let back = etf::from_term::<T>(again.clone());
    assert_eq!(
        back.as_ref(),
        Ok(&value),
        "{value:?} (read from {t:?}) became {again:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(t) = etf::decode(data) else {
        return;
    };
    let bytes = etf::encode(&t);
    assert_eq!(
        etf::decode(&bytes).as_ref(),
        Ok(&t),
        "encode(decode(x)) does not decode to the same term\ninput:  {data:?}\noutput: {bytes:?}"
    );
    assert_eq!(
        etf::encode(&etf::decode(&bytes).unwrap()),
        bytes,
        "encoding is not a fixed point"
    );

    assert_eq!(
        etf::to_term(&t).as_ref(),
        Ok(&t),
        "to_term changed the term"
    );
    assert_eq!(
        etf::from_term_ref::<Term>(&t).as_ref(),
        Ok(&t),
        "from_term changed the term"
    );
    assert_eq!(etf::from_slice::<Term>(data).as_ref(), Ok(&t));

    typed::<Record>(&t);
    typed::<Vec<Shape>>(&t);
    typed::<(Option<String>, Vec<u64>, BTreeMap<String, i8>)>(&t);
    typed::<Shape>(&t);
    let _ = etf::from_term_ref::<Vec<serde::de::IgnoredAny>>(&t);
});
