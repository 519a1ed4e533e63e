//! `bus_bench workers`: the Rust half of the cluster scale benchmark
//! (bench/cluster_scale.exs, `make bench-cluster`).
//!
//! N job farm workers in this one process, on its one tokio runtime: a
//! `bus::Node` per `--account` (own account, own session), each serving
//! `job(id, n)` (counts the primes up to `n`, answers `{done, id,
//! primes}`), with a status (`idle`, term `%{lang: "rust", index: K}`),
//! and joined to `--group`. Node K connects to `--server-a` then
//! `--server-b` when K is even, the other way round when it is odd, so
//! that the nodes are spread over the two server nodes of the cluster.
//!
//! Commands, one a line on stdin; answers one a line on stdout:
//!
//! - at launch, before any node exists: `READY rss=BYTES`
//! - `start`: every node connects, serves, sets its status and joins, all
//!   at once; `ONLINE nodes=N errors=E stuck=S ms=T rss=BYTES
//!   first_error=... stuck_jids=J1,J2` once all are done (T: from `start`
//!   to the last join; stuck: joins that did not return in 35 s, whose
//!   nodes are kept)
//! - `report`: `REPORT rss=BYTES exec=N dup=D idsum=S`: jobs run, jobs
//!   run more than once (same id), the sum of the distinct ids run
//! - `stop` (or the end of stdin): every node closes; `STOPPED`, exit 0
use super::{flag, number, one_word, usage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use xmpp_bridge::bus::{self, Args, JoinOptions, Payload, Status};
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::Term;

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

/// The number of primes up to `n` (trial division: the jobs are short on
/// purpose, the benchmark is about the bus and the servers).
fn primes_up_to(n: i64) -> i64 {
    (2..=n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .count() as i64
}

fn server(flags: &[(String, String)], name: &str) -> (String, u16) {
    let v = flag(flags, name).unwrap_or_else(|| usage(&format!("--{name} is required")));
    match v.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some((h, Ok(p))) => (h.to_owned(), p),
        _ => usage(&format!("--{name}: expected HOST:PORT, got {v}")),
    }
}

/// Job id -> times run, over every node of the process.
type Runs = Arc<Mutex<HashMap<i64, u32>>>;

async fn start_worker(
    index: usize,
    jid: String,
    password: String,
    servers: Vec<(String, u16)>,
    group: String,
    (heartbeat, join): (Duration, JoinOptions),
    runs: Runs,
) -> Result<(bus::Node, Option<String>), String> {
    let mut config = bus::Config::new(jid.as_str(), password);
    config.connection.servers = servers;
    config.connection.tls = TlsMode::Plain;
    config.heartbeat = heartbeat;
    config.heartbeat_timeout = heartbeat;
    // 200 joins at once into one room: the last ones wait behind the
    // presences of every occupant (the default 10 s is not always enough).
    config.join_timeout = Duration::from_secs(30);
    let connect = bus::Node::connect(config);
    let (node, mut events) = match tokio::time::timeout(Duration::from_secs(60), connect).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(format!("{jid}: {e}")),
        Err(_) => return Err(format!("{jid}: not online after 60 s")),
    };
    // The events are not needed, but must be taken, or the window fills.
    tokio::spawn(async move { while events.next().await.is_some() {} });
    node.serve("job", move |args: Args| {
        let runs = runs.clone();
        async move {
            let (id, n): (i64, i64) = args.decode().map_err(|e| e.to_string())?;
            *runs.lock().unwrap().entry(id).or_default() += 1;
            Ok(Term::tuple(vec![
                Term::atom("done"),
                Term::from(id),
                Term::from(primes_up_to(n)),
            ]))
        }
    });
    // %{lang: "rust", index: K}
    let load = Term::Map(vec![
        (Term::atom("lang"), Term::binary("rust")),
        (Term::atom("index"), Term::from(index as i64)),
    ]);
    node.set_status(Status {
        show: None,
        text: Some("idle".into()),
        payload: Some(Payload::Term(load)),
    })
    .map_err(|e| format!("{jid}: set_status: {e}"))?;
    // A join that does not return is reported (`stuck`), and the node
    // kept: its session still serves `job`.
    let stuck = match tokio::time::timeout(Duration::from_secs(35), node.join_with(&group, join)).await
    {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{jid}: join {group}: {e}")),
        Err(_) => Some(format!("{jid}: join {group}: no answer in 35 s")),
    };
    Ok((node, stuck))
}

pub(crate) async fn workers_main(flags: &[(String, String)]) -> i32 {
    let accounts: Vec<(String, String)> = flags
        .iter()
        .filter(|(k, _)| k == "account")
        .map(|(_, v)| match v.split_once(':') {
            Some((jid, pw)) => (jid.to_owned(), pw.to_owned()),
            None => usage("--account: expected JID:PASSWORD"),
        })
        .collect();
    if accounts.is_empty() {
        usage("workers: no --account");
    }
    let a = server(flags, "server-a");
    let b = server(flags, "server-b");
    let group = flag(flags, "group").unwrap_or("farm").to_owned();
    let heartbeat = Duration::from_millis(number(flags, "heartbeat-ms", 5000));
    let join = JoinOptions {
        member_heartbeat: number(flags, "member-heartbeat", 1) != 0,
        ..JoinOptions::default()
    };
    let runs: Runs = Arc::default();
    let mut nodes: Vec<bus::Node> = Vec::new();
    say!("READY rss={}", rss());

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        match line.trim() {
            "" => {}
            "stop" => break,
            "start" => {
                let t0 = Instant::now();
                let starts = accounts.iter().enumerate().map(|(k, (jid, pw))| {
                    let servers = if k % 2 == 0 {
                        vec![a.clone(), b.clone()]
                    } else {
                        vec![b.clone(), a.clone()]
                    };
                    start_worker(
                        k,
                        jid.clone(),
                        pw.clone(),
                        servers,
                        group.clone(),
                        (heartbeat, join),
                        runs.clone(),
                    )
                });
                let (mut errors, mut stuck) = (Vec::new(), Vec::new());
                for result in futures::future::join_all(starts).await {
                    match result {
                        Ok((node, s)) => {
                            nodes.push(node);
                            stuck.extend(s);
                        }
                        Err(e) => errors.push(e),
                    }
                }
                say!(
                    "ONLINE nodes={} errors={} stuck={} ms={} rss={} first_error={} stuck_jids={}",
                    nodes.len(),
                    errors.len(),
                    stuck.len(),
                    t0.elapsed().as_millis(),
                    rss(),
                    one_word(errors.first().map_or("-", String::as_str)),
                    stuck
                        .iter()
                        .map(|s| s.split(':').next().unwrap_or("?"))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            "report" => {
                let runs = runs.lock().unwrap();
                let exec: u64 = runs.values().map(|&c| u64::from(c)).sum();
                let dup = runs.values().filter(|&&c| c > 1).count();
                let idsum: i64 = runs.keys().sum();
                say!("REPORT rss={} exec={exec} dup={dup} idsum={idsum}", rss());
            }
            other => eprintln!("bus_bench workers: unknown command {other:?}"),
        }
    }
    futures::future::join_all(nodes.iter().map(bus::Node::close)).await;
    say!("STOPPED");
    0
}
