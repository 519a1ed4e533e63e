//! Application data carried as an element's text: XEP-0335 JSON and
//! xmpp_bridge's own term payload (the Base64 of the External Term Format,
//! docs/PROTOCOL.md). Both are one text-only element in their namespace.

use super::Payload;
use crate::error::Result;
use crate::ns;
use crate::stanza::{only_attrs, text_only};
use crate::xml::{write_text_el, Element};
use base64::Engine;
use std::borrow::Cow;

/// `<json/>` in the XEP-0335 namespace: its text as it is.
pub(super) fn decode_json<'a>(el: &Element<'a>) -> Option<Payload<'a>> {
    if !(el.name == "json" && only_attrs(el, true, &[])) {
        return None;
    }
    Some(Payload::Json(text_only(el)?))
}

/// `<term/>` in the term namespace: its text decoded from Base64.
pub(super) fn decode_term<'a>(el: &Element<'a>) -> Option<Payload<'a>> {
    if !(el.name == "term" && only_attrs(el, true, &[])) {
        return None;
    }
    let b64 = text_only(el)?;
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()
        .map(|b| Payload::Term(Cow::Owned(b)))
}

pub(super) fn write_json(out: &mut Vec<u8>, json: &str) -> Result<()> {
    write_text_el(out, "json", &[("xmlns", Some(ns::JSON))], json)
}

pub(super) fn write_term(out: &mut Vec<u8>, etf: &[u8]) -> Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(etf);
    write_text_el(out, "term", &[("xmlns", Some(ns::TERM))], &b64)
}
