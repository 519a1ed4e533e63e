//! `serve`: the node runs until a signal (or the end of stdin), serving
//! its methods and printing what it receives.

use crate::args::{ConnOpts, ServeOpts};
use crate::convert;
use crate::exit;
use crate::json::Json;
use crate::methods;
use crate::out;
use crate::session;
use crate::signals;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use xmpp_bridge::bus::{self, Event, MonitorRef, Node, Payload, SendOptions, SendRef};

/// How many `--echo` destinations are remembered for failure reports.
const ECHOES_KEPT: usize = 4096;

struct State {
    node: Node,
    echo: bool,
    /// Recent `--echo` sends, by reference: where they went (for a
    /// failure; the oldest are forgotten beyond [`ECHOES_KEPT`]).
    echoes: BTreeMap<SendRef, String>,
    /// `--monitor` watches.
    watched: HashMap<MonitorRef, String>,
}

/// Resolves when stdin ends (never, unless `enabled`).
fn stdin_eof(enabled: bool) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    if !enabled {
        return Box::pin(std::future::pending());
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    Box::pin(async move {
        let _ = rx.await;
    })
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
    let (node, mut events) = match session::connect(conn, config).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    methods::install(&node, opts.max_calls);

    // Groups and status (docs/PROTOCOL.md §6) go here once the bus has its
    // group API: join each `--join GROUP` (ServeOpts gets the list) and
    // publish the node's load as its status; until then `--join` and
    // `--status` are refused by the argument parser.

    let mut state = State {
        node: node.clone(),
        echo: opts.echo,
        echoes: BTreeMap::new(),
        watched: HashMap::new(),
    };
    for jid in &opts.monitors {
        match node.monitor(jid) {
            Ok(m) => {
                state.watched.insert(m, jid.clone());
            }
            Err(e) => out::diag(format!("cannot monitor {jid}: {e}")),
        }
    }
    let mut eof = stdin_eof(opts.exit_on_eof);
    let why = loop {
        tokio::select! {
            sig = signals.next() => break sig,
            () = &mut eof => break "the end of standard input",
            e = events.next() => match e {
                Some(Event::Closed(reason)) => {
                    let reason = reason.map(|e| e.to_string());
                    out::event("closed", vec![("reason", reason.clone().map_or(Json::Null, Json::str))]);
                    out::diag(format!("the session ended by itself: {}", reason.unwrap_or_default()));
                    return exit::FAILURE;
                }
                Some(e) => handle(&mut state, e),
                None => {
                    out::diag("the session ended by itself");
                    return exit::FAILURE;
                }
            },
        }
    };
    out::diag(format!("{why}: stopping (goodbye to watchers)"));
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
    exit::OK
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
            match &payload {
                Payload::Term(t) => {
                    fields.push(("payload", Json::str("term")));
                    fields.extend(out::term_fields(t));
                }
                Payload::Json(v) => {
                    fields.push(("payload", Json::str("json")));
                    let t = payload.to_term();
                    fields.push(("json", Json::from_serde(v)));
                    fields.push(("text", Json::str(bus::render::render(&t))));
                    fields.push(("etf", Json::str(convert::etf_base64(&t))));
                }
            }
            out::event("message", fields);
            if state.echo {
                let sent = match payload {
                    Payload::Term(t) => state.node.send_term(&from, t, SendOptions::default()),
                    Payload::Json(v) => state.node.send_json(&from, v, SendOptions::default()),
                };
                match sent {
                    Ok(r) => {
                        state.echoes.insert(r, from);
                        if state.echoes.len() > ECHOES_KEPT {
                            state.echoes.pop_first();
                        }
                    }
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
        // Groups are joined with `--join` (to come); until then these are
        // printed as they are.
        Event::Broadcast { group, from, .. } => out::event(
            "broadcast",
            vec![("group", Json::str(group)), ("from", Json::str(from))],
        ),
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
        Event::Status { group, jid, .. } => out::event(
            "status",
            vec![("group", Json::str(group)), ("jid", Json::str(jid))],
        ),
    }
}
