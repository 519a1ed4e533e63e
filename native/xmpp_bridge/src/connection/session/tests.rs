//! The session without a server: negotiation and the online loop, each
//! against a scripted peer on the other end of an in-memory pipe
//! ([`Transport::Memory`]). What a real server does is covered by the
//! integration tests; these pin the protocol steps and the answers to
//! servers that lie or flood, one at a time, deterministically.

use super::super::transport::Transport;
use super::super::{
    Active, CloseSignal, Command, Config, ConnError, Event, Flow, Handler, TlsMode,
};
use super::conn::{Conn, EARLY_MAX};
use super::{validate, Durable};
use crate::xml::Element;
use base64::Engine;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How long a scripted step waits for the session before the test fails.
const STEP: Duration = Duration::from_secs(5);

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.com' version='1.0'>";

const PLAIN_ONLY: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>PLAIN</mechanism></mechanisms></stream:features>";

const BIND_AND_SM: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <sm xmlns='urn:xmpp:sm:3'/></stream:features>";

/// The server's end of the pipe, played by the test.
struct Peer {
    io: DuplexStream,
    /// Read from the session and not yet matched.
    seen: String,
}

impl Peer {
    /// Reads until the session has written `needle`; returns what came up
    /// to and including it (and keeps the rest for the next call).
    async fn expect(&mut self, needle: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = self.seen.find(needle) {
                let rest = self.seen.split_off(at + needle.len());
                return std::mem::replace(&mut self.seen, rest);
            }
            let n = timeout(STEP, self.io.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no {needle:?} from the session; it wrote {:?}", self.seen)
                })
                .expect("pipe read");
            assert!(
                n > 0,
                "the session closed the pipe; waited for {needle:?} after {:?}",
                self.seen
            );
            self.seen
                .push_str(std::str::from_utf8(&buf[..n]).expect("UTF-8 from the session"));
        }
    }

    async fn say(&mut self, xml: &str) {
        self.io.write_all(xml.as_bytes()).await.expect("pipe write");
    }

    /// Waits for the client's stream header, then answers with ours and
    /// `features`.
    async fn open(&mut self, features: &str) {
        self.expect("xml:lang='en'>").await;
        self.say(&format!("{HEADER}{features}")).await;
    }

    /// Plays a server's part up to and including SASL PLAIN success.
    async fn authenticate_plain(&mut self) {
        self.open(PLAIN_ONLY).await;
        let auth = self.expect("</auth>").await;
        let plain = B64.encode(b"\0alice\0secret");
        assert!(
            auth.contains(&format!("mechanism='PLAIN'>{plain}<")),
            "{auth}"
        );
        self.say("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .await;
        self.expect("xml:lang='en'>").await;
    }

    /// Answers the bind request with `jid`, after sending `before` (stanzas
    /// a server may push while the client binds).
    async fn bind(&mut self, jid: &str, before: &str) {
        let req = self.expect("</iq>").await;
        assert!(
            req.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"),
            "{req}"
        );
        let id = attr(&req, "id");
        self.say(&format!(
            "{before}<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>{jid}</jid></bind></iq>"
        ))
        .await;
    }
}

/// The value of attribute `name` in the first tag of `xml` written with
/// single quotes, as the session writes them.
fn attr(xml: &str, name: &str) -> String {
    let key = format!(" {name}='");
    let start = xml
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + key.len();
    xml[start..].split('\'').next().unwrap().to_owned()
}

/// What the session handed its handler, in order.
#[derive(Debug, PartialEq)]
enum Rec {
    Event(Event),
    Stanza(String),
    Answer(u64, String),
}

/// A handler that passes everything on to the test, which watches while
/// the session runs.
struct Recorder(mpsc::UnboundedSender<Rec>);

fn xml(el: &Element<'_>) -> String {
    String::from_utf8(el.to_bytes().expect("serialisable")).unwrap()
}

impl Handler for Recorder {
    fn event(&mut self, event: Event) {
        let _ = self.0.send(Rec::Event(event));
    }

    fn stanza(&mut self, el: Element<'_>, _ns: Option<&str>) {
        let _ = self.0.send(Rec::Stanza(xml(&el)));
    }

    fn iq_response(&mut self, token: u64, el: Element<'_>, _ns: Option<&str>) {
        let _ = self.0.send(Rec::Answer(token, xml(&el)));
    }
}

fn recorder() -> (Recorder, mpsc::UnboundedReceiver<Rec>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Recorder(tx), rx)
}

/// Everything the handler got so far.
fn drain(rx: &mut mpsc::UnboundedReceiver<Rec>) -> Vec<Rec> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Rec>) -> Rec {
    timeout(STEP, rx.recv())
        .await
        .expect("the handler got nothing")
        .expect("handler channel open")
}

fn client_config() -> Config {
    let mut cfg = Config::client("alice@example.com", "secret");
    cfg.host = Some("127.0.0.1".into());
    cfg.tls = TlsMode::Plain;
    cfg.connect_timeout = STEP;
    cfg
}

fn component_config() -> Config {
    let mut cfg = Config::component("bridge.example.com", "s3cret");
    cfg.host = Some("127.0.0.1".into());
    cfg
}

/// A connection of `cfg` whose socket is a pipe to the returned peer.
fn pipe(cfg: &Config) -> (Conn, Peer) {
    let account = validate(cfg).expect("valid config");
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let conn = Conn::new(Transport::Memory(ours), cfg, &account);
    (
        conn,
        Peer {
            io: theirs,
            seen: String::new(),
        },
    )
}

/// Runs the negotiation of `cfg` against `script`; returns its result, the
/// connection after it and what the handler got.
async fn negotiate_with<F, Fut>(
    cfg: &Config,
    d: &mut Durable,
    script: F,
) -> (Result<(String, bool), ConnError>, Conn, Vec<Rec>)
where
    F: FnOnce(Peer) -> Fut,
    Fut: std::future::Future<Output = Peer>,
{
    let account = validate(cfg).unwrap();
    let (mut conn, peer) = pipe(cfg);
    let (mut handler, mut rx) = recorder();
    let (result, _peer) = tokio::join!(
        async { timeout(STEP, conn.negotiate(cfg, &account, d, &mut handler)).await },
        script(peer)
    );
    let result = result.expect("negotiation hung");
    (result, conn, drain(&mut rx))
}

// ---------------------------------------------------------------------
// Negotiation

#[tokio::test]
async fn a_client_authenticates_binds_and_enables_stream_management() {
    let cfg = client_config();
    let mut d = Durable::default();
    let (result, mut conn, recs) = negotiate_with(&cfg, &mut d, |mut peer| async move {
        peer.authenticate_plain().await;
        peer.say(&format!("{HEADER}{BIND_AND_SM}")).await;
        // A message pushed while the client binds waits for online.
        peer.bind(
            "alice@example.com/r1",
            "<message from='bob@example.com'><body>early</body></message>",
        )
        .await;
        peer.expect("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            .await;
        // The last answer and a stanza in one packet: the stanza is read
        // ahead, and must not be lost.
        peer.say(
            "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>\
             <message from='bob@example.com'><body>ahead</body></message>",
        )
        .await;
        peer
    })
    .await;
    assert_eq!(result, Ok(("alice@example.com/r1".into(), false)));
    assert!(recs.is_empty(), "{recs:?}");
    assert!(conn.sm);
    assert_eq!(d.sm.resume_id.as_deref(), Some("sm-1"));
    assert_eq!(d.bound_jid.as_deref(), Some("alice@example.com/r1"));
    // The initial presence waits in the output buffer, counted for XEP-0198.
    assert_eq!(conn.out, b"<presence/>");
    assert!(d.sm.has_unacked());
    assert_eq!(conn.take_read_ahead(), None);
    let early: Vec<String> = conn.early.iter().map(xml).collect();
    assert_eq!(early.len(), 2, "{early:?}");
    assert!(
        early[0].contains("early") && early[1].contains("ahead"),
        "{early:?}"
    );
}

#[tokio::test]
async fn the_configured_resource_is_asked_for() {
    let mut cfg = client_config();
    cfg.resource = Some("desk & <chair".into());
    cfg.stream_management = false;
    cfg.initial_presence = false;
    let mut d = Durable::default();
    let (result, conn, _) = negotiate_with(&cfg, &mut d, |mut peer| async move {
        peer.authenticate_plain().await;
        peer.say(&format!("{HEADER}{BIND_AND_SM}")).await;
        let req = peer.expect("</iq>").await;
        assert!(
            req.contains("<resource>desk &amp; &lt;chair</resource>"),
            "{req}"
        );
        let id = attr(&req, "id");
        peer.say(&format!(
            "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>alice@example.com/desk</jid></bind></iq>"
        ))
        .await;
        peer
    })
    .await;
    assert_eq!(result, Ok(("alice@example.com/desk".into(), false)));
    // Stream management not asked for, no presence either.
    assert!(!conn.sm);
    assert!(conn.out.is_empty());
}

#[tokio::test]
async fn a_bind_error_names_its_condition() {
    let cfg = client_config();
    let mut d = Durable::default();
    let (result, _, _) = negotiate_with(&cfg, &mut d, |mut peer| async move {
        peer.authenticate_plain().await;
        peer.say(&format!("{HEADER}{BIND_AND_SM}")).await;
        let req = peer.expect("</iq>").await;
        let id = attr(&req, "id");
        peer.say(&format!(
            "<iq type='error' id='{id}'><error type='cancel'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ))
        .await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::Protocol("request bind1 failed: conflict".into()))
    );
}

#[tokio::test]
async fn refused_credentials_are_reported_with_the_condition() {
    let cfg = client_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.open(PLAIN_ONLY).await;
        peer.expect("</auth>").await;
        peer.say("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
            .await;
        peer
    })
    .await;
    assert_eq!(result, Err(ConnError::AuthFailed("not-authorized".into())));
}

#[tokio::test]
async fn a_stream_error_during_negotiation_ends_it_with_its_condition() {
    let cfg = client_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.open(
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such host</text></stream:error>",
        )
        .await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::StreamError(
            "host-unknown".into(),
            Some("no such host".into())
        ))
    );
}

#[tokio::test]
async fn a_dtd_after_the_header_is_refused_at_once() {
    let cfg = client_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        // The header and the DTD in one packet: the parse error comes with
        // the header's event and must not wait for more input.
        peer.open("<!DOCTYPE lol [<!ENTITY lol 'lol'>]>").await;
        peer
    })
    .await;
    match result {
        Err(ConnError::Protocol(detail)) => assert!(detail.contains("dtd"), "{detail}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_scram_iteration_bomb_is_refused_without_deriving_a_key() {
    let cfg = client_config();
    let started = std::time::Instant::now();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.open(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>",
        )
        .await;
        let auth = peer.expect("</auth>").await;
        assert!(auth.contains("mechanism='SCRAM-SHA-1'"), "{auth}");
        let first = auth.split('>').nth(1).unwrap().split('<').next().unwrap();
        let first = String::from_utf8(B64.decode(first).unwrap()).unwrap();
        let nonce = first.rsplit("r=").next().unwrap();
        let challenge = format!("r={nonce}srv,s=QSXCR+Q6sek8bf92,i=4294967295");
        peer.say(&format!(
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
            B64.encode(challenge)
        ))
        .await;
        peer
    })
    .await;
    match result {
        Err(ConnError::AuthFailed(detail)) => {
            assert!(detail.contains("4294967295"), "{detail}")
        }
        other => panic!("expected auth_failed, got {other:?}"),
    }
    // 2^32 PBKDF2 rounds take minutes; refusing takes nothing.
    assert!(started.elapsed() < STEP);
}

#[tokio::test]
async fn a_flood_before_online_is_refused() {
    let cfg = client_config();
    let (result, conn, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.authenticate_plain().await;
        peer.say(&format!("{HEADER}{BIND_AND_SM}")).await;
        peer.expect("</iq>").await;
        let flood = "<message><body>x</body></message>".repeat(EARLY_MAX + 1);
        peer.say(&flood).await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::Protocol(format!(
            "more than {EARLY_MAX} stanzas before the session was online"
        )))
    );
    assert_eq!(conn.early.len(), EARLY_MAX);
}

fn starttls_config() -> Config {
    let mut cfg = client_config();
    cfg.tls = TlsMode::StartTls;
    cfg
}

#[tokio::test]
async fn a_server_that_strips_starttls_is_refused() {
    let cfg = starttls_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        // As a man in the middle would: features without <starttls/>.
        peer.open(PLAIN_ONLY).await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::Tls("the server does not offer STARTTLS".into()))
    );
}

#[tokio::test]
async fn cleartext_after_proceed_is_refused_not_taken_into_the_tls_stream() {
    let cfg = starttls_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.open(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
             <required/></starttls></stream:features>",
        )
        .await;
        peer.expect("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        // The STARTTLS command injection: stanzas in the clear, in the
        // packet that says TLS starts now.
        peer.say(
            "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
             <iq type='set' id='evil'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::Tls(
            "the server sent data after <proceed/> where the TLS handshake was due".into()
        ))
    );
}

#[tokio::test]
async fn a_refused_starttls_names_the_answer() {
    let cfg = starttls_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.open(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
             </stream:features>",
        )
        .await;
        peer.expect("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        peer.say("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::Tls("STARTTLS refused with <failure/>".into()))
    );
}

/// A ledger as a connection leaves it: XEP-0198 session `sm-1`, stanzas 7
/// and 8 written and not confirmed, bound as alice@example.com/r1.
fn resumable() -> Durable {
    let mut d = Durable::default();
    d.sm.resume_id = Some("sm-1".into());
    d.sm.sent(7, b"<message id='m7'/>".to_vec());
    d.sm.sent(8, b"<message id='m8'/>".to_vec());
    for _ in 0..3 {
        d.sm.received();
    }
    d.bound_jid = Some("alice@example.com/r1".into());
    d
}

#[tokio::test]
async fn a_resumption_confirms_what_the_server_had_and_keeps_the_rest() {
    let cfg = client_config();
    let mut d = resumable();
    let (result, conn, recs) = negotiate_with(&cfg, &mut d, |mut peer| async move {
        peer.authenticate_plain().await;
        peer.say(&format!("{HEADER}{BIND_AND_SM}")).await;
        // Our h: the 3 stanzas handled before the cut.
        peer.expect("<resume xmlns='urn:xmpp:sm:3' h='3' previd='sm-1'/>")
            .await;
        peer.say("<resumed xmlns='urn:xmpp:sm:3' h='1' previd='sm-1'/>")
            .await;
        peer
    })
    .await;
    assert_eq!(result, Ok(("alice@example.com/r1".into(), true)));
    assert_eq!(recs, vec![Rec::Event(Event::Acked(vec![7]))]);
    assert!(conn.sm);
    let left: Vec<&[u8]> = d.sm.unacked_bytes().collect();
    assert_eq!(left, vec![&b"<message id='m8'/>"[..]]);
}

#[tokio::test]
async fn a_refused_resumption_reports_the_unconfirmed_and_binds_anew() {
    let cfg = client_config();
    let mut d = resumable();
    let (result, _, recs) = negotiate_with(&cfg, &mut d, |mut peer| async move {
        peer.authenticate_plain().await;
        peer.say(&format!("{HEADER}{BIND_AND_SM}")).await;
        peer.expect("previd='sm-1'/>").await;
        peer.say(
            "<failed xmlns='urn:xmpp:sm:3'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
        )
        .await;
        peer.bind("alice@example.com/r2", "").await;
        peer.expect("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            .await;
        peer.say("<enabled xmlns='urn:xmpp:sm:3'/>").await;
        peer
    })
    .await;
    assert_eq!(result, Ok(("alice@example.com/r2".into(), false)));
    assert_eq!(
        recs,
        vec![Rec::Event(Event::Failed(
            vec![7, 8],
            ConnError::Protocol("stream resumption refused by the server".into())
        ))]
    );
    // A new XEP-0198 session, not resumable (no resume='true' came back),
    // with counts from zero.
    assert_eq!(d.sm.resume_id, None);
    assert_eq!(d.sm.handled(), 0);
}

#[tokio::test]
async fn a_resumption_acking_more_than_was_sent_is_a_lie() {
    let cfg = client_config();
    let mut d = resumable();
    let (result, _, _) = negotiate_with(&cfg, &mut d, |mut peer| async move {
        peer.authenticate_plain().await;
        peer.say(&format!("{HEADER}{BIND_AND_SM}")).await;
        peer.expect("previd='sm-1'/>").await;
        peer.say("<resumed xmlns='urn:xmpp:sm:3' h='9' previd='sm-1'/>")
            .await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::Protocol(
            "server acknowledged 9 stanzas, only 2 were sent".into()
        ))
    );
}

fn component_header(id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' from='bridge.example.com' id='{id}'>"
    )
}

#[tokio::test]
async fn a_component_proves_its_secret_with_the_stream_id() {
    use sha1::{Digest, Sha1};
    let cfg = component_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        let header = peer.expect("to='bridge.example.com'>").await;
        assert!(
            header.contains("xmlns='jabber:component:accept'"),
            "{header}"
        );
        peer.say(&component_header("3BF96D75")).await;
        let hs = peer.expect("</handshake>").await;
        let want: String = Sha1::digest(b"3BF96D75s3cret")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hs, format!("<handshake>{want}</handshake>"));
        peer.say("<handshake/>").await;
        peer
    })
    .await;
    assert_eq!(result, Ok(("bridge.example.com".into(), false)));
}

#[tokio::test]
async fn a_component_with_a_wrong_secret_fails_authentication() {
    let cfg = component_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.expect("to='bridge.example.com'>").await;
        peer.say(&component_header("x1")).await;
        peer.expect("</handshake>").await;
        peer.say(
            "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             </stream:error>",
        )
        .await;
        peer
    })
    .await;
    assert_eq!(result, Err(ConnError::AuthFailed("not-authorized".into())));
}

#[tokio::test]
async fn a_component_stream_without_an_id_cannot_handshake() {
    let cfg = component_config();
    let (result, _, _) = negotiate_with(&cfg, &mut Durable::default(), |mut peer| async move {
        peer.expect("to='bridge.example.com'>").await;
        peer.say(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams'>",
        )
        .await;
        peer
    })
    .await;
    assert_eq!(
        result,
        Err(ConnError::Protocol(
            "the component stream header has no id".into()
        ))
    );
}

// ---------------------------------------------------------------------
// Online

/// What an online connection shares with its owner, for one test.
struct Owner {
    tx: mpsc::Sender<Command>,
    rx: mpsc::Receiver<Command>,
    close: CloseSignal,
    flow: Flow,
}

fn owner(active: Active) -> Owner {
    let (tx, rx) = mpsc::channel(100);
    Owner {
        tx,
        rx,
        close: CloseSignal::default(),
        flow: Flow::new(active),
    }
}

/// An online connection (XEP-0198 on when `sm`) and its peer, past
/// negotiation.
fn online(sm: bool) -> (Conn, Peer, Config) {
    let mut cfg = client_config();
    cfg.keepalive = None;
    cfg.batch_delay = Duration::ZERO;
    let (mut conn, peer) = pipe(&cfg);
    // As negotiation leaves it: the server's stream header parsed.
    let mut events = Vec::new();
    conn.parser.feed(HEADER.as_bytes(), &mut events).unwrap();
    conn.sm = sm;
    (conn, peer, cfg)
}

fn message(n: usize) -> String {
    format!("<message from='bob@example.com/x' id='m{n}'><body>{n}</body></message>")
}

#[tokio::test]
async fn stanzas_reach_the_handler_in_order_and_our_count_answers_r() {
    let (mut conn, mut peer, cfg) = online(true);
    let mut o = owner(Active::Unlimited);
    let (mut handler, mut recs) = recorder();
    let mut d = Durable::default();
    let served = conn.serve(&cfg, &mut o.rx, &o.close, &o.flow, &mut handler, &mut d);
    let script = async {
        let burst: String = (1..=3).map(message).collect();
        peer.say(&format!("{burst}<r xmlns='urn:xmpp:sm:3'/>"))
            .await;
        peer.expect("<a xmlns='urn:xmpp:sm:3' h='3'/>").await;
        for n in 1..=3 {
            match next(&mut recs).await {
                Rec::Stanza(s) => assert!(s.contains(&format!("<body>{n}</body>")), "{s}"),
                other => panic!("expected stanza m{n}, got {other:?}"),
            }
        }
        o.close.request();
        // The goodbye: our last ack request, our count, our stream end.
        peer.expect("</stream:stream>").await;
        peer.say("</stream:stream>").await;
    };
    let (result, ()) = tokio::join!(timeout(STEP, served), script);
    assert_eq!(result.expect("serve hung"), Ok(()));
    assert_eq!(d.sm.handled(), 3);
    // A closed session is not resumed.
    assert_eq!(d.sm.resume_id, None);
}

#[tokio::test]
async fn out_of_credit_the_session_stops_reading_until_granted_more() {
    let (mut conn, mut peer, cfg) = online(false);
    let mut o = owner(Active::More(2));
    let (mut handler, mut recs) = recorder();
    let mut d = Durable::default();
    let served = conn.serve(&cfg, &mut o.rx, &o.close, &o.flow, &mut handler, &mut d);
    let script = async {
        let five: String = (1..=5).map(message).collect();
        peer.say(&five).await;
        assert!(matches!(next(&mut recs).await, Rec::Stanza(s) if s.contains("id='m1'")));
        assert!(matches!(next(&mut recs).await, Rec::Stanza(s) if s.contains("id='m2'")));
        assert_eq!(next(&mut recs).await, Rec::Event(Event::Passive));
        // Passive: the rest stays in the pipe, which fills (64 KB) and
        // then takes no more: the server is pushed back.
        let big = message(0).repeat(10_000);
        let pushed = timeout(Duration::from_millis(300), peer.say(&big)).await;
        assert!(pushed.is_err(), "a passive session kept reading");
        assert!(drain(&mut recs).is_empty());
        // More credit: the three held back come, in order, then the flood.
        o.flow.set(Active::More(3));
        for n in 3..=5 {
            match next(&mut recs).await {
                Rec::Stanza(s) => assert!(s.contains(&format!("id='m{n}'")), "{s}"),
                other => panic!("expected stanza m{n}, got {other:?}"),
            }
        }
        assert_eq!(next(&mut recs).await, Rec::Event(Event::Passive));
        o.close.request();
        // Our stream end, then the pipe closes: no need to wait CLOSE_WAIT.
        peer.expect("</stream:stream>").await;
        peer.io.shutdown().await.unwrap();
    };
    let (result, ()) = tokio::join!(timeout(STEP, served), script);
    assert_eq!(result.expect("serve hung"), Ok(()));
}

#[tokio::test]
async fn sent_stanzas_are_acked_by_their_sequence_numbers() {
    let (mut conn, mut peer, cfg) = online(true);
    let mut o = owner(Active::Unlimited);
    let (mut handler, mut recs) = recorder();
    let mut d = Durable::default();
    let served = conn.serve(&cfg, &mut o.rx, &o.close, &o.flow, &mut handler, &mut d);
    let script = async {
        for seq in [1, 2] {
            let bytes = format!("<message to='bob@example.com' id='s{seq}'/>").into_bytes();
            o.tx.send(Command::Send { seq, bytes }).await.unwrap();
        }
        peer.expect("id='s2'/>").await;
        // Asked for an ack once the owner paused.
        peer.expect("<r xmlns='urn:xmpp:sm:3'/>").await;
        peer.say("<a xmlns='urn:xmpp:sm:3' h='2'/>").await;
        assert_eq!(next(&mut recs).await, Rec::Event(Event::Acked(vec![1, 2])));
        // A server that confirms what was never sent is lying.
        peer.say("<a xmlns='urn:xmpp:sm:3' h='5'/>").await;
    };
    let (result, ()) = tokio::join!(timeout(STEP, served), script);
    assert_eq!(
        result.expect("serve hung"),
        Err(ConnError::Protocol(
            "server acknowledged 3 stanzas, only 0 were sent".into()
        ))
    );
}

#[tokio::test]
async fn an_iq_answer_goes_to_its_waiter_and_pings_are_answered_for_us() {
    let (mut conn, mut peer, cfg) = online(false);
    let mut o = owner(Active::Unlimited);
    let (mut handler, mut recs) = recorder();
    let mut d = Durable::default();
    let served = conn.serve(&cfg, &mut o.rx, &o.close, &o.flow, &mut handler, &mut d);
    let script = async {
        o.tx.send(Command::Iq {
            seq: 1,
            token: 77,
            id: "q1".into(),
            bytes: b"<iq type='get' id='q1'><query xmlns='jabber:iq:roster'/></iq>".to_vec(),
        })
        .await
        .unwrap();
        peer.expect("</iq>").await;
        peer.say(
            "<iq type='get' id='ping1' from='example.com'><ping xmlns='urn:xmpp:ping'/></iq>\
             <iq type='result' id='q1'/>",
        )
        .await;
        peer.expect("<iq type='result' id='ping1' to='example.com'/>")
            .await;
        match next(&mut recs).await {
            Rec::Answer(77, s) => assert!(s.contains("id='q1'") && s.contains("result"), "{s}"),
            other => panic!("expected the answer to token 77, got {other:?}"),
        }
        // A stream end from the server ends the connection.
        peer.say("</stream:stream>").await;
    };
    let (result, ()) = tokio::join!(timeout(STEP, served), script);
    assert_eq!(result.expect("serve hung"), Err(ConnError::ClosedByServer));
    // The ping went to nobody: the answer was the only delivery.
    assert!(drain(&mut recs).is_empty());
}

#[tokio::test]
async fn a_stream_error_while_online_ends_the_connection() {
    let (mut conn, mut peer, cfg) = online(false);
    let mut o = owner(Active::Unlimited);
    let (mut handler, _recs) = recorder();
    let mut d = Durable::default();
    let served = conn.serve(&cfg, &mut o.rx, &o.close, &o.flow, &mut handler, &mut d);
    let script = peer.say(
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    );
    let (result, ()) = tokio::join!(timeout(STEP, served), script);
    assert_eq!(
        result.expect("serve hung"),
        Err(ConnError::StreamError("conflict".into(), None))
    );
}

#[tokio::test]
async fn a_close_ends_in_time_while_the_server_floods_whitespace() {
    let (mut conn, mut peer, cfg) = online(true);
    let mut o = owner(Active::Unlimited);
    let (mut handler, _recs) = recorder();
    let mut d = Durable::default();
    let started = std::time::Instant::now();
    let close = &o.close;
    let served = async {
        let r = conn
            .serve(&cfg, &mut o.rx, close, &o.flow, &mut handler, &mut d)
            .await;
        (r, started.elapsed())
    };
    let script = async {
        close.request();
        // Never answers our stream end, never stops sending.
        let spaces = [b' '; 4096];
        while peer.io.write_all(&spaces).await.is_ok() {
            if started.elapsed() > STEP * 2 {
                break;
            }
        }
    };
    let ((result, took), ()) = tokio::join!(served, script);
    assert_eq!(result, Ok(()));
    // The goodbye is bounded by CLOSE_WAIT (2 s), not by the server.
    assert!(took < STEP, "close took {took:?}");
}
