//! When a busy stream's next read waits for more data.
//!
//! A server routing a burst to us writes each stanza as it comes, so a
//! session that reads on every readiness gets one or two stanzas per read:
//! one wake-up of the runtime, one `read`, one parse pass and one message to
//! the owner (one wake-up of a BEAM scheduler) per stanza or two. Under
//! sustained load the session instead lets the next read wait a little, so
//! that it carries many stanzas at once; at light load (a request and its
//! answer, a chat) every read happens as soon as data arrives.
//!
//! "Sustained load" is: at least [`BUSY_STANZAS`] stanzas within one
//! [`WINDOW`], and the latest read carried more than one (data was already
//! piling up while we read). A read that fills the whole buffer is never
//! followed by a wait: more is waiting.
//!
//! The first wait is [`FIRST_WAIT`] (or the configured maximum if that is
//! shorter); while the stream stays busy each wait doubles, up to the
//! maximum, so that a long burst is read in few large pieces; the first
//! read that finds the stream calm starts again from the shortest wait.

use std::time::Duration;
use tokio::time::Instant;

/// The span over which incoming stanzas are counted.
pub const WINDOW: Duration = Duration::from_millis(1);

/// Stanzas within one window that make a stream busy.
pub const BUSY_STANZAS: usize = 8;

/// The wait after a stream first turns busy.
pub const FIRST_WAIT: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct Batching {
    max: Duration,
    /// The next wait while the stream stays busy.
    next: Duration,
    window_start: Option<Instant>,
    window_stanzas: usize,
}

impl Batching {
    /// `max`: the longest a read of a busy stream waits (zero: never).
    pub fn new(max: Duration) -> Batching {
        Batching {
            max,
            next: FIRST_WAIT.min(max),
            window_start: None,
            window_stanzas: 0,
        }
    }

    /// Called after a read at `now` that delivered `stanzas` stanzas
    /// (message, presence, iq; not stream management's `<r/>`/`<a/>`) and
    /// filled the read buffer or not. Returns when the next
    /// read may start (None: at once).
    pub fn after_read(&mut self, now: Instant, stanzas: usize, filled: bool) -> Option<Instant> {
        if self.max.is_zero() {
            return None;
        }
        match self.window_start {
            Some(start) if now.duration_since(start) < WINDOW => {}
            _ => {
                self.window_start = Some(now);
                self.window_stanzas = 0;
            }
        }
        self.window_stanzas += stanzas;
        let busy = stanzas > 1 && self.window_stanzas >= BUSY_STANZAS;
        if !busy {
            self.next = FIRST_WAIT.min(self.max);
            return None;
        }
        if filled {
            return None;
        }
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        Some(now + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(1);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn single_stanzas_at_light_load_are_read_at_once() {
        let t0 = Instant::now();
        let mut b = Batching::new(DELAY);
        // A request/answer exchange: one stanza per read, every 100 µs.
        for i in 0..50 {
            assert_eq!(b.after_read(t0 + us(100 * i), 1, false), None, "read {i}");
        }
    }

    #[test]
    fn one_stanza_per_read_never_waits_however_fast() {
        let t0 = Instant::now();
        let mut b = Batching::new(DELAY);
        // A fast ping-pong: 20 single-stanza reads within a millisecond.
        for i in 0..20 {
            assert_eq!(b.after_read(t0 + us(50 * i), 1, false), None, "read {i}");
        }
    }

    #[test]
    fn a_burst_makes_the_next_read_wait() {
        let t0 = Instant::now();
        let mut b = Batching::new(DELAY);
        let mut waits = Vec::new();
        // Reads of 2 stanzas every 40 µs: 8 stanzas by the fourth read.
        for i in 0..4 {
            let now = t0 + us(40 * i);
            waits.push(b.after_read(now, 2, false));
        }
        assert_eq!(waits[..3], [None, None, None]);
        assert_eq!(waits[3], Some(t0 + us(120) + DELAY));
    }

    #[test]
    fn a_stream_stays_batched_while_each_waited_read_brings_many() {
        let t0 = Instant::now();
        let mut b = Batching::new(DELAY);
        assert!(b.after_read(t0, 8, false).is_some());
        // Each read after a wait starts a new window and brings 30 stanzas.
        for i in 1..10 {
            let now = t0 + Duration::from_millis(2 * i);
            assert_eq!(b.after_read(now, 30, false), Some(now + DELAY));
        }
    }

    #[test]
    fn the_burst_ends_when_a_waited_read_brings_one_stanza() {
        let t0 = Instant::now();
        let mut b = Batching::new(DELAY);
        assert!(b.after_read(t0, 10, false).is_some());
        let later = t0 + Duration::from_millis(2);
        assert_eq!(b.after_read(later, 1, false), None);
        // A few stragglers in the new window do not bring the wait back.
        assert_eq!(b.after_read(later + us(10), 2, false), None);
    }

    #[test]
    fn waits_double_while_busy_up_to_the_maximum_and_start_over_after_a_calm_read() {
        let t0 = Instant::now();
        let mut b = Batching::new(ms(4));
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let until = b.after_read(now, 40, false).expect("busy");
            waits.push(until - now);
            now = until + us(300);
        }
        assert_eq!(waits, [ms(1), ms(2), ms(4), ms(4), ms(4)]);
        // Calm: one stanza in a new window. Then busy again: from 1 ms.
        now += ms(5);
        assert_eq!(b.after_read(now, 1, false), None);
        assert_eq!(
            b.after_read(now + us(10), 10, false),
            Some(now + us(10) + ms(1))
        );
    }

    #[test]
    fn a_maximum_below_the_first_wait_is_used_as_it_is() {
        let t0 = Instant::now();
        let mut b = Batching::new(us(500));
        assert_eq!(b.after_read(t0, 10, false), Some(t0 + us(500)));
        assert_eq!(
            b.after_read(t0 + ms(1), 10, false),
            Some(t0 + ms(1) + us(500))
        );
    }

    #[test]
    fn a_full_buffer_is_read_again_at_once() {
        let t0 = Instant::now();
        let mut b = Batching::new(DELAY);
        assert_eq!(b.after_read(t0, 100, true), None);
        assert!(b.after_read(t0 + us(5), 20, false).is_some());
    }

    #[test]
    fn zero_delay_turns_batching_off() {
        let t0 = Instant::now();
        let mut b = Batching::new(Duration::ZERO);
        for i in 0..10 {
            assert_eq!(b.after_read(t0 + us(i), 50, false), None);
        }
    }
}
