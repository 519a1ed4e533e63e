//! The README's group example in Rust: alice and bob join `workers`, bob
//! with a status; alice lists the members, broadcasts a job, and sees bob
//! leave once he has it. Run against `mix xmpp_test_server --account
//! alice:secret --account bob:secret` with XMPP_PORT set to its plaintext
//! c2s port.
use xmpp_bridge::bus::{self, Event, Payload, Status};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::{Atom, Term};

fn config(jid: &str) -> bus::Config {
    let mut config = bus::Config::new(jid, "secret");
    config.connection.host = Some("127.0.0.1".into());
    config.connection.port = std::env::var("XMPP_PORT").map_or(5222, |p| p.parse().unwrap());
    config.connection.tls = TlsMode::Plain;
    config
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (alice, mut alice_events) = bus::Node::connect(config("alice@localhost")).await?;
    let (bob, mut bob_events) = bus::Node::connect(config("bob@localhost")).await?;
    alice.join("workers").await?;
    bob.set_status(Status {
        show: None,
        text: Some("ready".into()),
        payload: Some(Payload::Term(Term::tuple(vec![
            Term::atom("load"),
            Term::from(0),
        ]))),
    })?;
    bob.join("workers").await?;
    while let Some(event) = alice_events.next().await {
        if let Event::Joined { group, jid } = event {
            println!("{jid} joined {group}");
            break;
        }
    }
    for m in alice.members("workers") {
        println!("member {}: {:?}", m.jid, m.status.text);
    }

    alice.broadcast("workers", &(Atom::from("job"), 1))?;
    while let Some(event) = bob_events.next().await {
        if let Event::Broadcast { from, payload, .. } = event {
            let (_job, n): (Atom, i64) = payload.decode()?;
            println!("bob got job {n} from {from}");
            bob.leave("workers")?;
            break;
        }
    }
    while let Some(event) = alice_events.next().await {
        if let Event::Left { group, jid, reason } = event {
            println!("{jid} left {group}: {reason}");
            break;
        }
    }
    bob.close().await;
    alice.close().await;
    Ok(())
}
