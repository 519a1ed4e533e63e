//! DNS SRV lookup (RFC 2782) for `_xmpp-client._tcp.<domain>` (RFC 6120
//! §3.2.1): one UDP query to the configured name server, or the first one of
//! /etc/resolv.conf.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// One SRV record: where to connect, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub host: String,
}

/// The first `nameserver` of /etc/resolv.conf, port 53.
fn system_server() -> Option<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(ip)) => {
                ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
            }
            _ => None,
        }
    })
}

/// The targets of `name`'s SRV records, best first; empty when there are
/// none (or the service is declared absent with the target ".").
pub async fn lookup(name: &str, server: Option<SocketAddr>) -> Vec<Target> {
    let Some(server) = server.or_else(system_server) else {
        return Vec::new();
    };
    let id: u16 = rand::random();
    let Some(query) = build_query(id, name) else {
        return Vec::new();
    };
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal");
    let Ok(socket) = UdpSocket::bind(bind).await else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 4096];
    for _attempt in 0..2 {
        if socket.send_to(&query, server).await.is_err() {
            return Vec::new();
        }
        if let Ok(Ok((n, from))) = timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await
        {
            if from == server {
                if let Some(mut targets) = parse_response(id, &buf[..n]) {
                    targets
                        .sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
                    if targets.len() == 1 && targets[0].host.is_empty() {
                        return Vec::new();
                    }
                    return targets;
                }
            }
        }
    }
    Vec::new()
}

fn build_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 33, 0, 1]); // SRV, IN
    Some(q)
}

/// Reads a (possibly compressed) name at `pos`; returns it and the position
/// after it in the record.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len & 0xC0 == 0xC0 {
            let ptr = ((len & 0x3F) << 8) | *msg.get(pos + 1)? as usize;
            end.get_or_insert(pos + 2);
            pos = ptr;
        } else if len == 0 {
            return Some((labels.join("."), end.unwrap_or(pos + 1)));
        } else {
            let label = msg.get(pos + 1..pos + 1 + len)?;
            labels.push(String::from_utf8_lossy(label).into_owned());
            pos += 1 + len;
        }
    }
    None
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

fn parse_response(id: u16, msg: &[u8]) -> Option<Vec<Target>> {
    if u16_at(msg, 0)? != id || msg.get(2)? & 0x80 == 0 || msg.get(3)? & 0x0F != 0 {
        return None;
    }
    let questions = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut pos = 12;
    for _ in 0..questions {
        pos = read_name(msg, pos)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        pos = read_name(msg, pos)?.1;
        let rtype = u16_at(msg, pos)?;
        let rdlen = u16_at(msg, pos + 8)? as usize;
        let rdata = pos + 10;
        if rtype == 33 {
            let (host, _) = read_name(msg, rdata + 6)?;
            out.push(Target {
                priority: u16_at(msg, rdata)?,
                weight: u16_at(msg, rdata + 2)?,
                port: u16_at(msg, rdata + 4)?,
                host,
            });
        }
        pos = rdata + rdlen;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_answer_with_compressed_names() {
        let q = build_query(0x1234, "_xmpp-client._tcp.example.com").unwrap();
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 2; // two answers
        for (prio, port, target) in [(20u16, 5223u16, "b"), (10, 5222, "a")] {
            r.extend_from_slice(&[0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
            let mut rdata = Vec::new();
            rdata.extend_from_slice(&prio.to_be_bytes());
            rdata.extend_from_slice(&5u16.to_be_bytes());
            rdata.extend_from_slice(&port.to_be_bytes());
            rdata.push(1);
            rdata.extend_from_slice(target.as_bytes());
            // "example.com" of the question, by pointer: after the header
            // (12) and the labels "_xmpp-client" (1 + 12) and "_tcp" (1 + 4).
            rdata.extend_from_slice(&[0xC0, 12 + 13 + 5]);
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(&rdata);
        }
        let mut t = parse_response(0x1234, &r).unwrap();
        t.sort_by_key(|t| t.priority);
        assert_eq!(t[0].host, "a.example.com");
        assert_eq!((t[0].port, t[1].port), (5222, 5223));
        assert_eq!(parse_response(0x9999, &r), None);
    }
}
