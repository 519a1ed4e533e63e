//! The methods `serve` offers, each counted for `load` and reported as a
//! `served` event when its call is answered.

use crate::bigint::BigInt;
use crate::json::Json;
use crate::out;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use xmpp_bridge::bus::{Args, Node};
use xmpp_bridge::etf::Term;

/// Longest `slow` sleep, in ms (a day).
const MAX_SLOW_MS: i64 = 86_400_000;

/// What `load` reports.
#[derive(Debug)]
pub struct Stats {
    active: AtomicU64,
    served: AtomicU64,
    started: Instant,
    max_calls: usize,
    /// Woken whenever `active` changes (the status publisher waits on it).
    pub changed: Notify,
}

impl Stats {
    /// The node's load as its status carries it: `{"active": calls
    /// running, "max_calls": N}`.
    pub fn status_term(&self) -> Term {
        let entry = |k: &str, v: u64| (Term::binary(k), BigInt::from_u64(v).to_term());
        Term::map(vec![
            entry("active", self.active.load(Ordering::SeqCst)),
            entry("max_calls", self.max_calls as u64),
        ])
    }

    fn load(&self) -> Term {
        let entry = |k: &str, v: u64| (Term::binary(k), BigInt::from_u64(v).to_term());
        Term::map(vec![
            // This call is running too: it does not count itself.
            entry(
                "active",
                self.active.load(Ordering::SeqCst).saturating_sub(1),
            ),
            entry("served", self.served.load(Ordering::SeqCst)),
            entry("max_calls", self.max_calls as u64),
            entry("uptime_ms", self.started.elapsed().as_millis() as u64),
        ])
    }
}

/// One call from its start to its answer; dropped when the handler is
/// done, stopped (caller's timeout, cancel) or panicking.
struct Served {
    stats: Arc<Stats>,
    method: &'static str,
    start: Instant,
    outcome: Option<Result<(), String>>,
}

impl Served {
    fn start(stats: &Arc<Stats>, method: &'static str) -> Served {
        stats.active.fetch_add(1, Ordering::SeqCst);
        stats.changed.notify_one();
        Served {
            stats: stats.clone(),
            method,
            start: Instant::now(),
            outcome: None,
        }
    }
}

impl Served {
    /// The handler returned (the event comes when `self` drops).
    fn finish(&mut self, result: &Result<Term, String>) {
        self.outcome = Some(result.as_ref().map(|_| ()).map_err(Clone::clone));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::SeqCst);
        self.stats.served.fetch_add(1, Ordering::SeqCst);
        self.stats.changed.notify_one();
        let (outcome, error) = match self.outcome.take() {
            Some(Ok(())) => ("ok", None),
            Some(Err(e)) => ("error", Some(e)),
            None if std::thread::panicking() => ("panic", None),
            None => ("cancelled", None),
        };
        let mut fields = vec![
            ("method", Json::str(self.method)),
            ("outcome", Json::str(outcome)),
            ("ms", Json::int(self.start.elapsed().as_millis() as i128)),
        ];
        if let Some(e) = error {
            fields.push(("error", Json::str(e)));
        }
        out::event("served", fields);
    }
}

fn serve_counted<F, Fut>(node: &Node, stats: &Arc<Stats>, method: &'static str, handler: F)
where
    F: Fn(Args) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Term, String>> + Send + 'static,
{
    let stats = stats.clone();
    node.serve(method, move |args: Args| {
        let mut served = Served::start(&stats, method);
        let call = handler(args);
        async move {
            let result = call.await;
            served.finish(&result);
            result
        }
    });
}

/// `echo`: the arguments, as a list.
fn echo(args: Args) -> Result<Term, String> {
    Ok(Term::List(args.into_terms()))
}

/// `add`: the sum of integers of any size.
fn add(args: Args) -> Result<Term, String> {
    let mut sum = BigInt::zero();
    for (i, t) in args.terms().iter().enumerate() {
        let n = BigInt::from_term(t)
            .ok_or_else(|| format!("add takes integers; argument {} is not one", i + 1))?;
        sum = sum.add(&n);
    }
    Ok(sum.to_term())
}

/// `slow`'s argument: the milliseconds to sleep.
fn slow_ms(args: &Args) -> Result<u64, String> {
    match args.terms() {
        [Term::Int(ms)] if (0..=MAX_SLOW_MS).contains(ms) => Ok(*ms as u64),
        _ => Err(format!(
            "slow takes one integer: the milliseconds to sleep, 0 to {MAX_SLOW_MS}"
        )),
    }
}

/// `panic`: panics, with the text given or a default one.
fn explode(args: Args) -> Result<Term, String> {
    let text = match args.terms() {
        [t] => t
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| xmpp_bridge::bus::render::render(t)),
        _ => "panic requested".to_owned(),
    };
    panic!("{text}")
}

/// Serves `echo`, `add`, `slow`, `panic` and `load` on `node`.
pub fn install(node: &Node, max_calls: usize) -> Arc<Stats> {
    let stats = Arc::new(Stats {
        active: AtomicU64::new(0),
        served: AtomicU64::new(0),
        started: Instant::now(),
        max_calls,
        changed: Notify::new(),
    });
    serve_counted(node, &stats, "echo", |args| async move { echo(args) });
    serve_counted(node, &stats, "add", |args| async move { add(args) });
    serve_counted(node, &stats, "slow", |args| async move {
        let ms = slow_ms(&args)?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(BigInt::from_u64(ms).to_term())
    });
    serve_counted(node, &stats, "panic", |args| async move { explode(args) });
    let for_load = stats.clone();
    serve_counted(node, &stats, "load", move |_args| {
        let load = for_load.load();
        async move { Ok(load) }
    });
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(terms: Vec<Term>) -> Args {
        Args::new(terms)
    }

    #[test]
    fn echo_returns_the_arguments() {
        let a = vec![Term::Int(1), Term::binary("x")];
        assert_eq!(echo(args(a.clone())), Ok(Term::List(a)));
        assert_eq!(echo(args(vec![])), Ok(Term::List(vec![])));
    }

    #[test]
    fn add_takes_integers_of_any_size() {
        let big = crate::convert::parse_term("123456789012345678901234567890").unwrap();
        let sum = add(args(vec![big, Term::Int(1), Term::Int(-1), Term::Int(10)])).unwrap();
        assert_eq!(
            crate::convert::term_to_json(&sum).to_string(),
            "123456789012345678901234567900"
        );
        assert_eq!(add(args(vec![])), Ok(Term::Int(0)));
        let e = add(args(vec![Term::Int(1), Term::atom("x")])).unwrap_err();
        assert!(e.contains("argument 2"), "{e}");
    }

    #[test]
    fn slow_takes_milliseconds() {
        assert_eq!(slow_ms(&args(vec![Term::Int(5)])), Ok(5));
        assert!(slow_ms(&args(vec![Term::Int(-1)])).is_err());
        assert!(slow_ms(&args(vec![])).is_err());
        assert!(slow_ms(&args(vec![Term::binary("5")])).is_err());
    }

    #[test]
    fn panic_panics_with_its_text() {
        let r = std::panic::catch_unwind(|| explode(args(vec![Term::binary("boom")])));
        let payload = r.unwrap_err();
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("boom")
        );
    }

    #[test]
    fn load_does_not_count_itself() {
        let stats = Stats {
            active: AtomicU64::new(3),
            served: AtomicU64::new(7),
            started: Instant::now(),
            max_calls: 64,
            changed: Notify::new(),
        };
        let load = crate::convert::term_to_json(&stats.load()).to_string();
        assert!(
            load.starts_with(r#"{"active":2,"served":7,"max_calls":64,"uptime_ms":"#),
            "{load}"
        );
        let status = crate::convert::term_to_json(&stats.status_term()).to_string();
        assert_eq!(
            status, r#"{"active":3,"max_calls":64}"#,
            "the status counts every call"
        );
    }
}
