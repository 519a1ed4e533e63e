//! Groups (docs/PROTOCOL.md §6.1) as a state machine with no session and
//! no clock of its own, like the monitors: the node feeds it what its
//! rooms send (presences, broadcasts), its own session coming back, the
//! answers to its room configurations and the time, and carries out the
//! [`GroupAction`]s it returns.
//!
//! Per group the machine keeps the room, the node's nickname in it (its
//! own full JID), where the join is (sent, configuring the room it
//! created, done), the API calls waiting for it, and the occupants the
//! room announced, each with its real JID, whether it is a bus node, its
//! status and incarnation. Bus members are watched by the node's own
//! heartbeat (monitors whose references carry [`MEMBER_REF`]): a member
//! the heartbeat finds down leaves the list even while the room keeps its
//! ghost.
//!
//! Events (`Joined`, `Left`, `Status`) report changes once the join has
//! completed: the occupants announced before the node's own presence are
//! the list it finds ([`Groups::members`]), not news.

use super::error::{DownReason, Error, LeftReason};
use super::wire::{self, NodeInfo};
use super::{Event, Payload};
use crate::stanza::{Condition, Presence, PresenceType, Show};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Longest group name, in characters (docs/PROTOCOL.md §6.1).
pub const MAX_GROUP_CHARS: usize = 64;

/// How soon a join refused because the room is locked (being created and
/// not yet configured by its owner) is tried again.
const RETRY: Duration = Duration::from_millis(200);

/// How often a rejoin is tried once its join timeout has passed.
const SLOW_RETRY: Duration = Duration::from_secs(1);

/// The bit that marks the monitor references of group members (the
/// node's own heartbeat, not an application's monitor).
pub(crate) const MEMBER_REF: u64 = 1 << 63;

/// Checks a group name: 1 to 64 characters of `a-z`, `0-9`, `.`, `_` and
/// `-`, starting with a letter or a digit.
pub fn check_group(name: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::InvalidGroup(format!("{name:?}: {why}")));
    let Some(first) = name.chars().next() else {
        return bad("empty");
    };
    if name.chars().count() > MAX_GROUP_CHARS {
        return bad("longer than 64 characters");
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return bad("must start with a-z or 0-9");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!("{c:?} is not one of a-z, 0-9, '.', '_', '-'"));
    }
    Ok(())
}

/// A node's status (docs/PROTOCOL.md §6.2): presence `<show/>` and
/// `<status/>`, and a term or JSON value inside its bus element.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Availability: `None` is plain available; else `chat`, `away`, `xa`
    /// or `dnd`.
    pub show: Option<Show>,
    /// A text for humans.
    pub text: Option<String>,
    /// A value for programs (such as a load figure).
    pub payload: Option<Payload>,
}

/// A member of a group, as the room announced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The real full JID (for a bus node, its address).
    pub jid: String,
    /// True for a bus node (its presence carries the bus element); false
    /// for an ordinary client.
    pub bus: bool,
    /// Its status, as its latest presence in the room says.
    pub status: Status,
}

/// How a group is joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinOptions {
    /// The room's last messages to replay on joining (0: none).
    pub history: u32,
    /// Watch every bus member with the node's heartbeat (default true),
    /// so that a member whose session died without a word (kill -9, a
    /// dead server node: the room keeps a ghost) leaves the list after
    /// heartbeat + timeout. With false, members leave only when the room
    /// says so, and the group costs no pings: where every node of a group
    /// of n watches every other, that is n(n-1) pings per heartbeat.
    /// Watch the members that matter with [`Node::monitor`](super::Node::monitor)
    /// instead. The first join of the group on this node decides.
    pub member_heartbeat: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            history: 0,
            member_heartbeat: true,
        }
    }
}

/// What the node must do for the machine.
#[derive(Debug)]
pub(crate) enum GroupAction {
    /// Send these stanza bytes.
    Send(Vec<u8>),
    /// Send the room configuration to `room`; its answer goes to
    /// [`Groups::configured`] for `group`.
    Configure { group: String, room: String },
    /// Report this event.
    Emit(Event),
    /// Ping our own occupant JID in the room of `group` (XEP-0410); the
    /// answer goes to [`Groups::self_ping_answered`] with `id`.
    SelfPing {
        group: String,
        occupant: String,
        id: u64,
    },
    /// Watch the bus member at this JID by heartbeat, with this reference;
    /// its presence in the room (if it carried a `<node/>`) is a sign of
    /// life (given before and after the monitor is added: a restarted
    /// peer ends the monitors of its previous incarnation first).
    Monitor(u64, String, Option<NodeInfo>),
    /// Stop watching it.
    Demonitor(u64),
    /// The member's presence in the room is a sign of life.
    Alive(String, NodeInfo),
    /// Call [`Groups::on_timer`] for the group at this time.
    Wake(Instant, String),
}

/// What the machine needs to know of the node at each step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The node's full JID (its nickname in every room).
    pub jid: &'a str,
    pub incarnation: &'a str,
    pub online: bool,
    pub now: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The join presence is out (or waits for the session): waiting for
    /// the room's self-presence.
    Joining,
    /// The node created the room: its configuration is in flight.
    Configuring,
    /// In the room.
    Joined,
}

#[derive(Debug)]
struct Occupant {
    /// The real JID, or the occupant JID (`room/nick`) while the room
    /// has not said it (a room being configured is still semi-anonymous).
    jid: String,
    /// The real JID is known: a member (listed, reported, watched).
    real: bool,
    bus: bool,
    status: Status,
    incarnation: Option<String>,
    /// The heartbeat of a bus member (not of the node itself).
    mref: Option<u64>,
}

impl Occupant {
    fn member(&self) -> Member {
        Member {
            jid: self.jid.clone(),
            bus: self.bus,
            status: self.status.clone(),
        }
    }
}

type Waiter = oneshot::Sender<Result<(), Error>>;

#[derive(Debug)]
struct Group {
    room: String,
    nick: String,
    history: u32,
    /// Members are watched by heartbeat ([`JoinOptions::member_heartbeat`]).
    watch: bool,
    phase: Phase,
    /// The API's join completed: changes are reported as events, and the
    /// group is kept (rejoined) until it is left.
    established: bool,
    /// A join not established fails then (timeout); a rejoin is sent
    /// again.
    deadline: Instant,
    /// When the join presence goes again (after a refusal).
    retry_at: Option<Instant>,
    /// The join presence waits for the session to be online.
    unsent: bool,
    waiters: Vec<Waiter>,
    /// By nickname (the resourcepart of the occupant JID).
    occupants: BTreeMap<String, Occupant>,
    /// During a rejoin: the nicknames the room announced since.
    announced: Option<HashSet<String>>,
    /// Members the heartbeat found down that the room has not said gone
    /// (nickname -> JID): their broadcasts still on their way through the
    /// room were sent while they were in, and are handed over.
    gone: HashMap<String, String>,
    /// The self-ping out, by its id: an answer with another id is about
    /// an earlier stay in the room (before a leave, a rejoin or a
    /// reconnect) and says nothing about this one.
    pinging: Option<u64>,
}

impl Group {
    fn occupant_jid(&self) -> String {
        format!("{}/{}", self.room, self.nick)
    }

    fn send_join(&mut self, ctx: &Ctx<'_>, status: &Status, actions: &mut Vec<GroupAction>) {
        if !ctx.online {
            self.unsent = true;
            return;
        }
        self.unsent = false;
        self.nick = ctx.jid.to_owned();
        actions.push(GroupAction::Send(wire::join(
            &self.occupant_jid(),
            ctx.incarnation,
            status,
            self.history,
        )));
    }

    /// Joins again, as after a reconnect: the room will announce who is
    /// still there, and those it does not have left.
    fn rejoin(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        status: &Status,
        join_timeout: Duration,
        actions: &mut Vec<GroupAction>,
    ) {
        self.phase = Phase::Joining;
        self.retry_at = None;
        self.pinging = None;
        self.gone.clear();
        if self.established {
            self.announced = Some(HashSet::new());
            self.deadline = ctx.now + join_timeout;
            actions.push(GroupAction::Wake(self.deadline, name.to_owned()));
        }
        self.send_join(ctx, status, actions);
    }

    fn complete(&mut self) {
        self.phase = Phase::Joined;
        self.established = true;
        self.retry_at = None;
        for w in self.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }
}

/// Every group of a node.
#[derive(Debug)]
pub(crate) struct Groups {
    /// The MUC service (a domain).
    service: String,
    join_timeout: Duration,
    groups: BTreeMap<String, Group>,
    /// Member heartbeats: reference -> (group, nickname).
    members: HashMap<u64, (String, String)>,
    next_ref: u64,
    /// The id of the last self-ping sent.
    next_ping: u64,
    /// The node's status, carried by every join and status presence.
    pub status: Status,
}

impl Groups {
    pub(crate) fn new(service: String, join_timeout: Duration) -> Groups {
        Groups {
            service,
            join_timeout,
            groups: BTreeMap::new(),
            members: HashMap::new(),
            next_ref: 0,
            next_ping: 0,
            status: Status::default(),
        }
    }

    /// The group whose room has the bare JID `room`, if the node is in it.
    pub(crate) fn group_of_room(&self, room: &str) -> Option<String> {
        let (local, domain) = room.split_once('@')?;
        (domain == self.service && self.groups.contains_key(local)).then(|| local.to_owned())
    }

    /// The groups being joined or joined, with their room's occupant JID.
    #[cfg(test)]
    fn names(&self) -> Vec<&str> {
        self.groups.keys().map(String::as_str).collect()
    }

    /// True when a broadcast to `group` may go: its join completed.
    pub(crate) fn room_of_joined(&self, group: &str) -> Option<String> {
        self.groups
            .get(group)
            .filter(|g| g.established)
            .map(|g| g.room.clone())
    }

    /// The members of `group` (the node itself included), by JID.
    pub(crate) fn members(&self, group: &str) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .groups
            .get(group)
            .map(|g| {
                g.occupants
                    .values()
                    .filter(|o| o.real)
                    .map(Occupant::member)
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.jid.cmp(&b.jid));
        out
    }

    /// Joins `name` (checked already); the receiver has the outcome. A
    /// group being joined or joined already answers with that join's.
    pub(crate) fn join(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        options: JoinOptions,
    ) -> (oneshot::Receiver<Result<(), Error>>, Vec<GroupAction>) {
        let (tx, rx) = oneshot::channel();
        let mut actions = Vec::new();
        if let Some(g) = self.groups.get_mut(name) {
            if g.established {
                let _ = tx.send(Ok(()));
            } else {
                g.waiters.push(tx);
            }
            return (rx, actions);
        }
        let mut g = Group {
            room: format!("{name}@{}", self.service),
            nick: ctx.jid.to_owned(),
            history: options.history,
            watch: options.member_heartbeat,
            phase: Phase::Joining,
            established: false,
            deadline: ctx.now + self.join_timeout,
            retry_at: None,
            unsent: true,
            waiters: vec![tx],
            occupants: BTreeMap::new(),
            announced: None,
            gone: HashMap::new(),
            pinging: None,
        };
        actions.push(GroupAction::Wake(g.deadline, name.to_owned()));
        g.send_join(ctx, &self.status, &mut actions);
        self.groups.insert(name.to_owned(), g);
        (rx, actions)
    }

    /// Leaves `name`: unavailable presence to the room, the members
    /// forgotten (no events).
    pub(crate) fn leave(&mut self, name: &str) -> Result<Vec<GroupAction>, Error> {
        let g = self
            .groups
            .remove(name)
            .ok_or_else(|| Error::NotJoined(name.to_owned()))?;
        let mut actions = Vec::new();
        if !g.unsent {
            actions.push(GroupAction::Send(wire::leave(&g.occupant_jid())));
        }
        self.forget(g, Err(Error::NotJoined(name.to_owned())), &mut actions);
        Ok(actions)
    }

    /// Ends the heartbeats of a group that is gone and answers its
    /// waiters.
    fn forget(&mut self, g: Group, outcome: Result<(), Error>, actions: &mut Vec<GroupAction>) {
        for o in g.occupants.values() {
            if let Some(m) = o.mref {
                self.members.remove(&m);
                actions.push(GroupAction::Demonitor(m));
            }
        }
        for w in g.waiters {
            let _ = w.send(outcome.clone());
        }
    }

    /// A presence from the room of `name` (`nick`: the occupant it is
    /// about, None when it came from the room itself).
    pub(crate) fn on_presence(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        nick: Option<&str>,
        p: &Presence<'_>,
    ) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        match p.type_ {
            PresenceType::Error => {
                let condition = p
                    .error
                    .as_ref()
                    .map_or(Condition::UndefinedCondition, |e| e.condition);
                let text = p.error.as_ref().and_then(|e| e.text.as_deref());
                self.refused(ctx, name, condition, text, &mut actions);
                return actions;
            }
            PresenceType::Available | PresenceType::Unavailable => {}
            _ => return actions,
        }
        let Some(nick) = nick else {
            return actions;
        };
        let Some(g) = self.groups.get(name) else {
            return actions;
        };
        let info = wire::muc_user_in(&p.payloads).unwrap_or_default();
        let own = info.codes.contains(&110) || nick == g.nick;
        let available = p.type_ == PresenceType::Available;
        match (own, available) {
            (true, true) => self.own_presence(ctx, name, nick, &info.codes, &mut actions),
            (true, false) => self.own_exit(ctx, name, &info.codes, &mut actions),
            (false, true) => self.occupant(ctx, name, nick, info.jid, p, &mut actions),
            (false, false) => self.occupant_left(name, nick, &mut actions),
        }
        actions
    }

    /// The room refused the join presence (or a status presence).
    fn refused(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        condition: Condition,
        text: Option<&str>,
        actions: &mut Vec<GroupAction>,
    ) {
        let Some(g) = self.groups.get_mut(name) else {
            return;
        };
        if g.phase != Phase::Joining {
            // A status presence the room refused: still in the room.
            return;
        }
        // A locked room (being created) is tried again until the join
        // timeout; a rejoin is retried whatever the error (a ghost of the
        // node's previous session may hold its nickname for a moment).
        if condition == Condition::ItemNotFound || g.established {
            let step = if g.established && ctx.now >= g.deadline {
                SLOW_RETRY
            } else {
                RETRY
            };
            let at = ctx.now + step;
            g.retry_at = Some(at);
            actions.push(GroupAction::Wake(at, name.to_owned()));
            if g.established && step == SLOW_RETRY {
                eprintln!(
                    "xmpp_bridge bus: the rejoin of group {name} was refused ({}); trying again",
                    condition.as_str()
                );
            }
            return;
        }
        eprintln!(
            "xmpp_bridge bus: the room of group {name} refused the join: {}{}",
            condition.as_str(),
            text.map(|t| format!(" ({t})")).unwrap_or_default()
        );
        let g = self.groups.remove(name).expect("just seen");
        self.forget(
            g,
            Err(Error::JoinFailed(condition.as_str().to_owned())),
            actions,
        );
    }

    /// The room's presence of the node itself: the join is done (or, in a
    /// room the node created, the configuration goes).
    fn own_presence(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        nick: &str,
        codes: &[u16],
        actions: &mut Vec<GroupAction>,
    ) {
        let status = self.status.clone();
        let g = self.groups.get_mut(name).expect("checked");
        g.nick = nick.to_owned();
        g.occupants.insert(
            nick.to_owned(),
            Occupant {
                jid: ctx.jid.to_owned(),
                real: true,
                bus: true,
                status,
                incarnation: Some(ctx.incarnation.to_owned()),
                mref: None,
            },
        );
        if g.phase == Phase::Joined && codes.contains(&201) {
            // The room had gone (its server died) and a presence of ours
            // made it again, with the server's default options (hiding
            // real JIDs): configure it as a bus room, or no member learns
            // who joins it.
            eprintln!(
                "xmpp_bridge bus: the room of group {name} was made again by us; configuring it"
            );
            g.phase = Phase::Configuring;
            actions.push(GroupAction::Configure {
                group: name.to_owned(),
                room: g.room.clone(),
            });
            return;
        }
        if g.phase != Phase::Joining {
            // The reflection of a status presence.
            return;
        }
        if let Some(announced) = g.announced.take() {
            // A rejoin: who the room did not announce again has left.
            let gone: Vec<String> = g
                .occupants
                .keys()
                .filter(|n| *n != nick && !announced.contains(*n))
                .cloned()
                .collect();
            for n in gone {
                let o = g.occupants.remove(&n).expect("listed");
                if let Some(m) = o.mref {
                    self.members.remove(&m);
                    actions.push(GroupAction::Demonitor(m));
                }
                if !o.real {
                    continue;
                }
                actions.push(GroupAction::Emit(Event::Left {
                    group: name.to_owned(),
                    jid: o.jid,
                    reason: LeftReason::Left,
                }));
            }
        }
        if codes.contains(&201) {
            g.phase = Phase::Configuring;
            actions.push(GroupAction::Configure {
                group: name.to_owned(),
                room: g.room.clone(),
            });
        } else {
            g.complete();
        }
    }

    /// The room says the node is no longer in it.
    fn own_exit(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        codes: &[u16],
        actions: &mut Vec<GroupAction>,
    ) {
        let g = self.groups.get_mut(name).expect("checked");
        if g.phase == Phase::Joining {
            // From before the join now on its way (a leave and a join in
            // quick succession).
            return;
        }
        if codes.contains(&332) && g.established {
            // The MUC service is shutting down: join again when it is back.
            g.phase = Phase::Joining;
            g.announced = Some(HashSet::new());
            g.gone.clear();
            g.deadline = ctx.now + self.join_timeout;
            let at = ctx.now + SLOW_RETRY;
            g.retry_at = Some(at);
            actions.push(GroupAction::Wake(at, name.to_owned()));
            return;
        }
        // Kicked, banned, the room destroyed: the group is over.
        let g = self.groups.remove(name).expect("checked");
        let established = g.established;
        self.forget(
            g,
            Err(Error::JoinFailed("removed from the room".into())),
            actions,
        );
        if established {
            actions.push(GroupAction::Emit(Event::Left {
                group: name.to_owned(),
                jid: ctx.jid.to_owned(),
                reason: LeftReason::Left,
            }));
        }
    }

    /// An occupant's presence: a new member, or a member's new status.
    /// `real`: the real JID the room gave, if it gave one.
    fn occupant(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        nick: &str,
        real: Option<String>,
        p: &Presence<'_>,
        actions: &mut Vec<GroupAction>,
    ) {
        let node = wire::node_in(&p.payloads);
        let status = wire::status_of(p);
        let incarnation = node.as_ref().and_then(|n| n.incarnation.clone());
        let g = self.groups.get_mut(name).expect("checked");
        let events = g.established;
        g.gone.remove(nick);
        if let Some(a) = g.announced.as_mut() {
            a.insert(nick.to_owned());
        }
        // Without a real JID: a member known already keeps its own; any
        // other occupant waits, unlisted, until the room names it.
        let known = g.occupants.get(nick).filter(|o| o.real);
        let Some(jid) = real.or_else(|| known.map(|o| o.jid.clone())) else {
            g.occupants.insert(
                nick.to_owned(),
                Occupant {
                    jid: format!("{}/{nick}", g.room),
                    real: false,
                    bus: node.is_some(),
                    status,
                    incarnation,
                    mref: None,
                },
            );
            return;
        };
        if g.occupants.get(nick).is_some_and(|o| !o.real) {
            // Named at last: a member from now on.
            g.occupants.remove(nick);
        }
        if let Some(o) = g.occupants.get_mut(nick) {
            let restarted = matches!((&o.incarnation, &incarnation), (Some(a), Some(b)) if a != b);
            if o.jid == jid && !restarted {
                o.bus |= node.is_some();
                if o.incarnation.is_none() {
                    o.incarnation = incarnation;
                }
                if o.status != status {
                    o.status = status.clone();
                    if events {
                        actions.push(GroupAction::Emit(Event::Status {
                            group: name.to_owned(),
                            jid: jid.clone(),
                            status,
                        }));
                    }
                }
                match (node, o.mref) {
                    (Some(n), Some(_)) => actions.push(GroupAction::Alive(jid, n)),
                    (node, None) if o.bus && jid != ctx.jid && g.watch => {
                        self.next_ref += 1;
                        let m = MEMBER_REF | self.next_ref;
                        o.mref = Some(m);
                        self.members.insert(m, (name.to_owned(), nick.to_owned()));
                        actions.push(GroupAction::Monitor(m, jid, node));
                    }
                    _ => {}
                }
                return;
            }
            // Another node under that nickname, or the same one restarted.
            let o = g.occupants.remove(nick).expect("just seen");
            if let Some(m) = o.mref {
                self.members.remove(&m);
                actions.push(GroupAction::Demonitor(m));
            }
            if events {
                let reason = if o.jid == jid {
                    LeftReason::Down(DownReason::Restarted)
                } else {
                    LeftReason::Left
                };
                actions.push(GroupAction::Emit(Event::Left {
                    group: name.to_owned(),
                    jid: o.jid,
                    reason,
                }));
            }
        }
        let bus = node.is_some();
        let mref = (bus && jid != ctx.jid && g.watch).then(|| {
            self.next_ref += 1;
            MEMBER_REF | self.next_ref
        });
        if let Some(m) = mref {
            self.members.insert(m, (name.to_owned(), nick.to_owned()));
            actions.push(GroupAction::Monitor(m, jid.clone(), node));
        }
        g.occupants.insert(
            nick.to_owned(),
            Occupant {
                jid: jid.clone(),
                real: true,
                bus,
                status,
                incarnation,
                mref,
            },
        );
        if events {
            actions.push(GroupAction::Emit(Event::Joined {
                group: name.to_owned(),
                jid,
            }));
        }
    }

    /// An occupant's unavailable presence: it left.
    fn occupant_left(&mut self, name: &str, nick: &str, actions: &mut Vec<GroupAction>) {
        let g = self.groups.get_mut(name).expect("checked");
        if let Some(a) = g.announced.as_mut() {
            a.remove(nick);
        }
        g.gone.remove(nick);
        let Some(o) = g.occupants.remove(nick) else {
            return;
        };
        if let Some(m) = o.mref {
            self.members.remove(&m);
            actions.push(GroupAction::Demonitor(m));
        }
        if g.established && o.real {
            actions.push(GroupAction::Emit(Event::Left {
                group: name.to_owned(),
                jid: o.jid,
                reason: LeftReason::Left,
            }));
        }
    }

    /// The room answered the configuration of `name` (Err: its error).
    pub(crate) fn configured(&mut self, name: &str, answer: Result<(), Error>) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        let Some(g) = self.groups.get_mut(name) else {
            return actions;
        };
        if g.phase != Phase::Configuring {
            return actions;
        }
        match answer {
            Ok(()) => g.complete(),
            Err(e) if g.established => {
                // A rejoin that recreated the room: in it anyway.
                eprintln!(
                    "xmpp_bridge bus: the room of group {name} refused its configuration: {e}"
                );
                g.complete();
            }
            Err(e) => {
                eprintln!(
                    "xmpp_bridge bus: the room of group {name} refused its configuration: {e}"
                );
                let condition = match e {
                    Error::Stanza { condition, .. } => condition,
                    Error::Timeout => "timeout".to_owned(),
                    other => other.to_string(),
                };
                let g = self.groups.remove(name).expect("just seen");
                actions.push(GroupAction::Send(wire::leave(&g.occupant_jid())));
                self.forget(g, Err(Error::JoinFailed(condition)), &mut actions);
            }
        }
        actions
    }

    /// Time passed for group `name`: a retry due, a join timed out.
    pub(crate) fn on_timer(&mut self, ctx: &Ctx<'_>, name: &str) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        let status = self.status.clone();
        let join_timeout = self.join_timeout;
        let Some(g) = self.groups.get_mut(name) else {
            return actions;
        };
        if g.phase == Phase::Joined {
            return actions;
        }
        if ctx.now >= g.deadline {
            if !g.established {
                let g = self.groups.remove(name).expect("just seen");
                if !g.unsent {
                    actions.push(GroupAction::Send(wire::leave(&g.occupant_jid())));
                }
                self.forget(g, Err(Error::Timeout), &mut actions);
                return actions;
            }
            if g.phase == Phase::Joining && g.retry_at.is_none() && ctx.online {
                // A rejoin the room never answered: again.
                g.deadline = ctx.now + join_timeout;
                actions.push(GroupAction::Wake(g.deadline, name.to_owned()));
                g.send_join(ctx, &status, &mut actions);
                return actions;
            }
        }
        if let Some(at) = g.retry_at {
            if at <= ctx.now {
                g.retry_at = None;
                g.send_join(ctx, &status, &mut actions);
            }
        }
        actions
    }

    /// The heartbeat of member monitor `mref` found it down.
    pub(crate) fn member_down(&mut self, mref: u64, reason: DownReason) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        let Some((name, nick)) = self.members.remove(&mref) else {
            return actions;
        };
        let Some(g) = self.groups.get_mut(&name) else {
            return actions;
        };
        if g.occupants.get(&nick).is_some_and(|o| o.mref == Some(mref)) {
            let o = g.occupants.remove(&nick).expect("just seen");
            g.gone.insert(nick, o.jid.clone());
            if g.established {
                actions.push(GroupAction::Emit(Event::Left {
                    group: name,
                    jid: o.jid,
                    reason: LeftReason::Down(reason),
                }));
            }
        }
        actions
    }

    /// A groupchat message from the room of `name`, from occupant `nick`:
    /// the sender's JID when it is to be handed over (not the node's own
    /// echo, not from an occupant it does not know). A member the
    /// heartbeat found down while the room still lists it is known: what
    /// the room relays from it was sent before it went.
    pub(crate) fn sender(&self, name: &str, nick: Option<&str>) -> Option<String> {
        let g = self.groups.get(name)?;
        let nick = nick?;
        if nick == g.nick {
            return None;
        }
        g.occupants
            .get(nick)
            .filter(|o| o.real)
            .map(|o| o.jid.clone())
            .or_else(|| g.gone.get(nick).cloned())
    }

    /// The room of `name` announced a change of its configuration
    /// (status codes, XEP-0045 §10.2.1). A room that became non-anonymous
    /// (`172`), or changed while some occupants are still unnamed (`104`:
    /// a room configured after others joined it) gets the node's presence
    /// again: the room relays it to every occupant, now with the node's
    /// real JID.
    pub(crate) fn config_changed(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        codes: &[u16],
    ) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        let Some(g) = self.groups.get(name) else {
            return actions;
        };
        let unnamed = g.occupants.values().any(|o| !o.real);
        let again = codes.contains(&172) || (codes.contains(&104) && unnamed);
        if again && g.phase != Phase::Joining && ctx.online {
            actions.push(GroupAction::Send(wire::presence(
                Some(&g.occupant_jid()),
                ctx.incarnation,
                false,
                &self.status,
            )));
        }
        actions
    }

    /// A new status: remembered for the joins to come, sent to every room
    /// the node is in.
    pub(crate) fn set_status(&mut self, ctx: &Ctx<'_>, status: Status) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        for g in self.groups.values_mut() {
            if let Some(o) = g.occupants.get_mut(&g.nick) {
                o.status = status.clone();
            }
            if g.phase != Phase::Joining && ctx.online {
                actions.push(GroupAction::Send(wire::presence(
                    Some(&g.occupant_jid()),
                    ctx.incarnation,
                    false,
                    &status,
                )));
            }
        }
        self.status = status;
        actions
    }

    /// The session is online again. Not resumed: the node is in no room
    /// any more, every group is joined again.
    pub(crate) fn online(&mut self, ctx: &Ctx<'_>, resumed: bool) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        let status = self.status.clone();
        for (name, g) in self.groups.iter_mut() {
            if resumed {
                if g.unsent && g.retry_at.is_none() {
                    g.send_join(ctx, &status, &mut actions);
                }
                continue;
            }
            g.rejoin(ctx, name, &status, self.join_timeout, &mut actions);
        }
        actions
    }

    /// At each heartbeat: a self-ping (XEP-0410) to every room the node is
    /// in, one at a time per room. When a server of a cluster dies, the
    /// rooms it hosted vanish without a word to occupants on the other
    /// servers, and those who come back through another server make a new,
    /// empty room of the same name; only such a ping finds out.
    pub(crate) fn self_pings(&mut self, ctx: &Ctx<'_>) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        if !ctx.online {
            return actions;
        }
        for (name, g) in self.groups.iter_mut() {
            if g.phase == Phase::Joined && g.pinging.is_none() {
                self.next_ping += 1;
                g.pinging = Some(self.next_ping);
                actions.push(GroupAction::SelfPing {
                    group: name.clone(),
                    occupant: g.occupant_jid(),
                    id: self.next_ping,
                });
            }
        }
        actions
    }

    /// The answer to a self-ping: `out` when the room said we are not in
    /// it (or that it does not exist); then the node joins again. No
    /// answer, or an occupant client that does no pings, says nothing.
    pub(crate) fn self_ping_answered(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        id: u64,
        out: bool,
    ) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        let status = self.status.clone();
        if let Some(g) = self.groups.get_mut(name) {
            if g.pinging != Some(id) {
                return actions;
            }
            g.pinging = None;
            if out && g.phase == Phase::Joined {
                g.rejoin(ctx, name, &status, self.join_timeout, &mut actions);
            }
        }
        actions
    }

    /// Before a clean stop: leave every room.
    pub(crate) fn leave_all(&mut self) -> Vec<GroupAction> {
        let mut actions = Vec::new();
        for g in self.groups.values() {
            if !g.unsent && g.phase != Phase::Joining {
                actions.push(GroupAction::Send(wire::leave(&g.occupant_jid())));
            }
        }
        actions
    }

    /// The node is closed: the joins waiting fail, everything is
    /// forgotten.
    pub(crate) fn closed(&mut self) {
        for (_, g) in std::mem::take(&mut self.groups) {
            for w in g.waiters {
                let _ = w.send(Err(Error::Closed));
            }
        }
        self.members.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::{self, Stanza};
    use crate::xml::Limits;

    const ME: &str = "alice@example.com/bus";
    const BOB: &str = "bob@example.com/bus";
    const ROOM: &str = "jobs@conference.example.com";

    fn ctx(now: Instant) -> Ctx<'static> {
        Ctx {
            jid: ME,
            incarnation: "aaaa",
            online: true,
            now,
        }
    }

    fn presence(xml: &str) -> Presence<'static> {
        let el = crate::xml::parse(xml.as_bytes(), Limits::default())
            .unwrap()
            .into_owned();
        match stanza::decode(el, None).unwrap() {
            Stanza::Presence(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn feed(g: &mut Groups, now: Instant, nick: &str, xml: &str) -> Vec<GroupAction> {
        g.on_presence(&ctx(now), "jobs", Some(nick), &presence(xml))
    }

    fn own_presence(codes: &[u16]) -> String {
        let codes: String = codes
            .iter()
            .map(|c| format!("<status code='{c}'/>"))
            .collect();
        format!(
            "<presence from='{ROOM}/{ME}'><node xmlns='urn:xmpp-bridge:bus:0' incarnation='aaaa'/>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='{ME}'/>{codes}</x></presence>"
        )
    }

    fn bob(inc: &str, show: &str) -> String {
        format!(
            "<presence from='{ROOM}/{BOB}'>{show}<node xmlns='urn:xmpp-bridge:bus:0' incarnation='{inc}'/>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='{BOB}'/></x></presence>"
        )
    }

    fn events(actions: &[GroupAction]) -> Vec<Event> {
        actions
            .iter()
            .filter_map(|a| match a {
                GroupAction::Emit(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn sent(actions: &[GroupAction]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                GroupAction::Send(b) => Some(String::from_utf8(b.clone()).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn joined(t0: Instant) -> Groups {
        let mut g = Groups::new("conference.example.com".into(), Duration::from_secs(10));
        let (mut rx, a) = g.join(&ctx(t0), "jobs", JoinOptions::default());
        assert_eq!(sent(&a).len(), 1);
        let a = feed(&mut g, t0, BOB, &bob("bbbb", ""));
        assert!(
            events(&a).is_empty(),
            "the list found at the join is no news"
        );
        assert!(
            matches!(a[0], GroupAction::Monitor(m, ref j, Some(_)) if m & MEMBER_REF != 0 && j == BOB)
        );
        let a = feed(&mut g, t0, ME, &own_presence(&[110]));
        assert!(a.is_empty());
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        g
    }

    #[test]
    fn group_names() {
        for ok in ["jobs", "a", "0-x", "bus.v1_2", &"a".repeat(64)] {
            assert_eq!(check_group(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Jobs",
            "-x",
            ".x",
            "a b",
            "a@b",
            "a/b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(check_group(bad), Err(Error::InvalidGroup(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_join_completes_at_the_self_presence_with_the_members_found() {
        let t0 = Instant::now();
        let g = joined(t0);
        let members = g.members("jobs");
        assert_eq!(
            members.iter().map(|m| m.jid.as_str()).collect::<Vec<_>>(),
            vec![ME, BOB]
        );
        assert!(members.iter().all(|m| m.bus));
        assert_eq!(g.room_of_joined("jobs").as_deref(), Some(ROOM));
        assert_eq!(g.sender("jobs", Some(BOB)).as_deref(), Some(BOB));
        assert_eq!(g.sender("jobs", Some(ME)), None, "the echo is dropped");
        assert_eq!(g.sender("jobs", Some("carol")), None, "unknown occupant");
        assert_eq!(g.group_of_room(ROOM).as_deref(), Some("jobs"));
        assert_eq!(g.group_of_room("other@conference.example.com"), None);
        assert_eq!(g.group_of_room("jobs@example.com"), None);
    }

    #[test]
    fn without_member_heartbeat_no_member_is_watched() {
        let t0 = Instant::now();
        let mut g = Groups::new("conference.example.com".into(), Duration::from_secs(10));
        let options = JoinOptions {
            member_heartbeat: false,
            ..JoinOptions::default()
        };
        let (mut rx, _) = g.join(&ctx(t0), "jobs", options);
        let a = feed(&mut g, t0, BOB, &bob("bbbb", ""));
        assert!(
            !a.iter().any(|x| matches!(x, GroupAction::Monitor(..))),
            "{a:?}"
        );
        feed(&mut g, t0, ME, &own_presence(&[110]));
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        // A status change of a member known: still no monitor.
        let a = feed(&mut g, t0, BOB, &bob("bbbb", "<status>busy</status>"));
        assert!(
            !a.iter().any(|x| matches!(x, GroupAction::Monitor(..))),
            "{a:?}"
        );
        assert_eq!(g.members("jobs").len(), 2);
    }

    #[test]
    fn a_room_made_again_by_a_status_presence_is_configured() {
        // The room vanished without a word; the node's status presence
        // made it again (status 201 while the node thinks it is in).
        let t0 = Instant::now();
        let mut g = joined(t0);
        let a = feed(&mut g, t0, ME, &own_presence(&[110, 201]));
        assert!(
            matches!(&a[..], [GroupAction::Configure { group, room }] if group == "jobs" && room == ROOM),
            "{a:?}"
        );
        // Its own presence reflected meanwhile changes nothing.
        assert!(feed(&mut g, t0, ME, &own_presence(&[110])).is_empty());
        assert!(g.configured("jobs", Ok(())).is_empty());
        // Configured once: a second answer is about nothing.
        assert!(g.configured("jobs", Ok(())).is_empty());
        assert_eq!(g.room_of_joined("jobs").as_deref(), Some(ROOM));
        // A plain reflection of a status presence is no news.
        assert!(feed(&mut g, t0, ME, &own_presence(&[110])).is_empty());
        assert_eq!(g.room_of_joined("jobs").as_deref(), Some(ROOM));
    }

    #[test]
    fn a_created_room_is_configured_before_the_join_completes() {
        let t0 = Instant::now();
        let mut g = Groups::new("conference.example.com".into(), Duration::from_secs(10));
        let (mut rx, _) = g.join(&ctx(t0), "jobs", JoinOptions::default());
        let a = feed(&mut g, t0, ME, &own_presence(&[110, 201]));
        assert!(
            matches!(&a[..], [GroupAction::Configure { group, room }] if group == "jobs" && room == ROOM)
        );
        assert!(rx.try_recv().is_err(), "not yet");
        assert_eq!(g.room_of_joined("jobs"), None, "no broadcast before");
        g.configured("jobs", Ok(()));
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        // A refused configuration fails the join and leaves the room.
        let (mut rx, _) = g.join(&ctx(t0), "other", JoinOptions::default());
        g.on_presence(
            &ctx(t0),
            "other",
            Some(ME),
            &presence(&own_presence(&[110, 201]).replace("jobs@", "other@")),
        );
        let a = g.configured(
            "other",
            Err(Error::Stanza {
                condition: "forbidden".into(),
                text: None,
            }),
        );
        assert_eq!(sent(&a).len(), 1);
        assert_eq!(
            rx.try_recv().unwrap(),
            Err(Error::JoinFailed("forbidden".into()))
        );
        assert_eq!(g.names(), vec!["jobs"]);
    }

    #[test]
    fn a_locked_room_is_tried_again_until_the_timeout() {
        let t0 = Instant::now();
        let mut g = Groups::new("conference.example.com".into(), Duration::from_secs(1));
        let (mut rx, _) = g.join(&ctx(t0), "jobs", JoinOptions::default());
        let locked = format!("<presence type='error' from='{ROOM}/{ME}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");
        let a = feed(&mut g, t0, ME, &locked);
        assert!(matches!(&a[..], [GroupAction::Wake(at, _)] if *at == t0 + RETRY));
        assert!(g.on_timer(&ctx(t0 + RETRY / 2), "jobs").is_empty());
        let a = g.on_timer(&ctx(t0 + RETRY), "jobs");
        assert_eq!(sent(&a).len(), 1, "the join again");
        feed(&mut g, t0 + RETRY, ME, &locked);
        let a = g.on_timer(&ctx(t0 + Duration::from_secs(1)), "jobs");
        assert_eq!(rx.try_recv().unwrap(), Err(Error::Timeout));
        assert_eq!(sent(&a).len(), 1, "the leave");
        assert!(g.names().is_empty());
        // Another error fails at once.
        let (mut rx, _) = g.join(&ctx(t0), "jobs", JoinOptions::default());
        feed(
            &mut g,
            t0,
            ME,
            &locked.replace("item-not-found", "conflict"),
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            Err(Error::JoinFailed("conflict".into()))
        );
    }

    #[test]
    fn changes_after_the_join_are_events() {
        let t0 = Instant::now();
        let mut g = joined(t0);
        let carol = format!("<presence from='{ROOM}/carol'><show>away</show><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='carol@example.com/phone'/></x></presence>");
        let a = feed(&mut g, t0, "carol", &carol);
        assert_eq!(
            events(&a),
            vec![Event::Joined {
                group: "jobs".into(),
                jid: "carol@example.com/phone".into()
            }]
        );
        assert!(
            !a.iter().any(|x| matches!(x, GroupAction::Monitor(..))),
            "not a bus node"
        );
        let carol_member = g.members("jobs").into_iter().find(|m| !m.bus).unwrap();
        assert_eq!(carol_member.status.show, Some(Show::Away));
        // A status change.
        let a = feed(
            &mut g,
            t0,
            BOB,
            &bob("bbbb", "<show>dnd</show><status>busy</status>"),
        );
        assert_eq!(
            events(&a),
            vec![Event::Status {
                group: "jobs".into(),
                jid: BOB.into(),
                status: Status {
                    show: Some(Show::Dnd),
                    text: Some("busy".into()),
                    payload: None
                }
            }]
        );
        // The same presence again is no news.
        let a = feed(
            &mut g,
            t0,
            BOB,
            &bob("bbbb", "<show>dnd</show><status>busy</status>"),
        );
        assert!(events(&a).is_empty());
        // Another incarnation: the old one left, restarted.
        let a = feed(&mut g, t0, BOB, &bob("cccc", ""));
        let ev = events(&a);
        assert_eq!(ev.len(), 2);
        assert!(matches!(
            &ev[0],
            Event::Left {
                reason: LeftReason::Down(DownReason::Restarted),
                ..
            }
        ));
        assert!(matches!(&ev[1], Event::Joined { jid, .. } if jid == BOB));
        // Leaves.
        let a = feed(
            &mut g,
            t0,
            "carol",
            &format!("<presence type='unavailable' from='{ROOM}/carol'/>"),
        );
        assert!(matches!(
            &events(&a)[..],
            [Event::Left {
                reason: LeftReason::Left,
                ..
            }]
        ));
        assert_eq!(g.members("jobs").len(), 2);
    }

    #[test]
    fn a_member_the_heartbeat_finds_down_leaves_the_list() {
        let t0 = Instant::now();
        let mut g = joined(t0);
        let mref = *g.members.keys().next().unwrap();
        let a = g.member_down(mref, DownReason::HeartbeatTimeout);
        assert_eq!(
            events(&a),
            vec![Event::Left {
                group: "jobs".into(),
                jid: BOB.into(),
                reason: LeftReason::Down(DownReason::HeartbeatTimeout)
            }]
        );
        assert_eq!(g.members("jobs").len(), 1);
        assert!(g.member_down(mref, DownReason::HeartbeatTimeout).is_empty());
        // Its broadcasts the room relays until it says the member is gone
        // were sent while it was in: still handed over, with its JID.
        assert_eq!(g.sender("jobs", Some(BOB)).as_deref(), Some(BOB));
        // The ghost's unavailable presence later: nothing more.
        let a = feed(
            &mut g,
            t0,
            BOB,
            &format!("<presence type='unavailable' from='{ROOM}/{BOB}'/>"),
        );
        assert!(events(&a).is_empty());
        assert_eq!(g.sender("jobs", Some(BOB)), None);
        assert_eq!(g.sender("jobs", Some("nobody")), None);
    }

    #[test]
    fn a_rejoin_reports_who_is_gone() {
        let t0 = Instant::now();
        let mut g = joined(t0);
        let a = g.online(&ctx(t0), false);
        let s = sent(&a);
        assert_eq!(s.len(), 1);
        assert!(s[0].contains("<history maxstanzas='0'/>"), "{}", s[0]);
        assert_eq!(g.members("jobs").len(), 2, "kept until the room answers");
        // The room was recreated: we own it, bob is not announced.
        let a = feed(&mut g, t0, ME, &own_presence(&[110, 201]));
        let ev = events(&a);
        assert_eq!(
            ev,
            vec![Event::Left {
                group: "jobs".into(),
                jid: BOB.into(),
                reason: LeftReason::Left
            }]
        );
        assert!(a.iter().any(|x| matches!(x, GroupAction::Configure { .. })));
        assert!(a.iter().any(|x| matches!(x, GroupAction::Demonitor(_))));
        g.configured("jobs", Ok(()));
        // Bob comes back.
        let a = feed(&mut g, t0, BOB, &bob("bbbb", ""));
        assert!(matches!(&events(&a)[..], [Event::Joined { .. }]));
        // A resumption sends nothing.
        assert!(g.online(&ctx(t0), true).is_empty());
    }

    #[test]
    fn status_goes_to_every_room_and_leave_forgets() {
        let t0 = Instant::now();
        let mut g = joined(t0);
        let status = Status {
            show: Some(Show::Chat),
            text: Some("ok".into()),
            payload: Some(Payload::Json(serde_json::json!({"load": 3}))),
        };
        let a = g.set_status(&ctx(t0), status.clone());
        let s = sent(&a);
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0],
            format!("<presence to='{ROOM}/{ME}'><show>chat</show><status>ok</status><node xmlns='urn:xmpp-bridge:bus:0' incarnation='aaaa'><json xmlns='urn:xmpp:json:0'>{{\"load\":3}}</json></node></presence>")
        );
        let me = g.members("jobs").into_iter().find(|m| m.jid == ME).unwrap();
        assert_eq!(me.status, status);
        let a = g.leave("jobs").unwrap();
        assert_eq!(
            sent(&a),
            vec![format!("<presence type='unavailable' to='{ROOM}/{ME}'/>")]
        );
        assert!(a.iter().any(|x| matches!(x, GroupAction::Demonitor(_))));
        assert!(g.members("jobs").is_empty());
        assert_eq!(
            g.leave("jobs").unwrap_err(),
            Error::NotJoined("jobs".into())
        );
        assert!(g.members.is_empty());
    }

    #[test]
    fn occupants_of_a_room_not_yet_configured_are_members_once_named() {
        let t0 = Instant::now();
        let mut g = Groups::new("conference.example.com".into(), Duration::from_secs(10));
        let (mut rx, _) = g.join(&ctx(t0), "jobs", JoinOptions::default());
        // Semi-anonymous: bob's presence without his real JID.
        let anonymous = bob("bbbb", "").replace(&format!(" jid='{BOB}'"), "");
        let a = feed(&mut g, t0, BOB, &anonymous);
        assert!(a.is_empty(), "not watched, not listed");
        feed(&mut g, t0, ME, &own_presence(&[110]));
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        assert_eq!(g.members("jobs").len(), 1, "only the node itself");
        assert_eq!(g.sender("jobs", Some(BOB)), None);
        // The room is configured: the node's presence goes again (once
        // 104 comes while someone is unnamed, or at 172).
        let a = g.config_changed(&ctx(t0), "jobs", &[104]);
        assert_eq!(
            sent(&a),
            vec![format!("<presence to='{ROOM}/{ME}'><node xmlns='urn:xmpp-bridge:bus:0' incarnation='aaaa'/></presence>")]
        );
        // Bob's presence again, named: a member now.
        let a = feed(&mut g, t0, BOB, &bob("bbbb", ""));
        assert_eq!(
            events(&a),
            vec![Event::Joined {
                group: "jobs".into(),
                jid: BOB.into()
            }]
        );
        assert!(a.iter().any(|x| matches!(x, GroupAction::Monitor(..))));
        assert_eq!(g.members("jobs").len(), 2);
        // Everyone named: a 104 asks nothing, a 172 still does.
        assert!(g.config_changed(&ctx(t0), "jobs", &[104]).is_empty());
        assert_eq!(sent(&g.config_changed(&ctx(t0), "jobs", &[172])).len(), 1);
        // A later presence without the JID keeps the one known.
        let a = feed(
            &mut g,
            t0,
            BOB,
            &anonymous.replace("<node", "<show>away</show><node"),
        );
        assert!(matches!(&events(&a)[..], [Event::Status { jid, .. }] if jid == BOB));
    }

    #[test]
    fn a_join_made_offline_goes_when_online() {
        let t0 = Instant::now();
        let mut g = Groups::new("conference.example.com".into(), Duration::from_secs(10));
        let offline = Ctx {
            online: false,
            ..ctx(t0)
        };
        let (_rx, a) = g.join(
            &offline,
            "jobs",
            JoinOptions {
                history: 5,
                ..JoinOptions::default()
            },
        );
        assert!(sent(&a).is_empty());
        let s = sent(&g.online(&ctx(t0), true));
        assert_eq!(s.len(), 1);
        assert!(s[0].contains("maxstanzas='5'"));
        // A second join of the same group waits for the same outcome.
        let (mut rx2, a) = g.join(&ctx(t0), "jobs", JoinOptions::default());
        assert!(a.is_empty());
        feed(&mut g, t0, ME, &own_presence(&[110]));
        assert_eq!(rx2.try_recv().unwrap(), Ok(()));
        g.closed();
        assert!(g.names().is_empty());
    }

    fn ping_id(actions: &[GroupAction]) -> u64 {
        match actions {
            [GroupAction::SelfPing {
                group,
                occupant,
                id,
                ..
            }] if group == "jobs" && occupant == &format!("{ROOM}/{ME}") => *id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_self_ping_answer_from_an_earlier_stay_in_the_room_is_ignored() {
        let t0 = Instant::now();
        let mut g = joined(t0);
        let first = ping_id(&g.self_pings(&ctx(t0)));
        assert!(g.self_pings(&ctx(t0)).is_empty(), "one ping at a time");
        // The node leaves and joins again before the answer ("you are not
        // an occupant": true of the time in between, not of the new stay).
        g.leave("jobs").unwrap();
        let (mut rx, _) = g.join(&ctx(t0), "jobs", JoinOptions::default());
        feed(&mut g, t0, ME, &own_presence(&[110]));
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        assert!(g
            .self_ping_answered(&ctx(t0), "jobs", first, true)
            .is_empty());
        assert_eq!(
            g.room_of_joined("jobs").as_deref(),
            Some(ROOM),
            "still joined"
        );
        // The new stay's own ping, answered "not in the room": join again.
        let second = ping_id(&g.self_pings(&ctx(t0)));
        assert_ne!(second, first);
        let a = g.self_ping_answered(&ctx(t0), "jobs", second, true);
        assert_eq!(sent(&a).len(), 1, "{a:?}");
        assert!(
            sent(&a)[0].contains("http://jabber.org/protocol/muc"),
            "{a:?}"
        );
        assert!(
            g.self_pings(&ctx(t0)).is_empty(),
            "no ping while joining again"
        );
        // A ping sent before that rejoin, answered after it, says nothing.
        let third = {
            feed(&mut g, t0, ME, &own_presence(&[110]));
            ping_id(&g.self_pings(&ctx(t0)))
        };
        let a = g.self_ping_answered(&ctx(t0), "jobs", third, false);
        assert!(
            a.is_empty(),
            "an answer from inside the room: nothing to do"
        );
    }
}
