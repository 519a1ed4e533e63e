//! Plain MUC baseline for the group fan-out benchmark (bench/bus.exs,
//! `make bench-bus`): plain tokio-xmpp 6 clients, one sender and K members,
//! each its own account and session, in one MUC room of the same ejabberd
//! the bus groups use. No bus anywhere: a plain MUC join presence
//! (`<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>`;
//! the sender creates the room and unlocks it with an instant-room
//! configuration, XEP-0045 §10.1.2), plain `groupchat` messages.
//!
//! ```text
//! muc_baseline --port P --room ROOM@conference.localhost --sender USER:PW
//!   --member USER:PW [--member ...] [--host 127.0.0.1] [--domain localhost]
//!   [--pad 150] [--queue 10000]
//! ```
//!
//! Prints `READY members=K join_ms=...` once every client is in the room,
//! then takes one command a line on stdin:
//!
//! - `round R N`: every member counts the next N groupchat messages of the
//!   sender (body `I <padding>`, I = 0..N-1: distinct and in order is
//!   checked); the sender sends them as fast as tokio-xmpp's transmit queue
//!   takes them (it drains its own echoes meanwhile). Prints `PSENT ...`
//!   when the sender is done and `PROUND ...` when every member has all N
//!   (or one stalled 30 s).
//! - `stop` (or the end of stdin): close every session and exit.
//!
//! `--pad` is the number of filler characters after `I ` in each body, so
//! that a message is about as big as a bus broadcast.

use futures::{FutureExt, StreamExt};
use sasl::common::ChannelBinding;
use std::borrow::Cow;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::parsers::muc::muc::History;
use tokio_xmpp::parsers::muc::Muc;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::stanzastream::{Event as SEvent, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::{initiate_stream, PendingFeaturesRecv, StreamHeader, Timeouts};
use tokio_xmpp::Stanza;

const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const DATA_FORMS: &str = "jabber:x:data";

struct Opts {
    host: String,
    port: u16,
    domain: String,
    room: BareJid,
    sender: (String, String),
    members: Vec<(String, String)>,
    pad: usize,
    queue: usize,
}

const USAGE: &str = "usage: muc_baseline --port P --room ROOM@SERVICE --sender USER:PW \
--member USER:PW [--member ...] [--host 127.0.0.1] [--domain localhost] [--pad 150] [--queue 10000]";

fn parse_args() -> Result<Opts, String> {
    let (mut host, mut port, mut domain) = ("127.0.0.1".to_owned(), 0u16, "localhost".to_owned());
    let (mut room, mut sender, mut members) = (None, None, Vec::new());
    let (mut pad, mut queue) = (150usize, 10_000usize);
    let mut args = std::env::args().skip(1);
    fn num<T: FromStr>(flag: &str, v: String) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{flag}: not a number: {v:?}"))
    }
    fn account(flag: &str, v: String) -> Result<(String, String), String> {
        v.split_once(':')
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
            .ok_or_else(|| format!("{flag}: expected USER:PASSWORD"))
    }
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--host" => host = value()?,
            "--port" => port = num(&flag, value()?)?,
            "--domain" => domain = value()?,
            "--room" => room = Some(BareJid::new(&value()?).map_err(|e| format!("--room: {e}"))?),
            "--sender" => sender = Some(account(&flag, value()?)?),
            "--member" => members.push(account(&flag, value()?)?),
            "--pad" => pad = num(&flag, value()?)?,
            "--queue" => queue = num(&flag, value()?)?,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    match (room, sender) {
        (Some(room), Some(sender)) if port != 0 && !members.is_empty() && queue > 0 => Ok(Opts {
            host,
            port,
            domain,
            room,
            sender,
            members,
            pad,
            queue,
        }),
        _ => Err(USAGE.into()),
    }
}

/// tokio-xmpp's plaintext TCP connection plus TCP_NODELAY (as in
/// conn_baseline, and as the bridge sets it).
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
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let header = StreamHeader {
            to: Some(Cow::Borrowed(jid.domain().as_str())),
            from: None,
            id: None,
        };
        let pending = initiate_stream(BufStream::new(tcp), ns, header, timeouts).await?;
        Ok((pending, ChannelBinding::None))
    }
}

/// The next stanza; `Err` when the stream ends or is suspended.
async fn next_stanza(s: &mut StanzaStream) -> Result<Stanza, String> {
    loop {
        match s.next().await {
            Some(SEvent::Stanza(st)) => return Ok(st),
            Some(SEvent::Stream(StreamEvent::Suspended)) => {
                return Err("stream suspended (connection lost)".into())
            }
            Some(SEvent::Stream(_)) => {}
            None => return Err("stream ended".into()),
        }
    }
}

/// Logs in (plaintext, SASL, bind) and sends initial presence.
async fn login(o: &Opts, (user, password): &(String, String)) -> Result<StanzaStream, String> {
    let jid = Jid::from(BareJid::new(&format!("{user}@{}", o.domain)).map_err(|e| e.to_string())?);
    let connector = NoDelayConnector {
        addr: format!("{}:{}", o.host, o.port),
    };
    let mut s = StanzaStream::new_c2s(connector, jid, password.clone(), Timeouts::tight(), o.queue);
    loop {
        match s.next().await {
            Some(SEvent::Stream(StreamEvent::Reset { .. })) => break,
            Some(_) => {}
            None => return Err(format!("{user}: stream ended before it was online")),
        }
    }
    s.send(Box::new(Presence::available().into())).await;
    Ok(s)
}

/// The status codes of a MUC presence.
fn status_codes(p: &Presence) -> Vec<String> {
    p.payloads
        .iter()
        .filter(|el| el.is("x", MUC_USER))
        .flat_map(|x| x.children().filter(|c| c.is("status", MUC_USER)))
        .filter_map(|c| c.attr("code").map(str::to_owned))
        .collect()
}

/// Joins the room as `nick` with a plain MUC join presence (no history);
/// as the room's creator (status 201), unlocks it with an instant-room
/// configuration and waits for the result.
async fn join(s: &mut StanzaStream, room: &BareJid, nick: &str) -> Result<(), String> {
    let occupant = Jid::from_str(&format!("{room}/{nick}")).map_err(|e| e.to_string())?;
    let muc = Muc::new().with_history(History::new().with_maxstanzas(0));
    let presence = Presence::available()
        .with_to(occupant.clone())
        .with_payload(muc);
    s.send(Box::new(presence.into())).await;
    let created = loop {
        if let Stanza::Presence(p) = next_stanza(s).await? {
            if p.from.as_ref() == Some(&occupant) {
                if p.type_ == PresenceType::Error {
                    return Err(format!("join of {occupant} refused: {:?}", p.payloads));
                }
                let codes = status_codes(&p);
                if codes.iter().any(|c| c == "110") {
                    break codes.iter().any(|c| c == "201");
                }
            }
        }
    };
    if created {
        let query: Element =
            format!("<query xmlns='{MUC_OWNER}'><x xmlns='{DATA_FORMS}' type='submit'/></query>")
                .parse()
                .map_err(|e| format!("instant-room form: {e}"))?;
        let id = format!("cfg-{nick}");
        let iq = Iq::Set {
            from: None,
            to: Some(Jid::from(room.clone())),
            id: id.clone(),
            payload: query,
        };
        s.send(Box::new(iq.into())).await;
        loop {
            match next_stanza(s).await? {
                Stanza::Iq(Iq::Result { id: got, .. }) if got == id => break,
                Stanza::Iq(Iq::Error { id: got, error, .. }) if got == id => {
                    return Err(format!("configuring {room}: {error:?}"))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn groupchat(room: &BareJid, id: String, body: String) -> Stanza {
    let mut m = Message::new_with_type(MessageType::Groupchat, Some(Jid::from(room.clone())));
    m.id = Some(Id(id));
    m.bodies.insert(Lang::default(), body);
    m.into()
}

/// A member's count of one round.
#[derive(Debug)]
struct Count {
    n: u64,
    got: u64,
    next: u64,
    in_order: bool,
    dups: u64,
    seen: Vec<bool>,
    last: Instant,
}

impl Count {
    fn new(n: u64) -> Count {
        Count {
            n,
            got: 0,
            next: 0,
            in_order: true,
            dups: 0,
            seen: vec![false; n as usize],
            last: Instant::now(),
        }
    }

    fn take(&mut self, i: u64) {
        self.last = Instant::now();
        match self.seen.get_mut(i as usize) {
            Some(true) => self.dups += 1,
            Some(slot) => {
                *slot = true;
                self.got += 1;
                self.in_order &= i == self.next;
                self.next = i + 1;
            }
            None => {}
        }
    }

    fn done(&self) -> bool {
        self.got >= self.n
    }
}

/// A member: takes every stanza of its session; while armed, counts the
/// sender's groupchat messages.
async fn member(
    mut s: StanzaStream,
    from: Jid,
    mut arm: mpsc::UnboundedReceiver<u64>,
    done: mpsc::UnboundedSender<Count>,
) {
    let mut counting: Option<Count> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            cmd = arm.recv() => match cmd {
                Some(n) => counting = Some(Count::new(n)),
                None => break,
            },
            event = s.next() => match event {
                Some(SEvent::Stanza(Stanza::Message(m))) => {
                    if let Some(c) = counting.as_mut() {
                        if m.type_ == MessageType::Groupchat && m.from.as_ref() == Some(&from) {
                            let index = m
                                .bodies
                                .values()
                                .next()
                                .and_then(|b| b.split(' ').next())
                                .and_then(|i| i.parse::<u64>().ok());
                            if let Some(i) = index {
                                c.take(i);
                                if c.done() {
                                    let _ = done.send(counting.take().expect("counting"));
                                }
                            }
                        }
                    }
                }
                Some(SEvent::Stream(StreamEvent::Suspended)) => eprintln!("muc_baseline: a member's stream was suspended"),
                Some(_) => {}
                None => break,
            },
            _ = tick.tick() => {
                if counting.as_ref().is_some_and(|c| c.last.elapsed() > Duration::from_secs(30)) {
                    let _ = done.send(counting.take().expect("counting"));
                }
            }
        }
    }
    s.close().await;
}

/// The sender: on `(round, n)`, sends n groupchat messages, draining its
/// own echoes (and whatever else comes) between sends.
async fn sender(
    mut s: StanzaStream,
    room: BareJid,
    pad: String,
    mut go: mpsc::UnboundedReceiver<(u64, u64)>,
    out: mpsc::UnboundedSender<String>,
) {
    loop {
        tokio::select! {
            cmd = go.recv() => {
                let Some((round, n)) = cmd else { break };
                let t0 = Instant::now();
                for i in 0..n {
                    s.send(Box::new(groupchat(&room, format!("r{round}m{i}"), format!("{i} {pad}"))))
                        .await;
                    while let Some(Some(_)) = s.next().now_or_never() {}
                }
                let _ = out.send(format!("PSENT round={round} count={n} send_us={}", t0.elapsed().as_micros()));
            }
            event = s.next() => if event.is_none() { break },
        }
    }
    s.close().await;
}

async fn run(o: Opts) -> Result<(), String> {
    let t0 = Instant::now();
    let sender_nick = o.sender.0.clone();
    let (mut s, members) = tokio::try_join!(
        login(&o, &o.sender),
        futures::future::try_join_all(o.members.iter().map(|a| login(&o, a)))
    )?;
    // The sender creates the room; then the members join, all at once.
    join(&mut s, &o.room, &sender_nick).await?;
    let mut members = members;
    futures::future::try_join_all(
        members
            .iter_mut()
            .zip(&o.members)
            .map(|(m, (user, _))| join(m, &o.room, user)),
    )
    .await?;
    let from = Jid::from_str(&format!("{}/{sender_nick}", o.room)).map_err(|e| e.to_string())?;
    let k = members.len();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Count>();
    let mut arms = Vec::new();
    for m in members {
        let (arm_tx, arm_rx) = mpsc::unbounded_channel();
        tokio::spawn(member(m, from.clone(), arm_rx, done_tx.clone()));
        arms.push(arm_tx);
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let (go_tx, go_rx) = mpsc::unbounded_channel();
    let pad = "x".repeat(o.pad);
    let send_task = tokio::spawn(sender(s, o.room.clone(), pad, go_rx, out_tx));
    println!(
        "READY members={k} join_ms={:.1}",
        t0.elapsed().as_secs_f64() * 1000.0
    );

    let (line_tx, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    // the round being counted: N, when it started, the members' counts
    let mut round: Option<(u64, Instant, Vec<Count>)> = None;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    [] => {}
                    ["stop"] => break,
                    ["round", r, n] => match (r.parse::<u64>(), n.parse::<u64>()) {
                        (Ok(r), Ok(n)) => {
                            for arm in &arms {
                                let _ = arm.send(n);
                            }
                            round = Some((n, Instant::now(), Vec::new()));
                            let _ = go_tx.send((r, n));
                        }
                        _ => println!("BAD line={}", line.replace(' ', "_")),
                    },
                    _ => println!("BAD line={}", line.replace(' ', "_")),
                }
            }
            out = out_rx.recv() => if let Some(out) = out { println!("{out}") },
            count = done_rx.recv() => {
                if let (Some(c), Some((n, started, counts))) = (count, round.as_mut()) {
                    counts.push(c);
                    if counts.len() == k {
                        let got: Vec<u64> = counts.iter().map(|c| c.got).collect();
                        println!(
                            "PROUND count={n} members={k} complete={} received_total={} received_min={} in_order={} dups={} secs={:.6}",
                            counts.iter().filter(|c| c.done()).count(),
                            got.iter().sum::<u64>(),
                            got.iter().copied().min().unwrap_or(0),
                            counts.iter().all(|c| c.in_order),
                            counts.iter().map(|c| c.dups).sum::<u64>(),
                            started.elapsed().as_secs_f64()
                        );
                        round = None;
                    }
                }
            }
        }
    }
    drop(go_tx);
    drop(arms);
    let _ = tokio::time::timeout(Duration::from_secs(5), send_task).await;
    println!("STOPPED");
    Ok(())
}

fn main() -> ExitCode {
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
    let result = rt.block_on(run(o));
    rt.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("muc_baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
