//! One connection: the socket, the stream parser, the output buffer, the
//! element-at-a-time reads negotiation uses, and what writing a stanza
//! means for XEP-0198.

use super::super::transport::Transport;
use super::super::{Config, ConnError, Mode, TlsMode};
use super::{is_loopback, sm, Account, Durable};
use crate::ns;
use crate::stream::{Event as XEvent, StreamParser};
use crate::xml::{Element, Limits};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Stanzas a server may send before the session is online (they wait to
/// be delivered until then); more is a flood, not a negotiation.
pub(super) const EARLY_MAX: usize = 1000;

pub(super) struct Conn {
    pub(super) io: Transport,
    pub(super) parser: StreamParser,
    pub(super) rbuf: Vec<u8>,
    pub(super) pending: VecDeque<XEvent<'static>>,
    /// The parse error that came after the events in `pending`: reported
    /// once they are taken.
    pub(super) parse_error: Option<ConnError>,
    /// The owner's credit ran out in the middle of what was read: the rest
    /// waits, unparsed, in the stream parser.
    pub(super) held: bool,
    /// Stanzas that arrived during negotiation, delivered once online.
    pub(super) early: Vec<Element<'static>>,
    /// The stream's default namespace: `jabber:client` or
    /// `jabber:component:accept`.
    pub(super) ns: &'static str,
    /// The bus incarnation our ping results carry ([`Config::bus_incarnation`]).
    pub(super) incarnation: Option<String>,
    pub(super) domain: String,
    pub(super) jid: String,
    pub(super) stream_id: Option<String>,
    /// XEP-0198 is on for this connection.
    pub(super) sm: bool,
    /// When to ask the server for an ack.
    pub(super) acks: sm::AckRequests,
    pub(super) out: Vec<u8>,
    pub(super) last_rx: Instant,
    pub(super) probe_sent: Option<Instant>,
    pub(super) probe_ids: Vec<String>,
    pub(super) next_id: u64,
}

/// A fresh request id: `prefix` and a counter.
pub(super) fn id(prefix: &str, n: &mut u64) -> String {
    *n += 1;
    format!("{prefix}{n}")
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

pub(super) fn stream_error(el: &Element<'_>) -> ConnError {
    let mut condition = String::from("undefined-condition");
    let mut text = None;
    for c in el.elements() {
        if c.attr("xmlns") == Some(ns::STREAM_ERRORS) {
            if c.name == "text" {
                text = Some(c.text());
            } else {
                condition = c.name.to_string();
            }
        }
    }
    ConnError::StreamError(condition, text)
}

/// The first TCP connection that succeeds, and which of `cfg.servers` it
/// went to: the configured servers starting with `prefer` (the one last
/// online on) when there are any; else the SRV targets of the domain (when
/// no host is configured), then the host itself.
async fn connect_tcp(
    cfg: &Config,
    account: &Account,
    prefer: usize,
) -> Result<(TcpStream, Option<usize>), ConnError> {
    let mut candidates: Vec<(String, u16, Option<usize>)> = Vec::new();
    if !cfg.servers.is_empty() {
        let n = cfg.servers.len();
        for k in 0..n {
            let i = (prefer + k) % n;
            let (host, port) = &cfg.servers[i];
            candidates.push((host.clone(), *port, Some(i)));
        }
    } else {
        if cfg.host.is_none() && cfg.mode == Mode::Client {
            let service = if cfg.tls == TlsMode::Direct {
                "_xmpps-client._tcp"
            } else {
                "_xmpp-client._tcp"
            };
            let name = format!("{service}.{}", account.domain);
            for t in super::super::srv::lookup(&name, cfg.dns_server).await {
                candidates.push((t.host, t.port, None));
            }
        }
        candidates.push((account.host.clone(), cfg.port, None));
    }
    // A host that does not answer at all must not use up the whole connect
    // timeout when there are others to try: each gets its share.
    let share = if cfg.servers.len() > 1 {
        (cfg.connect_timeout / cfg.servers.len() as u32).max(Duration::from_secs(1))
    } else {
        cfg.connect_timeout
    };
    let mut last = None;
    for (host, port, index) in &candidates {
        // Plaintext goes to a loopback address only, whatever DNS says.
        if cfg.tls == TlsMode::Plain && !is_loopback(host) {
            last = Some(ConnError::Config(format!(
                "server {host} is not a loopback address"
            )));
            continue;
        }
        match tokio::time::timeout(share, TcpStream::connect((host.as_str(), *port))).await {
            Ok(Ok(s)) => return Ok((s, *index)),
            Ok(Err(e)) => last = Some(ConnError::Connect(format!("{host}:{port}: {e}"))),
            Err(_) => last = Some(ConnError::Connect(format!("{host}:{port}: no answer"))),
        }
    }
    Err(last.unwrap_or_else(|| ConnError::Connect("no address to try".into())))
}

impl Conn {
    /// Connects over TCP, and TLS at once in direct TLS mode.
    /// `prefer` is the index in `cfg.servers` to try first; the result
    /// says which one answered (`None` without `cfg.servers`).
    pub(super) async fn open(
        cfg: &Config,
        account: &Account,
        prefer: usize,
    ) -> Result<(Conn, Option<usize>), ConnError> {
        let (tcp, index) = connect_tcp(cfg, account, prefer).await?;
        let _ = tcp.set_nodelay(true);
        let mut io = Transport::Plain(tcp);
        if cfg.tls == TlsMode::Direct {
            let name = cfg.server_name.as_deref().unwrap_or(&account.domain);
            io = io.upgrade(name, cfg.ca_file.as_deref()).await?;
        }
        Ok((Conn::new(io, cfg, account), index))
    }

    /// A connection over `io`, before the stream is opened.
    pub(super) fn new(io: Transport, cfg: &Config, account: &Account) -> Conn {
        Conn {
            io,
            parser: StreamParser::new(Limits::new(
                cfg.max_stanza_bytes,
                crate::xml::DEFAULT_MAX_DEPTH,
            )),
            // Small buffers that grow with use: an idle session costs a few KB
            // (the stream parser keeps partial stanzas in its own buffer).
            rbuf: vec![0; READ_CHUNK],
            pending: VecDeque::new(),
            parse_error: None,
            held: false,
            early: Vec::new(),
            ns: if cfg.mode == Mode::Component {
                ns::COMPONENT
            } else {
                ns::CLIENT
            },
            incarnation: cfg.bus_incarnation.clone(),
            domain: account.domain.clone(),
            jid: cfg.jid.clone(),
            stream_id: None,
            sm: false,
            acks: sm::AckRequests::default(),
            out: Vec::new(),
            last_rx: Instant::now(),
            probe_sent: None,
            probe_ids: Vec::new(),
            next_id: 0,
        }
    }

    pub(super) async fn flush(&mut self) -> Result<(), ConnError> {
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

    pub(super) async fn send_now(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.out.extend_from_slice(bytes);
        self.flush().await
    }

    pub(super) async fn next_event(&mut self) -> Result<XEvent<'static>, ConnError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            if let Some(e) = self.parse_error.take() {
                return Err(e);
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
                // After the events before it, or at once: never lost (a
                // DTD right after the server's header must not leave us
                // waiting for the negotiation timeout).
                self.parse_error = Some(ConnError::Protocol(e.to_string()));
            }
        }
    }

    /// The next top-level element during negotiation.
    pub(super) async fn next_element(&mut self) -> Result<Element<'static>, ConnError> {
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

    /// Puts aside a stanza that came during negotiation; a server that
    /// sends more than `EARLY_MAX` of them is flooding.
    pub(super) fn keep_early(&mut self, el: Element<'static>) -> Result<(), ConnError> {
        if self.early.len() >= EARLY_MAX {
            return Err(ConnError::Protocol(format!(
                "more than {EARLY_MAX} stanzas before the session was online"
            )));
        }
        self.early.push(el);
        Ok(())
    }

    /// Once online: the events negotiation read ahead (stanzas that came in
    /// the same packet as its last answer) join the early stanzas, in
    /// order, to be delivered first; a stream end or parse error among them
    /// is returned, to be reported after them.
    pub(super) fn take_read_ahead(&mut self) -> Option<ConnError> {
        while let Some(ev) = self.pending.pop_front() {
            match ev {
                XEvent::Element(el) => self.early.push(el),
                XEvent::End => return Some(ConnError::ClosedByServer),
                XEvent::Start(_) => {}
            }
        }
        self.parse_error.take()
    }

    /// True when something the server sent is waiting to be read: bytes in
    /// the parser or events not taken yet.
    pub(super) fn has_unread_input(&self) -> bool {
        !self.pending.is_empty() || self.parse_error.is_some() || self.parser.buffered() > 0
    }

    pub(super) fn check_stream_error(&self, el: &Element<'_>) -> Result<(), ConnError> {
        if el.name.contains(':') && local(&el.name) == "error" {
            return Err(stream_error(el));
        }
        Ok(())
    }

    /// Puts a stanza in the output buffer; with XEP-0198 it waits for an
    /// ack under `seq` (0: sent by the session itself, never reported).
    pub(super) fn write_stanza(&mut self, seq: u64, bytes: Vec<u8>, d: &mut Durable) {
        self.out.extend_from_slice(&bytes);
        if self.sm {
            d.sm.sent(seq, bytes);
            self.acks.written(1);
        }
    }

    /// After a resumption: writes again what the server had not
    /// acknowledged.
    pub(super) fn resend_unacked(&mut self, ledger: &sm::Ledger) {
        let mut n = 0;
        for bytes in ledger.unacked_bytes() {
            self.out.extend_from_slice(bytes);
            n += 1;
        }
        self.acks.written(n);
    }

    /// Tells the server how many stanzas we handled (XEP-0198 `<a/>`).
    pub(super) fn report_h(&mut self, d: &Durable) {
        self.out
            .extend_from_slice(sm::answer(d.sm.handled()).as_bytes());
    }

    /// Asks for an ack of what was written since the last request.
    pub(super) fn request_ack(&mut self) {
        if self.sm && self.acks.request(Instant::now()) {
            self.out.extend_from_slice(sm::REQUEST);
        }
    }

    /// Asks for an ack now if the policy says so (see
    /// [`sm::AckRequests::plan`]), else sets when to ask. Called after
    /// anything that may change the answer: stanzas written, an `<a/>`
    /// read, the timer.
    pub(super) fn plan_ack(&mut self) {
        if self.sm && self.acks.plan(Instant::now()) {
            self.out.extend_from_slice(sm::REQUEST);
        }
    }
}
