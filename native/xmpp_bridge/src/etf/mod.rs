//! Erlang's External Term Format (ETF), read defensively: the format of
//! the term payload (docs/PROTOCOL.md §2), whose bytes come from any peer.
//!
//! [`decode`] turns bytes into a [`Term`] and refuses, with an error that
//! names it, everything that means nothing across the bus or could hurt
//! the reader: pids, ports, references, funs, bit strings that are not
//! whole bytes, compressed terms (a zlib bomb), distribution headers, and
//! input that lies about its sizes. Atoms stay strings here: whoever turns
//! a `Term` into a live term decides what an atom the VM does not know
//! becomes. [`encode`] writes what `term_to_binary/1` writes for the same
//! term (minimal integer forms, `NEW_FLOAT_EXT`, `STRING_EXT` for lists of
//! bytes, UTF-8 atoms as OTP 26 writes them).
//!
//! # Serde
//!
//! [`to_term`] and [`from_term`] (and [`to_vec`] and [`from_slice`], the same
//! through bytes) map Rust values to the terms an Elixir peer would write
//! for them: structs are maps with atom keys, unit variants are atoms,
//! other variants tagged tuples, `None` is `nil`, strings are binaries.
//! [`Atom`] is a string sent as an atom, and a [`Term`] field passes
//! through untouched. The full table is in docs/PROTOCOL.md; in short:
//!
//! | Rust | term |
//! |------|------|
//! | `bool`, `None`, `()` | `true`/`false`, `nil`, `nil` |
//! | integers, floats | integers (big ones beyond 64 bits), floats |
//! | `String`, `char`, bytes | binaries |
//! | `Vec`, sets; tuples | lists; tuples |
//! | maps; structs | maps; maps with atom keys |
//! | `E::A`, `E::B(x)`, `E::C(x, y)`, `E::D { f }` | `:a`, `{:b, x}`, `{:c, x, y}`, `{:d, %{f: ..}}` |
//!
//! Reading is liberal where nothing is ambiguous: a string reads from a
//! binary or an atom, a struct from a map with atom or binary keys
//! (unknown keys, such as `__struct__`, are ignored), a sequence from a
//! list or a tuple, an `Option` is `None` for `nil` and `undefined`.
//! Both sides say they are human-readable, so types with two forms (IP
//! addresses, UUIDs, times) take their text form.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use xmpp_bridge::etf::{self, Term};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(rename_all = "snake_case")]
//! enum Status {
//!     Online,
//!     Away { since: u64 },
//! }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct User {
//!     name: String,
//!     status: Status,
//! }
//!
//! # fn main() -> Result<(), etf::Error> {
//! let user = User { name: "juliet".into(), status: Status::Online };
//! // %{name: "juliet", status: :online}
//! assert_eq!(
//!     etf::to_term(&user)?,
//!     Term::map(vec![
//!         (Term::atom("name"), Term::binary("juliet")),
//!         (Term::atom("status"), Term::atom("online")),
//!     ])
//! );
//! let bytes = etf::to_vec(&user)?;
//! assert_eq!(etf::from_slice::<User>(&bytes)?, user);
//!
//! // What an Elixir peer sends: %User{name: "romeo", status: {:away, %{since: 12}}}
//! let sent = Term::map(vec![
//!     (Term::atom("__struct__"), Term::atom("Elixir.User")),
//!     (Term::atom("name"), Term::binary("romeo")),
//!     (
//!         Term::atom("status"),
//!         Term::tuple(vec![
//!             Term::atom("away"),
//!             Term::map(vec![(Term::atom("since"), Term::from(12))]),
//!         ]),
//!     ),
//! ]);
//! let romeo: User = etf::from_term(sent)?;
//! assert_eq!(romeo.status, Status::Away { since: 12 });
//! # Ok(())
//! # }
//! ```
//!
//! This is the groundwork of the bus's terms (issue "The bus, part 1"):
//! not yet used by the NIF, which still reads term payloads with
//! `binary_to_term(bytes, [:safe])`.

mod codec;
mod de;
mod error;
mod num;
mod ser;
mod value;

#[cfg(test)]
mod serde_tests;

pub use codec::{decode, decode_with, encode, EtfError, DEFAULT_MAX_DEPTH, VERSION};
pub use de::{from_slice, from_term, from_term_ref, Deserializer};
pub use error::Error;
pub use ser::{to_term, to_vec, Serializer};
pub use value::Atom;

/// The most characters an atom may have.
pub const MAX_ATOM_CHARS: usize = 255;

/// A term as ETF carries it, minus what cannot cross the bus.
///
/// [`decode`] gives canonical terms: `BigInt` only beyond 64 bits with no
/// trailing zero byte, `ImproperList` only with elements and a tail that
/// is not a list. Terms built by hand may break these rules; [`encode`]
/// writes them as they are and reading the bytes back gives the canonical
/// form, as `binary_to_term/1` would.
///
/// `Term` is also a serde type: with this module's [`to_term`] and
/// [`from_term`] it passes through exactly as it is (so a struct can have a
/// field of any term). With other formats it maps as `Jason` would:
/// integers and floats are numbers (integers beyond 128 bits are decimal
/// strings), `true`/`false`/`nil` are booleans and null, other atoms and
/// UTF-8 binaries are strings, other binaries bytes, lists and tuples
/// sequences (an improper list is its elements then its tail), maps maps.
/// Read from another format, strings become binaries, null `nil`, and
/// sequences lists.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An integer beyond 64 bits: sign and magnitude, little-endian bytes
    /// with no trailing zero byte.
    BigInt {
        negative: bool,
        magnitude: Vec<u8>,
    },
    /// A float (always finite: ETF cannot carry NaN or infinities).
    Float(f64),
    /// An atom, by name (UTF-8; Latin-1 atoms are converted).
    Atom(String),
    Binary(Vec<u8>),
    /// A proper list (`[]` is the empty one).
    List(Vec<Term>),
    /// A list whose tail is not `[]`: `[1, 2 | 3]` is
    /// `ImproperList(vec![1, 2], 3)`.
    ImproperList(Vec<Term>, Box<Term>),
    Tuple(Vec<Term>),
    /// Key/value pairs, in the order they were read.
    Map(Vec<(Term, Term)>),
}

impl Term {
    /// The atom `name` (not checked: an atom of more than
    /// [`MAX_ATOM_CHARS`] characters cannot be encoded).
    pub fn atom(name: impl Into<String>) -> Term {
        Term::Atom(name.into())
    }

    /// The atom `nil`: Elixir's `nil`, what `None` and `()` become (not
    /// Erlang's `[]`, which is `Term::List(vec![])`).
    pub fn nil() -> Term {
        Term::atom("nil")
    }

    /// A binary: `Term::binary("text")`, `Term::binary(vec![0, 1])`.
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Term {
        Term::Binary(bytes.into())
    }

    /// A tuple: `Term::tuple(vec![Term::atom("ok"), Term::from(1)])`.
    pub fn tuple(items: Vec<Term>) -> Term {
        Term::Tuple(items)
    }

    /// A proper list.
    pub fn list(items: Vec<Term>) -> Term {
        Term::List(items)
    }

    /// A map of these pairs, in this order.
    pub fn map(pairs: Vec<(Term, Term)>) -> Term {
        Term::Map(pairs)
    }

    /// The atom's name, if this is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(name) => Some(name),
            _ => None,
        }
    }

    /// The binary's bytes, if this is a binary.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Term::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The binary as text, if this is a UTF-8 binary.
    pub fn as_str(&self) -> Option<&str> {
        self.as_binary().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer, if this is an integer that fits in 64 bits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Term::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// True for the atoms `nil` and `undefined` (what reads as `None`).
    pub fn is_nil(&self) -> bool {
        matches!(self.as_atom(), Some("nil" | "undefined"))
    }
}

macro_rules! from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Term {
            fn from(i: $t) -> Term {
                Term::Int(i64::from(i))
            }
        }
    )*};
}
from_small_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Term {
    /// `Int`, or `BigInt` beyond `i64::MAX`.
    fn from(i: u64) -> Term {
        num::from_u128(u128::from(i))
    }
}

impl From<i128> for Term {
    /// `Int` when it fits in 64 bits, else `BigInt`.
    fn from(i: i128) -> Term {
        num::from_i128(i)
    }
}

impl From<u128> for Term {
    /// `Int` when it fits in 64 bits, else `BigInt`.
    fn from(i: u128) -> Term {
        num::from_u128(i)
    }
}

impl From<f64> for Term {
    /// Not checked: a non-finite float cannot be encoded.
    fn from(f: f64) -> Term {
        Term::Float(f)
    }
}

impl From<bool> for Term {
    /// The atom `true` or `false`.
    fn from(b: bool) -> Term {
        Term::atom(if b { "true" } else { "false" })
    }
}

impl From<&str> for Term {
    /// A binary (UTF-8).
    fn from(s: &str) -> Term {
        Term::binary(s)
    }
}

impl From<String> for Term {
    /// A binary (UTF-8).
    fn from(s: String) -> Term {
        Term::Binary(s.into_bytes())
    }
}

impl From<Atom> for Term {
    fn from(a: Atom) -> Term {
        Term::Atom(a.0)
    }
}

impl From<Vec<Term>> for Term {
    /// A proper list.
    fn from(items: Vec<Term>) -> Term {
        Term::List(items)
    }
}
