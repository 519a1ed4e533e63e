//! Typed decoding loses nothing: for every stanza of the corpus,
//! encode(decode(x)) is the same XML tree as x, up to the documented
//! canonicalisation (docs/PROTOCOL.md §1): attribute order, whitespace-only
//! text between the children of a stanza or typed payload, default type
//! values, and the order of the stanza's own children.

use std::borrow::Cow;
use xmpp_bridge::stanza::{self, Payload, Stanza};
use xmpp_bridge::xml::{self, Element, Node};
use xmpp_bridge::Limits;

const CORPUS: &[&str] = &[
    "<message xmlns='jabber:client' id='m1' to='romeo@example.net' from='juliet@example.com/balcony' type='chat' xml:lang='en'><body>hi &amp; bye &lt;3</body><body xml:lang='de'>hallo</body><subject>s</subject><thread parent='p'>t</thread></message>",
    "<message xmlns='jabber:client' type='groupchat'><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><received xmlns='urn:xmpp:receipts' id='x'/></message>",
    "<message xmlns='jabber:client'><delay xmlns='urn:xmpp:delay' from='example.com' stamp='2002-09-10T23:08:25Z'>Offline</delay><delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/></message>",
    "<message xmlns='jabber:client'><stanza-id xmlns='urn:xmpp:sid:0' id='a' by='example.com'/><origin-id xmlns='urn:xmpp:sid:0' id='b'/></message>",
    "<message xmlns='jabber:client'><json xmlns='urn:xmpp:json:0'>{\"a\": [1, 2]}</json><term xmlns='urn:xmpp-bridge:term:0'>g2EB</term></message>",
    "<message xmlns='jabber:client'><x xmlns='urn:unknown' a='1'><y>text<![CDATA[<raw>]]></y> kept </x></message>",
    "<message xmlns='jabber:client'><body foo='bar'>body with an unknown attribute stays generic</body></message>",
    "<message xmlns='jabber:client'><rcpt:received xmlns:rcpt='urn:xmpp:receipts' id='p'/></message>",
    "<message xmlns='jabber:client' type='error'><error type='cancel' by='example.com'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:new@example.com</gone><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>moved</text><app xmlns='urn:app'/></error></message>",
    "<presence xmlns='jabber:client' from='room@conference.example.com/nick'><show>dnd</show><status>busy</status><status xml:lang='fr'>occupé</status><priority>-5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
    "<presence xmlns='jabber:client' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none' nick='n' jid='a@b/c'><actor nick='mod'/><reason>spam</reason></item><status code='307'/><status code='110'/></x></presence>",
    "<presence xmlns='jabber:client' to='room@conference.example.com/me'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='20' since='2020-01-01T00:00:00Z'/><password>secret</password></x></presence>",
    "<presence xmlns='jabber:client'><show>sleeping</show><priority>999</priority></presence>",
    "<iq xmlns='jabber:client' type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v9'><item jid='a@example.com' name='A &amp; B' subscription='both' ask='subscribe' approved='true'><group>G1</group><group>G2</group></item><item jid='b@example.com'/></query></iq>",
    "<iq xmlns='jabber:client' type='result' id='d1'><query xmlns='http://jabber.org/protocol/disco#info' node='n'><identity category='client' type='pc' name='x' xml:lang='en'/><feature var='urn:xmpp:ping'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value></field></x></query></iq>",
    "<iq xmlns='jabber:client' type='result' id='d2'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><identity category='client' type='pc'/></query></iq>",
    "<iq xmlns='jabber:client' type='result' id='d3'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.example.com' name='Rooms'/><item jid='example.com' node='n'/></query></iq>",
    "<iq xmlns='jabber:client' type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq xmlns='jabber:client' type='error' id='e1'><ping xmlns='urn:xmpp:ping'/><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    "<iq xmlns='jabber:client' type='result' id='empty'/>",
    "<message xmlns='jabber:server' from='a@example.com' to='b@example.net'><body>s2s</body></message>",
    "<message xmlns='jabber:client'>text kept<body>b</body> in place </message>",
    "<message xmlns='jabber:client' custom='kept'>\n  <body>pretty printed</body>\n  <x xmlns='urn:y'>\n    <z/>\n  </x>\n</message>",
];

/// The canonical form of a tree: attributes sorted, whitespace-only text
/// dropped where `drop_ws`, default stanza attributes removed.
fn canon(el: &Element<'_>, drop_ws: bool) -> Element<'static> {
    let mut attrs: Vec<(Cow<'static, str>, Cow<'static, str>)> = el
        .attrs
        .iter()
        .filter(|(n, v)| !(n == "type" && v == "normal" && el.name == "message"))
        .map(|(n, v)| (Cow::Owned(n.to_string()), Cow::Owned(v.to_string())))
        .collect();
    attrs.sort();
    let typed_container = drop_ws;
    let mut children = Vec::new();
    for c in &el.children {
        match c {
            Node::Text(t) if typed_container && t.trim().is_empty() => {}
            Node::Text(t) => children.push(Node::Text(Cow::Owned(t.to_string()))),
            // Children of unknown elements keep all their text.
            Node::Element(e) => children.push(Node::Element(canon(
                e,
                e.attr("xmlns").is_none() || is_typed(e),
            ))),
        }
    }
    if matches!(el.name.as_ref(), "message" | "presence" | "iq") {
        // The stanza's own children are written in one order (RFC 6121's):
        // subject, body, thread / show, status, priority; then the error;
        // payloads keep their order.
        children.sort_by_key(|c| match c {
            Node::Element(e) => match e.name.as_ref() {
                "subject" | "show" => 0,
                "body" | "status" => 1,
                "thread" | "priority" => 2,
                "error" if el.name != "iq" => 3,
                "error" => 5,
                _ => 4,
            },
            Node::Text(_) => 4,
        });
        // Text the reordering brought together reads as one text.
        let mut merged: Vec<Node<'static>> = Vec::new();
        for c in children {
            match (merged.last_mut(), c) {
                (Some(Node::Text(prev)), Node::Text(t)) => prev.to_mut().push_str(&t),
                (_, c) => merged.push(c),
            }
        }
        children = merged;
    }
    Element {
        name: Cow::Owned(el.name.to_string()),
        attrs,
        children,
    }
}

fn is_typed(e: &Element<'_>) -> bool {
    matches!(
        e.attr("xmlns"),
        Some(
            "jabber:iq:roster"
                | "http://jabber.org/protocol/disco#info"
                | "http://jabber.org/protocol/disco#items"
        ) | Some("http://jabber.org/protocol/muc" | "http://jabber.org/protocol/muc#user")
    )
}

#[test]
fn typed_decoding_keeps_every_element_attribute_and_text() {
    for src in CORPUS {
        let original = xml::parse(src.as_bytes(), Limits::default()).unwrap();
        let decoded = stanza::decode_bytes(src.as_bytes(), Limits::default())
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        let out = decoded.to_bytes().unwrap();
        let again = xml::parse(&out, Limits::default()).unwrap();
        assert_eq!(
            canon(&again, true),
            canon(&original, true),
            "\n in: {src}\nout: {}",
            String::from_utf8_lossy(&out)
        );
        let redecoded = stanza::decode_bytes(&out, Limits::default()).unwrap();
        assert_eq!(redecoded, decoded, "{src}");
    }
}

#[test]
fn payloads_are_typed_only_when_exact() {
    let payloads =
        |src: &str| match stanza::decode_bytes(src.as_bytes(), Limits::default()).unwrap() {
            Stanza::Message(m) => m
                .payloads
                .into_iter()
                .map(|p| p.into_owned_kind())
                .collect::<Vec<_>>(),
            Stanza::Presence(p) => p
                .payloads
                .into_iter()
                .map(|p| p.into_owned_kind())
                .collect(),
            Stanza::Iq(i) => i.payload.into_iter().map(|p| p.into_owned_kind()).collect(),
        };
    assert_eq!(
        payloads(CORPUS[1]),
        ["ChatState", "ReceiptRequest", "ReceiptReceived"]
    );
    // A prefixed receipt, a body with an unknown attribute, an unknown show
    // value and an out-of-range priority all stay generic.
    assert_eq!(payloads(CORPUS[7]), ["Xml"]);
    assert_eq!(payloads(CORPUS[6]), ["Xml"]);
    assert_eq!(payloads(CORPUS[12]), ["Xml", "Xml"]);
    // Features before identities: not the order the type writes, kept as XML.
    assert_eq!(payloads(CORPUS[15]), ["Xml"]);
    assert_eq!(payloads(CORPUS[13]), ["Roster"]);
}

trait Kind {
    fn into_owned_kind(self) -> &'static str;
}

impl Kind for Payload<'_> {
    fn into_owned_kind(self) -> &'static str {
        match self {
            Payload::Delay(_) => "Delay",
            Payload::ChatState(_) => "ChatState",
            Payload::ReceiptRequest => "ReceiptRequest",
            Payload::ReceiptReceived { .. } => "ReceiptReceived",
            Payload::MucJoin(_) => "MucJoin",
            Payload::MucUser(_) => "MucUser",
            Payload::Roster(_) => "Roster",
            Payload::DiscoInfo(_) => "DiscoInfo",
            Payload::DiscoItems(_) => "DiscoItems",
            Payload::Ping => "Ping",
            Payload::StanzaId { .. } => "StanzaId",
            Payload::OriginId { .. } => "OriginId",
            Payload::Json(_) => "Json",
            Payload::Term(_) => "Term",
            Payload::Xml(_) => "Xml",
            Payload::Text(_) => "Text",
        }
    }
}

#[test]
fn stanza_level_errors_name_the_problem() {
    use xmpp_bridge::Error;
    fn d(s: &str) -> Result<Stanza<'_>, xmpp_bridge::Error> {
        stanza::decode_bytes(s.as_bytes(), Limits::default())
    }
    assert_eq!(d("<foo/>"), Err(Error::UnknownElement("foo".into())));
    assert_eq!(
        d("<message xmlns='urn:x'/>"),
        Err(Error::BadNamespace("urn:x".into()))
    );
    assert_eq!(
        d("<message to='a@b@c'/>"),
        Err(Error::InvalidJid {
            jid: "a@b@c".into(),
            part: xmpp_bridge::jid::JidPart::Domainpart
        })
    );
    assert!(matches!(
        d("<message type='bogus'/>"),
        Err(Error::InvalidValue { .. })
    ));
    assert!(matches!(
        d("<presence type='available'/>"),
        Err(Error::InvalidValue { .. })
    ));
    assert!(matches!(
        d("<iq id='1'/>"),
        Err(Error::MissingAttribute { .. })
    ));
    assert!(matches!(
        d("<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>"),
        Err(Error::MissingAttribute { .. })
    ));
    assert!(matches!(
        d("<iq type='get' id='1'/>"),
        Err(Error::InvalidIq(_))
    ));
    assert!(matches!(
        d("<iq type='set' id='1'><a xmlns='x'/><b xmlns='y'/></iq>"),
        Err(Error::InvalidIq(_))
    ));
    assert!(matches!(
        d("<iq type='error' id='1'/>"),
        Err(Error::InvalidIq(_))
    ));
}

#[test]
fn jids_are_normalised_and_the_fast_path_agrees_with_the_profiles() {
    for j in [
        "juliet@example.com/balcony",
        "Juliet@Example.COM/Balcony",
        "example.com",
        "a.b-c_d@sub.example.org/res with space",
        "xn--bcher-kva.example",
        "bücher.example",
        "ROOM@conference.example.com/Nick Name",
        "coven@chat.shakespeare.lit/Café ☕",
        "a@-bad.example",
        "a@bad-.example",
        "a@b..c",
        "a@b/c/d",
    ] {
        let ours = xmpp_bridge::jid::normalize_jid(j).map(|c| c.into_owned());
        let slow = xmpp_bridge::jid::normalize_with_profiles(j);
        assert_eq!(ours, slow, "{j}");
    }
}

#[test]
fn a_stanza_from_an_emoji_resource_decodes_to_a_typed_struct_and_back() {
    let xml = "<message xmlns='jabber:client' from='coven@chat.shakespeare.lit/Café ☕' \
               to='Juliet@Example.COM/📱 Phone' type='groupchat'><body>hi</body></message>";
    let s = stanza::decode_bytes(xml.as_bytes(), Limits::default()).expect("decodes");
    let Stanza::Message(m) = &s else {
        panic!("not a message: {s:?}")
    };
    assert_eq!(
        m.from.as_deref(),
        Some("coven@chat.shakespeare.lit/Café ☕")
    );
    assert_eq!(m.to.as_deref(), Some("juliet@example.com/📱 Phone"));
    let out = s.to_bytes().expect("encodes");
    let again = stanza::decode_bytes(&out, Limits::default()).expect("decodes again");
    assert_eq!(again, s);
}
