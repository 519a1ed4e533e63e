//! The session task: connect, negotiate, serve, reconnect.
//!
//! This file holds the session's life: the reconnect loop ([`run`]), one
//! connection from TCP to its end (`connect_and_serve`) and the final
//! report (`finish`). The rest, by concern:
//!
//! - `conn`: one connection: the socket, the stream parser, the output
//!   buffer, and the element-at-a-time reads negotiation uses;
//! - `negotiate`: everything between TCP and online, one function per step
//!   (stream header, STARTTLS, SASL, resumption, bind, session, XEP-0198
//!   enable, the XEP-0114 handshake);
//! - `serve`: the online loop (reads, writes, commands, timers), the
//!   elements it must look at itself, and the goodbye;
//! - `sm`: XEP-0198 bookkeeping (what the server confirmed, what we
//!   handled) and when to ask for an ack, with no socket;
//! - `auto_reply`: the answers to pings and disco#info;
//! - `keepalive`: probing a silent server.

mod auto_reply;
mod conn;
mod keepalive;
mod negotiate;
mod serve;
mod sm;
#[cfg(test)]
mod tests;

use super::{CloseSignal, Command, Config, ConnError, Event, Flow, Handler, Mode, TlsMode};
use conn::Conn;
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

/// State that outlives one connection.
#[derive(Default)]
struct Durable {
    /// Stanzas taken from the queue but not yet written.
    outbox: VecDeque<(u64, Vec<u8>)>,
    /// XEP-0198: stanzas written and not yet acknowledged, both counts,
    /// the session we may resume.
    sm: sm::Ledger,
    /// IQ id -> token of the waiter.
    waiters: HashMap<String, u64>,
    bound_jid: Option<String>,
    /// IQ ids whose waiter gave up: a late answer is dropped, not handed to
    /// the owner as if it were a request. The most recent ones only.
    cancelled: VecDeque<String>,
    /// Index in `Config::servers` of the server to try first: the one the
    /// session was last online on.
    server: usize,
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
    if cfg.mode == Mode::Component && cfg.tls == TlsMode::StartTls {
        // XEP-0114 has no STARTTLS: the stream would go in plaintext.
        return Err(ConnError::Config(
            "a component has no STARTTLS: use direct TLS, or plain on loopback".into(),
        ));
    }
    let host = cfg.host.clone().unwrap_or_else(|| j.domain.clone());
    if cfg.servers.is_empty() {
        if cfg.tls == TlsMode::Plain && !is_loopback(&host) {
            return Err(ConnError::Config(format!(
                "plaintext is only allowed to a loopback address, not {host:?}"
            )));
        }
    } else if cfg.host.is_some() {
        return Err(ConnError::Config(
            "give either servers or host, not both".into(),
        ));
    }
    for (host, port) in &cfg.servers {
        if *port == 0 || host.is_empty() {
            return Err(ConnError::Config(format!("bad server {host:?}:{port}")));
        }
        if cfg.tls == TlsMode::Plain && !is_loopback(host) {
            return Err(ConnError::Config(format!(
                "plaintext is only allowed to a loopback address, not {host:?}"
            )));
        }
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

/// Runs a session until it is closed or gives up. Whatever happens in it,
/// a panic included, [`Event::Closed`] is the handler's last event.
pub async fn run<H: Handler>(
    cfg: Config,
    rx: mpsc::Receiver<Command>,
    close: std::sync::Arc<CloseSignal>,
    flow: std::sync::Arc<Flow>,
    handler: H,
) {
    let mut guarded = ClosedGuard {
        inner: handler,
        closed: false,
    };
    let outcome = CatchUnwind(Box::pin(session(cfg, rx, close, flow, &mut guarded))).await;
    if let Err(panic) = outcome {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        if !guarded.closed {
            guarded.event(Event::Closed(Some(ConnError::Internal(format!(
                "session task panicked: {what}"
            )))));
        }
    }
}

/// A handler that remembers whether it was told `Closed`, so that a panic
/// after that point does not send a second one.
struct ClosedGuard<H> {
    inner: H,
    closed: bool,
}

impl<H: Handler> Handler for ClosedGuard<H> {
    fn event(&mut self, event: Event) {
        self.closed |= matches!(event, Event::Closed(_));
        self.inner.event(event);
    }

    fn stanza(&mut self, el: crate::xml::Element<'_>, ns: Option<&str>) {
        self.inner.stanza(el, ns);
    }

    fn iq_response(&mut self, token: u64, el: crate::xml::Element<'_>, ns: Option<&str>) {
        self.inner.iq_response(token, el, ns);
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

/// Polls a future and turns a panic inside it into an error.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = self.0.as_mut();
        // The future is dropped right after a panic, never polled again: no
        // broken state of it is observed.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

async fn session<H: Handler>(
    cfg: Config,
    mut rx: mpsc::Receiver<Command>,
    close: std::sync::Arc<CloseSignal>,
    flow: std::sync::Arc<Flow>,
    handler: &mut H,
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
            Owner {
                rx: &mut rx,
                close: &close,
                flow: &flow,
            },
            handler,
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
        if d.sm.resume_id.is_none() && d.sm.has_unacked() {
            handler.event(Event::Failed(d.sm.take_unacked(), e.clone()));
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
    finish(rx, d, handler, reason);
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
        Command::Panic => injected_panic(),
    }
}

/// What the [`Command::Panic`] test hook does.
fn injected_panic() -> ! {
    panic!("injected by Handle::inject_panic (a test hook)")
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
    let mut failed = d.sm.take_unacked();
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

/// What the owner's side shares with a connection: its commands, its close
/// request and its incoming credit.
struct Owner<'a> {
    rx: &'a mut mpsc::Receiver<Command>,
    close: &'a CloseSignal,
    flow: &'a Flow,
}

async fn connect_and_serve<H: Handler>(
    cfg: &Config,
    account: &Account,
    owner: Owner<'_>,
    handler: &mut H,
    d: &mut Durable,
    online: &mut bool,
) -> Result<(), ConnError> {
    let Owner { rx, close, flow } = owner;
    // Connecting and negotiating end at once on a close (the owner died,
    // say); sends wait in the queue, which `queue_limit` bounds.
    let opened = tokio::select! {
        r = timeout(cfg.connect_timeout, Conn::open(cfg, account, d.server)) => Some(r),
        () = close.requested() => None,
    };
    let (mut conn, server) = match opened {
        Some(r) => r.map_err(|_| ConnError::Timeout("connect"))??,
        None => return Ok(()),
    };
    let negotiated = tokio::select! {
        r = timeout(cfg.connect_timeout, conn.negotiate(cfg, account, d, handler)) => Some(r),
        () = close.requested() => None,
    };
    let negotiated = match negotiated {
        Some(r) => r
            .map_err(|_| ConnError::Timeout("stream negotiation"))
            .and_then(|r| r),
        None => return Ok(()),
    };
    let (jid, resumed) = match (negotiated, server) {
        (Ok(ok), _) => ok,
        // A server that takes the connection but not the session (hung,
        // starting, overloaded): the next attempt begins with the next one.
        (Err(e), Some(i)) => {
            d.server = (i + 1) % cfg.servers.len();
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    *online = true;
    if let Some(i) = server {
        d.server = i;
    }
    handler.event(Event::Online { jid, resumed });
    // Resent after a resumption: what the server had not acknowledged.
    if resumed {
        conn.resend_unacked(&d.sm);
    }
    let read_ahead_end = conn.take_read_ahead();
    let mut delivered = 0;
    let early = std::mem::take(&mut conn.early)
        .into_iter()
        .try_for_each(|el| {
            delivered += usize::from(conn.on_element(el, cfg, d, handler)?);
            Ok(())
        });
    handler.flush();
    early?;
    // Stanzas that came during negotiation (at most EARLY_MAX) are handed
    // over whatever the credit; they count against it all the same.
    if flow.take(delivered) {
        handler.event(Event::Passive);
    }
    if let Some(e) = read_ahead_end {
        return Err(e);
    }
    while let Some((seq, bytes)) = d.outbox.pop_front() {
        conn.write_stanza(seq, bytes, d);
    }
    conn.request_ack();
    conn.serve(cfg, rx, close, flow, handler, d).await
}
