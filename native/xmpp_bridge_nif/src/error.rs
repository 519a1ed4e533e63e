//! Error reasons as terms: an atom or `{atom, detail}` (for an invalid JID
//! `{:invalid_jid, {jid, part}}`).

use crate::atoms;
use rustler::{Atom, Encoder, Env, Term};
use xmpp_bridge::jid::JidPart;
use xmpp_bridge::Error;

/// An error of the codec, or a term that does not have the expected shape.
#[derive(Debug)]
pub enum NifError {
    Codec(Error),
    /// `{:invalid_field, {module, field}}`: encode met a field of the wrong type.
    InvalidField(Atom, Atom),
    /// `{:invalid_json, detail}`
    InvalidJson(String),
    /// `{:not_portable, what}`: a term payload holding a pid, port,
    /// reference, fun or bit string, which cannot cross the bus.
    NotPortable(String),
    /// Not an error: the work is too big for a normal scheduler and the
    /// caller should run the dirty variant (the NIF returns `:dirty`).
    Reschedule,
}

impl From<Error> for NifError {
    fn from(e: Error) -> Self {
        NifError::Codec(e)
    }
}

pub type NifResult<T> = Result<T, NifError>;

pub fn invalid(module: Atom, field: Atom) -> NifError {
    NifError::InvalidField(module, field)
}

impl NifError {
    pub fn to_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            NifError::Codec(e) => codec_reason(env, e),
            NifError::InvalidField(m, f) => (atoms::invalid_field(), (*m, *f)).encode(env),
            NifError::InvalidJson(d) => (atoms::invalid_json(), d.as_str()).encode(env),
            NifError::NotPortable(d) => (atoms::not_portable(), d.as_str()).encode(env),
            NifError::Reschedule => atoms::dirty().encode(env),
        }
    }
}

fn codec_reason<'a>(env: Env<'a>, e: &Error) -> Term<'a> {
    match e {
        Error::MalformedXml(d) => (atoms::malformed_xml(), d.as_str()).encode(env),
        Error::InvalidUtf8(at) => (atoms::invalid_utf8(), *at).encode(env),
        Error::ForbiddenXml(f) => {
            let what = Atom::from_str(env, f.as_str()).expect("atom");
            (atoms::forbidden_xml(), what).encode(env)
        }
        Error::UndefinedEntity(n) => (atoms::undefined_entity(), n.as_str()).encode(env),
        Error::TooDeep(n) => (atoms::too_deep(), *n).encode(env),
        Error::TooLarge(n) => (atoms::too_large(), *n).encode(env),
        Error::UnknownElement(n) => (atoms::unknown_element(), n.as_str()).encode(env),
        Error::BadNamespace(n) => (atoms::bad_namespace(), n.as_str()).encode(env),
        Error::InvalidJid { jid, part } => {
            let part = match part {
                JidPart::Localpart => atoms::localpart(),
                JidPart::Domainpart => atoms::domainpart(),
                JidPart::Resourcepart => atoms::resourcepart(),
            };
            (atoms::invalid_jid(), (jid.as_str(), part)).encode(env)
        }
        Error::InvalidValue {
            element,
            attribute,
            value,
        } => (
            atoms::invalid_value(),
            (element.as_str(), attribute.as_str(), value.as_str()),
        )
            .encode(env),
        Error::MissingAttribute { element, attribute } => (
            atoms::missing_attribute(),
            (element.as_str(), attribute.as_str()),
        )
            .encode(env),
        Error::InvalidIq(d) => (atoms::invalid_iq(), d.as_str()).encode(env),
        Error::InvalidXmlChar(c) => (atoms::invalid_xml_char(), *c).encode(env),
        Error::ParserFailed(inner) => {
            (atoms::parser_failed(), codec_reason(env, inner)).encode(env)
        }
    }
}
