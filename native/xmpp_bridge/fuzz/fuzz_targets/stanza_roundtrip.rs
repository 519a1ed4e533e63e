//! Typed decoding round-trips: for every stanza decode_bytes accepts,
//! - text directly inside a message or presence is kept as Payload::Text
//!   (an IQ refuses it);
//! - to_bytes succeeds;
//! - decode_bytes(to_bytes(s)) == s;
//! - encoding is a fixed point: to_bytes(decode(to_bytes(s))) == to_bytes(s);
//! - to_stream_bytes(s) read back through a StreamParser (header
//!   jabber:client) decodes to s.
//!
//! The same holds for the element decoded as a server-to-server stanza
//! (default namespace jabber:server), which makes the namespace explicit.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use xmpp_bridge::stanza::{self, Payload, Stanza};
use xmpp_bridge::xml::{self, Limits, Node};
use xmpp_bridge::{ns, Error, Event, StreamParser};

fn check(data: &[u8], s: &Stanza<'_>, how: &str) {
    let out = match s.to_bytes() {
        Ok(out) => out,
        Err(Error::InvalidXmlChar(_))
            if common::skip_known("nonchar")
                && common::has_nonchar(std::str::from_utf8(data).unwrap()) =>
        {
            return
        }
        Err(e) => panic!(
            "{how}: a decoded stanza cannot be encoded: {e:?}\ninput: {:?}\nstanza: {s:#?}",
            String::from_utf8_lossy(data)
        ),
    };
    let again = stanza::decode_bytes(&out, Limits::new(usize::MAX, xml::MAX_DEPTH_CEILING))
        .unwrap_or_else(|e| {
            panic!(
                "{how}: encoded stanza does not decode: {e:?}\ninput:  {:?}\noutput: {:?}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&out)
            )
        });
    if &again != s {
        let el = xml::parse(data, Limits::new(64 * 1024, 32)).unwrap();
        if common::skip_known("empty_text") && common::has_empty_text(&el) {
            return;
        }
        if common::skip_known("iq_errors") && known_iq_errors(s) {
            return;
        }
    }
    assert_eq!(
        &again,
        s,
        "{how}: decode(encode(s)) != s\ninput:  {:?}\noutput: {:?}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&out)
    );
    let out2 = again.to_bytes().expect("re-encoding");
    assert_eq!(
        String::from_utf8_lossy(&out2),
        String::from_utf8_lossy(&out),
        "{how}: encoding is not a fixed point"
    );
}

/// Text directly inside the stanza other than whitespace between children
/// (docs/PROTOCOL.md §1 "Nothing is dropped"): an IQ must refuse it; a
/// message or presence keeps all of it as `Payload::Text`, in order.
fn check_no_text_dropped(data: &[u8], s: &Stanza<'_>) {
    let el = xml::parse(data, Limits::new(64 * 1024, 32)).unwrap();
    let is_ws = |t: &str| t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    let text: String = el
        .children
        .iter()
        .filter_map(|c| match c {
            Node::Text(t) if !is_ws(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect();
    let payloads = match s {
        Stanza::Message(m) => &m.payloads,
        Stanza::Presence(p) => &p.payloads,
        Stanza::Iq(_) => &Vec::new(),
    };
    let kept: String = payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Text(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect();
    if text != kept && !common::skip_known("stanza_text") {
        panic!(
            "stanza text {text:?} decoded as {kept:?}\ninput: {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

/// The stanza written for a stream (`to_stream_bytes`, no default xmlns)
/// and read back by a StreamParser whose header says `jabber:client`
/// decodes to the same stanza.
fn check_stream(data: &[u8], s: &Stanza<'_>, how: &str) {
    let Ok(bytes) = s.to_stream_bytes() else {
        return; // to_bytes failed: reported by `check`
    };
    let mut p = StreamParser::new(Limits::new(usize::MAX, xml::MAX_DEPTH_CEILING));
    let mut events = Vec::new();
    p.feed(HEADER, &mut events).unwrap();
    p.feed(&bytes, &mut events).unwrap_or_else(|e| {
        panic!(
            "{how}: to_stream_bytes output refused by the stream parser: {e:?}\ninput:  {:?}\noutput: {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&bytes)
        )
    });
    let [Event::Start(_), Event::Element(el)] = events.as_slice() else {
        panic!(
            "{how}: stream events {events:?} for {:?}",
            String::from_utf8_lossy(&bytes)
        );
    };
    let again = stanza::decode(el.clone(), p.default_ns()).unwrap_or_else(|e| {
        panic!(
            "{how}: stream stanza does not decode: {e:?}\n{:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    if &again != s && common::skip_known("iq_errors") && known_iq_errors(s) {
        return;
    }
    assert_eq!(
        &again,
        s,
        "{how}: decode(stream(to_stream_bytes(s))) != s\ninput:  {:?}\noutput: {:?}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&bytes)
    );
}

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams'>";

/// Known: an IQ of type error with two decodable <error/>s swaps them.
fn known_iq_errors(s: &Stanza<'_>) -> bool {
    matches!(s, Stanza::Iq(iq) if matches!(&iq.payload, Some(Payload::Xml(e)) if e.name == "error"))
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::new(64 * 1024, 32);
    if let Ok(s) = stanza::decode_bytes(data, limits) {
        check_no_text_dropped(data, &s);
        check(data, &s, "jabber:client");
        check_stream(data, &s, "jabber:client");
    }
    if let Ok(el) = xml::parse(data, limits) {
        if let Ok(s) = stanza::decode(el, Some(ns::SERVER)) {
            check(data, &s, "jabber:server");
            check_stream(data, &s, "jabber:server");
        }
    }
});
