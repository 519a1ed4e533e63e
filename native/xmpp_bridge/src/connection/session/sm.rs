//! XEP-0198 stream management, the bookkeeping half: which stanzas the
//! server has confirmed, how many we handled, and when to ask for an ack.
//! Nothing here touches the socket; the connection writes the `<r/>` and
//! `<a/>` these decide on.

use super::super::ConnError;
use crate::ns;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Stanzas sent before an ack is requested at once (XEP-0198 `<r/>`)...
pub(super) const ACK_EVERY: usize = 64;
/// ...or how long the owner may pause before the request goes anyway.
pub(super) const ACK_DELAY: Duration = Duration::from_millis(5);
/// One request is outstanding at a time (its answer covers everything
/// written before it); when it stays unanswered this long, the next one
/// goes anyway.
pub(super) const ACK_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// An ack request.
pub(super) const REQUEST: &[u8] = b"<r xmlns='urn:xmpp:sm:3'/>";

/// The answer to an ack request: we handled `h` stanzas.
pub(super) fn answer(h: u32) -> String {
    format!("<a xmlns='{}' h='{h}'/>", ns::SM)
}

/// What XEP-0198 remembers across connections.
///
/// Stanzas are known by the owner's sequence numbers. Sequence 0 is what
/// the session sends by itself (the initial presence, answers to pings and
/// disco#info): counted, since the server's `h` includes it, but never
/// reported to the owner.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Written, waiting for an ack: sequence number and bytes (resent
    /// after a resumption).
    unacked: VecDeque<(u64, Vec<u8>)>,
    /// The server's last `h`: how many of our stanzas it has handled.
    acked_h: u32,
    /// Stanzas we handled in this XEP-0198 session.
    h_in: u32,
    /// XEP-0198 session we may resume.
    pub(super) resume_id: Option<String>,
}

impl Ledger {
    /// A stanza was written under `seq`.
    pub(super) fn sent(&mut self, seq: u64, bytes: Vec<u8>) {
        self.unacked.push_back((seq, bytes));
    }

    /// We handled one more incoming stanza.
    pub(super) fn received(&mut self) {
        self.h_in = self.h_in.wrapping_add(1);
    }

    /// How many incoming stanzas we handled (our `h`).
    pub(super) fn handled(&self) -> u32 {
        self.h_in
    }

    /// The server's last `h`.
    pub(super) fn acked_h(&self) -> u32 {
        self.acked_h
    }

    /// A new XEP-0198 session starts: both counts from zero.
    pub(super) fn restart(&mut self) {
        self.h_in = 0;
        self.acked_h = 0;
    }

    pub(super) fn has_unacked(&self) -> bool {
        !self.unacked.is_empty()
    }

    /// The bytes of the stanzas still waiting for an ack, oldest first.
    pub(super) fn unacked_bytes(&self) -> impl Iterator<Item = &[u8]> {
        self.unacked.iter().map(|(_, bytes)| bytes.as_slice())
    }

    /// Forgets the stanzas waiting for an ack; returns their sequence
    /// numbers (not 0).
    pub(super) fn take_unacked(&mut self) -> Vec<u64> {
        self.unacked
            .drain(..)
            .map(|(seq, _)| seq)
            .filter(|s| *s != 0)
            .collect()
    }

    /// Confirms the stanzas up to the server's count `h`; returns their
    /// sequence numbers (not 0), oldest first.
    pub(super) fn ack(&mut self, h: u32) -> Result<Vec<u64>, ConnError> {
        let n = h.wrapping_sub(self.acked_h) as usize;
        if n > self.unacked.len() {
            return Err(ConnError::Protocol(format!(
                "server acknowledged {n} stanzas, only {} were sent",
                self.unacked.len()
            )));
        }
        self.acked_h = h;
        Ok(self
            .unacked
            .drain(..n)
            .map(|(seq, _)| seq)
            .filter(|s| *s != 0)
            .collect())
    }
}

/// When to ask for an ack, on one connection.
#[derive(Debug, Default)]
pub(super) struct AckRequests {
    /// Stanzas written since the last request.
    unrequested: usize,
    /// When our last request went out, until an `<a/>` answers it.
    asked: Option<Instant>,
    /// When the next request goes (None: none planned).
    due: Option<Instant>,
}

impl AckRequests {
    /// `n` more stanzas were written.
    pub(super) fn written(&mut self, n: usize) {
        self.unrequested += n;
    }

    /// When the next request is due, if one is planned.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// An `<a/>` came: no request is outstanding any more.
    pub(super) fn answered(&mut self) {
        self.asked = None;
    }

    /// A request goes out at `now` if anything was written since the last
    /// one; true when it does (the caller writes the `<r/>`).
    pub(super) fn request(&mut self, now: Instant) -> bool {
        if self.unrequested == 0 {
            return false;
        }
        self.unrequested = 0;
        self.asked = Some(now);
        true
    }

    /// Decides at `now` whether a request goes now (true: it is recorded,
    /// the caller writes the `<r/>`) or when it will ([`Self::due`]): at
    /// once past [`ACK_EVERY`] unrequested stanzas, else [`ACK_DELAY`]
    /// after the owner paused; never while an earlier request waits for
    /// its answer (under a burst the server answers it late, and its answer
    /// covers more), but at the latest [`ACK_ANSWER_WAIT`] after it.
    pub(super) fn plan(&mut self, now: Instant) -> bool {
        if self.unrequested == 0 {
            self.due = None;
            return false;
        }
        if let Some(asked) = self.asked {
            let retry = asked + ACK_ANSWER_WAIT;
            if now < retry {
                self.due = Some(retry);
                return false;
            }
        }
        let delay_over = self.due.is_some_and(|t| now >= t);
        if self.unrequested >= ACK_EVERY || delay_over {
            self.due = None;
            return self.request(now);
        }
        let soon = now + ACK_DELAY;
        self.due = Some(self.due.map_or(soon, |t| t.min(soon)));
        false
    }
}
