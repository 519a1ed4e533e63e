//! `bus_bench names`: the Rust name host benchmark (docs/PROTOCOL.md §7),
//! the Rust side of bench/names_rust.exs (`make bench-names`), beside the
//! BEAM figures of bench/names.exs.
//!
//! Three nodes in this process, one private server: a name host (an
//! external component), a sender client node and a receiver client node.
//!
//! 1. Memory per name: VmRSS (/proc/self/status) with the three nodes
//!    online, after `Node::register` of `--names` names (the `Name`s kept
//!    in a Vec), and after each `Name` moved into a tokio task of its own
//!    that loops on `Name::recv` (all tasks started and parked). Bytes per
//!    name = (last - first) / names: the host's entry, the name's channel
//!    and its task. Registrations/s: the register calls alone.
//! 2. Routing: the sender sends `--terms` terms `{n, I, "payload"}` round
//!    robin over the names (term I to name I rem names), `delivery:
//!    server`; every task counts its share (own, new, in order). Beside it
//!    the same terms from the sender to the receiver node (one loop on its
//!    Events). One unrecorded warm-up round each, then `--rounds` rounds,
//!    names and client rows alternating; medians. On `QueueFull` the
//!    sender waits 1 ms and sends again. Anything lost, duplicated or
//!    misrouted, or a send that failed: exit status 1.
//! 3. Calls: `--calls` calls `echo({c, I})` from `--callers` concurrent
//!    callers on the sender (each one call at a time), round robin over
//!    the names (the task answers with `Request::reply_term`), against the
//!    same calls to the receiver serving `echo` (`Node::serve`). A failed
//!    or wrong call: exit status 1.
//!
//! Output: progress on stderr; on stdout a markdown report, then one line
//! `NAMES_JSON {...}` with the figures.

use super::{bench_index, bench_term, concurrent_calls, flag, number, one_word, stats, usage};
use super::{FloodSent, Sink};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};
use xmpp_bridge::bus::{self, Args, Delivery, Event, Failure, NameEvent, Payload, SendOptions};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::Term;

/// No progress for this long ends a round (as lost).
const STALL: Duration = Duration::from_secs(20);

fn log(text: &str) {
    eprintln!("[names-rust] {text}");
}

/// VmRSS of this process, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// utime + stime of this process, seconds (USER_HZ 100, as on Linux x86
/// and arm64).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command (which may hold spaces), from its ')'
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // state is fields[0]; utime is field 14 of the line, fields[11] here
    (tick(11) + tick(12)) as f64 / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ------------------------------------------------------------ holders

/// One routing round, as the holders see it.
struct RoundState {
    id: u64,
    count: u64,
    seen: Vec<AtomicBool>,
    got: AtomicU64,
    dups: AtomicU64,
    misrouted: AtomicU64,
    out_of_order: AtomicU64,
    others: AtomicU64,
    end: Mutex<Option<Instant>>,
    done: Notify,
}

impl RoundState {
    fn new(id: u64, count: u64) -> RoundState {
        RoundState {
            id,
            count,
            seen: (0..count).map(|_| AtomicBool::new(false)).collect(),
            got: AtomicU64::new(0),
            dups: AtomicU64::new(0),
            misrouted: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            others: AtomicU64::new(0),
            end: Mutex::new(None),
            done: Notify::new(),
        }
    }
}

/// What every holder task shares.
struct Shared {
    names: usize,
    round: RwLock<Arc<RoundState>>,
    started: AtomicUsize,
    calls: AtomicU64,
}

/// Holds name `k`: counts the terms of the current round, answers `echo`.
async fn holder(k: usize, mut name: bus::Name, shared: Arc<Shared>) {
    shared.started.fetch_add(1, Ordering::Relaxed);
    let (mut round_id, mut last) = (u64::MAX, -1i64);
    while let Some(event) = name.recv().await {
        match event {
            NameEvent::Message { payload, .. } => {
                let r = shared.round.read().expect("round lock").clone();
                if r.id != round_id {
                    (round_id, last) = (r.id, -1);
                }
                let index = match &payload {
                    Payload::Term(t) => bench_index(t),
                    Payload::Json(_) => None,
                };
                let slot = index
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|&i| (i as u64) < r.count);
                match slot {
                    None => {
                        r.others.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(i) if i % shared.names != k => {
                        r.misrouted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(i) if r.seen[i].swap(true, Ordering::Relaxed) => {
                        r.dups.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(i) => {
                        if (i as i64) <= last {
                            r.out_of_order.fetch_add(1, Ordering::Relaxed);
                        }
                        last = i as i64;
                        if r.got.fetch_add(1, Ordering::AcqRel) + 1 == r.count {
                            *r.end.lock().expect("end lock") = Some(Instant::now());
                            r.done.notify_one();
                        }
                    }
                }
            }
            NameEvent::Call(request) => {
                shared.calls.fetch_add(1, Ordering::Relaxed);
                if request.method() == "echo" {
                    let x = request.args().get(0).cloned().unwrap_or(Term::atom("nil"));
                    request.reply_term(x);
                } else {
                    request.fail(Failure::NoMethod);
                }
            }
        }
    }
}

// ------------------------------------------------- the client receiver

type Arm = (u64, oneshot::Sender<Sink>);

/// The receiver node's one loop on its Events: counts a round when armed.
async fn receiver_loop(mut events: bus::Events, mut arm: mpsc::UnboundedReceiver<Arm>) {
    let mut counting: Option<(Sink, oneshot::Sender<Sink>)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            cmd = arm.recv() => match cmd {
                Some((n, tx)) => counting = Some((Sink::new(n), tx)),
                None => break,
            },
            event = events.next() => match event {
                None => break,
                Some(Event::Message { payload, .. }) => {
                    if let Some((s, _)) = counting.as_mut() {
                        s.take(&payload);
                        if s.done() {
                            let (s, tx) = counting.take().expect("counting");
                            let _ = tx.send(s);
                        }
                    }
                }
                Some(Event::Disconnected(e)) => log(&format!("receiver disconnected: {e}")),
                Some(Event::Closed(Some(e))) => log(&format!("receiver closed: {e}")),
                Some(_) => {}
            },
            _ = tick.tick() => {
                if counting.as_ref().is_some_and(|(s, _)| s.last.elapsed() > STALL) {
                    let (s, tx) = counting.take().expect("counting");
                    let _ = tx.send(s);
                }
            }
        }
    }
}

/// Takes a node's events; counts failed sends.
async fn drain(label: &'static str, mut events: bus::Events, failed: Arc<AtomicU64>) {
    while let Some(event) = events.next().await {
        match event {
            Event::Failed(_, why) => {
                let first = failed.fetch_add(1, Ordering::Relaxed) == 0;
                if first {
                    log(&format!("{label}: first failed send: {why}"));
                }
            }
            Event::Disconnected(e) => log(&format!("{label} disconnected: {e}")),
            Event::Closed(Some(e)) => log(&format!("{label} closed: {e}")),
            _ => {}
        }
    }
}

/// Sends term I to `targets[I rem len]`, I = 0..count.
async fn flood_rr(node: bus::Node, targets: Arc<Vec<String>>, count: u64) -> FloodSent {
    let options = SendOptions {
        delivery: Delivery::Server,
        deadline: None,
    };
    let t0 = Instant::now();
    let (mut sent, mut queue_full, mut errors) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for i in 0..count {
        let to = &targets[(i % targets.len() as u64) as usize];
        loop {
            match node.send_term(to, bench_term(i as i64), options) {
                Ok(_) => {
                    sent += 1;
                    break;
                }
                Err(bus::Error::QueueFull) => {
                    queue_full += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e.to_string());
                    break;
                }
            }
        }
    }
    FloodSent {
        count,
        sent,
        queue_full,
        errors,
        first_error,
        send_us: t0.elapsed().as_micros(),
    }
}

/// A routing round's outcome.
struct Routed {
    count: u64,
    received: u64,
    lost: u64,
    dups: u64,
    misrouted: u64,
    in_order: bool,
    others: u64,
    secs: f64,
    send_secs: f64,
    queue_full: u64,
    send_errors: u64,
    cpu: f64,
}

impl Routed {
    fn rate(&self) -> f64 {
        self.received as f64 / self.secs.max(1e-9)
    }

    fn broken(&self) -> bool {
        self.lost > 0 || self.dups > 0 || self.misrouted > 0 || self.send_errors > 0
    }
}

struct Bench {
    sender: bus::Node,
    shared: Arc<Shared>,
    name_jids: Arc<Vec<String>>,
    receiver_jid: Arc<Vec<String>>,
    arm: mpsc::UnboundedSender<Arm>,
    next_round: u64,
}

impl Bench {
    async fn names_round(&mut self, count: u64) -> Routed {
        self.next_round += 1;
        let r = Arc::new(RoundState::new(self.next_round, count));
        *self.shared.round.write().expect("round lock") = r.clone();
        let cpu0 = cpu_secs();
        let t0 = Instant::now();
        let send = tokio::spawn(flood_rr(self.sender.clone(), self.name_jids.clone(), count));
        let (mut seen, mut progress) = (0u64, Instant::now());
        loop {
            if tokio::time::timeout(Duration::from_millis(500), r.done.notified())
                .await
                .is_ok()
            {
                break;
            }
            let got = r.got.load(Ordering::Acquire);
            if got >= count {
                break;
            }
            if got != seen {
                (seen, progress) = (got, Instant::now());
            } else if progress.elapsed() > STALL && send.is_finished() {
                log(&format!("names round stalled at {got} of {count}"));
                break;
            }
        }
        let end = r.end.lock().expect("end lock").unwrap_or_else(Instant::now);
        let sent = send.await.expect("the flood task");
        let received = r.got.load(Ordering::Acquire);
        Routed {
            count,
            received,
            lost: count - received.min(count),
            dups: r.dups.load(Ordering::Relaxed),
            misrouted: r.misrouted.load(Ordering::Relaxed),
            in_order: r.out_of_order.load(Ordering::Relaxed) == 0,
            others: r.others.load(Ordering::Relaxed),
            secs: end.duration_since(t0).as_secs_f64(),
            send_secs: sent.send_us as f64 / 1e6,
            queue_full: sent.queue_full,
            send_errors: sent.errors + (sent.count - sent.sent - sent.errors),
            cpu: cpu_secs() - cpu0,
        }
    }

    async fn client_round(&mut self, count: u64) -> Routed {
        let (tx, rx) = oneshot::channel();
        self.arm.send((count, tx)).expect("the receiver loop");
        let cpu0 = cpu_secs();
        let t0 = Instant::now();
        let send = tokio::spawn(flood_rr(
            self.sender.clone(),
            self.receiver_jid.clone(),
            count,
        ));
        let sink = rx.await.expect("the receiver loop's count");
        let sent = send.await.expect("the flood task");
        Routed {
            count,
            received: sink.got,
            lost: count - sink.got.min(count),
            dups: sink.dups,
            misrouted: 0,
            in_order: sink.in_order,
            others: sink.others,
            secs: sink.last.duration_since(t0).as_secs_f64(),
            send_secs: sent.send_us as f64 / 1e6,
            queue_full: sent.queue_full,
            send_errors: sent.errors,
            cpu: cpu_secs() - cpu0,
        }
    }
}

/// A calls round's outcome.
struct Called {
    rate: f64,
    p50: u64,
    p99: u64,
    errors: u64,
    first_error: String,
    cpu: f64,
}

async fn calls_round(
    sender: &bus::Node,
    targets: Arc<Vec<String>>,
    count: u64,
    callers: u64,
) -> Called {
    let next = Arc::new(AtomicU64::new(0));
    let call = {
        let sender = sender.clone();
        move || {
            let (sender, targets, next) = (sender.clone(), targets.clone(), next.clone());
            async move {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let to = &targets[(i % targets.len() as u64) as usize];
                let x = Term::tuple(vec![Term::atom("c"), Term::Int(i as i64)]);
                match sender
                    .call_term(to, "echo", vec![x.clone()], Duration::from_secs(5))
                    .await
                {
                    Ok(y) if y == x => Ok(()),
                    Ok(y) => Err(format!("echo({x:?}) answered {y:?}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    };
    let cpu0 = cpu_secs();
    let (us, errors, first, elapsed) = concurrent_calls(count, callers, call).await;
    let done = us.len() as f64;
    let s = stats(us);
    Called {
        rate: done / elapsed.as_secs_f64().max(1e-9),
        p50: s.p50,
        p99: s.p99,
        errors,
        first_error: one_word(first.as_deref().unwrap_or("-")),
        cpu: cpu_secs() - cpu0,
    }
}

async fn connect(config: bus::Config, what: &str) -> Result<(bus::Node, bus::Events), String> {
    match tokio::time::timeout(Duration::from_secs(30), bus::Node::connect(config)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: not online after 30 s")),
    }
}

fn client_config(jid: &str, password: &str, host: &Option<String>, port: u16) -> bus::Config {
    let mut config = bus::Config::new(jid, password);
    config.connection.host = host.clone();
    config.connection.port = port;
    config.connection.tls = TlsMode::Plain;
    config
}

fn required<'a>(flags: &'a [(String, String)], name: &str) -> &'a str {
    flag(flags, name).unwrap_or_else(|| usage(&format!("names: --{name} is required")))
}

pub(crate) async fn names_main(flags: &[(String, String)]) -> i32 {
    if number(flags, "exit-on-stdin-eof", 0) != 0 {
        // driven by a VM (a Port): go with it
        tokio::spawn(async {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
            log("stdin closed: exiting");
            std::process::exit(3);
        });
    }
    match run(flags).await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("bus_bench names: {e}");
            say!("NAMES_ERROR what={}", one_word(&e));
            1
        }
    }
}

/// Ok(false): the run went through but lost, duplicated or failed something.
async fn run(flags: &[(String, String)]) -> Result<bool, String> {
    let host = flag(flags, "host").map(str::to_owned);
    let port = |name: &str, default| {
        u16::try_from(number(flags, name, default)).unwrap_or_else(|_| usage(&format!("--{name}")))
    };
    let (c2s_port, component_port) = (port("c2s-port", 5222), port("component-port", 5347));
    let domain = required(flags, "domain");
    let secret = required(flags, "secret");
    let names = number(flags, "names", 10_000).max(1) as usize;
    let terms = number(flags, "terms", 50_000).max(1);
    let warmup = number(flags, "warmup", 2_000);
    let rounds = number(flags, "rounds", 3).max(1);
    let calls = number(flags, "calls", 5_000);
    let warmup_calls = number(flags, "warmup-calls", 200);
    let callers = number(flags, "callers", 8).max(1);
    let batch_delay = flag(flags, "batch-delay-ms").map(|ms| {
        Duration::from_millis(
            ms.parse()
                .unwrap_or_else(|_| usage("--batch-delay-ms: not a number")),
        )
    });
    let load0 = loadavg();
    let started = Instant::now();

    let mut host_config = bus::Config::component(domain, secret);
    host_config.connection.host = host.clone();
    host_config.connection.port = component_port;
    host_config.connection.tls = TlsMode::Plain;
    let mut sender_config = client_config(
        required(flags, "client-jid"),
        required(flags, "client-password"),
        &host,
        c2s_port,
    );
    let mut receiver_config = client_config(
        required(flags, "receiver-jid"),
        required(flags, "receiver-password"),
        &host,
        c2s_port,
    );
    if let Some(d) = batch_delay {
        for c in [&mut host_config, &mut sender_config, &mut receiver_config] {
            c.connection.batch_delay = d;
        }
    }
    let (host_node, host_events) = connect(host_config, "name host").await?;
    let (sender, sender_events) = connect(sender_config, "sender").await?;
    let (receiver, receiver_events) = connect(receiver_config, "receiver").await?;
    log(&format!(
        "online: host {}, sender {}, receiver {}",
        host_node.jid(),
        sender.jid(),
        receiver.jid()
    ));
    let failed = Arc::new(AtomicU64::new(0));
    tokio::spawn(drain("host", host_events, failed.clone()));
    tokio::spawn(drain("sender", sender_events, failed.clone()));
    let (arm, arm_rx) = mpsc::unbounded_channel();
    tokio::spawn(receiver_loop(receiver_events, arm_rx));
    receiver.serve("echo", |args: Args| async move {
        args.get(0)
            .cloned()
            .ok_or_else(|| "echo: no argument".to_owned())
    });
    // let the sessions settle (first reads, presences) before measuring
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. memory per name
    let rss0 = rss();
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(names);
    for k in 0..names {
        let name = host_node
            .register(&format!("worker-{k}"))
            .map_err(|e| format!("register worker-{k}: {e}"))?;
        held.push(name);
    }
    let register_secs = t0.elapsed().as_secs_f64();
    let rss1 = rss();
    let name_jids: Arc<Vec<String>> = Arc::new(held.iter().map(|n| n.jid().to_owned()).collect());
    let shared = Arc::new(Shared {
        names,
        round: RwLock::new(Arc::new(RoundState::new(0, 0))),
        started: AtomicUsize::new(0),
        calls: AtomicU64::new(0),
    });
    let t1 = Instant::now();
    for (k, name) in held.into_iter().enumerate() {
        tokio::spawn(holder(k, name, shared.clone()));
    }
    while shared.started.load(Ordering::Relaxed) < names {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let spawn_secs = t1.elapsed().as_secs_f64();
    // every task parked in recv()
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss2 = rss();
    let per = |b: u64, a: u64| (b as f64 - a as f64) / names as f64;
    log(&format!(
        "{names} names: {:.0} bytes/name with tasks ({:.0} registered only), {:.0} registrations/s",
        per(rss2, rss0),
        per(rss1, rss0),
        names as f64 / register_secs.max(1e-9)
    ));

    // 2. routing
    let mut bench = Bench {
        sender: sender.clone(),
        shared: shared.clone(),
        name_jids: name_jids.clone(),
        receiver_jid: Arc::new(vec![receiver.jid()]),
        arm,
        next_round: 0,
    };
    let mut ok = true;
    let mut check = |what: &str, r: &Routed| {
        if r.broken() {
            log(&format!(
                "BROKEN {what}: {} of {} received, lost {}, dups {}, misrouted {}, send errors {}, \
                 other messages {}",
                r.received, r.count, r.lost, r.dups, r.misrouted, r.send_errors, r.others
            ));
            ok = false;
        }
    };
    if warmup > 0 {
        let w = bench.names_round(warmup).await;
        check("warm-up names", &w);
        let w = bench.client_round(warmup).await;
        check("warm-up client", &w);
    }
    let (mut to_names, mut to_client) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let r = bench.names_round(terms).await;
        log(&format!("routing round {round}, names: {:.0}/s", r.rate()));
        check("names", &r);
        to_names.push(r);
        let r = bench.client_round(terms).await;
        log(&format!("routing round {round}, client: {:.0}/s", r.rate()));
        check("client", &r);
        to_client.push(r);
    }
    let failed_sends = failed.load(Ordering::Relaxed);
    if failed_sends > 0 {
        log(&format!(
            "BROKEN: {failed_sends} sends failed (Event::Failed)"
        ));
        ok = false;
    }

    // 3. calls
    let (mut calls_names, mut calls_client) = (Vec::new(), Vec::new());
    if calls > 0 {
        let receiver_jid = bench.receiver_jid.clone();
        if warmup_calls > 0 {
            let _ = calls_round(&sender, name_jids.clone(), warmup_calls, callers).await;
            let _ = calls_round(&sender, receiver_jid.clone(), warmup_calls, callers).await;
        }
        for round in 1..=rounds {
            let c = calls_round(&sender, name_jids.clone(), calls, callers).await;
            log(&format!("calls round {round}, names: {:.0}/s", c.rate));
            calls_names.push(c);
            let c = calls_round(&sender, receiver_jid.clone(), calls, callers).await;
            log(&format!("calls round {round}, client: {:.0}/s", c.rate));
            calls_client.push(c);
        }
        for c in calls_names.iter().chain(&calls_client) {
            if c.errors > 0 {
                log(&format!(
                    "BROKEN calls: {} errors, first {}",
                    c.errors, c.first_error
                ));
                ok = false;
            }
        }
    }

    let load1 = loadavg();
    for n in [&host_node, &sender, &receiver] {
        n.close().await;
    }

    // report
    let med = |v: &[Routed]| median(v.iter().map(Routed::rate).collect());
    let (rn, rc) = (med(&to_names), med(&to_client));
    let cmed = |v: &[Called]| median(v.iter().map(|c| c.rate).collect());
    let (cn, cc) = (cmed(&calls_names), cmed(&calls_client));
    let each = |v: Vec<f64>| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pct = |a: f64, b: f64| if b > 0.0 { a / b * 100.0 } else { 0.0 };

    say!("## Rust name host: memory per name ({names} names, a tokio task each)");
    say!();
    say!("| | VmRSS (bytes) | growth | bytes / name |");
    say!("|---|---:|---:|---:|");
    say!("| three nodes online, no names | {rss0} | | |");
    say!(
        "| after `register` x {names} (the `Name`s in a Vec) | {rss1} | {} | {:.0} |",
        rss1 as i64 - rss0 as i64,
        per(rss1, rss0)
    );
    say!(
        "| **after each `Name` moved into its own task looping on `recv()`** | {rss2} | {} | **{:.0}** |",
        rss2 as i64 - rss0 as i64,
        per(rss2, rss0)
    );
    say!();
    say!(
        "- Registering: {names} `Node::register` calls in {:.1} ms, **{:.0} registrations/s** \
         (one task, no server round trip); spawning the {names} holder tasks until all ran: {:.1} ms.",
        register_secs * 1e3,
        names as f64 / register_secs.max(1e-9),
        spawn_secs * 1e3
    );
    say!();
    say!(
        "## Rust routing: {terms} terms from one task of a client node ({rounds} rounds, medians)"
    );
    say!();
    say!("| | deliveries/s | each round | loss | dups | in order | send loop (s) | queue_full | this process's CPU (us / term) |");
    say!("|---|---:|---|---|---:|---|---:|---:|---:|");
    for (label, v) in [
        (
            format!("sender -> {names} names on the host (round robin)"),
            &to_names,
        ),
        (
            "sender -> receiver node (one loop on its Events)".to_owned(),
            &to_client,
        ),
    ] {
        say!(
            "| {label} | **{:.0}** | {} | {} ({} x {terms}) | {} | {} | {:.2} | {} | {:.1} |",
            med(v),
            each(v.iter().map(Routed::rate).collect()),
            v.iter().map(|r| r.lost).sum::<u64>(),
            v.len(),
            v.iter().map(|r| r.dups + r.misrouted).sum::<u64>(),
            if v.iter().all(|r| r.in_order) {
                "yes"
            } else {
                "no"
            },
            median(v.iter().map(|r| r.send_secs).collect()),
            v.iter().map(|r| r.queue_full).sum::<u64>(),
            median(v.iter().map(|r| r.cpu / r.count as f64 * 1e6).collect())
        );
    }
    say!();
    say!("**names / client: {:.1}%.**", pct(rn, rc));
    if calls > 0 {
        say!();
        say!("## Rust calls: {calls} calls of `echo` from {callers} concurrent callers ({rounds} rounds, medians)");
        say!();
        say!("| | calls/s | each round | p50 (us) | p99 (us) | errors | this process's CPU (us / call) |");
        say!("|---|---:|---|---:|---:|---:|---:|");
        for (label, v) in [
            (
                format!("sender -> {names} names (the task replies)"),
                &calls_names,
            ),
            (
                "sender -> receiver node (`Node::serve`)".to_owned(),
                &calls_client,
            ),
        ] {
            say!(
                "| {label} | **{:.0}** | {} | {:.0} | {:.0} | {} | {:.1} |",
                cmed(v),
                each(v.iter().map(|c| c.rate).collect()),
                median(v.iter().map(|c| c.p50 as f64).collect()),
                median(v.iter().map(|c| c.p99 as f64).collect()),
                v.iter().map(|c| c.errors).sum::<u64>(),
                median(v.iter().map(|c| c.cpu / calls as f64 * 1e6).collect())
            );
        }
        say!();
        say!("**names / client: {:.1}%.**", pct(cn, cc));
    }
    say!();
    say!(
        "Load average {load0} before, {load1} after; run time {:.0} s; {} calls answered by names.",
        started.elapsed().as_secs_f64(),
        shared.calls.load(Ordering::Relaxed)
    );
    say!(
        "NAMES_JSON {{\"names\":{names},\"rss_before\":{rss0},\"rss_registered\":{rss1},\
         \"rss_tasks\":{rss2},\"bytes_per_name\":{:.0},\"bytes_per_name_registered_only\":{:.0},\
         \"registrations_per_s\":{:.0},\"terms\":{terms},\"rounds\":{rounds},\
         \"names_deliveries_per_s\":{rn:.0},\"client_deliveries_per_s\":{rc:.0},\
         \"routing_ratio\":{:.3},\"names_calls_per_s\":{cn:.0},\"client_calls_per_s\":{cc:.0},\
         \"calls_ratio\":{:.3},\"lost\":{},\"ok\":{ok},\"load_before\":\"{load0}\",\
         \"load_after\":\"{load1}\"}}",
        per(rss2, rss0),
        per(rss1, rss0),
        names as f64 / register_secs.max(1e-9),
        pct(rn, rc) / 100.0,
        pct(cn, cc) / 100.0,
        to_names
            .iter()
            .chain(&to_client)
            .map(|r| r.lost)
            .sum::<u64>()
    );
    Ok(ok)
}
