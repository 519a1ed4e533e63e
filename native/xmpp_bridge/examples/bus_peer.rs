//! A bus node as an OS process, driven by JSON lines: the peer the
//! Elixir integration tests run against.
//!
//! `cargo run -p xmpp_bridge --example bus_peer -- --jid J --password P
//! --host H --port N [--tls plain|starttls] [--resource bus]
//! [--heartbeat-ms 5000] [--heartbeat-timeout-ms 5000] [--max-calls 64]
//! [--echo] [--no-sm]`
//!
//! Prints one JSON object a line on stdout (diagnostics go to stderr):
//!
//! - `{"event":"online","jid":J,"incarnation":I,"resumed":false}` on every Online
//! - `{"event":"message","from":J,"etf":B64}` or `{"event":"message","from":J,"json":V}`
//! - `{"event":"delivered","id":N}`, `{"event":"failed","id":N,"reason":R}`
//! - `{"event":"result","id":N,"etf":B64}`, `{"event":"error","id":N,"reason":R,"detail":D}`
//! - `{"event":"down","id":N,"jid":J,"reason":R}`
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
//!
//! Serves `echo`, `add` (integers of any size), `sleep` (ms), `crash`
//! (panics with "boom") and `whoami`. With `--echo`, every term received
//! is sent back to its sender.

use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::Duration;
use xmpp_bridge::bus::{self, Args, Delivery, Event, MonitorRef, Payload, SendOptions, SendRef};
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
         [--max-calls 64] [--echo]"
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
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let jid = jid.unwrap_or_else(|| usage("--jid is required"));
    let password = password.unwrap_or_else(|| usage("--password is required"));
    let mut config = bus::Config::new(jid, password);
    config.connection.resource = Some(resource);
    config.connection.host = host;
    if let Some(port) = port {
        config.connection.port =
            u16::try_from(port).unwrap_or_else(|_| usage("--port out of range"));
    }
    config.connection.tls = tls;
    config.heartbeat = Duration::from_millis(heartbeat);
    config.heartbeat_timeout = Duration::from_millis(heartbeat_timeout);
    config.max_calls = max_calls;
    config.connection.stream_management = stream_management;
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

fn call(state: &mut State, cmd: &Value, id: Value) -> Result<(), String> {
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
    let node = state.node.clone();
    tokio::spawn(async move {
        match node.call_term(&to, &method, args, timeout).await {
            Ok(t) => emit(json!({"event": "result", "id": id, "etf": term_b64(&t)})),
            Err(e) => emit(json!({
                "event": "error",
                "id": id,
                "reason": e.kind(),
                "detail": e.detail(),
            })),
        }
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
    let mut state = State {
        node,
        sends: HashMap::new(),
        monitors: HashMap::new(),
        held: false,
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
