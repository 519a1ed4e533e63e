//! A Rust program on the same XMPP server as a BEAM process: it logs in
//! and answers every chat message with the same text upper-cased, until it
//! is sent "bye".
//! `cargo run -p xmpp_bridge --example echo -- JID PASSWORD HOST PORT [plain|starttls] [CA_FILE]`
use tokio::sync::mpsc;
use xmpp_bridge::connection::{self, Config, Event, Handler, TlsMode};
use xmpp_bridge::stanza::{self, Message, MessageType, Stanza};
use xmpp_bridge::xml::Element;

/// Forwards what the session produces to the main task, as owned values.
struct Forward(mpsc::UnboundedSender<Either>);

enum Either {
    Event(Event),
    Stanza(Box<Stanza<'static>>),
}

impl Handler for Forward {
    fn event(&mut self, event: Event) {
        let _ = self.0.send(Either::Event(event));
    }
    fn stanza(&mut self, el: Element<'_>, ns: Option<&str>) {
        // Decoding borrows the read buffer; keep an owned copy to hand over.
        if let Ok(s) = stanza::decode(el.into_owned(), ns) {
            let _ = self.0.send(Either::Stanza(Box::new(s)));
        }
    }
    fn iq_response(&mut self, _token: u64, _el: Element<'_>, _ns: Option<&str>) {}
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: echo JID PASSWORD HOST PORT [plain|starttls] [CA_FILE]");
        std::process::exit(2);
    }
    let mut cfg = Config::client(&args[1], &args[2]);
    cfg.host = Some(args[3].clone());
    cfg.port = args[4].parse().expect("a port number");
    cfg.tls = if args.get(5).map(String::as_str) == Some("plain") {
        TlsMode::Plain
    } else {
        TlsMode::StartTls
    };
    cfg.ca_file = args.get(6).cloned();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let session = connection::spawn(&tokio::runtime::Handle::current(), cfg, Forward(tx));
    while let Some(item) = rx.recv().await {
        match item {
            Either::Event(Event::Online { jid, .. }) => println!("rust node online as {jid}"),
            Either::Event(Event::Closed(reason)) => {
                println!("rust node closed: {reason:?}");
                break;
            }
            Either::Event(_) => {}
            Either::Stanza(s) => {
                let Stanza::Message(m) = *s else { continue };
                if m.type_ != MessageType::Chat {
                    continue;
                }
                let Some((_, body)) = m.bodies.first() else {
                    continue;
                };
                println!(
                    "rust node got {body:?} from {}",
                    m.from.as_deref().unwrap_or("?")
                );
                let reply = Stanza::Message(Message {
                    type_: MessageType::Chat,
                    to: m.from.clone(),
                    bodies: vec![(None, body.to_uppercase().into())],
                    ..Message::default()
                });
                if let Ok(bytes) = reply.to_stream_bytes() {
                    let _ = session.send(bytes);
                }
                if body == "bye" {
                    session.close();
                }
            }
        }
    }
}
