//! The Rust side of the bus benchmark (bench/bus.exs, `make bench-bus`).
//!
//! Modes, each an OS process that a bench script starts and reads:
//!
//! `bus_bench node --jid J --password P --host H --port N [--batch-delay-ms MS]`
//!
//! A bus node (`xmpp_bridge::bus::Node`, plaintext c2s, defaults otherwise;
//! `--batch-delay-ms` sets the session's `batch_delay`, 5 ms by default)
//! that serves `add` (two integers) and takes one command a line on stdin:
//!
//! - `sink N`: count the next N terms `{n, I, "payload"}` (prints `ARMED`
//!   at once, `SINK ...` when all N came, or after 30 s without progress)
//! - `flood TO N server|confirmed|none`: send N terms `{n, I, "payload"}`,
//!   I = 0..N-1, to TO as fast as the outbound queue takes them (on
//!   `QueueFull` wait 1 ms and try again); prints `FLOOD ...` once all are
//!   sent, and for `confirmed` once every receipt (or failure) came
//! - `rpc TO N C W`: W calls of `add(1, 2)` one at a time (unrecorded),
//!   then N calls with C in flight (C tasks, each one call at a time);
//!   prints `RPC ...` with the latency percentiles and calls/s
//! - `stop`: close the node cleanly and exit (so does the end of stdin:
//!   the process never outlives the VM that drives it)
//!
//! `bus_bench members --host H --port N --account JID:PASSWORD [--account ...]`
//!
//! Group members for the fan-out benchmark: one bus node (own account,
//! own session, defaults otherwise) per `--account`, all in this process,
//! each with a task of its own that takes its events. Commands, one a line
//! on stdin:
//!
//! - `join G`: every node joins group G (at once); prints `JOINED ...` when
//!   all joins are done
//! - `count G N`: every node counts the next N broadcasts `{n, I,
//!   "payload"}` to G (prints `ARMED` at once, `GSINK ...` when every node
//!   has all N, or one stalled 30 s)
//! - `gflood K G N`: node K (0-based) broadcasts N terms `{n, I,
//!   "payload"}`, I = 0..N-1, to G as fast as its outbound queue takes them
//!   (on `QueueFull` wait 1 ms, again); prints `GFLOOD ...` once all are out
//! - `leave G`: every node leaves G (prints `LEFT`)
//! - `stop` (or the end of stdin): close every node and exit
//!
//! `bus_bench nats --url nats://127.0.0.1:P [--n 20000] [--rounds 3]
//! [--warmup-n 2000] [--rtt 2000] [--warmup 200] [--calls 10000]
//! [--concurrency 64[,8...]]`
//!
//! The NATS reference, against a nats-server the bench started: pub/sub
//! throughput (a publisher connection floods a subject with the same terms
//! as the bus, ETF-encoded; a subscriber connection counts and checks
//! them), request/reply round trips one at a time, and calls/s with C in
//! flight for each C of `--concurrency C1,C2,...` (a responder connection
//! answers `add` on `bench.add`).
//!
//! `bus_bench names --host H --c2s-port P --component-port Q --domain D
//! --secret S --client-jid J --client-password P --receiver-jid J
//! --receiver-password P [--names 10000] [--terms 50000] [--warmup 2000]
//! [--rounds 3] [--calls 5000] [--warmup-calls 200] [--callers 8]
//! [--batch-delay-ms MS] [--exit-on-stdin-eof 1]`
//!
//! The Rust name host benchmark (bench/names_rust.exs, `make
//! bench-names`): memory per name, routing and calls to names vs to a
//! client node; see src/names.rs. Prints a markdown report and one
//! `NAMES_JSON {...}` line; exits 1 when anything was lost or failed.
//!
//! `bus_bench workers --server-a H:P --server-b H:P --account JID:PASSWORD
//! [--account ...] [--group farm] [--heartbeat-ms 5000]`
//!
//! Job farm workers for the cluster scale benchmark (bench/cluster_scale.exs,
//! `make bench-cluster`): one bus node per `--account` in this process,
//! spread over the two server nodes, each serving `job` and joined to the
//! group; see src/workers.rs.
//!
//! Output: one line per result, `TAG key=value ...` (no spaces in values).

use bytes::Bytes;
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use xmpp_bridge::bus::{self, Args, Delivery, Event, Payload, SendOptions};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::{self, Term};

/// A line on stdout, flushed; a closed stdout (the VM gone) is ignored,
/// where `println!` would panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

mod names;
mod workers;

fn usage(why: &str) -> ! {
    eprintln!("bus_bench: {why}");
    eprintln!(
        "usage: bus_bench node --jid J --password P --host H --port N [--batch-delay-ms MS]\n       \
         bus_bench members --host H --port N --account JID:PASSWORD [--account ...]\n       \
         bus_bench nats --url URL [--n N] [--rounds R] [--warmup-n N] [--rtt S] [--warmup W] \
         [--calls C] [--concurrency K[,K2...]]\n       \
         bus_bench names --host H --c2s-port P --component-port Q --domain D --secret S \
         --client-jid J --client-password P --receiver-jid J --receiver-password P \
         [--names N] [--terms N] [--warmup N] [--rounds R] [--calls C] [--warmup-calls W] \
         [--callers K] [--batch-delay-ms MS] [--exit-on-stdin-eof 1]\n       \
         bus_bench workers --server-a H:P --server-b H:P --account JID:PASSWORD [--account ...] \
         [--group G] [--heartbeat-ms MS]"
    );
    std::process::exit(2)
}

/// `--flag value` pairs.
fn parse_flags(args: impl Iterator<Item = String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let Some(name) = flag.strip_prefix("--") else {
            usage(&format!("unexpected argument {flag}"))
        };
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        out.push((name.to_owned(), value));
    }
    out
}

fn flag<'a>(flags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    flags
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn number(flags: &[(String, String)], name: &str, default: u64) -> u64 {
    match flag(flags, name) {
        None => default,
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| usage(&format!("--{name}: not a number: {v}"))),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage("no mode"));
    let flags = parse_flags(args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let status = match mode.as_str() {
        "node" => runtime.block_on(node_main(&flags)),
        "nats" => runtime.block_on(nats_main(&flags)),
        "members" => runtime.block_on(members_main(&flags)),
        "names" => runtime.block_on(names::names_main(&flags)),
        "workers" => runtime.block_on(workers::workers_main(&flags)),
        other => usage(&format!("unknown mode {other}")),
    };
    // Whatever tasks are left (a call in flight at `stop`) go with the process.
    runtime.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(status)
}

// ------------------------------------------------------------- helpers

/// The term `{n, i, "payload"}`.
fn bench_term(i: i64) -> Term {
    Term::tuple(vec![Term::atom("n"), Term::Int(i), Term::binary("payload")])
}

/// I of a `{n, I, "payload"}` term.
fn bench_index(t: &Term) -> Option<i64> {
    match t {
        Term::Tuple(items) => match items.as_slice() {
            [Term::Atom(a), Term::Int(i), Term::Binary(p)] if a == "n" && p == b"payload" => {
                Some(*i)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Latency statistics (nearest rank), in µs.
struct Stats {
    samples: usize,
    p50: u64,
    p90: u64,
    p99: u64,
    mean: f64,
    max: u64,
}

fn stats(mut us: Vec<u64>) -> Stats {
    us.sort_unstable();
    let n = us.len();
    let rank = |p: f64| -> u64 {
        if n == 0 {
            return 0;
        }
        let r = ((p / 100.0) * n as f64).ceil() as usize;
        us[r.clamp(1, n) - 1]
    };
    Stats {
        samples: n,
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        mean: if n == 0 {
            0.0
        } else {
            us.iter().sum::<u64>() as f64 / n as f64
        },
        max: us.last().copied().unwrap_or(0),
    }
}

impl Stats {
    fn fields(&self) -> String {
        format!(
            "samples={} p50_us={} p90_us={} p99_us={} mean_us={:.1} max_us={}",
            self.samples, self.p50, self.p90, self.p99, self.mean, self.max
        )
    }
}

/// Runs `count` calls of `call` with `concurrency` tasks, each making its
/// calls one at a time; returns (latencies in µs, errors, first error,
/// elapsed).
async fn concurrent_calls<F, Fut>(
    count: u64,
    concurrency: u64,
    call: F,
) -> (Vec<u64>, u64, Option<String>, Duration)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let concurrency = concurrency.clamp(1, count.max(1));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..concurrency {
        // count split as evenly as it goes
        let mine = count / concurrency + u64::from(k < count % concurrency);
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut us = Vec::with_capacity(mine as usize);
            let mut errors = 0u64;
            let mut first = None;
            for _ in 0..mine {
                let t = Instant::now();
                match call().await {
                    Ok(()) => us.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(e);
                    }
                }
            }
            (us, errors, first)
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    let mut errors = 0;
    let mut first = None;
    for t in tasks {
        match t.await {
            Ok((us, e, f)) => {
                all.extend(us);
                errors += e;
                if first.is_none() {
                    first = f;
                }
            }
            Err(e) => {
                errors += 1;
                first.get_or_insert(format!("task failed: {e}"));
            }
        }
    }
    (all, errors, first, t0.elapsed())
}

fn one_word(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("_")
}

// ---------------------------------------------------------- bus node

/// Counting the terms of a flood.
struct Sink {
    count: u64,
    got: u64,
    next: i64,
    in_order: bool,
    seen: Vec<bool>,
    dups: u64,
    others: u64,
    armed: Instant,
    first: Option<Instant>,
    last: Instant,
}

impl Sink {
    fn new(count: u64) -> Sink {
        let now = Instant::now();
        Sink {
            count,
            got: 0,
            next: 0,
            in_order: true,
            seen: vec![false; count as usize],
            dups: 0,
            others: 0,
            armed: now,
            first: None,
            last: now,
        }
    }

    fn take(&mut self, payload: &Payload) {
        let now = Instant::now();
        let index = match payload {
            Payload::Term(t) => bench_index(t),
            Payload::Json(_) => None,
        };
        let Some(i) = index else {
            self.others += 1;
            return;
        };
        self.first.get_or_insert(now);
        self.last = now;
        match usize::try_from(i).ok().filter(|&i| i < self.seen.len()) {
            Some(slot) if self.seen[slot] => self.dups += 1,
            Some(slot) => {
                self.seen[slot] = true;
                self.got += 1;
                if i != self.next {
                    self.in_order = false;
                }
                self.next = i + 1;
            }
            None => self.others += 1,
        }
    }

    fn done(&self) -> bool {
        self.got >= self.count
    }

    fn report(&self) -> String {
        let us = |t: Instant| t.duration_since(self.armed).as_micros();
        format!(
            "SINK count={} received={} in_order={} dups={} others={} first_us={} last_us={}",
            self.count,
            self.got,
            self.in_order,
            self.dups,
            self.others,
            self.first.map(us).unwrap_or(0),
            us(self.last)
        )
    }
}

/// A flood under way: what its task reported, and the outcomes seen.
struct Flood {
    delivery: Delivery,
    sent: Option<FloodSent>,
    delivered: u64,
    failed: u64,
    first_failure: Option<String>,
    t0: Instant,
    sent_at: Option<Instant>,
}

struct FloodSent {
    count: u64,
    sent: u64,
    queue_full: u64,
    errors: u64,
    first_error: Option<String>,
    send_us: u128,
}

impl Flood {
    /// Done once all were sent and, when confirmed, every outcome came
    /// (or 60 s passed since the last send).
    fn done(&self) -> bool {
        match (&self.sent, self.delivery) {
            (None, _) => false,
            (Some(_), Delivery::Confirmed) => {
                let s = self.sent.as_ref().expect("sent");
                self.delivered + self.failed >= s.sent
                    || self
                        .sent_at
                        .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
            }
            (Some(_), _) => true,
        }
    }

    fn report(&self) -> String {
        let s = self.sent.as_ref().expect("sent");
        format!(
            "FLOOD count={} sent={} queue_full={} errors={} send_us={} delivered={} failed={} \
             done_us={} first_error={}",
            s.count,
            s.sent,
            s.queue_full,
            s.errors,
            s.send_us,
            self.delivered,
            self.failed,
            self.t0.elapsed().as_micros(),
            one_word(
                s.first_error
                    .as_deref()
                    .or(self.first_failure.as_deref())
                    .unwrap_or("-")
            )
        )
    }
}

async fn flood(node: bus::Node, to: String, count: u64, delivery: Delivery) -> FloodSent {
    let options = SendOptions {
        delivery,
        deadline: None,
    };
    let t0 = Instant::now();
    let mut queue_full = 0u64;
    let mut errors = 0u64;
    let mut first_error = None;
    let mut sent = 0u64;
    for i in 0..count {
        loop {
            match node.send_term(&to, bench_term(i as i64), options) {
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

async fn rpc(node: bus::Node, to: String, count: u64, concurrency: u64, warmup: u64) -> String {
    let timeout = Duration::from_secs(5);
    let call = {
        let node = node.clone();
        let to = to.clone();
        move || {
            let node = node.clone();
            let to = to.clone();
            async move {
                match node
                    .call_term(&to, "add", vec![Term::Int(1), Term::Int(2)], timeout)
                    .await
                {
                    Ok(Term::Int(3)) => Ok(()),
                    Ok(other) => Err(format!("add(1,2) answered {other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    };
    let mut warm_errors = 0;
    for _ in 0..warmup {
        if call().await.is_err() {
            warm_errors += 1;
        }
    }
    let (us, errors, first, elapsed) = concurrent_calls(count, concurrency, call).await;
    let done = us.len() as f64;
    format!(
        "RPC concurrency={} {} errors={} warmup_errors={} secs={:.4} calls_per_s={:.1} first_error={}",
        concurrency,
        stats(us).fields(),
        errors,
        warm_errors,
        elapsed.as_secs_f64(),
        done / elapsed.as_secs_f64().max(1e-9),
        one_word(first.as_deref().unwrap_or("-"))
    )
}

enum Done {
    Flood(FloodSent),
    Rpc(String),
}

async fn node_main(flags: &[(String, String)]) -> i32 {
    let jid = flag(flags, "jid").unwrap_or_else(|| usage("--jid is required"));
    let password = flag(flags, "password").unwrap_or_else(|| usage("--password is required"));
    let mut config = bus::Config::new(jid, password);
    config.connection.host = flag(flags, "host").map(str::to_owned);
    config.connection.port =
        u16::try_from(number(flags, "port", 5222)).unwrap_or_else(|_| usage("--port"));
    config.connection.tls = TlsMode::Plain;
    if let Some(ms) = flag(flags, "batch-delay-ms") {
        let ms = ms
            .parse()
            .unwrap_or_else(|_| usage("--batch-delay-ms: not a number"));
        config.connection.batch_delay = Duration::from_millis(ms);
    }
    let (node, mut events) =
        match tokio::time::timeout(Duration::from_secs(30), bus::Node::connect(config)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                eprintln!("bus_bench: {e}");
                return 1;
            }
            Err(_) => {
                eprintln!("bus_bench: not online after 30 s");
                return 1;
            }
        };
    node.serve("add", |args: Args| async move {
        let (a, b): (i64, i64) = args.decode().map_err(|e| e.to_string())?;
        Ok(Term::Int(a + b))
    });
    say!(
        "ONLINE jid={} incarnation={}",
        node.jid(),
        node.incarnation()
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
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut sink: Option<Sink> = None;
    let mut flood_state: Option<Flood> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));

    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    [] => {}
                    ["stop"] => break,
                    ["sink", n] => match n.parse::<u64>() {
                        Ok(n) => {
                            sink = Some(Sink::new(n));
                            say!("ARMED count={n}");
                        }
                        Err(_) => say!("BAD line={}", one_word(&line)),
                    },
                    ["flood", to, n, delivery] => {
                        let delivery = match *delivery {
                            "server" => Some(Delivery::Server),
                            "confirmed" => Some(Delivery::Confirmed),
                            "none" => Some(Delivery::None),
                            _ => None,
                        };
                        match (n.parse::<u64>(), delivery) {
                            (Ok(n), Some(delivery)) => {
                                flood_state = Some(Flood {
                                    delivery,
                                    sent: None,
                                    delivered: 0,
                                    failed: 0,
                                    first_failure: None,
                                    t0: Instant::now(),
                                    sent_at: None,
                                });
                                let (node, to, tx) = (node.clone(), to.to_string(), done_tx.clone());
                                tokio::spawn(async move {
                                    let _ = tx.send(Done::Flood(flood(node, to, n, delivery).await));
                                });
                            }
                            _ => say!("BAD line={}", one_word(&line)),
                        }
                    }
                    ["rpc", to, n, c, w] => match (n.parse(), c.parse(), w.parse()) {
                        (Ok(n), Ok(c), Ok(w)) => {
                            let (node, to, tx) = (node.clone(), to.to_string(), done_tx.clone());
                            tokio::spawn(async move {
                                let _ = tx.send(Done::Rpc(rpc(node, to, n, c, w).await));
                            });
                        }
                        _ => say!("BAD line={}", one_word(&line)),
                    },
                    _ => say!("BAD line={}", one_word(&line)),
                }
            }
            event = events.next() => match event {
                None => {
                    eprintln!("bus_bench: the node closed by itself");
                    return 1;
                }
                Some(Event::Message { payload, .. }) => {
                    if let Some(s) = sink.as_mut() {
                        s.take(&payload);
                        if s.done() {
                            say!("{}", s.report());
                            sink = None;
                        }
                    }
                }
                Some(Event::Delivered(_)) => {
                    if let Some(f) = flood_state.as_mut() {
                        f.delivered += 1;
                    }
                }
                Some(Event::Failed(_, why)) => {
                    if let Some(f) = flood_state.as_mut() {
                        f.failed += 1;
                        f.first_failure.get_or_insert(why.to_string());
                    }
                }
                Some(Event::Disconnected(e)) => eprintln!("bus_bench: disconnected: {e}"),
                Some(Event::Closed(why)) => {
                    eprintln!("bus_bench: closed: {why:?}");
                }
                Some(_) => {}
            },
            done = done_rx.recv() => match done {
                Some(Done::Flood(sent)) => {
                    if let Some(f) = flood_state.as_mut() {
                        f.sent = Some(sent);
                        f.sent_at = Some(Instant::now());
                    }
                }
                Some(Done::Rpc(line)) => say!("{line}"),
                None => {}
            },
            _ = tick.tick() => {
                if let Some(s) = &sink {
                    if s.last.elapsed() > Duration::from_secs(30) {
                        say!("{}", s.report());
                        sink = None;
                    }
                }
            }
        }
        if flood_state.as_ref().is_some_and(Flood::done) {
            say!("{}", flood_state.take().expect("a flood").report());
        }
    }
    node.close().await;
    say!("STOPPED");
    0
}

// ------------------------------------------------------ group members

/// What a member's task reports: its index and its count of a round.
type Counted = (usize, Sink);

/// Takes the events of one node; counts the broadcasts to a group while
/// armed (`(group, N)` on `arm`).
async fn member_task(
    index: usize,
    mut events: bus::Events,
    mut arm: mpsc::UnboundedReceiver<(String, u64)>,
    done: mpsc::UnboundedSender<Counted>,
) {
    let mut counting: Option<(String, Sink)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            cmd = arm.recv() => match cmd {
                Some((group, n)) => counting = Some((group, Sink::new(n))),
                None => break,
            },
            event = events.next() => match event {
                None => break,
                Some(Event::Broadcast { group, payload, .. }) => {
                    if let Some((g, s)) = counting.as_mut() {
                        if *g == group {
                            s.take(&payload);
                            if s.done() {
                                let (_, s) = counting.take().expect("counting");
                                let _ = done.send((index, s));
                            }
                        }
                    }
                }
                Some(Event::Disconnected(e)) => eprintln!("bus_bench member {index}: disconnected: {e}"),
                Some(Event::Closed(Some(e))) => eprintln!("bus_bench member {index}: closed: {e}"),
                Some(_) => {}
            },
            _ = tick.tick() => {
                let stalled = counting
                    .as_ref()
                    .is_some_and(|(_, s)| s.last.elapsed() > Duration::from_secs(30));
                if stalled {
                    let (_, s) = counting.take().expect("counting");
                    let _ = done.send((index, s));
                }
            }
        }
    }
}

async fn gflood(node: bus::Node, group: String, count: u64) -> String {
    let t0 = Instant::now();
    let (mut sent, mut queue_full, mut errors) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for i in 0..count {
        loop {
            match node.broadcast_term(&group, bench_term(i as i64)) {
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
    format!(
        "GFLOOD count={count} sent={sent} queue_full={queue_full} errors={errors} send_us={} \
         first_error={}",
        t0.elapsed().as_micros(),
        one_word(first_error.as_deref().unwrap_or("-"))
    )
}

/// A round being counted: N, and the members' reports so far.
struct Round {
    count: u64,
    reports: Vec<Sink>,
}

impl Round {
    fn report(&self, nodes: usize) -> String {
        let received: Vec<u64> = self.reports.iter().map(|s| s.got).collect();
        format!(
            "GSINK count={} nodes={nodes} complete={} received_total={} received_min={} \
             in_order={} dups={} others={}",
            self.count,
            self.reports.iter().filter(|s| s.done()).count(),
            received.iter().sum::<u64>(),
            if self.reports.len() < nodes {
                0
            } else {
                received.iter().copied().min().unwrap_or(0)
            },
            self.reports.iter().all(|s| s.in_order),
            self.reports.iter().map(|s| s.dups).sum::<u64>(),
            self.reports.iter().map(|s| s.others).sum::<u64>(),
        )
    }
}

async fn members_main(flags: &[(String, String)]) -> i32 {
    let host = flag(flags, "host").map(str::to_owned);
    let port = u16::try_from(number(flags, "port", 5222)).unwrap_or_else(|_| usage("--port"));
    let accounts: Vec<(String, String)> = flags
        .iter()
        .filter(|(k, _)| k == "account")
        .map(|(_, v)| match v.split_once(':') {
            Some((jid, pw)) => (jid.to_owned(), pw.to_owned()),
            None => usage("--account: expected JID:PASSWORD"),
        })
        .collect();
    if accounts.is_empty() {
        usage("members: no --account");
    }
    let connects = accounts.iter().map(|(jid, pw)| {
        let mut config = bus::Config::new(jid.as_str(), pw.as_str());
        config.connection.host = host.clone();
        config.connection.port = port;
        config.connection.tls = TlsMode::Plain;
        tokio::time::timeout(Duration::from_secs(30), bus::Node::connect(config))
    });
    let mut nodes = Vec::new();
    let mut arms = Vec::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Counted>();
    for (index, result) in futures::future::join_all(connects)
        .await
        .into_iter()
        .enumerate()
    {
        let (node, events) = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                eprintln!("bus_bench members: {}: {e}", accounts[index].0);
                return 1;
            }
            Err(_) => {
                eprintln!(
                    "bus_bench members: {}: not online after 30 s",
                    accounts[index].0
                );
                return 1;
            }
        };
        let (arm_tx, arm_rx) = mpsc::unbounded_channel();
        tokio::spawn(member_task(index, events, arm_rx, done_tx.clone()));
        nodes.push(node);
        arms.push(arm_tx);
    }
    say!(
        "ONLINE nodes={} jids={}",
        nodes.len(),
        nodes
            .iter()
            .map(bus::Node::jid)
            .collect::<Vec<_>>()
            .join(",")
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
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let mut round: Option<Round> = None;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    [] => {}
                    ["stop"] => break,
                    ["join", group] => {
                        let (group, nodes, tx) = (group.to_string(), nodes.clone(), out_tx.clone());
                        tokio::spawn(async move {
                            let t0 = Instant::now();
                            let results =
                                futures::future::join_all(nodes.iter().map(|n| n.join(&group))).await;
                            let errors: Vec<String> =
                                results.into_iter().filter_map(|r| r.err().map(|e| e.to_string())).collect();
                            let _ = tx.send(format!(
                                "JOINED group={group} nodes={} errors={} ms={} first_error={}",
                                nodes.len(),
                                errors.len(),
                                t0.elapsed().as_millis(),
                                one_word(errors.first().map(String::as_str).unwrap_or("-"))
                            ));
                        });
                    }
                    ["leave", group] => {
                        let errors = nodes.iter().filter(|n| n.leave(group).is_err()).count();
                        say!("LEFT group={group} errors={errors}");
                    }
                    ["count", group, n] => match n.parse::<u64>() {
                        Ok(n) => {
                            round = Some(Round { count: n, reports: Vec::new() });
                            for arm in &arms {
                                let _ = arm.send((group.to_string(), n));
                            }
                            say!("ARMED count={n} nodes={}", nodes.len());
                        }
                        Err(_) => say!("BAD line={}", one_word(&line)),
                    },
                    ["gflood", k, group, n] => match (k.parse::<usize>(), n.parse::<u64>()) {
                        (Ok(k), Ok(n)) if k < nodes.len() => {
                            let (node, group, tx) = (nodes[k].clone(), group.to_string(), out_tx.clone());
                            tokio::spawn(async move {
                                let _ = tx.send(gflood(node, group, n).await);
                            });
                        }
                        _ => say!("BAD line={}", one_word(&line)),
                    },
                    _ => say!("BAD line={}", one_word(&line)),
                }
            }
            out = out_rx.recv() => {
                if let Some(out) = out {
                    say!("{out}");
                }
            }
            counted = done_rx.recv() => {
                if let (Some((_, sink)), Some(r)) = (counted, round.as_mut()) {
                    r.reports.push(sink);
                    if r.reports.len() == nodes.len() {
                        say!("{}", r.report(nodes.len()));
                        round = None;
                    }
                }
            }
        }
    }
    futures::future::join_all(nodes.iter().map(bus::Node::close)).await;
    say!("STOPPED");
    0
}

// --------------------------------------------------------------- NATS

fn add_answer(payload: &[u8]) -> Bytes {
    let sum = match etf::decode(payload) {
        Ok(Term::List(items)) => match items.as_slice() {
            [Term::Int(a), Term::Int(b)] => Term::Int(a + b),
            _ => Term::atom("badarg"),
        },
        _ => Term::atom("badarg"),
    };
    Bytes::from(etf::encode(&sum))
}

async fn nats_main(flags: &[(String, String)]) -> i32 {
    match nats_run(flags).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bus_bench nats: {e}");
            say!("NATS_ERROR what={}", one_word(&e));
            1
        }
    }
}

async fn nats_connect(url: &str, capacity: usize) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .subscription_capacity(capacity)
        .connect(url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))
}

async fn nats_run(flags: &[(String, String)]) -> Result<(), String> {
    let url = flag(flags, "url").unwrap_or_else(|| usage("--url is required"));
    let n = number(flags, "n", 20_000);
    let rounds = number(flags, "rounds", 3).max(1);
    let warmup_n = number(flags, "warmup-n", 2_000);
    let rtt = number(flags, "rtt", 2_000);
    let warmup = number(flags, "warmup", 200);
    let calls = number(flags, "calls", 10_000);
    let concurrencies: Vec<u64> = flag(flags, "concurrency")
        .unwrap_or("64")
        .split(',')
        .map(|c| {
            c.parse()
                .unwrap_or_else(|_| usage(&format!("--concurrency: not a number: {c}")))
        })
        .collect();
    // The subscriber's buffer holds a whole round: NATS has no flow
    // control, a subscription whose buffer is full drops messages.
    let capacity = (n.max(warmup_n) as usize + 1024).max(65_536);

    let publisher = nats_connect(url, capacity).await?;
    let subscriber = nats_connect(url, capacity).await?;
    let responder = nats_connect(url, capacity).await?;
    let requester = nats_connect(url, capacity).await?;
    say!("NATS_ONLINE url={url}");

    // pub/sub: one unrecorded warm-up round, then the rounds
    for round in 0..=rounds {
        let count = if round == 0 { warmup_n } else { n };
        if count == 0 {
            continue;
        }
        let subject = format!("bench.flood.{round}");
        let mut sub = subscriber
            .subscribe(subject.clone())
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        subscriber
            .flush()
            .await
            .map_err(|e| format!("flush: {e}"))?;
        let t0 = Instant::now();
        let p = publisher.clone();
        let send = tokio::spawn(async move {
            for i in 0..count {
                let payload = Bytes::from(etf::encode(&bench_term(i as i64)));
                p.publish(subject.clone(), payload)
                    .await
                    .map_err(|e| format!("publish: {e}"))?;
            }
            p.flush().await.map_err(|e| format!("flush: {e}"))?;
            Ok::<u128, String>(t0.elapsed().as_micros())
        });
        let (mut got, mut next, mut in_order, mut dups) = (0u64, 0i64, true, 0u64);
        let mut seen = vec![false; count as usize];
        while got < count {
            match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
                Ok(Some(m)) => {
                    let i = etf::decode(&m.payload).ok().as_ref().and_then(bench_index);
                    match i
                        .and_then(|i| usize::try_from(i).ok())
                        .filter(|&i| i < seen.len())
                    {
                        Some(slot) if seen[slot] => dups += 1,
                        Some(slot) => {
                            seen[slot] = true;
                            got += 1;
                            in_order &= slot as i64 == next;
                            next = slot as i64 + 1;
                        }
                        None => {}
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let send_us = send.await.map_err(|e| format!("publisher task: {e}"))??;
        let _ = sub.unsubscribe().await;
        let tag = if round == 0 {
            "NATS_WARMUP"
        } else {
            "NATS_PUBSUB"
        };
        say!(
            "{tag} round={round} n={count} received={got} in_order={in_order} dups={dups} \
             secs={secs:.4} rate={:.1} send_us={send_us}",
            got as f64 / secs.max(1e-9)
        );
    }

    // request/reply: a responder for `add`
    let mut rsub = responder
        .subscribe("bench.add")
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    responder.flush().await.map_err(|e| format!("flush: {e}"))?;
    let r = responder.clone();
    let serve = tokio::spawn(async move {
        while let Some(m) = rsub.next().await {
            if let Some(reply) = m.reply {
                let _ = r.publish(reply, add_answer(&m.payload)).await;
            }
        }
    });
    let args = Bytes::from(etf::encode(&Term::List(vec![Term::Int(1), Term::Int(2)])));
    let call = {
        let requester = requester.clone();
        move || {
            let requester = requester.clone();
            let args = args.clone();
            async move {
                let m = requester
                    .request("bench.add", args)
                    .await
                    .map_err(|e| e.to_string())?;
                match etf::decode(&m.payload) {
                    Ok(Term::Int(3)) => Ok(()),
                    other => Err(format!("add(1,2) answered {other:?}")),
                }
            }
        }
    };
    let mut warm_errors = 0;
    for _ in 0..warmup {
        if call().await.is_err() {
            warm_errors += 1;
        }
    }
    let (us, errors, first, _) = concurrent_calls(rtt, 1, call.clone()).await;
    say!(
        "NATS_RTT {} errors={errors} warmup_errors={warm_errors} first_error={}",
        stats(us).fields(),
        one_word(first.as_deref().unwrap_or("-"))
    );
    for &concurrency in &concurrencies {
        let (us, errors, first, elapsed) = concurrent_calls(calls, concurrency, call.clone()).await;
        let done = us.len() as f64;
        say!(
            "NATS_CALLS concurrency={concurrency} {} errors={errors} secs={:.4} calls_per_s={:.1} \
             first_error={}",
            stats(us).fields(),
            elapsed.as_secs_f64(),
            done / elapsed.as_secs_f64().max(1e-9),
            one_word(first.as_deref().unwrap_or("-"))
        );
    }
    serve.abort();
    Ok(())
}
