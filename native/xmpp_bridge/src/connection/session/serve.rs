//! Online: the loop that reads, writes, takes commands and runs the
//! timers; the elements the connection looks at itself (XEP-0198, stream
//! errors, requests it answers); and the goodbye.

use super::super::batching::Batching;
use super::super::transport::Transport;
use super::super::{CloseSignal, Command, Config, ConnError, Event, Flow, Handler};
use super::auto_reply::auto_reply;
use super::conn::Conn;
use super::{keepalive, Durable};
use crate::ns;
use crate::stream::Event as XEvent;
use crate::xml::Element;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How many commands one wake-up takes from the queue before writing.
const BATCH: usize = 256;

/// Bytes waiting to be written above which no more commands are taken.
const MAX_PENDING_OUT: usize = 1024 * 1024;

/// How long the goodbye may take, all of it: writing what is left and our
/// stream end, waiting for the server's, shutting the socket down. A close
/// asked for is done within this, whatever the server does.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

fn is_stanza(el: &Element<'_>) -> bool {
    matches!(el.name.as_ref(), "message" | "presence" | "iq")
}

/// Stanzas the connection must look at itself: requests it may answer.
fn needs_conn(el: &Element<'_>) -> bool {
    el.name == "iq"
        && matches!(
            el.attr("type"),
            Some("get") | Some("result") | Some("error")
        )
}

/// Hands a stanza to the owner: an IQ answer to its waiter, anything
/// else as a stanza; a late answer to a cancelled IQ to nobody. True when
/// it went to the owner (what counts against the owner's credit).
fn deliver<H: Handler>(
    el: Element<'_>,
    ns: Option<&str>,
    d: &mut Durable,
    handler: &mut H,
) -> bool {
    if el.name == "iq" && matches!(el.attr("type"), Some("result" | "error")) {
        let id = el.attr("id").unwrap_or_default();
        if let Some(token) = d.waiters.remove(id) {
            handler.iq_response(token, el, ns);
            return false;
        }
        if !d.cancelled.is_empty() && d.was_cancelled(id) {
            return false;
        }
    }
    handler.stanza(el, ns);
    true
}

impl Conn {
    /// Runs the connection once online, until the owner closes the session
    /// (Ok) or the connection fails.
    pub(super) async fn serve<H: Handler>(
        &mut self,
        cfg: &Config,
        rx: &mut mpsc::Receiver<Command>,
        close: &CloseSignal,
        flow: &Flow,
        handler: &mut H,
        d: &mut Durable,
    ) -> Result<(), ConnError> {
        let mut ticker = keepalive::ticker(cfg);
        // Reading and writing go on at once, so that a server that stops
        // reading while it writes to us (or the reverse) cannot deadlock us.
        let io = std::mem::replace(&mut self.io, Transport::Detached);
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut writing: Vec<u8> = Vec::new();
        let mut written = 0;
        let mut need_flush = false;
        let mut batching = Batching::new(cfg.batch_delay);
        // Set while a busy stream lets data pile up before the next read.
        let mut read_at: Option<Instant> = None;
        loop {
            if written == writing.len() && !self.out.is_empty() {
                writing.clear();
                written = 0;
                std::mem::swap(&mut writing, &mut self.out);
            }
            let want_write = written < writing.len();
            // Stop taking commands while a lot waits to be written: the
            // queue then fills and the owner sees `:queue_full`.
            let take_commands = self.out.len() < MAX_PENDING_OUT;
            let ack_due = self.acks.due();
            // Out of credit, the session reads nothing: TCP pushes back on
            // the server until the owner grants more.
            let passive = self.held || flow.available() == 0;
            tokio::select! {
                r = rd.read(&mut self.rbuf), if read_at.is_none() && !passive => {
                    let n = r.map_err(|e| ConnError::Io(e.to_string()))?;
                    if n == 0 {
                        return Err(ConnError::ClosedByServer);
                    }
                    let now = Instant::now();
                    self.heard_from_server(now);
                    let elements = self.feed(n, cfg, flow, d, handler)?;
                    read_at = batching.after_read(now, elements, n == self.rbuf.len());
                    // An <a/> may have answered our request.
                    self.plan_ack();
                }
                () = flow.changed(), if passive => {
                    // Silence while we did not read says nothing about the
                    // server.
                    self.heard_from_server(Instant::now());
                    if self.held && flow.available() > 0 {
                        self.feed(0, cfg, flow, d, handler)?;
                        self.plan_ack();
                    }
                }
                () = sleep_until_opt(read_at), if read_at.is_some() => read_at = None,
                // Cancel-safe: a write or flush that loses the race to another
                // branch has done nothing, or all it reports.
                w = std::future::poll_fn(|cx| {
                    if want_write {
                        std::pin::Pin::new(&mut wr).poll_write(cx, &writing[written..]).map(|r| r.map(Some))
                    } else {
                        std::pin::Pin::new(&mut wr).poll_flush(cx).map(|r| r.map(|()| None))
                    }
                }), if want_write || need_flush => {
                    match w.map_err(|e| ConnError::Io(e.to_string()))? {
                        Some(0) => return Err(ConnError::Io("the socket accepts no more data".into())),
                        Some(n) => {
                            written += n;
                            need_flush = true;
                        }
                        None => need_flush = false,
                    }
                }
                cmd = rx.recv(), if take_commands => {
                    if !self.handle_commands(cmd, rx, d) {
                        // The owner is gone.
                        self.out.splice(0..0, writing.drain(written..));
                        let _ = self.shutdown(rd, wr, d, handler).await;
                        return Ok(());
                    }
                    self.plan_ack();
                }
                () = close.requested() => {
                    self.out.splice(0..0, writing.drain(written..));
                    // A close asked for is final, whatever the goodbye on the
                    // socket meets.
                    let _ = self.shutdown(rd, wr, d, handler).await;
                    return Ok(());
                }
                () = sleep_until_opt(ack_due), if ack_due.is_some() => self.plan_ack(),
                _ = ticker.tick(), if !passive => self.keepalive(cfg)?,
            }
        }
    }

    /// Handles `first`, a command just taken from the queue, and up to
    /// `BATCH` in all of those already waiting behind it. False when the
    /// queue is closed: the commands before that point were handled.
    fn handle_commands(
        &mut self,
        first: Option<Command>,
        rx: &mut mpsc::Receiver<Command>,
        d: &mut Durable,
    ) -> bool {
        let mut next = first;
        let mut taken = 0;
        // `next` always holds a command taken from the queue and not yet
        // handled, or None when the queue is closed.
        loop {
            match next {
                None => return false,
                Some(Command::Send { seq, bytes }) => self.write_stanza(seq, bytes, d),
                Some(Command::Iq {
                    seq,
                    token,
                    id,
                    bytes,
                }) => {
                    d.waiters.insert(id, token);
                    self.write_stanza(seq, bytes, d);
                }
                Some(Command::CancelIq { id }) => {
                    d.waiters.remove(&id);
                    d.cancel(id);
                }
                Some(Command::Panic) => super::injected_panic(),
            }
            taken += 1;
            if taken == BATCH {
                return true;
            }
            next = match rx.try_recv() {
                Ok(c) => Some(c),
                Err(_) => return true,
            };
        }
    }

    /// Hands what `n` new bytes of the read buffer complete to the handler,
    /// borrowed from the buffer, as far as the owner's credit goes (`n` = 0:
    /// what an earlier call held back for lack of credit). Returns how many
    /// stanzas it parsed; sets `held` when input waits for more credit.
    fn feed<H: Handler>(
        &mut self,
        n: usize,
        cfg: &Config,
        flow: &Flow,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<usize, ConnError> {
        let mut count = 0;
        let mut input = n;
        let result = loop {
            // The parser stops after as many elements as the owner takes:
            // SM elements and answers to our own requests use up a unit of
            // the quota but no credit, so delivered <= quota <= credit.
            let quota = flow.available();
            let (parsed, delivered) = match self.feed_some(input, quota, cfg, d, handler) {
                Ok(counts) => counts,
                Err(e) => break Err(e),
            };
            input = 0;
            count += parsed;
            if flow.take(delivered) {
                handler.event(Event::Passive);
            }
            if !self.parser.has_unscanned() || flow.available() == 0 {
                break Ok(());
            }
        };
        self.held = self.parser.has_unscanned();
        result.map(|()| count)
    }

    /// One pass of the parser over the `n` new bytes (and what it holds),
    /// handing out at most `quota` elements; returns how many stanzas it
    /// parsed and how many elements went to the owner.
    fn feed_some<H: Handler>(
        &mut self,
        n: usize,
        quota: usize,
        cfg: &Config,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<(usize, usize), ConnError> {
        let mut failure: Option<ConnError> = None;
        let mut count = 0;
        let mut delivered = 0;
        let Conn { parser, rbuf, .. } = self;
        let mut elements: Vec<Element<'static>> = Vec::new();
        let mut ended = false;
        // Elements are processed inside the callback (no copy) unless they
        // need `self`, which the parser borrows: those are few (SM, errors).
        let result = parser.feed_limited(&rbuf[..n], quota, &mut |ev, ns| match ev {
            XEvent::Element(el) => {
                let stanza = is_stanza(&el);
                // Stream management's <r/> and <a/> often ride along with a
                // single stanza: they do not make a stream busy.
                count += usize::from(stanza);
                // Once one element waits for the connection, the ones after
                // it wait too, so that order is kept.
                if elements.is_empty() && stanza && !needs_conn(&el) {
                    d.sm.received();
                    delivered += usize::from(deliver(el, ns, d, handler));
                } else {
                    elements.push(el.into_owned());
                }
            }
            XEvent::End => ended = true,
            XEvent::Start(_) => {}
        });
        for el in elements {
            match self.on_element(el, cfg, d, handler) {
                Ok(to_owner) => delivered += usize::from(to_owner),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        handler.flush();
        if let Err(e) = result {
            failure.get_or_insert(ConnError::Protocol(e.to_string()));
        }
        if ended {
            failure.get_or_insert(ConnError::ClosedByServer);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((count, delivered)),
        }
    }

    /// Elements that need the connection: SM, stream errors, requests we
    /// answer ourselves, answers to our keepalive pings. True when the
    /// element went to the owner.
    pub(super) fn on_element<H: Handler>(
        &mut self,
        el: Element<'_>,
        _cfg: &Config,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<bool, ConnError> {
        let xmlns = el.attr("xmlns");
        match (el.name.as_ref(), xmlns) {
            ("r", Some(ns::SM)) => {
                self.report_h(d);
                return Ok(false);
            }
            ("a", Some(ns::SM)) => {
                self.acks.answered();
                let h = el
                    .attr("h")
                    .and_then(|h| h.parse::<u32>().ok())
                    .ok_or_else(|| ConnError::Protocol("<a/> without a valid h".into()))?;
                let acked = d.sm.ack(h)?;
                if !acked.is_empty() {
                    handler.event(Event::Acked(acked));
                }
                return Ok(false);
            }
            _ => {}
        }
        self.check_stream_error(&el)?;
        if !is_stanza(&el) {
            handler.stanza(el, Some(self.ns));
            return Ok(true);
        }
        d.sm.received();
        if el.name == "iq" {
            if self.is_probe_answer(el.attr("id").unwrap_or_default()) {
                return Ok(false);
            }
            if matches!(el.attr("type"), Some("get")) {
                if let Some(reply) = auto_reply(&el, self.ns, self.incarnation.as_deref()) {
                    // Counted for XEP-0198 like any stanza we send (the
                    // server's `h` includes it), under the internal
                    // sequence 0 that is never reported to the owner.
                    self.write_stanza(0, reply, d);
                    return Ok(false);
                }
            }
        }
        Ok(deliver(el, Some(self.ns), d, handler))
    }

    /// Says goodbye: asks for a last ack (and, with XEP-0198, reports what
    /// we handled), closes our stream, and waits briefly for the server to
    /// close its own, taking the acks that come before. Forgets the
    /// XEP-0198 session: a closed session is not resumed.
    async fn shutdown<H: Handler>(
        &mut self,
        rd: ReadHalf<Transport>,
        wr: WriteHalf<Transport>,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<(), ConnError> {
        self.request_ack();
        if self.sm {
            // XEP-0198 §4: tell the server what we handled, so that it does
            // not bounce or redeliver stanzas the owner already has.
            self.report_h(d);
        }
        self.out.extend_from_slice(b"</stream:stream>");
        // A closed session is not resumed, however the goodbye goes.
        d.sm.resume_id = None;
        let deadline = Instant::now() + CLOSE_WAIT;
        match tokio::time::timeout_at(deadline, self.goodbye(rd, wr, deadline, d, handler)).await {
            Ok(result) => result,
            Err(_) => Err(ConnError::Timeout("close")),
        }
    }

    /// Writes what is left and our stream end, then, until `deadline`,
    /// reads for the server's stream end (RFC 6120 §4.4), taking the acks
    /// that come before it.
    async fn goodbye<H: Handler>(
        &mut self,
        mut rd: ReadHalf<Transport>,
        mut wr: WriteHalf<Transport>,
        deadline: Instant,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<(), ConnError> {
        wr.write_all(&self.out)
            .await
            .map_err(|e| ConnError::Io(e.to_string()))?;
        wr.flush().await.map_err(|e| ConnError::Io(e.to_string()))?;
        self.out.clear();
        let mut server_closed = false;
        // The deadline is checked on every pass: a server that floods us
        // (whitespace, stanzas) keeps the read always ready, and a timeout
        // polls its future before its clock.
        while !server_closed && Instant::now() < deadline {
            let n = match tokio::time::timeout_at(deadline, rd.read(&mut self.rbuf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => break,
            };
            let mut events = Vec::new();
            if self.parser.feed(&self.rbuf[..n], &mut events).is_err() {
                break;
            }
            for ev in events {
                match ev {
                    XEvent::End => server_closed = true,
                    XEvent::Element(el) if el.name == "a" && el.attr("xmlns") == Some(ns::SM) => {
                        let acked = el
                            .attr("h")
                            .and_then(|h| h.parse::<u32>().ok())
                            .and_then(|h| d.sm.ack(h).ok());
                        if let Some(acked) = acked.filter(|a| !a.is_empty()) {
                            handler.event(Event::Acked(acked));
                        }
                    }
                    _ => {}
                }
            }
        }
        let _ = wr.shutdown().await;
        Ok(())
    }
}
