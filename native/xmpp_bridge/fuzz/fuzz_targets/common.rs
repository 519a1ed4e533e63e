//! Helpers shared by the fuzz targets (included with `#[path]`).
#![allow(dead_code)]

use std::sync::OnceLock;
use xmpp_bridge::xml::{Element, Node};

/// `XMPP_FUZZ_SKIP_KNOWN` makes the targets step over inputs that only hit a
/// bug already reported (see the README's fuzzing section), so a long run can
/// look for new ones: `all` (or `1`) skips every known bug, a comma-separated
/// list of names skips those. Names: `nonchar`, `empty_text`, `iq_errors`,
/// `stanza_text`, `too_large`, `bom`. Unset, every invariant is enforced.
pub fn skip_known(name: &str) -> bool {
    static SKIP: OnceLock<Vec<String>> = OnceLock::new();
    let skip = SKIP.get_or_init(|| {
        std::env::var("XMPP_FUZZ_SKIP_KNOWN")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s != "0")
            .collect()
    });
    skip.iter().any(|s| s == name || s == "all" || s == "1")
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
