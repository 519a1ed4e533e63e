//! The session task: connect, negotiate, serve, reconnect.

use super::batching::Batching;
use super::sasl::{self, Mechanism, Scram};
use super::transport::Transport;
use super::{CloseSignal, Command, Config, ConnError, Event, Handler, Mode, TlsMode};
use crate::stream::{Event as XEvent, StreamParser};
use crate::xml::{close_tag, escape_text, write_attr, Element, Limits};
use base64::Engine;
use rand::Rng;
use sha1::{Digest, Sha1};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

const NS_CLIENT: &str = "jabber:client";
const NS_COMPONENT: &str = "jabber:component:accept";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
const NS_SM: &str = "urn:xmpp:sm:3";
const NS_PING: &str = "urn:xmpp:ping";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// Features answered by disco#info on our behalf.
const FEATURES: &[&str] = &[
    NS_DISCO_INFO,
    NS_PING,
    "urn:xmpp:receipts",
    "urn:xmpp:json:0",
    crate::ns::TERM,
];

/// How many commands one wake-up takes from the queue before writing.
const BATCH: usize = 256;

/// Stanzas sent before an ack is requested at once (XEP-0198 `<r/>`)...
const ACK_EVERY: usize = 64;
/// ...or how long the owner may pause before the request goes anyway.
const ACK_DELAY: Duration = Duration::from_millis(5);
/// One request is outstanding at a time (its answer covers everything
/// written before it); when it stays unanswered this long, the next one
/// goes anyway.
const ACK_ANSWER_WAIT: Duration = Duration::from_secs(1);

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Bytes waiting to be written above which no more commands are taken.
const MAX_PENDING_OUT: usize = 1024 * 1024;

/// State that outlives one connection.
#[derive(Default)]
struct Durable {
    /// Stanzas taken from the queue but not yet written.
    outbox: VecDeque<(u64, Vec<u8>)>,
    /// Written, waiting for a XEP-0198 ack.
    unacked: VecDeque<(u64, Vec<u8>)>,
    /// The server's last `h`.
    acked_h: u32,
    /// Stanzas we handled in this XEP-0198 session.
    h_in: u32,
    /// XEP-0198 session we may resume.
    resume_id: Option<String>,
    /// IQ id -> token of the waiter.
    waiters: HashMap<String, u64>,
    bound_jid: Option<String>,
    /// IQ ids whose waiter gave up: a late answer is dropped, not handed to
    /// the owner as if it were a request. The most recent ones only.
    cancelled: VecDeque<String>,
}

/// How many cancelled IQ ids are remembered.
const CANCELLED_KEPT: usize = 1024;

impl Durable {
    fn cancel(&mut self, id: String) {
        if self.cancelled.len() == CANCELLED_KEPT {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(id);
    }

    /// True (and forgotten) when `id` is the id of a cancelled IQ.
    fn was_cancelled(&mut self, id: &str) -> bool {
        match self.cancelled.iter().position(|c| c == id) {
            Some(i) => {
                self.cancelled.remove(i);
                true
            }
            None => false,
        }
    }

    /// Sequence 0 is what the session sends by itself (the initial
    /// presence, answers to pings and disco#info): counted for XEP-0198,
    /// not reported to the owner.
    fn take_unacked(&mut self) -> Vec<u64> {
        self.unacked
            .drain(..)
            .map(|(seq, _)| seq)
            .filter(|s| *s != 0)
            .collect()
    }

    /// Confirms the stanzas up to the server's count `h`.
    fn ack(&mut self, h: u32) -> Result<Vec<u64>, ConnError> {
        let n = h.wrapping_sub(self.acked_h) as usize;
        if n > self.unacked.len() {
            return Err(ConnError::Protocol(format!(
                "server acknowledged {n} stanzas, only {} were sent",
                self.unacked.len()
            )));
        }
        self.acked_h = h;
        Ok(self
            .unacked
            .drain(..n)
            .map(|(seq, _)| seq)
            .filter(|s| *s != 0)
            .collect())
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

struct Account {
    node: Option<String>,
    domain: String,
    resource: Option<String>,
    host: String,
}

fn validate(cfg: &Config) -> Result<Account, ConnError> {
    let j = crate::jid::parse(&cfg.jid)
        .map_err(|_| ConnError::Config(format!("invalid jid {:?}", cfg.jid)))?;
    match cfg.mode {
        Mode::Client if j.node.is_none() => {
            return Err(ConnError::Config(format!(
                "jid {:?} has no user part",
                cfg.jid
            )));
        }
        Mode::Component if j.node.is_some() || j.resource.is_some() => {
            return Err(ConnError::Config(format!(
                "a component jid is a bare domain, not {:?}",
                cfg.jid
            )));
        }
        _ => {}
    }
    let host = cfg.host.clone().unwrap_or_else(|| j.domain.clone());
    if cfg.tls == TlsMode::Plain && !is_loopback(&host) {
        return Err(ConnError::Config(format!(
            "plaintext is only allowed to a loopback address, not {host:?}"
        )));
    }
    if cfg.queue_limit == 0 {
        return Err(ConnError::Config("queue_limit must be positive".into()));
    }
    Ok(Account {
        node: j.node,
        domain: j.domain,
        resource: cfg.resource.clone().or(j.resource),
        host,
    })
}

fn backoff(cfg: &super::Reconnect, attempt: u32) -> Duration {
    let exp = cfg
        .initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let base = exp.min(cfg.max);
    // Jitter: 50% to 150%, so that many sessions cut off together do not
    // come back in lockstep.
    base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}

/// Runs a session until it is closed or gives up.
pub async fn run<H: Handler>(
    cfg: Config,
    mut rx: mpsc::Receiver<Command>,
    close: std::sync::Arc<CloseSignal>,
    mut handler: H,
) {
    let account = match validate(&cfg) {
        Ok(a) => a,
        Err(e) => {
            rx.close();
            handler.event(Event::Closed(Some(e)));
            return;
        }
    };
    let mut d = Durable::default();
    let mut attempt = 0u32;
    let reason = loop {
        let mut online = false;
        let result = connect_and_serve(
            &cfg,
            &account,
            &mut rx,
            &close,
            &mut handler,
            &mut d,
            &mut online,
        )
        .await;
        if online {
            attempt = 0;
        }
        let e = match result {
            Ok(()) => break None,
            Err(e) => e,
        };
        handler.event(Event::Disconnected(e.clone()));
        if d.resume_id.is_none() && !d.unacked.is_empty() {
            handler.event(Event::Failed(d.take_unacked(), e.clone()));
        }
        attempt += 1;
        let give_up = e.is_fatal()
            || !cfg.reconnect.enabled
            || cfg.reconnect.max_attempts.is_some_and(|max| attempt > max);
        if give_up {
            break Some(e);
        }
        let delay = backoff(&cfg.reconnect, attempt);
        handler.event(Event::Reconnecting { attempt, delay });
        if wait(delay, &close).await {
            break None;
        }
    };
    finish(rx, d, &mut handler, reason);
}

/// Sleeps through a backoff; true when asked to close. Commands stay in
/// the queue meanwhile, so `queue_limit` bounds what waits for the next
/// connection.
async fn wait(delay: Duration, close: &CloseSignal) -> bool {
    tokio::select! {
        () = sleep(delay) => false,
        () = close.requested() => true,
    }
}

/// Puts a command aside for the next connection.
fn queue(cmd: Command, d: &mut Durable) {
    match cmd {
        Command::Send { seq, bytes } => d.outbox.push_back((seq, bytes)),
        Command::Iq {
            seq,
            token,
            id,
            bytes,
        } => {
            d.waiters.insert(id, token);
            d.outbox.push_back((seq, bytes));
        }
        Command::CancelIq { id } => {
            d.waiters.remove(&id);
            d.cancel(id);
        }
    }
}

/// Reports everything still pending as failed, then the end.
fn finish<H: Handler>(
    mut rx: mpsc::Receiver<Command>,
    mut d: Durable,
    handler: &mut H,
    reason: Option<ConnError>,
) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        queue(cmd, &mut d);
    }
    let why = reason.clone().unwrap_or(ConnError::Protocol(
        "session closed before confirmation".into(),
    ));
    let mut failed = d.take_unacked();
    failed.extend(d.outbox.drain(..).map(|(seq, _)| seq));
    if !failed.is_empty() {
        handler.event(Event::Failed(failed, why.clone()));
    }
    let tokens: Vec<u64> = d.waiters.drain().map(|(_, t)| t).collect();
    if !tokens.is_empty() {
        handler.event(Event::IqFailed(tokens, why));
    }
    handler.event(Event::Closed(reason));
}

async fn connect_and_serve<H: Handler>(
    cfg: &Config,
    account: &Account,
    rx: &mut mpsc::Receiver<Command>,
    close: &CloseSignal,
    handler: &mut H,
    d: &mut Durable,
    online: &mut bool,
) -> Result<(), ConnError> {
    // Connecting and negotiating end at once on a close (the owner died,
    // say); sends wait in the queue, which `queue_limit` bounds.
    let opened = tokio::select! {
        r = timeout(cfg.connect_timeout, Conn::open(cfg, account)) => Some(r),
        () = close.requested() => None,
    };
    let mut conn = match opened {
        Some(r) => r.map_err(|_| ConnError::Timeout("connect"))??,
        None => return Ok(()),
    };
    let negotiated = tokio::select! {
        r = timeout(cfg.connect_timeout, conn.negotiate(cfg, account, d, handler)) => Some(r),
        () = close.requested() => None,
    };
    let (jid, resumed) = match negotiated {
        Some(r) => r.map_err(|_| ConnError::Timeout("stream negotiation"))??,
        None => return Ok(()),
    };
    *online = true;
    handler.event(Event::Online { jid, resumed });
    // Resent after a resumption: what the server had not acknowledged.
    if resumed {
        for (_, bytes) in &d.unacked {
            conn.out.extend_from_slice(bytes);
        }
        conn.unrequested = d.unacked.len();
    }
    let early = std::mem::take(&mut conn.early)
        .into_iter()
        .try_for_each(|el| conn.on_element(el, cfg, d, handler));
    handler.flush();
    early?;
    while let Some((seq, bytes)) = d.outbox.pop_front() {
        conn.write_stanza(seq, bytes, d);
    }
    conn.request_ack();
    conn.serve(cfg, rx, close, handler, d).await
}

struct Conn {
    io: Transport,
    parser: StreamParser,
    rbuf: Vec<u8>,
    pending: VecDeque<XEvent<'static>>,
    /// Stanzas that arrived during negotiation, delivered once online.
    early: Vec<Element<'static>>,
    ns: &'static str,
    domain: String,
    jid: String,
    stream_id: Option<String>,
    sm: bool,
    unrequested: usize,
    /// When our last `<r/>` went out, until an `<a/>` answers it.
    ack_asked: Option<Instant>,
    out: Vec<u8>,
    last_rx: Instant,
    probe_sent: Option<Instant>,
    probe_ids: Vec<String>,
    next_id: u64,
}

fn child<'e, 'a>(el: &'e Element<'a>, name: &str, ns: &str) -> Option<&'e Element<'a>> {
    el.elements()
        .find(|c| c.name == name && c.attr("xmlns") == Some(ns))
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn id(prefix: &str, n: &mut u64) -> String {
    *n += 1;
    format!("{prefix}{n}")
}

impl Conn {
    async fn open(cfg: &Config, account: &Account) -> Result<Conn, ConnError> {
        let mut candidates: Vec<(String, u16)> = Vec::new();
        if cfg.host.is_none() && cfg.mode == Mode::Client {
            let service = if cfg.tls == TlsMode::Direct {
                "_xmpps-client._tcp"
            } else {
                "_xmpp-client._tcp"
            };
            let name = format!("{service}.{}", account.domain);
            for t in super::srv::lookup(&name, cfg.dns_server).await {
                candidates.push((t.host, t.port));
            }
        }
        candidates.push((account.host.clone(), cfg.port));
        let mut last = None;
        let mut tcp = None;
        for (host, port) in &candidates {
            // Plaintext goes to a loopback address only, whatever DNS says.
            if cfg.tls == TlsMode::Plain && !is_loopback(host) {
                last = Some(ConnError::Config(format!(
                    "SRV target {host} is not a loopback address"
                )));
                continue;
            }
            match TcpStream::connect((host.as_str(), *port)).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(ConnError::Connect(format!("{host}:{port}: {e}"))),
            }
        }
        let tcp = match tcp {
            Some(t) => t,
            None => {
                return Err(last.unwrap_or_else(|| ConnError::Connect("no address to try".into())))
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut io = Transport::Plain(tcp);
        if cfg.tls == TlsMode::Direct {
            let name = cfg.server_name.as_deref().unwrap_or(&account.domain);
            io = io.upgrade(name, cfg.ca_file.as_deref()).await?;
        }
        Ok(Conn {
            io,
            parser: StreamParser::new(Limits::new(
                cfg.max_stanza_bytes,
                crate::xml::DEFAULT_MAX_DEPTH,
            )),
            // Small buffers that grow with use: an idle session costs a few KB
            // (the stream parser keeps partial stanzas in its own buffer).
            rbuf: vec![0; READ_CHUNK],
            pending: VecDeque::new(),
            early: Vec::new(),
            ns: if cfg.mode == Mode::Component {
                NS_COMPONENT
            } else {
                NS_CLIENT
            },
            domain: account.domain.clone(),
            jid: cfg.jid.clone(),
            stream_id: None,
            sm: false,
            unrequested: 0,
            ack_asked: None,
            out: Vec::new(),
            last_rx: Instant::now(),
            probe_sent: None,
            probe_ids: Vec::new(),
            next_id: 0,
        })
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.io
            .write_all(&self.out)
            .await
            .map_err(|e| ConnError::Io(e.to_string()))?;
        self.io
            .flush()
            .await
            .map_err(|e| ConnError::Io(e.to_string()))?;
        self.out.clear();
        Ok(())
    }

    async fn send_now(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.out.extend_from_slice(bytes);
        self.flush().await
    }

    /// Opens (or restarts) the stream and waits for the server's header.
    async fn open_stream(&mut self) -> Result<(), ConnError> {
        self.parser.reset();
        self.pending.clear();
        let mut header = Vec::with_capacity(256);
        header.extend_from_slice(b"<?xml version='1.0'?><stream:stream");
        write_attr(&mut header, "xmlns", self.ns).expect("static text");
        write_attr(&mut header, "xmlns:stream", crate::ns::STREAMS).expect("static text");
        write_attr(&mut header, "to", &self.domain)
            .map_err(|e| ConnError::Config(e.to_string()))?;
        if self.ns == NS_CLIENT {
            header.extend_from_slice(b" version='1.0' xml:lang='en'");
        }
        header.push(b'>');
        self.send_now(&header).await?;
        loop {
            match self.next_event().await? {
                XEvent::Start(attrs) => {
                    self.stream_id = attrs
                        .iter()
                        .find(|(n, _)| n == "id")
                        .map(|(_, v)| v.to_string());
                    return Ok(());
                }
                XEvent::Element(el) => self.check_stream_error(&el)?,
                XEvent::End => return Err(ConnError::ClosedByServer),
            }
        }
    }

    async fn next_event(&mut self) -> Result<XEvent<'static>, ConnError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            let n = self
                .io
                .read(&mut self.rbuf)
                .await
                .map_err(|e| ConnError::Io(e.to_string()))?;
            if n == 0 {
                return Err(ConnError::ClosedByServer);
            }
            self.last_rx = Instant::now();
            let mut events = Vec::new();
            let result = self.parser.feed(&self.rbuf[..n], &mut events);
            self.pending.extend(events);
            if let Err(e) = result {
                if self.pending.is_empty() {
                    return Err(ConnError::Protocol(e.to_string()));
                }
            }
        }
    }

    /// The next top-level element during negotiation.
    async fn next_element(&mut self) -> Result<Element<'static>, ConnError> {
        loop {
            match self.next_event().await? {
                XEvent::Element(el) => {
                    self.check_stream_error(&el)?;
                    return Ok(el);
                }
                XEvent::End => return Err(ConnError::ClosedByServer),
                XEvent::Start(_) => {}
            }
        }
    }

    fn check_stream_error(&self, el: &Element<'_>) -> Result<(), ConnError> {
        if el.name.contains(':') && local(&el.name) == "error" {
            return Err(stream_error(el));
        }
        Ok(())
    }

    /// Everything between TCP and online; returns the bound JID and whether
    /// the XEP-0198 session was resumed.
    async fn negotiate<H: Handler>(
        &mut self,
        cfg: &Config,
        account: &Account,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<(String, bool), ConnError> {
        self.open_stream().await?;
        if cfg.mode == Mode::Component {
            return self
                .handshake(cfg)
                .await
                .map(|()| (self.jid.clone(), false));
        }
        let mut features = self.next_element().await?;
        if cfg.tls == TlsMode::StartTls && !self.io.is_tls() {
            if !has_child(&features, "starttls", NS_TLS) {
                return Err(ConnError::Tls("the server does not offer STARTTLS".into()));
            }
            self.send_now(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                .await?;
            let answer = self.next_element().await?;
            if answer.name != "proceed" {
                return Err(ConnError::Tls(format!(
                    "STARTTLS refused with <{}/>",
                    answer.name
                )));
            }
            let io = std::mem::replace(&mut self.io, Transport::Detached);
            let name = cfg.server_name.as_deref().unwrap_or(&account.domain);
            self.io = io.upgrade(name, cfg.ca_file.as_deref()).await?;
            self.open_stream().await?;
            features = self.next_element().await?;
        }
        self.authenticate(cfg, account, &features).await?;
        self.open_stream().await?;
        let features = self.next_element().await?;

        let sm_offered = has_child(&features, "sm", NS_SM);
        if let (Some(previd), true) = (d.resume_id.clone(), sm_offered) {
            let mut req = Vec::new();
            req.extend_from_slice(b"<resume xmlns='urn:xmpp:sm:3'");
            write_attr(&mut req, "h", &d.h_in.to_string()).expect("digits");
            write_attr(&mut req, "previd", &previd)
                .map_err(|e| ConnError::Protocol(e.to_string()))?;
            req.extend_from_slice(b"/>");
            self.send_now(&req).await?;
            let answer = self.next_element().await?;
            if answer.name == "resumed" {
                let h = answer
                    .attr("h")
                    .and_then(|h| h.parse::<u32>().ok())
                    .unwrap_or(d.acked_h);
                let acked = d.ack(h)?;
                if !acked.is_empty() {
                    handler.event(Event::Acked(acked));
                }
                self.sm = true;
                let jid = d.bound_jid.clone().unwrap_or_else(|| self.jid.clone());
                self.jid = jid.clone();
                return Ok((jid, true));
            }
            // The server forgot the session: what it had not confirmed is lost.
            d.resume_id = None;
            let lost = d.take_unacked();
            if !lost.is_empty() {
                handler.event(Event::Failed(
                    lost,
                    ConnError::Protocol("stream resumption refused by the server".into()),
                ));
            }
        }

        let jid = self.bind(account).await?;
        if let Some(session) = child(&features, "session", NS_SESSION) {
            if !has_child(session, "optional", NS_SESSION)
                && session.elements().all(|c| c.name != "optional")
            {
                let sid = id("sess", &mut self.next_id);
                let mut req = format!("<iq type='set' id='{sid}'>").into_bytes();
                req.extend_from_slice(
                    b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
                );
                self.send_now(&req).await?;
                self.await_iq_result(&sid).await?;
            }
        }
        d.bound_jid = Some(jid.clone());
        self.jid = jid.clone();
        d.h_in = 0;
        d.acked_h = 0;
        if cfg.stream_management && sm_offered {
            self.send_now(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
                .await?;
            loop {
                let el = self.next_element().await?;
                match (el.name.as_ref(), el.attr("xmlns")) {
                    ("enabled", Some(NS_SM)) => {
                        self.sm = true;
                        let resumable = matches!(el.attr("resume"), Some("true" | "1"));
                        d.resume_id = if resumable {
                            el.attr("id").map(str::to_owned)
                        } else {
                            None
                        };
                        break;
                    }
                    ("failed", Some(NS_SM)) => break,
                    _ => self.early.push(el),
                }
            }
        }
        if cfg.initial_presence {
            self.out.extend_from_slice(b"<presence/>");
            if self.sm {
                d.unacked.push_back((0, b"<presence/>".to_vec()));
                self.unrequested += 1;
            }
        }
        Ok((jid, false))
    }

    async fn authenticate(
        &mut self,
        cfg: &Config,
        account: &Account,
        features: &Element<'_>,
    ) -> Result<(), ConnError> {
        let offered: Vec<String> = match child(features, "mechanisms", NS_SASL) {
            Some(m) => m
                .elements()
                .filter(|c| c.name == "mechanism")
                .map(|c| c.text())
                .collect(),
            None => {
                return Err(ConnError::AuthFailed(
                    "the server offers no SASL mechanism".into(),
                ))
            }
        };
        let plain_ok = self.io.is_tls() || is_loopback(&account.host);
        let mech = Mechanism::choose(&offered, plain_ok).ok_or_else(|| {
            ConnError::AuthFailed(format!("no usable SASL mechanism among {offered:?}"))
        })?;
        let user = account.node.as_deref().unwrap_or_default();
        let mut scram = None;
        let initial = match mech {
            Mechanism::Plain => sasl::plain(user, &cfg.password),
            _ => {
                let nonce = base64::engine::general_purpose::STANDARD
                    .encode(rand::thread_rng().gen::<[u8; 18]>());
                let (s, first) = Scram::start(mech, user, &cfg.password, nonce);
                scram = Some(s);
                first
            }
        };
        let auth = format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{initial}</auth>",
            mech.name()
        );
        self.send_now(auth.as_bytes()).await?;
        loop {
            let el = self.next_element().await?;
            match el.name.as_ref() {
                "challenge" => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| ConnError::Protocol("unexpected SASL challenge".into()))?;
                    let text = el.text();
                    // A second challenge carries the server's signature.
                    let reply = if s.verify(&text).is_ok() {
                        String::new()
                    } else {
                        s.respond(&text).map_err(ConnError::AuthFailed)?
                    };
                    let msg = format!("<response xmlns='{NS_SASL}'>{reply}</response>");
                    self.send_now(msg.as_bytes()).await?;
                }
                "success" => {
                    if let Some(s) = &scram {
                        let text = el.text();
                        if !text.is_empty() {
                            s.verify(&text).map_err(ConnError::AuthFailed)?;
                        }
                    }
                    return Ok(());
                }
                "failure" => {
                    let condition = el
                        .elements()
                        .next()
                        .map(|c| c.name.to_string())
                        .unwrap_or_default();
                    return Err(ConnError::AuthFailed(condition));
                }
                other => {
                    return Err(ConnError::Protocol(format!(
                        "unexpected <{other}/> during SASL"
                    )))
                }
            }
        }
    }

    async fn bind(&mut self, account: &Account) -> Result<String, ConnError> {
        let bid = id("bind", &mut self.next_id);
        let mut req = format!("<iq type='set' id='{bid}'><bind xmlns='{NS_BIND}'>").into_bytes();
        if let Some(r) = &account.resource {
            req.extend_from_slice(b"<resource>");
            escape_text(&mut req, r).map_err(|e| ConnError::Config(e.to_string()))?;
            req.extend_from_slice(b"</resource>");
        }
        req.extend_from_slice(b"</bind></iq>");
        self.send_now(&req).await?;
        let result = self.await_iq_result(&bid).await?;
        child(&result, "bind", NS_BIND)
            .and_then(|b| b.elements().find(|c| c.name == "jid"))
            .map(|j| j.text())
            .ok_or_else(|| ConnError::Protocol("bind result without a jid".into()))
    }

    async fn await_iq_result(&mut self, want: &str) -> Result<Element<'static>, ConnError> {
        loop {
            let el = self.next_element().await?;
            if el.name == "iq" && el.attr("id") == Some(want) {
                return match el.attr("type") {
                    Some("result") => Ok(el),
                    _ => Err(ConnError::Protocol(format!(
                        "request {want} failed: {}",
                        error_condition(&el)
                    ))),
                };
            }
            self.early.push(el);
        }
    }

    async fn handshake(&mut self, cfg: &Config) -> Result<(), ConnError> {
        let sid = self
            .stream_id
            .clone()
            .ok_or_else(|| ConnError::Protocol("the component stream header has no id".into()))?;
        let digest = Sha1::digest(format!("{sid}{}", cfg.password).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.send_now(format!("<handshake>{hex}</handshake>").as_bytes())
            .await?;
        match self.next_element().await {
            Ok(el) if el.name == "handshake" => Ok(()),
            Ok(el) => Err(ConnError::Protocol(format!(
                "unexpected <{}/> instead of <handshake/>",
                el.name
            ))),
            Err(ConnError::StreamError(c, t)) if c == "not-authorized" => {
                Err(ConnError::AuthFailed(t.unwrap_or(c)))
            }
            Err(e) => Err(e),
        }
    }

    fn write_stanza(&mut self, seq: u64, bytes: Vec<u8>, d: &mut Durable) {
        self.out.extend_from_slice(&bytes);
        if self.sm {
            d.unacked.push_back((seq, bytes));
            self.unrequested += 1;
        }
    }

    /// Tells the server how many stanzas we handled (XEP-0198 `<a/>`).
    fn report_h(&mut self, d: &Durable) {
        let a = format!("<a xmlns='{NS_SM}' h='{}'/>", d.h_in);
        self.out.extend_from_slice(a.as_bytes());
    }

    /// Asks for an ack of what was written since the last request.
    fn request_ack(&mut self) {
        if self.sm && self.unrequested > 0 {
            self.out.extend_from_slice(b"<r xmlns='urn:xmpp:sm:3'/>");
            self.unrequested = 0;
            self.ack_asked = Some(Instant::now());
        }
    }

    /// Decides when the next ack request goes, in `ack_due`: at once past
    /// ACK_EVERY unrequested stanzas, else ACK_DELAY after the owner
    /// paused; never while an earlier request waits for its answer (under
    /// a burst the server answers it late, and its answer covers more), but
    /// at the latest ACK_ANSWER_WAIT after it. Called after anything that
    /// may change the answer: stanzas written, an `<a/>` read, the timer.
    fn plan_ack(&mut self, ack_due: &mut Option<Instant>) {
        if !self.sm || self.unrequested == 0 {
            *ack_due = None;
            return;
        }
        let now = Instant::now();
        if let Some(asked) = self.ack_asked {
            let retry = asked + ACK_ANSWER_WAIT;
            if now < retry {
                *ack_due = Some(retry);
                return;
            }
        }
        let delay_over = ack_due.is_some_and(|t| now >= t);
        if self.unrequested >= ACK_EVERY || delay_over {
            self.request_ack();
            *ack_due = None;
        } else {
            let soon = now + ACK_DELAY;
            *ack_due = Some(ack_due.map_or(soon, |t| t.min(soon)));
        }
    }

    async fn serve<H: Handler>(
        &mut self,
        cfg: &Config,
        rx: &mut mpsc::Receiver<Command>,
        close: &CloseSignal,
        handler: &mut H,
        d: &mut Durable,
    ) -> Result<(), ConnError> {
        let period = cfg
            .keepalive
            .unwrap_or(Duration::from_secs(3600))
            .min(cfg.keepalive_timeout);
        let mut ticker = tokio::time::interval(period.max(Duration::from_millis(50)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reading and writing go on at once, so that a server that stops
        // reading while it writes to us (or the reverse) cannot deadlock us.
        let io = std::mem::replace(&mut self.io, Transport::Detached);
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut writing: Vec<u8> = Vec::new();
        let mut written = 0;
        let mut need_flush = false;
        let mut ack_due: Option<Instant> = None;
        let mut batching = Batching::new(cfg.batch_delay);
        // Set while a busy stream lets data pile up before the next read.
        let mut read_at: Option<Instant> = None;
        loop {
            if written == writing.len() && !self.out.is_empty() {
                writing.clear();
                written = 0;
                std::mem::swap(&mut writing, &mut self.out);
            }
            let want_write = written < writing.len();
            // Stop taking commands while a lot waits to be written: the
            // queue then fills and the owner sees `:queue_full`.
            let take_commands = self.out.len() < MAX_PENDING_OUT;
            tokio::select! {
                r = rd.read(&mut self.rbuf), if read_at.is_none() => {
                    let n = r.map_err(|e| ConnError::Io(e.to_string()))?;
                    if n == 0 {
                        return Err(ConnError::ClosedByServer);
                    }
                    let now = Instant::now();
                    self.last_rx = now;
                    self.probe_sent = None;
                    let elements = self.feed(n, cfg, d, handler)?;
                    read_at = batching.after_read(now, elements, n == self.rbuf.len());
                    // An <a/> may have answered our request.
                    self.plan_ack(&mut ack_due);
                }
                () = sleep_until_opt(read_at), if read_at.is_some() => read_at = None,
                // Cancel-safe: a write or flush that loses the race to another
                // branch has done nothing, or all it reports.
                w = std::future::poll_fn(|cx| {
                    if want_write {
                        std::pin::Pin::new(&mut wr).poll_write(cx, &writing[written..]).map(|r| r.map(Some))
                    } else {
                        std::pin::Pin::new(&mut wr).poll_flush(cx).map(|r| r.map(|()| None))
                    }
                }), if want_write || need_flush => {
                    match w.map_err(|e| ConnError::Io(e.to_string()))? {
                        Some(0) => return Err(ConnError::Io("the socket accepts no more data".into())),
                        Some(n) => {
                            written += n;
                            need_flush = true;
                        }
                        None => need_flush = false,
                    }
                }
                cmd = rx.recv(), if take_commands => {
                    let mut next = cmd;
                    let mut taken = 0;
                    // `next` always holds a command taken from the queue and
                    // not yet handled, or None when the queue is closed.
                    loop {
                        match next {
                            None => {
                                self.out.splice(0..0, writing.drain(written..));
                                let _ = self.shutdown(rd, wr, d, handler).await;
                                return Ok(());
                            }
                            Some(Command::Send { seq, bytes }) => self.write_stanza(seq, bytes, d),
                            Some(Command::Iq { seq, token, id, bytes }) => {
                                d.waiters.insert(id, token);
                                self.write_stanza(seq, bytes, d);
                            }
                            Some(Command::CancelIq { id }) => {
                                d.waiters.remove(&id);
                                d.cancel(id);
                            }
                        }
                        taken += 1;
                        if taken == BATCH {
                            break;
                        }
                        next = match rx.try_recv() {
                            Ok(c) => Some(c),
                            Err(_) => break,
                        };
                    }
                    self.plan_ack(&mut ack_due);
                }
                () = close.requested() => {
                    self.out.splice(0..0, writing.drain(written..));
                    // A close asked for is final, whatever the goodbye on the
                    // socket meets.
                    let _ = self.shutdown(rd, wr, d, handler).await;
                    return Ok(());
                }
                () = sleep_until_opt(ack_due), if ack_due.is_some() => self.plan_ack(&mut ack_due),
                _ = ticker.tick() => self.keepalive(cfg)?,
            }
        }
    }

    fn keepalive(&mut self, cfg: &Config) -> Result<(), ConnError> {
        let Some(idle) = cfg.keepalive else {
            return Ok(());
        };
        if let Some(sent) = self.probe_sent {
            if sent.elapsed() >= cfg.keepalive_timeout {
                return Err(ConnError::KeepaliveTimeout);
            }
            return Ok(());
        }
        if self.last_rx.elapsed() < idle {
            return Ok(());
        }
        if self.sm {
            self.out.extend_from_slice(b"<r xmlns='urn:xmpp:sm:3'/>");
        } else {
            let pid = id("ka", &mut self.next_id);
            let from = if self.ns == NS_COMPONENT {
                format!(" from='{}'", self.domain)
            } else {
                String::new()
            };
            let to = if self.ns == NS_COMPONENT {
                self.domain
                    .split_once('.')
                    .map(|(_, parent)| parent.to_owned())
                    .unwrap_or_default()
            } else {
                self.domain.clone()
            };
            let ping =
                format!("<iq type='get' id='{pid}'{from} to='{to}'><ping xmlns='{NS_PING}'/></iq>");
            self.out.extend_from_slice(ping.as_bytes());
            self.probe_ids.push(pid);
        }
        self.probe_sent = Some(Instant::now());
        Ok(())
    }

    /// Hands what `n` new bytes completed to the handler, borrowed from the
    /// read buffer; returns how many stanzas they completed.
    fn feed<H: Handler>(
        &mut self,
        n: usize,
        cfg: &Config,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<usize, ConnError> {
        let mut failure: Option<ConnError> = None;
        let mut count = 0;
        let Conn { parser, rbuf, .. } = self;
        let mut elements: Vec<Element<'static>> = Vec::new();
        let mut ended = false;
        // Elements are processed inside the callback (no copy) unless they
        // need `self`, which the parser borrows: those are few (SM, errors).
        let result = parser.feed_with(&rbuf[..n], &mut |ev, ns| match ev {
            XEvent::Element(el) => {
                let stanza = is_stanza(&el);
                // Stream management's <r/> and <a/> often ride along with a
                // single stanza: they do not make a stream busy.
                count += usize::from(stanza);
                // Once one element waits for the connection, the ones after
                // it wait too, so that order is kept.
                if elements.is_empty() && stanza && !needs_conn(&el) {
                    d.h_in = d.h_in.wrapping_add(1);
                    deliver(el, ns, d, handler);
                } else {
                    elements.push(el.into_owned());
                }
            }
            XEvent::End => ended = true,
            XEvent::Start(_) => {}
        });
        for el in elements {
            if let Err(e) = self.on_element(el, cfg, d, handler) {
                failure.get_or_insert(e);
            }
        }
        handler.flush();
        if let Err(e) = result {
            failure.get_or_insert(ConnError::Protocol(e.to_string()));
        }
        if ended {
            failure.get_or_insert(ConnError::ClosedByServer);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    /// Elements that need the connection: SM, stream errors, requests we
    /// answer ourselves, answers to our keepalive pings.
    fn on_element<H: Handler>(
        &mut self,
        el: Element<'_>,
        _cfg: &Config,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<(), ConnError> {
        let xmlns = el.attr("xmlns");
        match (el.name.as_ref(), xmlns) {
            ("r", Some(NS_SM)) => {
                self.report_h(d);
                return Ok(());
            }
            ("a", Some(NS_SM)) => {
                self.ack_asked = None;
                let h = el
                    .attr("h")
                    .and_then(|h| h.parse::<u32>().ok())
                    .ok_or_else(|| ConnError::Protocol("<a/> without a valid h".into()))?;
                let acked = d.ack(h)?;
                if !acked.is_empty() {
                    handler.event(Event::Acked(acked));
                }
                return Ok(());
            }
            _ => {}
        }
        self.check_stream_error(&el)?;
        if !is_stanza(&el) {
            handler.stanza(el, Some(self.ns));
            return Ok(());
        }
        d.h_in = d.h_in.wrapping_add(1);
        if el.name == "iq" {
            let iq_id = el.attr("id").unwrap_or_default().to_owned();
            if let Some(pos) = self.probe_ids.iter().position(|p| *p == iq_id) {
                self.probe_ids.remove(pos);
                return Ok(());
            }
            if matches!(el.attr("type"), Some("get")) {
                if let Some(reply) = self.auto_reply(&el) {
                    // Counted for XEP-0198 like any stanza we send (the
                    // server's `h` includes it), under the internal
                    // sequence 0 that is never reported to the owner.
                    self.write_stanza(0, reply, d);
                    return Ok(());
                }
            }
        }
        deliver(el, Some(self.ns), d, handler);
        Ok(())
    }

    /// The answer to a ping or a disco#info request addressed to us.
    fn auto_reply(&self, el: &Element<'_>) -> Option<Vec<u8>> {
        let payload = el.elements().next()?;
        let ns = payload.attr("xmlns")?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"<iq type='result'");
        write_attr(&mut out, "id", el.attr("id").unwrap_or_default()).ok()?;
        if let Some(from) = el.attr("from") {
            write_attr(&mut out, "to", from).ok()?;
        }
        if let Some(to) = el.attr("to") {
            write_attr(&mut out, "from", to).ok()?;
        }
        match (payload.name.as_ref(), ns) {
            ("ping", NS_PING) => out.extend_from_slice(b"/>"),
            ("query", NS_DISCO_INFO) if payload.attr("node").is_none() => {
                out.extend_from_slice(b"><query xmlns='http://jabber.org/protocol/disco#info'>");
                let category = if self.ns == NS_COMPONENT {
                    "component' type='generic"
                } else {
                    "client' type='bot"
                };
                out.extend_from_slice(
                    format!("<identity category='{category}' name='xmpp_bridge'/>").as_bytes(),
                );
                for f in FEATURES {
                    out.extend_from_slice(format!("<feature var='{f}'/>").as_bytes());
                }
                out.extend_from_slice(b"</query>");
                close_tag(&mut out, "iq");
            }
            _ => return None,
        }
        Some(out)
    }

    async fn shutdown<H: Handler>(
        &mut self,
        mut rd: ReadHalf<Transport>,
        mut wr: WriteHalf<Transport>,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<(), ConnError> {
        self.request_ack();
        if self.sm {
            // XEP-0198 §4: tell the server what we handled, so that it does
            // not bounce or redeliver stanzas the owner already has.
            self.report_h(d);
        }
        self.out.extend_from_slice(b"</stream:stream>");
        // A server that stops reading cannot hold the close for long.
        let deadline = Instant::now() + Duration::from_secs(2);
        let goodbye = async {
            wr.write_all(&self.out).await?;
            wr.flush().await
        };
        match timeout(Duration::from_secs(2), goodbye).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ConnError::Io(e.to_string())),
            Err(_) => return Err(ConnError::Timeout("close")),
        }
        self.out.clear();
        // Give the server a moment to acknowledge and close its side.
        // RFC 6120 §4.4: wait (briefly) for the server to close its stream
        // too, taking the acks that come before.
        let mut server_closed = false;
        while !server_closed {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = match timeout(left, rd.read(&mut self.rbuf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => break,
            };
            let mut events = Vec::new();
            if self.parser.feed(&self.rbuf[..n], &mut events).is_err() {
                break;
            }
            for ev in events {
                if matches!(ev, XEvent::End) {
                    server_closed = true;
                }
                if let XEvent::Element(el) = ev {
                    if el.name == "a" && el.attr("xmlns") == Some(NS_SM) {
                        if let Ok(h) = el.attr("h").unwrap_or_default().parse::<u32>() {
                            if let Ok(acked) = d.ack(h) {
                                if !acked.is_empty() {
                                    handler.event(Event::Acked(acked));
                                }
                            }
                        }
                    }
                }
            }
        }
        let _ = wr.shutdown().await;
        d.resume_id = None;
        Ok(())
    }
}

fn is_stanza(el: &Element<'_>) -> bool {
    matches!(el.name.as_ref(), "message" | "presence" | "iq")
}

/// Stanzas the connection must look at itself: requests it may answer.
fn needs_conn(el: &Element<'_>) -> bool {
    el.name == "iq"
        && matches!(
            el.attr("type"),
            Some("get") | Some("result") | Some("error")
        )
}

fn deliver<H: Handler>(el: Element<'_>, ns: Option<&str>, d: &mut Durable, handler: &mut H) {
    if el.name == "iq" && matches!(el.attr("type"), Some("result" | "error")) {
        let id = el.attr("id").unwrap_or_default();
        if let Some(token) = d.waiters.remove(id) {
            handler.iq_response(token, el, ns);
            return;
        }
        if !d.cancelled.is_empty() && d.was_cancelled(id) {
            return;
        }
    }
    handler.stanza(el, ns);
}

fn has_child(el: &Element<'_>, name: &str, ns: &str) -> bool {
    el.elements()
        .any(|c| c.name == name && c.attr("xmlns") == Some(ns))
}

fn error_condition(el: &Element<'_>) -> String {
    el.elements()
        .find(|c| c.name == "error")
        .and_then(|e| e.elements().next())
        .map(|c| c.name.to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn stream_error(el: &Element<'_>) -> ConnError {
    let mut condition = String::from("undefined-condition");
    let mut text = None;
    for c in el.elements() {
        if c.attr("xmlns") == Some(NS_STREAM_ERRORS) {
            if c.name == "text" {
                text = Some(c.text());
            } else {
                condition = c.name.to_string();
            }
        }
    }
    ConnError::StreamError(condition, text)
}
