//! The README's name example in Rust: a name host (a component for
//! bridge.localhost) registers worker-7 for a task; alice's node sends it
//! a job, calls it and monitors it, and sees DOWN when the task lets go.
//! Run against `mix xmpp_test_server --account alice:secret
//! --component-secret secret` with XMPP_PORT and XMPP_COMPONENT_PORT set.
use std::time::Duration;
use xmpp_bridge::bus::{self, Event, ExitKind, Failure, NameEvent};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::Atom;

fn local(mut config: bus::Config, port_var: &str, default: u16) -> bus::Config {
    config.connection.host = Some("127.0.0.1".into());
    config.connection.port = std::env::var(port_var).map_or(default, |p| p.parse().unwrap());
    config.connection.tls = TlsMode::Plain;
    config
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host_config = bus::Config::component("bridge.localhost", "secret");
    let (host, _host_events) =
        bus::Node::connect(local(host_config, "XMPP_COMPONENT_PORT", 5347)).await?;
    let alice_config = bus::Config::new("alice@localhost", "secret");
    let (alice, mut events) = bus::Node::connect(local(alice_config, "XMPP_PORT", 5222)).await?;

    // A task holds the name: worker-7@bridge.localhost/bus is its address.
    let mut worker = host.register("worker-7")?;
    let jid = worker.jid().to_owned();
    let task = tokio::spawn(async move {
        while let Some(event) = worker.recv().await {
            match event {
                NameEvent::Message { from, payload } => {
                    let (_job, n): (Atom, i64) = payload.decode().unwrap();
                    println!("worker-7 got job {n} from {from}");
                }
                NameEvent::Call(request) if request.method() == "add" => {
                    let (a, b): (i64, i64) = request.args().decode().unwrap();
                    request.reply(&(a + b));
                }
                NameEvent::Call(request) if request.method() == "stop" => {
                    request.reply(&Atom::from("ok"));
                    worker.release(ExitKind::Shutdown);
                    return;
                }
                NameEvent::Call(request) => {
                    request.fail(Failure::NoMethod);
                }
            }
        }
    });

    let five = Duration::from_secs(5);
    let watch = alice.monitor(&jid)?;
    alice.send(&jid, &(Atom::from("job"), 1), bus::SendOptions::default())?;
    let sum: i64 = alice.call(&jid, "add", &(1, 2), five).await?;
    println!("1 + 2 = {sum}");
    let _: Atom = alice.call(&jid, "stop", &(), five).await?;
    while let Some(event) = events.next().await {
        if let Event::Down {
            monitor, reason, ..
        } = event
        {
            if monitor == watch {
                println!("DOWN {jid}: {reason}");
                break;
            }
        }
    }
    task.await?;
    alice.close().await;
    host.close().await;
    Ok(())
}
