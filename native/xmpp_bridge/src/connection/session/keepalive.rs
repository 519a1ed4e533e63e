//! Probing a silent server: after `keepalive` without a byte from it, an
//! XEP-0198 `<r/>` (or, without stream management, an XEP-0199 ping) goes
//! out; no answer within `keepalive_timeout` ends the connection.

use super::super::{Config, ConnError};
use super::conn::{id, Conn};
use super::sm;
use crate::ns;
use std::time::Duration;
use tokio::time::{Instant, Interval};

/// The timer that drives [`Conn::keepalive`].
pub(super) fn ticker(cfg: &Config) -> Interval {
    let period = cfg
        .keepalive
        .unwrap_or(Duration::from_secs(3600))
        .min(cfg.keepalive_timeout);
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(50)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

impl Conn {
    /// Data came from the server at `now`: it is alive.
    pub(super) fn heard_from_server(&mut self, now: Instant) {
        self.last_rx = now;
        self.probe_sent = None;
    }

    /// True (and forgotten) when the IQ `id` answers one of our pings.
    pub(super) fn is_probe_answer(&mut self, iq_id: &str) -> bool {
        match self.probe_ids.iter().position(|p| *p == iq_id) {
            Some(pos) => {
                self.probe_ids.remove(pos);
                true
            }
            None => false,
        }
    }

    /// On every tick: probes the server after `keepalive` of silence;
    /// fails when a probe stayed unanswered for `keepalive_timeout`.
    pub(super) fn keepalive(&mut self, cfg: &Config) -> Result<(), ConnError> {
        let Some(idle) = cfg.keepalive else {
            return Ok(());
        };
        if let Some(sent) = self.probe_sent {
            if sent.elapsed() >= cfg.keepalive_timeout {
                return Err(ConnError::KeepaliveTimeout);
            }
            return Ok(());
        }
        if self.last_rx.elapsed() < idle {
            return Ok(());
        }
        if self.sm {
            self.out.extend_from_slice(sm::REQUEST);
        } else {
            let pid = id("ka", &mut self.next_id);
            let from = if self.ns == ns::COMPONENT {
                format!(" from='{}'", self.domain)
            } else {
                String::new()
            };
            let to = if self.ns == ns::COMPONENT {
                self.domain
                    .split_once('.')
                    .map(|(_, parent)| parent.to_owned())
                    .unwrap_or_default()
            } else {
                self.domain.clone()
            };
            let ping = format!(
                "<iq type='get' id='{pid}'{from} to='{to}'><ping xmlns='{}'/></iq>",
                ns::PING
            );
            self.out.extend_from_slice(ping.as_bytes());
            self.probe_ids.push(pid);
        }
        self.probe_sent = Some(Instant::now());
        Ok(())
    }
}
