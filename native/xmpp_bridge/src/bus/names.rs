//! A JID for every process (docs/PROTOCOL.md §7): a node whose session
//! is an external component is a **name host**. Tasks register names
//! with it; the host delivers what is addressed to `name@<component>`
//! to the [`Name`] holding it, answers for names nobody holds
//! (`noproc`), answers pings and watch presences per name with the
//! name's own incarnation, and says goodbye to a name's watchers when
//! the name is released.
//!
//! The state ([`Names`]) has no session and no clock: the core feeds it
//! what arrives and sends the bytes it returns.

use super::core::{Inner, OutCall, OutMessage};
use super::error::{CallError, Error, ExitKind};
use super::wire::{self, Refusal};
use super::{Args, Node, Payload, SendOptions, SendRef, Status};
use crate::connection::stamp_from;
use crate::etf::{self, Term};
use crate::ns;
use crate::stanza::{Condition, ErrorType, Message, MessageType, Presence, PresenceType, Stanza};
use crate::stanza::{Payload as StanzaPayload, StanzaError};
use crate::xml::Element;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The longest name, in bytes (docs/PROTOCOL.md §7.1).
pub const MAX_NAME_BYTES: usize = 64;

/// Calls a name may have unanswered; more are answered `busy`.
pub const MAX_PENDING_CALLS: usize = 1000;

/// Checks a name: 1 to 64 bytes of `[a-z0-9._-]`, starting with a
/// letter or a digit.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::InvalidName(format!("{name:?}: {why}")));
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return bad("a name is 1 to 64 bytes long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return bad("a name starts with a letter or a digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return bad("a name is made of a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

/// The name `to` addresses on the host `domain` (`w7@domain/anything`
/// is `w7`); `None` for the host itself or another domain.
pub(crate) fn name_of(to: &str, domain: &str) -> Option<String> {
    let bare = to.split('/').next().unwrap_or(to);
    let (local, d) = bare.split_once('@')?;
    d.eq_ignore_ascii_case(domain)
        .then(|| local.to_ascii_lowercase())
}

// ------------------------------------------------------------------ wire

fn noproc_error() -> StanzaError<'static> {
    StanzaError {
        type_: ErrorType::Cancel,
        by: None,
        condition: Condition::ItemNotFound,
        condition_text: None,
        text: None,
        text_lang: None,
        app: Some(Element::new("noproc").with_attr("xmlns", ns::BUS)),
    }
}

/// The bounce of a message to a name nobody holds.
pub(crate) fn noproc_message(from: &str, to: &str, id: Option<&str>) -> Vec<u8> {
    wire::bytes(Stanza::Message(Message {
        id: id.map(|s| s.to_owned().into()),
        type_: MessageType::Error,
        from: Some(from.to_owned().into()),
        to: Some(to.to_owned().into()),
        error: Some(noproc_error()),
        ..Message::default()
    }))
}

/// The answer to an IQ (a call, a ping) to a name nobody holds.
pub(crate) fn noproc_iq(from: &str, to: &str, id: &str) -> Vec<u8> {
    let mut bytes = wire::iq_error(
        to,
        id,
        ErrorType::Cancel,
        Condition::ItemNotFound,
        None,
        Some(Element::new("noproc").with_attr("xmlns", ns::BUS)),
    );
    bytes = stamp_from(bytes, from);
    bytes
}

/// The answer to a watch presence for a name nobody holds.
pub(crate) fn noproc_presence(from: &str, to: &str) -> Vec<u8> {
    wire::bytes(Stanza::Presence(Presence {
        type_: PresenceType::Error,
        from: Some(from.to_owned().into()),
        to: Some(to.to_owned().into()),
        error: Some(noproc_error()),
        ..Presence::default()
    }))
}

/// A name's directed presence, with its incarnation.
pub(crate) fn name_presence(from: &str, to: &str, incarnation: &str) -> Vec<u8> {
    stamp_from(
        wire::presence(Some(to), incarnation, false, &Status::default()),
        from,
    )
}

/// A name's goodbye to one of its watchers.
pub(crate) fn name_goodbye(from: &str, to: &str, incarnation: &str, exit: ExitKind) -> Vec<u8> {
    let node = Element::new("node")
        .with_attr("xmlns", ns::BUS)
        .with_attr("incarnation", incarnation.to_owned())
        .with_attr("goodbye", "true")
        .with_attr("exit", exit.as_str());
    wire::bytes(Stanza::Presence(Presence {
        type_: PresenceType::Unavailable,
        from: Some(from.to_owned().into()),
        to: Some(to.to_owned().into()),
        payloads: vec![StanzaPayload::Xml(node)],
        ..Presence::default()
    }))
}

/// A name's answer to a ping: its `<node/>` (docs/PROTOCOL.md §5.1).
pub(crate) fn name_ping_result(from: &str, to: &str, id: &str, incarnation: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(200);
    out.extend_from_slice(b"<iq type='result'");
    let _ = crate::xml::write_attr(&mut out, "id", id);
    let _ = crate::xml::write_attr(&mut out, "from", from);
    let _ = crate::xml::write_attr(&mut out, "to", to);
    out.extend_from_slice(format!("><node xmlns='{}'", ns::BUS).as_bytes());
    let _ = crate::xml::write_attr(&mut out, "incarnation", incarnation);
    out.extend_from_slice(b"/></iq>");
    out
}

/// A name's answer to disco#info: what the host does for it, the bus
/// feature included (as a bus node's, docs/PROTOCOL.md §5.1).
pub(crate) fn name_disco_info(from: &str, to: &str, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(400);
    out.extend_from_slice(b"<iq type='result'");
    let _ = crate::xml::write_attr(&mut out, "id", id);
    let _ = crate::xml::write_attr(&mut out, "from", from);
    let _ = crate::xml::write_attr(&mut out, "to", to);
    out.extend_from_slice(format!("><query xmlns='{}'>", ns::DISCO_INFO).as_bytes());
    out.extend_from_slice(b"<identity category='component' type='generic' name='xmpp_bridge'/>");
    for f in [ns::DISCO_INFO, ns::PING, ns::BUS] {
        out.extend_from_slice(format!("<feature var='{f}'/>").as_bytes());
    }
    out.extend_from_slice(b"</query></iq>");
    out
}

// ----------------------------------------------------------------- state

/// A call waiting for its holder's answer: (caller, IQ id).
pub(crate) type CallKey = (String, String);

struct Entry {
    /// Which registration: a name registered again is another one.
    reg: u64,
    incarnation: String,
    tx: mpsc::UnboundedSender<NameEvent>,
    watchers: BTreeSet<String>,
    /// Unanswered calls, with their timer's token.
    pending: HashMap<CallKey, u64>,
}

/// The names of a host.
pub(crate) struct Names {
    domain: String,
    entries: HashMap<String, Entry>,
    /// Timer token -> the name and call it times out.
    timers: HashMap<u64, (String, CallKey)>,
}

/// What a call to a name became.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Handed to the holder; time it out at the deadline with this token.
    Pending(u64),
    /// Answered at once with these bytes.
    Answer(Vec<u8>),
}

impl Names {
    pub(crate) fn new(domain: &str) -> Names {
        Names {
            domain: domain.to_ascii_lowercase(),
            entries: HashMap::new(),
            timers: HashMap::new(),
        }
    }

    /// The address of `name`.
    pub(crate) fn jid(&self, name: &str) -> String {
        format!("{name}@{}/{}", self.domain, super::RESOURCE)
    }

    /// The name a stanza to `to` is for, if it is for a name.
    pub(crate) fn name_of(&self, to: &str) -> Option<String> {
        name_of(to, &self.domain)
    }

    pub(crate) fn register(
        &mut self,
        name: &str,
        reg: u64,
        incarnation: String,
        tx: mpsc::UnboundedSender<NameEvent>,
    ) -> Result<(), Error> {
        check_name(name)?;
        if self.entries.contains_key(name) {
            return Err(Error::NameTaken(name.to_owned()));
        }
        self.entries.insert(
            name.to_owned(),
            Entry {
                reg,
                incarnation,
                tx,
                watchers: BTreeSet::new(),
                pending: HashMap::new(),
            },
        );
        Ok(())
    }

    /// Registration `reg` of `name` ends: the goodbyes to its watchers,
    /// and `crashed` for its unanswered calls.
    pub(crate) fn release(&mut self, name: &str, reg: u64, exit: ExitKind) -> Vec<Vec<u8>> {
        if self.entries.get(name).map(|e| e.reg) != Some(reg) {
            return Vec::new();
        }
        let e = self.entries.remove(name).expect("just seen");
        let from = self.jid(name);
        let mut out = Vec::new();
        let mut pending: Vec<(CallKey, u64)> = e.pending.into_iter().collect();
        pending.sort();
        for ((caller, id), token) in pending {
            self.timers.remove(&token);
            let why = Refusal::Crashed(format!("exited: {exit}"));
            out.push(stamp_from(wire::call_error(&caller, &id, &why), &from));
        }
        for w in &e.watchers {
            out.push(name_goodbye(&from, w, &e.incarnation, exit));
        }
        out
    }

    /// The event channel of `name`, when someone holds it.
    pub(crate) fn sender(&self, name: &str) -> Option<&mpsc::UnboundedSender<NameEvent>> {
        self.entries.get(name).map(|e| &e.tx)
    }

    /// The registration of `name`, when someone holds it.
    pub(crate) fn reg(&self, name: &str) -> Option<u64> {
        self.entries.get(name).map(|e| e.reg)
    }

    /// A watch presence from `watcher` for `name`: the name's presence
    /// (once per watcher), or `noproc`.
    pub(crate) fn watch(&mut self, name: &str, watcher: &str) -> Option<Vec<u8>> {
        let from = self.jid(name);
        match self.entries.get_mut(name) {
            Some(e) => e
                .watchers
                .insert(watcher.to_owned())
                .then(|| name_presence(&from, watcher, &e.incarnation)),
            None => Some(noproc_presence(&from, watcher)),
        }
    }

    /// `watcher` went: it watches nothing any more.
    pub(crate) fn unwatch(&mut self, name: &str, watcher: &str) {
        if let Some(e) = self.entries.get_mut(name) {
            e.watchers.remove(watcher);
        }
    }

    /// The answer to a ping to `name`.
    pub(crate) fn ping(&self, name: &str, from: &str, id: &str) -> Vec<u8> {
        let own = self.jid(name);
        match self.entries.get(name) {
            Some(e) => name_ping_result(&own, from, id, &e.incarnation),
            None => noproc_iq(&own, from, id),
        }
    }

    /// The answer to a disco#info query to `name`.
    pub(crate) fn disco_info(&self, name: &str, from: &str, id: &str) -> Vec<u8> {
        let own = self.jid(name);
        match self.entries.get(name) {
            Some(_) => name_disco_info(&own, from, id),
            None => noproc_iq(&own, from, id),
        }
    }

    /// A call for `name` from `caller`: pending (the caller gets the
    /// holder's answer), or refused now.
    pub(crate) fn call(&mut self, name: &str, key: &CallKey, token: u64) -> Delivered {
        let own = self.jid(name);
        let Some(e) = self.entries.get_mut(name) else {
            return Delivered::Answer(noproc_iq(&own, &key.0, &key.1));
        };
        if e.pending.len() >= MAX_PENDING_CALLS {
            let bytes = wire::call_error(&key.0, &key.1, &Refusal::Busy);
            return Delivered::Answer(stamp_from(bytes, &own));
        }
        if let Some(old) = e.pending.insert(key.clone(), token) {
            // The same id again from the same caller: the old timer goes.
            self.timers.remove(&old);
        }
        self.timers.insert(token, (name.to_owned(), key.clone()));
        Delivered::Pending(token)
    }

    /// The holder (registration `reg`) answers `key`: true when the call
    /// still waits for that answer (it is forgotten now).
    pub(crate) fn answer(&mut self, name: &str, reg: u64, key: &CallKey) -> bool {
        let Some(e) = self.entries.get_mut(name).filter(|e| e.reg == reg) else {
            return false;
        };
        match e.pending.remove(key) {
            Some(token) => {
                self.timers.remove(&token);
                true
            }
            None => false,
        }
    }

    /// The call's timer ran out: the `timeout` answer, if it still waits.
    pub(crate) fn timed_out(&mut self, token: u64) -> Option<Vec<u8>> {
        let (name, key) = self.timers.remove(&token)?;
        self.entries.get_mut(&name)?.pending.remove(&key);
        let bytes = wire::call_error(&key.0, &key.1, &Refusal::Timeout);
        Some(stamp_from(bytes, &self.jid(&name)))
    }

    /// The caller gave up on `key`: the `timeout` answer, if it waits.
    pub(crate) fn cancel(&mut self, name: &str, key: &CallKey) -> Option<Vec<u8>> {
        let token = self.entries.get_mut(name)?.pending.remove(key)?;
        self.timers.remove(&token);
        let bytes = wire::call_error(&key.0, &key.1, &Refusal::Timeout);
        Some(stamp_from(bytes, &self.jid(name)))
    }

    /// After a reconnect: every watcher of every name gets the name's
    /// presence again.
    pub(crate) fn online(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<&String> = self.entries.keys().collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let e = &self.entries[n];
            let from = self.jid(n);
            for w in &e.watchers {
                out.push(name_presence(&from, w, &e.incarnation));
            }
        }
        out
    }

    /// The host closes: every name's channel ends.
    pub(crate) fn closed(&mut self) {
        self.entries.clear();
        self.timers.clear();
    }
}

// ------------------------------------------------------------------- API

/// What comes to a [`Name`].
#[derive(Debug)]
pub enum NameEvent {
    /// A term or JSON message to the name, handed over once (a receipt,
    /// when asked for, went from the name's address).
    Message {
        /// The sender's full JID.
        from: String,
        /// What it carried.
        payload: Payload,
    },
    /// A call to the name: answer it with [`Request::reply`] or
    /// [`Request::fail`].
    Call(Request),
}

/// Why a [`Request`] fails (docs/PROTOCOL.md §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No such method (the text is the method).
    NoMethod,
    /// The arguments cannot be read (why).
    BadArgs(String),
    /// Too busy to serve it.
    Busy,
    /// Serving it failed (what happened, printable).
    Crashed(String),
}

/// A call to a [`Name`], answered once: by [`Request::reply`],
/// [`Request::fail`], or by the host (`timeout` at the caller's
/// deadline or on its cancel, `crashed` when the request or the name is
/// dropped unanswered). A late answer is dropped.
#[derive(Debug)]
pub struct Request {
    inner: Arc<Inner>,
    name: String,
    reg: u64,
    key: CallKey,
    method: String,
    args: Args,
    json: bool,
    answered: bool,
}

impl Request {
    /// The method called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The arguments; [`Args::decode`] reads them into serde types.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// The caller's full JID.
    pub fn caller(&self) -> &str {
        &self.key.0
    }

    /// Answers with `value` (as the term [`etf::to_term`] makes of it);
    /// false when the call no longer waits (timed out, cancelled).
    pub fn reply<T: Serialize + ?Sized>(mut self, value: &T) -> bool {
        let bytes = match etf::to_term(value) {
            Ok(term) => self.result_bytes(term),
            Err(e) => self.error_bytes(&Refusal::Crashed(format!("cannot encode the result: {e}"))),
        };
        self.answer(bytes)
    }

    /// Answers with a term.
    pub fn reply_term(mut self, term: Term) -> bool {
        let bytes = self.result_bytes(term);
        self.answer(bytes)
    }

    /// Answers with an error; false when the call no longer waits.
    pub fn fail(mut self, reason: Failure) -> bool {
        let refusal = match reason {
            Failure::NoMethod => Refusal::NoMethod(self.method.clone()),
            Failure::BadArgs(why) => Refusal::BadArgs(why),
            Failure::Busy => Refusal::Busy,
            Failure::Crashed(why) => Refusal::Crashed(why),
        };
        let bytes = self.error_bytes(&refusal);
        self.answer(bytes)
    }

    /// Drops it without an answer (the core, which holds its lock, found
    /// the name gone: its release answered already).
    pub(crate) fn disarm(&mut self) {
        self.answered = true;
    }

    fn result_bytes(&self, term: Term) -> Vec<u8> {
        let (caller, id) = &self.key;
        if self.json {
            match super::json::term_to_json(&term) {
                Ok(v) => wire::call_result(caller, id, &Payload::Json(v)),
                Err(why) => wire::call_error(
                    caller,
                    id,
                    &Refusal::Crashed(format!("the result has no JSON form: {why}")),
                ),
            }
        } else {
            wire::call_result(caller, id, &Payload::Term(term))
        }
    }

    fn error_bytes(&self, refusal: &Refusal) -> Vec<u8> {
        wire::call_error(&self.key.0, &self.key.1, refusal)
    }

    fn answer(&mut self, bytes: Vec<u8>) -> bool {
        self.answered = true;
        let mut core = self.inner.lock();
        let Some(names) = core.names.as_mut() else {
            return false;
        };
        if !names.answer(&self.name, self.reg, &self.key) {
            return false;
        }
        let from = names.jid(&self.name);
        drop(core);
        self.inner.handle().send(stamp_from(bytes, &from)).is_ok()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if !self.answered {
            let why = if std::thread::panicking() {
                "the request's task panicked"
            } else {
                "the request was dropped unanswered"
            };
            let bytes = self.error_bytes(&Refusal::Crashed(why.into()));
            self.answer(bytes);
        }
    }
}

/// A registered name ([`Node::register`]): its own address, its own
/// incarnation, its own mailbox. Terms and calls to
/// `name@<component>/bus` come from [`Name::recv`]; what the name sends
/// goes from that address. Dropping it releases the name: its watchers
/// get the goodbye with `exit='normal'` (`exit='error'` when dropped
/// while the thread panics, as in a task that panicked holding it), its
/// unanswered calls `crashed`. [`Name::release`] says another exit.
///
/// The outcome of a send ([`super::Event::Delivered`],
/// [`super::Event::Failed`]) comes on the host's [`super::Events`].
///
/// ```no_run
/// use xmpp_bridge::bus::{self, NameEvent};
///
/// # async fn run() -> Result<(), bus::Error> {
/// let config = bus::Config::component("bridge.example.com", "secret");
/// let (host, _events) = bus::Node::connect(config).await?;
/// let mut worker = host.register("worker-7")?;
/// println!("I am {}", worker.jid()); // worker-7@bridge.example.com/bus
/// while let Some(event) = worker.recv().await {
///     match event {
///         NameEvent::Message { from, payload } => println!("{from}: {payload:?}"),
///         NameEvent::Call(request) if request.method() == "add" => {
///             match request.args().decode::<(i64, i64)>() {
///                 Ok((a, b)) => request.reply(&(a + b)),
///                 Err(e) => request.fail(bus::Failure::BadArgs(e.to_string())),
///             };
///         }
///         NameEvent::Call(request) => {
///             request.fail(bus::Failure::NoMethod);
///         }
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Name {
    node: Node,
    name: String,
    jid: String,
    incarnation: String,
    reg: u64,
    rx: mpsc::UnboundedReceiver<NameEvent>,
    exit: Option<ExitKind>,
}

impl Node {
    /// Registers `name` with this name host (a node connected as a
    /// component, docs/PROTOCOL.md §7). Fails with
    /// [`Error::InvalidName`], [`Error::NameTaken`],
    /// [`Error::NotNameHost`] or [`Error::Closed`].
    pub fn register(&self, name: &str) -> Result<Name, Error> {
        check_name(name)?;
        let incarnation = format!("{:016x}", rand::random::<u64>());
        let reg = self.inner.next_id();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut core = self.inner.lock();
        if core.closed || core.closing {
            return Err(Error::Closed);
        }
        let names = core.names.as_mut().ok_or(Error::NotNameHost)?;
        names.register(name, reg, incarnation.clone(), tx)?;
        let jid = names.jid(name);
        drop(core);
        Ok(Name {
            node: self.clone(),
            name: name.to_owned(),
            jid,
            incarnation,
            reg,
            rx,
            exit: None,
        })
    }

    /// True when this node is a name host.
    pub fn is_name_host(&self) -> bool {
        self.inner.lock().names.is_some()
    }
}

impl Name {
    /// The name's address: `name@<component>/bus`.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The name itself.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This registration's incarnation (fresh for every registration).
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// The next message or call; `None` once the host is closed.
    pub async fn recv(&mut self) -> Option<NameEvent> {
        self.rx.recv().await
    }

    /// The next message or call if one is waiting.
    pub fn try_recv(&mut self) -> Option<NameEvent> {
        self.rx.try_recv().ok()
    }

    /// Releases the name, telling its watchers `exit` (a drop says
    /// [`ExitKind::Normal`]).
    pub fn release(mut self, exit: ExitKind) {
        self.exit = Some(exit);
    }

    /// A handle that sends and calls from the name's address, for other
    /// tasks (while this one waits in [`Name::recv`]). After the name is
    /// released it still sends from that address, but answers to it are
    /// then the host's `noproc`.
    pub fn sender(&self) -> NameSender {
        NameSender {
            node: self.node.clone(),
            jid: self.jid.clone(),
        }
    }

    /// Sends `value` (as the term [`etf::to_term`] makes of it) from the
    /// name's address; the outcome comes on the host's [`super::Events`].
    pub fn send<T: Serialize + ?Sized>(
        &self,
        to: &str,
        value: &T,
        options: SendOptions,
    ) -> Result<SendRef, Error> {
        self.sender().send(to, value, options)
    }

    /// Sends a term from the name's address.
    pub fn send_term(&self, to: &str, term: Term, options: SendOptions) -> Result<SendRef, Error> {
        self.sender().send_term(to, term, options)
    }

    /// Calls `method` on `to` from the name's address (see
    /// [`Node::call`]).
    pub async fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        to: &str,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.sender().call(to, method, args, timeout).await
    }

    /// Calls `method` on `to` with a list of terms, from the name's address.
    pub async fn call_term(
        &self,
        to: &str,
        method: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.sender().call_term(to, method, args, timeout).await
    }
}

/// Sends and calls from a name's address ([`Name::sender`]); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct NameSender {
    node: Node,
    jid: String,
}

impl NameSender {
    /// The name's address.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// See [`Name::send`].
    pub fn send<T: Serialize + ?Sized>(
        &self,
        to: &str,
        value: &T,
        options: SendOptions,
    ) -> Result<SendRef, Error> {
        let term = etf::to_term(value).map_err(|e| Error::Encode(e.to_string()))?;
        self.send_term(to, term, options)
    }

    /// See [`Name::send_term`].
    pub fn send_term(&self, to: &str, term: Term, options: SendOptions) -> Result<SendRef, Error> {
        let to = super::address(to)?;
        let inner = &self.node.inner;
        let message =
            OutMessage::new(inner, &to, &Payload::Term(term), options.delivery).from(&self.jid);
        inner.lock().send_data(inner, message, options.deadline)
    }

    /// See [`Name::call`].
    pub async fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        to: &str,
        method: &str,
        args: &A,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let term = etf::to_term(args).map_err(|e| CallError::BadArgs(e.to_string()))?;
        let args = match term {
            Term::List(items) | Term::Tuple(items) => items,
            Term::Atom(a) if a == "nil" => Vec::new(),
            other => vec![other],
        };
        let result = self.call_term(to, method, args, timeout).await?;
        etf::from_term(result).map_err(|e| CallError::Decode(e.to_string()))
    }

    /// See [`Name::call_term`].
    pub async fn call_term(
        &self,
        to: &str,
        method: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.node
            .call_from(
                Some(&self.jid),
                to,
                method,
                &Payload::Term(Term::List(args)),
                timeout,
            )
            .await
            .map(|p| p.to_term())
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let exit = self.exit.unwrap_or(if std::thread::panicking() {
            ExitKind::Error
        } else {
            ExitKind::Normal
        });
        let inner = &self.node.inner;
        let mut core = inner.lock();
        let out = match core.names.as_mut() {
            Some(names) => names.release(&self.name, self.reg, exit),
            None => Vec::new(),
        };
        if core.closed {
            return;
        }
        drop(core);
        for bytes in out {
            let _ = inner.handle().send(bytes);
        }
    }
}

impl OutCall {
    /// The call as sent from `from` (a name's address).
    pub(crate) fn from(mut self, from: &str) -> OutCall {
        self.bytes = stamp_from(std::mem::take(&mut self.bytes), from);
        self
    }
}

impl OutMessage {
    /// The message as sent from `from` (a name's address).
    pub(crate) fn from(mut self, from: &str) -> OutMessage {
        self.bytes = stamp_from(std::mem::take(&mut self.bytes), from);
        self
    }
}

/// A request for `name` as the core hands it over.
pub(crate) fn request(
    inner: &Arc<Inner>,
    name: &str,
    reg: u64,
    key: CallKey,
    method: String,
    args: Vec<Term>,
    json: bool,
) -> Request {
    Request {
        inner: inner.clone(),
        name: name.to_owned(),
        reg,
        key,
        method,
        args: Args::new(args),
        json,
        answered: false,
    }
}

/// The deadline of a call that arrived now.
pub(crate) fn deadline(timeout: Option<Duration>, default: Duration) -> Instant {
    Instant::now() + timeout.unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "bridge.x";

    fn names() -> (Names, mpsc::UnboundedReceiver<NameEvent>) {
        let mut n = Names::new(D);
        let (tx, rx) = mpsc::unbounded_channel();
        n.register("w7", 1, "inc1".into(), tx).unwrap();
        (n, rx)
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn names_follow_the_protocol() {
        assert!(check_name("worker-7").is_ok());
        assert!(check_name("7.a_b").is_ok());
        for bad in ["", "Worker", "-a", "a b", "a@b", &"a".repeat(65)] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidName(_))),
                "{bad}"
            );
        }
        assert!(check_name(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn a_stanza_is_for_a_name_on_the_hosts_domain_whatever_its_resource() {
        assert_eq!(name_of("w7@bridge.x/bus", D).as_deref(), Some("w7"));
        assert_eq!(name_of("w7@bridge.x/other", D).as_deref(), Some("w7"));
        assert_eq!(name_of("W7@Bridge.X", D).as_deref(), Some("w7"));
        assert_eq!(name_of("bridge.x", D), None);
        assert_eq!(name_of("w7@elsewhere.x/bus", D), None);
    }

    #[test]
    fn a_name_is_held_once_and_free_again_after_its_release() {
        let (mut n, _rx) = names();
        let (tx, _rx2) = mpsc::unbounded_channel();
        assert_eq!(
            n.register("w7", 2, "inc2".into(), tx.clone()),
            Err(Error::NameTaken("w7".into()))
        );
        // An old registration's release does nothing.
        assert!(n.release("w7", 9, ExitKind::Normal).is_empty());
        assert_eq!(n.reg("w7"), Some(1));
        n.release("w7", 1, ExitKind::Normal);
        assert_eq!(n.reg("w7"), None);
        n.register("w7", 2, "inc2".into(), tx).unwrap();
        assert_eq!(n.reg("w7"), Some(2));
    }

    #[test]
    fn watchers_get_the_names_presence_once_and_its_goodbye_with_the_exit() {
        let (mut n, _rx) = names();
        let p = text(&n.watch("w7", "a@x/bus").unwrap());
        assert!(
            p.contains("from='w7@bridge.x/bus'") && p.contains("to='a@x/bus'"),
            "{p}"
        );
        assert!(p.contains("incarnation='inc1'"), "{p}");
        assert!(n.watch("w7", "a@x/bus").is_none(), "once per watcher");
        assert_eq!(n.online().len(), 1, "again after a reconnect");
        let out = n.release("w7", 1, ExitKind::Killed);
        assert_eq!(out.len(), 1);
        let bye = text(&out[0]);
        assert!(bye.contains("type='unavailable'"), "{bye}");
        assert!(
            bye.contains("goodbye='true'") && bye.contains("exit='killed'"),
            "{bye}"
        );
        assert!(bye.contains("from='w7@bridge.x/bus'"), "{bye}");
    }

    #[test]
    fn a_name_nobody_holds_is_answered_noproc() {
        let (mut n, _rx) = names();
        let p = text(&n.watch("nobody", "a@x/bus").unwrap());
        assert!(
            p.contains("type='error'") && p.contains("<noproc xmlns='urn:xmpp-bridge:bus:0'/>"),
            "{p}"
        );
        let ping = text(&n.ping("nobody", "a@x/bus", "h1"));
        assert!(
            ping.contains("<item-not-found") && ping.contains("noproc"),
            "{ping}"
        );
        assert!(ping.contains("from='nobody@bridge.x/bus'"), "{ping}");
        let key = ("a@x/bus".to_owned(), "c1".to_owned());
        let Delivered::Answer(b) = n.call("nobody", &key, 5) else {
            panic!("answered at once")
        };
        assert!(text(&b).contains("noproc"));
        let m = text(&noproc_message(
            "nobody@bridge.x/bus",
            "a@x/bus",
            Some("b1"),
        ));
        assert!(
            m.starts_with("<message") && m.contains("type='error'") && m.contains("id='b1'"),
            "{m}"
        );
    }

    #[test]
    fn pings_to_a_name_carry_its_incarnation() {
        let (n, _rx) = names();
        let r = text(&n.ping("w7", "a@x/bus", "h2"));
        assert_eq!(
            r,
            "<iq type='result' id='h2' from='w7@bridge.x/bus' to='a@x/bus'><node xmlns='urn:xmpp-bridge:bus:0' incarnation='inc1'/></iq>"
        );
    }

    #[test]
    fn a_name_tells_what_it_is_and_a_name_nobody_holds_does_not() {
        let (n, _rx) = names();
        let r = text(&n.disco_info("w7", "a@x/bus", "d1"));
        assert!(
            r.contains("from='w7@bridge.x/bus'") && r.contains("id='d1'"),
            "{r}"
        );
        assert!(r.contains("<feature var='urn:xmpp-bridge:bus:0'/>"), "{r}");
        assert!(text(&n.disco_info("nobody", "a@x/bus", "d2")).contains("noproc"));
    }

    #[test]
    fn every_call_gets_one_answer() {
        let (mut n, _rx) = names();
        let k1 = ("a@x/bus".to_owned(), "c1".to_owned());
        let k2 = ("a@x/bus".to_owned(), "c2".to_owned());
        let k3 = ("a@x/bus".to_owned(), "c3".to_owned());
        assert_eq!(n.call("w7", &k1, 11), Delivered::Pending(11));
        assert_eq!(n.call("w7", &k2, 12), Delivered::Pending(12));
        assert_eq!(n.call("w7", &k3, 13), Delivered::Pending(13));
        // Answered by the holder: the timer finds nothing.
        assert!(n.answer("w7", 1, &k1));
        assert!(!n.answer("w7", 1, &k1), "a late answer is dropped");
        assert!(n.timed_out(11).is_none());
        // Timed out: the holder's answer is dropped.
        let t = text(&n.timed_out(12).unwrap());
        assert!(
            t.contains("<timeout xmlns='urn:xmpp-bridge:bus:0'/>"),
            "{t}"
        );
        assert!(!n.answer("w7", 1, &k2));
        // Cancelled.
        assert!(text(&n.cancel("w7", &k3).unwrap()).contains("timeout"));
        assert!(n.cancel("w7", &k3).is_none());
        // Released with a call pending: crashed.
        assert_eq!(n.call("w7", &k1, 14), Delivered::Pending(14));
        let out = n.release("w7", 1, ExitKind::Error);
        let c = text(&out[0]);
        assert!(c.contains("<crashed") && c.contains("exited: error"), "{c}");
        assert!(n.timed_out(14).is_none());
    }

    #[test]
    fn a_name_with_1000_calls_unanswered_is_busy() {
        let (mut n, _rx) = names();
        for i in 0..MAX_PENDING_CALLS as u64 {
            let key = ("a@x/bus".to_owned(), format!("c{i}"));
            assert_eq!(n.call("w7", &key, 100 + i), Delivered::Pending(100 + i));
        }
        let key = ("a@x/bus".to_owned(), "one-more".to_owned());
        let Delivered::Answer(b) = n.call("w7", &key, 5) else {
            panic!("busy")
        };
        let b = text(&b);
        assert!(
            b.contains("<busy xmlns='urn:xmpp-bridge:bus:0'/>")
                && b.contains("from='w7@bridge.x/bus'"),
            "{b}"
        );
    }
}
