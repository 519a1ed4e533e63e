//! XML namespaces used by the codec.

pub const CLIENT: &str = "jabber:client";
pub const SERVER: &str = "jabber:server";
pub const COMPONENT: &str = "jabber:component:accept";
pub const STREAMS: &str = crate::stream::NS_STREAMS;
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const DELAY: &str = "urn:xmpp:delay";
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
pub const RECEIPTS: &str = "urn:xmpp:receipts";
pub const MUC: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const ROSTER: &str = "jabber:iq:roster";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const PING: &str = "urn:xmpp:ping";
pub const SID: &str = "urn:xmpp:sid:0";
pub const JSON: &str = "urn:xmpp:json:0";
/// xmpp_bridge's own term payload (docs/PROTOCOL.md).
pub const TERM: &str = "urn:xmpp-bridge:term:0";
/// The bus's own elements: calls, results, node identity (docs/PROTOCOL.md §5).
pub const BUS: &str = "urn:xmpp-bridge:bus:0";

// --- Stream negotiation and session upkeep (connection::session) ---
// (jabber:client, jabber:component:accept, ping and disco#info are above.)
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// XEP-0198 stream management.
pub const SM: &str = "urn:xmpp:sm:3";
/// Conditions of `<stream:error/>` (RFC 6120 §4.9.3).
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
