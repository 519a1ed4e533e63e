//! `send`, `call` and `monitor`: connect, do one thing, report it, leave.

use crate::args::{Body, BroadcastOpts, CallOpts, ConnOpts, MembersOpts, MonitorOpts, SendOpts};
use crate::convert;
use crate::exit;
use crate::json::Json;
use crate::out;
use crate::session;
use std::time::Duration;
use xmpp_bridge::bus::{Delivery, Event, Events, Node, SendError, SendOptions};
use xmpp_bridge::etf::Term;

async fn start(conn: &ConnOpts) -> Result<(Node, Events), i32> {
    session::connect(conn, conn.bus_config(&session::cli_resource())).await
}

/// Connects and joins `group` within `timeout`.
async fn start_in(conn: &ConnOpts, group: &str, timeout: Duration) -> Result<(Node, Events), i32> {
    let mut config = conn.bus_config(&session::cli_resource());
    config.join_timeout = timeout;
    let (node, events) = session::connect(conn, config).await?;
    match node.join(group).await {
        Ok(()) => Ok((node, events)),
        Err(e) => {
            out::diag(format!("cannot join {group}: {e}"));
            drain(events);
            node.close().await;
            Err(exit::JOIN_FAILED)
        }
    }
}

/// Takes events in the background (so that the session keeps reading),
/// reporting connection trouble on stderr.
fn drain(mut events: Events) {
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            if let Event::Disconnected(e) = e {
                out::diag(format!("disconnected: {e} (reconnecting)"));
            }
        }
    });
}

fn send_failed(to: &str, why: &SendError) -> i32 {
    out::diag(format!("send to {to} failed: {why}"));
    match why {
        SendError::Timeout => exit::TIMEOUT,
        _ => exit::SEND_FAILED,
    }
}

/// Runs `send`; returns the exit code.
pub async fn send(conn: &ConnOpts, opts: SendOpts) -> i32 {
    let (node, mut events) = match start(conn).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let options = if opts.confirmed {
        SendOptions::confirmed(Some(opts.timeout))
    } else {
        SendOptions {
            delivery: Delivery::Server,
            deadline: None,
        }
    };
    let sent = match opts.body {
        Body::Term(t) => node.send_term(&opts.to, t, options),
        Body::Json(v) => node.send_json(&opts.to, v, options),
    };
    let sent = match sent {
        Ok(r) => r,
        Err(e) => {
            out::diag(format!("cannot send to {}: {e}", opts.to));
            node.close().await;
            return exit::SEND_FAILED;
        }
    };
    if opts.confirmed {
        // The bus fails the send with a timeout at the deadline; the
        // margin only guards against a session that stopped answering.
        let wait = async {
            while let Some(e) = events.next().await {
                match e {
                    Event::Delivered(r) if r == sent => return Ok(()),
                    Event::Failed(r, why) if r == sent => return Err(why),
                    Event::Closed(_) => return Err(SendError::Closed),
                    _ => {}
                }
            }
            Err(SendError::Closed)
        };
        let outcome = tokio::time::timeout(opts.timeout + Duration::from_secs(5), wait)
            .await
            .unwrap_or(Err(SendError::Timeout));
        drain(events);
        node.close().await;
        return match outcome {
            Ok(()) => {
                out::event("delivered", vec![("to", Json::str(opts.to))]);
                exit::OK
            }
            Err(why) => send_failed(&opts.to, &why),
        };
    }
    // Server delivery: closing pings the own server and waits for the
    // answer, which comes once the server handled everything sent before
    // (a bounce included), then ends the session.
    let closer = node.clone();
    let closing = tokio::spawn(async move { closer.close().await });
    let wait = async {
        let mut failed = None;
        while let Some(e) = events.next().await {
            match e {
                Event::Failed(r, why) if r == sent => failed = Some(why),
                Event::Closed(_) => break,
                _ => {}
            }
        }
        failed
    };
    let outcome = tokio::time::timeout(opts.timeout, wait).await;
    let _ = closing.await;
    match outcome {
        Ok(None) => {
            out::event("sent", vec![("to", Json::str(opts.to))]);
            exit::OK
        }
        Ok(Some(why)) => send_failed(&opts.to, &why),
        Err(_) => send_failed(&opts.to, &SendError::Timeout),
    }
}

/// Runs `call`; returns the exit code.
pub async fn call(conn: &ConnOpts, opts: CallOpts) -> i32 {
    let (node, events) = match start(conn).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    drain(events);
    let result = match opts.args {
        Body::Term(Term::List(args)) => node
            .call_term(&opts.to, &opts.method, args, opts.timeout)
            .await
            .map(|t| {
                if opts.etf_output {
                    Json::str(convert::etf_base64(&t))
                } else {
                    convert::term_to_json(&t)
                }
            }),
        Body::Json(serde_json::Value::Array(args)) => node
            .call_json(&opts.to, &opts.method, args, opts.timeout)
            .await
            .map(|v| Json::from_serde(&v)),
        // The parser lets only lists and arrays through.
        Body::Term(_) | Body::Json(_) => unreachable!("ARGS is a list"),
    };
    let code = match result {
        Ok(v) => {
            out::line(&v);
            exit::OK
        }
        Err(e) => {
            out::diag(format!("call {} on {}: {e}", opts.method, opts.to));
            exit::for_call_error(&e)
        }
    };
    node.close().await;
    code
}

/// Runs `monitor`; returns the exit code.
pub async fn monitor(conn: &ConnOpts, opts: MonitorOpts) -> i32 {
    let (node, mut events) = match start(conn).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let watch = match node.monitor(&opts.jid) {
        Ok(m) => m,
        Err(e) => {
            out::diag(format!("cannot monitor {}: {e}", opts.jid));
            node.close().await;
            return exit::FAILURE;
        }
    };
    let wait = async {
        while let Some(e) = events.next().await {
            match e {
                Event::Down {
                    monitor,
                    jid,
                    reason,
                } if monitor == watch => return Some((jid, reason)),
                Event::Disconnected(e) => out::diag(format!("disconnected: {e} (reconnecting)")),
                Event::Closed(_) => return None,
                _ => {}
            }
        }
        None
    };
    let down = match opts.timeout {
        Some(t) => match tokio::time::timeout(t, wait).await {
            Ok(down) => down,
            Err(_) => {
                out::diag(format!(
                    "{} is still up after {} ms",
                    opts.jid,
                    t.as_millis()
                ));
                node.close().await;
                return exit::TIMEOUT;
            }
        },
        None => wait.await,
    };
    let code = match down {
        Some((jid, reason)) => {
            out::event(
                "down",
                vec![
                    ("jid", Json::str(jid)),
                    ("reason", Json::str(reason.as_str())),
                ],
            );
            exit::OK
        }
        None => {
            out::diag("the session ended before a DOWN came");
            exit::FAILURE
        }
    };
    node.close().await;
    code
}

/// Runs `broadcast`: joins, broadcasts each value in order, leaves once
/// the own server took them all; returns the exit code.
pub async fn broadcast(conn: &ConnOpts, opts: BroadcastOpts) -> i32 {
    let (node, mut events) = match start_in(conn, &opts.group, opts.timeout).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut refs = std::collections::HashSet::new();
    for b in opts.bodies {
        let sent = match b {
            Body::Term(t) => node.broadcast_term(&opts.group, t),
            Body::Json(v) => node.broadcast_json(&opts.group, v),
        };
        match sent {
            Ok(r) => {
                refs.insert(r);
            }
            Err(e) => {
                out::diag(format!("cannot broadcast to {}: {e}", opts.group));
                drain(events);
                node.close().await;
                return exit::SEND_FAILED;
            }
        }
    }
    let count = refs.len();
    // As for `send`: closing waits for the own server's answer to a ping
    // sent after the broadcasts (a bounce from the room comes first).
    let closer = node.clone();
    let closing = tokio::spawn(async move { closer.close().await });
    let wait = async {
        let mut failed = None;
        while let Some(e) = events.next().await {
            match e {
                Event::Failed(r, why) if refs.contains(&r) => failed = failed.or(Some(why)),
                Event::Closed(_) => break,
                _ => {}
            }
        }
        failed
    };
    let outcome = tokio::time::timeout(opts.timeout, wait).await;
    let _ = closing.await;
    match outcome {
        Ok(None) => {
            out::event(
                "broadcast",
                vec![
                    ("group", Json::str(opts.group)),
                    ("count", Json::int(count as i128)),
                ],
            );
            exit::OK
        }
        Ok(Some(why)) => send_failed(&opts.group, &why),
        Err(_) => send_failed(&opts.group, &SendError::Timeout),
    }
}

/// Runs `members`: joins, prints the members (itself included) as one
/// JSON array, leaves; returns the exit code.
pub async fn members(conn: &ConnOpts, opts: MembersOpts) -> i32 {
    let (node, events) = match start_in(conn, &opts.group, opts.timeout).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    drain(events);
    out::line(&out::members_json(&node.members(&opts.group)));
    node.close().await;
    exit::OK
}
