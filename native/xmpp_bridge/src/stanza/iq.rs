//! `<iq/>` (RFC 6120 §8.2.3): one payload (none in a result), and an error
//! in an IQ of type error.

use super::{decode_payload, is_ws, stanza_error, write_head, Child, Common, Payload, StanzaError};
use crate::error::{Error, Result};
use crate::xml::{close_tag, Element, Node, Str};

str_enum!(IqType { Get = "get", Set = "set", Result = "result", Error = "error" });

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iq<'a> {
    pub id: Str<'a>,
    pub type_: IqType,
    pub from: Option<Str<'a>>,
    pub to: Option<Str<'a>>,
    pub lang: Option<Str<'a>>,
    pub payload: Option<Payload<'a>>,
    pub error: Option<StanzaError<'a>>,
    pub attrs: Vec<(Str<'a>, Str<'a>)>,
}

/// What an IQ must have, checked before it is decoded: a known `type`, an
/// `id`, and the children its type allows; returns the type.
pub(super) fn check(
    el: &Element<'_>,
    type_attr: Option<&str>,
    common: &Common<'_>,
    ns: &str,
) -> Result<IqType> {
    let t = type_attr.ok_or_else(|| Error::missing_attribute("iq", "type"))?;
    let type_ = IqType::parse(t).ok_or_else(|| Error::invalid_value("iq", "type", t))?;
    if common.id.is_none() {
        return Err(Error::missing_attribute("iq", "id"));
    }
    check_children(el, type_, ns)?;
    Ok(type_)
}

/// The error child of an IQ, if it has one we can type.
fn error_index(el: &Element<'_>, type_: IqType, ns: &str) -> Option<usize> {
    if type_ != IqType::Error {
        return None;
    }
    el.elements()
        .position(|c| c.name == "error" && stanza_error::decode(c, ns).is_some())
}

fn check_children(el: &Element<'_>, type_: IqType, ns: &str) -> Result<()> {
    if type_ == IqType::Error
        && el
            .elements()
            .filter(|c| c.name == "error" && stanza_error::decode(c, ns).is_some())
            .count()
            > 1
    {
        return Err(Error::InvalidIq(
            "an IQ carries two <error/> elements".into(),
        ));
    }
    if el
        .children
        .iter()
        .any(|c| matches!(c, Node::Text(t) if !is_ws(t)))
    {
        return Err(Error::InvalidIq("text directly inside an IQ".into()));
    }
    let has_error = error_index(el, type_, ns).is_some();
    let n = el.elements().count() - usize::from(has_error);
    let ok = match type_ {
        IqType::Get | IqType::Set => n == 1,
        IqType::Result | IqType::Error => n <= 1,
    };
    if !ok {
        return Err(Error::InvalidIq(format!(
            "an IQ of type {} carries {} payload element(s)",
            type_.as_str(),
            n
        )));
    }
    if type_ == IqType::Error && !has_error {
        return Err(Error::InvalidIq(
            "an IQ of type error has no <error/>".into(),
        ));
    }
    Ok(())
}

/// The IQ from its checked parts (see `check`).
pub(super) fn decode<'a>(
    c: Common<'a>,
    type_: IqType,
    children: impl Iterator<Item = Child<'a>>,
    ns: &str,
) -> Iq<'a> {
    let mut payload = None;
    let mut error = None;
    // check_children refused IQs with text in them.
    for el in children.filter_map(|c| c.ok()) {
        if type_ == IqType::Error && error.is_none() && el.name == "error" {
            if let Some(e) = stanza_error::decode(&el, ns) {
                error = Some(e);
                continue;
            }
        }
        payload = Some(decode_payload(el, ns));
    }
    Iq {
        id: c.id.unwrap_or_default(),
        type_,
        from: c.from,
        to: c.to,
        lang: c.lang,
        payload,
        error,
        attrs: c.attrs,
    }
}

impl Iq<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        match (self.type_, &self.payload, &self.error) {
            (IqType::Get | IqType::Set, None, _) => {
                return Err(Error::InvalidIq(format!(
                    "an IQ of type {} needs a payload",
                    self.type_.as_str()
                )))
            }
            (IqType::Error, _, None) => {
                return Err(Error::InvalidIq(
                    "an IQ of type error needs an error".into(),
                ))
            }
            _ => {}
        }
        let mut t = write_head(
            out,
            "iq",
            Some(&self.id),
            Some(self.type_.as_str()),
            &self.from,
            &self.to,
            &self.lang,
            &self.attrs,
        )?;
        if self.payload.is_none() && self.error.is_none() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        if let Some(p) = &self.payload {
            p.write_to(out)?;
        }
        if let Some(e) = &self.error {
            e.write_to(out)?;
        }
        close_tag(out, "iq");
        Ok(())
    }
}
