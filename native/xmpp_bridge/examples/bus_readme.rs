//! The README's bus example in Rust: bob serves `add`; alice monitors him,
//! sends him a term, calls `add` and sees him go down. Run against `mix xmpp_test_server
//! --account alice:secret --account bob:secret` with XMPP_PORT set to its
//! plaintext c2s port.
use std::time::Duration;
use xmpp_bridge::bus::{self, Args, Delivery, Event, SendOptions};
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
    let (bob, mut bob_events) = bus::Node::connect(config("bob@localhost")).await?;
    bob.serve("add", |args: Args| async move {
        let (a, b): (i64, i64) = args.decode().map_err(|e| e.to_string())?;
        Ok(Term::from(a + b))
    });
    let (alice, mut alice_events) = bus::Node::connect(config("alice@localhost")).await?;
    let watch = alice.monitor("bob@localhost")?;

    let hello = Term::tuple(vec![Term::atom("hello"), Term::from("from Rust")]);
    let confirmed = SendOptions {
        delivery: Delivery::Confirmed,
        deadline: None,
    };
    let sent = alice.send_term("bob@localhost", hello, confirmed)?;
    while let Some(event) = bob_events.next().await {
        if let Event::Message { from, payload } = event {
            // Any serde type: {:hello, "from Rust"} is an (atom, string) pair.
            let (_hello, text): (Atom, String) = payload.decode()?;
            println!("bob got {text:?} from {from}");
            break;
        }
    }
    while let Some(event) = alice_events.next().await {
        if matches!(event, Event::Delivered(r) if r == sent) {
            println!("alice: delivered");
            break;
        }
    }

    let sum: i64 = alice
        .call("bob@localhost", "add", &(1, 2), Duration::from_secs(5))
        .await?;
    println!("1 + 2 = {sum}");

    bob.close().await;
    while let Some(event) = alice_events.next().await {
        if let Event::Down {
            monitor,
            jid,
            reason,
        } = event
        {
            if monitor == watch {
                println!("{jid} is down: {reason}");
                break;
            }
        }
    }
    alice.close().await;
    Ok(())
}
