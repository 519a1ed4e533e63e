//! A bus node as an OS process, driven by JSON lines: the peer the
//! Elixir integration tests run against.
//!
//! `cargo run -p xmpp_bridge --example bus_peer -- --jid J --password P
//! --host H --port N [--tls plain|starttls] [--resource bus]
//! [--heartbeat-ms 5000] [--heartbeat-timeout-ms 5000] [--max-calls 64]
//! [--echo] [--no-sm] [--discovery G] [--muc-service S] [--join-timeout-ms 10000]`
//!
//! With `--component` the node is a name host (docs/PROTOCOL.md §7): an
//! external component whose domain is `--jid` and whose secret is
//! `--password` (`--port` the server's component port).
//!
//! With `--discovery G` the node joins group `G` before it reports
//! `online` (docs/PROTOCOL.md §6.3); `--muc-service` names the MUC service
//! of its groups (default `conference.<domain>`).
//!
//! Prints one JSON object a line on stdout (diagnostics go to stderr):
//!
//! - `{"event":"online","jid":J,"incarnation":I,"resumed":false}` on every Online
//! - `{"event":"message","from":J,"etf":B64}` or `{"event":"message","from":J,"json":V}`
//! - `{"event":"delivered","id":N}`, `{"event":"failed","id":N,"reason":R}`
//! - `{"event":"result","id":N,"etf":B64}`, `{"event":"error","id":N,"reason":R,"detail":D}`
//! - `{"event":"down","id":N,"jid":J,"reason":R}`
//! - groups: `{"event":"joined_ok","id":N}`, `{"event":"left_ok","id":N}`,
//!   `{"event":"status_ok","id":N}`,
//!   `{"event":"members","id":N,"members":[M...]}` and
//!   `{"event":"nodes","id":N,"members":[M...]}` with each member
//!   `M = {"jid":J,"bus":true|false,"show":S|null,"text":T|null}` (plus
//!   `"etf":B64` or `"json":V` when its status carries a value),
//!   `{"event":"methods","id":N,"methods":[NAME...]}`; a command that
//!   fails gives `{"event":"error","id":N,"reason":R,"detail":D}` (R one
//!   of `invalid_group`, `not_joined`, `join_failed` (D the condition),
//!   `timeout`, `stanza_error`, `closed`, `queue_full`, `invalid_jid`,
//!   `encode`, `connect`)
//! - `{"event":"broadcast","group":G,"from":J,"etf":B64}` (or `"json":V`)
//! - `{"event":"member_joined","group":G,"jid":J}`,
//!   `{"event":"member_left","group":G,"jid":J,"reason":R}` (R `left` or a
//!   DOWN reason), `{"event":"status","group":G,"jid":J,"show":S|null,"text":T|null}`
//!   (plus `"etf"` or `"json"` when the status carries a value)
//! - names (a name host): `{"event":"registered","id":N,"name":X,"jid":J,"incarnation":I}`,
//!   `{"event":"unregistered","name":X}`,
//!   `{"event":"name_message","name":X,"from":J,"etf":B64}` (or `"json":V`),
//!   `{"event":"name_call","name":X,"call":C,"from":J,"method":M,"args_etf":B64}`,
//!   `{"event":"answered","call":C,"ok":true|false}` (false: the call no
//!   longer waited); `register` fails with R `invalid_name`, `name_taken`
//!   or `not_name_host`
//! - `{"event":"bad_command","detail":D}`
//! - `{"event":"stopped"}` before exiting 0 (after `stop` or the end of stdin)
//!
//! Reads one command a line on stdin:
//!
//! - `{"cmd":"send","id":N,"to":J,"etf":B64,"delivery":"server"|"confirmed"|"none","deadline_ms":M}`
//! - `{"cmd":"call","id":N,"to":J,"method":M,"args_etf":B64,"timeout_ms":T}`
//! - `{"cmd":"monitor","id":N,"jid":J}`, `{"cmd":"demonitor","id":N}`
//! - `{"cmd":"stop"}`
//! - `{"cmd":"hold"}` / `{"cmd":"release"}`: stop / start taking events (a
//!   slow application: the node's flow control holds the stream back)
//! - `{"cmd":"rss"}`: prints `{"event":"rss","kb":N}`, this process's VmRSS
//! - `{"cmd":"join","id":N,"group":G,"history":H,"member_heartbeat":B}` (`history`
//!   optional, 0; `member_heartbeat` optional, true)
//! - `{"cmd":"leave","id":N,"group":G}`
//! - `{"cmd":"broadcast","id":N,"group":G,"etf":B64}` or `"json":V` instead
//!   of `"etf"`: nothing is printed unless it fails (`failed` with the id)
//! - `{"cmd":"members","id":N,"group":G}`, `{"cmd":"nodes","id":N}`
//! - `{"cmd":"status","id":N,"show":S|null,"text":T|null,"etf":B64}` (`etf`
//!   or `json` optional: the status value; S one of chat, away, xa, dnd)
//! - `{"cmd":"methods","id":N,"jid":J}`
//! - names: `{"cmd":"register","id":N,"name":X}`,
//!   `{"cmd":"unregister","name":X,"exit":"normal"|"shutdown"|"killed"|"error"|"panic"}`
//!   (`exit` optional: a plain drop, `normal`; `panic`: the name's task
//!   panics while it holds the name),
//!   `{"cmd":"reply","call":C,"etf":B64}`,
//!   `{"cmd":"fail","call":C,"reason":"no_method"|"bad_args"|"busy"|"crashed","detail":D}`,
//!   `{"cmd":"drop_call","call":C}` (the request dropped unanswered),
//!   `{"cmd":"name_send","id":N,"name":X,...}` and
//!   `{"cmd":"name_call","id":N,"name":X,...}`: `send` and `call` from the
//!   name's address
//!
//! Serves `echo`, `add` (integers of any size), `sleep` (ms), `crash`
//! (panics with "boom") and `whoami`. With `--echo`, every term received
//! is sent back to its sender.

use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Duration;
use xmpp_bridge::bus::{
    self, Args, Delivery, Event, ExitKind, Failure, JoinOptions, Member, MonitorRef, NameEvent,
    NameSender, Payload, Request, SendOptions, SendRef, Show, Status,
};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::{self, Term};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn term_b64(t: &Term) -> String {
    b64(&etf::encode(t))
}

fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn usage(why: &str) -> ! {
    eprintln!("bus_peer: {why}");
    eprintln!(
        "usage: bus_peer --jid J --password P --host H --port N [--tls plain|starttls] \
         [--resource bus] [--heartbeat-ms 5000] [--heartbeat-timeout-ms 5000] \
         [--max-calls 64] [--echo] [--no-sm] [--discovery G] [--muc-service S] \
         [--join-timeout-ms 10000] [--component]"
    );
    std::process::exit(2)
}

struct Flags {
    config: bus::Config,
    echo: bool,
}

fn flags() -> Flags {
    let mut args = std::env::args().skip(1);
    let mut jid = None;
    let mut password = None;
    let mut host = None;
    let mut port = None;
    let mut tls = TlsMode::StartTls;
    let mut resource = bus::RESOURCE.to_owned();
    let mut heartbeat = 5000u64;
    let mut heartbeat_timeout = 5000u64;
    let mut max_calls = 64usize;
    let mut echo = false;
    let mut stream_management = true;
    let mut discovery = None;
    let mut muc_service = None;
    let mut join_timeout = 10_000u64;
    let mut component = false;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--jid" => jid = Some(value()),
            "--password" => password = Some(value()),
            "--host" => host = Some(value()),
            "--port" => port = Some(number(value())),
            "--tls" => {
                tls = match value().as_str() {
                    "plain" => TlsMode::Plain,
                    "starttls" => TlsMode::StartTls,
                    "direct" => TlsMode::Direct,
                    other => usage(&format!("unknown --tls {other}")),
                }
            }
            "--resource" => resource = value(),
            "--heartbeat-ms" => heartbeat = number(value()),
            "--heartbeat-timeout-ms" => heartbeat_timeout = number(value()),
            "--max-calls" => max_calls = number(value()) as usize,
            "--echo" => echo = true,
            // Testing aid: no XEP-0198, so a lost connection ends the
            // session at the server and the reconnect is not a resumption.
            "--no-sm" => stream_management = false,
            "--discovery" => discovery = Some(value()),
            "--muc-service" => muc_service = Some(value()),
            "--join-timeout-ms" => join_timeout = number(value()),
            "--component" => component = true,
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let jid = jid.unwrap_or_else(|| usage("--jid is required"));
    let password = password.unwrap_or_else(|| usage("--password is required"));
    let mut config = if component {
        bus::Config::component(jid, password)
    } else {
        let mut config = bus::Config::new(jid, password);
        config.connection.resource = Some(resource);
        config
    };
    config.connection.host = host;
    if let Some(port) = port {
        config.connection.port =
            u16::try_from(port).unwrap_or_else(|_| usage("--port out of range"));
    }
    config.connection.tls = tls;
    config.heartbeat = Duration::from_millis(heartbeat);
    config.heartbeat_timeout = Duration::from_millis(heartbeat_timeout);
    config.max_calls = max_calls;
    config.connection.stream_management = stream_management && !component;
    config.discovery = discovery;
    config.muc_service = muc_service;
    config.join_timeout = Duration::from_millis(join_timeout);
    Flags { config, echo }
}

// ---------------------------------------------------------- integers

/// An integer of any size: sign and little-endian magnitude.
#[derive(Clone, Debug, PartialEq)]
struct Big {
    negative: bool,
    magnitude: Vec<u8>,
}

impl Big {
    fn from_term(t: &Term) -> Option<Big> {
        match t {
            Term::Int(i) => {
                let m = i.unsigned_abs().to_le_bytes().to_vec();
                Some(Big::new(*i < 0, m))
            }
            Term::BigInt {
                negative,
                magnitude,
            } => Some(Big::new(*negative, magnitude.clone())),
            _ => None,
        }
    }

    fn new(negative: bool, mut magnitude: Vec<u8>) -> Big {
        while magnitude.last() == Some(&0) {
            magnitude.pop();
        }
        let negative = negative && !magnitude.is_empty();
        Big {
            negative,
            magnitude,
        }
    }

    fn to_term(&self) -> Term {
        if self.magnitude.len() <= 8 {
            let mut le = [0u8; 8];
            le[..self.magnitude.len()].copy_from_slice(&self.magnitude);
            let m = u64::from_le_bytes(le);
            if !self.negative && m <= i64::MAX as u64 {
                return Term::Int(m as i64);
            }
            if self.negative && m <= 1u64 << 63 {
                return Term::Int((m as i64).wrapping_neg());
            }
        }
        Term::BigInt {
            negative: self.negative,
            magnitude: self.magnitude.clone(),
        }
    }

    fn cmp_magnitude(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }

    fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
        let mut carry = 0u16;
        for i in 0..a.len().max(b.len()) {
            let s = u16::from(*a.get(i).unwrap_or(&0)) + u16::from(*b.get(i).unwrap_or(&0)) + carry;
            out.push(s as u8);
            carry = s >> 8;
        }
        if carry > 0 {
            out.push(carry as u8);
        }
        out
    }

    /// a - b for a >= b.
    fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(a.len());
        let mut borrow = 0i16;
        for (i, &x) in a.iter().enumerate() {
            let mut d = i16::from(x) - i16::from(*b.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if d < 0 {
                d += 256;
                borrow = 1;
            }
            out.push(d as u8);
        }
        out
    }

    fn add(&self, other: &Big) -> Big {
        if self.negative == other.negative {
            return Big::new(
                self.negative,
                Big::add_magnitudes(&self.magnitude, &other.magnitude),
            );
        }
        match Big::cmp_magnitude(&self.magnitude, &other.magnitude) {
            std::cmp::Ordering::Less => Big::new(
                other.negative,
                Big::sub_magnitudes(&other.magnitude, &self.magnitude),
            ),
            _ => Big::new(
                self.negative,
                Big::sub_magnitudes(&self.magnitude, &other.magnitude),
            ),
        }
    }
}

// ----------------------------------------------------------- methods

fn serve_methods(node: &bus::Node) {
    node.serve("echo", |args: Args| async move {
        Ok(match args.len() {
            1 => args.into_terms().remove(0),
            _ => Term::List(args.into_terms()),
        })
    });
    node.serve("add", |args: Args| async move {
        let mut sum = Big::new(false, Vec::new());
        for t in args.terms() {
            let n = Big::from_term(t).ok_or_else(|| format!("add takes integers, not {t:?}"))?;
            sum = sum.add(&n);
        }
        Ok(sum.to_term())
    });
    node.serve("sleep", |args: Args| async move {
        let ms = match args.terms() {
            [Term::Int(ms)] if *ms >= 0 => *ms as u64,
            _ => return Err("sleep takes one non-negative integer (ms)".to_string()),
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Term::Atom("ok".into()))
    });
    node.serve("crash", |_args: Args| async move {
        if true {
            panic!("boom");
        }
        Ok(Term::Atom("unreachable".into()))
    });
    let me = node.clone();
    node.serve("whoami", move |_args: Args| {
        let jid = me.jid();
        async move { Ok(Term::Binary(jid.into_bytes())) }
    });
}

// ---------------------------------------------------------- commands

fn bad(detail: impl Into<String>) {
    emit(json!({"event": "bad_command", "detail": detail.into()}));
}

fn term_arg(cmd: &Value, key: &str) -> Result<Term, String> {
    let text = cmd
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key} is missing"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("{key}: not Base64: {e}"))?;
    etf::decode(&bytes).map_err(|e| format!("{key}: {e}"))
}

fn str_arg<'a>(cmd: &'a Value, key: &str) -> Result<&'a str, String> {
    cmd.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key} is missing"))
}

struct State {
    node: bus::Node,
    sends: HashMap<SendRef, Value>,
    monitors: HashMap<MonitorRef, Value>,
    /// `hold`: events are not taken (a slow application), until `release`.
    held: bool,
    /// Registered names: how to send from them, and how to release them.
    names: HashMap<String, (NameSender, tokio::sync::oneshot::Sender<Option<String>>)>,
    /// Calls to names waiting for a `reply` or `fail`.
    calls: HashMap<u64, Request>,
    next_call: u64,
    name_events: tokio::sync::mpsc::UnboundedSender<(String, NameEvent)>,
}

/// This process's resident memory (VmRSS), in KB.
fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Handles one command; true when it asks to stop.
fn command(state: &mut State, line: &str) -> bool {
    let cmd: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            bad("a command is a JSON object");
            return false;
        }
        Err(e) => {
            bad(format!("not JSON: {e}"));
            return false;
        }
    };
    let id = cmd.get("id").cloned().unwrap_or(Value::Null);
    let result = match cmd.get("cmd").and_then(Value::as_str) {
        Some("stop") => return true,
        Some("hold") => {
            state.held = true;
            Ok(())
        }
        Some("release") => {
            state.held = false;
            Ok(())
        }
        Some("rss") => {
            emit(json!({"event": "rss", "kb": rss_kb()}));
            Ok(())
        }
        Some("send") => send(state, &cmd, id),
        Some("call") => call(state, &cmd, id),
        Some("join") => join(state, &cmd, id),
        Some("leave") => str_arg(&cmd, "group").map(|group| match state.node.leave(group) {
            Ok(()) => emit(json!({"event": "left_ok", "id": id})),
            Err(e) => emit_error(id, &e),
        }),
        Some("broadcast") => broadcast(state, &cmd, id),
        Some("members") => str_arg(&cmd, "group").map(|group| {
            let members = members_json(&state.node.members(group));
            emit(json!({"event": "members", "id": id, "members": members}));
        }),
        Some("nodes") => {
            let members = members_json(&state.node.nodes());
            emit(json!({"event": "nodes", "id": id, "members": members}));
            Ok(())
        }
        Some("status") => status(state, &cmd, id),
        Some("methods") => str_arg(&cmd, "jid").map(|jid| {
            let node = state.node.clone();
            let jid = jid.to_owned();
            tokio::spawn(async move {
                match node.methods(&jid).await {
                    Ok(names) => emit(json!({"event": "methods", "id": id, "methods": names})),
                    Err(e) => emit_error(id, &e),
                }
            });
        }),
        Some("monitor") => str_arg(&cmd, "jid").map(|jid| match state.node.monitor(jid) {
            Ok(m) => {
                state.monitors.insert(m, id);
            }
            Err(e) => bad(format!("monitor: {e}")),
        }),
        Some("demonitor") => {
            let found = state
                .monitors
                .iter()
                .find(|(_, v)| **v == id)
                .map(|(m, _)| *m);
            match found {
                Some(m) => {
                    state.monitors.remove(&m);
                    state.node.demonitor(m);
                    Ok(())
                }
                None => Err(format!("no monitor with id {id}")),
            }
        }
        Some("register") => register(state, &cmd, id),
        Some("unregister") => str_arg(&cmd, "name").and_then(|name| {
            let exit = cmd.get("exit").and_then(Value::as_str).map(str::to_owned);
            let (_, release) = state
                .names
                .remove(name)
                .ok_or_else(|| format!("no name {name:?}"))?;
            let _ = release.send(exit);
            Ok(())
        }),
        Some("reply") => answer_call(state, &cmd, |req, cmd| {
            Ok(req.reply_term(term_arg(cmd, "etf")?))
        }),
        Some("fail") => answer_call(state, &cmd, |req, cmd| {
            let detail = cmd.get("detail").and_then(Value::as_str).unwrap_or("");
            let reason = match str_arg(cmd, "reason")? {
                "no_method" => Failure::NoMethod,
                "bad_args" => Failure::BadArgs(detail.into()),
                "busy" => Failure::Busy,
                "crashed" => Failure::Crashed(detail.into()),
                other => return Err(format!("unknown reason {other:?}")),
            };
            Ok(req.fail(reason))
        }),
        Some("drop_call") => answer_call(state, &cmd, |req, _| {
            drop(req);
            Ok(true)
        }),
        Some("name_send") => name_send(state, &cmd, id),
        Some("name_call") => name_call(state, &cmd, id),
        Some(other) => Err(format!("unknown command {other:?}")),
        None => Err("cmd is missing".into()),
    };
    if let Err(why) = result {
        bad(why);
    }
    false
}

fn send(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let to = str_arg(cmd, "to")?;
    let term = term_arg(cmd, "etf")?;
    let delivery = match cmd.get("delivery").and_then(Value::as_str) {
        None | Some("server") => Delivery::Server,
        Some("confirmed") => Delivery::Confirmed,
        Some("none") => Delivery::None,
        Some(other) => return Err(format!("unknown delivery {other:?}")),
    };
    let deadline = cmd
        .get("deadline_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis);
    match state
        .node
        .send_term(to, term, SendOptions { delivery, deadline })
    {
        Ok(r) => {
            if delivery != Delivery::None {
                state.sends.insert(r, id);
            }
        }
        Err(e) => emit(json!({"event": "failed", "id": id, "reason": e.to_string()})),
    }
    Ok(())
}

/// The name and detail of a bus error, as `error` events print them.
fn error_parts(e: &bus::Error) -> (&'static str, Option<String>) {
    match e {
        bus::Error::Connect(c) => ("connect", Some(c.to_string())),
        bus::Error::InvalidJid(why) => ("invalid_jid", Some(why.clone())),
        bus::Error::QueueFull => ("queue_full", None),
        bus::Error::Closed => ("closed", None),
        bus::Error::Encode(why) => ("encode", Some(why.clone())),
        bus::Error::InvalidGroup(why) => ("invalid_group", Some(why.clone())),
        bus::Error::NotJoined(group) => ("not_joined", Some(group.clone())),
        bus::Error::JoinFailed(condition) => ("join_failed", Some(condition.clone())),
        bus::Error::Timeout => ("timeout", None),
        bus::Error::InvalidName(why) => ("invalid_name", Some(why.clone())),
        bus::Error::NameTaken(name) => ("name_taken", Some(name.clone())),
        bus::Error::NotNameHost => ("not_name_host", None),
        bus::Error::GroupsOnNameHost => ("groups_on_name_host", None),
        bus::Error::Stanza { condition, .. } => ("stanza_error", Some(condition.clone())),
    }
}

fn emit_error(id: Value, e: &bus::Error) {
    let (reason, detail) = error_parts(e);
    emit(json!({"event": "error", "id": id, "reason": reason, "detail": detail}));
}

/// A status as the fields of an event: show, text, and its value.
fn status_fields(status: &Status, out: &mut serde_json::Map<String, Value>) {
    out.insert("show".into(), json!(status.show.map(Show::as_str)));
    out.insert("text".into(), json!(status.text));
    match &status.payload {
        Some(Payload::Term(t)) => {
            out.insert("etf".into(), json!(term_b64(t)));
        }
        Some(Payload::Json(v)) => {
            out.insert("json".into(), v.clone());
        }
        None => {}
    }
}

fn members_json(members: &[Member]) -> Value {
    Value::Array(
        members
            .iter()
            .map(|m| {
                let mut o = serde_json::Map::new();
                o.insert("jid".into(), json!(m.jid));
                o.insert("bus".into(), json!(m.bus));
                status_fields(&m.status, &mut o);
                Value::Object(o)
            })
            .collect(),
    )
}

fn join(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let group = str_arg(cmd, "group")?.to_owned();
    let history = match cmd.get("history") {
        None | Some(Value::Null) => 0,
        Some(h) => h
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or("history is not a count")?,
    };
    let member_heartbeat = match cmd.get("member_heartbeat") {
        None | Some(Value::Null) => true,
        Some(b) => b.as_bool().ok_or("member_heartbeat is not a boolean")?,
    };
    let options = JoinOptions {
        history,
        member_heartbeat,
    };
    let node = state.node.clone();
    tokio::spawn(async move {
        match node.join_with(&group, options).await {
            Ok(()) => emit(json!({"event": "joined_ok", "id": id})),
            Err(e) => emit_error(id, &e),
        }
    });
    Ok(())
}

/// The value of a command: `etf` (Base64 ETF) or `json`.
fn payload_arg(cmd: &Value) -> Result<Option<Payload>, String> {
    if cmd.get("etf").is_some_and(|v| !v.is_null()) {
        return term_arg(cmd, "etf").map(|t| Some(Payload::Term(t)));
    }
    Ok(cmd
        .get("json")
        .filter(|v| !v.is_null())
        .map(|v| Payload::Json(v.clone())))
}

fn broadcast(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let group = str_arg(cmd, "group")?;
    let sent = match payload_arg(cmd)? {
        Some(Payload::Term(t)) => state.node.broadcast_term(group, t),
        Some(Payload::Json(v)) => state.node.broadcast_json(group, v),
        None => return Err("etf or json is missing".into()),
    };
    match sent {
        Ok(r) => {
            state.sends.insert(r, id);
        }
        Err(e) => emit_error(id, &e),
    }
    Ok(())
}

fn status(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let show = match cmd.get("show") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(Show::parse(s).ok_or_else(|| format!("unknown show {s:?}"))?)
        }
        Some(other) => return Err(format!("show is not a string: {other}")),
    };
    let text = match cmd.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("text is not a string: {other}")),
    };
    let payload = payload_arg(cmd)?;
    match state.node.set_status(Status {
        show,
        text,
        payload,
    }) {
        Ok(()) => emit(json!({"event": "status_ok", "id": id})),
        Err(e) => emit_error(id, &e),
    }
    Ok(())
}

fn register(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let name = str_arg(cmd, "name")?;
    let mut registered = match state.node.register(name) {
        Ok(n) => n,
        Err(e) => {
            emit_error(id, &e);
            return Ok(());
        }
    };
    emit(json!({
        "event": "registered",
        "id": id,
        "name": name,
        "jid": registered.jid(),
        "incarnation": registered.incarnation(),
    }));
    let (release_tx, mut release_rx) = tokio::sync::oneshot::channel::<Option<String>>();
    state
        .names
        .insert(name.to_owned(), (registered.sender(), release_tx));
    let events = state.name_events.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                e = registered.recv() => match e {
                    Some(e) => {
                        let _ = events.send((name.clone(), e));
                    }
                    None => return,
                },
                exit = &mut release_rx => {
                    emit(json!({"event": "unregistered", "name": name}));
                    match exit.ok().flatten().as_deref() {
                        // The task panics holding the name: its drop
                        // during the unwinding says exit='error'.
                        Some("panic") => panic!("the task of {name} panics on purpose"),
                        Some(kind) => registered.release(ExitKind::parse(kind)),
                        None => drop(registered),
                    }
                    return;
                }
            }
        }
    });
    Ok(())
}

fn answer_call(
    state: &mut State,
    cmd: &Value,
    f: impl FnOnce(Request, &Value) -> Result<bool, String>,
) -> Result<(), String> {
    let call = cmd
        .get("call")
        .and_then(Value::as_u64)
        .ok_or("call is missing")?;
    let req = state
        .calls
        .remove(&call)
        .ok_or_else(|| format!("no call {call}"))?;
    let ok = f(req, cmd)?;
    emit(json!({"event": "answered", "call": call, "ok": ok}));
    Ok(())
}

fn name_sender(state: &State, cmd: &Value) -> Result<NameSender, String> {
    let name = str_arg(cmd, "name")?;
    state
        .names
        .get(name)
        .map(|(s, _)| s.clone())
        .ok_or_else(|| format!("no name {name:?}"))
}

fn name_send(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let sender = name_sender(state, cmd)?;
    let to = str_arg(cmd, "to")?;
    let term = term_arg(cmd, "etf")?;
    let delivery = match cmd.get("delivery").and_then(Value::as_str) {
        None | Some("server") => Delivery::Server,
        Some("confirmed") => Delivery::Confirmed,
        Some("none") => Delivery::None,
        Some(other) => return Err(format!("unknown delivery {other:?}")),
    };
    let deadline = cmd
        .get("deadline_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis);
    match sender.send_term(to, term, SendOptions { delivery, deadline }) {
        Ok(r) => {
            if delivery != Delivery::None {
                state.sends.insert(r, id);
            }
        }
        Err(e) => emit(json!({"event": "failed", "id": id, "reason": e.to_string()})),
    }
    Ok(())
}

fn name_call(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let sender = name_sender(state, cmd)?;
    let (to, method, args, timeout) = call_parts(cmd)?;
    tokio::spawn(async move {
        let answer = sender.call_term(&to, &method, args, timeout).await;
        emit_answer(id, answer);
    });
    Ok(())
}

fn name_event(state: &mut State, name: String, e: NameEvent) {
    match e {
        NameEvent::Message { from, payload } => match payload {
            Payload::Term(t) => emit(
                json!({"event": "name_message", "name": name, "from": from, "etf": term_b64(&t)}),
            ),
            Payload::Json(v) => {
                emit(json!({"event": "name_message", "name": name, "from": from, "json": v}))
            }
        },
        NameEvent::Call(req) => {
            state.next_call += 1;
            let call = state.next_call;
            emit(json!({
                "event": "name_call",
                "name": name,
                "call": call,
                "from": req.caller(),
                "method": req.method(),
                "args_etf": term_b64(&Term::List(req.args().terms().to_vec())),
            }));
            state.calls.insert(call, req);
        }
    }
}

type CallParts = (String, String, Vec<Term>, Duration);

fn call_parts(cmd: &Value) -> Result<CallParts, String> {
    let to = str_arg(cmd, "to")?.to_owned();
    let method = str_arg(cmd, "method")?.to_owned();
    let args = match cmd.get("args_etf") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => match term_arg(cmd, "args_etf")? {
            Term::List(items) => items,
            _ => return Err("args_etf is not a list".into()),
        },
    };
    let timeout = Duration::from_millis(
        cmd.get("timeout_ms")
            .and_then(Value::as_u64)
            .unwrap_or(5000),
    );
    Ok((to, method, args, timeout))
}

fn emit_answer(id: Value, answer: Result<Term, bus::CallError>) {
    match answer {
        Ok(t) => emit(json!({"event": "result", "id": id, "etf": term_b64(&t)})),
        Err(e) => emit(json!({
            "event": "error",
            "id": id,
            "reason": e.kind(),
            "detail": e.detail(),
        })),
    }
}

fn call(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
    let (to, method, args, timeout) = call_parts(cmd)?;
    let node = state.node.clone();
    tokio::spawn(async move {
        let answer = node.call_term(&to, &method, args, timeout).await;
        emit_answer(id, answer);
    });
    Ok(())
}

fn event(state: &mut State, echo: bool, e: Event) {
    match e {
        Event::Online { resumed } => emit(json!({
            "event": "online",
            "jid": state.node.jid(),
            "incarnation": state.node.incarnation(),
            "resumed": resumed,
        })),
        Event::Message { from, payload } => match payload {
            Payload::Term(t) => {
                emit(json!({"event": "message", "from": from, "etf": term_b64(&t)}));
                if echo {
                    if let Err(e) = state.node.send_term(&from, t, SendOptions::default()) {
                        eprintln!("bus_peer: echo to {from} failed: {e}");
                    }
                }
            }
            Payload::Json(v) => emit(json!({"event": "message", "from": from, "json": v})),
        },
        Event::Delivered(r) => {
            if let Some(id) = state.sends.remove(&r) {
                emit(json!({"event": "delivered", "id": id}));
            }
        }
        Event::Failed(r, why) => {
            if let Some(id) = state.sends.remove(&r) {
                emit(json!({"event": "failed", "id": id, "reason": why.to_string()}));
            }
        }
        Event::Down {
            monitor,
            jid,
            reason,
        } => {
            if let Some(id) = state.monitors.remove(&monitor) {
                emit(json!({"event": "down", "id": id, "jid": jid, "reason": reason.as_str()}));
            }
        }
        Event::Broadcast {
            group,
            from,
            payload,
        } => match payload {
            Payload::Term(t) => emit(
                json!({"event": "broadcast", "group": group, "from": from, "etf": term_b64(&t)}),
            ),
            Payload::Json(v) => {
                emit(json!({"event": "broadcast", "group": group, "from": from, "json": v}))
            }
        },
        Event::Joined { group, jid } => {
            emit(json!({"event": "member_joined", "group": group, "jid": jid}))
        }
        Event::Left { group, jid, reason } => emit(json!({
            "event": "member_left",
            "group": group,
            "jid": jid,
            "reason": reason.as_str(),
        })),
        Event::Status { group, jid, status } => {
            let mut o = serde_json::Map::new();
            o.insert("event".into(), json!("status"));
            o.insert("group".into(), json!(group));
            o.insert("jid".into(), json!(jid));
            status_fields(&status, &mut o);
            emit(Value::Object(o));
        }
        Event::Disconnected(e) => eprintln!("bus_peer: disconnected: {e}"),
        Event::Closed(reason) => eprintln!("bus_peer: closed: {reason:?}"),
    }
}

#[tokio::main]
async fn main() {
    let Flags { config, echo } = flags();
    // One line per panic (the `crash` method panics on purpose).
    std::panic::set_hook(Box::new(|info| eprintln!("bus_peer: panic: {info}")));
    let (node, mut events) = match bus::Node::connect(config).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bus_peer: {e}");
            std::process::exit(1);
        }
    };
    serve_methods(&node);
    let (name_events, mut name_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut state = State {
        node,
        sends: HashMap::new(),
        monitors: HashMap::new(),
        held: false,
        names: HashMap::new(),
        calls: HashMap::new(),
        next_call: 0,
        name_events,
    };
    // Lines of stdin from a thread of their own (a blocking read).
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("bus_peer: stdin: {e}");
                    break;
                }
            }
        }
    });
    loop {
        let held = state.held;
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) if line.trim().is_empty() => {}
                Some(line) => {
                    if command(&mut state, &line) {
                        break;
                    }
                }
                None => break,
            },
            Some((name, e)) = name_rx.recv(), if !held => name_event(&mut state, name, e),
            e = events.next(), if !held => match e {
                Some(e) => event(&mut state, echo, e),
                None => {
                    eprintln!("bus_peer: the node closed by itself");
                    std::process::exit(1);
                }
            },
        }
    }
    state.node.close().await;
    emit(json!({"event": "stopped"}));
    std::process::exit(0);
}
