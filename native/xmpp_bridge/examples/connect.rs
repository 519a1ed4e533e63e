//! Open a client session and print what happens:
//! `cargo run -p xmpp_bridge --example connect -- JID PASSWORD HOST PORT [plain|starttls|direct] [CA_FILE]`.
use std::time::Duration;
use xmpp_bridge::connection::{self, Config, Event, Handler, TlsMode};
use xmpp_bridge::xml::Element;

struct Print(tokio::sync::mpsc::UnboundedSender<()>);

impl Handler for Print {
    fn event(&mut self, event: Event) {
        println!("event: {event:?}");
        if matches!(event, Event::Online { .. } | Event::Closed(_)) {
            let _ = self.0.send(());
        }
    }
    fn stanza(&mut self, el: Element<'_>, _ns: Option<&str>) {
        println!(
            "stanza: {}",
            String::from_utf8_lossy(&el.to_bytes().unwrap_or_default())
        );
    }
    fn iq_response(&mut self, token: u64, el: Element<'_>, _ns: Option<&str>) {
        println!(
            "answer to {token}: {}",
            String::from_utf8_lossy(&el.to_bytes().unwrap_or_default())
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: connect JID PASSWORD HOST PORT [plain|starttls|direct] [CA_FILE]");
        std::process::exit(2);
    }
    let mut cfg = Config::client(&args[1], &args[2]);
    cfg.host = Some(args[3].clone());
    cfg.port = args[4].parse().expect("port");
    cfg.tls = match args.get(5).map(String::as_str) {
        Some("plain") => TlsMode::Plain,
        Some("direct") => TlsMode::Direct,
        _ => TlsMode::StartTls,
    };
    cfg.ca_file = args.get(6).cloned();
    cfg.reconnect.enabled = false;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = connection::spawn(&tokio::runtime::Handle::current(), cfg, Print(tx));
    rx.recv().await;
    let ping = b"<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>".to_vec();
    let _ = handle.iq(1, "ping1".into(), ping);
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.close();
    rx.recv().await;
}
