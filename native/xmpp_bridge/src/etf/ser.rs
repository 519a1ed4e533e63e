//! Rust values to terms: a serde [`Serializer`] whose output is a [`Term`].

use super::value::{ATOM_NAME, BIGINT_NAME, IMPROPER_NAME};
use super::{encode, num, Error, Term, MAX_ATOM_CHARS};
use serde::ser::{self, Serialize};

/// The term for `value`, by the mapping of the [module docs](super).
///
/// Fails on floats that are not finite, atoms (field and variant names,
/// [`Atom`](super::Atom)s) of more than 255 characters, and whatever the
/// value's own `Serialize` reports.
///
/// ```
/// use xmpp_bridge::etf::{to_term, Term};
///
/// let t = to_term(&(Some("x"), None::<u8>, vec![1u128 << 64])).unwrap();
/// assert_eq!(
///     t,
///     Term::tuple(vec![
///         Term::binary("x"),
///         Term::nil(),
///         Term::list(vec![Term::from(1u128 << 64)]),
///     ])
/// );
/// ```
pub fn to_term<T: Serialize + ?Sized>(value: &T) -> Result<Term, Error> {
    value.serialize(Serializer)
}

/// `encode(&to_term(value)?)`: the bytes `term_to_binary/1` gives for the
/// term an Elixir peer would write for `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    Ok(encode(&to_term(value)?))
}

/// The serde serializer behind [`to_term`]: it writes nothing, each call
/// returns the [`Term`] of the value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serializer;

/// The atom `name`, if it is not too long.
pub(super) fn atom(name: &str) -> Result<Term, Error> {
    // Quick check in bytes first: 255 characters are at most 1020 bytes.
    if name.len() > MAX_ATOM_CHARS {
        let chars = name.chars().count();
        if chars > MAX_ATOM_CHARS {
            return Err(Error::AtomTooLong(chars));
        }
    }
    Ok(Term::Atom(name.to_owned()))
}

fn float(x: f64) -> Result<Term, Error> {
    if x.is_finite() {
        Ok(Term::Float(x))
    } else {
        Err(Error::NonFinite(x))
    }
}

/// What an [`Atom`](super::Atom) (or `Term::Atom`) serializes to inside its
/// reserved newtype: a string, or the booleans and unit for `true`,
/// `false` and `nil`.
fn captured_atom(inner: Term) -> Result<Term, Error> {
    match inner {
        Term::Binary(b) => {
            let name = String::from_utf8(b).map_err(|_| Error::NotUtf8)?;
            atom(&name)
        }
        Term::Atom(a) if matches!(a.as_str(), "true" | "false" | "nil") => Ok(Term::Atom(a)),
        other => Err(Error::InvalidType {
            expected: "an atom name (a string)".into(),
            found: super::error::describe(&other),
        }),
    }
}

/// What a big integer serializes to inside its reserved newtype: an
/// integer, or its decimal or hexadecimal text.
fn captured_bigint(inner: Term) -> Result<Term, Error> {
    match inner {
        int @ (Term::Int(_) | Term::BigInt { .. }) => Ok(int),
        Term::Binary(b) => match std::str::from_utf8(&b).ok().and_then(num::parse) {
            Some(int) => Ok(int),
            None => Err(Error::InvalidType {
                expected: "an integer in decimal or hexadecimal".into(),
                found: super::error::describe(&Term::Binary(b)),
            }),
        },
        other => Err(Error::InvalidType {
            expected: "an integer".into(),
            found: super::error::describe(&other),
        }),
    }
}

/// What an improper list serializes to inside its reserved newtype: its
/// elements, then its tail.
fn captured_improper(inner: Term) -> Result<Term, Error> {
    match inner {
        Term::List(mut items) => match items.pop() {
            Some(tail) => Ok(Term::ImproperList(items, Box::new(tail))),
            None => Err(Error::InvalidLength {
                expected: "an improper list's elements and tail".into(),
                found: 0,
            }),
        },
        other => Err(Error::InvalidType {
            expected: "an improper list's elements and tail".into(),
            found: super::error::describe(&other),
        }),
    }
}

impl ser::Serializer for Serializer {
    type Ok = Term;
    type Error = Error;
    type SerializeSeq = SerializeVec;
    type SerializeTuple = SerializeVec;
    type SerializeTupleStruct = SerializeVec;
    type SerializeTupleVariant = SerializeTupleVariant;
    type SerializeMap = SerializeMap;
    type SerializeStruct = SerializeStruct;
    type SerializeStructVariant = SerializeStructVariant;

    fn serialize_bool(self, v: bool) -> Result<Term, Error> {
        Ok(Term::from(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Term, Error> {
        Ok(Term::Int(v.into()))
    }

    fn serialize_i16(self, v: i16) -> Result<Term, Error> {
        Ok(Term::Int(v.into()))
    }

    fn serialize_i32(self, v: i32) -> Result<Term, Error> {
        Ok(Term::Int(v.into()))
    }

    fn serialize_i64(self, v: i64) -> Result<Term, Error> {
        Ok(Term::Int(v))
    }

    fn serialize_i128(self, v: i128) -> Result<Term, Error> {
        Ok(num::from_i128(v))
    }

    fn serialize_u8(self, v: u8) -> Result<Term, Error> {
        Ok(Term::Int(v.into()))
    }

    fn serialize_u16(self, v: u16) -> Result<Term, Error> {
        Ok(Term::Int(v.into()))
    }

    fn serialize_u32(self, v: u32) -> Result<Term, Error> {
        Ok(Term::Int(v.into()))
    }

    fn serialize_u64(self, v: u64) -> Result<Term, Error> {
        Ok(num::from_u128(v.into()))
    }

    fn serialize_u128(self, v: u128) -> Result<Term, Error> {
        Ok(num::from_u128(v))
    }

    fn serialize_f32(self, v: f32) -> Result<Term, Error> {
        float(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<Term, Error> {
        float(v)
    }

    fn serialize_char(self, v: char) -> Result<Term, Error> {
        Ok(Term::binary(v.encode_utf8(&mut [0; 4]).as_bytes()))
    }

    fn serialize_str(self, v: &str) -> Result<Term, Error> {
        Ok(Term::binary(v))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Term, Error> {
        Ok(Term::binary(v))
    }

    fn serialize_none(self) -> Result<Term, Error> {
        Ok(Term::nil())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Term, Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Term, Error> {
        Ok(Term::nil())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Term, Error> {
        Ok(Term::nil())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Term, Error> {
        atom(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Term, Error> {
        let inner = value.serialize(self)?;
        match name {
            ATOM_NAME => captured_atom(inner),
            BIGINT_NAME => captured_bigint(inner),
            IMPROPER_NAME => captured_improper(inner),
            _ => Ok(inner),
        }
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Term, Error> {
        Ok(Term::Tuple(vec![atom(variant)?, value.serialize(self)?]))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SerializeVec, Error> {
        Ok(SerializeVec {
            items: Vec::with_capacity(len.unwrap_or(0)),
            tuple: false,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<SerializeVec, Error> {
        Ok(SerializeVec {
            items: Vec::with_capacity(len),
            tuple: true,
        })
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SerializeVec, Error> {
        self.serialize_tuple(len)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeTupleVariant, Error> {
        let mut items = Vec::with_capacity(len + 1);
        items.push(atom(variant)?);
        Ok(SerializeTupleVariant { items })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<SerializeMap, Error> {
        Ok(SerializeMap {
            pairs: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<SerializeStruct, Error> {
        Ok(SerializeStruct {
            pairs: Vec::with_capacity(len),
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SerializeStructVariant, Error> {
        Ok(SerializeStructVariant {
            tag: atom(variant)?,
            fields: SerializeStruct {
                pairs: Vec::with_capacity(len),
            },
        })
    }
}

/// Sequences (a list) and tuples (a tuple), while they are serialized.
#[derive(Debug)]
pub struct SerializeVec {
    items: Vec<Term>,
    tuple: bool,
}

impl SerializeVec {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.items.push(value.serialize(Serializer)?);
        Ok(())
    }

    fn finish(self) -> Term {
        if self.tuple {
            Term::Tuple(self.items)
        } else {
            Term::List(self.items)
        }
    }
}

impl ser::SerializeSeq for SerializeVec {
    type Ok = Term;
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }

    fn end(self) -> Result<Term, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SerializeVec {
    type Ok = Term;
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }

    fn end(self) -> Result<Term, Error> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SerializeVec {
    type Ok = Term;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.push(value)
    }

    fn end(self) -> Result<Term, Error> {
        Ok(self.finish())
    }
}

/// A tuple variant, `{:variant, a, b}`, while it is serialized.
#[derive(Debug)]
pub struct SerializeTupleVariant {
    items: Vec<Term>,
}

impl ser::SerializeTupleVariant for SerializeTupleVariant {
    type Ok = Term;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.items.push(value.serialize(Serializer)?);
        Ok(())
    }

    fn end(self) -> Result<Term, Error> {
        Ok(Term::Tuple(self.items))
    }
}

/// A map while it is serialized.
#[derive(Debug)]
pub struct SerializeMap {
    pairs: Vec<(Term, Term)>,
    key: Option<Term>,
}

impl ser::SerializeMap for SerializeMap {
    type Ok = Term;
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(Serializer)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::Message("a map value serialized before its key".into()))?;
        self.pairs.push((key, value.serialize(Serializer)?));
        Ok(())
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), Error> {
        let key = key.serialize(Serializer)?;
        self.pairs.push((key, value.serialize(Serializer)?));
        Ok(())
    }

    fn end(self) -> Result<Term, Error> {
        Ok(Term::Map(self.pairs))
    }
}

/// A struct, a map with atom keys, while it is serialized.
#[derive(Debug)]
pub struct SerializeStruct {
    pairs: Vec<(Term, Term)>,
}

impl ser::SerializeStruct for SerializeStruct {
    type Ok = Term;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.pairs.push((atom(key)?, value.serialize(Serializer)?));
        Ok(())
    }

    fn end(self) -> Result<Term, Error> {
        Ok(Term::Map(self.pairs))
    }
}

/// A struct variant, `{:variant, %{field: ..}}`, while it is serialized.
#[derive(Debug)]
pub struct SerializeStructVariant {
    tag: Term,
    fields: SerializeStruct,
}

impl ser::SerializeStructVariant for SerializeStructVariant {
    type Ok = Term;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(&mut self.fields, key, value)
    }

    fn end(self) -> Result<Term, Error> {
        Ok(Term::Tuple(vec![self.tag, Term::Map(self.fields.pairs)]))
    }
}
