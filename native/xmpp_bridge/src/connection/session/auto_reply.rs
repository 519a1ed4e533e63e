//! Requests the session answers by itself: XEP-0199 pings and XEP-0030
//! disco#info queries addressed to us (no node).

use crate::ns;
use crate::xml::{close_tag, write_attr, Element};

/// Features answered by disco#info on our behalf: what the session does
/// by itself, nothing more. Receipts and payload formats are the owner's
/// to handle; whatever layer handles them advertises them.
const FEATURES: &[&str] = &[ns::DISCO_INFO, ns::PING];

/// The answer to the IQ get `el` when it is a ping or a disco#info
/// request, on a stream whose default namespace is `stream_ns` (a
/// component describes itself as one, a client as a bot). A bus node's
/// `incarnation` goes into ping results, and adds the bus feature.
pub(super) fn auto_reply(
    el: &Element<'_>,
    stream_ns: &str,
    incarnation: Option<&str>,
) -> Option<Vec<u8>> {
    // A component's names (`name@component`) are its owner's to answer
    // (docs/PROTOCOL.md §7.3: per name, or `noproc`).
    if stream_ns == ns::COMPONENT && el.attr("to").is_some_and(|t| t.contains('@')) {
        return None;
    }
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
        ("ping", ns::PING) => match incarnation {
            None => out.extend_from_slice(b"/>"),
            Some(inc) => {
                out.extend_from_slice(format!("><node xmlns='{}'", ns::BUS).as_bytes());
                write_attr(&mut out, "incarnation", inc).ok()?;
                out.extend_from_slice(b"/>");
                close_tag(&mut out, "iq");
            }
        },
        ("query", ns::DISCO_INFO) if payload.attr("node").is_none() => {
            out.extend_from_slice(format!("><query xmlns='{}'>", ns::DISCO_INFO).as_bytes());
            let category = if stream_ns == ns::COMPONENT {
                "component' type='generic"
            } else {
                "client' type='bot"
            };
            out.extend_from_slice(
                format!("<identity category='{category}' name='xmpp_bridge'/>").as_bytes(),
            );
            let bus = incarnation.map(|_| ns::BUS);
            for f in FEATURES.iter().copied().chain(bus) {
                out.extend_from_slice(format!("<feature var='{f}'/>").as_bytes());
            }
            out.extend_from_slice(b"</query>");
            close_tag(&mut out, "iq");
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{Event, StreamParser};
    use crate::xml::Limits;

    /// The IQ in `xml`, as the stream parser hands it over.
    fn reply_to(xml: &str, stream_ns: &str) -> Option<String> {
        reply_as(xml, stream_ns, None)
    }

    fn reply_as(xml: &str, stream_ns: &str, incarnation: Option<&str>) -> Option<String> {
        let mut parser = StreamParser::new(Limits::default());
        let doc = format!("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>{xml}");
        let mut events = Vec::new();
        parser.feed(doc.as_bytes(), &mut events).unwrap();
        let el = events
            .into_iter()
            .find_map(|e| match e {
                Event::Element(el) => Some(el),
                _ => None,
            })
            .expect("an element");
        auto_reply(&el, stream_ns, incarnation).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn a_ping_is_answered_to_its_sender() {
        let reply = reply_to(
            "<iq type='get' id='p1' from='example.com' to='a@example.com/r'><ping xmlns='urn:xmpp:ping'/></iq>",
            ns::CLIENT,
        );
        assert_eq!(
            reply.as_deref(),
            Some("<iq type='result' id='p1' to='example.com' from='a@example.com/r'/>")
        );
    }

    #[test]
    fn disco_info_names_only_what_the_session_answers() {
        let reply = reply_to(
            "<iq type='get' id='d1' from='b@example.com/x'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            ns::CLIENT,
        )
        .expect("an answer");
        assert!(reply.contains("<identity category='client' type='bot' name='xmpp_bridge'/>"));
        let features: Vec<&str> = reply
            .split("<feature var='")
            .skip(1)
            .map(|f| f.split('\'').next().unwrap())
            .collect();
        // Nothing a session does not do itself: no receipts, no payload
        // formats (the bus advertises its own features when it exists).
        assert_eq!(features, vec![ns::DISCO_INFO, ns::PING]);
    }

    #[test]
    fn a_bus_node_names_its_incarnation_and_the_bus_feature() {
        let ping =
            "<iq type='get' id='p2' from='b@example.com/x'><ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(
            reply_as(ping, ns::CLIENT, Some("0f3a")).as_deref(),
            Some("<iq type='result' id='p2' to='b@example.com/x'><node xmlns='urn:xmpp-bridge:bus:0' incarnation='0f3a'/></iq>")
        );
        let disco = "<iq type='get' id='d3' from='b@example.com/x'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>";
        let reply = reply_as(disco, ns::CLIENT, Some("0f3a")).expect("an answer");
        assert!(
            reply.contains(&format!("<feature var='{}'/>", ns::BUS)),
            "{reply}"
        );
    }

    #[test]
    fn a_ping_to_a_components_name_is_left_to_its_owner() {
        let ping = "<iq type='get' id='p9' from='b@x/bus' to='w7@bridge.x/bus'><ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(reply_to(ping, ns::COMPONENT), None);
        let own = "<iq type='get' id='p9' from='b@x/bus' to='bridge.x'><ping xmlns='urn:xmpp:ping'/></iq>";
        assert!(reply_to(own, ns::COMPONENT).is_some());
    }

    #[test]
    fn a_component_describes_itself_as_one() {
        let reply = reply_to(
            "<iq type='get' id='d2' from='b@example.com/x' to='bridge.example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            ns::COMPONENT,
        )
        .expect("an answer");
        assert!(reply.contains("<identity category='component' type='generic'"));
        assert!(reply.contains("from='bridge.example.com'"));
    }

    #[test]
    fn other_requests_are_left_to_the_owner() {
        for xml in [
            "<iq type='get' id='n'><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>",
            "<iq type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
            "<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>",
            "<iq type='get' id='e'/>",
            "<iq type='get' id='p'><ping/></iq>",
        ] {
            assert_eq!(reply_to(xml, ns::CLIENT), None, "{xml}");
        }
    }
}
