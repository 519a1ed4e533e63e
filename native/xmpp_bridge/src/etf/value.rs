//! `Term` and [`Atom`] as serde types.
//!
//! Both go through newtype structs of reserved names, which this module's
//! serializer and deserializer recognise and other formats see through:
//!
//! - serializing, a `Term` makes one serde call per kind that the
//!   serializer maps back to the same kind (`Int` an `i64`, `Binary` a
//!   string or bytes, `Tuple` a tuple, ...); atoms, big integers and
//!   improper lists, which serde has no call for, are wrapped in the
//!   reserved newtypes [`ATOM_NAME`], [`BIGINT_NAME`], [`IMPROPER_NAME`];
//! - deserializing, a `Term` asks for the newtype [`TERM_NAME`]: our
//!   deserializer answers with an enum whose variant names the kind of the
//!   term (the `KIND_*` names), then its contents; other deserializers
//!   answer with the value inside, read with `deserialize_any`.

use super::{num, Term, MAX_ATOM_CHARS};
use serde::de::{self, Deserialize, Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeTuple, Serializer};
use std::fmt;

/// The newtype an [`Atom`] (or `Term::Atom`) serializes as, and that
/// [`Atom`] asks for when deserialized.
pub(super) const ATOM_NAME: &str = "$xmpp_bridge::etf::Atom";
/// The newtype a `Term::BigInt` serializes as.
pub(super) const BIGINT_NAME: &str = "$xmpp_bridge::etf::BigInt";
/// The newtype a `Term::ImproperList` serializes as.
pub(super) const IMPROPER_NAME: &str = "$xmpp_bridge::etf::ImproperList";
/// The newtype a `Term` asks for when deserialized.
pub(super) const TERM_NAME: &str = "$xmpp_bridge::etf::Term";

const KIND_INT: &str = "$etf:int";
const KIND_BIG_POSITIVE: &str = "$etf:big+";
const KIND_BIG_NEGATIVE: &str = "$etf:big-";
const KIND_FLOAT: &str = "$etf:float";
const KIND_ATOM: &str = "$etf:atom";
const KIND_BINARY: &str = "$etf:binary";
const KIND_LIST: &str = "$etf:list";
const KIND_IMPROPER: &str = "$etf:improper";
const KIND_TUPLE: &str = "$etf:tuple";
const KIND_MAP: &str = "$etf:map";

/// The variant name our deserializer gives a term's kind. What follows it
/// is the term itself, except for a big integer (its magnitude, as bytes)
/// and an improper list (its elements then its tail, as a sequence).
pub(super) fn kind_name(term: &Term) -> &'static str {
    match term {
        Term::Int(_) => KIND_INT,
        Term::BigInt {
            negative: false, ..
        } => KIND_BIG_POSITIVE,
        Term::BigInt { negative: true, .. } => KIND_BIG_NEGATIVE,
        Term::Float(_) => KIND_FLOAT,
        Term::Atom(_) => KIND_ATOM,
        Term::Binary(_) => KIND_BINARY,
        Term::List(_) => KIND_LIST,
        Term::ImproperList(..) => KIND_IMPROPER,
        Term::Tuple(_) => KIND_TUPLE,
        Term::Map(_) => KIND_MAP,
    }
}

/// A string that is an atom on the wire: `Atom("ok".into())` is `:ok`.
///
/// With [`to_term`](super::to_term) it becomes a `Term::Atom`, and
/// [`from_term`](super::from_term) reads it from an atom only (not from a
/// binary). Other formats see a string, except for `true`, `false` and
/// `nil`, which are booleans and unit (null in JSON), as `Jason` has them.
///
/// ```
/// use serde::Serialize;
/// use xmpp_bridge::etf::{to_term, Atom, Term};
///
/// #[derive(Serialize)]
/// struct Presence {
///     show: Atom,
/// }
///
/// let t = to_term(&Presence { show: Atom::new("away") }).unwrap();
/// assert_eq!(t, Term::map(vec![(Term::atom("show"), Term::atom("away"))]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Atom(pub String);

impl Atom {
    /// The atom `name` (checked when serialized: at most 255 characters).
    pub fn new(name: impl Into<String>) -> Atom {
        Atom(name.into())
    }

    /// The atom's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Atom {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Atom {
    fn from(name: &str) -> Atom {
        Atom(name.to_owned())
    }
}

impl From<String> for Atom {
    fn from(name: String) -> Atom {
        Atom(name)
    }
}

impl PartialEq<str> for Atom {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Atom {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// An atom's name inside [`ATOM_NAME`].
struct AtomName<'a>(&'a str);

impl Serialize for AtomName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            "true" => s.serialize_bool(true),
            "false" => s.serialize_bool(false),
            "nil" => s.serialize_unit(),
            name => s.serialize_str(name),
        }
    }
}

impl Serialize for Atom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(ATOM_NAME, &AtomName(&self.0))
    }
}

struct AtomVisitor;

impl<'de> Visitor<'de> for AtomVisitor {
    type Value = Atom;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an atom")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Atom, E> {
        Ok(Atom::from(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Atom, E> {
        Ok(Atom(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Atom, E> {
        Ok(Atom::from(if v { "true" } else { "false" }))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Atom, E> {
        Ok(Atom::from("nil"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Atom, E> {
        self.visit_unit()
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Atom, D::Error> {
        d.deserialize_any(AtomVisitor)
    }
}

impl<'de> Deserialize<'de> for Atom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Atom, D::Error> {
        d.deserialize_newtype_struct(ATOM_NAME, AtomVisitor)
    }
}

/// Bigger integers than this are written in hexadecimal, not decimal,
/// when they are text (writing decimal is quadratic).
const MAX_DECIMAL_BYTES: usize = 512;

/// A big integer inside [`BIGINT_NAME`]: `u64`, `u128` or `i128` when it
/// fits, else its decimal text (hexadecimal, `0x...`, beyond 512 bytes).
struct BigRepr<'a> {
    negative: bool,
    magnitude: &'a [u8],
}

impl Serialize for BigRepr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wide = num::wide_parts(self.negative, self.magnitude);
        match wide {
            Some((false, m)) => match u64::try_from(m) {
                Ok(small) => return s.serialize_u64(small),
                Err(_) => return s.serialize_u128(m),
            },
            Some((true, m)) => {
                if let Some(i) = num::negate(m) {
                    return s.serialize_i128(i);
                }
            }
            None => {}
        }
        if self.magnitude.len() <= MAX_DECIMAL_BYTES {
            s.serialize_str(&num::to_decimal(self.negative, self.magnitude))
        } else {
            s.serialize_str(&num::to_hex(self.negative, self.magnitude))
        }
    }
}

/// An improper list inside [`IMPROPER_NAME`]: its elements, then its tail.
struct ImproperRepr<'a>(&'a [Term], &'a Term);

impl Serialize for ImproperRepr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().chain(std::iter::once(self.1)))
    }
}

impl Serialize for Term {
    /// Exact with [`to_term`](super::to_term) for every term
    /// [`decode`](super::decode) gives (a big integer built by hand is
    /// normalised, as `decode` would); the best mapping we can with other
    /// formats (see [`Term`]).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Term::Int(i) => s.serialize_i64(*i),
            Term::BigInt {
                negative,
                magnitude,
            } => s.serialize_newtype_struct(
                BIGINT_NAME,
                &BigRepr {
                    negative: *negative,
                    magnitude,
                },
            ),
            Term::Float(x) => s.serialize_f64(*x),
            Term::Atom(name) => s.serialize_newtype_struct(ATOM_NAME, &AtomName(name)),
            Term::Binary(b) => match std::str::from_utf8(b) {
                Ok(text) => s.serialize_str(text),
                Err(_) => s.serialize_bytes(b),
            },
            Term::List(items) => s.collect_seq(items),
            Term::ImproperList(items, tail) => {
                s.serialize_newtype_struct(IMPROPER_NAME, &ImproperRepr(items, tail))
            }
            Term::Tuple(items) => {
                let mut t = s.serialize_tuple(items.len())?;
                for item in items {
                    t.serialize_element(item)?;
                }
                t.end()
            }
            Term::Map(pairs) => {
                let mut m = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Term {
    /// Exact with [`from_term`](super::from_term); from other formats,
    /// the mapping of [`Term`]'s docs.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Term, D::Error> {
        d.deserialize_newtype_struct(TERM_NAME, TermVisitor)
    }
}

/// Most elements reserved ahead from a size hint (it may lie).
const MAX_PREALLOCATED: usize = 4096;

/// The kinds of term our deserializer names, and other variant names.
enum Kind {
    Int,
    BigPositive,
    BigNegative,
    Float,
    Atom,
    Binary,
    List,
    Improper,
    Tuple,
    Map,
    Other(String),
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = Kind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variant name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
                Ok(match v {
                    KIND_INT => Kind::Int,
                    KIND_BIG_POSITIVE => Kind::BigPositive,
                    KIND_BIG_NEGATIVE => Kind::BigNegative,
                    KIND_FLOAT => Kind::Float,
                    KIND_ATOM => Kind::Atom,
                    KIND_BINARY => Kind::Binary,
                    KIND_LIST => Kind::List,
                    KIND_IMPROPER => Kind::Improper,
                    KIND_TUPLE => Kind::Tuple,
                    KIND_MAP => Kind::Map,
                    other => Kind::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_identifier(KindVisitor)
    }
}

/// Bytes read as bytes (a binary's, a big integer's magnitude).
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteBuf, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = ByteBuf;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// A map's pairs, in order, duplicates kept.
struct Pairs(Vec<(Term, Term)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Pairs, A::Error> {
                Ok(Pairs(pairs(map)?))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

struct TermVisitor;

impl<'de> Visitor<'de> for TermVisitor {
    type Value = Term;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a term")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Term, E> {
        Ok(Term::from(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Term, E> {
        Ok(Term::Int(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Term, E> {
        Ok(num::from_i128(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Term, E> {
        Ok(num::from_u128(v.into()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Term, E> {
        Ok(num::from_u128(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Term, E> {
        if v.is_finite() {
            Ok(Term::Float(v))
        } else {
            Err(E::custom(super::Error::NonFinite(v)))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Term, E> {
        Ok(Term::binary(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Term, E> {
        Ok(Term::Binary(v.into_bytes()))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Term, E> {
        Ok(Term::binary(v))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Term, E> {
        Ok(Term::Binary(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Term, E> {
        Ok(Term::nil())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Term, E> {
        Ok(Term::nil())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Term, D::Error> {
        Term::deserialize(d)
    }

    /// Other formats answer [`TERM_NAME`] here.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Term, D::Error> {
        d.deserialize_any(TermVisitor)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Term, A::Error> {
        Ok(Term::List(elements(&mut seq)?))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Term, A::Error> {
        Ok(Term::Map(pairs(map)?))
    }

    /// Our deserializer answers [`TERM_NAME`] here, naming the kind of the
    /// term; an enum from another format becomes `{:variant, value}`.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Term, A::Error> {
        let (kind, v) = data.variant::<Kind>()?;
        Ok(match kind {
            Kind::Int => Term::Int(v.newtype_variant()?),
            Kind::BigPositive | Kind::BigNegative => Term::BigInt {
                negative: matches!(kind, Kind::BigNegative),
                magnitude: v.newtype_variant::<ByteBuf>()?.0,
            },
            Kind::Float => Term::Float(v.newtype_variant()?),
            Kind::Atom => Term::Atom(v.newtype_variant()?),
            Kind::Binary => Term::Binary(v.newtype_variant::<ByteBuf>()?.0),
            Kind::List => Term::List(v.newtype_variant()?),
            Kind::Tuple => Term::Tuple(v.newtype_variant()?),
            Kind::Map => Term::Map(v.newtype_variant::<Pairs>()?.0),
            Kind::Improper => {
                let mut items: Vec<Term> = v.newtype_variant()?;
                let tail = items
                    .pop()
                    .ok_or_else(|| de::Error::custom("an improper list with no tail"))?;
                Term::ImproperList(items, Box::new(tail))
            }
            Kind::Other(name) => {
                if name.chars().count() > MAX_ATOM_CHARS {
                    return Err(de::Error::custom(super::Error::AtomTooLong(
                        name.chars().count(),
                    )));
                }
                Term::Tuple(vec![Term::Atom(name), v.newtype_variant()?])
            }
        })
    }
}

fn elements<'de, A: de::SeqAccess<'de>>(seq: &mut A) -> Result<Vec<Term>, A::Error> {
    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
    while let Some(item) = seq.next_element()? {
        items.push(item);
    }
    Ok(items)
}

fn pairs<'de, A: de::MapAccess<'de>>(mut map: A) -> Result<Vec<(Term, Term)>, A::Error> {
    let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
    while let Some(pair) = map.next_entry()? {
        pairs.push(pair);
    }
    Ok(pairs)
}
