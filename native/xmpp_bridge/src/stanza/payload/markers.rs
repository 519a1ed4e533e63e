//! The payloads that are one empty element each: chat states (XEP-0085),
//! receipts (XEP-0184), ping (XEP-0199), stanza-id and origin-id
//! (XEP-0359). A file apiece would hold one guard and one tag.

use super::Payload;
use crate::error::Result;
use crate::jid::normalize_jid;
use crate::ns;
use crate::stanza::{is_empty, only_attrs};
use crate::xml::{Element, Tag};

str_enum!(ChatState { Active = "active", Composing = "composing", Paused = "paused", Inactive = "inactive", Gone = "gone" });

/// `<active/>`, `<composing/>`, ... in the chat states namespace.
pub(super) fn decode_chat_state<'a>(el: &Element<'a>) -> Option<Payload<'a>> {
    if !(only_attrs(el, true, &[]) && is_empty(el)) {
        return None;
    }
    ChatState::parse(&el.name).map(Payload::ChatState)
}

/// `<request/>` or `<received id='...'/>` in the receipts namespace.
pub(super) fn decode_receipt<'a>(el: &Element<'a>) -> Option<Payload<'a>> {
    match el.name.as_ref() {
        "request" if only_attrs(el, true, &[]) && is_empty(el) => Some(Payload::ReceiptRequest),
        "received" if only_attrs(el, true, &["id"]) && is_empty(el) => {
            Some(Payload::ReceiptReceived {
                id: el.attr_str("id"),
            })
        }
        _ => None,
    }
}

/// `<ping/>` in the ping namespace.
pub(super) fn decode_ping<'a>(el: &Element<'a>) -> Option<Payload<'a>> {
    (el.name == "ping" && only_attrs(el, true, &[]) && is_empty(el)).then_some(Payload::Ping)
}

/// `<stanza-id id='...' by='...'/>` or `<origin-id id='...'/>`.
pub(super) fn decode_sid<'a>(el: &Element<'a>) -> Option<Payload<'a>> {
    match el.name.as_ref() {
        "stanza-id" if only_attrs(el, true, &["id", "by"]) && is_empty(el) => {
            Some(Payload::StanzaId {
                id: el.attr_str("id")?,
                by: normalize_jid(el.attr_str("by")?).ok()?,
            })
        }
        "origin-id" if only_attrs(el, true, &["id"]) && is_empty(el) => Some(Payload::OriginId {
            id: el.attr_str("id")?,
        }),
        _ => None,
    }
}

fn empty_ns(out: &mut Vec<u8>, name: &str, ns: &str) -> Result<()> {
    Tag::open(out, name).attr("xmlns", ns)?.empty();
    Ok(())
}

pub(super) fn write_chat_state(out: &mut Vec<u8>, state: ChatState) -> Result<()> {
    empty_ns(out, state.as_str(), ns::CHATSTATES)
}

pub(super) fn write_receipt_request(out: &mut Vec<u8>) -> Result<()> {
    empty_ns(out, "request", ns::RECEIPTS)
}

pub(super) fn write_receipt_received(out: &mut Vec<u8>, id: Option<&str>) -> Result<()> {
    Tag::open(out, "received")
        .attr("xmlns", ns::RECEIPTS)?
        .opt("id", id)?
        .empty();
    Ok(())
}

pub(super) fn write_ping(out: &mut Vec<u8>) -> Result<()> {
    empty_ns(out, "ping", ns::PING)
}

pub(super) fn write_stanza_id(out: &mut Vec<u8>, id: &str, by: &str) -> Result<()> {
    Tag::open(out, "stanza-id")
        .attr("xmlns", ns::SID)?
        .attr("id", id)?
        .attr("by", by)?
        .empty();
    Ok(())
}

pub(super) fn write_origin_id(out: &mut Vec<u8>, id: &str) -> Result<()> {
    Tag::open(out, "origin-id")
        .attr("xmlns", ns::SID)?
        .attr("id", id)?
        .empty();
    Ok(())
}
