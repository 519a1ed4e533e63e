//! XMPP sessions on tokio: client-to-server (RFC 6120/6121) and external
//! components (XEP-0114).
//!
//! One task runs each session: it connects (STARTTLS required by default,
//! direct TLS, or plaintext to a loopback address only), authenticates
//! (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN only over TLS or loopback), binds a
//! resource, enables stream management (XEP-0198), answers pings (XEP-0199)
//! and disco#info by itself, probes a silent server with keepalives, and
//! reconnects with exponential backoff and jitter, resuming the stream when
//! the server allows it. Incoming stanzas are handed to a [`Handler`] as
//! elements borrowed from the read buffer; nothing is parsed twice.
//!
//! Load: a stream under sustained incoming load is read in batches (the
//! next read waits 1 ms, doubling up to [`Config::batch_delay`], while the
//! load lasts; light traffic is read at once), and one XEP-0198 ack request
//! is outstanding at a time, so a burst costs few reads, wake-ups and acks.
//!
//! Delivery: with stream management every stanza sent is eventually
//! reported either [`Event::Acked`] or [`Event::Failed`]. Without it (a
//! server that does not offer XEP-0198, or a component) stanzas still queued
//! when the session ends are reported failed; those already written cannot
//! be confirmed.

mod batching;
mod sasl;
mod session;
pub mod srv;
mod transport;

pub use session::run;

use crate::xml::Element;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How the TCP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS, required: a server that does not offer it is an error.
    StartTls,
    /// TLS from the first byte (XEP-0368 style, e.g. port 5223).
    Direct,
    /// No TLS. Refused unless the host is a loopback address.
    Plain,
}

/// Client session or external component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Client,
    /// XEP-0114: the JID is the component's domain, the password its secret.
    Component,
}

/// Reconnection policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    pub enabled: bool,
    pub initial: Duration,
    pub max: Duration,
    /// Give up after this many failed attempts in a row (None: never).
    pub max_attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            enabled: true,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

/// Everything a session needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// The account (`user@domain` or `user@domain/resource`), or the
    /// component's domain.
    pub jid: String,
    pub password: String,
    /// Where to connect. When `None`, the DNS SRV records of the domain
    /// (`_xmpp-client._tcp`, or `_xmpps-client._tcp` for direct TLS) are
    /// tried in order, then the domain itself on `port`.
    pub host: Option<String>,
    /// Several servers of one deployment (the nodes of a cluster), as
    /// `(host, port)`: when not empty, these are where the session
    /// connects instead of `host`/`port` or DNS. Every connection attempt
    /// tries them in turn, starting with the one the session was last
    /// online on (the first at the start), so that a session whose server
    /// died fails over to the next at its first reconnect, and stays there.
    pub servers: Vec<(String, u16)>,
    /// Name server for the SRV lookup (`/etc/resolv.conf`'s first one when
    /// `None`).
    pub dns_server: Option<std::net::SocketAddr>,
    pub port: u16,
    pub tls: TlsMode,
    /// PEM file of the CA(s) to trust instead of the bundled web roots.
    pub ca_file: Option<String>,
    /// Name the server certificate must carry; the JID's domain by default.
    pub server_name: Option<String>,
    /// Resource to ask for; the server picks one when `None`.
    pub resource: Option<String>,
    pub connect_timeout: Duration,
    /// Probe the server after this much silence (None: never).
    pub keepalive: Option<Duration>,
    /// How long a probe may stay unanswered before the server is deemed dead.
    pub keepalive_timeout: Duration,
    pub reconnect: Reconnect,
    /// Stanzas that may wait in the outbound queue.
    pub queue_limit: usize,
    /// Ask for XEP-0198 stream management (acks and resumption).
    pub stream_management: bool,
    /// Send `<presence/>` once online (needed to receive messages sent to
    /// the bare JID, and offline storage).
    pub initial_presence: bool,
    /// Largest incoming top-level element.
    pub max_stanza_bytes: usize,
    /// Under sustained incoming load, the longest the next read waits so
    /// that it carries many stanzas at once (zero: read as soon as data
    /// arrives). The wait starts at 1 ms and doubles while the load lasts.
    /// Light traffic is always read at once; see `batching` for what
    /// counts as load.
    pub batch_delay: Duration,
    /// How many incoming stanzas the handler takes before the session
    /// stops reading and reports [`Event::Passive`]; more is granted with
    /// [`Handle::set_active`]. A handler that can be slow behind a queue
    /// of its own (the NIF's owner mailbox) bounds that queue this way; a
    /// handler that does its work in its callback already holds the
    /// session back and can leave this at [`Active::Unlimited`].
    pub active: Active,
    /// Set by a bus node: ping results carry
    /// `<node xmlns='urn:xmpp-bridge:bus:0' incarnation='...'/>` (so a
    /// heartbeat tells a restarted peer from the one it watched), and
    /// disco#info lists the bus feature.
    pub bus_incarnation: Option<String>,
}

/// The incoming flow the owner grants a session (in the manner of
/// `gen_tcp`'s `{active, N}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Active {
    /// Deliver without limit.
    Unlimited,
    /// `n` more stanzas, added to what is left.
    More(u32),
    /// Exactly one more, whatever was left.
    Once,
    /// None: stop delivering now (no [`Event::Passive`] follows).
    Off,
}

impl Config {
    /// Defaults for a client session of `jid`.
    pub fn client(jid: impl Into<String>, password: impl Into<String>) -> Config {
        Config {
            mode: Mode::Client,
            jid: jid.into(),
            password: password.into(),
            host: None,
            servers: Vec::new(),
            dns_server: None,
            port: 5222,
            tls: TlsMode::StartTls,
            ca_file: None,
            server_name: None,
            resource: None,
            connect_timeout: Duration::from_secs(10),
            keepalive: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(10),
            reconnect: Reconnect::default(),
            queue_limit: 10_000,
            stream_management: true,
            initial_presence: true,
            max_stanza_bytes: crate::xml::DEFAULT_MAX_BYTES,
            batch_delay: Duration::from_millis(5),
            active: Active::Unlimited,
            bus_incarnation: None,
        }
    }

    /// Defaults for an external component of domain `domain`.
    pub fn component(domain: impl Into<String>, secret: impl Into<String>) -> Config {
        Config {
            mode: Mode::Component,
            port: 5347,
            tls: TlsMode::Plain,
            stream_management: false,
            initial_presence: false,
            ..Config::client(domain, secret)
        }
    }
}

/// Why a session ended or could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnError {
    /// Bad options (the detail says which).
    Config(String),
    /// TCP connect failed.
    Connect(String),
    /// A step took longer than its timeout (the step is named).
    Timeout(&'static str),
    /// TLS failed, e.g. a certificate from an unknown CA.
    Tls(String),
    /// The server refused the credentials (not retried).
    AuthFailed(String),
    /// The server sent `<stream:error>` with this condition (and text).
    StreamError(String, Option<String>),
    /// The server closed the connection.
    ClosedByServer,
    /// No answer to a keepalive probe in time.
    KeepaliveTimeout,
    /// The server broke the protocol (or offered nothing we can use).
    Protocol(String),
    /// A socket error.
    Io(String),
    /// The session task failed (a panic: a bug of ours).
    Internal(String),
}

impl ConnError {
    /// Errors that another attempt would only repeat.
    pub fn is_fatal(&self) -> bool {
        match self {
            ConnError::Config(_) | ConnError::AuthFailed(_) => true,
            // Another session took our resource, or the account is gone:
            // reconnecting would fight it. (policy-violation is not here:
            // ejabberd sends it when a burst overflows its queue of
            // unacknowledged stanzas for us, and a new session is the cure.)
            ConnError::StreamError(c, _) => matches!(c.as_str(), "conflict" | "not-authorized"),
            ConnError::Tls(_) | ConnError::Internal(_) => true,
            _ => false,
        }
    }

    /// A short name for the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnError::Config(_) => "bad_config",
            ConnError::Connect(_) => "connect_failed",
            ConnError::Timeout(_) => "timeout",
            ConnError::Tls(_) => "tls_failed",
            ConnError::AuthFailed(_) => "auth_failed",
            ConnError::StreamError(_, _) => "stream_error",
            ConnError::ClosedByServer => "closed_by_server",
            ConnError::KeepaliveTimeout => "keepalive_timeout",
            ConnError::Protocol(_) => "protocol_error",
            ConnError::Io(_) => "io_error",
            ConnError::Internal(_) => "internal_error",
        }
    }

    /// The detail, if the kind has one.
    pub fn detail(&self) -> Option<String> {
        match self {
            ConnError::Config(d)
            | ConnError::Connect(d)
            | ConnError::Tls(d)
            | ConnError::AuthFailed(d)
            | ConnError::Protocol(d)
            | ConnError::Io(d)
            | ConnError::Internal(d) => Some(d.clone()),
            ConnError::Timeout(step) => Some((*step).to_owned()),
            ConnError::StreamError(c, _) => Some(c.clone()),
            ConnError::ClosedByServer | ConnError::KeepaliveTimeout => None,
        }
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(d) => write!(f, "{}: {d}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

impl std::error::Error for ConnError {}

/// What a session reports besides stanzas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Authenticated and bound (`resumed` when XEP-0198 resumed the stream).
    Online { jid: String, resumed: bool },
    /// The connection was lost; a `Reconnecting` or `Closed` follows.
    Disconnected(ConnError),
    /// The next attempt starts after `delay`.
    Reconnecting { attempt: u32, delay: Duration },
    /// The server confirmed these stanzas (by the sequence numbers `send`
    /// returned).
    Acked(Vec<u64>),
    /// These stanzas will never be sent or confirmed.
    Failed(Vec<u64>, ConnError),
    /// These IQ requests will get no answer.
    IqFailed(Vec<u64>, ConnError),
    /// The session is over (`None`: closed on request). Always last.
    Closed(Option<ConnError>),
    /// The credit of [`Config::active`] is used up: nothing more is read
    /// until [`Handle::set_active`] grants more.
    Passive,
}

/// Receives what a session produces. Called from the session's task; must
/// not block.
pub trait Handler: Send + 'static {
    fn event(&mut self, event: Event);
    /// An incoming stanza or other top-level element, in the stream's
    /// default namespace `ns`.
    fn stanza(&mut self, el: Element<'_>, ns: Option<&str>);
    /// The answer to the IQ sent with `token`.
    fn iq_response(&mut self, token: u64, el: Element<'_>, ns: Option<&str>);
    /// Everything one read from the socket produced has been handed over:
    /// a handler that holds deliveries back to pass them on together sends
    /// them now. Called after every read that delivered something, before
    /// the session waits again.
    fn flush(&mut self) {}
}

/// What the owner asks of a session.
#[derive(Debug)]
pub enum Command {
    Send {
        seq: u64,
        bytes: Vec<u8>,
    },
    /// An IQ request whose answer goes to `Handler::iq_response(token)`.
    Iq {
        seq: u64,
        token: u64,
        id: String,
        bytes: Vec<u8>,
    },
    /// Stop waiting for the answer to IQ `id`.
    CancelIq {
        id: String,
    },
    /// Test hook: the session task panics when it takes this command.
    #[doc(hidden)]
    Panic,
}

/// How the owner asks a session to end: apart from the command queue, so
/// that a full queue cannot delay it.
#[derive(Debug, Default)]
pub struct CloseSignal {
    requested: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl CloseSignal {
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // Stores a permit when the session is not waiting right now.
        self.notify.notify_one();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Completes once a close was requested (at once if it already was).
    pub async fn requested(&self) {
        loop {
            if self.is_requested() {
                return;
            }
            self.notify.notified().await;
        }
    }
}

/// The incoming credit a session shares with its owner's [`Handle`].
#[derive(Debug)]
pub struct Flow {
    /// Stanzas the handler still takes; `UNLIMITED` for no limit.
    credit: AtomicU64,
    granted: tokio::sync::Notify,
}

impl Flow {
    const UNLIMITED: u64 = u64::MAX;

    pub fn new(active: Active) -> Flow {
        let flow = Flow {
            credit: AtomicU64::new(0),
            granted: tokio::sync::Notify::new(),
        };
        flow.set(active);
        flow
    }

    fn set(&self, active: Active) {
        match active {
            Active::Unlimited => self.credit.store(Self::UNLIMITED, Ordering::SeqCst),
            Active::Once => self.credit.store(1, Ordering::SeqCst),
            Active::Off => self.credit.store(0, Ordering::SeqCst),
            Active::More(n) => {
                let _ = self
                    .credit
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                        (c != Self::UNLIMITED)
                            .then(|| c.saturating_add(n.into()).min(Self::UNLIMITED - 1))
                    });
            }
        }
        // Stores a permit when the session is not waiting right now.
        self.granted.notify_one();
    }

    /// Stanzas the handler may take now (`usize::MAX`: no limit).
    pub fn available(&self) -> usize {
        match self.credit.load(Ordering::SeqCst) {
            Self::UNLIMITED => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX - 1),
        }
    }

    /// Takes `n` delivered stanzas off the credit; true when that used it
    /// up (the session then reports [`Event::Passive`]).
    pub fn take(&self, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        let before = self
            .credit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                (c != Self::UNLIMITED).then(|| c.saturating_sub(n as u64))
            });
        // From some credit to none: the owner set it to zero itself
        // (`Active::Off`) gets no notice.
        matches!(before, Ok(c) if c > 0 && c <= n as u64)
    }

    /// Completes when the owner changes the credit (at once if it did
    /// since the last wait).
    pub async fn changed(&self) {
        self.granted.notified().await;
    }
}

/// Why a command could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The outbound queue holds `queue_limit` stanzas already (also while
    /// disconnected: they wait there for the next connection).
    Full,
    /// The session has ended.
    Closed,
}

/// The owner's side of a session: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    seq: std::sync::Arc<AtomicU64>,
    close: std::sync::Arc<CloseSignal>,
    flow: std::sync::Arc<Flow>,
    /// A component's domain: the `from` of stanzas that name none
    /// (XEP-0114: a component addresses what it sends itself).
    from: Option<std::sync::Arc<str>>,
}

/// `bytes` (one stanza) with `from='from'` on its opening tag when that
/// tag has no `from` yet.
pub(crate) fn stamp_from(bytes: Vec<u8>, from: &str) -> Vec<u8> {
    let tag_end = bytes.iter().position(|&b| b == b'>').unwrap_or(bytes.len());
    let tag = &bytes[..tag_end];
    if tag.windows(6).any(|w| w == b" from=") {
        return bytes;
    }
    let name_end = tag
        .iter()
        .position(|&b| b == b' ' || b == b'/')
        .unwrap_or(tag_end);
    let mut out = Vec::with_capacity(bytes.len() + from.len() + 8);
    out.extend_from_slice(&bytes[..name_end]);
    if crate::xml::write_attr(&mut out, "from", from).is_err() {
        return bytes;
    }
    out.extend_from_slice(&bytes[name_end..]);
    out
}

impl Handle {
    fn stamped(&self, bytes: Vec<u8>) -> Vec<u8> {
        match &self.from {
            Some(from) => stamp_from(bytes, from),
            None => bytes,
        }
    }

    /// Queues serialized stanza bytes; returns their sequence number.
    pub fn send(&self, bytes: Vec<u8>) -> Result<u64, QueueError> {
        let bytes = self.stamped(bytes);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.push(Command::Send { seq, bytes }).map(|_| seq)
    }

    /// Queues an IQ request with id `id`; its answer goes to
    /// `Handler::iq_response(token)`.
    pub fn iq(&self, token: u64, id: String, bytes: Vec<u8>) -> Result<u64, QueueError> {
        let bytes = self.stamped(bytes);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.push(Command::Iq {
            seq,
            token,
            id,
            bytes,
        })
        .map(|_| seq)
    }

    /// Forgets the waiter of IQ `id` (after a timeout).
    pub fn cancel_iq(&self, id: String) {
        // A full queue means the session is busy, not gone; the waiter is
        // dropped when the answer comes or the session ends anyway.
        let _ = self.tx.try_send(Command::CancelIq { id });
    }

    /// Grants incoming credit (see [`Config::active`]); a passive session
    /// starts reading again.
    pub fn set_active(&self, active: Active) {
        self.flow.set(active);
    }

    /// Test hook: makes the session task panic, to check that its handler
    /// still gets [`Event::Closed`] last.
    #[doc(hidden)]
    pub fn inject_panic(&self) {
        let _ = self.tx.try_send(Command::Panic);
    }

    /// Asks the session to end; idempotent, never blocks.
    pub fn close(&self) {
        self.close.request();
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    fn push(&self, cmd: Command) -> Result<(), QueueError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })
    }
}

/// Starts a session on `runtime`; its events go to `handler`.
pub fn spawn<H: Handler>(runtime: &tokio::runtime::Handle, config: Config, handler: H) -> Handle {
    let (tx, rx) = mpsc::channel(config.queue_limit.max(1));
    let close = std::sync::Arc::new(CloseSignal::default());
    let flow = std::sync::Arc::new(Flow::new(config.active));
    let from = (config.mode == Mode::Component).then(|| config.jid.as_str().into());
    runtime.spawn(run(config, rx, close.clone(), flow.clone(), handler));
    Handle {
        tx,
        seq: std::sync::Arc::new(AtomicU64::new(1)),
        close,
        flow,
        from,
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::stamp_from;

    #[test]
    fn a_stanza_without_from_gets_one_and_one_with_from_keeps_it() {
        let out = stamp_from(b"<iq type='get' id='1'><ping/></iq>".to_vec(), "bridge.x");
        assert_eq!(out, b"<iq from='bridge.x' type='get' id='1'><ping/></iq>");
        let out = stamp_from(b"<presence/>".to_vec(), "bridge.x");
        assert_eq!(out, b"<presence from='bridge.x'/>");
        let kept = b"<message from='a@bridge.x/bus' to='b@x'/>".to_vec();
        assert_eq!(stamp_from(kept.clone(), "bridge.x"), kept);
    }
}

#[cfg(test)]
mod flow_tests {
    use super::{Active, Flow};

    #[test]
    fn credit_is_granted_and_taken_as_gen_tcp_counts_active_n() {
        let flow = Flow::new(Active::More(3));
        assert_eq!(flow.available(), 3);
        assert!(!flow.take(2), "one left: not passive yet");
        flow.set(Active::More(10));
        assert_eq!(flow.available(), 11, "More adds to what is left");
        assert!(flow.take(11), "used up: passive");
        assert_eq!(flow.available(), 0);
        assert!(!flow.take(0));
        flow.set(Active::Once);
        assert_eq!(flow.available(), 1);
        flow.set(Active::More(5));
        flow.set(Active::Once);
        assert_eq!(flow.available(), 1, "Once leaves exactly one");
        flow.set(Active::Off);
        assert!(!flow.take(1), "stopped by the owner: no passive notice");
    }

    #[test]
    fn unlimited_credit_is_never_used_up() {
        let flow = Flow::new(Active::Unlimited);
        assert_eq!(flow.available(), usize::MAX);
        assert!(!flow.take(1_000_000));
        flow.set(Active::More(5));
        assert_eq!(
            flow.available(),
            usize::MAX,
            "More on top of unlimited stays unlimited"
        );
        flow.set(Active::More(u32::MAX));
        flow.set(Active::Off);
        flow.set(Active::More(u32::MAX));
        flow.set(Active::More(u32::MAX));
        assert_eq!(flow.available(), 2 * u32::MAX as usize);
    }

    #[tokio::test]
    async fn a_grant_wakes_a_waiting_session() {
        let flow = std::sync::Arc::new(Flow::new(Active::More(1)));
        assert!(flow.take(1));
        let waiter = {
            let flow = flow.clone();
            tokio::spawn(async move {
                while flow.available() == 0 {
                    flow.changed().await;
                }
                flow.available()
            })
        };
        tokio::task::yield_now().await;
        flow.set(Active::More(7));
        assert_eq!(waiter.await.unwrap(), 7);
    }
}
