//! The bus's stanzas (docs/PROTOCOL.md §5 and §6), both ways, with no
//! session: what a node writes (term messages, receipts, presences with
//! `<node/>` and its status, pings, calls, answers, cancels, joins, room
//! configuration, broadcasts, disco#items) and how it reads what it
//! receives.

use super::error::CallError;
use super::group::Status;
use super::Payload as Data;
use crate::etf::{self, Term};
use crate::ns;
use crate::stanza::{
    Condition, DiscoItem, DiscoItems, ErrorType, Iq, IqType, Message, MessageType, MucHistory,
    MucJoin, Payload, Presence, PresenceType, Stanza, StanzaError,
};
use crate::xml::Element;
use base64::Engine;
use std::borrow::Cow;
use std::time::Duration;

/// Longest method name, in bytes (docs/PROTOCOL.md §5.3).
pub const MAX_METHOD_BYTES: usize = 256;

/// The disco#items node that lists the methods a node serves
/// (docs/PROTOCOL.md §6.3).
pub const METHODS_NODE: &str = "urn:xmpp-bridge:bus:0#methods";

/// XEP-0045 room owner namespace (configuration).
pub(crate) const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0004 data forms.
pub(crate) const DATA_FORMS: &str = "jabber:x:data";
/// The `FORM_TYPE` of a room configuration form.
pub(crate) const ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";

/// The conditions of an error without a bus element that say the peer is
/// not there (a server's answer, docs/PROTOCOL.md §5.3).
pub(crate) const PEER_UNAVAILABLE: &[Condition] = &[
    Condition::ServiceUnavailable,
    Condition::RecipientUnavailable,
    Condition::ItemNotFound,
    Condition::RemoteServerNotFound,
    Condition::RemoteServerTimeout,
    Condition::Gone,
];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn bytes(s: Stanza<'_>) -> Vec<u8> {
    // Every part was checked or built here: the JIDs are normalised ones,
    // the texts come from Rust strings (the writer refuses only control
    // characters, which the renderer and our own texts escape).
    s.to_stream_bytes()
        .unwrap_or_else(|e| panic!("a bus stanza could not be written: {e}"))
}

/// Text safe for XML: the control characters XML 1.0 cannot carry are
/// replaced (handler errors and panic messages are arbitrary text).
pub(crate) fn xml_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn bus_el(name: &'static str) -> Element<'static> {
    Element::new(name).with_attr("xmlns", ns::BUS)
}

/// `<term/>` or `<json/>` as an element (inside `<call/>` and `<result/>`).
fn data_el(data: &Data) -> Element<'static> {
    match data {
        Data::Term(t) => Element::new("term")
            .with_attr("xmlns", ns::TERM)
            .with_text(b64(&etf::encode(t))),
        Data::Json(v) => Element::new("json")
            .with_attr("xmlns", ns::JSON)
            .with_text(v.to_string()),
    }
}

/// The `<body/>` of a data message: the term in Elixir syntax, or the JSON
/// text, cut at 1024 bytes.
fn body(data: &Data) -> String {
    let text = match data {
        Data::Term(t) => return xml_safe(&super::render::render(t)),
        Data::Json(v) => v.to_string(),
    };
    // JSON text is the term of the JSON world: cut the same way.
    let limit = super::render::BODY_LIMIT;
    if text.len() <= limit {
        return text;
    }
    let mut cut = limit - '…'.len_utf8();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// A term (or JSON) message (docs/PROTOCOL.md §5.2): `id` and origin id
/// the same token, a receipt request when `receipt`.
pub(crate) fn data_message(to: &str, id: &str, data: &Data, receipt: bool) -> Vec<u8> {
    let mut payloads = vec![match data {
        Data::Term(t) => Payload::Term(Cow::Owned(etf::encode(t))),
        Data::Json(v) => Payload::Json(Cow::Owned(v.to_string())),
    }];
    payloads.push(Payload::OriginId { id: id.into() });
    if receipt {
        payloads.push(Payload::ReceiptRequest);
    }
    bytes(Stanza::Message(Message {
        id: Some(id.into()),
        to: Some(to.into()),
        bodies: vec![(None, body(data).into())],
        payloads,
        ..Message::default()
    }))
}

/// The XEP-0184 receipt for message `id`.
pub(crate) fn receipt(to: &str, own_id: &str, id: &str) -> Vec<u8> {
    bytes(Stanza::Message(Message {
        id: Some(own_id.into()),
        to: Some(to.into()),
        payloads: vec![Payload::ReceiptReceived {
            id: Some(id.into()),
        }],
        ..Message::default()
    }))
}

/// The error answer to a message whose term was refused.
pub(crate) fn not_acceptable(to: &str, id: Option<&str>, why: &str) -> Vec<u8> {
    bytes(Stanza::Message(Message {
        id: id.map(|s| s.to_owned().into()),
        type_: MessageType::Error,
        to: Some(to.into()),
        error: Some(StanzaError {
            type_: ErrorType::Modify,
            by: None,
            condition: Condition::NotAcceptable,
            condition_text: None,
            text: Some(xml_safe(why).into()),
            text_lang: None,
            app: None,
        }),
        ..Message::default()
    }))
}

/// The `<node/>` of a presence: the incarnation, and the status payload
/// inside when there is one (docs/PROTOCOL.md §6.2).
fn node_el(incarnation: &str, watch: bool, status: &Status) -> Element<'static> {
    let mut node = bus_el("node").with_attr("incarnation", incarnation.to_owned());
    if watch {
        node = node.with_attr("watch", "true");
    }
    if let Some(p) = &status.payload {
        node = node.with_child(data_el(p));
    }
    node
}

fn status_presence(to: Option<&str>, status: &Status, payloads: Vec<Payload<'static>>) -> Vec<u8> {
    bytes(Stanza::Presence(Presence {
        to: to.map(|s| s.to_owned().into()),
        show: status.show,
        statuses: status
            .text
            .iter()
            .map(|t| (None, xml_safe(t).into()))
            .collect(),
        payloads,
        ..Presence::default()
    }))
}

/// Presence carrying `<node/>` and the node's status: broadcast (`to`
/// None) or directed; with `watch='true'` when asking `to` to tell us
/// when it goes.
pub(crate) fn presence(
    to: Option<&str>,
    incarnation: &str,
    watch: bool,
    status: &Status,
) -> Vec<u8> {
    status_presence(
        to,
        status,
        vec![Payload::Xml(node_el(incarnation, watch, status))],
    )
}

/// The join of a room (docs/PROTOCOL.md §6.1): presence to `room/nick`
/// with the MUC element asking for the last `history` messages (none by
/// default), and the node's status.
pub(crate) fn join(occupant: &str, incarnation: &str, status: &Status, history: u32) -> Vec<u8> {
    let muc = MucJoin {
        password: None,
        history: Some(MucHistory {
            maxstanzas: Some(history),
            ..MucHistory::default()
        }),
    };
    status_presence(
        Some(occupant),
        status,
        vec![
            Payload::MucJoin(muc),
            Payload::Xml(node_el(incarnation, false, status)),
        ],
    )
}

/// Leaving a room: unavailable presence to `room/nick`.
pub(crate) fn leave(occupant: &str) -> Vec<u8> {
    bytes(Stanza::Presence(Presence {
        type_: PresenceType::Unavailable,
        to: Some(occupant.to_owned().into()),
        ..Presence::default()
    }))
}

fn form_field(var: &'static str, value: &'static str) -> Element<'static> {
    Element::new("field")
        .with_attr("var", var)
        .with_child(Element::new("value").with_text(value))
}

/// The configuration the creator of a room submits (docs/PROTOCOL.md
/// §6.1): non-anonymous, not persistent, not public.
pub(crate) fn room_config(room: &str, id: &str) -> Vec<u8> {
    let form = Element::new("x")
        .with_attr("xmlns", DATA_FORMS)
        .with_attr("type", "submit")
        .with_child(form_field("FORM_TYPE", ROOMCONFIG))
        .with_child(form_field("muc#roomconfig_whois", "anyone"))
        .with_child(form_field("muc#roomconfig_persistentroom", "0"))
        .with_child(form_field("muc#roomconfig_publicroom", "0"));
    let query = Element::new("query")
        .with_attr("xmlns", MUC_OWNER)
        .with_child(form);
    bytes(Stanza::Iq(Iq {
        id: id.into(),
        type_: IqType::Set,
        from: None,
        to: Some(room.to_owned().into()),
        lang: None,
        payload: Some(Payload::Xml(query)),
        error: None,
        attrs: Vec::new(),
    }))
}

/// A broadcast (docs/PROTOCOL.md §6.1): a `groupchat` message to the room
/// with the body, the term or JSON and the origin id of a term message,
/// and no receipt request.
pub(crate) fn group_message(room: &str, id: &str, data: &Data) -> Vec<u8> {
    let payload = match data {
        Data::Term(t) => Payload::Term(Cow::Owned(etf::encode(t))),
        Data::Json(v) => Payload::Json(Cow::Owned(v.to_string())),
    };
    bytes(Stanza::Message(Message {
        id: Some(id.to_owned().into()),
        type_: MessageType::Groupchat,
        to: Some(room.to_owned().into()),
        bodies: vec![(None, body(data).into())],
        payloads: vec![
            payload,
            Payload::OriginId {
                id: id.to_owned().into(),
            },
        ],
        ..Message::default()
    }))
}

/// The disco#items query for the methods `to` serves.
pub(crate) fn methods_query(to: &str, id: &str) -> Vec<u8> {
    bytes(Stanza::Iq(Iq {
        id: id.to_owned().into(),
        type_: IqType::Get,
        from: None,
        to: Some(to.to_owned().into()),
        lang: None,
        payload: Some(Payload::DiscoItems(DiscoItems {
            node: Some(METHODS_NODE.into()),
            items: Vec::new(),
        })),
        error: None,
        attrs: Vec::new(),
    }))
}

/// The answer to a disco#items query (docs/PROTOCOL.md §6.3) on `node`:
/// the methods `own` serves, one item each, sorted by name (no node: one
/// item pointing there; another node: `item-not-found`).
pub(crate) fn items_answer(
    to: &str,
    id: &str,
    own: &str,
    node: Option<&str>,
    methods: &[&str],
) -> Vec<u8> {
    let item = |name: &str| DiscoItem {
        jid: own.to_owned().into(),
        node: Some(METHODS_NODE.into()),
        name: Some(xml_safe(name).into()),
    };
    let items = match node {
        None => vec![item("methods")],
        Some(METHODS_NODE) => {
            let mut names = methods.to_vec();
            names.sort_unstable();
            names.into_iter().map(item).collect()
        }
        Some(_) => {
            return iq_error(
                to,
                id,
                ErrorType::Cancel,
                Condition::ItemNotFound,
                None,
                None,
            )
        }
    };
    bytes(Stanza::Iq(Iq {
        id: id.to_owned().into(),
        type_: IqType::Result,
        from: None,
        to: Some(to.to_owned().into()),
        lang: None,
        payload: Some(Payload::DiscoItems(DiscoItems {
            node: node.map(|n| n.to_owned().into()),
            items,
        })),
        error: None,
        attrs: Vec::new(),
    }))
}

/// The unavailable presence a node sends each watcher before a clean stop.
pub(crate) fn goodbye(to: &str, incarnation: &str) -> Vec<u8> {
    let node = bus_el("node")
        .with_attr("incarnation", incarnation.to_owned())
        .with_attr("goodbye", "true");
    bytes(Stanza::Presence(Presence {
        type_: PresenceType::Unavailable,
        to: Some(to.to_owned().into()),
        payloads: vec![Payload::Xml(node)],
        ..Presence::default()
    }))
}

/// The broadcast unavailable presence that ends a node's presence.
pub(crate) fn unavailable() -> Vec<u8> {
    bytes(Stanza::Presence(Presence {
        type_: PresenceType::Unavailable,
        ..Presence::default()
    }))
}

/// An XEP-0199 ping.
pub(crate) fn ping(to: &str, id: &str) -> Vec<u8> {
    bytes(Stanza::Iq(Iq {
        id: id.into(),
        type_: IqType::Get,
        from: None,
        to: Some(to.into()),
        lang: None,
        payload: Some(Payload::Ping),
        error: None,
        attrs: Vec::new(),
    }))
}

/// A call (docs/PROTOCOL.md §5.3): the arguments as one list.
pub(crate) fn call(to: &str, id: &str, method: &str, timeout: Duration, args: &Data) -> Vec<u8> {
    let call = bus_el("call")
        .with_attr("method", method.to_owned())
        .with_attr("timeout", timeout.as_millis().to_string())
        .with_child(data_el(args));
    bytes(Stanza::Iq(Iq {
        id: id.into(),
        type_: IqType::Set,
        from: None,
        to: Some(to.into()),
        lang: None,
        payload: Some(Payload::Xml(call)),
        error: None,
        attrs: Vec::new(),
    }))
}

/// The caller's notice that it gave up on call `id`.
pub(crate) fn cancel(to: &str, id: &str) -> Vec<u8> {
    bytes(Stanza::Message(Message {
        type_: MessageType::Headline,
        to: Some(to.into()),
        payloads: vec![Payload::Xml(
            bus_el("cancel").with_attr("id", id.to_owned()),
        )],
        ..Message::default()
    }))
}

/// The result of call `id`.
pub(crate) fn call_result(to: &str, id: &str, result: &Data) -> Vec<u8> {
    bytes(Stanza::Iq(Iq {
        id: id.into(),
        type_: IqType::Result,
        from: None,
        to: Some(to.into()),
        lang: None,
        payload: Some(Payload::Xml(bus_el("result").with_child(data_el(result)))),
        error: None,
        attrs: Vec::new(),
    }))
}

/// Why a serving node did not return a result (the table of
/// docs/PROTOCOL.md §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NoMethod(String),
    Crashed(String),
    Busy,
    Timeout,
    BadArgs(String),
}

impl Refusal {
    fn parts(&self) -> (ErrorType, Condition, &'static str, Option<&str>) {
        match self {
            Refusal::NoMethod(m) => (
                ErrorType::Cancel,
                Condition::ItemNotFound,
                "no-method",
                Some(m),
            ),
            Refusal::Crashed(why) => (
                ErrorType::Cancel,
                Condition::InternalServerError,
                "crashed",
                Some(why),
            ),
            Refusal::Busy => (ErrorType::Wait, Condition::ResourceConstraint, "busy", None),
            Refusal::Timeout => (
                ErrorType::Wait,
                Condition::UndefinedCondition,
                "timeout",
                None,
            ),
            Refusal::BadArgs(why) => (
                ErrorType::Modify,
                Condition::BadRequest,
                "bad-args",
                Some(why),
            ),
        }
    }
}

/// The error answer to call `id`.
pub(crate) fn call_error(to: &str, id: &str, refusal: &Refusal) -> Vec<u8> {
    let (type_, condition, name, text) = refusal.parts();
    iq_error(to, id, type_, condition, text, Some(bus_el(name)))
}

/// An IQ error answer.
pub(crate) fn iq_error(
    to: &str,
    id: &str,
    type_: ErrorType,
    condition: Condition,
    text: Option<&str>,
    app: Option<Element<'static>>,
) -> Vec<u8> {
    bytes(Stanza::Iq(Iq {
        id: id.into(),
        type_: IqType::Error,
        from: None,
        to: Some(to.into()),
        lang: None,
        payload: None,
        error: Some(StanzaError {
            type_,
            by: None,
            condition,
            condition_text: None,
            text: text.filter(|t| !t.is_empty()).map(|t| xml_safe(t).into()),
            text_lang: None,
            app,
        }),
        attrs: Vec::new(),
    }))
}

// ------------------------------------------------------------------ reading

fn is_bus(el: &Element<'_>, name: &str) -> bool {
    el.name == name && el.attr("xmlns") == Some(ns::BUS)
}

/// A `<node/>` element: who sent it, and what for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NodeInfo {
    pub incarnation: Option<String>,
    pub watch: bool,
    pub goodbye: bool,
    /// A name's goodbye: how its holder ended (docs/PROTOCOL.md §7.3).
    pub exit: Option<String>,
}

fn node_info(el: &Element<'_>) -> Option<NodeInfo> {
    is_bus(el, "node").then(|| NodeInfo {
        incarnation: el.attr("incarnation").map(str::to_owned),
        watch: el.attr("watch") == Some("true"),
        goodbye: el.attr("goodbye") == Some("true"),
        exit: el.attr("exit").map(str::to_owned),
    })
}

/// The `<node/>` among payloads (a presence's).
pub(crate) fn node_in(payloads: &[Payload<'_>]) -> Option<NodeInfo> {
    payloads.iter().find_map(|p| match p {
        Payload::Xml(el) => node_info(el),
        _ => None,
    })
}

/// The `<node/>` of a ping result, if it carries one.
pub(crate) fn node_of_iq(iq: &Iq<'_>) -> Option<NodeInfo> {
    match &iq.payload {
        Some(Payload::Xml(el)) => node_info(el),
        _ => None,
    }
}

/// The id of a `<cancel/>` among a message's payloads.
pub(crate) fn cancel_in(payloads: &[Payload<'_>]) -> Option<String> {
    payloads.iter().find_map(|p| match p {
        Payload::Xml(el) if is_bus(el, "cancel") => el.attr("id").map(str::to_owned),
        _ => None,
    })
}

/// What a message carries for the application.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Carried {
    /// Nothing of the bus's.
    Nothing,
    Data(Data),
    /// A term or JSON payload that cannot be read (why).
    Refused(String),
}

/// The data a message carries: `<term/>` first, else `<json/>`
/// (docs/PROTOCOL.md §5.2).
pub(crate) fn carried(payloads: &[Payload<'_>]) -> Carried {
    let mut json = None;
    let mut bad_term = false;
    for p in payloads {
        match p {
            Payload::Term(bytes) => {
                return match etf::decode(bytes) {
                    Ok(t) => Carried::Data(Data::Term(t)),
                    Err(e) => Carried::Refused(e.to_string()),
                }
            }
            Payload::Json(text) if json.is_none() => json = Some(text),
            // The codec leaves a term payload it cannot read (bad Base64,
            // attributes it does not know) as an element.
            Payload::Xml(el) if el.name == "term" && el.attr("xmlns") == Some(ns::TERM) => {
                bad_term = true
            }
            _ => {}
        }
    }
    if bad_term {
        return Carried::Refused("the term payload is not Base64 text".into());
    }
    match json {
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => Carried::Data(Data::Json(v)),
            Err(e) => Carried::Refused(format!("invalid JSON: {e}")),
        },
        None => Carried::Nothing,
    }
}

/// The data inside `<call/>` or `<result/>`: `Ok(None)` when there is none.
fn data_in(el: &Element<'_>) -> Result<Option<Data>, String> {
    let mut json = None;
    for c in el.elements() {
        match (c.name.as_ref(), c.attr("xmlns")) {
            ("term", Some(ns::TERM)) => {
                let text = c.text();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(text.trim().as_bytes())
                    .map_err(|_| "the term payload is not Base64 text".to_string())?;
                return etf::decode(&raw)
                    .map(|t| Some(Data::Term(t)))
                    .map_err(|e| e.to_string());
            }
            ("json", Some(ns::JSON)) if json.is_none() => json = Some(c.text()),
            _ => {}
        }
    }
    match json {
        Some(text) => serde_json::from_str(&text)
            .map(|v| Some(Data::Json(v)))
            .map_err(|e| format!("invalid JSON: {e}")),
        None => Ok(None),
    }
}

/// A call request, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallRequest {
    pub method: String,
    /// The caller's timeout (None: it gave none).
    pub timeout: Option<Duration>,
    /// The arguments, and whether they came as JSON; or why they cannot be
    /// read.
    pub args: Result<(Vec<Term>, bool), String>,
}

/// The `<call/>` of an IQ set, if it is one.
pub(crate) fn call_request(iq: &Iq<'_>) -> Option<CallRequest> {
    let Some(Payload::Xml(el)) = &iq.payload else {
        return None;
    };
    if iq.type_ != IqType::Set || !is_bus(el, "call") {
        return None;
    }
    let method = el.attr("method").unwrap_or_default().to_owned();
    let timeout = el
        .attr("timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(Duration::from_millis);
    let args = if method.is_empty() || method.len() > MAX_METHOD_BYTES {
        Err(format!(
            "the method name must be 1 to {MAX_METHOD_BYTES} bytes long"
        ))
    } else {
        match data_in(el) {
            Ok(None) => Ok((Vec::new(), false)),
            Ok(Some(Data::Term(Term::List(items)))) => Ok((items, false)),
            Ok(Some(Data::Term(_))) => Err("the arguments are not a list".into()),
            Ok(Some(Data::Json(serde_json::Value::Array(items)))) => {
                Ok((items.iter().map(super::json::json_to_term).collect(), true))
            }
            Ok(Some(Data::Json(_))) => Err("the JSON arguments are not an array".into()),
            Err(why) => Err(why),
        }
    };
    Some(CallRequest {
        method,
        timeout,
        args,
    })
}

/// The answer to one of our calls: the result, or why there is none.
pub(crate) fn call_answer(iq: &Iq<'_>) -> Result<Data, CallError> {
    match iq.type_ {
        IqType::Result => match &iq.payload {
            Some(Payload::Xml(el)) if is_bus(el, "result") => match data_in(el) {
                Ok(Some(d)) => Ok(d),
                Ok(None) => Err(CallError::Decode("a result without a value".into())),
                Err(why) => Err(CallError::Decode(why)),
            },
            _ => Err(CallError::Decode("an answer without <result/>".into())),
        },
        _ => Err(match &iq.error {
            Some(e) => error_to_call_error(e),
            None => CallError::Decode("an error answer without <error/>".into()),
        }),
    }
}

/// The reason an error answer names (docs/PROTOCOL.md §5.3).
pub(crate) fn error_to_call_error(e: &StanzaError<'_>) -> CallError {
    let text = e.text.as_deref().unwrap_or_default().to_owned();
    let bus = e
        .app
        .as_ref()
        .filter(|a| a.attr("xmlns") == Some(ns::BUS))
        .map(|a| a.name.as_ref());
    match bus {
        Some("no-method") => CallError::NoMethod(text),
        Some("crashed") => CallError::Crashed(text),
        Some("busy") => CallError::Busy,
        Some("timeout") => CallError::Timeout,
        Some("bad-args") => CallError::BadArgs(text),
        _ if PEER_UNAVAILABLE.contains(&e.condition) => {
            CallError::PeerUnavailable(e.condition.as_str().to_owned())
        }
        _ => CallError::Stanza {
            condition: e.condition.as_str().to_owned(),
            text: e.text.as_deref().map(str::to_owned),
        },
    }
}

/// True for a name host's `noproc` error (docs/PROTOCOL.md §7.2).
pub(crate) fn is_noproc(e: &StanzaError<'_>) -> bool {
    e.app
        .as_ref()
        .is_some_and(|a| a.name == "noproc" && a.attr("xmlns") == Some(ns::BUS))
}

/// The error of a bounced message, as the reason its send failed.
pub(crate) fn bounce_reason(m: &Message<'_>) -> (String, Option<String>, bool) {
    match &m.error {
        Some(e) => (
            e.condition.as_str().to_owned(),
            e.text.as_deref().map(str::to_owned),
            e.type_ == ErrorType::Wait,
        ),
        None => ("undefined-condition".into(), None, false),
    }
}

/// What a room says about an occupant in its presence: the real JID
/// (non-anonymous rooms) and the status codes (`110`: this is you, `201`:
/// you created the room).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct MucInfo {
    pub jid: Option<String>,
    pub codes: Vec<u16>,
}

/// The `<x xmlns='http://jabber.org/protocol/muc#user'/>` of a presence,
/// typed or not (a room may add what the typed form does not know, such
/// as `<destroy/>`).
pub(crate) fn muc_user_in(payloads: &[Payload<'_>]) -> Option<MucInfo> {
    payloads.iter().find_map(|p| match p {
        Payload::MucUser(u) => Some(MucInfo {
            jid: u
                .items
                .iter()
                .find_map(|i| i.jid.as_deref().map(str::to_owned)),
            codes: u.status_codes.clone(),
        }),
        Payload::Xml(el) if el.name == "x" && el.attr("xmlns") == Some(ns::MUC_USER) => {
            let mut info = MucInfo::default();
            for c in el.elements() {
                match c.name.as_ref() {
                    "item" if info.jid.is_none() => {
                        info.jid = c.attr("jid").and_then(|j| crate::jid::normalize(j).ok());
                    }
                    "status" => {
                        if let Some(code) = c.attr("code").and_then(|c| c.parse().ok()) {
                            info.codes.push(code);
                        }
                    }
                    _ => {}
                }
            }
            Some(info)
        }
        _ => None,
    })
}

/// The status a presence carries (docs/PROTOCOL.md §6.2): `<show/>`, the
/// first `<status/>`, the term or JSON inside `<node/>` (one that cannot
/// be read is left out).
pub(crate) fn status_of(p: &Presence<'_>) -> Status {
    let payload = p.payloads.iter().find_map(|pl| match pl {
        Payload::Xml(el) if is_bus(el, "node") => data_in(el).ok().flatten(),
        _ => None,
    });
    Status {
        show: p.show,
        text: p.statuses.first().map(|(_, t)| t.to_string()),
        payload,
    }
}

/// A stanza error as the bus's [`super::Error::Stanza`].
pub(crate) fn stanza_error(e: Option<&StanzaError<'_>>) -> super::Error {
    match e {
        Some(e) => super::Error::Stanza {
            condition: e.condition.as_str().to_owned(),
            text: e.text.as_deref().map(str::to_owned),
        },
        None => super::Error::Stanza {
            condition: Condition::UndefinedCondition.as_str().to_owned(),
            text: None,
        },
    }
}

/// The methods named in the answer to [`methods_query`].
pub(crate) fn methods_answer(iq: &Iq<'_>) -> Result<Vec<String>, super::Error> {
    match (iq.type_, &iq.payload) {
        (IqType::Result, Some(Payload::DiscoItems(d))) => Ok(d
            .items
            .iter()
            .filter(|i| i.node.as_deref() == Some(METHODS_NODE))
            .filter_map(|i| i.name.as_deref().map(str::to_owned))
            .collect()),
        // An empty result: no methods.
        (IqType::Result, None) => Ok(Vec::new()),
        (IqType::Result, Some(_)) => Err(super::Error::Encode(
            "the answer is not a disco#items list".into(),
        )),
        _ => Err(stanza_error(iq.error.as_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza;
    use crate::xml::Limits;

    fn atom(s: &str) -> Term {
        Term::Atom(s.into())
    }

    fn decoded(bytes: &[u8]) -> Stanza<'static> {
        let el = crate::xml::parse(bytes, Limits::default())
            .unwrap()
            .into_owned();
        stanza::decode(el, None).unwrap()
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn a_term_message_as_the_protocol_shows_it() {
        let t = Term::Tuple(vec![
            atom("job"),
            Term::Int(42),
            Term::Map(vec![(Term::Binary(b"state".to_vec()), atom("done"))]),
        ]);
        let m = text(data_message(
            "bob@example.com/bus",
            "b1k2",
            &Data::Term(t.clone()),
            true,
        ));
        let b64 = b64(&etf::encode(&t));
        assert_eq!(
            m,
            format!(
                "<message id='b1k2' to='bob@example.com/bus'><body>{{:job, 42, %{{\"state\" =&gt; :done}}}}</body>\
                 <term xmlns='urn:xmpp-bridge:term:0'>{b64}</term>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='b1k2'/><request xmlns='urn:xmpp:receipts'/></message>"
            )
        );
        let Stanza::Message(back) = decoded(m.as_bytes()) else {
            panic!()
        };
        assert_eq!(carried(&back.payloads), Carried::Data(Data::Term(t)));
        assert!(back.payloads.contains(&Payload::ReceiptRequest));
        let plain = text(data_message(
            "b@x/bus",
            "i",
            &Data::Term(Term::Int(1)),
            false,
        ));
        assert!(!plain.contains("request"));
    }

    #[test]
    fn presences_pings_and_cancels() {
        assert_eq!(
            text(presence(None, "9f2c4e1a0b7d3365", false, &Status::default())),
            "<presence><node xmlns='urn:xmpp-bridge:bus:0' incarnation='9f2c4e1a0b7d3365'/></presence>"
        );
        assert_eq!(
            text(presence(Some("bob@example.com/bus"), "1d", true, &Status::default())),
            "<presence to='bob@example.com/bus'><node xmlns='urn:xmpp-bridge:bus:0' incarnation='1d' watch='true'/></presence>"
        );
        assert_eq!(
            text(goodbye("w@example.com/bus", "9f")),
            "<presence type='unavailable' to='w@example.com/bus'><node xmlns='urn:xmpp-bridge:bus:0' incarnation='9f' goodbye='true'/></presence>"
        );
        assert_eq!(
            text(ping("bob@example.com/bus", "h1")),
            "<iq id='h1' type='get' to='bob@example.com/bus'><ping xmlns='urn:xmpp:ping'/></iq>"
        );
        assert_eq!(
            text(cancel("bob@example.com/bus", "c9")),
            "<message type='headline' to='bob@example.com/bus'><cancel xmlns='urn:xmpp-bridge:bus:0' id='c9'/></message>"
        );
        assert_eq!(
            text(receipt("a@x/bus", "r1", "b1k2")),
            "<message id='r1' to='a@x/bus'><received xmlns='urn:xmpp:receipts' id='b1k2'/></message>"
        );
        let Stanza::Message(m) = decoded(&cancel("bob@example.com/bus", "c9")) else {
            panic!()
        };
        assert_eq!(cancel_in(&m.payloads).as_deref(), Some("c9"));
        let Stanza::Presence(p) = decoded(&goodbye("w@x/bus", "9f")) else {
            panic!()
        };
        assert_eq!(
            node_in(&p.payloads),
            Some(NodeInfo {
                incarnation: Some("9f".into()),
                watch: false,
                goodbye: true,
                exit: None
            })
        );
    }

    #[test]
    fn a_ping_result_names_the_incarnation() {
        let xml = b"<iq type='result' id='h7' from='w@example.com/bus'><node xmlns='urn:xmpp-bridge:bus:0' incarnation='9f2c4e1a0b7d3365'/></iq>";
        let Stanza::Iq(iq) = decoded(xml) else {
            panic!()
        };
        assert_eq!(
            node_of_iq(&iq).and_then(|n| n.incarnation).as_deref(),
            Some("9f2c4e1a0b7d3365")
        );
        let Stanza::Iq(iq) = decoded(b"<iq type='result' id='h7'/>") else {
            panic!()
        };
        assert_eq!(node_of_iq(&iq), None);
    }

    #[test]
    fn calls_and_their_answers() {
        let args = Data::Term(Term::List(vec![Term::Int(1), Term::Int(2)]));
        let c = text(call(
            "bob@example.com/bus",
            "c9",
            "add",
            Duration::from_secs(5),
            &args,
        ));
        // term_to_binary([1, 2]) is a STRING_EXT: g2sAAgEC.
        assert_eq!(
            c,
            "<iq id='c9' type='set' to='bob@example.com/bus'><call xmlns='urn:xmpp-bridge:bus:0' method='add' timeout='5000'><term xmlns='urn:xmpp-bridge:term:0'>g2sAAgEC</term></call></iq>"
        );
        // The protocol's example (LIST_EXT) reads the same.
        let Stanza::Iq(iq) = decoded(b"<iq type='set' to='bob@example.com/bus' id='c9'><call xmlns='urn:xmpp-bridge:bus:0' method='add' timeout='5000'><term xmlns='urn:xmpp-bridge:term:0'>g2wAAAACYQFhAmo=</term></call></iq>") else {
            panic!()
        };
        assert_eq!(
            call_request(&iq).unwrap().args,
            Ok((vec![Term::Int(1), Term::Int(2)], false))
        );
        let Stanza::Iq(iq) = decoded(c.as_bytes()) else {
            panic!()
        };
        let req = call_request(&iq).unwrap();
        assert_eq!(req.method, "add");
        assert_eq!(req.timeout, Some(Duration::from_secs(5)));
        assert_eq!(req.args, Ok((vec![Term::Int(1), Term::Int(2)], false)));

        let r = text(call_result(
            "alice@example.com/bus",
            "c9",
            &Data::Term(Term::Int(3)),
        ));
        assert_eq!(
            r,
            "<iq id='c9' type='result' to='alice@example.com/bus'><result xmlns='urn:xmpp-bridge:bus:0'><term xmlns='urn:xmpp-bridge:term:0'>g2ED</term></result></iq>"
        );
        let Stanza::Iq(iq) = decoded(r.as_bytes()) else {
            panic!()
        };
        assert_eq!(call_answer(&iq), Ok(Data::Term(Term::Int(3))));
    }

    #[test]
    fn call_arguments_that_cannot_be_read() {
        let read = |xml: &str| {
            let Stanza::Iq(iq) = decoded(xml.as_bytes()) else {
                panic!()
            };
            call_request(&iq).unwrap().args
        };
        // No payload: no arguments.
        assert_eq!(
            read("<iq type='set' id='1'><call xmlns='urn:xmpp-bridge:bus:0' method='m'/></iq>"),
            Ok((vec![], false))
        );
        // JSON arguments.
        assert_eq!(
            read("<iq type='set' id='1'><call xmlns='urn:xmpp-bridge:bus:0' method='m'><json xmlns='urn:xmpp:json:0'>[1, \"a\"]</json></call></iq>"),
            Ok((vec![Term::Int(1), Term::Binary(b"a".to_vec())], true))
        );
        // Not a list: term_to_binary(1).
        assert!(read("<iq type='set' id='1'><call xmlns='urn:xmpp-bridge:bus:0' method='m'><term xmlns='urn:xmpp-bridge:term:0'>g2EB</term></call></iq>").is_err());
        // A pid.
        let pid = b64(&[131, 88, 100, 0, 1, b'n', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let why = read(&format!("<iq type='set' id='1'><call xmlns='urn:xmpp-bridge:bus:0' method='m'><term xmlns='urn:xmpp-bridge:term:0'>{pid}</term></call></iq>")).unwrap_err();
        assert!(why.contains("pid"), "{why}");
        assert!(read("<iq type='set' id='1'><call xmlns='urn:xmpp-bridge:bus:0' method='m'><term xmlns='urn:xmpp-bridge:term:0'>!!</term></call></iq>").is_err());
        assert!(
            read("<iq type='set' id='1'><call xmlns='urn:xmpp-bridge:bus:0' method=''/></iq>")
                .is_err()
        );
        // Not a call.
        let Stanza::Iq(iq) =
            decoded(b"<iq type='get' id='1'><call xmlns='urn:xmpp-bridge:bus:0' method='m'/></iq>")
        else {
            panic!()
        };
        assert!(call_request(&iq).is_none());
    }

    #[test]
    fn error_answers_map_to_reasons() {
        let cases = [
            (
                Refusal::NoMethod("nope".into()),
                CallError::NoMethod("nope".into()),
            ),
            (
                Refusal::Crashed("boom".into()),
                CallError::Crashed("boom".into()),
            ),
            (Refusal::Busy, CallError::Busy),
            (Refusal::Timeout, CallError::Timeout),
            (
                Refusal::BadArgs("why".into()),
                CallError::BadArgs("why".into()),
            ),
        ];
        for (refusal, want) in cases {
            let xml = call_error("a@x/bus", "c1", &refusal);
            let Stanza::Iq(iq) = decoded(&xml) else {
                panic!()
            };
            assert_eq!(call_answer(&iq), Err(want), "{}", text(xml));
        }
        let xml = text(call_error(
            "a@x/bus",
            "c1",
            &Refusal::NoMethod("nope".into()),
        ));
        assert_eq!(
            xml,
            "<iq id='c1' type='error' to='a@x/bus'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>nope</text><no-method xmlns='urn:xmpp-bridge:bus:0'/></error></iq>"
        );
        // A server's bounce: the peer is not there.
        let Stanza::Iq(iq) = decoded(b"<iq type='error' id='c1' from='b@x/bus'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>") else {
            panic!()
        };
        assert_eq!(
            call_answer(&iq),
            Err(CallError::PeerUnavailable("service-unavailable".into()))
        );
        // Anything else is a stanza error.
        let Stanza::Iq(iq) = decoded(b"<iq type='error' id='c1'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></iq>") else {
            panic!()
        };
        assert_eq!(
            call_answer(&iq),
            Err(CallError::Stanza {
                condition: "forbidden".into(),
                text: Some("no".into())
            })
        );
    }

    #[test]
    fn refused_payloads_are_named() {
        let pid = b64(&[131, 88, 100, 0, 1, b'n', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let xml = format!("<message from='a@x/bus' id='1'><term xmlns='urn:xmpp-bridge:term:0'>{pid}</term></message>");
        let Stanza::Message(m) = decoded(xml.as_bytes()) else {
            panic!()
        };
        assert!(matches!(carried(&m.payloads), Carried::Refused(why) if why.contains("pid")));
        let Stanza::Message(m) = decoded(b"<message from='a@x/bus' id='1'><term xmlns='urn:xmpp-bridge:term:0'>not base64!</term></message>") else {
            panic!()
        };
        assert!(matches!(carried(&m.payloads), Carried::Refused(_)));
        let Stanza::Message(m) = decoded(b"<message from='a@x/bus' id='1'><json xmlns='urn:xmpp:json:0'>{\"a\": 1}</json></message>") else {
            panic!()
        };
        assert_eq!(
            carried(&m.payloads),
            Carried::Data(Data::Json(serde_json::json!({"a": 1})))
        );
        let Stanza::Message(m) = decoded(b"<message from='a@x/bus'><body>hi</body></message>")
        else {
            panic!()
        };
        assert_eq!(carried(&m.payloads), Carried::Nothing);
        let na = text(not_acceptable(
            "a@x/bus",
            Some("b1"),
            "a pid cannot cross the bus",
        ));
        assert_eq!(
            na,
            "<message id='b1' type='error' to='a@x/bus'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>a pid cannot cross the bus</text></error></message>"
        );
        let Stanza::Message(m) = decoded(na.as_bytes()) else {
            panic!()
        };
        assert_eq!(bounce_reason(&m).0, "not-acceptable");
    }

    #[test]
    fn text_is_made_safe_for_xml() {
        assert_eq!(xml_safe("a\u{1}b\nc"), "a\u{FFFD}b\nc");
        // A body of control characters still writes.
        let t = Term::Atom("\u{1}".into());
        let m = data_message("b@x/bus", "i", &Data::Term(t), false);
        assert!(!m.is_empty());
    }

    #[test]
    fn a_join_as_the_protocol_shows_it() {
        let occupant = "jobs@conference.example.com/alice@example.com/bus";
        assert_eq!(
            text(join(occupant, "9f2c4e1a0b7d3365", &Status::default(), 0)),
            "<presence to='jobs@conference.example.com/alice@example.com/bus'>\
             <x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>\
             <node xmlns='urn:xmpp-bridge:bus:0' incarnation='9f2c4e1a0b7d3365'/></presence>"
        );
        // With history and a status.
        let status = Status {
            show: Some(crate::stanza::Show::Away),
            text: Some("back soon".into()),
            payload: Some(Data::Term(Term::Int(3))),
        };
        let j = text(join(occupant, "9f", &status, 5));
        assert_eq!(
            j,
            "<presence to='jobs@conference.example.com/alice@example.com/bus'><show>away</show><status>back soon</status>\
             <x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='5'/></x>\
             <node xmlns='urn:xmpp-bridge:bus:0' incarnation='9f'><term xmlns='urn:xmpp-bridge:term:0'>g2ED</term></node></presence>"
        );
        let Stanza::Presence(p) = decoded(j.as_bytes()) else {
            panic!()
        };
        assert_eq!(status_of(&p), status);
        assert_eq!(
            node_in(&p.payloads).unwrap().incarnation.as_deref(),
            Some("9f")
        );
        assert_eq!(
            text(leave(occupant)),
            "<presence type='unavailable' to='jobs@conference.example.com/alice@example.com/bus'/>"
        );
    }

    #[test]
    fn the_room_configuration_as_the_protocol_shows_it() {
        assert_eq!(
            text(room_config("jobs@conference.example.com", "g1")),
            "<iq id='g1' type='set' to='jobs@conference.example.com'>\
             <query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
             <field var='muc#roomconfig_whois'><value>anyone</value></field>\
             <field var='muc#roomconfig_persistentroom'><value>0</value></field>\
             <field var='muc#roomconfig_publicroom'><value>0</value></field>\
             </x></query></iq>"
        );
    }

    #[test]
    fn a_broadcast_as_the_protocol_shows_it() {
        // The protocol's example writes atoms as ATOM_EXT; ours are
        // SMALL_ATOM_UTF8: the same term.
        let raw = base64::engine::general_purpose::STANDARD
            .decode("g2gDZAADam9iYQdtAAAABnJlc2l6ZQ==")
            .unwrap();
        let t = etf::decode(&raw).unwrap();
        assert_eq!(
            t,
            Term::Tuple(vec![
                atom("job"),
                Term::Int(7),
                Term::Binary(b"resize".to_vec())
            ])
        );
        let m = text(group_message(
            "jobs@conference.example.com",
            "b7",
            &Data::Term(t.clone()),
        ));
        let b64 = b64(&etf::encode(&t));
        assert_eq!(
            m,
            format!(
                "<message id='b7' type='groupchat' to='jobs@conference.example.com'>\
                 <body>{{:job, 7, \"resize\"}}</body><term xmlns='urn:xmpp-bridge:term:0'>{b64}</term>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='b7'/></message>"
            )
        );
        // As the room relays it.
        let relayed = m.replace(
            "to='jobs@conference.example.com'",
            "from='jobs@conference.example.com/bob@example.com/bus' to='alice@example.com/bus'",
        );
        let Stanza::Message(back) = decoded(relayed.as_bytes()) else {
            panic!()
        };
        assert_eq!(back.type_, MessageType::Groupchat);
        assert_eq!(
            back.from.as_deref(),
            Some("jobs@conference.example.com/bob@example.com/bus")
        );
        assert_eq!(carried(&back.payloads), Carried::Data(Data::Term(t)));
        let j = text(group_message(
            "jobs@conference.example.com",
            "b8",
            &Data::Json(serde_json::json!([1, "a"])),
        ));
        assert!(
            j.contains("<json xmlns='urn:xmpp:json:0'>[1,\"a\"]</json>"),
            "{j}"
        );
    }

    #[test]
    fn a_status_presence_as_the_protocol_shows_it() {
        let xml = "<presence><show>dnd</show><status>busy: 12 jobs</status>\
                   <node xmlns='urn:xmpp-bridge:bus:0' incarnation='9f2c4e1a0b7d3365'>\
                   <term xmlns='urn:xmpp-bridge:term:0'>g3QAAAABZAAEbG9hZGEM</term></node></presence>";
        let Stanza::Presence(p) = decoded(xml.as_bytes()) else {
            panic!()
        };
        let status = status_of(&p);
        let load = Term::Map(vec![(atom("load"), Term::Int(12))]);
        assert_eq!(
            status,
            Status {
                show: Some(crate::stanza::Show::Dnd),
                text: Some("busy: 12 jobs".into()),
                payload: Some(Data::Term(load.clone())),
            }
        );
        let written = text(presence(None, "9f2c4e1a0b7d3365", false, &status));
        let b64 = b64(&etf::encode(&load));
        assert_eq!(
            written,
            format!(
                "<presence><show>dnd</show><status>busy: 12 jobs</status>\
                 <node xmlns='urn:xmpp-bridge:bus:0' incarnation='9f2c4e1a0b7d3365'>\
                 <term xmlns='urn:xmpp-bridge:term:0'>{b64}</term></node></presence>"
            )
        );
        // No status: no show, no text, no payload; an unreadable payload is
        // left out.
        let Stanza::Presence(p) = decoded(b"<presence><node xmlns='urn:xmpp-bridge:bus:0' incarnation='1'><term xmlns='urn:xmpp-bridge:term:0'>!!</term></node></presence>") else {
            panic!()
        };
        assert_eq!(status_of(&p), Status::default());
        // A text with control characters is written safely.
        let odd = Status {
            text: Some("a\u{1}b".into()),
            ..Status::default()
        };
        assert!(text(presence(None, "1", false, &odd)).contains("<status>a\u{FFFD}b</status>"));
    }

    #[test]
    fn what_a_room_says_about_an_occupant() {
        let xml = "<presence from='jobs@conference.example.com/alice@example.com/bus'>\
                   <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='Alice@Example.com/bus'/>\
                   <status code='110'/><status code='201'/></x></presence>";
        let Stanza::Presence(p) = decoded(xml.as_bytes()) else {
            panic!()
        };
        assert_eq!(
            muc_user_in(&p.payloads),
            Some(MucInfo {
                jid: Some("alice@example.com/bus".into()),
                codes: vec![110, 201]
            })
        );
        // What the typed form does not know (a room destroyed) is read too.
        let xml = "<presence type='unavailable' from='jobs@conference.example.com/alice@example.com/bus'>\
                   <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none' jid='alice@example.com/bus'/>\
                   <destroy jid='other@conference.example.com'/><status code='110'/></x></presence>";
        let Stanza::Presence(p) = decoded(xml.as_bytes()) else {
            panic!()
        };
        assert_eq!(
            muc_user_in(&p.payloads),
            Some(MucInfo {
                jid: Some("alice@example.com/bus".into()),
                codes: vec![110]
            })
        );
        // A semi-anonymous room: no JID.
        let Stanza::Presence(p) = decoded(b"<presence from='r@c.x/n'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>") else {
            panic!()
        };
        assert_eq!(muc_user_in(&p.payloads).unwrap().jid, None);
        let Stanza::Presence(p) = decoded(b"<presence from='r@c.x/n'/>") else {
            panic!()
        };
        assert_eq!(muc_user_in(&p.payloads), None);
    }

    #[test]
    fn methods_by_disco_items_as_the_protocol_shows_it() {
        assert_eq!(
            text(methods_query("bob@example.com/bus", "d1")),
            "<iq id='d1' type='get' to='bob@example.com/bus'><query xmlns='http://jabber.org/protocol/disco#items' node='urn:xmpp-bridge:bus:0#methods'/></iq>"
        );
        let answer = text(items_answer(
            "alice@example.com/bus",
            "d1",
            "bob@example.com/bus",
            Some(METHODS_NODE),
            &["echo", "add"],
        ));
        assert_eq!(
            answer,
            "<iq id='d1' type='result' to='alice@example.com/bus'>\
             <query xmlns='http://jabber.org/protocol/disco#items' node='urn:xmpp-bridge:bus:0#methods'>\
             <item jid='bob@example.com/bus' node='urn:xmpp-bridge:bus:0#methods' name='add'/>\
             <item jid='bob@example.com/bus' node='urn:xmpp-bridge:bus:0#methods' name='echo'/>\
             </query></iq>"
        );
        let Stanza::Iq(iq) = decoded(answer.as_bytes()) else {
            panic!()
        };
        assert_eq!(
            methods_answer(&iq),
            Ok(vec!["add".to_string(), "echo".to_string()])
        );
        // No node: one item pointing there.
        assert_eq!(
            text(items_answer("a@x/bus", "d2", "b@x/bus", None, &["add"])),
            "<iq id='d2' type='result' to='a@x/bus'><query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='b@x/bus' node='urn:xmpp-bridge:bus:0#methods' name='methods'/></query></iq>"
        );
        // Another node: item-not-found.
        let other = items_answer("a@x/bus", "d3", "b@x/bus", Some("nope"), &["add"]);
        let Stanza::Iq(iq) = decoded(&other) else {
            panic!()
        };
        assert_eq!(
            methods_answer(&iq),
            Err(super::super::Error::Stanza {
                condition: "item-not-found".into(),
                text: None
            })
        );
        // No methods.
        let empty = items_answer("a@x/bus", "d4", "b@x/bus", Some(METHODS_NODE), &[]);
        let Stanza::Iq(iq) = decoded(&empty) else {
            panic!()
        };
        assert_eq!(methods_answer(&iq), Ok(vec![]));
    }
}
