//! Typed stanzas (RFC 6120/6121) and the payloads xmpp_bridge uses.
//!
//! Decoding never drops anything: a child is turned into a typed payload
//! only when the typed form can represent it exactly; otherwise it stays a
//! generic [`Element`]. Whitespace-only text between the children of a
//! stanza or of a typed payload is formatting and is not kept; default
//! values (`type='normal'` on a message) are not written back.

use crate::error::{Error, Result};
use crate::jid::normalize_jid;
use crate::ns;
use crate::xml::{self, close_tag, escape_text, write_text_el, Element, Node, Str, Tag};
use base64::Engine;
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

str_enum!(MessageType { Normal = "normal", Chat = "chat", Groupchat = "groupchat", Headline = "headline", Error = "error" });
str_enum!(PresenceType {
    Available = "available", Unavailable = "unavailable", Subscribe = "subscribe", Subscribed = "subscribed",
    Unsubscribe = "unsubscribe", Unsubscribed = "unsubscribed", Probe = "probe", Error = "error",
});
str_enum!(Show { Away = "away", Chat = "chat", Dnd = "dnd", Xa = "xa" });
str_enum!(IqType { Get = "get", Set = "set", Result = "result", Error = "error" });
str_enum!(ErrorType { Auth = "auth", Cancel = "cancel", Continue = "continue", Modify = "modify", Wait = "wait" });
str_enum!(
    /// RFC 6120 §8.3.3 defined conditions.
    Condition {
        BadRequest = "bad-request", Conflict = "conflict", FeatureNotImplemented = "feature-not-implemented",
        Forbidden = "forbidden", Gone = "gone", InternalServerError = "internal-server-error",
        ItemNotFound = "item-not-found", JidMalformed = "jid-malformed", NotAcceptable = "not-acceptable",
        NotAllowed = "not-allowed", NotAuthorized = "not-authorized", PolicyViolation = "policy-violation",
        RecipientUnavailable = "recipient-unavailable", Redirect = "redirect",
        RegistrationRequired = "registration-required", RemoteServerNotFound = "remote-server-not-found",
        RemoteServerTimeout = "remote-server-timeout", ResourceConstraint = "resource-constraint",
        ServiceUnavailable = "service-unavailable", SubscriptionRequired = "subscription-required",
        UndefinedCondition = "undefined-condition", UnexpectedRequest = "unexpected-request",
    }
);
str_enum!(ChatState { Active = "active", Composing = "composing", Paused = "paused", Inactive = "inactive", Gone = "gone" });
str_enum!(Affiliation { Owner = "owner", Admin = "admin", Member = "member", Outcast = "outcast", None = "none" });
str_enum!(Role { Moderator = "moderator", Participant = "participant", Visitor = "visitor", None = "none" });
str_enum!(Subscription { None = "none", To = "to", From = "from", Both = "both", Remove = "remove" });

/// The wire values of every enum above, for callers that map them to
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub id: Option<Str<'a>>,
    pub type_: MessageType,
    pub from: Option<Str<'a>>,
    pub to: Option<Str<'a>>,
    pub lang: Option<Str<'a>>,
    pub bodies: Vec<LangText<'a>>,
    pub subjects: Vec<LangText<'a>>,
    pub thread: Option<Str<'a>>,
    pub thread_parent: Option<Str<'a>>,
    pub error: Option<StanzaError<'a>>,
    pub payloads: Vec<Payload<'a>>,
    /// Attributes with no field of their own (a non-default `xmlns` too).
    pub attrs: Vec<(Str<'a>, Str<'a>)>,
}

impl Default for Message<'_> {
    fn default() -> Self {
        Message {
            id: None,
            type_: MessageType::Normal,
            from: None,
            to: None,
            lang: None,
            bodies: Vec::new(),
            subjects: Vec::new(),
            thread: None,
            thread_parent: None,
            error: None,
            payloads: Vec::new(),
            attrs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence<'a> {
    pub id: Option<Str<'a>>,
    pub type_: PresenceType,
    pub from: Option<Str<'a>>,
    pub to: Option<Str<'a>>,
    pub lang: Option<Str<'a>>,
    pub show: Option<Show>,
    pub statuses: Vec<LangText<'a>>,
    pub priority: Option<i8>,
    pub error: Option<StanzaError<'a>>,
    pub payloads: Vec<Payload<'a>>,
    pub attrs: Vec<(Str<'a>, Str<'a>)>,
}

impl Default for Presence<'_> {
    fn default() -> Self {
        Presence {
            id: None,
            type_: PresenceType::Available,
            from: None,
            to: None,
            lang: None,
            show: None,
            statuses: Vec::new(),
            priority: None,
            error: None,
            payloads: Vec::new(),
            attrs: Vec::new(),
        }
    }
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError<'a> {
    pub type_: ErrorType,
    pub by: Option<Str<'a>>,
    pub condition: Condition,
    /// The URI inside `<gone/>` or `<redirect/>`.
    pub condition_text: Option<Str<'a>>,
    pub text: Option<Str<'a>>,
    pub text_lang: Option<Str<'a>>,
    /// An application-specific condition element.
    pub app: Option<Element<'a>>,
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay<'a> {
    pub stamp: Str<'a>,
    pub from: Option<Str<'a>>,
    pub reason: Option<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucJoin<'a> {
    pub password: Option<Str<'a>>,
    pub history: Option<MucHistory<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucHistory<'a> {
    pub maxchars: Option<u32>,
    pub maxstanzas: Option<u32>,
    pub seconds: Option<u32>,
    pub since: Option<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucUser<'a> {
    pub items: Vec<MucItem<'a>>,
    pub status_codes: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucItem<'a> {
    pub affiliation: Option<Affiliation>,
    pub role: Option<Role>,
    pub jid: Option<Str<'a>>,
    pub nick: Option<Str<'a>>,
    pub actor_jid: Option<Str<'a>>,
    pub actor_nick: Option<Str<'a>>,
    pub reason: Option<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roster<'a> {
    pub ver: Option<Str<'a>>,
    pub items: Vec<RosterItem<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterItem<'a> {
    pub jid: Str<'a>,
    pub name: Option<Str<'a>>,
    pub subscription: Option<Subscription>,
    /// `ask='subscribe'` (the only value RFC 6121 defines).
    pub ask: bool,
    pub approved: bool,
    pub groups: Vec<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoInfo<'a> {
    pub node: Option<Str<'a>>,
    pub identities: Vec<DiscoIdentity<'a>>,
    pub features: Vec<Str<'a>>,
    /// Extensions such as XEP-0128 data forms, kept as elements.
    pub extensions: Vec<Element<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoIdentity<'a> {
    pub category: Str<'a>,
    pub type_: Str<'a>,
    pub name: Option<Str<'a>>,
    pub lang: Option<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoItems<'a> {
    pub node: Option<Str<'a>>,
    pub items: Vec<DiscoItem<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoItem<'a> {
    pub jid: Str<'a>,
    pub node: Option<Str<'a>>,
    pub name: Option<Str<'a>>,
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
    let (common, type_attr, ns) = match check_stanza(&el, default_ns) {
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
    Ok(match el.name.as_ref() {
        "message" => Stanza::Message(decode_message(common, type_attr, elements, &ns)),
        "presence" => Stanza::Presence(decode_presence(common, type_attr, elements, &ns)),
        _ => Stanza::Iq(decode_iq(common, type_attr, elements, &ns)),
    })
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
        "message" => StanzaType::Message(match type_attr {
            None => MessageType::Normal,
            Some(t) => {
                MessageType::parse(t).ok_or_else(|| Error::invalid_value("message", "type", t))?
            }
        }),
        "presence" => StanzaType::Presence(match type_attr {
            None => PresenceType::Available,
            // "available" is the absence of a type, never a value of it.
            Some(t) => PresenceType::parse(t)
                .filter(|t| *t != PresenceType::Available)
                .ok_or_else(|| Error::invalid_value("presence", "type", t))?,
        }),
        _ => {
            let t = type_attr.ok_or_else(|| Error::missing_attribute("iq", "type"))?;
            let type_ = IqType::parse(t).ok_or_else(|| Error::invalid_value("iq", "type", t))?;
            if common.id.is_none() {
                return Err(Error::missing_attribute("iq", "id"));
            }
            check_iq_children(el, type_, &ns)?;
            StanzaType::Iq(type_)
        }
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

/// The error child of an IQ, if it has one we can type.
fn iq_error_index(el: &Element<'_>, type_: IqType, ns: &str) -> Option<usize> {
    if type_ != IqType::Error {
        return None;
    }
    el.elements()
        .position(|c| c.name == "error" && decode_error(c, ns).is_some())
}

fn check_iq_children(el: &Element<'_>, type_: IqType, ns: &str) -> Result<()> {
    if type_ == IqType::Error
        && el
            .elements()
            .filter(|c| c.name == "error" && decode_error(c, ns).is_some())
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
    let has_error = iq_error_index(el, type_, ns).is_some();
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

fn decode_message<'a>(
    c: Common<'a>,
    t: StanzaType,
    children: impl Iterator<Item = Child<'a>>,
    ns: &str,
) -> Message<'a> {
    let StanzaType::Message(type_) = t else {
        unreachable!("checked by check_stanza")
    };
    let mut m = Message {
        id: c.id,
        type_,
        from: c.from,
        to: c.to,
        lang: c.lang,
        attrs: c.attrs,
        ..Message::default()
    };
    for child in children {
        let el = match child {
            Ok(el) => el,
            Err(text) => {
                push_text(&mut m.payloads, text);
                continue;
            }
        };
        let typed = match el.name.as_ref() {
            "body" => lang_text(&el, ns).map(|t| m.bodies.push(t)),
            "subject" => lang_text(&el, ns).map(|t| m.subjects.push(t)),
            "thread"
                if m.thread.is_none()
                    && el.attr("xmlns").is_none()
                    && only_attrs(&el, false, &["parent"]) =>
            {
                text_only(&el).map(|t| {
                    m.thread = Some(t);
                    m.thread_parent = el.attr_str("parent");
                })
            }
            "error" if m.error.is_none() => decode_error(&el, ns).map(|e| m.error = Some(e)),
            _ => None,
        };
        if typed.is_none() {
            m.payloads.push(decode_payload(el, ns));
        }
    }
    m
}

fn decode_presence<'a>(
    c: Common<'a>,
    t: StanzaType,
    children: impl Iterator<Item = Child<'a>>,
    ns: &str,
) -> Presence<'a> {
    let StanzaType::Presence(type_) = t else {
        unreachable!("checked by check_stanza")
    };
    let mut p = Presence {
        id: c.id,
        type_,
        from: c.from,
        to: c.to,
        lang: c.lang,
        attrs: c.attrs,
        ..Presence::default()
    };
    for child in children {
        let el = match child {
            Ok(el) => el,
            Err(text) => {
                push_text(&mut p.payloads, text);
                continue;
            }
        };
        let plain = el.attr("xmlns").is_none() && only_attrs(&el, false, &[]);
        let typed = match el.name.as_ref() {
            "show" if plain && p.show.is_none() => text_only(&el)
                .and_then(|t| Show::parse(&t))
                .map(|s| p.show = Some(s)),
            "status" => lang_text(&el, ns).map(|t| p.statuses.push(t)),
            "priority" if plain && p.priority.is_none() => text_only(&el)
                .and_then(|t| t.parse::<i8>().ok().filter(|n| n.to_string() == t))
                .map(|n| p.priority = Some(n)),
            "error" if p.error.is_none() => decode_error(&el, ns).map(|e| p.error = Some(e)),
            _ => None,
        };
        if typed.is_none() {
            p.payloads.push(decode_payload(el, ns));
        }
    }
    p
}

fn decode_iq<'a>(
    c: Common<'a>,
    t: StanzaType,
    children: impl Iterator<Item = Child<'a>>,
    ns: &str,
) -> Iq<'a> {
    let StanzaType::Iq(type_) = t else {
        unreachable!("checked by check_stanza")
    };
    let mut payload = None;
    let mut error = None;
    // check_iq_children refused IQs with text in them.
    for el in children.filter_map(|c| c.ok()) {
        if type_ == IqType::Error && error.is_none() && el.name == "error" {
            if let Some(e) = decode_error(&el, ns) {
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

fn decode_error<'a>(el: &Element<'a>, ns: &str) -> Option<StanzaError<'a>> {
    if ns_of(el, ns) != ns || el.attr("xmlns").is_some() || !only_attrs(el, false, &["type", "by"])
    {
        return None;
    }
    let type_ = ErrorType::parse(el.attr("type")?)?;
    let by = opt_jid(el.attr_str("by"))?;
    let mut condition = None;
    let mut condition_text = None;
    let mut text = None;
    let mut text_lang = None;
    let mut app = None;
    for c in child_elements(el)? {
        let in_stanzas = c.attr("xmlns") == Some(ns::STANZAS);
        if in_stanzas && c.name == "text" && text.is_none() && only_attrs(c, true, &[XML_LANG]) {
            text = Some(text_only(c)?);
            text_lang = c.attr_str(XML_LANG);
        } else if in_stanzas && condition.is_none() && only_attrs(c, true, &[]) {
            let cond = Condition::parse(&c.name)?;
            let t = text_only(c)?;
            if !t.is_empty() {
                if !matches!(cond, Condition::Gone | Condition::Redirect) {
                    return None;
                }
                condition_text = Some(t);
            }
            condition = Some(cond);
        } else if !in_stanzas && app.is_none() && c.attr("xmlns").is_some() {
            app = Some(c.clone());
        } else {
            return None;
        }
    }
    Some(StanzaError {
        type_,
        by,
        condition: condition?,
        condition_text,
        text,
        text_lang,
        app,
    })
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
    let name = el.name.as_ref();
    match ns {
        ns::CHATSTATES if only_attrs(el, true, &[]) && is_empty(el) => {
            ChatState::parse(name).map(Payload::ChatState)
        }
        ns::RECEIPTS if name == "request" && only_attrs(el, true, &[]) && is_empty(el) => {
            Some(Payload::ReceiptRequest)
        }
        ns::RECEIPTS if name == "received" && only_attrs(el, true, &["id"]) && is_empty(el) => {
            Some(Payload::ReceiptReceived {
                id: el.attr_str("id"),
            })
        }
        ns::DELAY if name == "delay" && only_attrs(el, true, &["stamp", "from"]) => {
            let reason = text_only(el)?;
            Some(Payload::Delay(Delay {
                stamp: el.attr_str("stamp")?,
                from: opt_jid(el.attr_str("from"))?,
                reason: if el.children.is_empty() {
                    None
                } else {
                    Some(reason)
                },
            }))
        }
        ns::PING if name == "ping" && only_attrs(el, true, &[]) && is_empty(el) => {
            Some(Payload::Ping)
        }
        ns::SID if name == "stanza-id" && only_attrs(el, true, &["id", "by"]) && is_empty(el) => {
            Some(Payload::StanzaId {
                id: el.attr_str("id")?,
                by: normalize_jid(el.attr_str("by")?).ok()?,
            })
        }
        ns::SID if name == "origin-id" && only_attrs(el, true, &["id"]) && is_empty(el) => {
            Some(Payload::OriginId {
                id: el.attr_str("id")?,
            })
        }
        ns::JSON if name == "json" && only_attrs(el, true, &[]) => {
            Some(Payload::Json(text_only(el)?))
        }
        ns::TERM if name == "term" && only_attrs(el, true, &[]) => {
            let b64 = text_only(el)?;
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .ok()
                .map(|b| Payload::Term(Cow::Owned(b)))
        }
        ns::MUC if name == "x" && only_attrs(el, true, &[]) => {
            decode_muc_join(el).map(Payload::MucJoin)
        }
        ns::MUC_USER if name == "x" && only_attrs(el, true, &[]) => {
            decode_muc_user(el).map(Payload::MucUser)
        }
        ns::ROSTER if name == "query" && only_attrs(el, true, &["ver"]) => {
            decode_roster(el).map(Payload::Roster)
        }
        ns::DISCO_INFO if name == "query" && only_attrs(el, true, &["node"]) => {
            decode_disco_info(el).map(Payload::DiscoInfo)
        }
        ns::DISCO_ITEMS if name == "query" && only_attrs(el, true, &["node"]) => {
            decode_disco_items(el).map(Payload::DiscoItems)
        }
        _ => None,
    }
}

fn opt_u32(v: Option<&str>) -> Option<Option<u32>> {
    match v {
        None => Some(None),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| n.to_string() == s)
            .map(Some),
    }
}

fn decode_muc_join<'a>(el: &Element<'a>) -> Option<MucJoin<'a>> {
    let mut j = MucJoin::default();
    for c in child_elements(el)? {
        if plain_child(c, "password", &[]) && j.password.is_none() {
            j.password = Some(text_only(c)?);
        } else if plain_child(
            c,
            "history",
            &["maxchars", "maxstanzas", "seconds", "since"],
        ) && j.history.is_none()
            && is_empty(c)
        {
            j.history = Some(MucHistory {
                maxchars: opt_u32(c.attr("maxchars"))?,
                maxstanzas: opt_u32(c.attr("maxstanzas"))?,
                seconds: opt_u32(c.attr("seconds"))?,
                since: c.attr_str("since"),
            });
        } else {
            return None;
        }
    }
    Some(j)
}

fn decode_muc_user<'a>(el: &Element<'a>) -> Option<MucUser<'a>> {
    let mut u = MucUser::default();
    for c in child_elements(el)? {
        if plain_child(c, "item", &["affiliation", "role", "jid", "nick"]) {
            let mut item = MucItem {
                affiliation: match c.attr("affiliation") {
                    None => None,
                    Some(a) => Some(Affiliation::parse(a)?),
                },
                role: match c.attr("role") {
                    None => None,
                    Some(r) => Some(Role::parse(r)?),
                },
                jid: opt_jid(c.attr_str("jid"))?,
                nick: c.attr_str("nick"),
                ..MucItem::default()
            };
            let mut actor = false;
            for g in child_elements(c)? {
                if plain_child(g, "actor", &["jid", "nick"]) && !actor && is_empty(g) {
                    actor = true;
                    item.actor_jid = opt_jid(g.attr_str("jid"))?;
                    item.actor_nick = g.attr_str("nick");
                    if item.actor_jid.is_none() && item.actor_nick.is_none() {
                        return None;
                    }
                } else if plain_child(g, "reason", &[]) && item.reason.is_none() {
                    item.reason = Some(text_only(g)?);
                } else {
                    return None;
                }
            }
            u.items.push(item);
        } else if plain_child(c, "status", &["code"]) && is_empty(c) {
            let code = c.attr("code")?;
            u.status_codes
                .push(code.parse::<u16>().ok().filter(|n| n.to_string() == code)?);
        } else {
            return None;
        }
    }
    Some(u)
}

fn decode_roster<'a>(el: &Element<'a>) -> Option<Roster<'a>> {
    let mut r = Roster {
        ver: el.attr_str("ver"),
        items: Vec::new(),
    };
    for c in child_elements(el)? {
        if !plain_child(
            c,
            "item",
            &["jid", "name", "subscription", "ask", "approved"],
        ) {
            return None;
        }
        let mut item = RosterItem {
            jid: normalize_jid(c.attr_str("jid")?).ok()?,
            name: c.attr_str("name"),
            subscription: match c.attr("subscription") {
                None => None,
                Some(s) => Some(Subscription::parse(s)?),
            },
            ask: match c.attr("ask") {
                None => false,
                Some("subscribe") => true,
                Some(_) => return None,
            },
            approved: match c.attr("approved") {
                None => false,
                Some("true") => true,
                Some(_) => return None,
            },
            groups: Vec::new(),
        };
        for g in child_elements(c)? {
            if !plain_child(g, "group", &[]) {
                return None;
            }
            item.groups.push(text_only(g)?);
        }
        r.items.push(item);
    }
    Some(r)
}

fn decode_disco_info<'a>(el: &Element<'a>) -> Option<DiscoInfo<'a>> {
    let mut d = DiscoInfo {
        node: el.attr_str("node"),
        ..DiscoInfo::default()
    };
    // Children are written back identities first, then features, then
    // extensions: only that order is represented exactly.
    let mut phase = 0;
    for c in child_elements(el)? {
        if plain_child(c, "identity", &["category", "type", "name", XML_LANG])
            && is_empty(c)
            && phase == 0
        {
            d.identities.push(DiscoIdentity {
                category: c.attr_str("category")?,
                type_: c.attr_str("type")?,
                name: c.attr_str("name"),
                lang: c.attr_str(XML_LANG),
            });
        } else if plain_child(c, "feature", &["var"]) && is_empty(c) && phase <= 1 {
            phase = 1;
            d.features.push(c.attr_str("var")?);
        } else if c.attr("xmlns").is_some_and(|n| n != ns::DISCO_INFO) {
            phase = 2;
            d.extensions.push(c.clone());
        } else {
            return None;
        }
    }
    Some(d)
}

fn decode_disco_items<'a>(el: &Element<'a>) -> Option<DiscoItems<'a>> {
    let mut d = DiscoItems {
        node: el.attr_str("node"),
        items: Vec::new(),
    };
    for c in child_elements(el)? {
        if !(plain_child(c, "item", &["jid", "node", "name"]) && is_empty(c)) {
            return None;
        }
        d.items.push(DiscoItem {
            jid: normalize_jid(c.attr_str("jid")?).ok()?,
            node: c.attr_str("node"),
            name: c.attr_str("name"),
        });
    }
    Some(d)
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
        const DEFAULT: &[u8] = b" xmlns='jabber:client'";
        let at = 1 + name.len();
        if out[at..].starts_with(DEFAULT) {
            out.drain(at..at + DEFAULT.len());
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

impl Message<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let type_ = (self.type_ != MessageType::Normal).then(|| self.type_.as_str());
        let mut t = write_head(
            out,
            "message",
            self.id.as_deref(),
            type_,
            &self.from,
            &self.to,
            &self.lang,
            &self.attrs,
        )?;
        if self.bodies.is_empty()
            && self.subjects.is_empty()
            && self.thread.is_none()
            && self.error.is_none()
            && self.payloads.is_empty()
        {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        write_lang_texts(out, "subject", &self.subjects)?;
        write_lang_texts(out, "body", &self.bodies)?;
        if let Some(th) = &self.thread {
            write_text_el(
                out,
                "thread",
                &[("parent", self.thread_parent.as_deref())],
                th,
            )?;
        }
        write_error_payloads_close(out, &self.error, &self.payloads, "message")
    }
}

impl Presence<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let type_ = (self.type_ != PresenceType::Available).then(|| self.type_.as_str());
        let mut t = write_head(
            out,
            "presence",
            self.id.as_deref(),
            type_,
            &self.from,
            &self.to,
            &self.lang,
            &self.attrs,
        )?;
        if self.show.is_none()
            && self.statuses.is_empty()
            && self.priority.is_none()
            && self.error.is_none()
            && self.payloads.is_empty()
        {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        if let Some(s) = self.show {
            write_text_el(out, "show", &[], s.as_str())?;
        }
        write_lang_texts(out, "status", &self.statuses)?;
        if let Some(p) = self.priority {
            write_text_el(out, "priority", &[], &p.to_string())?;
        }
        write_error_payloads_close(out, &self.error, &self.payloads, "presence")
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

impl StanzaError<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        check_jid(&self.by)?;
        let mut t = Tag::open(out, "error");
        t.attr("type", self.type_.as_str())?
            .opt("by", self.by.as_deref())?;
        let out = t.body();
        let cond = self.condition.as_str();
        let text = match (self.condition, &self.condition_text) {
            (Condition::Gone | Condition::Redirect, Some(t)) => t.as_ref(),
            _ => "",
        };
        write_text_el(out, cond, &[("xmlns", Some(ns::STANZAS))], text)?;
        if let Some(text) = &self.text {
            write_text_el(
                out,
                "text",
                &[
                    ("xmlns", Some(ns::STANZAS)),
                    (XML_LANG, self.text_lang.as_deref()),
                ],
                text,
            )?;
        }
        if let Some(app) = &self.app {
            app.write_to(out)?;
        }
        close_tag(out, "error");
        Ok(())
    }
}

fn empty_ns(out: &mut Vec<u8>, name: &str, ns: &str) -> Result<()> {
    Tag::open(out, name).attr("xmlns", ns)?.empty();
    Ok(())
}

impl Payload<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Payload::Xml(el) => el.write_to(out),
            Payload::Text(t) => escape_text(out, t),
            Payload::ChatState(s) => empty_ns(out, s.as_str(), ns::CHATSTATES),
            Payload::ReceiptRequest => empty_ns(out, "request", ns::RECEIPTS),
            Payload::ReceiptReceived { id } => {
                Tag::open(out, "received")
                    .attr("xmlns", ns::RECEIPTS)?
                    .opt("id", id.as_deref())?
                    .empty();
                Ok(())
            }
            Payload::Ping => empty_ns(out, "ping", ns::PING),
            Payload::Delay(d) => {
                check_jid(&d.from)?;
                let attrs = [
                    ("xmlns", Some(ns::DELAY)),
                    ("from", d.from.as_deref()),
                    ("stamp", Some(d.stamp.as_ref())),
                ];
                write_text_el(out, "delay", &attrs, d.reason.as_deref().unwrap_or(""))
            }
            Payload::StanzaId { id, by } => {
                Tag::open(out, "stanza-id")
                    .attr("xmlns", ns::SID)?
                    .attr("id", id)?
                    .attr("by", by)?
                    .empty();
                Ok(())
            }
            Payload::OriginId { id } => {
                Tag::open(out, "origin-id")
                    .attr("xmlns", ns::SID)?
                    .attr("id", id)?
                    .empty();
                Ok(())
            }
            Payload::Json(json) => write_text_el(out, "json", &[("xmlns", Some(ns::JSON))], json),
            Payload::Term(etf) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(etf);
                write_text_el(out, "term", &[("xmlns", Some(ns::TERM))], &b64)
            }
            Payload::MucJoin(j) => j.write_to(out),
            Payload::MucUser(u) => u.write_to(out),
            Payload::Roster(r) => r.write_to(out),
            Payload::DiscoInfo(d) => d.write_to(out),
            Payload::DiscoItems(d) => d.write_to(out),
        }
    }
}

impl MucJoin<'_> {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "x");
        t.attr("xmlns", ns::MUC)?;
        if self.password.is_none() && self.history.is_none() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        if let Some(h) = &self.history {
            let n = |v: Option<u32>| v.map(|n| n.to_string());
            let (mc, ms, s) = (n(h.maxchars), n(h.maxstanzas), n(h.seconds));
            let mut t = Tag::open(out, "history");
            t.opt("maxchars", mc.as_deref())?
                .opt("maxstanzas", ms.as_deref())?
                .opt("seconds", s.as_deref())?
                .opt("since", h.since.as_deref())?
                .empty();
        }
        if let Some(p) = &self.password {
            write_text_el(out, "password", &[], p)?;
        }
        close_tag(out, "x");
        Ok(())
    }
}

impl MucUser<'_> {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "x");
        t.attr("xmlns", ns::MUC_USER)?;
        if self.items.is_empty() && self.status_codes.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.items {
            check_jid(&i.jid)?;
            check_jid(&i.actor_jid)?;
            let mut t = Tag::open(out, "item");
            t.opt("affiliation", i.affiliation.map(Affiliation::as_str))?
                .opt("jid", i.jid.as_deref())?
                .opt("nick", i.nick.as_deref())?
                .opt("role", i.role.map(Role::as_str))?;
            let has_actor = i.actor_jid.is_some() || i.actor_nick.is_some();
            if !has_actor && i.reason.is_none() {
                t.empty();
                continue;
            }
            let out = t.body();
            if has_actor {
                Tag::open(out, "actor")
                    .opt("jid", i.actor_jid.as_deref())?
                    .opt("nick", i.actor_nick.as_deref())?
                    .empty();
            }
            if let Some(r) = &i.reason {
                write_text_el(out, "reason", &[], r)?;
            }
            close_tag(out, "item");
        }
        for code in &self.status_codes {
            Tag::open(out, "status")
                .attr("code", &code.to_string())?
                .empty();
        }
        close_tag(out, "x");
        Ok(())
    }
}

impl Roster<'_> {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "query");
        t.attr("xmlns", ns::ROSTER)?
            .opt("ver", self.ver.as_deref())?;
        if self.items.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.items {
            normalize_jid(i.jid.as_ref())?;
            let mut t = Tag::open(out, "item");
            t.attr("jid", &i.jid)?
                .opt("name", i.name.as_deref())?
                .opt("subscription", i.subscription.map(Subscription::as_str))?
                .opt("ask", i.ask.then_some("subscribe"))?
                .opt("approved", i.approved.then_some("true"))?;
            if i.groups.is_empty() {
                t.empty();
                continue;
            }
            let out = t.body();
            for g in &i.groups {
                write_text_el(out, "group", &[], g)?;
            }
            close_tag(out, "item");
        }
        close_tag(out, "query");
        Ok(())
    }
}

impl DiscoInfo<'_> {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "query");
        t.attr("xmlns", ns::DISCO_INFO)?
            .opt("node", self.node.as_deref())?;
        if self.identities.is_empty() && self.features.is_empty() && self.extensions.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.identities {
            Tag::open(out, "identity")
                .attr("category", &i.category)?
                .attr("type", &i.type_)?
                .opt("name", i.name.as_deref())?
                .opt(XML_LANG, i.lang.as_deref())?
                .empty();
        }
        for f in &self.features {
            Tag::open(out, "feature").attr("var", f)?.empty();
        }
        for x in &self.extensions {
            x.write_to(out)?;
        }
        close_tag(out, "query");
        Ok(())
    }
}

impl DiscoItems<'_> {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "query");
        t.attr("xmlns", ns::DISCO_ITEMS)?
            .opt("node", self.node.as_deref())?;
        if self.items.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.items {
            normalize_jid(i.jid.as_ref())?;
            Tag::open(out, "item")
                .attr("jid", &i.jid)?
                .opt("node", i.node.as_deref())?
                .opt("name", i.name.as_deref())?
                .empty();
        }
        close_tag(out, "query");
        Ok(())
    }
}

/// Parses bytes holding one stanza and decodes it.
pub fn decode_bytes(input: &[u8], limits: xml::Limits) -> Result<Stanza<'_>> {
    decode(xml::parse(input, limits)?, None)
}
