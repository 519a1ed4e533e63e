//! Typed stanzas (RFC 6120/6121) and the payloads xmpp_bridge uses.
//!
//! Decoding never drops anything: a child is turned into a typed payload
//! only when the typed form can represent it exactly; otherwise it stays a
//! generic [`Element`]. Whitespace-only text between the children of a
//! stanza or of a typed payload is formatting and is not kept; default
//! values (`type='normal'` on a message) are not written back.
//!
//! Each stanza kind ([`Message`], [`Presence`], [`Iq`]) and the
//! [`StanzaError`] they carry has its own file holding its types, decoding
//! and encoding, and so does each payload family under `payload/`; this
//! file holds [`Stanza`], the entry points and the helpers they share.

use crate::error::{Error, Result};
use crate::jid::normalize_jid;
use crate::ns;
use crate::xml::{self, close_tag, write_text_el, Element, Node, Str, Tag};
use std::borrow::Cow;

macro_rules! str_enum {
    ($(#[$meta:meta])* $name:ident { $($var:ident = $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($var),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            /// Every value as written in XML, in declaration order.
            pub const WIRE: &'static [&'static str] = &[$($wire),*];
            /// The position of the value in [`Self::ALL`] and [`Self::WIRE`].
            pub fn index(self) -> usize {
                self as usize
            }
            /// The value as written in XML.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $wire),* }
            }
            /// The value read from XML, if it is one of ours.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$var),)* _ => None }
            }
        }
    };
}

mod iq;
mod message;
mod payload;
mod presence;
mod stanza_error;

pub use iq::{Iq, IqType};
pub use message::{Message, MessageType};
pub use payload::{
    decode_payload, Affiliation, ChatState, Delay, DiscoIdentity, DiscoInfo, DiscoItem, DiscoItems,
    MucHistory, MucItem, MucJoin, MucUser, Payload, Role, Roster, RosterItem, Subscription,
};
pub use presence::{Presence, PresenceType, Show};
pub use stanza_error::{Condition, ErrorType, StanzaError};

/// The wire values of every enum of the codec, for callers that map them to
/// their own symbols once.
pub const ENUM_VALUES: &[&[&str]] = &[
    MessageType::WIRE,
    PresenceType::WIRE,
    Show::WIRE,
    IqType::WIRE,
    ErrorType::WIRE,
    Condition::WIRE,
    ChatState::WIRE,
    Affiliation::WIRE,
    Role::WIRE,
    Subscription::WIRE,
];

/// A text with an optional `xml:lang`: `(lang, text)`.
pub type LangText<'a> = (Option<Str<'a>>, Str<'a>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stanza<'a> {
    Message(Message<'a>),
    Presence(Presence<'a>),
    Iq(Iq<'a>),
}

// ---------------------------------------------------------------- decoding

const XML_LANG: &str = "xml:lang";

fn is_ws(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// The element's namespace: its own `xmlns`, or the inherited one.
fn ns_of<'s>(el: &'s Element<'_>, inherited: &'s str) -> &'s str {
    el.attr("xmlns").unwrap_or(inherited)
}

/// True when every attribute is in `allowed` (the element's own `xmlns`
/// declaration counts as allowed only when `xmlns_ok`).
fn only_attrs(el: &Element<'_>, xmlns_ok: bool, allowed: &[&str]) -> bool {
    el.attrs
        .iter()
        .all(|(n, _)| (xmlns_ok && n == "xmlns") || allowed.contains(&n.as_ref()))
}

/// The text of an element whose children are all text.
fn text_only<'a>(el: &Element<'a>) -> Option<Str<'a>> {
    match el.children.as_slice() {
        [] => Some(Cow::Borrowed("")),
        [Node::Text(t)] => Some(t.clone()),
        _ => None,
    }
}

/// Child elements, or `None` when there is text other than whitespace.
fn child_elements<'e, 'a>(el: &'e Element<'a>) -> Option<Vec<&'e Element<'a>>> {
    let mut out = Vec::with_capacity(el.children.len());
    for c in &el.children {
        match c {
            Node::Element(e) => out.push(e),
            Node::Text(t) if is_ws(t) => {}
            Node::Text(_) => return None,
        }
    }
    Some(out)
}

/// A child in the parent's namespace, written without a prefix or its own
/// `xmlns`, named `name`, and with only `allowed` attributes.
fn plain_child(el: &Element<'_>, name: &str, allowed: &[&str]) -> bool {
    el.name == name && only_attrs(el, false, allowed)
}

fn is_empty(el: &Element<'_>) -> bool {
    el.children.is_empty()
}

fn opt_jid(v: Option<Str<'_>>) -> Option<Option<Str<'_>>> {
    match v {
        None => Some(None),
        Some(s) => normalize_jid(s).ok().map(Some),
    }
}

fn stanza_ns_ok(ns: &str) -> bool {
    ns == ns::CLIENT || ns == ns::SERVER || ns == ns::COMPONENT
}

/// Decodes a top-level element into a stanza. `default_ns` is the namespace
/// the element inherits (from the stream header); `jabber:client` if none.
pub fn decode<'a>(el: Element<'a>, default_ns: Option<&str>) -> Result<Stanza<'a>> {
    decode_or_return(el, default_ns).map_err(|(e, _)| e)
}

/// Like [`decode`], but hands the element back with the error, so a caller
/// reading a stream can report the stanza it could not decode.
#[allow(clippy::result_large_err)]
pub fn decode_or_return<'a>(
    mut el: Element<'a>,
    default_ns: Option<&str>,
) -> std::result::Result<Stanza<'a>, (Error, Element<'a>)> {
    let (common, type_, ns) = match check_stanza(&el, default_ns) {
        Ok(v) => v,
        Err(e) => return Err((e, el)),
    };
    let children = std::mem::take(&mut el.children);
    // Whitespace between children is formatting; other text is kept.
    let elements = children.into_iter().filter_map(|c| match c {
        Node::Element(e) => Some(Ok(e)),
        Node::Text(t) if is_ws(&t) => None,
        Node::Text(t) => Some(Err(t)),
    });
    Ok(match type_ {
        StanzaType::Message(t) => Stanza::Message(message::decode(common, t, elements, &ns)),
        StanzaType::Presence(t) => Stanza::Presence(presence::decode(common, t, elements, &ns)),
        StanzaType::Iq(t) => Stanza::Iq(iq::decode(common, t, elements, &ns)),
    })
}

/// Parses bytes holding one stanza and decodes it.
pub fn decode_bytes(input: &[u8], limits: xml::Limits) -> Result<Stanza<'_>> {
    decode(xml::parse(input, limits)?, None)
}

/// Everything that can make a stanza invalid is checked here, before any
/// part of it is moved.
fn check_stanza<'a>(
    el: &Element<'a>,
    default_ns: Option<&str>,
) -> Result<(Common<'a>, StanzaType, String)> {
    if !matches!(el.name.as_ref(), "message" | "presence" | "iq") {
        return Err(Error::UnknownElement(el.name.to_string()));
    }
    let ns = ns_of(el, default_ns.unwrap_or(ns::CLIENT)).to_owned();
    if !stanza_ns_ok(&ns) {
        return Err(Error::BadNamespace(ns));
    }
    let mut common = Common::default();
    let mut type_attr: Option<&str> = None;
    for (n, v) in &el.attrs {
        match n.as_ref() {
            "id" => common.id = Some(v.clone()),
            "type" => type_attr = Some(v),
            "from" => common.from = Some(normalize_jid(v.clone())?),
            "to" => common.to = Some(normalize_jid(v.clone())?),
            XML_LANG => common.lang = Some(v.clone()),
            "xmlns" if v == ns::CLIENT => {}
            _ => common.attrs.push((n.clone(), v.clone())),
        }
    }
    if ns != ns::CLIENT && !common.attrs.iter().any(|(n, _)| n == "xmlns") {
        common
            .attrs
            .insert(0, (Cow::Borrowed("xmlns"), Cow::Owned(ns.clone())));
    }
    let type_ = match el.name.as_ref() {
        "message" => StanzaType::Message(message::parse_type(type_attr)?),
        "presence" => StanzaType::Presence(presence::parse_type(type_attr)?),
        _ => StanzaType::Iq(iq::check(el, type_attr, &common, &ns)?),
    };
    Ok((common, type_, ns))
}

/// Text runs that only the stanza's own children (written first) separate
/// are one text once written: merge them so that decode(encode(s)) == s.
fn push_text<'a>(payloads: &mut Vec<Payload<'a>>, text: Str<'a>) {
    if let Some(Payload::Text(prev)) = payloads.last_mut() {
        prev.to_mut().push_str(&text);
    } else {
        payloads.push(Payload::Text(text));
    }
}

/// A child of a stanza: an element, or text that is not just whitespace.
type Child<'a> = std::result::Result<Element<'a>, Str<'a>>;

enum StanzaType {
    Message(MessageType),
    Presence(PresenceType),
    Iq(IqType),
}

#[derive(Default)]
struct Common<'a> {
    id: Option<Str<'a>>,
    from: Option<Str<'a>>,
    to: Option<Str<'a>>,
    lang: Option<Str<'a>>,
    attrs: Vec<(Str<'a>, Str<'a>)>,
}

/// `(lang, text)` of a `<body/>`, `<subject/>` or `<status/>`.
fn lang_text<'a>(el: &Element<'a>, ns: &str) -> Option<LangText<'a>> {
    if ns_of(el, ns) != ns || el.attr("xmlns").is_some() || !only_attrs(el, false, &[XML_LANG]) {
        return None;
    }
    Some((el.attr_str(XML_LANG), text_only(el)?))
}

/// The children of a message or presence, in order: `field` takes the
/// elements that have a field of their own (and answers `None` for the
/// others), the first `<error/>` that can be typed becomes `error`, and
/// everything else, text included, is a payload.
fn decode_children<'a>(
    children: impl Iterator<Item = Child<'a>>,
    ns: &str,
    error: &mut Option<StanzaError<'a>>,
    payloads: &mut Vec<Payload<'a>>,
    mut field: impl FnMut(&Element<'a>) -> Option<()>,
) {
    for child in children {
        let el = match child {
            Ok(el) => el,
            Err(text) => {
                push_text(payloads, text);
                continue;
            }
        };
        let typed = if el.name == "error" && error.is_none() {
            stanza_error::decode(&el, ns).map(|e| *error = Some(e))
        } else {
            field(&el)
        };
        if typed.is_none() {
            payloads.push(decode_payload(el, ns));
        }
    }
}

// ---------------------------------------------------------------- encoding

fn write_lang_texts(out: &mut Vec<u8>, name: &str, texts: &[LangText]) -> Result<()> {
    for (lang, text) in texts {
        write_text_el(out, name, &[(XML_LANG, lang.as_deref())], text)?;
    }
    Ok(())
}

fn check_jid(j: &Option<Str<'_>>) -> Result<()> {
    if let Some(s) = j {
        normalize_jid(s.as_ref())?;
    }
    Ok(())
}

impl Stanza<'_> {
    /// Serialises the stanza. `from`/`to` are checked to be valid JIDs.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Serialises the stanza for a stream whose default namespace it
    /// inherits: without the `xmlns='jabber:client'` that [`Stanza::to_bytes`]
    /// writes on a stanza standing alone (a stanza with its own `xmlns` in
    /// `attrs` keeps it).
    pub fn to_stream_bytes(&self) -> Result<Vec<u8>> {
        let mut out = self.to_bytes()?;
        let name = match self {
            Stanza::Message(_) => "message",
            Stanza::Presence(_) => "presence",
            Stanza::Iq(_) => "iq",
        };
        // write_head puts ` xmlns='jabber:client'` right after the name.
        let at = 1 + name.len();
        let rest = out[at..]
            .strip_prefix(b" xmlns='")
            .and_then(|r| r.strip_prefix(ns::CLIENT.as_bytes()))
            .and_then(|r| r.strip_prefix(b"'"))
            .map(<[u8]>::len);
        if let Some(rest) = rest {
            let end = out.len() - rest;
            out.drain(at..end);
        }
        Ok(out)
    }

    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Stanza::Message(m) => m.write_to(out),
            Stanza::Presence(p) => p.write_to(out),
            Stanza::Iq(i) => i.write_to(out),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_head<'a>(
    out: &'a mut Vec<u8>,
    name: &str,
    id: Option<&str>,
    type_: Option<&str>,
    from: &Option<Str<'_>>,
    to: &Option<Str<'_>>,
    lang: &Option<Str<'_>>,
    attrs: &[(Str<'_>, Str<'_>)],
) -> Result<Tag<'a>> {
    check_jid(from)?;
    check_jid(to)?;
    let mut t = Tag::open(out, name);
    if !attrs.iter().any(|(n, _)| n == "xmlns") {
        t.attr("xmlns", ns::CLIENT)?;
    }
    for (n, v) in attrs {
        if matches!(n.as_ref(), "id" | "type" | "from" | "to" | XML_LANG) {
            return Err(Error::malformed(format!("attribute {n} given twice")));
        }
        t.attr(n, v)?;
    }
    t.opt("id", id)?
        .opt("type", type_)?
        .opt("from", from.as_deref())?
        .opt("to", to.as_deref())?
        .opt(XML_LANG, lang.as_deref())?;
    Ok(t)
}

/// The end every message and presence shares: the error, the payloads in
/// their order, the end tag.
fn write_error_payloads_close(
    out: &mut Vec<u8>,
    error: &Option<StanzaError<'_>>,
    payloads: &[Payload<'_>],
    name: &str,
) -> Result<()> {
    if let Some(e) = error {
        e.write_to(out)?;
    }
    for p in payloads {
        p.write_to(out)?;
    }
    close_tag(out, name);
    Ok(())
}
