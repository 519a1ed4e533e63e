//! Baseline for the connection benchmark (bench/conn.exs): two plain
//! tokio-xmpp 6 clients, alice and bob, through the same ejabberd the
//! bridge's BEAM-owned sessions use, doing the same work:
//!
//! 1. throughput: after `--warmup-n` unrecorded messages (default 0), alice
//!    sends `--n` chat messages to bob's full JID as fast as tokio-xmpp's
//!    backpressure allows (its transmit queue of `--queue` stanzas; `send`
//!    waits when it is full); bob counts them and checks their order; alice
//!    waits until XEP-0198 acked the last one.
//! 2. round trip: alice sends one message, bob replies at once, alice
//!    waits for the reply before the next one; `--warmup` unrecorded, then
//!    `--rtt` samples.
//!
//! Output, one line each, for bench/conn.exs to parse:
//!
//! ```text
//! ONLINE connect_ms=12.3 alice=alice@localhost/abc bob=bob@localhost/def
//! THROUGHPUT n=20000 received=20000 in_order=true acked=true secs=0.812 rate=24630.5 acked_secs=0.815 cpu_ticks=95
//! RTT samples=2000 p50_us=310 p90_us=420 p99_us=800 mean_us=330 max_us=2100
//! ```
//!
//! `cpu_ticks` is this process's CPU time (user + system, /proc clock ticks)
//! from the first send until all were acked. Errors go to stderr with a
//! non-zero exit status.
//!
//! Two ways of using tokio-xmpp are offered (`--api`):
//!   * `stream` (default): `tokio_xmpp::stanzastream::StanzaStream`, the
//!     layer under `Client`: `send` only enqueues (it waits when the
//!     transmit queue is full), so many stanzas are in flight; the fastest
//!     way tokio-xmpp offers, and the one comparable to the bridge.
//!   * `client`: `tokio_xmpp::Client`, whose `send_stanza` returns only
//!     once the stanza was written (one stanza in flight per call). Its
//!     round trip can stall for good: `Client` splits its StanzaStream into
//!     halves behind one mutex, and the receiving half's `poll_next` answers
//!     `Pending` without registering a waker when the sending half holds the
//!     lock (tokio-xmpp 6.0.0, stanzastream/mod.rs, StanzaReceiver); bob
//!     sends and receives, so sooner or later his events stop. Use `stream`.
//!
//! Connector (`--connector`): `nodelay` (default) is tokio-xmpp's own
//! plaintext TCP connector plus TCP_NODELAY, as the bridge sets it; `tokio`
//! is `TcpServerConnector` unchanged (Nagle on). `--tls starttls` does what
//! tokio-xmpp's STARTTLS connector does (its public `starttls()`, rustls
//! with ring; trust the run's CA with SSL_CERT_FILE=<ca.pem>), plus
//! TCP_NODELAY and without channel binding (see `StartTlsConnector`).

use futures::StreamExt;
use sasl::common::ChannelBinding;
use std::borrow::Cow;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::connect::starttls::starttls;
use tokio_xmpp::connect::tls_common::TlsStream;
use tokio_xmpp::connect::{DnsConfig, ServerConnector, TcpServerConnector};
use tokio_xmpp::error::ProtocolError;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::stanzastream::{
    Event as SEvent, StanzaStage, StanzaStream, StanzaToken, StreamEvent,
};
use tokio_xmpp::xmlstream::{initiate_stream, PendingFeaturesRecv, StreamHeader, Timeouts};
use tokio_xmpp::{Client, Event as CEvent, Stanza};

#[derive(Debug, Clone)]
struct Opts {
    host: String,
    port: u16,
    domain: String,
    alice: (String, String),
    bob: (String, String),
    n: u64,
    warmup_n: u64,
    rtt: usize,
    warmup: usize,
    queue: usize,
    api: Api,
    connector: ConnectorKind,
    tls: bool,
    timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    Stream,
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ConnectorKind {
    NoDelay,
    Tokio,
}

const USAGE: &str = "usage: conn_baseline --port P --alice USER:PW --bob USER:PW \
[--host 127.0.0.1] [--domain localhost] [--n 20000] [--warmup-n 0] [--rtt 2000] [--warmup 200] \
[--queue 10000] [--api stream|client] [--connector nodelay|tokio] [--tls plain|starttls] \
[--timeout-s 120]";

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        port: 0,
        domain: "localhost".into(),
        alice: (String::new(), String::new()),
        bob: (String::new(), String::new()),
        n: 20_000,
        warmup_n: 0,
        rtt: 2_000,
        warmup: 200,
        queue: 10_000,
        api: Api::Stream,
        connector: ConnectorKind::NoDelay,
        tls: false,
        timeout: Duration::from_secs(120),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        }
        fn account(flag: &str, v: String) -> Result<(String, String), String> {
            v.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
                .ok_or_else(|| format!("{flag}: expected USER:PASSWORD"))
        }
        match flag.as_str() {
            "--host" => o.host = value()?,
            "--port" => o.port = num(&flag, value()?)?,
            "--domain" => o.domain = value()?,
            "--alice" => o.alice = account(&flag, value()?)?,
            "--bob" => o.bob = account(&flag, value()?)?,
            "--n" => o.n = num(&flag, value()?)?,
            "--warmup-n" => o.warmup_n = num(&flag, value()?)?,
            "--rtt" => o.rtt = num(&flag, value()?)?,
            "--warmup" => o.warmup = num(&flag, value()?)?,
            "--queue" => o.queue = num(&flag, value()?)?,
            "--timeout-s" => o.timeout = Duration::from_secs(num(&flag, value()?)?),
            "--api" => {
                o.api = match value()?.as_str() {
                    "stream" => Api::Stream,
                    "client" => Api::Client,
                    other => return Err(format!("--api: unknown {other:?}")),
                }
            }
            "--connector" => {
                o.connector = match value()?.as_str() {
                    "nodelay" => ConnectorKind::NoDelay,
                    "tokio" => ConnectorKind::Tokio,
                    other => return Err(format!("--connector: unknown {other:?}")),
                }
            }
            "--tls" => {
                o.tls = match value()?.as_str() {
                    "plain" => false,
                    "starttls" => true,
                    other => return Err(format!("--tls: unknown {other:?}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.port == 0 || o.alice.0.is_empty() || o.bob.0.is_empty() {
        return Err(USAGE.into());
    }
    if o.queue == 0 {
        return Err("--queue must be positive".into());
    }
    Ok(o)
}

fn header(jid: &Jid) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(jid.domain().as_str())),
        from: None,
        id: None,
    }
}

async fn tcp(addr: &str) -> Result<TcpStream, tokio_xmpp::Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// tokio-xmpp's plaintext TCP connector (`TcpServerConnector`), plus
/// TCP_NODELAY on the socket, which tokio-xmpp does not set. Written against
/// tokio-xmpp's public `ServerConnector` extension point.
#[derive(Debug, Clone)]
struct NoDelayConnector {
    addr: String,
}

impl ServerConnector for NoDelayConnector {
    type Stream = BufStream<TcpStream>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let io = BufStream::new(tcp(&self.addr).await?);
        let pending = initiate_stream(io, ns, header(jid), timeouts).await?;
        Ok((pending, ChannelBinding::None))
    }
}

/// The steps of tokio-xmpp's `StartTlsServerConnector` (its public
/// `starttls()`, rustls with ring), plus TCP_NODELAY, and without channel
/// binding: with the tls-exporter binding tokio-xmpp derives from TLS 1.3
/// it picks SCRAM-*-PLUS, which ejabberd 23.01 answers with not-authorized
/// (it binds to tls-unique only). The bridge does SCRAM without -PLUS too.
#[derive(Debug, Clone)]
struct StartTlsConnector {
    addr: String,
}

impl ServerConnector for StartTlsConnector {
    type Stream = BufStream<TlsStream<TcpStream>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let io = BufStream::new(tcp(&self.addr).await?);
        let pending = initiate_stream(io, ns, header(jid), timeouts).await?;
        let (features, stream) = pending.recv_features().await?;
        if !features.can_starttls() {
            return Err(tokio_xmpp::Error::Protocol(ProtocolError::NoTls));
        }
        let (tls, _binding) = starttls(stream, jid.domain().as_str()).await?;
        let pending = initiate_stream(BufStream::new(tls), ns, header(jid), timeouts).await?;
        Ok((pending, ChannelBinding::None))
    }
}

/// One logged-in tokio-xmpp client, whichever API drives it.
enum Side {
    Stream(StanzaStream),
    Client(Box<Client>),
}

impl Side {
    /// Queues a stanza; waits only when tokio-xmpp's queue is full
    /// (`stream`) or until it is written (`client`).
    async fn send(&mut self, stanza: Stanza) -> Result<StanzaToken, String> {
        match self {
            Side::Stream(s) => Ok(s.send(Box::new(stanza)).await),
            Side::Client(c) => c.send_stanza(stanza).await.map_err(|e| e.to_string()),
        }
    }

    /// The next incoming stanza; `Err` when the stream ends or breaks.
    async fn next_stanza(&mut self) -> Result<Stanza, String> {
        loop {
            match self {
                Side::Stream(s) => match s.next().await {
                    Some(SEvent::Stanza(st)) => return Ok(st),
                    Some(SEvent::Stream(StreamEvent::Suspended)) => {
                        return Err("stream suspended (connection lost)".into())
                    }
                    Some(SEvent::Stream(_)) => {}
                    None => return Err("stream ended".into()),
                },
                Side::Client(c) => match c.next().await {
                    Some(CEvent::Stanza(st)) => return Ok(st),
                    Some(CEvent::Disconnected(e)) => return Err(format!("disconnected: {e}")),
                    Some(CEvent::Online { .. }) => {}
                    None => return Err("client ended".into()),
                },
            }
        }
    }

    async fn close(self) {
        match self {
            Side::Stream(s) => s.close().await,
            Side::Client(c) => {
                let _ = c.send_end().await;
            }
        }
    }
}

fn connector_for(o: &Opts) -> Result<AnyConnector, String> {
    let addr = format!("{}:{}", o.host, o.port);
    Ok(if o.tls {
        AnyConnector::StartTls(StartTlsConnector { addr })
    } else if o.connector == ConnectorKind::Tokio {
        AnyConnector::Tcp(Box::new(TcpServerConnector::from(DnsConfig::addr(&addr))))
    } else {
        AnyConnector::NoDelay(NoDelayConnector { addr })
    })
}

enum AnyConnector {
    StartTls(StartTlsConnector),
    Tcp(Box<TcpServerConnector>),
    NoDelay(NoDelayConnector),
}

/// Connects, authenticates, binds; returns the client and its bound JID.
async fn login(o: &Opts, (user, password): &(String, String)) -> Result<(Side, Jid), String> {
    let jid = BareJid::new(&format!("{user}@{}", o.domain)).map_err(|e| e.to_string())?;
    let jid = Jid::from(jid);
    let timeouts = Timeouts::tight();
    let pw = password.clone();
    let mut side = match (o.api, connector_for(o)?) {
        (Api::Stream, c) => Side::Stream(match c {
            AnyConnector::StartTls(c) => StanzaStream::new_c2s(c, jid, pw, timeouts, o.queue),
            AnyConnector::Tcp(c) => StanzaStream::new_c2s(*c, jid, pw, timeouts, o.queue),
            AnyConnector::NoDelay(c) => StanzaStream::new_c2s(c, jid, pw, timeouts, o.queue),
        }),
        (Api::Client, c) => Side::Client(Box::new(match c {
            AnyConnector::StartTls(c) => Client::new_with_connector(jid, pw, c, timeouts),
            AnyConnector::Tcp(c) => Client::new_with_connector(jid, pw, *c, timeouts),
            AnyConnector::NoDelay(c) => Client::new_with_connector(jid, pw, c, timeouts),
        })),
    };
    let bound = match &mut side {
        Side::Stream(s) => loop {
            match s.next().await {
                Some(SEvent::Stream(StreamEvent::Reset { bound_jid, .. })) => break bound_jid,
                Some(_) => {}
                None => return Err(format!("{user}: stream ended before it was online")),
            }
        },
        Side::Client(c) => loop {
            match c.next().await {
                Some(CEvent::Online { bound_jid, .. }) => break bound_jid,
                Some(CEvent::Disconnected(e)) => return Err(format!("{user}: {e}")),
                Some(_) => {}
                None => return Err(format!("{user}: client ended before it was online")),
            }
        },
    };
    // Initial presence, as the bridge sends by default.
    side.send(Presence::available().into()).await?;
    Ok((side, bound))
}

fn chat(to: &Jid, id: String, body: String) -> Stanza {
    let mut m = Message::new_with_type(MessageType::Chat, Some(to.clone()));
    m.id = Some(Id(id));
    m.bodies.insert(Lang::default(), body);
    m.into()
}

fn body(st: &Stanza) -> Option<&str> {
    match st {
        Stanza::Message(m) => m.bodies.values().next().map(String::as_str),
        _ => None,
    }
}

/// utime + stime of this process, in clock ticks (Linux /proc), 0 elsewhere.
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command name, which is in parentheses: state is the
    // first, utime the 12th, stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

struct Throughput {
    cpu_ticks: u64,
    received: u64,
    in_order: bool,
    secs: f64,
    acked: bool,
    acked_secs: f64,
}

async fn throughput(
    n: u64,
    alice: &mut Side,
    bob: Side,
    bob_jid: &Jid,
) -> Result<(Throughput, Side), String> {
    // Bob counts in a task of his own, as a second program would.
    let counter = tokio::spawn(async move {
        let mut bob = bob;
        let mut received = 0u64;
        let mut in_order = true;
        while received < n {
            let st = bob.next_stanza().await?;
            let Some(b) = body(&st) else { continue };
            let Ok(k) = b.parse::<u64>() else { continue };
            if k != received {
                in_order = false;
            }
            received += 1;
        }
        Ok::<_, String>((received, in_order, Instant::now(), bob))
    });
    let cpu0 = cpu_ticks();
    let start = Instant::now();
    let mut last = None;
    for i in 0..n {
        last = Some(
            alice
                .send(chat(bob_jid, format!("m{i}"), i.to_string()))
                .await?,
        );
    }
    let (received, in_order, done, bob) = counter.await.map_err(|e| e.to_string())??;
    let secs = (done - start).as_secs_f64();
    let acked = match last {
        // XEP-0198 acks are cumulative: the last one acked means all are.
        Some(mut token) => matches!(
            token.wait_for(StanzaStage::Acked).await,
            Some(state) if state == StanzaStage::Acked
        ),
        None => true,
    };
    let acked_secs = start.elapsed().as_secs_f64();
    let cpu = cpu_ticks() - cpu0;
    Ok((
        Throughput {
            cpu_ticks: cpu,
            received,
            in_order,
            secs,
            acked,
            acked_secs,
        },
        bob,
    ))
}

async fn round_trips(
    o: &Opts,
    alice: &mut Side,
    alice_jid: &Jid,
    bob: Side,
    bob_jid: &Jid,
) -> Result<(Vec<u64>, Side), String> {
    let total = o.warmup + o.rtt;
    let alice_jid = alice_jid.clone();
    // Bob answers every message at once, with the same body.
    let echo = tokio::spawn(async move {
        let mut bob = bob;
        let mut answered = 0;
        while answered < total {
            let st = bob.next_stanza().await?;
            if let Some(b) = body(&st) {
                let b = b.to_owned();
                bob.send(chat(&alice_jid, format!("e{b}"), b)).await?;
                answered += 1;
            }
        }
        Ok::<_, String>(bob)
    });
    let mut samples = Vec::with_capacity(o.rtt);
    for i in 0..total {
        let text = format!("r{i}");
        let t0 = Instant::now();
        alice
            .send(chat(bob_jid, format!("q{i}"), text.clone()))
            .await?;
        loop {
            let st = alice.next_stanza().await?;
            if body(&st) == Some(text.as_str()) {
                break;
            }
        }
        if i >= o.warmup {
            samples.push(t0.elapsed().as_micros() as u64);
        }
    }
    let bob = echo.await.map_err(|e| e.to_string())??;
    Ok((samples, bob))
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(o: Opts) -> Result<(), String> {
    let t0 = Instant::now();
    let ((mut alice, alice_jid), (bob, bob_jid)) =
        tokio::try_join!(login(&o, &o.alice), login(&o, &o.bob))?;
    println!(
        "ONLINE connect_ms={:.1} alice={alice_jid} bob={bob_jid}",
        t0.elapsed().as_secs_f64() * 1000.0
    );

    let mut bob = bob;
    if o.n > 0 && o.warmup_n > 0 {
        let (w, b) = throughput(o.warmup_n, &mut alice, bob, &bob_jid).await?;
        bob = b;
        if w.received != o.warmup_n || !w.acked {
            return Err(format!(
                "warm-up lost messages: {}/{}",
                w.received, o.warmup_n
            ));
        }
    }
    if o.n > 0 {
        let (t, b) = throughput(o.n, &mut alice, bob, &bob_jid).await?;
        bob = b;
        println!(
            "THROUGHPUT n={} received={} in_order={} acked={} secs={:.6} rate={:.1} acked_secs={:.6} cpu_ticks={}",
            o.n,
            t.received,
            t.in_order,
            t.acked,
            t.secs,
            o.n as f64 / t.secs,
            t.acked_secs,
            t.cpu_ticks
        );
    }
    if o.rtt > 0 {
        let (mut s, b) = round_trips(&o, &mut alice, &alice_jid, bob, &bob_jid).await?;
        bob = b;
        s.sort_unstable();
        let mean = s.iter().sum::<u64>() as f64 / s.len() as f64;
        println!(
            "RTT samples={} p50_us={} p90_us={} p99_us={} mean_us={:.1} max_us={}",
            s.len(),
            pct(&s, 50.0),
            pct(&s, 90.0),
            pct(&s, 99.0),
            mean,
            s.last().copied().unwrap_or(0)
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(alice.close(), bob.close());
    })
    .await;
    Ok(())
}

/// Prints tokio-xmpp's `log` records (connection failures, retries) on
/// stderr when CONN_BASELINE_LOG names a level.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
    }
    fn flush(&self) {}
}

fn init_log() {
    let Ok(level) = std::env::var("CONN_BASELINE_LOG") else {
        return;
    };
    if let Ok(level) = level.parse::<log::LevelFilter>() {
        static LOGGER: StderrLog = StderrLog;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
    }
}

fn main() -> ExitCode {
    init_log();
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limit = o.timeout;
    match rt.block_on(async { tokio::time::timeout(limit, run(o)).await }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("conn_baseline: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("conn_baseline: gave up after {limit:?}");
            ExitCode::FAILURE
        }
    }
}
