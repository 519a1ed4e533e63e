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

/// An ack request (in [`ns::SM`], checked by a test).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with(seqs: &[u64]) -> Ledger {
        let mut l = Ledger::default();
        for &s in seqs {
            l.sent(s, format!("<message id='{s}'/>").into_bytes());
        }
        l
    }

    #[test]
    fn an_ack_confirms_the_oldest_stanzas_and_hides_the_sessions_own() {
        // 0 is the session's own stanza (the initial presence, say).
        let mut l = ledger_with(&[0, 1, 2, 3]);
        assert_eq!(l.ack(2).unwrap(), vec![1]);
        assert_eq!(l.acked_h(), 2);
        // The same h again confirms nothing more.
        assert_eq!(l.ack(2).unwrap(), Vec::<u64>::new());
        let left: Vec<&[u8]> = l.unacked_bytes().collect();
        assert_eq!(left, vec![&b"<message id='2'/>"[..], b"<message id='3'/>"]);
        assert_eq!(l.ack(4).unwrap(), vec![2, 3]);
        assert!(!l.has_unacked());
    }

    #[test]
    fn a_server_that_acks_more_than_was_sent_is_a_protocol_error() {
        let mut l = ledger_with(&[1, 2]);
        let err = l.ack(3).unwrap_err();
        assert_eq!(
            err,
            ConnError::Protocol("server acknowledged 3 stanzas, only 2 were sent".into())
        );
        // Nothing was confirmed by the bad answer.
        assert_eq!(l.acked_h(), 0);
        assert_eq!(l.unacked_bytes().count(), 2);
    }

    #[test]
    fn h_wraps_around_at_2_pow_32() {
        // As if 2^32 - 2 stanzas had been confirmed before.
        let mut l = Ledger {
            acked_h: u32::MAX - 1,
            ..Ledger::default()
        };
        for s in 10..14 {
            l.sent(s, Vec::new());
        }
        assert_eq!(l.ack(u32::MAX).unwrap(), vec![10]);
        assert_eq!(l.ack(1).unwrap(), vec![11, 12]);
        assert_eq!(l.acked_h(), 1);
        // Our own count wraps the same way.
        l.h_in = u32::MAX;
        l.received();
        assert_eq!(l.handled(), 0);
    }

    #[test]
    fn restart_zeroes_both_counts_and_take_unacked_empties_the_queue() {
        let mut l = ledger_with(&[0, 5, 6]);
        l.received();
        l.ack(1).unwrap();
        l.restart();
        assert_eq!((l.handled(), l.acked_h()), (0, 0));
        // Still waiting: what a refused resumption reports failed.
        assert_eq!(l.take_unacked(), vec![5, 6]);
        assert!(!l.has_unacked());
        assert_eq!(l.take_unacked(), Vec::<u64>::new());
    }

    #[test]
    fn the_request_is_in_the_sm_namespace() {
        // A byte literal for the hot path; ns::SM stays the one source.
        assert_eq!(REQUEST, format!("<r xmlns='{}'/>", ns::SM).as_bytes());
    }

    #[test]
    fn the_answer_names_our_count() {
        assert_eq!(answer(42), "<a xmlns='urn:xmpp:sm:3' h='42'/>");
    }

    #[test]
    fn nothing_written_nothing_requested() {
        let now = Instant::now();
        let mut a = AckRequests::default();
        assert!(!a.plan(now));
        assert_eq!(a.due(), None);
        assert!(!a.request(now));
    }

    #[test]
    fn a_pause_of_ack_delay_brings_the_request() {
        let t0 = Instant::now();
        let mut a = AckRequests::default();
        a.written(3);
        assert!(!a.plan(t0));
        assert_eq!(a.due(), Some(t0 + ACK_DELAY));
        // More writes do not push the request back.
        a.written(1);
        assert!(!a.plan(t0 + ACK_DELAY / 2));
        assert_eq!(a.due(), Some(t0 + ACK_DELAY));
        assert!(a.plan(t0 + ACK_DELAY));
        assert_eq!(a.due(), None);
    }

    #[test]
    fn ack_every_stanzas_bring_the_request_at_once() {
        let t0 = Instant::now();
        let mut a = AckRequests::default();
        a.written(ACK_EVERY - 1);
        assert!(!a.plan(t0));
        a.written(1);
        assert!(a.plan(t0));
        // Answered or not, nothing new was written: no request.
        assert!(!a.plan(t0));
    }

    #[test]
    fn one_request_at_a_time_until_answered_or_too_long_unanswered() {
        let t0 = Instant::now();
        let mut a = AckRequests::default();
        a.written(ACK_EVERY);
        assert!(a.plan(t0));
        // A burst goes on while the request waits for its answer.
        a.written(ACK_EVERY * 3);
        assert!(!a.plan(t0 + Duration::from_millis(1)));
        assert_eq!(a.due(), Some(t0 + ACK_ANSWER_WAIT));
        // Answered: the next request goes at once.
        a.answered();
        assert!(a.plan(t0 + Duration::from_millis(2)));

        // Unanswered: the next goes ACK_ANSWER_WAIT after the last.
        let t1 = t0 + Duration::from_millis(2);
        a.written(ACK_EVERY);
        assert!(!a.plan(t1 + ACK_ANSWER_WAIT - Duration::from_millis(1)));
        assert!(a.plan(t1 + ACK_ANSWER_WAIT));
    }
}
