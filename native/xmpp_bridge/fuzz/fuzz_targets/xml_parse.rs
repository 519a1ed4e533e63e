//! xml::parse on arbitrary bytes. For every element it accepts:
//! - the writer serialises it (no error at all: whatever was parsed from
//!   XML 1.0 must be writable as XML 1.0);
//! - parsing the output gives the same tree (after `into_owned`);
//! - writing is a fixed point: to_bytes(parse(to_bytes(el))) == to_bytes(el);
//! - attribute values are normalised (XML 1.0 §3.3.3): a tab, LF or CR in
//!   one can only come from a character reference, so an input without
//!   `&#` has none.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use xmpp_bridge::xml::{self, Element, Limits, Node};
use xmpp_bridge::Error;

/// How many `&#` (character references) the input holds.
fn memchr_refs(data: &[u8]) -> usize {
    data.windows(2).filter(|w| w == b"&#").count()
}

/// True when some attribute value in the tree holds a tab, LF or CR.
fn has_attr_whitespace(el: &Element<'_>) -> bool {
    el.attrs
        .iter()
        .any(|(_, v)| v.contains(['\t', '\n', '\r']))
        || el.children.iter().any(|c| match c {
            Node::Element(child) => has_attr_whitespace(child),
            Node::Text(_) => false,
        })
}

fuzz_target!(|data: &[u8]| {
    let Ok(el) = xml::parse(data, Limits::new(64 * 1024, 32)) else {
        return;
    };
    let el = el.into_owned();
    if memchr_refs(data) == 0 {
        assert!(
            !has_attr_whitespace(&el),
            "a literal tab, LF or CR kept in an attribute value\ninput: {:?}",
            String::from_utf8_lossy(data)
        );
    }
    let out = match el.to_bytes() {
        Ok(out) => out,
        Err(Error::InvalidXmlChar(_))
            if common::skip_known("nonchar")
                && common::has_nonchar(std::str::from_utf8(data).unwrap()) =>
        {
            return
        }
        Err(e) => panic!(
            "parsed input cannot be written back: {e:?}\ninput: {:?}",
            String::from_utf8_lossy(data)
        ),
    };
    if common::skip_known("empty_text") && common::has_empty_text(&el) {
        return;
    }
    // Escaping may make the output bigger than the input: no size limit here,
    // and the writer's own depth ceiling for the depth.
    let again = xml::parse(&out, Limits::new(usize::MAX, xml::MAX_DEPTH_CEILING))
        .unwrap_or_else(|e| {
            panic!(
                "writer output does not parse: {e:?}\ninput:  {:?}\noutput: {:?}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&out)
            )
        })
        .into_owned();
    assert_eq!(
        again,
        el,
        "parse(to_bytes(el)) != el\ninput:  {:?}\noutput: {:?}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        again.to_bytes().unwrap(),
        out,
        "writing is not a fixed point"
    );
});
