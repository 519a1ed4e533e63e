//! Everything between TCP and online, one function per step: the stream
//! header, STARTTLS, SASL, XEP-0198 resumption, resource binding, the
//! legacy session, XEP-0198 enable, and for components the XEP-0114
//! handshake.

use super::super::sasl::{self, Mechanism, Scram};
use super::super::transport::Transport;
use super::super::{Config, ConnError, Event, Handler, Mode, TlsMode};
use super::conn::{id, Conn};
use super::{is_loopback, Account, Durable};
use crate::ns;
use crate::stream::Event as XEvent;
use crate::xml::{escape_text, write_attr, Element};
use base64::Engine;
use rand::Rng;
use sha1::{Digest, Sha1};

fn child<'e, 'a>(el: &'e Element<'a>, name: &str, ns: &str) -> Option<&'e Element<'a>> {
    el.elements()
        .find(|c| c.name == name && c.attr("xmlns") == Some(ns))
}

fn has_child(el: &Element<'_>, name: &str, ns: &str) -> bool {
    el.elements()
        .any(|c| c.name == name && c.attr("xmlns") == Some(ns))
}

fn error_condition(el: &Element<'_>) -> String {
    el.elements()
        .find(|c| c.name == "error")
        .and_then(|e| e.elements().next())
        .map(|c| c.name.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Answers a SCRAM challenge on a blocking thread: the key derivation
/// (PBKDF2, up to [`sasl::MAX_SCRAM_ITERATIONS`] rounds, a second or so)
/// must not hold one of the runtime's I/O threads, which every session of
/// the process shares. Past the negotiation timeout the session gives up
/// waiting; the thread finishes its bounded work on its own.
async fn respond_off_runtime(
    mut scram: Scram,
    challenge: String,
) -> Result<(Scram, Result<String, String>), ConnError> {
    tokio::task::spawn_blocking(move || {
        let reply = scram.respond(&challenge);
        (scram, reply)
    })
    .await
    .map_err(|e| ConnError::Internal(format!("SCRAM key derivation failed: {e}")))
}

impl Conn {
    /// Everything between TCP and online; returns the bound JID and whether
    /// the XEP-0198 session was resumed.
    pub(super) async fn negotiate<H: Handler>(
        &mut self,
        cfg: &Config,
        account: &Account,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<(String, bool), ConnError> {
        self.open_stream().await?;
        if cfg.mode == Mode::Component {
            self.handshake(cfg).await?;
            return Ok((self.jid.clone(), false));
        }
        let mut features = self.next_element().await?;
        if cfg.tls == TlsMode::StartTls && !self.io.is_tls() {
            features = self.starttls(cfg, account, &features).await?;
        }
        self.authenticate(cfg, account, &features).await?;
        self.open_stream().await?;
        let features = self.next_element().await?;

        let sm_offered = has_child(&features, "sm", ns::SM);
        if let (Some(previd), true) = (d.sm.resume_id.clone(), sm_offered) {
            if self.resume(&previd, d, handler).await? {
                let jid = d.bound_jid.clone().unwrap_or_else(|| self.jid.clone());
                self.jid = jid.clone();
                return Ok((jid, true));
            }
        }

        let jid = self.bind(account).await?;
        self.establish_session(&features).await?;
        d.bound_jid = Some(jid.clone());
        self.jid = jid.clone();
        d.sm.restart();
        if cfg.stream_management && sm_offered {
            self.enable_sm(d).await?;
        }
        if cfg.initial_presence {
            self.write_stanza(0, b"<presence/>".to_vec(), d);
        }
        Ok((jid, false))
    }

    /// Opens (or restarts) the stream and waits for the server's header.
    async fn open_stream(&mut self) -> Result<(), ConnError> {
        self.parser.reset();
        self.pending.clear();
        let mut header = Vec::with_capacity(256);
        header.extend_from_slice(b"<?xml version='1.0'?><stream:stream");
        write_attr(&mut header, "xmlns", self.ns).expect("static text");
        write_attr(&mut header, "xmlns:stream", ns::STREAMS).expect("static text");
        write_attr(&mut header, "to", &self.domain)
            .map_err(|e| ConnError::Config(e.to_string()))?;
        if self.ns == ns::CLIENT {
            header.extend_from_slice(b" version='1.0' xml:lang='en'");
        }
        header.push(b'>');
        self.send_now(&header).await?;
        loop {
            match self.next_event().await? {
                XEvent::Start(attrs) => {
                    self.stream_id = attrs
                        .iter()
                        .find(|(n, _)| n == "id")
                        .map(|(_, v)| v.to_string());
                    return Ok(());
                }
                XEvent::Element(el) => self.check_stream_error(&el)?,
                XEvent::End => return Err(ConnError::ClosedByServer),
            }
        }
    }

    /// Upgrades the connection to TLS, restarts the stream; returns the
    /// features offered over TLS.
    async fn starttls(
        &mut self,
        cfg: &Config,
        account: &Account,
        features: &Element<'_>,
    ) -> Result<Element<'static>, ConnError> {
        if !has_child(features, "starttls", ns::TLS) {
            return Err(ConnError::Tls("the server does not offer STARTTLS".into()));
        }
        self.send_now(format!("<starttls xmlns='{}'/>", ns::TLS).as_bytes())
            .await?;
        let answer = self.next_element().await?;
        if answer.name != "proceed" {
            return Err(ConnError::Tls(format!(
                "STARTTLS refused with <{}/>",
                answer.name
            )));
        }
        // Whatever came with <proceed/> was sent in the clear, where TLS was
        // due: taking it as part of the encrypted stream would let a man in
        // the middle inject it (the STARTTLS command injection flaw).
        if self.has_unread_input() {
            return Err(ConnError::Tls(
                "the server sent data after <proceed/> where the TLS handshake was due".into(),
            ));
        }
        let io = std::mem::replace(&mut self.io, Transport::Detached);
        let name = cfg.server_name.as_deref().unwrap_or(&account.domain);
        self.io = io.upgrade(name, cfg.ca_file.as_deref()).await?;
        self.open_stream().await?;
        self.next_element().await
    }

    /// SASL with the best mechanism among those offered in `features`.
    async fn authenticate(
        &mut self,
        cfg: &Config,
        account: &Account,
        features: &Element<'_>,
    ) -> Result<(), ConnError> {
        let offered: Vec<String> = match child(features, "mechanisms", ns::SASL) {
            Some(m) => m
                .elements()
                .filter(|c| c.name == "mechanism")
                .map(|c| c.text())
                .collect(),
            None => {
                return Err(ConnError::AuthFailed(
                    "the server offers no SASL mechanism".into(),
                ))
            }
        };
        let plain_ok = self.io.is_tls() || is_loopback(&account.host);
        let mech = Mechanism::choose(&offered, plain_ok).ok_or_else(|| {
            ConnError::AuthFailed(format!("no usable SASL mechanism among {offered:?}"))
        })?;
        let user = account.node.as_deref().unwrap_or_default();
        let mut scram = None;
        let initial = match mech {
            Mechanism::Plain => sasl::plain(user, &cfg.password),
            _ => {
                let nonce = base64::engine::general_purpose::STANDARD
                    .encode(rand::thread_rng().gen::<[u8; 18]>());
                let (s, first) = Scram::start(mech, user, &cfg.password, nonce);
                scram = Some(s);
                first
            }
        };
        let auth = format!(
            "<auth xmlns='{}' mechanism='{}'>{initial}</auth>",
            ns::SASL,
            mech.name()
        );
        self.send_now(auth.as_bytes()).await?;
        loop {
            let el = self.next_element().await?;
            match el.name.as_ref() {
                "challenge" => {
                    let s = scram
                        .take()
                        .ok_or_else(|| ConnError::Protocol("unexpected SASL challenge".into()))?;
                    let text = el.text();
                    // A second challenge carries the server's signature.
                    let (s, reply) = if s.verify(&text).is_ok() {
                        (s, String::new())
                    } else {
                        let (s, reply) = respond_off_runtime(s, text).await?;
                        (s, reply.map_err(ConnError::AuthFailed)?)
                    };
                    scram = Some(s);
                    let msg = format!("<response xmlns='{}'>{reply}</response>", ns::SASL);
                    self.send_now(msg.as_bytes()).await?;
                }
                "success" => {
                    if let Some(s) = &scram {
                        let text = el.text();
                        if !text.is_empty() {
                            s.verify(&text).map_err(ConnError::AuthFailed)?;
                        }
                    }
                    return Ok(());
                }
                "failure" => {
                    let condition = el
                        .elements()
                        .next()
                        .map(|c| c.name.to_string())
                        .unwrap_or_default();
                    return Err(ConnError::AuthFailed(condition));
                }
                other => {
                    return Err(ConnError::Protocol(format!(
                        "unexpected <{other}/> during SASL"
                    )))
                }
            }
        }
    }

    /// Asks to resume the XEP-0198 session `previd`; true when the server
    /// did. When it refused, what it had not confirmed is reported failed.
    async fn resume<H: Handler>(
        &mut self,
        previd: &str,
        d: &mut Durable,
        handler: &mut H,
    ) -> Result<bool, ConnError> {
        let mut req = Vec::new();
        req.extend_from_slice(b"<resume");
        write_attr(&mut req, "xmlns", ns::SM).expect("static text");
        write_attr(&mut req, "h", &d.sm.handled().to_string()).expect("digits");
        write_attr(&mut req, "previd", previd).map_err(|e| ConnError::Protocol(e.to_string()))?;
        req.extend_from_slice(b"/>");
        self.send_now(&req).await?;
        let answer = self.next_element().await?;
        if answer.name == "resumed" {
            let h = answer
                .attr("h")
                .and_then(|h| h.parse::<u32>().ok())
                .unwrap_or(d.sm.acked_h());
            let acked = d.sm.ack(h)?;
            if !acked.is_empty() {
                handler.event(Event::Acked(acked));
            }
            self.sm = true;
            return Ok(true);
        }
        // The server forgot the session: what it had not confirmed is lost.
        d.sm.resume_id = None;
        let lost = d.sm.take_unacked();
        if !lost.is_empty() {
            handler.event(Event::Failed(
                lost,
                ConnError::Protocol("stream resumption refused by the server".into()),
            ));
        }
        Ok(false)
    }

    /// Binds a resource (the configured one, or the server's choice);
    /// returns the full JID.
    async fn bind(&mut self, account: &Account) -> Result<String, ConnError> {
        let bid = id("bind", &mut self.next_id);
        let mut req = format!("<iq type='set' id='{bid}'><bind xmlns='{}'>", ns::BIND).into_bytes();
        if let Some(r) = &account.resource {
            req.extend_from_slice(b"<resource>");
            escape_text(&mut req, r).map_err(|e| ConnError::Config(e.to_string()))?;
            req.extend_from_slice(b"</resource>");
        }
        req.extend_from_slice(b"</bind></iq>");
        self.send_now(&req).await?;
        let result = self.await_iq_result(&bid).await?;
        child(&result, "bind", ns::BIND)
            .and_then(|b| b.elements().find(|c| c.name == "jid"))
            .map(|j| j.text())
            .ok_or_else(|| ConnError::Protocol("bind result without a jid".into()))
    }

    /// RFC 3921 session establishment, when `features` offer it and do not
    /// mark it optional.
    async fn establish_session(&mut self, features: &Element<'_>) -> Result<(), ConnError> {
        let Some(session) = child(features, "session", ns::SESSION) else {
            return Ok(());
        };
        if has_child(session, "optional", ns::SESSION)
            || session.elements().any(|c| c.name == "optional")
        {
            return Ok(());
        }
        let sid = id("sess", &mut self.next_id);
        let mut req = format!("<iq type='set' id='{sid}'>").into_bytes();
        req.extend_from_slice(format!("<session xmlns='{}'/></iq>", ns::SESSION).as_bytes());
        self.send_now(&req).await?;
        self.await_iq_result(&sid).await?;
        Ok(())
    }

    /// Turns XEP-0198 on, resumable if the server allows. A refusal
    /// (`<failed/>`) leaves it off; stanzas that come meanwhile are kept
    /// for later.
    async fn enable_sm(&mut self, d: &mut Durable) -> Result<(), ConnError> {
        self.send_now(format!("<enable xmlns='{}' resume='true'/>", ns::SM).as_bytes())
            .await?;
        loop {
            let el = self.next_element().await?;
            match (el.name.as_ref(), el.attr("xmlns")) {
                ("enabled", Some(ns::SM)) => {
                    self.sm = true;
                    let resumable = matches!(el.attr("resume"), Some("true" | "1"));
                    d.sm.resume_id = if resumable {
                        el.attr("id").map(str::to_owned)
                    } else {
                        None
                    };
                    return Ok(());
                }
                ("failed", Some(ns::SM)) => return Ok(()),
                _ => self.keep_early(el)?,
            }
        }
    }

    /// Waits for the answer to our IQ `want`; other elements are kept for
    /// later.
    async fn await_iq_result(&mut self, want: &str) -> Result<Element<'static>, ConnError> {
        loop {
            let el = self.next_element().await?;
            if el.name == "iq" && el.attr("id") == Some(want) {
                return match el.attr("type") {
                    Some("result") => Ok(el),
                    _ => Err(ConnError::Protocol(format!(
                        "request {want} failed: {}",
                        error_condition(&el)
                    ))),
                };
            }
            self.keep_early(el)?;
        }
    }

    /// XEP-0114: proves the component knows the secret.
    async fn handshake(&mut self, cfg: &Config) -> Result<(), ConnError> {
        let sid = self
            .stream_id
            .clone()
            .ok_or_else(|| ConnError::Protocol("the component stream header has no id".into()))?;
        let digest = Sha1::digest(format!("{sid}{}", cfg.password).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.send_now(format!("<handshake>{hex}</handshake>").as_bytes())
            .await?;
        match self.next_element().await {
            Ok(el) if el.name == "handshake" => Ok(()),
            Ok(el) => Err(ConnError::Protocol(format!(
                "unexpected <{}/> instead of <handshake/>",
                el.name
            ))),
            Err(ConnError::StreamError(c, t)) if c == "not-authorized" => {
                Err(ConnError::AuthFailed(t.unwrap_or(c)))
            }
            Err(e) => Err(e),
        }
    }
}
