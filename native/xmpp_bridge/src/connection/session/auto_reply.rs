//! Requests the session answers by itself: XEP-0199 pings and XEP-0030
//! disco#info queries addressed to us (no node).

use crate::ns;
use crate::xml::{close_tag, write_attr, Element};

/// Features answered by disco#info on our behalf.
const FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    ns::PING,
    "urn:xmpp:receipts",
    "urn:xmpp:json:0",
    ns::TERM,
];

/// The answer to the IQ get `el` when it is a ping or a disco#info
/// request, on a stream whose default namespace is `stream_ns` (a
/// component describes itself as one, a client as a bot).
pub(super) fn auto_reply(el: &Element<'_>, stream_ns: &str) -> Option<Vec<u8>> {
    let payload = el.elements().next()?;
    let payload_ns = payload.attr("xmlns")?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<iq type='result'");
    write_attr(&mut out, "id", el.attr("id").unwrap_or_default()).ok()?;
    if let Some(from) = el.attr("from") {
        write_attr(&mut out, "to", from).ok()?;
    }
    if let Some(to) = el.attr("to") {
        write_attr(&mut out, "from", to).ok()?;
    }
    match (payload.name.as_ref(), payload_ns) {
        ("ping", ns::PING) => out.extend_from_slice(b"/>"),
        ("query", ns::DISCO_INFO) if payload.attr("node").is_none() => {
            out.extend_from_slice(b"><query xmlns='http://jabber.org/protocol/disco#info'>");
            let category = if stream_ns == ns::COMPONENT {
                "component' type='generic"
            } else {
                "client' type='bot"
            };
            out.extend_from_slice(
                format!("<identity category='{category}' name='xmpp_bridge'/>").as_bytes(),
            );
            for f in FEATURES {
                out.extend_from_slice(format!("<feature var='{f}'/>").as_bytes());
            }
            out.extend_from_slice(b"</query>");
            close_tag(&mut out, "iq");
        }
        _ => return None,
    }
    Some(out)
}
