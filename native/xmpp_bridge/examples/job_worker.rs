//! A worker of the job farm demo (`make demo`, demos/job_farm.exs) in
//! Rust, on the bus API: it serves the RPC method `job`, joins the group
//! `jobs` with its status (language, slots, load, jobs done) in its
//! presence, reads the farm's announcements there, and works through the
//! terms queued for it while it was offline.
//!
//! `cargo run --release -p xmpp_bridge --example job_worker -- --jid J
//! --port N [--host 127.0.0.1] [--group jobs] [--slots 3]` (on a cluster
//! `--servers H:P,H:P` instead of host and port), the password
//! in `JOB_WORKER_PASSWORD`.
//!
//! - `job(id, n, ms)`: counts the primes up to `n`, sleeps `ms` (the rest
//!   of the job's work), answers `{:done, id, primes, worker}`;
//! - a term `{:job, id, n, ms}` sent to it (for instance stored by the
//!   server while it was offline): the same work, the answer sent back to
//!   the sender as `{:result, id, primes, worker}`;
//! - `{:welcome, map}`: printed;
//! - a broadcast `{:farm_done, total}` to the group, or the end of stdin:
//!   leaves cleanly and exits 0.
//!
//! It prints one JSON line per event on stdout (for logs only: the farm
//! talks to it over XMPP alone).
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xmpp_bridge::bus::{self, Args, Event, Payload, SendOptions, Status};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::{self, Atom, Term};

fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// The number of primes up to `n` (a sieve of Eratosthenes).
fn primes_up_to(n: usize) -> u64 {
    if n < 2 {
        return 0;
    }
    let mut composite = vec![false; n + 1];
    let mut count = 0;
    for i in 2..=n {
        if !composite[i] {
            count += 1;
            let mut j = i * i;
            while j <= n {
                composite[j] = true;
                j += i;
            }
        }
    }
    count
}

/// What the worker publishes in its presence: `%{lang: "rust", ...}`.
#[derive(Serialize, PartialEq, Clone, Copy)]
struct Load {
    lang: &'static str,
    slots: u64,
    load: u64,
    done: u64,
}

#[derive(Default)]
struct Counters {
    load: AtomicU64,
    done: AtomicU64,
}

/// Counts a job in `load` while it runs (also when the caller's deadline
/// aborts it), and in `done` once it finished.
struct Running(Arc<Counters>);

impl Running {
    fn start(c: &Arc<Counters>) -> Running {
        c.load.fetch_add(1, Ordering::SeqCst);
        Running(c.clone())
    }

    fn finish(self) {
        self.0.done.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.load.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn work(n: i64, ms: i64) -> u64 {
    let primes = primes_up_to(usize::try_from(n).unwrap_or(0));
    tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).await;
    primes
}

struct Flags {
    jid: String,
    host: String,
    port: u16,
    /// The servers of a cluster (`--servers h:p,h:p`), instead of host/port.
    servers: Vec<(String, u16)>,
    group: String,
    slots: u64,
}

fn flags() -> Flags {
    let mut f = Flags {
        jid: String::new(),
        host: "127.0.0.1".into(),
        port: 5222,
        servers: Vec::new(),
        group: "jobs".into(),
        slots: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--jid" => f.jid = value,
            "--host" => f.host = value,
            "--port" => f.port = value.parse().unwrap_or_else(|_| usage("bad --port")),
            "--servers" => {
                f.servers = value
                    .split(',')
                    .map(
                        |hp| match hp.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
                            Some((h, Ok(p))) if !h.is_empty() => (h.to_string(), p),
                            _ => usage("bad --servers (host:port,host:port)"),
                        },
                    )
                    .collect()
            }
            "--group" => f.group = value,
            "--slots" => f.slots = value.parse().unwrap_or_else(|_| usage("bad --slots")),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if f.jid.is_empty() || f.slots == 0 {
        usage("--jid is required, --slots must be positive");
    }
    f
}

fn usage(why: &str) -> ! {
    eprintln!("job_worker: {why}");
    eprintln!("usage: job_worker --jid J (--port N [--host H] | --servers H:P,H:P) [--group jobs] [--slots 3] (password in JOB_WORKER_PASSWORD)");
    std::process::exit(2)
}

fn status_of(load: Load) -> Status {
    Status {
        show: None,
        text: Some(if load.load > 0 { "busy" } else { "idle" }.into()),
        payload: etf::to_term(&load).ok().map(Payload::Term),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f = flags();
    let password = std::env::var("JOB_WORKER_PASSWORD").unwrap_or_default();
    let mut config = bus::Config::new(f.jid.as_str(), password);
    if f.servers.is_empty() {
        config.connection.host = Some(f.host.clone());
        config.connection.port = f.port;
    } else {
        config.connection.servers = f.servers.clone();
    }
    config.connection.reconnect.initial = Duration::from_millis(200);
    config.connection.reconnect.max = Duration::from_secs(2);
    config.connection.tls = TlsMode::Plain;
    config.heartbeat = Duration::from_millis(500);
    config.heartbeat_timeout = Duration::from_millis(1000);
    config.max_calls = usize::try_from(f.slots)?;
    let name = f.jid.split('@').next().unwrap_or("worker").to_owned();

    let (node, mut events) = bus::Node::connect(config).await?;
    emit(json!({"event": "online", "jid": node.jid()}));

    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let me = name.clone();
    node.serve("job", move |args: Args| {
        let running = Running::start(&c);
        let me = me.clone();
        async move {
            let (id, n, ms): (i64, i64, i64) = args.decode().map_err(|e| e.to_string())?;
            let primes = work(n, ms).await;
            running.finish();
            Ok(Term::tuple(vec![
                Term::atom("done"),
                Term::from(id),
                Term::from(primes),
                Term::binary(me.as_str()),
            ]))
        }
    });
    let snapshot = |c: &Counters| Load {
        lang: "rust",
        slots: f.slots,
        load: c.load.load(Ordering::SeqCst),
        done: c.done.load(Ordering::SeqCst),
    };
    let mut published = snapshot(&counters);
    node.set_status(status_of(published))?;
    node.join(&f.group).await?;
    emit(json!({"event": "joined", "group": f.group}));

    // The end of stdin (the demo is gone) stops the worker too.
    let (eof_tx, mut eof_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        let _ = eof_tx.send(());
    });

    // The status follows the load, at most 5 times a second.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = snapshot(&counters);
                if now != published {
                    published = now;
                    let _ = node.set_status(status_of(now));
                }
            }
            _ = eof_rx.recv() => break,
            event = events.next() => match event {
                Some(Event::Message { from, payload }) => {
                    let term = payload.to_term();
                    if !on_message(&node, &counters, &name, &from, &term) {
                        emit(json!({"event": "unknown_message", "from": from, "term": format!("{term:?}")}));
                    }
                }
                Some(Event::Broadcast { from, payload, .. }) => {
                    let term = payload.to_term();
                    emit(json!({"event": "broadcast", "from": from, "term": format!("{term:?}")}));
                    if let Term::Tuple(items) = &term {
                        if items.first().and_then(Term::as_atom) == Some("farm_done") {
                            break;
                        }
                    }
                }
                Some(Event::Closed(e)) => {
                    emit(json!({"event": "closed", "error": e.map(|e| e.to_string())}));
                    return Ok(());
                }
                None => return Ok(()),
                Some(_) => {}
            },
        }
    }
    node.close().await;
    emit(json!({"event": "stopped", "done": counters.done.load(Ordering::SeqCst)}));
    Ok(())
}

/// A term sent to the worker: a welcome, or a job to do and answer with a
/// message. True when it was understood.
fn on_message(
    node: &bus::Node,
    counters: &Arc<Counters>,
    name: &str,
    from: &str,
    term: &Term,
) -> bool {
    let Term::Tuple(items) = term else {
        return false;
    };
    match items.first().and_then(Term::as_atom) {
        Some("welcome") => {
            emit(json!({"event": "welcome", "from": from, "term": format!("{term:?}")}));
            true
        }
        Some("job") => {
            let Ok((_, id, n, ms)) = etf::from_term::<(Atom, i64, i64, i64)>(term.clone()) else {
                return false;
            };
            emit(json!({"event": "queued_job", "from": from, "id": id}));
            let running = Running::start(counters);
            let node = node.clone();
            let name = name.to_owned();
            let from = from.to_owned();
            tokio::spawn(async move {
                let primes = work(n, ms).await;
                running.finish();
                let result = (Atom::from("result"), id, primes, name);
                if let Err(e) = node.send(&from, &result, SendOptions::default()) {
                    emit(json!({"event": "send_failed", "id": id, "error": e.to_string()}));
                }
            });
            true
        }
        _ => false,
    }
}
