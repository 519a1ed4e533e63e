//! Errors of the codec. Every variant names the problem so callers (and the
//! BEAM side, which turns each into `{atom, detail}`) can match on it.

use std::fmt;

/// A construct that RFC 6120 §11.1 forbids in an XMPP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// `<!DOCTYPE ...>` and therefore any entity declaration (billion laughs).
    Dtd,
    /// `<!-- ... -->`
    Comment,
    /// `<?target ...?>` other than the XML declaration at the start.
    ProcessingInstruction,
}

impl Forbidden {
    pub fn as_str(self) -> &'static str {
        match self {
            Forbidden::Dtd => "dtd",
            Forbidden::Comment => "comment",
            Forbidden::ProcessingInstruction => "processing_instruction",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed XML: {0}")]
    MalformedXml(String),
    #[error("invalid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    #[error("forbidden XML construct: {}", .0.as_str())]
    ForbiddenXml(Forbidden),
    #[error("undefined entity &{0};")]
    UndefinedEntity(String),
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    #[error("stanza larger than {0} bytes")]
    TooLarge(usize),
    #[error("unknown element <{0}>")]
    UnknownElement(String),
    #[error("bad namespace {0:?}")]
    BadNamespace(String),
    /// Not a JID (RFC 7622): `part` is empty, too long, or holds what its
    /// profile refuses.
    #[error("invalid JID {jid:?}: bad {part}")]
    InvalidJid {
        jid: String,
        part: crate::jid::JidPart,
    },
    #[error("invalid value {value:?} for attribute {attribute} of <{element}>")]
    InvalidValue {
        element: String,
        attribute: String,
        value: String,
    },
    #[error("missing attribute {attribute} on <{element}>")]
    MissingAttribute { element: String, attribute: String },
    #[error("invalid IQ: {0}")]
    InvalidIq(String),
    #[error("character U+{0:04X} cannot be carried by XML 1.0")]
    InvalidXmlChar(u32),
    #[error("stream parser already failed: {0}")]
    ParserFailed(Box<Error>),
}

impl Error {
    pub(crate) fn malformed(detail: impl fmt::Display) -> Self {
        Error::MalformedXml(detail.to_string())
    }

    pub(crate) fn invalid_value(element: &str, attribute: &str, value: &str) -> Self {
        Error::InvalidValue {
            element: element.to_owned(),
            attribute: attribute.to_owned(),
            value: value.to_owned(),
        }
    }

    pub(crate) fn missing_attribute(element: &str, attribute: &str) -> Self {
        Error::MissingAttribute {
            element: element.to_owned(),
            attribute: attribute.to_owned(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
