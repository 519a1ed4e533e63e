//! Terms to Rust values: a serde [`Deserializer`] over a borrowed [`Term`].

use super::error::{describe, describe_integer};
use super::value::{self, ATOM_NAME, TERM_NAME};
use super::{decode, num, Error, Term};
use serde::de::value::{BorrowedBytesDeserializer, BorrowedStrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::Deserialize;

/// The value of type `T` that `term` stands for, by the mapping of the
/// [module docs](super).
///
/// ```
/// use xmpp_bridge::etf::{from_term, Term};
///
/// // {"juliet", :capulet, [1, 2]}: binaries and atoms both read as strings.
/// let t = Term::tuple(vec![
///     Term::binary("juliet"),
///     Term::atom("capulet"),
///     Term::list(vec![Term::from(1), Term::from(2)]),
/// ]);
/// let v: (String, String, Vec<u8>) = from_term(t).unwrap();
/// assert_eq!(v, ("juliet".into(), "capulet".into(), vec![1, 2]));
///
/// let err = from_term::<u8>(Term::from(300)).unwrap_err();
/// assert_eq!(err.to_string(), "integer 300 out of range for u8");
/// ```
pub fn from_term<T: DeserializeOwned>(term: Term) -> Result<T, Error> {
    from_term_ref(&term)
}

/// [`from_term`] borrowing the term: `&str` and `&[u8]` fields point
/// into it.
pub fn from_term_ref<'de, T: Deserialize<'de>>(term: &'de Term) -> Result<T, Error> {
    T::deserialize(Deserializer::new(term))
}

/// `from_term(decode(bytes)?)`: the value of the term these bytes hold
/// (with [`decode`]'s limits and refusals).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    from_term(decode(bytes)?)
}

/// The serde deserializer behind [`from_term`], over one borrowed term.
#[derive(Debug, Clone, Copy)]
pub struct Deserializer<'de> {
    term: &'de Term,
}

impl<'de> Deserializer<'de> {
    /// A deserializer reading `term`.
    pub fn new(term: &'de Term) -> Self {
        Deserializer { term }
    }

    fn invalid(&self, expected: impl Into<String>) -> Error {
        Error::InvalidType {
            expected: expected.into(),
            found: describe(self.term),
        }
    }

    /// The integer as a `T`, if it is an integer `T` can hold.
    fn integer<T: TryFrom<i128> + TryFrom<u128>>(&self, target: &'static str) -> Result<T, Error> {
        if !matches!(self.term, Term::Int(_) | Term::BigInt { .. }) {
            return Err(self.invalid("an integer"));
        }
        let out_of_range = || Error::OutOfRange {
            value: describe_integer(self.term),
            target,
        };
        match num::wide(self.term).ok_or_else(out_of_range)? {
            (false, m) => T::try_from(m).map_err(|_| out_of_range()),
            (true, m) => {
                let i = num::negate(m).ok_or_else(out_of_range)?;
                T::try_from(i).map_err(|_| out_of_range())
            }
        }
    }

    /// A float, or an integer as the nearest float.
    fn float(&self) -> Result<f64, Error> {
        match self.term {
            Term::Float(x) => Ok(*x),
            Term::Int(i) => Ok(*i as f64),
            Term::BigInt {
                negative,
                magnitude,
            } => {
                let x = num::to_f64(*negative, magnitude);
                if x.is_finite() {
                    Ok(x)
                } else {
                    Err(Error::OutOfRange {
                        value: describe_integer(self.term),
                        target: "f64",
                    })
                }
            }
            _ => Err(self.invalid("a number")),
        }
    }

    /// The text of a binary (UTF-8) or the name of an atom.
    fn text(&self, expected: &str) -> Result<&'de str, Error> {
        match self.term {
            Term::Atom(name) => Ok(name),
            Term::Binary(b) => std::str::from_utf8(b).map_err(|_| Error::NotUtf8),
            _ => Err(self.invalid(expected)),
        }
    }
}

/// Visits `items` as a sequence, and checks the visitor took them all.
fn visit_seq<'de, V: Visitor<'de>>(items: &'de [Term], visitor: V) -> Result<V::Value, Error> {
    let mut seq = Seq::new(items.iter(), items.len());
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

/// Visits `pairs` as a map, and checks the visitor took them all.
fn visit_map<'de, V: Visitor<'de>>(
    pairs: &'de [(Term, Term)],
    visitor: V,
) -> Result<V::Value, Error> {
    let mut map = Map {
        pairs: pairs.iter(),
        value: None,
        taken: 0,
        len: pairs.len(),
    };
    let value = visitor.visit_map(&mut map)?;
    if map.taken < map.len {
        return Err(Error::InvalidLength {
            expected: format!("a map of {} entries", map.taken),
            found: map.len,
        });
    }
    Ok(value)
}

macro_rules! deserialize_integer {
    ($($method:ident => $visit:ident($t:ty)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.integer::<$t>(stringify!($t))?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Deserializer<'de> {
    type Error = Error;

    /// What a term is without a Rust type to say: integers (`i64`, else
    /// `u64`, `i128` or `u128`), floats, booleans for `true` and `false`,
    /// unit for `nil`, strings for other atoms and UTF-8 binaries, bytes
    /// for other binaries, sequences for lists and tuples, maps.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.term {
            Term::Int(i) => visitor.visit_i64(*i),
            Term::BigInt { .. } => match num::wide(self.term) {
                Some((false, m)) => match u64::try_from(m) {
                    Ok(u) => visitor.visit_u64(u),
                    Err(_) => visitor.visit_u128(m),
                },
                Some((true, m)) => match num::negate(m) {
                    Some(i) => visitor.visit_i128(i),
                    None => Err(Error::OutOfRange {
                        value: describe_integer(self.term),
                        target: "i128",
                    }),
                },
                None => Err(Error::OutOfRange {
                    value: describe_integer(self.term),
                    target: "a 128-bit integer",
                }),
            },
            Term::Float(x) => visitor.visit_f64(*x),
            Term::Atom(name) => match name.as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                "nil" => visitor.visit_unit(),
                _ => visitor.visit_borrowed_str(name),
            },
            Term::Binary(b) => match std::str::from_utf8(b) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(b),
            },
            Term::List(items) | Term::Tuple(items) => visit_seq(items, visitor),
            Term::Map(pairs) => visit_map(pairs, visitor),
            Term::ImproperList(..) => Err(self.invalid("a proper list")),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.term.as_atom() {
            Some("true") => visitor.visit_bool(true),
            Some("false") => visitor.visit_bool(false),
            _ => Err(self.invalid("a boolean (`true` or `false`)")),
        }
    }

    deserialize_integer! {
        deserialize_i8 => visit_i8(i8),
        deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64),
        deserialize_i128 => visit_i128(i128),
        deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32),
        deserialize_u64 => visit_u64(u64),
        deserialize_u128 => visit_u128(u128),
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let x = self.float()?;
        let narrow = x as f32;
        if narrow.is_infinite() {
            return Err(Error::Message(format!("float {x:?} out of range for f32")));
        }
        visitor.visit_f32(narrow)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        const EXPECTED: &str = "a single character (a binary or an atom)";
        let mut chars = self.text(EXPECTED)?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(self.invalid(EXPECTED)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.text("a string (a binary or an atom)")?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.term {
            Term::Binary(b) => visitor.visit_borrowed_bytes(b),
            _ => Err(self.invalid("a binary")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.term.is_nil() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.term.is_nil() {
            visitor.visit_unit()
        } else {
            Err(self.invalid("`nil`"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match name {
            // `Term` itself: handed over whole (see value.rs).
            TERM_NAME => visitor.visit_enum(Passthrough(self.term)),
            ATOM_NAME => match self.term {
                Term::Atom(atom) => visitor.visit_borrowed_str(atom),
                _ => Err(self.invalid("an atom")),
            },
            _ => visitor.visit_newtype_struct(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.term {
            Term::List(items) | Term::Tuple(items) => visit_seq(items, visitor),
            _ => Err(self.invalid("a list or a tuple")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let expected = || format!("a tuple of {len} elements");
        match self.term {
            Term::List(items) | Term::Tuple(items) if items.len() == len => {
                visit_seq(items, visitor)
            }
            Term::List(items) | Term::Tuple(items) => Err(Error::InvalidLength {
                expected: expected(),
                found: items.len(),
            }),
            _ => Err(self.invalid(expected())),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.term {
            Term::Map(pairs) => visit_map(pairs, visitor),
            _ => Err(self.invalid("a map")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.term {
            Term::Map(pairs) => visit_map(pairs, visitor),
            _ => Err(self.invalid(format!("a map (for struct `{name}`)"))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let is_tag = |t: &Term| matches!(t, Term::Atom(_) | Term::Binary(_));
        let (tag, payload) = match self.term {
            Term::Atom(_) | Term::Binary(_) => (self.term, Payload::None),
            Term::Tuple(items) if items.first().is_some_and(is_tag) => match &items[1..] {
                [one] => (&items[0], Payload::One(one)),
                rest => (&items[0], Payload::Many(rest)),
            },
            Term::Map(pairs) if pairs.len() == 1 && is_tag(&pairs[0].0) => {
                (&pairs[0].0, Payload::One(&pairs[0].1))
            }
            _ => {
                return Err(self.invalid(format!(
                    "an atom or a tuple tagged with one (enum `{name}`)"
                )))
            }
        };
        visitor.visit_enum(Enum {
            whole: self.term,
            tag,
            payload,
        })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.term {
            Term::Atom(name) => visitor.visit_borrowed_str(name),
            Term::Binary(b) => match std::str::from_utf8(b) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(b),
            },
            _ => Err(self.invalid("a name (an atom or a binary)")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// Elements of a list or tuple (or an improper list's elements then tail).
struct Seq<I> {
    items: I,
    taken: usize,
    len: usize,
}

impl<I> Seq<I> {
    fn new(items: I, len: usize) -> Self {
        Seq {
            items,
            taken: 0,
            len,
        }
    }

    fn end(&self) -> Result<(), Error> {
        if self.taken < self.len {
            Err(Error::InvalidLength {
                expected: format!("{} elements", self.taken),
                found: self.len,
            })
        } else {
            Ok(())
        }
    }
}

impl<'de, I: Iterator<Item = &'de Term>> de::SeqAccess<'de> for Seq<I> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some(t) => {
                self.taken += 1;
                seed.deserialize(Deserializer::new(t)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len - self.taken)
    }
}

/// Entries of a map.
struct Map<'de> {
    pairs: std::slice::Iter<'de, (Term, Term)>,
    value: Option<&'de Term>,
    taken: usize,
    len: usize,
}

impl<'de> de::MapAccess<'de> for Map<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.pairs.next() {
            Some((k, v)) => {
                self.taken += 1;
                self.value = Some(v);
                seed.deserialize(Deserializer::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Error::Message("a map value asked for before its key".into()))?;
        seed.deserialize(Deserializer::new(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len - self.taken)
    }
}

/// What follows an enum's tag: nothing (`:a`), one term (`{:b, x}` or
/// `%{b: x}`), or several (`{:c, x, y}`; `{:c}` is none of them).
enum Payload<'de> {
    None,
    One(&'de Term),
    Many(&'de [Term]),
}

/// An enum value: its tag (an atom or a binary) and what follows it.
struct Enum<'de> {
    whole: &'de Term,
    tag: &'de Term,
    payload: Payload<'de>,
}

impl Enum<'_> {
    fn name(&self) -> String {
        match self.tag {
            Term::Atom(name) => name.clone(),
            Term::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            other => describe(other),
        }
    }

    fn invalid(&self, expected: String) -> Error {
        Error::InvalidType {
            expected,
            found: describe(self.whole),
        }
    }
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let variant = seed.deserialize(Deserializer::new(self.tag))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Enum<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.payload {
            Payload::None | Payload::Many([]) => Ok(()),
            Payload::One(t) if t.is_nil() => Ok(()),
            _ => Err(self.invalid(format!("atom `{}` (a unit variant)", self.name()))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.payload {
            Payload::One(t) => seed.deserialize(Deserializer::new(t)),
            _ => Err(self.invalid(format!("a tuple `{{:{}, value}}`", self.name()))),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.payload {
            Payload::Many(rest) if rest.len() == len => visit_seq(rest, visitor),
            Payload::One(t) if len == 1 => visit_seq(std::slice::from_ref(t), visitor),
            // {:v, {a, b}} or {:v, [a, b]}
            Payload::One(Term::Tuple(items) | Term::List(items)) if items.len() == len => {
                visit_seq(items, visitor)
            }
            _ => Err(self.invalid(format!(
                "a tuple `{{:{}, ...}}` of {} elements",
                self.name(),
                len + 1
            ))),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.payload {
            Payload::One(Term::Map(pairs)) => visit_map(pairs, visitor),
            _ => Err(self.invalid(format!("a tuple `{{:{}, %{{...}}}}`", self.name()))),
        }
    }
}

/// A `Term` read by our own deserializer: the visitor of `Term` (in
/// value.rs) is told the kind of the term as an enum variant, then reads
/// its contents with no guessing.
struct Passthrough<'de>(&'de Term);

impl<'de> de::EnumAccess<'de> for Passthrough<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let kind = value::kind_name(self.0);
        let kind = seed.deserialize(BorrowedStrDeserializer::<Error>::new(kind))?;
        Ok((kind, self))
    }
}

impl<'de> de::VariantAccess<'de> for Passthrough<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Err(Error::Message("a term read as a unit variant".into()))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.0 {
            Term::BigInt { magnitude, .. } => {
                seed.deserialize(BorrowedBytesDeserializer::<Error>::new(magnitude))
            }
            Term::ImproperList(items, tail) => seed.deserialize(ImproperParts { items, tail }),
            t => seed.deserialize(Deserializer::new(t)),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Message("a term read as a tuple variant".into()))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(Error::Message("a term read as a struct variant".into()))
    }
}

/// An improper list as a sequence: its elements, then its tail.
struct ImproperParts<'de> {
    items: &'de [Term],
    tail: &'de Term,
}

impl<'de> de::Deserializer<'de> for ImproperParts<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let parts = self.items.iter().chain(std::iter::once(self.tail));
        let mut seq = Seq::new(parts, self.items.len() + 1);
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
