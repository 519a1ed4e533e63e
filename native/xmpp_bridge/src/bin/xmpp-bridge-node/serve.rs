//! `serve`: the node runs until a signal (or the end of stdin), serving
//! its methods and printing what it receives.

use crate::args::{ConnOpts, ServeOpts};
use crate::convert;
use crate::exit;
use crate::json::Json;
use crate::methods;
use crate::methods::Stats;
use crate::out;
use crate::session;
use crate::signals;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use xmpp_bridge::bus::{
    self, Event, JoinOptions, MonitorRef, Node, Payload, SendOptions, SendRef, Show, Status,
};

/// How many `--echo` destinations are remembered for failure reports.
const ECHOES_KEPT: usize = 4096;

struct State {
    node: Node,
    echo: bool,
    /// Recent `--echo` sends and `broadcast` commands, by reference: where
    /// they went (for a failure; the oldest are forgotten beyond
    /// [`ECHOES_KEPT`]).
    echoes: BTreeMap<SendRef, String>,
    /// `--monitor` watches.
    watched: HashMap<MonitorRef, String>,
    /// The load, for the status.
    stats: Arc<Stats>,
    /// The status's show and text.
    presence: Arc<Mutex<Presence>>,
    /// How groups are joined (`--no-member-heartbeat`).
    join: JoinOptions,
}

/// The lines of standard input, read on a thread of their own; the
/// channel closes at its end. Never closes unless `enabled`.
fn stdin_lines(enabled: bool) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    if enabled {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    } else {
        // Kept open (and never written) for the life of the program.
        std::mem::forget(tx);
    }
    rx
}

/// What `--show`, `--status` and the `status` command set; the load is
/// added by [`publish_status`].
#[derive(Debug, Clone, Default)]
struct Presence {
    show: Option<Show>,
    text: Option<String>,
}

fn current_status(stats: &Stats, presence: &Mutex<Presence>) -> Status {
    let p = presence.lock().expect("not poisoned").clone();
    Status {
        show: p.show,
        text: p.text,
        payload: Some(Payload::Term(stats.status_term())),
    }
}

/// Publishes the node's status again whenever its load (or text) changes,
/// at most once per `interval`: a change during the pause is published at
/// its end (the latest value). Ends with the node.
fn publish_status(
    node: Node,
    stats: Arc<Stats>,
    presence: Arc<Mutex<Presence>>,
    mut last: Status,
    interval: Duration,
) {
    tokio::spawn(async move {
        loop {
            stats.changed.notified().await;
            let now = current_status(&stats, &presence);
            if now == last {
                continue;
            }
            match node.set_status(now.clone()) {
                Ok(()) => last = now,
                Err(bus::Error::Closed) => return,
                Err(e) => out::diag(format!("cannot publish the status: {e}")),
            }
            tokio::time::sleep(interval).await;
        }
    });
}

/// Joins `groups` in order, each reported by a `joined` line (with the
/// members found) or a `join_failed` line; returns the failures.
async fn join_all(node: &Node, groups: &[String], options: JoinOptions) -> usize {
    let mut failed = 0;
    for g in groups {
        match node.join_with(g, options).await {
            Ok(()) => joined_line(node, g),
            Err(e) => {
                failed += 1;
                out::diag(format!("cannot join {g}: {e}"));
                out::event(
                    "join_failed",
                    vec![
                        ("group", Json::str(g)),
                        ("reason", Json::str(e.to_string())),
                    ],
                );
            }
        }
    }
    failed
}

fn joined_line(node: &Node, group: &str) {
    out::event(
        "joined",
        vec![
            ("group", Json::str(group)),
            ("members", out::members_json(&node.members(group))),
        ],
    );
}

/// Runs `serve`; returns the exit code.
pub async fn run(conn: &ConnOpts, opts: ServeOpts) -> i32 {
    let mut signals = match signals::install() {
        Ok(s) => s,
        Err(e) => {
            out::diag(format!("cannot catch SIGTERM/SIGINT: {e}"));
            return exit::FAILURE;
        }
    };
    let mut config = conn.bus_config(bus::RESOURCE);
    config.max_calls = opts.max_calls;
    config.discovery = opts.discovery.clone();
    let (node, mut events) = match session::connect(conn, config).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let stats = methods::install(&node, opts.max_calls);

    // The status (docs/PROTOCOL.md §6.2): --show and --status, and the
    // load, kept up to date; set before the joins, which carry it.
    let presence = Arc::new(Mutex::new(Presence {
        show: opts.show,
        text: opts.status_text.clone(),
    }));
    let first = current_status(&stats, &presence);
    if let Err(e) = node.set_status(first.clone()) {
        out::diag(format!("cannot publish the status: {e}"));
    }
    publish_status(
        node.clone(),
        stats.clone(),
        presence.clone(),
        first,
        opts.status_interval,
    );

    let mut state = State {
        node: node.clone(),
        echo: opts.echo,
        echoes: BTreeMap::new(),
        watched: HashMap::new(),
        stats,
        presence,
        join: JoinOptions {
            member_heartbeat: opts.member_heartbeat,
            ..JoinOptions::default()
        },
    };
    for jid in &opts.monitors {
        match node.monitor(jid) {
            Ok(m) => {
                state.watched.insert(m, jid.clone());
            }
            Err(e) => out::diag(format!("cannot monitor {jid}: {e}")),
        }
    }
    // The joins start once the `online` line is out (so that it comes
    // first) and go on while events are printed; a failed one stops the
    // node (exit code JOIN_FAILED). Node::connect joined the discovery
    // group already: its `joined` line comes first.
    let mut to_join = Some((opts.discovery.clone(), opts.joins.clone()));
    let mut joining: Pin<Box<dyn Future<Output = usize> + Send>> = Box::pin(std::future::pending());
    let mut lines = stdin_lines(opts.exit_on_eof);
    let mut code = exit::OK;
    let why = loop {
        tokio::select! {
            sig = signals.next() => break sig.to_owned(),
            failed = &mut joining => {
                joining = Box::pin(std::future::pending());
                if failed > 0 {
                    code = exit::JOIN_FAILED;
                    break format!("{failed} group(s) could not be joined");
                }
            }
            line = lines.recv() => match line {
                None => break "the end of standard input".to_owned(),
                Some(line) if opts.commands => command(&mut state, &line),
                Some(_) => {}
            },
            e = events.next() => match e {
                Some(Event::Closed(reason)) => {
                    let reason = reason.map(|e| e.to_string());
                    out::event("closed", vec![("reason", reason.clone().map_or(Json::Null, Json::str))]);
                    out::diag(format!("the session ended by itself: {}", reason.unwrap_or_default()));
                    return exit::FAILURE;
                }
                Some(e) => {
                    let online = matches!(e, Event::Online { .. });
                    handle(&mut state, e);
                    if let (true, Some((discovery, groups))) = (online, to_join.take()) {
                        let node = node.clone();
                        let options = state.join;
                        joining = Box::pin(async move {
                            if let Some(g) = discovery {
                                joined_line(&node, &g);
                            }
                            join_all(&node, &groups, options).await
                        });
                    }
                }
                None => {
                    out::diag("the session ended by itself");
                    return exit::FAILURE;
                }
            },
        }
    };
    out::diag(format!("{why}: stopping (goodbye to watchers and groups)"));
    tokio::select! {
        () = node.close() => {}
        sig = signals.next() => {
            out::diag(format!("{sig} again: exiting now"));
            return exit::INTERRUPTED;
        }
    }
    while let Some(e) = events.try_next() {
        if let Event::Closed(_) = e {
            out::event("closed", vec![("reason", Json::Null)]);
        }
    }
    out::event("stopped", vec![]);
    code
}

/// A reply to a command: `{"event": name, ...fields}` with the command's
/// `id` when it had one.
fn reply(id: &Option<Json>, name: &str, mut fields: Vec<(&str, Json)>) {
    if let Some(id) = id {
        fields.insert(0, ("id", id.clone()));
    }
    out::event(name, fields);
}

/// Runs one line of `--commands` input (one JSON object; see --help).
fn command(state: &mut State, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    let (id, name, result) = match crate::json::parse(line) {
        Ok(Json::Object(members)) => {
            let field = |k: &str| members.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let id = field("id");
            let name = match field("cmd") {
                Some(Json::String(c)) => c,
                _ => String::new(),
            };
            let result = run_command(state, &name, &field, &id);
            (id, name, result)
        }
        Ok(_) => (
            None,
            String::new(),
            Err("a command is a JSON object".to_owned()),
        ),
        Err(e) => (None, String::new(), Err(format!("not JSON: {e}"))),
    };
    if let Err(reason) = result {
        reply(
            &id,
            "command_failed",
            vec![("cmd", Json::str(name)), ("reason", Json::str(reason))],
        );
    }
}

fn run_command(
    state: &mut State,
    name: &str,
    field: &dyn Fn(&str) -> Option<Json>,
    id: &Option<Json>,
) -> Result<(), String> {
    let text = |k: &str| match field(k) {
        Some(Json::String(s)) => Ok(Some(s)),
        None | Some(Json::Null) => Ok(None),
        Some(_) => Err(format!("{k} is not a string")),
    };
    let group = || {
        let g = text("group")?.ok_or("no group")?;
        bus::check_group(&g).map_err(|e| e.to_string())?;
        Ok::<_, String>(g)
    };
    match name {
        "broadcast" => {
            let g = group()?;
            let sent = match (field("term"), field("json"), text("etf")?) {
                (Some(t), None, None) => {
                    let t = convert::json_to_term(&t)?;
                    state.node.broadcast_term(&g, t)
                }
                (None, Some(j), None) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&j.to_string()).map_err(|e| e.to_string())?;
                    state.node.broadcast_json(&g, v)
                }
                (None, None, Some(b64)) => state.node.broadcast_term(&g, convert::parse_etf(&b64)?),
                _ => return Err("give one of term, json and etf".to_owned()),
            };
            let r = sent.map_err(|e| e.to_string())?;
            remember(state, r, g.clone());
            reply(id, "broadcast_sent", vec![("group", Json::str(g))]);
        }
        "members" => {
            let g = group()?;
            let members = state.node.members(&g);
            if members.is_empty() {
                return Err(format!("not in {g}"));
            }
            reply(
                id,
                "members",
                vec![
                    ("group", Json::str(g)),
                    ("members", out::members_json(&members)),
                ],
            );
        }
        "join" => {
            let g = group()?;
            let node = state.node.clone();
            let id = id.clone();
            let options = state.join;
            tokio::spawn(async move {
                match node.join_with(&g, options).await {
                    Ok(()) => {
                        let members = out::members_json(&node.members(&g));
                        reply(
                            &id,
                            "joined",
                            vec![("group", Json::str(g)), ("members", members)],
                        );
                    }
                    Err(e) => reply(
                        &id,
                        "command_failed",
                        vec![
                            ("cmd", Json::str("join")),
                            ("reason", Json::str(e.to_string())),
                        ],
                    ),
                }
            });
        }
        "leave" => {
            let g = group()?;
            state.node.leave(&g).map_err(|e| e.to_string())?;
            reply(id, "left", vec![("group", Json::str(g))]);
        }
        "status" => {
            let show = match text("show")?.as_deref() {
                None | Some("available") => None,
                Some(s) => Some(Show::parse(s).ok_or_else(|| format!("unknown show {s:?}"))?),
            };
            let text = text("text")?;
            *state.presence.lock().expect("not poisoned") = Presence { show, text };
            // The publisher sends it (its pause allowing).
            state.stats.changed.notify_one();
            reply(id, "status_set", vec![]);
        }
        "" => return Err("no cmd".to_owned()),
        other => {
            return Err(format!(
                "unknown cmd {other:?} (broadcast, members, join, leave, status)"
            ))
        }
    }
    Ok(())
}

/// Remembers where a send went, for a failure report.
fn remember(state: &mut State, r: SendRef, to: String) {
    state.echoes.insert(r, to);
    if state.echoes.len() > ECHOES_KEPT {
        state.echoes.pop_first();
    }
}

fn handle(state: &mut State, e: Event) {
    match e {
        Event::Online { resumed } => out::event(
            "online",
            vec![
                ("jid", Json::str(state.node.jid())),
                ("incarnation", Json::str(state.node.incarnation())),
                ("resumed", Json::Bool(resumed)),
            ],
        ),
        Event::Message { from, payload } => {
            let mut fields = vec![("from", Json::str(from.clone()))];
            fields.extend(out::payload_fields(&payload));
            out::event("message", fields);
            if state.echo {
                let sent = match payload {
                    Payload::Term(t) => state.node.send_term(&from, t, SendOptions::default()),
                    Payload::Json(v) => state.node.send_json(&from, v, SendOptions::default()),
                };
                match sent {
                    Ok(r) => remember(state, r, from),
                    Err(e) => out::event(
                        "failed",
                        vec![
                            ("to", Json::str(from)),
                            ("reason", Json::str(e.to_string())),
                        ],
                    ),
                }
            }
        }
        Event::Delivered(r) => {
            state.echoes.remove(&r);
        }
        Event::Failed(r, why) => {
            let to = state.echoes.remove(&r).unwrap_or_default();
            out::event(
                "failed",
                vec![
                    ("to", Json::str(to)),
                    ("reason", Json::str(why.to_string())),
                ],
            );
        }
        Event::Down {
            monitor,
            jid,
            reason,
        } => {
            if state.watched.remove(&monitor).is_some() {
                out::event(
                    "down",
                    vec![
                        ("jid", Json::str(jid)),
                        ("reason", Json::str(reason.as_str())),
                    ],
                );
            }
        }
        Event::Disconnected(e) => {
            out::diag(format!("disconnected: {e} (reconnecting)"));
            out::event("disconnected", vec![("reason", Json::str(e.to_string()))]);
        }
        Event::Closed(_) => {}
        Event::Broadcast {
            group,
            from,
            payload,
        } => {
            let mut fields = vec![("group", Json::str(group)), ("from", Json::str(from))];
            fields.extend(out::payload_fields(&payload));
            out::event("broadcast", fields);
        }
        Event::Joined { group, jid } => out::event(
            "member_joined",
            vec![("group", Json::str(group)), ("jid", Json::str(jid))],
        ),
        Event::Left { group, jid, reason } => out::event(
            "member_left",
            vec![
                ("group", Json::str(group)),
                ("jid", Json::str(jid)),
                ("reason", Json::str(reason.as_str())),
            ],
        ),
        Event::Status { group, jid, status } => {
            let mut fields = vec![("group", Json::str(group)), ("jid", Json::str(jid))];
            fields.extend(out::status_fields(&status));
            out::event("status", fields);
        }
    }
}
