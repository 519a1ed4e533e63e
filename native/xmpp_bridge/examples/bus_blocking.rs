//! A threaded program on the bus, no async in sight: connects, sends
//! `{:hello, "from blocking rust"}` to a peer, calls its `echo` method,
//! prints the result as bus_peer does, and closes.
//!
//! `cargo run -p xmpp_bridge --example bus_blocking -- --jid J --password P
//! --host H --port N --to PEER [--tls plain|starttls]`

use base64::Engine;
use serde_json::json;
use std::time::Duration;
use xmpp_bridge::bus::{self, blocking, SendOptions};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::{self, Term};

fn fail(why: impl std::fmt::Display) -> ! {
    eprintln!("bus_blocking: {why}");
    std::process::exit(1)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut jid, mut password, mut host, mut port, mut to) = (None, None, None, None, None);
    let mut tls = TlsMode::Plain;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(format!("{flag} needs a value")));
        match flag.as_str() {
            "--jid" => jid = Some(value),
            "--password" => password = Some(value),
            "--host" => host = Some(value),
            "--port" => port = Some(value.parse::<u16>().unwrap_or_else(|e| fail(e))),
            "--to" => to = Some(value),
            "--tls" => {
                tls = match value.as_str() {
                    "plain" => TlsMode::Plain,
                    "starttls" => TlsMode::StartTls,
                    _ => fail(format!("unknown --tls {value}")),
                }
            }
            _ => fail(format!(
                "unknown flag {flag}; usage: --jid J --password P --host H --port N --to PEER"
            )),
        }
    }
    let jid = jid.unwrap_or_else(|| fail("--jid is required"));
    let password = password.unwrap_or_else(|| fail("--password is required"));
    let to = to.unwrap_or_else(|| fail("--to is required"));
    let mut config = bus::Config::new(jid, password);
    config.connection.host = host;
    config.connection.tls = tls;
    if let Some(port) = port {
        config.connection.port = port;
    }
    config.connection.reconnect.max_attempts = Some(3);

    let node = blocking::Node::connect(config).unwrap_or_else(|e| fail(e));
    let hello = Term::tuple(vec![
        Term::atom("hello"),
        Term::binary("from blocking rust"),
    ]);
    node.send_term(&to, hello, SendOptions::default())
        .unwrap_or_else(|e| fail(e));
    let arg = Term::tuple(vec![Term::atom("ping"), Term::Int(1)]);
    let result = node
        .call_term(&to, "echo", vec![arg], Duration::from_secs(10))
        .unwrap_or_else(|e| fail(format!("call failed: {e}")));
    let b64 = base64::engine::general_purpose::STANDARD.encode(etf::encode(&result));
    println!("{}", json!({"event": "result", "id": 1, "etf": b64}));
    node.close();
}
