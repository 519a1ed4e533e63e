//! XEP-0203 delayed delivery: `<delay/>`.

use crate::error::Result;
use crate::ns;
use crate::stanza::{check_jid, only_attrs, opt_jid, text_only};
use crate::xml::{write_text_el, Element, Str};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delay<'a> {
    pub stamp: Str<'a>,
    pub from: Option<Str<'a>>,
    pub reason: Option<Str<'a>>,
}

pub(super) fn decode<'a>(el: &Element<'a>) -> Option<Delay<'a>> {
    if !(el.name == "delay" && only_attrs(el, true, &["stamp", "from"])) {
        return None;
    }
    let reason = text_only(el)?;
    Some(Delay {
        stamp: el.attr_str("stamp")?,
        from: opt_jid(el.attr_str("from"))?,
        reason: if el.children.is_empty() {
            None
        } else {
            Some(reason)
        },
    })
}

impl Delay<'_> {
    pub(super) fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        check_jid(&self.from)?;
        let attrs = [
            ("xmlns", Some(ns::DELAY)),
            ("from", self.from.as_deref()),
            ("stamp", Some(self.stamp.as_ref())),
        ];
        write_text_el(out, "delay", &attrs, self.reason.as_deref().unwrap_or(""))
    }
}
