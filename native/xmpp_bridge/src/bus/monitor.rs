//! Monitors and heartbeats (docs/PROTOCOL.md §5.4), as a state machine
//! with no session and no clock of its own: the node feeds it what it
//! hears (ping answers, presences, its own session going up and down, the
//! time) and carries out the [`Action`]s it returns.
//!
//! Per watched address (a full JID) the machine keeps the first
//! incarnation seen, the ping in flight, and whether a check is running
//! (after an unavailable presence without goodbye). It decides DOWN once
//! per monitor:
//!
//! - `noconnection`: the first ping bounced, or a check found no answer
//!   within the heartbeat timeout;
//! - `shutdown`: an unavailable presence with `goodbye='true'`;
//! - `heartbeat_timeout`: a heartbeat ping unanswered after the timeout;
//! - `restarted`: a ping result or presence with another incarnation;
//! - `noproc`: a name host answered a ping or the watch presence with
//!   the `noproc` error (docs/PROTOCOL.md §7.3);
//! - `exit:E`: a name's goodbye carried `exit='E'`.
//!
//! Nothing is decided while the node's own session is down; once it is
//! back the node pings every watched peer again (and, after a reconnect
//! that was not a resumption, sends its directed presences again).

use super::error::{DownReason, ExitKind};
use super::wire::NodeInfo;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// What the node must do for the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send the peer directed presence with `watch='true'`.
    Watch(String),
    /// Ping the peer now, then tell [`Monitors::ping_sent`] its token.
    Ping(String),
    /// Forget the ping with this token (its answer no longer matters).
    ForgetPing(u64),
    /// Report DOWN for this monitor.
    Down(u64, String, DownReason),
    /// Call [`Monitors::on_timer`] for the peer at this time.
    Wake(Instant, String),
}

/// How a ping was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PingAnswer {
    /// A result (or an error from the peer itself): it is there, with
    /// this incarnation if it named one.
    Alive(Option<String>),
    /// A server said the peer is not online.
    Unavailable,
    /// A name host said no process holds the name (docs/PROTOCOL.md §7.3).
    Noproc,
}

#[derive(Debug)]
struct Peer {
    monitors: Vec<u64>,
    /// Some monitor asked for directed presence (`watch='true'`); the
    /// node's own watch of a group member only pings (§6.1).
    directed: bool,
    /// The first incarnation seen.
    incarnation: Option<String>,
    /// Something of the peer was seen since it was first watched.
    seen: bool,
    /// The ping in flight: its token and when it times out.
    ping: Option<(u64, Instant)>,
    /// A check runs until then (an unavailable presence without goodbye).
    check_until: Option<Instant>,
    /// When the next ping goes (heartbeat, or retry during a check).
    next_ping: Option<Instant>,
}

/// Every monitor of a node.
#[derive(Debug)]
pub(crate) struct Monitors {
    peers: HashMap<String, Peer>,
    refs: HashMap<u64, String>,
    pings: HashMap<u64, String>,
    heartbeat: Duration,
    timeout: Duration,
}

impl Monitors {
    pub(crate) fn new(heartbeat: Duration, timeout: Duration) -> Monitors {
        Monitors {
            peers: HashMap::new(),
            refs: HashMap::new(),
            pings: HashMap::new(),
            heartbeat,
            timeout,
        }
    }

    /// How often pings are retried while a check runs.
    fn retry(&self) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// True when some monitor watches `jid`.
    #[cfg(test)]
    pub(crate) fn watches(&self, jid: &str) -> bool {
        self.peers.contains_key(jid)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.refs.len()
    }

    /// A new monitor `mref` of `jid`; `directed` when the peer is asked
    /// for directed presence too (an application's monitor), not only
    /// pinged (the heartbeat of a group member).
    pub(crate) fn add(
        &mut self,
        mref: u64,
        jid: &str,
        online: bool,
        directed: bool,
    ) -> Vec<Action> {
        self.refs.insert(mref, jid.to_owned());
        if let Some(p) = self.peers.get_mut(jid) {
            p.monitors.push(mref);
            if directed && !p.directed {
                p.directed = true;
                if online {
                    return vec![Action::Watch(jid.to_owned())];
                }
            }
            return Vec::new();
        }
        self.peers.insert(
            jid.to_owned(),
            Peer {
                monitors: vec![mref],
                directed,
                incarnation: None,
                seen: false,
                ping: None,
                check_until: None,
                next_ping: None,
            },
        );
        if online && directed {
            vec![Action::Watch(jid.to_owned()), Action::Ping(jid.to_owned())]
        } else if online {
            vec![Action::Ping(jid.to_owned())]
        } else {
            // The node's Online sends both.
            Vec::new()
        }
    }

    /// Removes monitor `mref`; false when there was none.
    pub(crate) fn remove(&mut self, mref: u64) -> (bool, Vec<Action>) {
        let Some(jid) = self.refs.remove(&mref) else {
            return (false, Vec::new());
        };
        let mut actions = Vec::new();
        if let Some(p) = self.peers.get_mut(&jid) {
            p.monitors.retain(|m| *m != mref);
            if p.monitors.is_empty() {
                let p = self.peers.remove(&jid).expect("just seen");
                if let Some((token, _)) = p.ping {
                    self.pings.remove(&token);
                    actions.push(Action::ForgetPing(token));
                }
            }
        }
        (true, actions)
    }

    /// The ping the node sent for `jid` after [`Action::Ping`].
    pub(crate) fn ping_sent(&mut self, jid: &str, token: u64, now: Instant) -> Vec<Action> {
        let Some(p) = self.peers.get_mut(jid) else {
            return vec![Action::ForgetPing(token)];
        };
        let mut actions = Vec::new();
        if let Some((old, _)) = p.ping.take() {
            self.pings.remove(&old);
            actions.push(Action::ForgetPing(old));
        }
        let deadline = now + self.timeout;
        p.ping = Some((token, deadline));
        p.next_ping = None;
        self.pings.insert(token, jid.to_owned());
        actions.push(Action::Wake(deadline, jid.to_owned()));
        actions
    }

    /// A ping of ours was answered.
    pub(crate) fn ping_answered(
        &mut self,
        token: u64,
        answer: PingAnswer,
        now: Instant,
    ) -> Vec<Action> {
        let Some(jid) = self.pings.remove(&token) else {
            return Vec::new();
        };
        let retry = self.retry();
        let (heartbeat, timeout) = (self.heartbeat, self.timeout);
        let Some(p) = self.peers.get_mut(&jid) else {
            return Vec::new();
        };
        if p.ping.is_some_and(|(t, _)| t == token) {
            p.ping = None;
        }
        match answer {
            PingAnswer::Alive(inc) => self.alive(&jid, inc, now),
            PingAnswer::Noproc => self.down(&jid, DownReason::Noproc),
            PingAnswer::Unavailable if !p.seen => self.down(&jid, DownReason::NoConnection),
            PingAnswer::Unavailable => {
                let until = *p.check_until.get_or_insert(now + timeout);
                let next = now + retry.min(heartbeat);
                p.next_ping = Some(next);
                vec![Action::Wake(next, jid.clone()), Action::Wake(until, jid)]
            }
        }
    }

    /// A ping of ours will get no answer because our own session ended:
    /// nothing is decided.
    pub(crate) fn ping_void(&mut self, token: u64) {
        if let Some(jid) = self.pings.remove(&token) {
            if let Some(p) = self.peers.get_mut(&jid) {
                if p.ping.is_some_and(|(t, _)| t == token) {
                    p.ping = None;
                }
            }
        }
    }

    /// A name host answered `jid`'s watch presence with `noproc`.
    pub(crate) fn noproc(&mut self, jid: &str) -> Vec<Action> {
        self.down(jid, DownReason::Noproc)
    }

    /// Presence from `jid` (available or not), with its `<node/>` if any.
    pub(crate) fn presence(
        &mut self,
        jid: &str,
        available: bool,
        node: Option<&NodeInfo>,
        now: Instant,
    ) -> Vec<Action> {
        let timeout = self.timeout;
        let Some(p) = self.peers.get_mut(jid) else {
            return Vec::new();
        };
        let inc = node.and_then(|n| n.incarnation.clone());
        if available {
            return self.alive(jid, inc, now);
        }
        if let Some(n) = node.filter(|n| n.goodbye) {
            let reason = match &n.exit {
                Some(e) => DownReason::Exit(ExitKind::parse(e)),
                None => DownReason::Shutdown,
            };
            return self.down(jid, reason);
        }
        // The server saw the session end, or the peer is reconnecting:
        // check with pings until the timeout.
        let mut actions = Vec::new();
        let until = *p.check_until.get_or_insert(now + timeout);
        actions.push(Action::Wake(until, jid.to_owned()));
        if p.ping.is_none() {
            actions.push(Action::Ping(jid.to_owned()));
        }
        actions
    }

    /// The peer answered or announced itself, with `inc` if it named it.
    fn alive(&mut self, jid: &str, inc: Option<String>, now: Instant) -> Vec<Action> {
        let heartbeat = self.heartbeat;
        let Some(p) = self.peers.get_mut(jid) else {
            return Vec::new();
        };
        if let Some(inc) = inc {
            match &p.incarnation {
                Some(first) if *first != inc => return self.down(jid, DownReason::Restarted),
                Some(_) => {}
                None => p.incarnation = Some(inc),
            }
        }
        p.seen = true;
        p.check_until = None;
        if p.ping.is_some() {
            // The ping in flight sets the next one when it is answered.
            return Vec::new();
        }
        let next = now + heartbeat;
        p.next_ping = Some(next);
        vec![Action::Wake(next, jid.to_owned())]
    }

    fn down(&mut self, jid: &str, reason: DownReason) -> Vec<Action> {
        let Some(p) = self.peers.remove(jid) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        if let Some((token, _)) = p.ping {
            self.pings.remove(&token);
            actions.push(Action::ForgetPing(token));
        }
        for m in p.monitors {
            self.refs.remove(&m);
            actions.push(Action::Down(m, jid.to_owned(), reason));
        }
        actions
    }

    /// Time passed for `jid`: timeouts, checks, the next heartbeat.
    /// `online` is false while the node's own session is down: nothing is
    /// decided then.
    pub(crate) fn on_timer(&mut self, jid: &str, now: Instant, online: bool) -> Vec<Action> {
        if !online {
            return Vec::new();
        }
        let retry = self.retry();
        let Some(p) = self.peers.get_mut(jid) else {
            return Vec::new();
        };
        if p.check_until.is_some_and(|t| t <= now) {
            return self.down(jid, DownReason::NoConnection);
        }
        let mut actions = Vec::new();
        if let Some((token, deadline)) = p.ping {
            if deadline > now {
                return actions;
            }
            if p.check_until.is_none() {
                return self.down(jid, DownReason::HeartbeatTimeout);
            }
            // During a check a ping lost in a dying session is retried;
            // the check's end decides.
            p.ping = None;
            self.pings.remove(&token);
            actions.push(Action::ForgetPing(token));
            p.next_ping = Some(now + retry);
        }
        match p.next_ping {
            Some(t) if t <= now => actions.push(Action::Ping(jid.to_owned())),
            Some(t) => actions.push(Action::Wake(t, jid.to_owned())),
            None => {}
        }
        actions
    }

    /// Our own session is online again: forget the pings in flight (their
    /// clocks ran while we were away), send directed presence again when
    /// the stream was not resumed, and ping everyone.
    pub(crate) fn online(&mut self, resumed: bool, now: Instant) -> Vec<Action> {
        let timeout = self.timeout;
        let mut actions = Vec::new();
        let mut jids: Vec<&String> = self.peers.keys().collect();
        jids.sort();
        let jids: Vec<String> = jids.into_iter().cloned().collect();
        for jid in jids {
            let p = self.peers.get_mut(&jid).expect("listed");
            if let Some((token, _)) = p.ping.take() {
                self.pings.remove(&token);
                actions.push(Action::ForgetPing(token));
            }
            if let Some(until) = p.check_until.as_mut() {
                *until = now + timeout;
                actions.push(Action::Wake(*until, jid.clone()));
            }
            if !resumed && p.directed {
                actions.push(Action::Watch(jid.clone()));
            }
            actions.push(Action::Ping(jid));
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Duration = Duration::from_millis(1000);
    const TO: Duration = Duration::from_millis(500);
    const B: &str = "bob@x/bus";

    fn node(inc: &str) -> NodeInfo {
        NodeInfo {
            incarnation: Some(inc.into()),
            ..NodeInfo::default()
        }
    }

    fn downs(actions: &[Action]) -> Vec<(u64, DownReason)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Down(m, _, r) => Some((*m, *r)),
                _ => None,
            })
            .collect()
    }

    /// A watched peer that answered its first ping with incarnation "i1".
    fn watched(t0: Instant) -> Monitors {
        let mut m = Monitors::new(HB, TO);
        assert_eq!(
            m.add(1, B, true, true),
            vec![Action::Watch(B.into()), Action::Ping(B.into())]
        );
        m.ping_sent(B, 100, t0);
        let a = m.ping_answered(100, PingAnswer::Alive(Some("i1".into())), t0);
        assert_eq!(a, vec![Action::Wake(t0 + HB, B.into())]);
        m
    }

    #[test]
    fn a_first_ping_that_bounces_is_noconnection() {
        let t0 = Instant::now();
        let mut m = Monitors::new(HB, TO);
        m.add(1, B, true, true);
        m.add(2, B, true, true);
        m.ping_sent(B, 100, t0);
        let a = m.ping_answered(100, PingAnswer::Unavailable, t0);
        assert_eq!(
            downs(&a),
            vec![(1, DownReason::NoConnection), (2, DownReason::NoConnection)]
        );
        assert_eq!(m.len(), 0);
        assert!(!m.watches(B));
    }

    #[test]
    fn heartbeats_go_on_until_one_is_unanswered() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        // Heartbeat due.
        assert_eq!(m.on_timer(B, t0 + HB, true), vec![Action::Ping(B.into())]);
        m.ping_sent(B, 101, t0 + HB);
        // Answered in time, same incarnation.
        let a = m.ping_answered(101, PingAnswer::Alive(Some("i1".into())), t0 + HB);
        assert!(downs(&a).is_empty());
        assert_eq!(
            m.on_timer(B, t0 + HB * 2, true),
            vec![Action::Ping(B.into())]
        );
        m.ping_sent(B, 102, t0 + HB * 2);
        // Not yet timed out.
        assert!(m.on_timer(B, t0 + HB * 2 + TO / 2, true).is_empty());
        let a = m.on_timer(B, t0 + HB * 2 + TO, true);
        assert_eq!(downs(&a), vec![(1, DownReason::HeartbeatTimeout)]);
        assert!(a.contains(&Action::ForgetPing(102)));
    }

    #[test]
    fn nothing_is_decided_while_we_are_offline() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        m.on_timer(B, t0 + HB, true);
        m.ping_sent(B, 101, t0 + HB);
        // Our session went down; the ping's deadline passes.
        assert!(m.on_timer(B, t0 + HB + TO * 3, false).is_empty());
        // Back (not resumed): presence again, and a new ping.
        let a = m.online(false, t0 + HB + TO * 4);
        assert_eq!(
            a,
            vec![
                Action::ForgetPing(101),
                Action::Watch(B.into()),
                Action::Ping(B.into())
            ]
        );
        // The void ping's token means nothing any more.
        assert!(m
            .ping_answered(101, PingAnswer::Unavailable, t0 + HB * 5)
            .is_empty());
        // A resumption pings without new presence.
        m.ping_sent(B, 102, t0 + HB * 5);
        assert_eq!(
            m.online(true, t0 + HB * 5),
            vec![Action::ForgetPing(102), Action::Ping(B.into())]
        );
    }

    #[test]
    fn a_void_ping_decides_nothing() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        m.on_timer(B, t0 + HB, true);
        m.ping_sent(B, 101, t0 + HB);
        m.ping_void(101);
        assert!(downs(&m.on_timer(B, t0 + HB + TO * 2, true)).is_empty());
    }

    #[test]
    fn goodbye_is_shutdown() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        let bye = NodeInfo {
            incarnation: Some("i1".into()),
            goodbye: true,
            ..NodeInfo::default()
        };
        let a = m.presence(B, false, Some(&bye), t0);
        assert_eq!(downs(&a), vec![(1, DownReason::Shutdown)]);
        // Once only.
        assert!(m.presence(B, false, Some(&bye), t0).is_empty());
    }

    #[test]
    fn a_names_goodbye_says_how_its_holder_ended() {
        for (exit, kind) in [
            ("normal", ExitKind::Normal),
            ("shutdown", ExitKind::Shutdown),
            ("killed", ExitKind::Killed),
            ("error", ExitKind::Error),
            ("{:badarg, []}", ExitKind::Error),
        ] {
            let t0 = Instant::now();
            let mut m = watched(t0);
            let bye = NodeInfo {
                incarnation: Some("i1".into()),
                goodbye: true,
                exit: Some(exit.into()),
                ..NodeInfo::default()
            };
            let a = m.presence(B, false, Some(&bye), t0);
            assert_eq!(downs(&a), vec![(1, DownReason::Exit(kind))], "{exit}");
        }
    }

    #[test]
    fn a_noproc_answer_is_down_noproc_even_after_a_sign_of_life() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        m.ping_sent(B, 101, t0 + HB);
        let a = m.ping_answered(101, PingAnswer::Noproc, t0 + HB);
        assert_eq!(downs(&a), vec![(1, DownReason::Noproc)]);
        let mut m = Monitors::new(HB, TO);
        m.add(7, B, true, true);
        assert_eq!(downs(&m.noproc(B)), vec![(7, DownReason::Noproc)]);
        assert!(m.noproc(B).is_empty(), "once only");
    }

    #[test]
    fn an_unavailable_presence_starts_a_check_a_good_ping_ends_it() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        let a = m.presence(B, false, None, t0 + HB / 2);
        assert!(a.contains(&Action::Ping(B.into())));
        assert!(a.contains(&Action::Wake(t0 + HB / 2 + TO, B.into())));
        m.ping_sent(B, 101, t0 + HB / 2);
        // The peer is reconnecting: the server bounces the ping...
        let a = m.ping_answered(101, PingAnswer::Unavailable, t0 + HB / 2);
        assert!(downs(&a).is_empty());
        // ...a retry goes before the end of the check...
        let retry_at = t0 + HB / 2 + m.retry();
        assert_eq!(m.on_timer(B, retry_at, true), vec![Action::Ping(B.into())]);
        m.ping_sent(B, 102, retry_at);
        // ...and the same incarnation answers: still up.
        let a = m.ping_answered(102, PingAnswer::Alive(Some("i1".into())), retry_at);
        assert!(downs(&a).is_empty());
        assert!(downs(&m.on_timer(B, t0 + HB / 2 + TO, true)).is_empty());
    }

    #[test]
    fn a_check_without_a_good_ping_is_noconnection() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        m.presence(B, false, None, t0);
        m.ping_sent(B, 101, t0);
        // The dying session swallows the ping: it is retried...
        let a = m.on_timer(B, t0 + TO - Duration::from_millis(1), true);
        assert!(downs(&a).is_empty());
        // ...and the end of the check decides.
        let a = m.on_timer(B, t0 + TO, true);
        assert_eq!(downs(&a), vec![(1, DownReason::NoConnection)]);
    }

    #[test]
    fn another_incarnation_is_restarted() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        m.on_timer(B, t0 + HB, true);
        m.ping_sent(B, 101, t0 + HB);
        let a = m.ping_answered(101, PingAnswer::Alive(Some("i2".into())), t0 + HB);
        assert_eq!(downs(&a), vec![(1, DownReason::Restarted)]);
        // By presence too.
        let mut m = watched(t0);
        let a = m.presence(B, true, Some(&node("i3")), t0);
        assert_eq!(downs(&a), vec![(1, DownReason::Restarted)]);
        // The same one is fine, and a peer that names none is alive.
        let mut m = watched(t0);
        assert!(downs(&m.presence(B, true, Some(&node("i1")), t0)).is_empty());
        assert!(downs(&m.presence(B, true, None, t0)).is_empty());
    }

    #[test]
    fn demonitor_forgets_and_a_second_monitor_shares_the_peer() {
        let t0 = Instant::now();
        let mut m = watched(t0);
        assert!(
            m.add(2, B, true, true).is_empty(),
            "already watched: no new ping"
        );
        assert_eq!(m.remove(1), (true, vec![]));
        assert_eq!(m.remove(1), (false, vec![]));
        m.on_timer(B, t0 + HB, true);
        m.ping_sent(B, 101, t0 + HB);
        assert_eq!(m.remove(2), (true, vec![Action::ForgetPing(101)]));
        assert!(!m.watches(B));
        assert!(m.on_timer(B, t0 + HB * 9, true).is_empty());
    }

    #[test]
    fn a_group_member_is_only_pinged_until_a_monitor_asks_for_presence() {
        let t0 = Instant::now();
        let mut m = Monitors::new(HB, TO);
        assert_eq!(m.add(1, B, true, false), vec![Action::Ping(B.into())]);
        m.ping_sent(B, 100, t0);
        m.ping_answered(100, PingAnswer::Alive(Some("i1".into())), t0);
        assert_eq!(
            m.online(false, t0),
            vec![Action::Ping(B.into())],
            "no directed presence after a reconnect"
        );
        m.ping_sent(B, 101, t0);
        // An application's monitor of the same peer: presence now.
        assert_eq!(m.add(2, B, true, true), vec![Action::Watch(B.into())]);
        let a = m.on_timer(B, t0 + TO, true);
        assert_eq!(
            downs(&a),
            vec![
                (1, DownReason::HeartbeatTimeout),
                (2, DownReason::HeartbeatTimeout)
            ]
        );
    }

    #[test]
    fn a_monitor_made_offline_waits_for_online() {
        let mut m = Monitors::new(HB, TO);
        assert!(m.add(1, B, false, true).is_empty());
        assert_eq!(
            m.online(false, Instant::now()),
            vec![Action::Watch(B.into()), Action::Ping(B.into())]
        );
    }
}
