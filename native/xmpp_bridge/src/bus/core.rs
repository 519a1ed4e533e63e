//! The state of a node that the session's handler, the API and the timer
//! task share (under one mutex, held briefly and never across an await):
//! sends waiting for an outcome, calls waiting for an answer, requests
//! being served, monitors, watchers, groups, the dedupe cache, the timers.
//!
//! Everything that happens to a node goes through [`Core`]: the session
//! handler ([`BusHandler`]) calls it for every event and stanza, the API
//! for every operation, the timer task when a deadline passes.

use super::dedupe::{Dedupe, DEDUPE_KEPT};
use super::error::{CallError, SendError};
use super::group::{Ctx, GroupAction, Groups, JoinOptions, Status, MEMBER_REF};
use super::monitor::{Action, Monitors, PingAnswer};
use super::names::{self, Delivered, NameEvent, Names};
use super::wire::{self, Carried, Refusal};
use super::{Args, Delivery, Event, MonitorRef, Payload, SendRef};
use crate::connection::{Active, ConnError, Event as SessionEvent, Handle, Handler};
use crate::etf::Term;
use crate::stanza::{self, Condition, ErrorType, Iq, IqType, Message, MessageType, Presence};
use crate::stanza::{Payload as StanzaPayload, PresenceType, Stanza};
use crate::xml::Element;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::time::Instant;

/// What a served method returns.
pub type MethodFuture = Pin<Box<dyn Future<Output = Result<Term, String>> + Send>>;

/// A served method.
pub(crate) type Method = Arc<dyn Fn(Args) -> MethodFuture + Send + Sync>;

/// Server-delivery sends remembered (to match a late bounce) at most.
const SERVER_SENDS_KEPT: usize = 65_536;

/// Settings the core needs from the node's configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub retry_interval: Duration,
    pub default_call_timeout: Duration,
}

/// What lives as long as the node: the core and what needs no lock.
pub(crate) struct Inner {
    pub core: Mutex<Core>,
    pub handle: OnceLock<Handle>,
    pub incarnation: String,
    pub jid: Mutex<String>,
    pub settings: Settings,
    pub runtime: tokio::runtime::Handle,
    /// The discovery group (docs/PROTOCOL.md §6.3), if any.
    pub discovery: Option<String>,
    pub semaphore: Arc<Semaphore>,
    /// Wakes the timer task when a timer earlier than the others is set.
    pub timer_wake: Notify,
    /// True once the session is over.
    pub closed: tokio::sync::watch::Sender<bool>,
    pub next_id: AtomicU64,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn handle(&self) -> &Handle {
        self.handle
            .get()
            .expect("set before the session can call back")
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// An item of the events channel: the event, and whether taking it gives
/// the session a unit of incoming credit back.
pub(crate) type Item = (Event, bool);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    Peer(String),
    Retry(u64),
    Deadline(u64),
    Group(String),
    /// A call to a name times out.
    NameCall(u64),
    /// The heartbeat of the node's rooms (self-pings), every heartbeat.
    RoomPings,
}

pub(crate) enum Waiter {
    Call {
        id: String,
        tx: oneshot::Sender<Result<Payload, CallError>>,
    },
    Ping,
    /// The close's barrier: answered once everything before it is through.
    Barrier(oneshot::Sender<()>),
    /// The configuration of the room of this group.
    Configure(String),
    /// A disco#items query for a node's methods.
    Methods(oneshot::Sender<Result<Vec<String>, super::Error>>),
    /// A self-ping in the room of this group.
    RoomPing(String, u64),
}

/// A data message written before the core is locked (encoding a big
/// term takes time).
pub(crate) struct OutMessage {
    n: u64,
    id: String,
    pub(crate) bytes: Vec<u8>,
    delivery: Delivery,
}

impl OutMessage {
    pub(crate) fn new(inner: &Inner, to: &str, data: &Payload, delivery: Delivery) -> OutMessage {
        let n = inner.next_id();
        let id = format!("{}-{n}", inner.incarnation);
        let bytes = wire::data_message(to, &id, data, delivery == Delivery::Confirmed);
        OutMessage {
            n,
            id,
            bytes,
            delivery,
        }
    }

    /// A broadcast to `room`: followed as far as the server (a bounce
    /// from the room fails it).
    pub(crate) fn group(inner: &Inner, room: &str, data: &Payload) -> OutMessage {
        let n = inner.next_id();
        let id = format!("{}-{n}", inner.incarnation);
        let bytes = wire::group_message(room, &id, data);
        OutMessage {
            n,
            id,
            bytes,
            delivery: Delivery::Server,
        }
    }
}

/// A call written before the core is locked.
pub(crate) struct OutCall {
    pub token: u64,
    id: String,
    pub(crate) bytes: Vec<u8>,
}

impl OutCall {
    pub(crate) fn new(
        inner: &Inner,
        to: &str,
        method: &str,
        args: &Payload,
        timeout: Duration,
    ) -> OutCall {
        let token = inner.next_id();
        let id = format!("c{token}");
        let bytes = wire::call(to, &id, method, timeout, args);
        OutCall { token, id, bytes }
    }
}

struct PendingSend {
    id: String,
    delivery: Delivery,
    /// Kept when the send may be repeated.
    bytes: Option<Vec<u8>>,
    deadline: Option<Instant>,
    /// The session's sequence number of the last copy sent.
    seq: Option<u64>,
}

pub(crate) struct Core {
    pub online: bool,
    pub closed: bool,
    pub closing: bool,
    pub first_online: Option<oneshot::Sender<Result<String, ConnError>>>,
    pub events: Option<mpsc::UnboundedSender<Item>>,
    sends: HashMap<u64, PendingSend>,
    by_seq: HashMap<u64, u64>,
    by_id: HashMap<String, u64>,
    server_sends: VecDeque<u64>,
    pub waiters: HashMap<u64, Waiter>,
    /// Requests being served: (caller, IQ id) -> (generation, cancel).
    serving: HashMap<(String, String), (u64, oneshot::Sender<()>)>,
    pub methods: HashMap<String, Method>,
    monitors: Monitors,
    watchers: HashSet<String>,
    pub groups: Groups,
    /// A name host's names (docs/PROTOCOL.md §7); `None` for a client node.
    pub names: Option<Names>,
    dedupe: Dedupe,
    timers: BTreeSet<(Instant, u64, Timer)>,
    timer_seq: u64,
    refusals_logged: u64,
    heartbeat: Duration,
    /// The room heartbeat (Timer::RoomPings) runs.
    room_pings_armed: bool,
}

impl Core {
    pub(crate) fn new(heartbeat: Duration, heartbeat_timeout: Duration, groups: Groups) -> Core {
        Core {
            online: false,
            closed: false,
            closing: false,
            first_online: None,
            events: None,
            sends: HashMap::new(),
            by_seq: HashMap::new(),
            by_id: HashMap::new(),
            server_sends: VecDeque::new(),
            waiters: HashMap::new(),
            serving: HashMap::new(),
            methods: HashMap::new(),
            monitors: Monitors::new(heartbeat, heartbeat_timeout),
            watchers: HashSet::new(),
            groups,
            names: None,
            dedupe: Dedupe::new(DEDUPE_KEPT),
            timers: BTreeSet::new(),
            timer_seq: 0,
            refusals_logged: 0,
            heartbeat,
            room_pings_armed: false,
        }
    }

    fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send((event, false));
        }
    }

    /// Sets a timer; wakes the timer task when it is the earliest.
    pub(crate) fn add_timer(&mut self, inner: &Inner, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        let earliest = self.timers.first().map_or(true, |(t, _, _)| at < *t);
        self.timers.insert((at, self.timer_seq, timer));
        if earliest {
            inner.timer_wake.notify_one();
        }
    }

    /// Runs the timers due at `now`; returns when the next one is due.
    pub(crate) fn run_timers(&mut self, inner: &Inner, now: Instant) -> Option<Instant> {
        while let Some((at, _, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let (_, _, timer) = self.timers.pop_first().expect("just seen");
            match timer {
                Timer::Peer(jid) => {
                    let actions = self.monitors.on_timer(&jid, now, self.online);
                    self.apply(inner, actions);
                }
                Timer::Retry(sref) => self.retry_send(inner, sref, now),
                Timer::Deadline(sref) => {
                    // (A server-delivery send the server took has no
                    // deadline any more.)
                    if self.sends.get(&sref).is_some_and(|s| s.deadline.is_some()) {
                        self.finish_send(sref, Some(SendError::Timeout));
                    }
                }
                Timer::Group(name) => {
                    let actions = self.with_ctx(inner, |g, ctx| g.on_timer(ctx, &name));
                    self.apply_groups(inner, actions);
                }
                Timer::NameCall(token) => {
                    if let Some(bytes) = self.names.as_mut().and_then(|n| n.timed_out(token)) {
                        self.send_raw(inner, bytes);
                    }
                }
                Timer::RoomPings => {
                    let actions = self.with_ctx(inner, |g, ctx| g.self_pings(ctx));
                    self.apply_groups(inner, actions);
                    if !self.closed {
                        self.add_timer(inner, now + self.heartbeat, Timer::RoomPings);
                    }
                }
            }
        }
        self.timers.first().map(|(t, _, _)| *t)
    }

    /// Sends bytes the node wrote itself (answers, presences, receipts);
    /// a full queue loses them, with a word on stderr.
    fn send_raw(&self, inner: &Inner, bytes: Vec<u8>) {
        if let Err(e) = inner.handle().send(bytes) {
            eprintln!("xmpp_bridge bus: a stanza of the node's own was not queued: {e:?}");
        }
    }

    // ------------------------------------------------------------ sending

    /// Queues a data message written by [`OutMessage::new`] and remembers
    /// what its outcome needs.
    pub(crate) fn send_data(
        &mut self,
        inner: &Inner,
        message: OutMessage,
        deadline: Option<Duration>,
    ) -> Result<SendRef, super::Error> {
        if self.closed || self.closing {
            return Err(super::Error::Closed);
        }
        let OutMessage {
            n,
            id,
            bytes,
            delivery,
        } = message;
        let repeat = deadline.is_some() && delivery != Delivery::None;
        let kept = repeat.then(|| bytes.clone());
        let seq = inner.handle().send(bytes).map_err(|e| match e {
            crate::connection::QueueError::Full => super::Error::QueueFull,
            crate::connection::QueueError::Closed => super::Error::Closed,
        })?;
        let sref = SendRef(n);
        if delivery == Delivery::None {
            return Ok(sref);
        }
        let now = Instant::now();
        let deadline = deadline.map(|d| now + d);
        self.sends.insert(
            n,
            PendingSend {
                id: id.clone(),
                delivery,
                bytes: kept,
                deadline,
                seq: Some(seq),
            },
        );
        self.by_seq.insert(seq, n);
        self.by_id.insert(id, n);
        if let Some(deadline) = deadline {
            self.add_timer(inner, deadline, Timer::Deadline(n));
            if delivery == Delivery::Confirmed {
                let retry = (now + inner.settings.retry_interval).min(deadline);
                self.add_timer(inner, retry, Timer::Retry(n));
            }
        }
        if delivery == Delivery::Server {
            self.server_sends.push_back(n);
            if self.server_sends.len() > SERVER_SENDS_KEPT {
                let old = self.server_sends.pop_front().expect("not empty");
                // Forgotten: no outcome will be reported for it.
                self.forget_send(old);
            }
        }
        Ok(sref)
    }

    fn forget_send(&mut self, sref: u64) -> Option<PendingSend> {
        let s = self.sends.remove(&sref)?;
        if let Some(seq) = s.seq {
            self.by_seq.remove(&seq);
        }
        self.by_id.remove(&s.id);
        Some(s)
    }

    /// Reports the outcome of a send (`None`: delivered) and forgets it.
    fn finish_send(&mut self, sref: u64, failure: Option<SendError>) {
        if self.forget_send(sref).is_none() {
            return;
        }
        self.emit(match failure {
            None => Event::Delivered(SendRef(sref)),
            Some(e) => Event::Failed(SendRef(sref), e),
        });
    }

    /// Sends the same bytes again; false when that is not possible.
    fn resend(&mut self, inner: &Inner, sref: u64) -> bool {
        let Some(s) = self.sends.get_mut(&sref) else {
            return false;
        };
        let Some(bytes) = s.bytes.clone() else {
            return false;
        };
        match inner.handle().send(bytes) {
            Ok(seq) => {
                if let Some(old) = s.seq.replace(seq) {
                    self.by_seq.remove(&old);
                }
                self.by_seq.insert(seq, sref);
                true
            }
            Err(_) => false,
        }
    }

    fn may_repeat(&self, sref: u64, now: Instant) -> bool {
        !self.closed
            && self
                .sends
                .get(&sref)
                .is_some_and(|s| s.bytes.is_some() && s.deadline.is_some_and(|d| now < d))
    }

    fn retry_send(&mut self, inner: &Inner, sref: u64, now: Instant) {
        if !self.may_repeat(sref, now) {
            return;
        }
        // While offline the copy in the session's queue will go anyway.
        if self.online {
            self.resend(inner, sref);
        }
        let deadline = self.sends[&sref].deadline.expect("checked");
        let next = (now + inner.settings.retry_interval).min(deadline);
        self.add_timer(inner, next, Timer::Retry(sref));
    }

    /// The session lost a stanza: resend it when the send may be repeated,
    /// else report the failure.
    fn session_failed(&mut self, inner: &Inner, seq: u64, e: &ConnError) {
        let Some(sref) = self.by_seq.remove(&seq) else {
            return;
        };
        if let Some(s) = self.sends.get_mut(&sref) {
            if s.seq == Some(seq) {
                s.seq = None;
            } else {
                // An older copy: a newer one is on its way.
                return;
            }
        }
        if self.may_repeat(sref, Instant::now()) && self.resend(inner, sref) {
            return;
        }
        self.finish_send(sref, Some(SendError::Session(e.clone())));
    }

    fn acked(&mut self, seq: u64) {
        let Some(sref) = self.by_seq.remove(&seq) else {
            return;
        };
        if let Some(s) = self.sends.get_mut(&sref) {
            if s.seq == Some(seq) {
                s.seq = None;
            }
            // Server delivery: done, but kept for a late bounce until
            // forgotten; no event (only failures are reported).
            if s.delivery == Delivery::Server {
                s.bytes = None;
                s.deadline = None;
            }
        }
    }

    fn receipt(&mut self, id: &str) {
        if let Some(&sref) = self.by_id.get(id) {
            if self.sends[&sref].delivery == Delivery::Confirmed {
                self.finish_send(sref, None);
            }
        }
    }

    fn bounced(&mut self, m: &Message<'_>) {
        let Some(id) = m.id.as_deref() else {
            return;
        };
        let Some(&sref) = self.by_id.get(id) else {
            return;
        };
        let (condition, text, wait) = wire::bounce_reason(m);
        // A temporary error with a deadline left: the retry timer sends it
        // again (Confirmed).
        let retrying = wait
            && self.sends[&sref].delivery == Delivery::Confirmed
            && self.may_repeat(sref, Instant::now());
        if !retrying {
            self.finish_send(sref, Some(SendError::Bounced { condition, text }));
        }
    }

    // ------------------------------------------------------------- calls

    /// Registers a call written by [`OutCall::new`] and queues its IQ.
    pub(crate) fn start_call(
        &mut self,
        inner: &Inner,
        call: OutCall,
    ) -> Result<oneshot::Receiver<Result<Payload, CallError>>, CallError> {
        if self.closed || self.closing {
            return Err(CallError::Closed);
        }
        let OutCall { token, id, bytes } = call;
        let (tx, rx) = oneshot::channel();
        inner
            .handle()
            .iq(token, id.clone(), bytes)
            .map_err(|e| match e {
                crate::connection::QueueError::Full => CallError::Stanza {
                    condition: Condition::ResourceConstraint.as_str().into(),
                    text: Some("the node's outbound queue is full".into()),
                },
                crate::connection::QueueError::Closed => CallError::Closed,
            })?;
        self.waiters.insert(token, Waiter::Call { id, tx });
        Ok(rx)
    }

    /// The caller gave up: forget the waiter and tell the serving node.
    pub(crate) fn abandon_call(&mut self, inner: &Inner, token: u64, to: &str, from: Option<&str>) {
        if let Some(Waiter::Call { id, .. }) = self.waiters.remove(&token) {
            inner.handle().cancel_iq(id.clone());
            if !self.closed {
                let mut bytes = wire::cancel(to, &id);
                if let Some(from) = from {
                    bytes = crate::connection::stamp_from(bytes, from);
                }
                self.send_raw(inner, bytes);
            }
        }
    }

    // ----------------------------------------------------------- monitors

    pub(crate) fn monitor(&mut self, inner: &Inner, jid: &str) -> MonitorRef {
        let mref = inner.next_id();
        let actions = self
            .monitors
            .add(mref, jid, self.online && !self.closed, true);
        self.apply(inner, actions);
        MonitorRef(mref)
    }

    pub(crate) fn demonitor(&mut self, inner: &Inner, mref: MonitorRef) -> bool {
        let (found, actions) = self.monitors.remove(mref.0);
        self.apply(inner, actions);
        found
    }

    fn apply(&mut self, inner: &Inner, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Watch(jid) => self.send_raw(
                    inner,
                    wire::presence(Some(&jid), &inner.incarnation, true, &self.groups.status),
                ),
                Action::Ping(jid) => {
                    if !self.online || self.closed {
                        continue;
                    }
                    let token = inner.next_id();
                    let id = format!("h{token}");
                    match inner.handle().iq(token, id.clone(), wire::ping(&jid, &id)) {
                        Ok(_) => {
                            self.waiters.insert(token, Waiter::Ping);
                            let more = self.monitors.ping_sent(&jid, token, Instant::now());
                            self.apply(inner, more);
                        }
                        Err(_) => {
                            // A full queue: try again shortly.
                            let at = Instant::now() + Duration::from_millis(200);
                            self.add_timer(inner, at, Timer::Peer(jid));
                        }
                    }
                }
                Action::ForgetPing(token) => {
                    if self.waiters.remove(&token).is_some() {
                        inner.handle().cancel_iq(format!("h{token}"));
                    }
                }
                Action::Down(mref, _, reason) if mref & MEMBER_REF != 0 => {
                    let more = self.groups.member_down(mref, reason);
                    self.apply_groups(inner, more);
                }
                Action::Down(mref, jid, reason) => self.emit(Event::Down {
                    monitor: MonitorRef(mref),
                    jid,
                    reason,
                }),
                Action::Wake(at, jid) => self.add_timer(inner, at, Timer::Peer(jid)),
            }
        }
    }

    // ------------------------------------------------------------- groups

    /// Runs `f` on the groups with what they need to know of the node.
    fn with_ctx<R>(&mut self, inner: &Inner, f: impl FnOnce(&mut Groups, &Ctx<'_>) -> R) -> R {
        let jid = inner.jid.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ctx = Ctx {
            jid: &jid,
            incarnation: &inner.incarnation,
            online: self.online && !self.closed,
            now: Instant::now(),
        };
        f(&mut self.groups, &ctx)
    }

    fn apply_groups(&mut self, inner: &Inner, actions: Vec<GroupAction>) {
        for a in actions {
            match a {
                GroupAction::Send(bytes) => self.send_raw(inner, bytes),
                GroupAction::Configure { group, room } => {
                    let token = inner.next_id();
                    let id = format!("g{token}");
                    match inner
                        .handle()
                        .iq(token, id.clone(), wire::room_config(&room, &id))
                    {
                        Ok(_) => {
                            self.waiters.insert(token, Waiter::Configure(group));
                        }
                        Err(_) => {
                            let more = self.groups.configured(&group, Err(super::Error::QueueFull));
                            self.apply_groups(inner, more);
                        }
                    }
                }
                GroupAction::SelfPing {
                    group,
                    occupant,
                    id: ping,
                } => {
                    let token = inner.next_id();
                    let id = format!("g{token}");
                    match inner
                        .handle()
                        .iq(token, id.clone(), wire::ping(&occupant, &id))
                    {
                        Ok(_) => {
                            self.waiters.insert(token, Waiter::RoomPing(group, ping));
                        }
                        Err(_) => {
                            let more = self.with_ctx(inner, |g, ctx| {
                                g.self_ping_answered(ctx, &group, ping, false)
                            });
                            self.apply_groups(inner, more);
                        }
                    }
                }
                GroupAction::Emit(event) => self.emit(event),
                GroupAction::Monitor(mref, jid, node) => {
                    let now = Instant::now();
                    // A sign of life first: a restarted peer ends the
                    // monitors of its previous incarnation before this one
                    // shares their peer.
                    if let Some(n) = &node {
                        let a = self.monitors.presence(&jid, true, Some(n), now);
                        self.apply(inner, a);
                    }
                    let online = self.online && !self.closed;
                    let a = self.monitors.add(mref, &jid, online, false);
                    self.apply(inner, a);
                    if let Some(n) = &node {
                        let a = self.monitors.presence(&jid, true, Some(n), now);
                        self.apply(inner, a);
                    }
                }
                GroupAction::Demonitor(mref) => {
                    let (_, a) = self.monitors.remove(mref);
                    self.apply(inner, a);
                }
                GroupAction::Alive(jid, node) => {
                    let a = self
                        .monitors
                        .presence(&jid, true, Some(&node), Instant::now());
                    self.apply(inner, a);
                }
                GroupAction::Wake(at, name) => self.add_timer(inner, at, Timer::Group(name)),
            }
        }
    }

    /// Starts joining `group` (a checked name); the receiver has the
    /// outcome.
    pub(crate) fn join(
        &mut self,
        inner: &Inner,
        group: &str,
        options: JoinOptions,
    ) -> Result<oneshot::Receiver<Result<(), super::Error>>, super::Error> {
        if self.closed || self.closing {
            return Err(super::Error::Closed);
        }
        let (rx, actions) = self.with_ctx(inner, |g, ctx| g.join(ctx, group, options));
        self.apply_groups(inner, actions);
        Ok(rx)
    }

    pub(crate) fn leave(&mut self, inner: &Inner, group: &str) -> Result<(), super::Error> {
        let actions = self.groups.leave(group)?;
        self.apply_groups(inner, actions);
        Ok(())
    }

    /// A new status: broadcast presence, each watcher, each room.
    pub(crate) fn set_status(&mut self, inner: &Inner, status: Status) -> Result<(), super::Error> {
        if self.closed || self.closing {
            return Err(super::Error::Closed);
        }
        if self.online {
            self.send_raw(
                inner,
                wire::presence(None, &inner.incarnation, false, &status),
            );
            let mut watchers: Vec<&String> = self.watchers.iter().collect();
            watchers.sort();
            for w in watchers {
                self.send_raw(
                    inner,
                    wire::presence(Some(w), &inner.incarnation, false, &status),
                );
            }
        }
        let actions = self.with_ctx(inner, |g, ctx| g.set_status(ctx, status));
        self.apply_groups(inner, actions);
        Ok(())
    }

    /// Sends the disco#items query for the methods of `to`.
    pub(crate) fn query_methods(
        &mut self,
        inner: &Inner,
        token: u64,
        to: &str,
    ) -> Result<oneshot::Receiver<Result<Vec<String>, super::Error>>, super::Error> {
        if self.closed || self.closing {
            return Err(super::Error::Closed);
        }
        let id = format!("d{token}");
        let (tx, rx) = oneshot::channel();
        inner
            .handle()
            .iq(token, id.clone(), wire::methods_query(to, &id))
            .map_err(|e| match e {
                crate::connection::QueueError::Full => super::Error::QueueFull,
                crate::connection::QueueError::Closed => super::Error::Closed,
            })?;
        self.waiters.insert(token, Waiter::Methods(tx));
        Ok(rx)
    }

    /// The query's caller gave up.
    pub(crate) fn abandon_query(&mut self, inner: &Inner, token: u64) {
        if self.waiters.remove(&token).is_some() {
            inner.handle().cancel_iq(format!("d{token}"));
        }
    }

    /// A presence from the room of `group`.
    fn on_room_presence(
        &mut self,
        inner: &Inner,
        group: &str,
        nick: Option<&str>,
        p: &Presence<'_>,
    ) {
        let actions = self.with_ctx(inner, |g, ctx| g.on_presence(ctx, group, nick, p));
        self.apply_groups(inner, actions);
    }

    /// A groupchat message: a broadcast from a member, or nothing of ours.
    fn on_broadcast(
        &mut self,
        inner: &Inner,
        from: &str,
        m: &Message<'_>,
        carried: Carried,
    ) -> bool {
        let (room, nick) = match from.split_once('/') {
            Some((room, nick)) => (room, Some(nick)),
            None => (from, None),
        };
        let Some(group) = self.groups.group_of_room(room) else {
            return false;
        };
        if nick.is_none() {
            // From the room itself: a notice, such as a configuration change.
            if let Some(info) = wire::muc_user_in(&m.payloads) {
                let actions =
                    self.with_ctx(inner, |g, ctx| g.config_changed(ctx, &group, &info.codes));
                self.apply_groups(inner, actions);
            }
            return false;
        }
        let data = match carried {
            Carried::Data(d) => d,
            Carried::Nothing => return false,
            Carried::Refused(why) => {
                self.refusals_logged += 1;
                let n = self.refusals_logged;
                if n <= 10 || n % 1000 == 0 {
                    eprintln!(
                        "xmpp_bridge bus: dropped a broadcast from {from} (refusal {n}): {why}"
                    );
                }
                return false;
            }
        };
        // The echo of our own, and occupants we do not know, are dropped.
        let Some(sender) = self.groups.sender(&group, nick) else {
            return false;
        };
        let Some(events) = &self.events else {
            return false;
        };
        let bare = sender.split('/').next().unwrap_or(&sender).to_owned();
        let origin = m.payloads.iter().find_map(|p| match p {
            StanzaPayload::OriginId { id } => Some(id.as_ref()),
            _ => None,
        });
        if origin.is_some_and(|o| self.dedupe.contains(&bare, o)) {
            return false;
        }
        let event = Event::Broadcast {
            group,
            from: sender,
            payload: data,
        };
        if events.send((event, true)).is_err() {
            return false;
        }
        if let Some(o) = origin {
            self.dedupe.insert(&bare, o);
        }
        true
    }

    // ------------------------------------------------------------ closing

    /// The goodbye: unavailable presence to each room, with `goodbye` to
    /// each watcher, then the broadcast unavailable presence.
    pub(crate) fn say_goodbye(&mut self, inner: &Inner) {
        let leaves = self.groups.leave_all();
        self.apply_groups(inner, leaves);
        let mut watchers: Vec<&String> = self.watchers.iter().collect();
        watchers.sort();
        for w in watchers {
            self.send_raw(inner, wire::goodbye(w, &inner.incarnation));
        }
        self.watchers.clear();
        if self.names.is_none() {
            self.send_raw(inner, wire::unavailable());
        }
    }

    // -------------------------------------------------- session callbacks

    fn on_event(&mut self, inner: &Inner, event: SessionEvent) {
        match event {
            SessionEvent::Online { jid, resumed } => {
                self.online = true;
                if !self.room_pings_armed && self.names.is_none() {
                    self.room_pings_armed = true;
                    self.add_timer(inner, Instant::now() + self.heartbeat, Timer::RoomPings);
                }
                *inner.jid.lock().unwrap_or_else(|e| e.into_inner()) = jid.clone();
                if let (false, Some(names)) = (resumed, &self.names) {
                    // A component has no broadcast presence: its names'
                    // watchers hear from them again.
                    for bytes in names.online() {
                        self.send_raw(inner, bytes);
                    }
                }
                if !resumed && !self.closing && self.names.is_none() {
                    let status = &self.groups.status;
                    self.send_raw(
                        inner,
                        wire::presence(None, &inner.incarnation, false, status),
                    );
                    let mut watchers: Vec<&String> = self.watchers.iter().collect();
                    watchers.sort();
                    for w in watchers {
                        self.send_raw(
                            inner,
                            wire::presence(Some(w), &inner.incarnation, false, status),
                        );
                    }
                }
                let actions = self.monitors.online(resumed, Instant::now());
                self.apply(inner, actions);
                if !self.closing {
                    let actions = self.with_ctx(inner, |g, ctx| g.online(ctx, resumed));
                    self.apply_groups(inner, actions);
                }
                if let Some(tx) = self.first_online.take() {
                    let _ = tx.send(Ok(jid));
                }
                self.emit(Event::Online { resumed });
            }
            SessionEvent::Disconnected(e) => {
                self.online = false;
                self.emit(Event::Disconnected(e));
            }
            SessionEvent::Reconnecting { .. } | SessionEvent::Passive => {}
            SessionEvent::Acked(seqs) => seqs.into_iter().for_each(|s| self.acked(s)),
            SessionEvent::Failed(seqs, e) => {
                for seq in seqs {
                    self.session_failed(inner, seq, &e);
                }
            }
            SessionEvent::IqFailed(tokens, _) => {
                for token in tokens {
                    match self.waiters.remove(&token) {
                        Some(Waiter::Call { tx, .. }) => {
                            let _ = tx.send(Err(CallError::Closed));
                        }
                        Some(Waiter::Ping) => self.monitors.ping_void(token),
                        Some(Waiter::Barrier(tx)) => {
                            let _ = tx.send(());
                        }
                        Some(Waiter::Methods(tx)) => {
                            let _ = tx.send(Err(super::Error::Closed));
                        }
                        Some(Waiter::RoomPing(group, ping)) => {
                            let a = self.with_ctx(inner, |g, ctx| {
                                g.self_ping_answered(ctx, &group, ping, false)
                            });
                            self.apply_groups(inner, a);
                        }
                        // The rejoin after the reconnect configures again.
                        Some(Waiter::Configure(_)) | None => {}
                    }
                }
            }
            SessionEvent::Closed(reason) => {
                self.online = false;
                self.closed = true;
                let pending: Vec<u64> = self.sends.keys().copied().collect();
                for sref in pending {
                    // The session reported (Failed, just before) the
                    // server-delivery stanzas it knows were lost; the others
                    // went out. Confirmed ones will get no receipt now.
                    if self.sends[&sref].delivery == Delivery::Server {
                        self.forget_send(sref);
                    } else {
                        self.finish_send(sref, Some(SendError::Closed));
                    }
                }
                for (_, w) in self.waiters.drain() {
                    match w {
                        Waiter::Call { tx, .. } => {
                            let _ = tx.send(Err(CallError::Closed));
                        }
                        Waiter::Barrier(tx) => {
                            let _ = tx.send(());
                        }
                        Waiter::Methods(tx) => {
                            let _ = tx.send(Err(super::Error::Closed));
                        }
                        Waiter::Ping | Waiter::Configure(_) | Waiter::RoomPing(..) => {}
                    }
                }
                self.groups.closed();
                if let Some(names) = self.names.as_mut() {
                    names.closed();
                }
                if let Some(tx) = self.first_online.take() {
                    let _ = tx.send(Err(reason.clone().unwrap_or_else(|| {
                        ConnError::Protocol("closed before it was online".into())
                    })));
                }
                self.emit(Event::Closed(reason));
                self.events = None;
                // Handlers may hold the node: let it go.
                self.methods.clear();
                self.timers.clear();
                let _ = inner.closed.send(true);
                inner.timer_wake.notify_one();
            }
        }
    }

    /// A stanza from the session; true when the event it gave the
    /// application holds a unit of incoming credit.
    fn on_stanza(&mut self, inner: &Arc<Inner>, stanza: Stanza<'_>, carried: Carried) -> bool {
        if let Some(names) = &self.names {
            let to = match &stanza {
                Stanza::Message(m) => m.to.as_deref(),
                Stanza::Presence(p) => p.to.as_deref(),
                Stanza::Iq(iq) => iq.to.as_deref(),
            };
            if let Some(name) = to.and_then(|t| names.name_of(t)) {
                self.on_name_stanza(inner, &name, stanza, carried);
                return false;
            }
        }
        match stanza {
            Stanza::Message(m) => self.on_message(inner, m, carried),
            Stanza::Presence(p) => {
                self.on_presence(inner, p);
                false
            }
            Stanza::Iq(iq) => {
                self.on_iq(inner, iq);
                false
            }
        }
    }

    fn on_message(&mut self, inner: &Inner, m: Message<'_>, carried: Carried) -> bool {
        let Some(from) = m.from.as_deref() else {
            return false;
        };
        if m.type_ == MessageType::Error {
            self.bounced(&m);
            return false;
        }
        if m.type_ == MessageType::Groupchat {
            return self.on_broadcast(inner, from, &m, carried);
        }
        for p in &m.payloads {
            if let StanzaPayload::ReceiptReceived { id: Some(id) } = p {
                self.receipt(id);
            }
        }
        if let Some(id) = wire::cancel_in(&m.payloads) {
            if let Some((_, cancel)) = self.serving.remove(&(from.to_owned(), id)) {
                let _ = cancel.send(());
            }
        }
        let data = match carried {
            Carried::Nothing => return false,
            Carried::Refused(why) => {
                self.refusals_logged += 1;
                let n = self.refusals_logged;
                if n <= 10 || n % 1000 == 0 {
                    eprintln!(
                        "xmpp_bridge bus: dropped a message from {from} (refusal {n}): {why}"
                    );
                }
                self.send_raw(inner, wire::not_acceptable(from, m.id.as_deref(), &why));
                return false;
            }
            Carried::Data(d) => d,
        };
        let Some(events) = &self.events else {
            // Nobody takes events any more: dropped, unconfirmed.
            return false;
        };
        let bare = from.split('/').next().unwrap_or(from);
        let origin = m.payloads.iter().find_map(|p| match p {
            StanzaPayload::OriginId { id } => Some(id.as_ref()),
            _ => None,
        });
        let duplicate = origin.is_some_and(|o| self.dedupe.contains(bare, o));
        let mut holds = false;
        if !duplicate {
            let event = Event::Message {
                from: from.to_owned(),
                payload: data,
            };
            if events.send((event, true)).is_err() {
                return false;
            }
            holds = true;
            if let Some(o) = origin {
                self.dedupe.insert(bare, o);
            }
        }
        let wants_receipt = m
            .payloads
            .iter()
            .any(|p| matches!(p, StanzaPayload::ReceiptRequest));
        if let (true, Some(id)) = (wants_receipt, m.id.as_deref().or(origin)) {
            let rid = format!("r{}", inner.next_id());
            self.send_raw(inner, wire::receipt(from, &rid, id));
        }
        holds
    }

    fn on_presence(&mut self, inner: &Inner, p: Presence<'_>) {
        let Some(from) = p.from.as_deref() else {
            return;
        };
        let (bare, nick) = match from.split_once('/') {
            Some((bare, nick)) => (bare, Some(nick)),
            None => (from, None),
        };
        if let Some(group) = self.groups.group_of_room(bare) {
            return self.on_room_presence(inner, &group, nick, &p);
        }
        let own = inner.jid.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if from == own {
            return;
        }
        let available = match p.type_ {
            PresenceType::Available => true,
            PresenceType::Unavailable => false,
            PresenceType::Error if p.error.as_ref().is_some_and(wire::is_noproc) => {
                let actions = self.monitors.noproc(from);
                return self.apply(inner, actions);
            }
            _ => return,
        };
        let node = wire::node_in(&p.payloads);
        // Answered once per watcher (until it goes, or our session is new:
        // then every watcher gets it again).
        if available
            && node.as_ref().is_some_and(|n| n.watch)
            && self.watchers.insert(from.to_owned())
            && !self.closing
        {
            self.send_raw(
                inner,
                wire::presence(Some(from), &inner.incarnation, false, &self.groups.status),
            );
        }
        if !available {
            self.watchers.remove(from);
        }
        let actions = self
            .monitors
            .presence(from, available, node.as_ref(), Instant::now());
        self.apply(inner, actions);
    }

    fn on_iq(&mut self, inner: &Arc<Inner>, iq: Iq<'_>) {
        if !matches!(iq.type_, IqType::Get | IqType::Set) {
            // An answer nobody waits for (any more).
            return;
        }
        let Some(from) = iq.from.as_deref() else {
            return;
        };
        if let (IqType::Get, Some(StanzaPayload::DiscoItems(query))) = (iq.type_, &iq.payload) {
            // What the node serves (docs/PROTOCOL.md §6.3).
            let own = inner.jid.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let names: Vec<&str> = self.methods.keys().map(String::as_str).collect();
            let answer = wire::items_answer(from, &iq.id, &own, query.node.as_deref(), &names);
            return self.send_raw(inner, answer);
        }
        match wire::call_request(&iq) {
            Some(req) => self.serve_request(inner, from, &iq.id, req),
            None => self.send_raw(
                inner,
                wire::iq_error(
                    from,
                    &iq.id,
                    ErrorType::Cancel,
                    Condition::ServiceUnavailable,
                    None,
                    None,
                ),
            ),
        }
    }

    /// A stanza to `name` on a name host (docs/PROTOCOL.md §7).
    fn on_name_stanza(
        &mut self,
        inner: &Arc<Inner>,
        name: &str,
        stanza: Stanza<'_>,
        carried: Carried,
    ) {
        let Some(names) = self.names.as_mut() else {
            return;
        };
        let own = names.jid(name);
        match stanza {
            Stanza::Presence(p) => {
                let Some(from) = p.from.as_deref() else {
                    return;
                };
                match p.type_ {
                    PresenceType::Available
                        if wire::node_in(&p.payloads).is_some_and(|n| n.watch) =>
                    {
                        if let Some(bytes) = names.watch(name, from) {
                            self.send_raw(inner, bytes);
                        }
                    }
                    PresenceType::Unavailable => names.unwatch(name, from),
                    _ => {}
                }
            }
            Stanza::Iq(iq) => {
                if !matches!(iq.type_, IqType::Get | IqType::Set) {
                    return;
                }
                let Some(from) = iq.from.as_deref() else {
                    return;
                };
                if matches!(iq.payload, Some(StanzaPayload::Ping)) {
                    let bytes = names.ping(name, from, &iq.id);
                    return self.send_raw(inner, bytes);
                }
                if let (IqType::Get, Some(StanzaPayload::DiscoInfo(q))) = (iq.type_, &iq.payload) {
                    if q.node.is_none() {
                        let bytes = names.disco_info(name, from, &iq.id);
                        return self.send_raw(inner, bytes);
                    }
                }
                let Some(reg) = names.reg(name) else {
                    let bytes = names::noproc_iq(&own, from, &iq.id);
                    return self.send_raw(inner, bytes);
                };
                let Some(req) = wire::call_request(&iq) else {
                    let bytes = wire::iq_error(
                        from,
                        &iq.id,
                        ErrorType::Cancel,
                        Condition::ServiceUnavailable,
                        None,
                        None,
                    );
                    return self.send_raw(inner, crate::connection::stamp_from(bytes, &own));
                };
                let (args, json) = match req.args {
                    Ok(a) => a,
                    Err(why) => {
                        let bytes = wire::call_error(from, &iq.id, &Refusal::BadArgs(why));
                        return self.send_raw(inner, crate::connection::stamp_from(bytes, &own));
                    }
                };
                let key = (from.to_owned(), iq.id.to_string());
                let token = inner.next_id();
                match names.call(name, &key, token) {
                    Delivered::Answer(bytes) => self.send_raw(inner, bytes),
                    Delivered::Pending(token) => {
                        let tx = names.sender(name).cloned();
                        let at = names::deadline(req.timeout, inner.settings.default_call_timeout);
                        self.add_timer(inner, at, Timer::NameCall(token));
                        let request = names::request(inner, name, reg, key, req.method, args, json);
                        if let Some(tx) = tx {
                            // A holder that stopped taking events answers
                            // when the request is dropped (crashed). One
                            // that is gone: the release answers; this
                            // request must not (it would lock the core
                            // again).
                            if let Err(mpsc::error::SendError(NameEvent::Call(mut r))) =
                                tx.send(NameEvent::Call(request))
                            {
                                r.disarm();
                            }
                        }
                    }
                }
            }
            Stanza::Message(m) => {
                let Some(from) = m.from.as_deref() else {
                    return;
                };
                if m.type_ == MessageType::Error {
                    return self.bounced(&m);
                }
                for p in &m.payloads {
                    if let StanzaPayload::ReceiptReceived { id: Some(id) } = p {
                        self.receipt(id);
                    }
                }
                if let Some(id) = wire::cancel_in(&m.payloads) {
                    let key = (from.to_owned(), id);
                    if let Some(bytes) = self.names.as_mut().and_then(|n| n.cancel(name, &key)) {
                        self.send_raw(inner, bytes);
                    }
                }
                let data = match carried {
                    Carried::Nothing => return,
                    Carried::Refused(why) => {
                        let bytes = wire::not_acceptable(from, m.id.as_deref(), &why);
                        return self.send_raw(inner, crate::connection::stamp_from(bytes, &own));
                    }
                    Carried::Data(d) => d,
                };
                let Some(tx) = self.names.as_ref().and_then(|n| n.sender(name).cloned()) else {
                    if m.type_ != MessageType::Headline {
                        let bytes = names::noproc_message(&own, from, m.id.as_deref());
                        self.send_raw(inner, bytes);
                    }
                    return;
                };
                let bare = from.split('/').next().unwrap_or(from);
                let origin = m.payloads.iter().find_map(|p| match p {
                    StanzaPayload::OriginId { id } => Some(id.as_ref()),
                    _ => None,
                });
                let duplicate = origin.is_some_and(|o| self.dedupe.contains(bare, o));
                if !duplicate {
                    let event = NameEvent::Message {
                        from: from.to_owned(),
                        payload: data,
                    };
                    if tx.send(event).is_err() {
                        return;
                    }
                    if let Some(o) = origin {
                        self.dedupe.insert(bare, o);
                    }
                }
                let wants_receipt = m
                    .payloads
                    .iter()
                    .any(|p| matches!(p, StanzaPayload::ReceiptRequest));
                if let (true, Some(id)) = (wants_receipt, m.id.as_deref().or(origin)) {
                    let rid = format!("r{}", inner.next_id());
                    let bytes = wire::receipt(from, &rid, id);
                    self.send_raw(inner, crate::connection::stamp_from(bytes, &own));
                }
            }
        }
    }

    fn serve_request(&mut self, inner: &Arc<Inner>, from: &str, id: &str, req: wire::CallRequest) {
        let refuse = |core: &Core, r: Refusal| core.send_raw(inner, wire::call_error(from, id, &r));
        let (args, json) = match req.args {
            Ok(a) => a,
            Err(why) => return refuse(self, Refusal::BadArgs(why)),
        };
        let Some(method) = self.methods.get(&req.method).cloned() else {
            return refuse(self, Refusal::NoMethod(req.method));
        };
        if self.closing || self.closed {
            return refuse(self, Refusal::Busy);
        }
        let Ok(permit) = inner.semaphore.clone().try_acquire_owned() else {
            return refuse(self, Refusal::Busy);
        };
        let deadline = Instant::now() + req.timeout.unwrap_or(inner.settings.default_call_timeout);
        let generation = inner.next_id();
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let key = (from.to_owned(), id.to_owned());
        if let Some((_, older)) = self.serving.insert(key.clone(), (generation, cancel_tx)) {
            // The same request id again from the same caller: the older
            // one is given up.
            let _ = older.send(());
        }
        let work = Work {
            method,
            args: Args::new(args),
            json,
            deadline,
            cancel: cancel_rx,
        };
        let finish = Finish {
            key,
            generation,
            inner: inner.clone(),
        };
        inner.runtime.spawn(serve(work, finish, permit));
    }
}

struct Work {
    method: Method,
    args: Args,
    json: bool,
    deadline: Instant,
    cancel: oneshot::Receiver<()>,
}

struct Finish {
    key: (String, String),
    generation: u64,
    inner: Arc<Inner>,
}

/// What a panic carried, as text.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Serves one request: the handler runs in a task of its own (so that a
/// panic is caught and a deadline or a cancel can stop it); exactly one
/// answer goes back.
async fn serve(work: Work, finish: Finish, permit: tokio::sync::OwnedSemaphorePermit) {
    let Work {
        method,
        args,
        json,
        deadline,
        cancel,
    } = work;
    let mut task = tokio::spawn(async move { method(args).await });
    let outcome: Result<Term, Refusal> = tokio::select! {
        r = &mut task => match r {
            Ok(Ok(term)) => Ok(term),
            Ok(Err(why)) => Err(Refusal::Crashed(why)),
            Err(e) if e.is_panic() => Err(Refusal::Crashed(panic_text(&*e.into_panic()))),
            Err(_) => Err(Refusal::Crashed("the handler was cancelled".into())),
        },
        () = tokio::time::sleep_until(deadline) => {
            task.abort();
            Err(Refusal::Timeout)
        }
        _ = cancel => {
            task.abort();
            Err(Refusal::Timeout)
        }
    };
    drop(permit);
    let (caller, id) = &finish.key;
    let bytes = match outcome {
        Ok(term) if json => match super::json::term_to_json(&term) {
            Ok(v) => wire::call_result(caller, id, &Payload::Json(v)),
            Err(why) => wire::call_error(
                caller,
                id,
                &Refusal::Crashed(format!("the result has no JSON form: {why}")),
            ),
        },
        Ok(term) => wire::call_result(caller, id, &Payload::Term(term)),
        Err(r) => wire::call_error(caller, id, &r),
    };
    let _ = finish.inner.handle().send(bytes);
    let mut core = finish.inner.lock();
    if core
        .serving
        .get(&finish.key)
        .is_some_and(|(g, _)| *g == finish.generation)
    {
        core.serving.remove(&finish.key);
    }
}

/// The session's handler: every callback goes to the core.
pub(crate) struct BusHandler {
    pub inner: Arc<Inner>,
    /// Credit to give back to the session: stanzas that gave the
    /// application nothing to take.
    pub credit_back: u32,
}

impl BusHandler {
    fn give_back(&mut self) {
        if self.credit_back > 0 {
            if let Some(h) = self.inner.handle.get() {
                h.set_active(Active::More(self.credit_back));
            }
            self.credit_back = 0;
        }
    }
}

impl Handler for BusHandler {
    fn event(&mut self, event: SessionEvent) {
        let inner = self.inner.clone();
        inner.lock().on_event(&inner, event);
    }

    fn stanza(&mut self, el: Element<'_>, ns: Option<&str>) {
        let inner = self.inner.clone();
        // Decoded before the core is locked: terms can be big.
        let holds = match stanza::decode(el, ns) {
            Ok(stanza) => {
                let carried = match &stanza {
                    Stanza::Message(m) if m.type_ != MessageType::Error => {
                        wire::carried(&m.payloads)
                    }
                    _ => Carried::Nothing,
                };
                inner.lock().on_stanza(&inner, stanza, carried)
            }
            Err(_) => false,
        };
        if !holds {
            self.credit_back += 1;
            if self.credit_back >= 64 {
                self.give_back();
            }
        }
    }

    fn iq_response(&mut self, token: u64, el: Element<'_>, ns: Option<&str>) {
        let inner = self.inner.clone();
        let mut core = inner.lock();
        let Some(waiter) = core.waiters.remove(&token) else {
            return;
        };
        let iq = match stanza::decode(el, ns) {
            Ok(Stanza::Iq(iq)) => Some(iq),
            _ => None,
        };
        match waiter {
            Waiter::Call { tx, .. } => {
                let answer = match &iq {
                    Some(iq) => wire::call_answer(iq),
                    None => Err(CallError::Decode("an answer that is not a valid IQ".into())),
                };
                let _ = tx.send(answer);
            }
            Waiter::Ping => {
                let answer = match &iq {
                    Some(iq) if iq.type_ == IqType::Result => {
                        PingAnswer::Alive(wire::node_of_iq(iq).and_then(|n| n.incarnation))
                    }
                    Some(Iq { error: Some(e), .. }) if wire::is_noproc(e) => PingAnswer::Noproc,
                    Some(Iq { error: Some(e), .. })
                        if e.app.is_none() && wire::PEER_UNAVAILABLE.contains(&e.condition) =>
                    {
                        PingAnswer::Unavailable
                    }
                    // The peer answered, with an error of its own.
                    _ => PingAnswer::Alive(None),
                };
                let actions = core.monitors.ping_answered(token, answer, Instant::now());
                core.apply(&inner, actions);
            }
            Waiter::Barrier(tx) => {
                let _ = tx.send(());
            }
            Waiter::Configure(group) => {
                let answer = match &iq {
                    Some(iq) if iq.type_ == IqType::Result => Ok(()),
                    Some(iq) => Err(wire::stanza_error(iq.error.as_ref())),
                    None => Err(wire::stanza_error(None)),
                };
                let actions = core.groups.configured(&group, answer);
                core.apply_groups(&inner, actions);
            }
            Waiter::RoomPing(group, ping) => {
                let out = matches!(&iq, Some(Iq { error: Some(e), .. })
                    if matches!(e.condition.as_str(), "not-acceptable" | "item-not-found"));
                let actions = core.with_ctx(&inner, |g, ctx| {
                    g.self_ping_answered(ctx, &group, ping, out)
                });
                core.apply_groups(&inner, actions);
            }
            Waiter::Methods(tx) => {
                let answer = match &iq {
                    Some(iq) => wire::methods_answer(iq),
                    None => Err(super::Error::Encode(
                        "an answer that is not a valid IQ".into(),
                    )),
                };
                let _ = tx.send(answer);
            }
        }
    }

    fn flush(&mut self) {
        self.give_back();
    }
}
