//! Why a value cannot become a term, or a term the value asked for.

use super::{num, EtfError, Term};
use std::fmt;

/// Why [`to_term`](super::to_term) or [`from_term`](super::from_term) (and
/// their byte forms) failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a term ([`from_slice`](super::from_slice)).
    Decode(EtfError),
    /// A term of the wrong kind: "expected an integer, found atom `foo`".
    InvalidType {
        /// What the Rust type asked for.
        expected: String,
        /// The term found instead, described.
        found: String,
    },
    /// A tuple or list of the wrong length: "expected a tuple of 3
    /// elements, found 2 elements".
    InvalidLength {
        /// What the Rust type asked for.
        expected: String,
        /// How many elements the term has.
        found: usize,
    },
    /// An integer the Rust type cannot hold: "integer 300 out of range for
    /// u8".
    OutOfRange {
        /// The integer, in decimal (or its size when it is huge).
        value: String,
        /// The Rust type.
        target: &'static str,
    },
    /// A binary read as text that is not UTF-8.
    NotUtf8,
    /// A float ETF cannot carry: NaN or an infinity.
    NonFinite(f64),
    /// An atom of more than 255 characters (the number it has).
    AtomTooLong(usize),
    /// Anything else serde or a type's own code reports: a missing field,
    /// an unknown variant, ...
    Message(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => write!(f, "not a valid term: {e}"),
            Error::InvalidType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            Error::InvalidLength { expected, found } => {
                write!(f, "expected {expected}, found {found} elements")
            }
            Error::OutOfRange { value, target } => {
                write!(f, "integer {value} out of range for {target}")
            }
            Error::NotUtf8 => f.write_str("binary is not UTF-8"),
            Error::NonFinite(x) => write!(f, "float {x} cannot be carried by ETF"),
            Error::AtomTooLong(n) => write!(
                f,
                "an atom of {n} characters (atoms have at most {})",
                super::MAX_ATOM_CHARS
            ),
            Error::Message(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EtfError> for Error {
    fn from(e: EtfError) -> Self {
        Error::Decode(e)
    }
}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Message(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Message(msg.to_string())
    }

    fn invalid_type(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        Error::InvalidType {
            expected: exp.to_string(),
            found: unexp.to_string(),
        }
    }

    fn invalid_length(len: usize, exp: &dyn serde::de::Expected) -> Self {
        Error::InvalidLength {
            expected: exp.to_string(),
            found: len,
        }
    }
}

/// Integers of more bytes than this are described by their size.
const MAX_DESCRIBED_BYTES: usize = 64;
/// Binaries of more characters than this are described by their size.
const MAX_DESCRIBED_CHARS: usize = 40;

/// An integer term, in decimal (or by its size when huge).
pub(super) fn describe_integer(term: &Term) -> String {
    match term {
        Term::Int(i) => i.to_string(),
        Term::BigInt {
            negative,
            magnitude,
        } if magnitude.len() <= MAX_DESCRIBED_BYTES => num::to_decimal(*negative, magnitude),
        Term::BigInt {
            negative,
            magnitude,
        } => format!(
            "{}(an integer of {} bytes)",
            if *negative { "-" } else { "" },
            magnitude.len()
        ),
        other => describe(other),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A term described for an error message: "atom `foo`", "integer 3",
/// "a tuple of 2 elements", ...
pub(super) fn describe(term: &Term) -> String {
    match term {
        Term::Int(_) | Term::BigInt { .. } => format!("integer {}", describe_integer(term)),
        Term::Float(x) => format!("float {x:?}"),
        Term::Atom(name) => format!("atom `{name}`"),
        Term::Binary(b) => match std::str::from_utf8(b) {
            Ok(s) if s.chars().count() <= MAX_DESCRIBED_CHARS => format!("binary {s:?}"),
            _ => format!("a binary of {}", plural(b.len(), "byte", "bytes")),
        },
        Term::List(items) if items.is_empty() => "an empty list `[]`".into(),
        Term::List(items) => format!("a list of {}", plural(items.len(), "element", "elements")),
        Term::ImproperList(items, _) => format!(
            "an improper list (of {} and a tail)",
            plural(items.len(), "element", "elements")
        ),
        Term::Tuple(items) => format!("a tuple of {}", plural(items.len(), "element", "elements")),
        Term::Map(pairs) => format!("a map of {}", plural(pairs.len(), "entry", "entries")),
    }
}
