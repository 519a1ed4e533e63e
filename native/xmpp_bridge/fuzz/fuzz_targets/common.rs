//! Helpers shared by the fuzz targets (included with `#[path]`).
#![allow(dead_code)]

use std::sync::OnceLock;
use xmpp_bridge::xml::{Element, Node};

/// `XMPP_FUZZ_SKIP_KNOWN=1` makes the targets step over inputs that only hit
/// a bug already reported (see the README's fuzzing section), so a long run
/// can look for new ones. By default every invariant is enforced.
pub fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("XMPP_FUZZ_SKIP_KNOWN").is_some_and(|v| v != "0"))
}

/// True when the tree holds a text node that is the empty string (an empty
/// CDATA section parses to one; the writer cannot write it back).
pub fn has_empty_text(el: &Element<'_>) -> bool {
    el.children.iter().any(|c| match c {
        Node::Text(t) => t.is_empty(),
        Node::Element(e) => has_empty_text(e),
    })
}

/// True when `s` holds U+FFFE or U+FFFF, which the parser accepts and the
/// writer refuses.
pub fn has_nonchar(s: &str) -> bool {
    s.contains(['\u{FFFE}', '\u{FFFF}'])
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
