//! The payloads: children of a stanza with a typed form. Each family has
//! its file, holding its types, decoding and encoding; this file holds
//! [`Payload`] and the dispatch on the namespace both ways.

use crate::error::Result;
use crate::ns;
use crate::xml::{escape_text, Element, Str};
use std::borrow::Cow;

mod data;
mod delay;
mod disco;
mod markers;
mod muc;
mod roster;

pub use delay::Delay;
pub use disco::{DiscoIdentity, DiscoInfo, DiscoItem, DiscoItems};
pub use markers::ChatState;
pub use muc::{Affiliation, MucHistory, MucItem, MucJoin, MucUser, Role};
pub use roster::{Roster, RosterItem, Subscription};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    Delay(Delay<'a>),
    ChatState(ChatState),
    ReceiptRequest,
    ReceiptReceived {
        id: Option<Str<'a>>,
    },
    MucJoin(MucJoin<'a>),
    MucUser(MucUser<'a>),
    Roster(Roster<'a>),
    DiscoInfo(DiscoInfo<'a>),
    DiscoItems(DiscoItems<'a>),
    Ping,
    StanzaId {
        id: Str<'a>,
        by: Str<'a>,
    },
    OriginId {
        id: Str<'a>,
    },
    /// XEP-0335: the JSON text.
    Json(Str<'a>),
    /// xmpp_bridge term payload: the External Term Format bytes.
    Term(Cow<'a, [u8]>),
    /// Anything else, kept as it came.
    Xml(Element<'a>),
    /// Text directly inside a message or presence (other than whitespace
    /// between children), kept in its place.
    Text(Str<'a>),
}

/// A payload: typed when it can be represented exactly, else the element.
pub fn decode_payload<'a>(el: Element<'a>, parent_ns: &str) -> Payload<'a> {
    let typed = match el.attr("xmlns") {
        Some(ns) if ns != parent_ns => typed_payload(&el, ns),
        _ => None,
    };
    typed.unwrap_or(Payload::Xml(el))
}

fn typed_payload<'a>(el: &Element<'a>, ns: &str) -> Option<Payload<'a>> {
    match ns {
        ns::CHATSTATES => markers::decode_chat_state(el),
        ns::RECEIPTS => markers::decode_receipt(el),
        ns::DELAY => delay::decode(el).map(Payload::Delay),
        ns::PING => markers::decode_ping(el),
        ns::SID => markers::decode_sid(el),
        ns::JSON => data::decode_json(el),
        ns::TERM => data::decode_term(el),
        ns::MUC => muc::decode_join(el).map(Payload::MucJoin),
        ns::MUC_USER => muc::decode_user(el).map(Payload::MucUser),
        ns::ROSTER => roster::decode(el).map(Payload::Roster),
        ns::DISCO_INFO => disco::decode_info(el).map(Payload::DiscoInfo),
        ns::DISCO_ITEMS => disco::decode_items(el).map(Payload::DiscoItems),
        _ => None,
    }
}

impl Payload<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Payload::Xml(el) => el.write_to(out),
            Payload::Text(t) => escape_text(out, t),
            Payload::ChatState(s) => markers::write_chat_state(out, *s),
            Payload::ReceiptRequest => markers::write_receipt_request(out),
            Payload::ReceiptReceived { id } => markers::write_receipt_received(out, id.as_deref()),
            Payload::Ping => markers::write_ping(out),
            Payload::Delay(d) => d.write_to(out),
            Payload::StanzaId { id, by } => markers::write_stanza_id(out, id, by),
            Payload::OriginId { id } => markers::write_origin_id(out, id),
            Payload::Json(json) => data::write_json(out, json),
            Payload::Term(etf) => data::write_term(out, etf),
            Payload::MucJoin(j) => j.write_to(out),
            Payload::MucUser(u) => u.write_to(out),
            Payload::Roster(r) => r.write_to(out),
            Payload::DiscoInfo(d) => d.write_to(out),
            Payload::DiscoItems(d) => d.write_to(out),
        }
    }
}
