//! Typed decoding round-trips: for every stanza decode_bytes accepts,
//! - no text other than whitespace sat directly in the stanza (it would be
//!   dropped);
//! - to_bytes succeeds;
//! - decode_bytes(to_bytes(s)) == s;
//! - encoding is a fixed point: to_bytes(decode(to_bytes(s))) == to_bytes(s).
//! The same holds for the element decoded as a server-to-server stanza
//! (default namespace jabber:server), which makes the namespace explicit.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use xmpp_bridge::stanza::{self, Stanza};
use xmpp_bridge::xml::{self, Limits, Node};
use xmpp_bridge::{ns, Error};

fn check(data: &[u8], s: &Stanza<'_>, how: &str) {
    let out = match s.to_bytes() {
        Ok(out) => out,
        Err(Error::InvalidXmlChar(_))
            if common::skip_known("nonchar") && common::has_nonchar(std::str::from_utf8(data).unwrap()) =>
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
        // Known: a JID normalised once can change when normalised again,
        // here only in letter case (see the jid target, `casefold`).
        if common::skip_known("casefold")
            && format!("{again:?}").to_lowercase() == format!("{s:?}").to_lowercase()
        {
            return;
        }
        // Known: an IQ of type error with two decodable <error/>s swaps them.
        if let Stanza::Iq(iq) = s {
            if common::skip_known("iq_errors")
                && matches!(&iq.payload, Some(stanza::Payload::Xml(e)) if e.name == "error")
            {
                return;
            }
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

/// Decoding keeps nothing but whitespace-only text directly inside the
/// stanza (docs/PROTOCOL.md §1 "Nothing is dropped"): any other text there
/// has no place in the typed form, so decoding must not succeed silently.
fn check_no_text_dropped(data: &[u8]) {
    let el = xml::parse(data, Limits::new(64 * 1024, 32)).unwrap();
    let dropped: Vec<&str> = el
        .children
        .iter()
        .filter_map(|c| match c {
            Node::Text(t) if !t.trim_matches([' ', '\t', '\r', '\n']).is_empty() => Some(t.as_ref()),
            _ => None,
        })
        .collect();
    if !dropped.is_empty() && !common::skip_known("stanza_text") {
        panic!(
            "decoding dropped text {dropped:?} of the stanza\ninput: {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::new(64 * 1024, 32);
    if let Ok(s) = stanza::decode_bytes(data, limits) {
        check_no_text_dropped(data);
        check(data, &s, "jabber:client");
    }
    if let Ok(el) = xml::parse(data, limits) {
        if let Ok(s) = stanza::decode(el, Some(ns::SERVER)) {
            check(data, &s, "jabber:server");
        }
    }
});
