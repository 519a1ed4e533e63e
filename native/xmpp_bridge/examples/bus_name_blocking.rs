//! A threaded program holding a name on a name host (docs/PROTOCOL.md
//! §7), no async in sight: connects as the component, registers a name,
//! prints what comes to it and answers its calls until one calls `stop`,
//! then releases the name with the exit asked for and closes.
//!
//! `cargo run -p xmpp_bridge --example bus_name_blocking -- --domain D
//! --secret S --host H --port N --name X [--exit normal|shutdown|killed|error]`
//!
//! Prints one JSON object a line: `{"event":"registered","jid":J}`,
//! `{"event":"name_message","from":F,"etf":B64}`,
//! `{"event":"name_call","from":F,"method":M}`, `{"event":"stopped"}`.
//! Serves `add` (integers), `stop` (answers `ok`); any other method is
//! answered `no_method`.

use base64::Engine;
use serde_json::json;
use xmpp_bridge::bus::{self, blocking, ExitKind, Failure, NameEvent, Payload};
use xmpp_bridge::etf::{self, Term};

fn fail(why: impl std::fmt::Display) -> ! {
    eprintln!("bus_name_blocking: {why}");
    std::process::exit(1)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut domain, mut secret, mut host, mut port, mut name) = (None, None, None, None, None);
    let mut exit = None;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(format!("{flag} needs a value")));
        match flag.as_str() {
            "--domain" => domain = Some(value),
            "--secret" => secret = Some(value),
            "--host" => host = Some(value),
            "--port" => port = Some(value.parse::<u16>().unwrap_or_else(|e| fail(e))),
            "--name" => name = Some(value),
            "--exit" => exit = Some(ExitKind::parse(&value)),
            other => fail(format!("unknown flag {other}")),
        }
    }
    let mut config = bus::Config::component(
        domain.unwrap_or_else(|| fail("--domain is required")),
        secret.unwrap_or_else(|| fail("--secret is required")),
    );
    config.connection.host = host;
    if let Some(port) = port {
        config.connection.port = port;
    }
    let node = blocking::Node::connect(config).unwrap_or_else(|e| fail(e));
    let name = name.unwrap_or_else(|| fail("--name is required"));
    let mut held = node.register(&name).unwrap_or_else(|e| fail(e));
    println!("{}", json!({"event": "registered", "jid": held.jid()}));
    while let Some(event) = held.recv() {
        match event {
            NameEvent::Message {
                from,
                payload: Payload::Term(t),
            } => {
                let etf = base64::engine::general_purpose::STANDARD.encode(etf::encode(&t));
                println!(
                    "{}",
                    json!({"event": "name_message", "from": from, "etf": etf})
                );
            }
            NameEvent::Message { .. } => {}
            NameEvent::Call(req) => {
                println!(
                    "{}",
                    json!({"event": "name_call", "from": req.caller(), "method": req.method()})
                );
                match req.method() {
                    "add" => match req.args().decode::<Vec<i64>>() {
                        Ok(xs) => req.reply(&xs.iter().sum::<i64>()),
                        Err(e) => req.fail(Failure::BadArgs(e.to_string())),
                    },
                    "stop" => {
                        req.reply_term(Term::atom("ok"));
                        break;
                    }
                    _ => req.fail(Failure::NoMethod),
                };
            }
        }
    }
    match exit {
        Some(kind) => held.release(kind),
        None => drop(held),
    }
    node.close();
    println!("{}", json!({"event": "stopped"}));
}
