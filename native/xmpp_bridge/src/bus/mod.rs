//! The bus: BEAM processes and Rust programs exchanging terms, calls and
//! monitors over XMPP (docs/PROTOCOL.md §5), the Rust side.
//!
//! A [`Node`] is a client session (resource `bus` by default) with the
//! extras the protocol defines: an incarnation, drawn when the node starts
//! and named in its presence and ping answers; term messages with
//! at-most-once hand-over (dedupe by sender and origin id) and optional
//! XEP-0184 receipts; calls answered by handlers running in tasks of their
//! own; monitors that report DOWN once per monitor, from directed
//! presence and heartbeat pings; groups (MUC rooms) with broadcasts,
//! member lists and statuses; discovery of the nodes online and of the
//! methods a node serves. Any Elixir node (`XmppBridge.Bus`) and any XMPP
//! client can take part: it is plain XMPP.
//!
//! Where the API takes a JID, a bare JID means that account's bus node:
//! `bob@example.com` is `bob@example.com/bus`.
//!
//! ```no_run
//! use std::time::Duration;
//! use xmpp_bridge::bus::{self, Delivery, Event, SendOptions};
//! use xmpp_bridge::etf::Term;
//!
//! # async fn run() -> Result<(), bus::Error> {
//! let mut config = bus::Config::new("alice@example.com", "secret");
//! config.heartbeat = Duration::from_secs(2);
//! let (node, mut events) = bus::Node::connect(config).await?;
//!
//! // Serve `add`: the arguments arrive as a list.
//! node.serve("add", |args: bus::Args| async move {
//!     let (a, b): (i64, i64) = args.decode().map_err(|e| e.to_string())?;
//!     Ok(Term::from(a + b))
//! });
//!
//! // A term to bob's node, confirmed by a receipt, retried for 30 s.
//! let job = Term::tuple(vec![Term::atom("job"), Term::from(42)]);
//! let options = SendOptions {
//!     delivery: Delivery::Confirmed,
//!     deadline: Some(Duration::from_secs(30)),
//! };
//! let sent = node.send_term("bob@example.com", job, options)?;
//!
//! // A call, and a monitor.
//! let sum: i64 = node
//!     .call("bob@example.com", "add", &(1, 2), Duration::from_secs(5))
//!     .await
//!     .expect("an answer");
//! let watch = node.monitor("bob@example.com")?;
//!
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Message { from, payload } => println!("{from}: {payload:?}"),
//!         Event::Delivered(r) if r == sent => println!("bob has the job"),
//!         Event::Down { monitor, reason, .. } if monitor == watch => {
//!             println!("bob is down: {reason}");
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! # let _ = sum;
//! node.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! Groups (docs/PROTOCOL.md §6): a group is a MUC room on the node's
//! service (`conference.<domain>` unless [`Config::muc_service`] says
//! otherwise), the node's nickname its own full JID.
//!
//! ```no_run
//! use xmpp_bridge::bus::{self, Event, Show, Status};
//!
//! # async fn run() -> Result<(), bus::Error> {
//! let mut config = bus::Config::new("alice@example.com", "secret");
//! config.discovery = Some("bus".into());
//! let (node, mut events) = bus::Node::connect(config).await?;
//! node.join("jobs").await?;
//! node.broadcast("jobs", &("resize", 7))?;
//! for m in node.members("jobs") {
//!     println!("{} (bus node: {})", m.jid, m.bus);
//! }
//! node.set_status(Status {
//!     show: Some(Show::Dnd),
//!     text: Some("busy: 12 jobs".into()),
//!     payload: None,
//! })?;
//! println!("online: {:?}", node.nodes());
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Broadcast { group, from, payload } => println!("{group} {from}: {payload:?}"),
//!         Event::Left { group, jid, reason } => println!("{jid} left {group}: {reason}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Names (docs/PROTOCOL.md §7): a node connected as an external
//! component ([`Config::component`]) is a name host. Each [`Name`] it
//! registers is an address of its own, `name@<component>/bus`, with its
//! own incarnation and mailbox ([`Name::recv`]: [`NameEvent::Message`]
//! and [`NameEvent::Call`], answered with [`Request::reply`] or
//! [`Request::fail`]); the host answers `noproc` for names nobody holds,
//! `timeout`, `busy` and `crashed` for its names when they cannot, and
//! tells a name's watchers how it ended ([`DownReason::Exit`]). A name
//! host joins no groups ([`Error::GroupsOnNameHost`]).
//!
//! ```no_run
//! use xmpp_bridge::bus::{self, Failure, NameEvent, SendOptions};
//!
//! # async fn run() -> Result<(), bus::Error> {
//! let (host, _events) =
//!     bus::Node::connect(bus::Config::component("bridge.example.com", "secret")).await?;
//! let mut counter = host.register("counter")?;
//! let mut n = 0i64;
//! while let Some(event) = counter.recv().await {
//!     match event {
//!         NameEvent::Message { from, .. } => {
//!             counter.send(&from, &("count", n), SendOptions::default())?;
//!         }
//!         NameEvent::Call(req) if req.method() == "incr" => {
//!             n += 1;
//!             req.reply(&n);
//!         }
//!         NameEvent::Call(req) => {
//!             req.fail(Failure::NoMethod);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Messages and calls to names do not count against [`Config::window`]:
//! each name's mailbox is unbounded, so a name's task must keep taking
//! them.
//!
//! Flow control: incoming messages wait in [`Events`] up to
//! [`Config::window`] of them; beyond that the session stops reading, so
//! that a fast sender fills the socket and its server, not this process.
//! An application that stops taking events therefore also stops the
//! node's answers to pings and calls: take events steadily, or drop
//! [`Events`] to have incoming messages dropped.
//!
//! For programs without an async runtime, [`blocking::Node`] owns one.
#![warn(missing_docs)]

pub mod blocking;
mod core;
mod dedupe;
pub mod error;
mod group;
pub mod json;
mod monitor;
mod names;
pub mod render;
mod wire;

pub use self::core::MethodFuture;
pub use crate::stanza::Show;
pub use error::{CallError, DownReason, Error, ExitKind, LeftReason, SendError};
pub use group::{check_group, JoinOptions, Member, Status, MAX_GROUP_CHARS};
pub use names::{
    check_name, Failure, Name, NameEvent, NameSender, Request, MAX_NAME_BYTES, MAX_PENDING_CALLS,
};
pub use wire::METHODS_NODE;

use self::core::{BusHandler, Core, Inner, Item, Method, OutCall, OutMessage, Settings, Waiter};
use crate::connection::{self, Active, ConnError};
use crate::etf::{self, Term};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

/// The resource a bus node binds, and the one a bare JID stands for.
pub const RESOURCE: &str = "bus";

/// A node's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The session. [`Config::new`] sets the resource `bus`; the node
    /// sets `bus_incarnation`, `initial_presence` (off: it sends its own)
    /// and `active` (from [`Config::window`]) itself.
    pub connection: connection::Config,
    /// How often a watched peer is pinged (5 s).
    pub heartbeat: Duration,
    /// How long a ping may stay unanswered, and how long a check after an
    /// unavailable presence lasts (5 s).
    pub heartbeat_timeout: Duration,
    /// Requests served at once; more are answered `busy` (64).
    pub max_calls: usize,
    /// With [`Delivery::Confirmed`] and a deadline: how long to wait for
    /// the receipt before sending again (5 s).
    pub retry_interval: Duration,
    /// Incoming messages that may wait in [`Events`] before the session
    /// stops reading (256).
    pub window: u32,
    /// The deadline of a request that names no timeout, and how long
    /// [`Node::methods`] waits (5 s).
    pub default_call_timeout: Duration,
    /// The MUC service of the node's groups; `None`: `conference.<domain>`
    /// of the node's JID.
    pub muc_service: Option<String>,
    /// A group to join at start (docs/PROTOCOL.md §6.3): its members are
    /// the nodes [`Node::nodes`] lists. [`Node::connect`] returns once it
    /// is joined.
    pub discovery: Option<String>,
    /// How long a join may take, the room's configuration included (10 s).
    pub join_timeout: Duration,
}

impl Config {
    /// Defaults for the node of account `jid` (a bare JID; the resource
    /// is `bus` unless `jid` names one).
    pub fn new(jid: impl Into<String>, password: impl Into<String>) -> Config {
        let mut connection = connection::Config::client(jid, password);
        let has_resource = connection.jid.contains('/');
        connection.resource = (!has_resource).then(|| RESOURCE.to_owned());
        connection.initial_presence = false;
        Config {
            connection,
            heartbeat: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(5),
            max_calls: 64,
            retry_interval: Duration::from_secs(5),
            window: 256,
            default_call_timeout: Duration::from_secs(5),
            muc_service: None,
            discovery: None,
            join_timeout: Duration::from_secs(10),
        }
    }

    /// Defaults for a name host (docs/PROTOCOL.md §7): an external
    /// component (XEP-0114) for `domain` (`bridge.<domain>` by
    /// convention) with the server's `secret`, on port 5347 unless
    /// [`connection::Config::port`] says otherwise.
    pub fn component(domain: impl Into<String>, secret: impl Into<String>) -> Config {
        let mut config = Config::new("placeholder@localhost", "");
        config.connection = connection::Config::component(domain, secret);
        config
    }
}

/// A term or a JSON value, as messages, arguments and results carry them.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A term (docs/PROTOCOL.md §2).
    Term(Term),
    /// XEP-0335 JSON (from peers that speak neither Erlang nor Rust).
    Json(serde_json::Value),
}

impl Payload {
    /// The value as `T`: through [`etf::from_term`] for a term, serde_json
    /// for JSON.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        match self {
            Payload::Term(t) => etf::from_term_ref(t).map_err(|e| Error::Encode(e.to_string())),
            Payload::Json(v) => T::deserialize(v).map_err(|e| Error::Encode(e.to_string())),
        }
    }

    /// The value as a term (JSON converted as [`json`] says).
    pub fn to_term(&self) -> Term {
        match self {
            Payload::Term(t) => t.clone(),
            Payload::Json(v) => json::json_to_term(v),
        }
    }
}

/// The arguments of a call, as the handler receives them.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    terms: Vec<Term>,
}

impl Args {
    /// Arguments from terms.
    pub fn new(terms: Vec<Term>) -> Args {
        Args { terms }
    }

    /// The arguments, in order.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The arguments, taken.
    pub fn into_terms(self) -> Vec<Term> {
        self.terms
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Argument `i` (from 0).
    pub fn get(&self, i: usize) -> Option<&Term> {
        self.terms.get(i)
    }

    /// The argument list as `T`: a tuple (`(i64, String)`) or a `Vec` for
    /// several, a 1-tuple `(T,)` for one.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let list = Term::List(self.terms.clone());
        etf::from_term_ref(&list).map_err(|e| Error::Encode(e.to_string()))
    }
}

/// The reference of a send, named again in its outcome event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendRef(pub u64);

/// The reference of a monitor, named again in its [`Event::Down`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorRef(pub u64);

/// How far a send is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Fire and forget: no outcome is reported.
    None,
    /// Failures only: the session lost it, or it bounced.
    #[default]
    Server,
    /// [`Event::Delivered`] on the receiver's XEP-0184 receipt, or
    /// [`Event::Failed`].
    Confirmed,
}

/// How a term is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendOptions {
    /// How far the send is followed (server by default).
    pub delivery: Delivery,
    /// With a deadline the send is repeated (same bytes, same id: the
    /// receiver drops copies) when the session loses it and, with
    /// [`Delivery::Confirmed`], when no receipt came within
    /// [`Config::retry_interval`]; at the deadline it fails with
    /// [`SendError::Timeout`].
    pub deadline: Option<Duration>,
}

impl SendOptions {
    /// Confirmed delivery, repeated until `deadline`.
    pub fn confirmed(deadline: Option<Duration>) -> SendOptions {
        SendOptions {
            delivery: Delivery::Confirmed,
            deadline,
        }
    }
}

/// What a node reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A term or JSON message, handed over once.
    Message {
        /// The sender's full JID.
        from: String,
        /// What it carried.
        payload: Payload,
    },
    /// The receipt of a [`Delivery::Confirmed`] send came.
    Delivered(SendRef),
    /// The send failed (and, with a deadline, will not be repeated).
    Failed(SendRef, SendError),
    /// A monitored node is down; once per monitor.
    Down {
        /// The monitor [`Node::monitor`] returned.
        monitor: MonitorRef,
        /// The node's address (a full JID).
        jid: String,
        /// Why it is considered down.
        reason: DownReason,
    },
    /// A broadcast to a group the node is in (never its own: the room's
    /// echo is dropped).
    Broadcast {
        /// The group.
        group: String,
        /// The sender's full JID.
        from: String,
        /// What it carried.
        payload: Payload,
    },
    /// A member entered a group the node is in (after the node's join
    /// completed: the members found at the join are [`Node::members`]).
    Joined {
        /// The group.
        group: String,
        /// The member's full JID.
        jid: String,
    },
    /// A member left a group's list: the room said so ([`LeftReason::Left`]),
    /// or the node's heartbeat found it down. The node's own JID when the
    /// room removed the node itself (then the group is over).
    Left {
        /// The group.
        group: String,
        /// The member's full JID.
        jid: String,
        /// Why.
        reason: LeftReason,
    },
    /// A member's status changed.
    Status {
        /// The group.
        group: String,
        /// The member's full JID.
        jid: String,
        /// Its new status.
        status: Status,
    },
    /// The session is online (also right after [`Node::connect`]).
    Online {
        /// True when XEP-0198 resumed the stream (nothing was lost).
        resumed: bool,
    },
    /// The session lost its connection; it reconnects unless the error is
    /// fatal (then [`Event::Closed`] follows).
    Disconnected(ConnError),
    /// The session is over (`None`: closed on request). Always last.
    Closed(Option<ConnError>),
}

/// The events of a node, in order. Taking a message lets the session read
/// one more (see [`Config::window`]).
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Item>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("incarnation", &self.incarnation)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The next event; `None` once the node is closed and every event was
    /// taken.
    pub async fn next(&mut self) -> Option<Event> {
        let (event, credit) = self.rx.recv().await?;
        self.taken(credit);
        Some(event)
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        let (event, credit) = self.rx.try_recv().ok()?;
        self.taken(credit);
        Some(event)
    }

    fn taken(&self, credit: bool) {
        if credit {
            self.inner.handle().set_active(Active::More(1));
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        // Messages from now on are dropped (their credit goes straight
        // back); those waiting give theirs back now.
        self.inner.lock().events = None;
        let mut back = 0u32;
        while let Ok((_, credit)) = self.rx.try_recv() {
            back += u32::from(credit);
        }
        if back > 0 {
            self.inner.handle().set_active(Active::More(back));
        }
    }
}

/// Closes the session when the last [`Node`] clone goes (abruptly: call
/// [`Node::close`] for the goodbye).
#[derive(Debug)]
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(h) = self.inner.handle.get() {
            h.close();
        }
    }
}

/// A bus node: cheap to clone, usable from any task or thread.
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

/// The MUC service of a configuration: its own, or `conference.<domain>`.
fn muc_service(config: &Config) -> Result<String, Error> {
    let bad = |why: String| Error::Connect(ConnError::Config(why));
    match &config.muc_service {
        Some(s) => {
            let parts = crate::jid::parse(s).map_err(|e| bad(format!("muc_service: {e}")))?;
            if parts.node.is_some() || parts.resource.is_some() {
                return Err(bad(format!("muc_service must be a domain, not {s:?}")));
            }
            Ok(parts.domain)
        }
        None => {
            let parts =
                crate::jid::parse(&config.connection.jid).map_err(|e| bad(format!("jid: {e}")))?;
            let service = format!("conference.{}", parts.domain);
            crate::jid::normalize(&service).map_err(|e| bad(format!("muc_service: {e}")))
        }
    }
}

/// The bus address of `jid`: normalised, `/bus` added to a bare JID.
pub fn address(jid: &str) -> Result<String, Error> {
    let parts = crate::jid::parse(jid).map_err(|e| Error::InvalidJid(e.to_string()))?;
    let mut out = String::new();
    if let Some(node) = &parts.node {
        out.push_str(node);
        out.push('@');
    }
    out.push_str(&parts.domain);
    out.push('/');
    out.push_str(parts.resource.as_deref().unwrap_or(RESOURCE));
    Ok(out)
}

async fn timers(inner: Arc<Inner>) {
    loop {
        let next = {
            let mut core = inner.lock();
            if core.closed {
                return;
            }
            core.run_timers(&inner, tokio::time::Instant::now())
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = inner.timer_wake.notified() => {}
                }
            }
            None => inner.timer_wake.notified().await,
        }
    }
}

/// Disarmed once the call is answered; otherwise forgets it on drop (the
/// caller's timeout, or its future dropped) and tells the serving node.
struct Abandon<'a> {
    inner: &'a Arc<Inner>,
    token: u64,
    to: &'a str,
    /// The name the call went from, if any (the cancel goes from it too).
    from: Option<&'a str>,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner
                .lock()
                .abandon_call(self.inner, self.token, self.to, self.from);
        }
    }
}

fn jid_error(e: Error) -> CallError {
    CallError::Stanza {
        condition: "jid-malformed".into(),
        text: Some(e.to_string()),
    }
}

impl Node {
    /// Starts the session and waits until it is online. Fails with the
    /// session's error when it gives up (bad credentials, bad options);
    /// a server that cannot be reached is retried, as the session's
    /// reconnect policy says (wrap the call in a timeout to bound it).
    pub async fn connect(config: Config) -> Result<(Node, Events), Error> {
        if config.max_calls == 0 {
            return Err(Error::Connect(ConnError::Config(
                "max_calls must be positive".into(),
            )));
        }
        let service = muc_service(&config)?;
        let host = config.connection.mode == connection::Mode::Component;
        if let Some(d) = &config.discovery {
            if host {
                return Err(Error::GroupsOnNameHost);
            }
            check_group(d)?;
        }
        let incarnation = format!("{:016x}", rand::random::<u64>());
        let mut conn = config.connection.clone();
        conn.bus_incarnation = Some(incarnation.clone());
        conn.initial_presence = false;
        conn.active = Active::More(config.window.max(1));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (online_tx, online_rx) = oneshot::channel();
        let groups = group::Groups::new(service, config.join_timeout);
        let mut core = Core::new(config.heartbeat, config.heartbeat_timeout, groups);
        core.events = Some(events_tx);
        core.first_online = Some(online_tx);
        if host {
            core.names = Some(names::Names::new(&config.connection.jid));
        }
        let runtime = tokio::runtime::Handle::current();
        let inner = Arc::new(Inner {
            core: Mutex::new(core),
            handle: OnceLock::new(),
            incarnation,
            jid: Mutex::new(String::new()),
            settings: Settings {
                retry_interval: config.retry_interval,
                default_call_timeout: config.default_call_timeout,
            },
            runtime: runtime.clone(),
            discovery: config.discovery.clone(),
            semaphore: Arc::new(Semaphore::new(config.max_calls)),
            timer_wake: Notify::new(),
            closed: tokio::sync::watch::Sender::new(false),
            next_id: AtomicU64::new(1),
        });
        {
            // The handler locks the core first: it cannot run before the
            // handle is set.
            let _core = inner.lock();
            let handler = BusHandler {
                inner: inner.clone(),
                credit_back: 0,
            };
            let handle = connection::spawn(&runtime, conn, handler);
            let _ = inner.handle.set(handle);
        }
        runtime.spawn(timers(inner.clone()));
        // Dropping this future before it is online closes the session.
        let owner = Arc::new(Owner {
            inner: inner.clone(),
        });
        match online_rx.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::Connect(e)),
            Err(_) => return Err(Error::Closed),
        }
        let node = Node {
            inner: inner.clone(),
            _owner: owner,
        };
        let events = Events {
            rx: events_rx,
            inner,
        };
        if let Some(group) = &config.discovery {
            // Dropping the node on failure closes the session.
            node.join(group).await?;
        }
        Ok((node, events))
    }

    /// The node's full JID (as the server bound it).
    pub fn jid(&self) -> String {
        self.inner
            .jid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The node's incarnation: 16 hex digits, new each time a node starts.
    pub fn incarnation(&self) -> &str {
        &self.inner.incarnation
    }

    /// True once the session is over.
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// Sends a term to `to` (a bare JID means its bus node). The outcome,
    /// as `options` asks, comes as [`Event::Delivered`] or
    /// [`Event::Failed`] with the returned reference.
    pub fn send_term(&self, to: &str, term: Term, options: SendOptions) -> Result<SendRef, Error> {
        self.send_payload(to, &Payload::Term(term), options)
    }

    /// Sends a JSON value (XEP-0335), for peers that read JSON.
    pub fn send_json(
        &self,
        to: &str,
        value: serde_json::Value,
        options: SendOptions,
    ) -> Result<SendRef, Error> {
        self.send_payload(to, &Payload::Json(value), options)
    }

    /// Sends `value` as the term [`etf::to_term`] makes of it.
    pub fn send<T: Serialize + ?Sized>(
        &self,
        to: &str,
        value: &T,
        options: SendOptions,
    ) -> Result<SendRef, Error> {
        let term = etf::to_term(value).map_err(|e| Error::Encode(e.to_string()))?;
        self.send_term(to, term, options)
    }

    fn send_payload(
        &self,
        to: &str,
        payload: &Payload,
        options: SendOptions,
    ) -> Result<SendRef, Error> {
        let to = address(to)?;
        let message = OutMessage::new(&self.inner, &to, payload, options.delivery);
        self.inner
            .lock()
            .send_data(&self.inner, message, options.deadline)
    }

    /// Calls `method` on `to` with `args`; waits at most `timeout` (then
    /// tells the serving node, which stops the handler).
    pub async fn call_term(
        &self,
        to: &str,
        method: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.call_from(None, to, method, &Payload::Term(Term::List(args)), timeout)
            .await
            .map(|p| p.to_term())
    }

    /// Calls `method` with JSON arguments; the result comes as JSON.
    pub async fn call_json(
        &self,
        to: &str,
        method: &str,
        args: Vec<serde_json::Value>,
        timeout: Duration,
    ) -> Result<serde_json::Value, CallError> {
        match self
            .call_from(None, to, method, &Payload::Json(args.into()), timeout)
            .await?
        {
            Payload::Json(v) => Ok(v),
            Payload::Term(t) => json::term_to_json(&t).map_err(CallError::Decode),
        }
    }

    /// Calls `method` with `args` serialized as the argument list (a tuple
    /// or a `Vec` for several, `(x,)` for one, `()` for none; any other
    /// value is one argument) and decodes the result as `R`.
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

    /// A call, from `from` (a name's address) or the node's own.
    pub(crate) async fn call_from(
        &self,
        from: Option<&str>,
        to: &str,
        method: &str,
        args: &Payload,
        timeout: Duration,
    ) -> Result<Payload, CallError> {
        let to = address(to).map_err(jid_error)?;
        if method.is_empty() || method.len() > wire::MAX_METHOD_BYTES {
            return Err(CallError::BadArgs(format!(
                "a method name is 1 to {} bytes long",
                wire::MAX_METHOD_BYTES
            )));
        }
        let mut call = OutCall::new(&self.inner, &to, method, args, timeout);
        if let Some(from) = from {
            call = call.from(from);
        }
        let token = call.token;
        let rx = self.inner.lock().start_call(&self.inner, call)?;
        let mut guard = Abandon {
            inner: &self.inner,
            token,
            to: &to,
            from,
            armed: true,
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => {
                guard.armed = false;
                answer
            }
            Ok(Err(_)) => {
                guard.armed = false;
                Err(CallError::Closed)
            }
            // The guard forgets the call and sends the cancel.
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Serves `method`: each request runs `handler` in a task of its own
    /// (at most [`Config::max_calls`] at once; more are answered `busy`),
    /// stopped at the caller's timeout or on its cancel. An `Err` and a
    /// panic are answered `crashed` with the text. Serving a method again
    /// replaces its handler.
    pub fn serve<F, Fut>(&self, method: impl Into<String>, handler: F)
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Term, String>> + Send + 'static,
    {
        let m: Method = Arc::new(move |args| Box::pin(handler(args)));
        self.inner.lock().methods.insert(method.into(), m);
    }

    /// Stops serving `method`; false when it was not served.
    pub fn unserve(&self, method: &str) -> bool {
        self.inner.lock().methods.remove(method).is_some()
    }

    /// Monitors the node at `jid`: [`Event::Down`] comes once, with the
    /// returned reference, when it goes.
    pub fn monitor(&self, jid: &str) -> Result<MonitorRef, Error> {
        let jid = address(jid)?;
        let mut core = self.inner.lock();
        if core.closed {
            return Err(Error::Closed);
        }
        Ok(core.monitor(&self.inner, &jid))
    }

    /// Removes a monitor (no DOWN comes for it); false when it is not
    /// there (removed, or DOWN already reported).
    pub fn demonitor(&self, monitor: MonitorRef) -> bool {
        self.inner.lock().demonitor(&self.inner, monitor)
    }

    /// Joins `group` (no history) and waits until the join is complete:
    /// the room's presence of the node, and its configuration when the
    /// node created it. A group joined already (or being joined) answers
    /// at once (or with that join). The node stays in the group, and joins
    /// it again after a reconnect that was not a resumption, until
    /// [`Node::leave`].
    ///
    /// Fails with [`Error::InvalidGroup`], [`Error::GroupsOnNameHost`]
    /// (a name host joins no groups), [`Error::JoinFailed`] (the
    /// room's condition), [`Error::Timeout`] (after
    /// [`Config::join_timeout`]) or [`Error::Closed`].
    pub async fn join(&self, group: &str) -> Result<(), Error> {
        self.join_with(group, JoinOptions::default()).await
    }

    /// [`Node::join`] with options (the history to replay).
    pub async fn join_with(&self, group: &str, options: JoinOptions) -> Result<(), Error> {
        check_group(group)?;
        if self.is_name_host() {
            return Err(Error::GroupsOnNameHost);
        }
        let rx = self.inner.lock().join(&self.inner, group, options)?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Leaves `group`: its members are forgotten (no events for them).
    /// [`Error::NotJoined`] when the node is not in it.
    pub fn leave(&self, group: &str) -> Result<(), Error> {
        check_group(group)?;
        self.inner.lock().leave(&self.inner, group)
    }

    /// Broadcasts `value` (as the term [`etf::to_term`] makes of it) to the
    /// members of `group`; the outcome is followed as far as the server
    /// (an [`Event::Failed`] when the session lost it or the room bounced
    /// it).
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        group: &str,
        value: &T,
    ) -> Result<SendRef, Error> {
        let term = etf::to_term(value).map_err(|e| Error::Encode(e.to_string()))?;
        self.broadcast_term(group, term)
    }

    /// Broadcasts a term to the members of `group` (see [`Node::broadcast`]).
    pub fn broadcast_term(&self, group: &str, term: Term) -> Result<SendRef, Error> {
        self.broadcast_payload(group, &Payload::Term(term))
    }

    /// Broadcasts a JSON value (XEP-0335) to the members of `group`.
    pub fn broadcast_json(&self, group: &str, value: serde_json::Value) -> Result<SendRef, Error> {
        self.broadcast_payload(group, &Payload::Json(value))
    }

    fn broadcast_payload(&self, group: &str, payload: &Payload) -> Result<SendRef, Error> {
        check_group(group)?;
        let room = self
            .inner
            .lock()
            .groups
            .room_of_joined(group)
            .ok_or_else(|| Error::NotJoined(group.to_owned()))?;
        // Written before the core is locked again: encoding takes time.
        let message = OutMessage::group(&self.inner, &room, payload);
        self.inner.lock().send_data(&self.inner, message, None)
    }

    /// The members of `group` as the room announced them, the node itself
    /// included, sorted by JID; empty when the node is not in it.
    pub fn members(&self, group: &str) -> Vec<Member> {
        self.inner.lock().groups.members(group)
    }

    /// The nodes online: the members of the discovery group
    /// ([`Config::discovery`]); empty without one.
    pub fn nodes(&self) -> Vec<Member> {
        match &self.inner.discovery {
            Some(group) => self.members(group),
            None => Vec::new(),
        }
    }

    /// Sets the node's status (docs/PROTOCOL.md §6.2): sent as its
    /// broadcast presence, to every room it is in and to every watcher;
    /// carried by the joins to come.
    pub fn set_status(&self, status: Status) -> Result<(), Error> {
        self.inner.lock().set_status(&self.inner, status)
    }

    /// The node's status, as last set.
    pub fn status(&self) -> Status {
        self.inner.lock().groups.status.clone()
    }

    /// The methods the node at `jid` serves (a bare JID means its bus
    /// node), sorted by name: its answer to a disco#items query
    /// (docs/PROTOCOL.md §6.3). Waits at most
    /// [`Config::default_call_timeout`].
    pub async fn methods(&self, jid: &str) -> Result<Vec<String>, Error> {
        let to = address(jid)?;
        let token = self.inner.next_id();
        let rx = self.inner.lock().query_methods(&self.inner, token, &to)?;
        match tokio::time::timeout(self.inner.settings.default_call_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                self.inner.lock().abandon_query(&self.inner, token);
                Err(Error::Timeout)
            }
        }
    }

    /// Stops the node cleanly: unavailable presence to each room, goodbye
    /// presence to each watcher, the unavailable presence, the session's
    /// close. Returns once the session
    /// is over; [`Events`] ends after its [`Event::Closed`].
    pub async fn close(&self) {
        let barrier = {
            let mut core = self.inner.lock();
            if core.closed {
                return;
            }
            if core.closing || !core.online {
                core.closing = true;
                None
            } else {
                core.closing = true;
                core.say_goodbye(&self.inner);
                // A ping to our own server: once answered, everything
                // queued before it was written and handled.
                let jid = self.jid();
                let domain = jid
                    .split('/')
                    .next()
                    .and_then(|b| b.rsplit('@').next())
                    .unwrap_or_default()
                    .to_owned();
                let token = self.inner.next_id();
                let id = format!("bye{token}");
                let (tx, rx) = oneshot::channel();
                match self
                    .inner
                    .handle()
                    .iq(token, id.clone(), wire::ping(&domain, &id))
                {
                    Ok(_) => {
                        core.waiters.insert(token, Waiter::Barrier(tx));
                        Some(rx)
                    }
                    Err(_) => None,
                }
            }
        };
        if let Some(rx) = barrier {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        self.inner.handle().close();
        let mut closed = self.inner.closed.subscribe();
        let _ = closed.wait_for(|c| *c).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_jid_means_its_bus_node() {
        assert_eq!(address("Bob@Example.com").unwrap(), "bob@example.com/bus");
        assert_eq!(
            address("bob@example.com/other").unwrap(),
            "bob@example.com/other"
        );
        assert!(matches!(address("@x"), Err(Error::InvalidJid(_))));
    }

    #[test]
    fn the_config_binds_the_bus_resource() {
        let c = Config::new("alice@example.com", "pw");
        assert_eq!(c.connection.resource.as_deref(), Some("bus"));
        assert!(!c.connection.initial_presence);
        let c = Config::new("alice@example.com/mine", "pw");
        assert_eq!(c.connection.resource, None, "the JID's own resource");
        assert_eq!(c.heartbeat, Duration::from_secs(5));
        assert_eq!(c.max_calls, 64);
        assert_eq!(c.join_timeout, Duration::from_secs(10));
        assert_eq!(c.discovery, None);
    }

    #[test]
    fn the_muc_service_is_conference_of_the_domain_unless_configured() {
        let mut c = Config::new("Alice@Example.com", "pw");
        assert_eq!(muc_service(&c).unwrap(), "conference.example.com");
        c.muc_service = Some("MUC.Example.com".into());
        assert_eq!(muc_service(&c).unwrap(), "muc.example.com");
        c.muc_service = Some("room@muc.example.com".into());
        assert!(matches!(muc_service(&c), Err(Error::Connect(_))));
    }

    #[test]
    fn args_and_payloads_decode_with_serde() {
        let args = Args::new(vec![Term::Int(1), Term::binary("x")]);
        let (a, b): (i64, String) = args.decode().unwrap();
        assert_eq!((a, b.as_str()), (1, "x"));
        let p = Payload::Json(serde_json::json!({"n": 3}));
        #[derive(serde::Deserialize)]
        struct N {
            n: u8,
        }
        assert_eq!(p.decode::<N>().unwrap().n, 3);
        assert_eq!(Payload::Term(Term::Int(7)).decode::<i32>().unwrap(), 7);
    }
}
