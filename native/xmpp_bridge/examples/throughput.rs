//! Throughput of the session core alone, without the BEAM: alice sends N
//! chat messages to bob's full JID as fast as the queue takes them; bob's
//! handler counts them (and checks their order). Prints msg/s, the time of
//! the last ack and the process's CPU time. Used to tell the cost of the
//! session core from the cost of the NIF and the BEAM in `make bench-conn`.
//!
//! `cargo run --release -p xmpp_bridge --example throughput -- HOST PORT N ALICE_JID ALICE_PW BOB_JID BOB_PW [rounds]`
//! (plaintext c2s: HOST must be a loopback address)
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use xmpp_bridge::connection::{self, Config, Event, Handler, QueueError, TlsMode};
use xmpp_bridge::xml::Element;

enum Note {
    Online(String),
    Acked(usize),
    Got(u64),
    Closed,
}

/// Reports events and the number in each incoming body.
struct Report(mpsc::UnboundedSender<Note>);

impl Handler for Report {
    fn event(&mut self, event: Event) {
        let note = match event {
            Event::Online { jid, .. } => Note::Online(jid),
            Event::Acked(seqs) => Note::Acked(seqs.len()),
            Event::Closed(_) => Note::Closed,
            _ => return,
        };
        let _ = self.0.send(note);
    }
    fn stanza(&mut self, el: Element<'_>, _ns: Option<&str>) {
        if el.name != "message" {
            return;
        }
        let n = el
            .children
            .iter()
            .find_map(|c| match c {
                xmpp_bridge::xml::Node::Element(b) if b.name == "body" => Some(b.text()),
                _ => None,
            })
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(n) = n {
            let _ = self.0.send(Note::Got(n));
        }
    }
    fn iq_response(&mut self, _token: u64, _el: Element<'_>, _ns: Option<&str>) {}
}

fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks * 10.0
}

fn config(jid: &str, pw: &str, host: &str, port: u16) -> Config {
    let mut cfg = Config::client(jid, pw);
    cfg.host = Some(host.to_owned());
    cfg.port = port;
    cfg.tls = TlsMode::Plain;
    cfg.queue_limit = 10_000;
    cfg
}

async fn online(rx: &mut mpsc::UnboundedReceiver<Note>) -> String {
    loop {
        match rx.recv().await {
            Some(Note::Online(jid)) => return jid,
            Some(Note::Closed) | None => panic!("session closed before it was online"),
            Some(_) => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 8 {
        eprintln!("usage: throughput HOST PORT N ALICE_JID ALICE_PW BOB_JID BOB_PW [rounds]");
        std::process::exit(2);
    }
    let (host, port) = (&a[1], a[2].parse::<u16>().expect("port"));
    let n: u64 = a[3].parse().expect("N");
    let rounds: u32 = a.get(8).and_then(|r| r.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Handle::current();
    let (atx, mut arx) = mpsc::unbounded_channel();
    let (btx, mut brx) = mpsc::unbounded_channel();
    let alice = connection::spawn(&rt, config(&a[4], &a[5], host, port), Report(atx));
    let bob = connection::spawn(&rt, config(&a[6], &a[7], host, port), Report(btx));
    online(&mut arx).await;
    let bob_jid = online(&mut brx).await;
    let mut next = 1u64;
    for round in 0..=rounds {
        let cpu0 = cpu_ms();
        let t0 = Instant::now();
        let (first, last) = (next, next + n - 1);
        let (mut acked, mut got, mut in_order) = (0usize, 0u64, true);
        let mut acked_at = Duration::ZERO;
        let mut expect = first;
        while next <= last {
            let body = format!(
                "<message type='chat' id='m{next}' to='{bob_jid}'><body>{next}</body></message>"
            );
            match alice.send(body.into_bytes()) {
                Ok(_) => next += 1,
                Err(QueueError::Full) => {
                    // Wait for the next ack, as the BEAM side does.
                    if let Some(Note::Acked(k)) = arx.recv().await {
                        acked += k;
                    }
                }
                Err(QueueError::Closed) => panic!("alice's session closed"),
            }
        }
        while got < n || acked < n as usize {
            tokio::select! {
                Some(note) = brx.recv() => if let Note::Got(k) = note {
                    in_order &= k == expect;
                    expect = k + 1;
                    got += 1;
                },
                Some(note) = arx.recv() => if let Note::Acked(k) = note {
                    acked += k;
                    if acked >= n as usize {
                        acked_at = t0.elapsed();
                    }
                },
            }
        }
        let took = t0.elapsed();
        let label = if round == 0 { "warm-up" } else { "round" };
        println!(
            "{label} {round}: {:.0} msg/s ({got}/{n} received, in order {in_order}, all acked after {:.3} s, CPU {:.0} ms)",
            n as f64 / took.as_secs_f64(),
            acked_at.as_secs_f64(),
            cpu_ms() - cpu0
        );
    }
    // End both streams cleanly, or the server keeps them waiting for a
    // resumption (XEP-0198) long after this program is gone.
    alice.close();
    bob.close();
    for rx in [&mut arx, &mut brx] {
        while let Some(note) = rx.recv().await {
            if matches!(note, Note::Closed) {
                break;
            }
        }
    }
}
