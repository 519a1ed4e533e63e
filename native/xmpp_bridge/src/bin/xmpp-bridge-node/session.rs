//! Starting a node: connect within the time given, or say why not.

use crate::args::ConnOpts;
use crate::exit;
use crate::out;
use std::hash::{BuildHasher, Hasher};
use xmpp_bridge::bus::{self, Events, Node};

/// A resource of its own for a one-shot command (`cli-` and 8 hex
/// digits), so that it does not take over a node serving the account.
pub fn cli_resource() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("cli-{:08x}", h.finish() as u32)
}

/// Connects with `config`; on failure prints why and returns the exit
/// code ([`exit::CONNECT`]).
pub async fn connect(conn: &ConnOpts, config: bus::Config) -> Result<(Node, Events), i32> {
    let server = match (&config.connection.host, conn.port) {
        (Some(h), Some(p)) => format!(" at {h}:{p}"),
        (Some(h), None) => format!(" at {h}"),
        _ => String::new(),
    };
    match tokio::time::timeout(conn.connect_timeout, Node::connect(config)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            out::diag(format!("{} could not connect{server}: {e}", conn.jid));
            Err(exit::CONNECT)
        }
        Err(_) => {
            out::diag(format!(
                "{} could not connect{server} within {} ms",
                conn.jid,
                conn.connect_timeout.as_millis()
            ));
            Err(exit::CONNECT)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_shot_resources_differ() {
        let a = super::cli_resource();
        assert!(a.starts_with("cli-") && a.len() == 12, "{a}");
        assert_ne!(a, super::cli_resource());
    }
}
