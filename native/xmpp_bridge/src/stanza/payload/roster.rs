//! The roster (RFC 6121 §2): `<query/>` in `jabber:iq:roster` and its items.

use crate::error::Result;
use crate::jid::normalize_jid;
use crate::ns;
use crate::stanza::{child_elements, only_attrs, plain_child, text_only};
use crate::xml::{close_tag, write_text_el, Element, Str, Tag};

str_enum!(Subscription { None = "none", To = "to", From = "from", Both = "both", Remove = "remove" });

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roster<'a> {
    pub ver: Option<Str<'a>>,
    pub items: Vec<RosterItem<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterItem<'a> {
    pub jid: Str<'a>,
    pub name: Option<Str<'a>>,
    pub subscription: Option<Subscription>,
    /// `ask='subscribe'` (the only value RFC 6121 defines).
    pub ask: bool,
    pub approved: bool,
    pub groups: Vec<Str<'a>>,
}

/// `<query/>` in the roster namespace.
pub(super) fn decode<'a>(el: &Element<'a>) -> Option<Roster<'a>> {
    if !(el.name == "query" && only_attrs(el, true, &["ver"])) {
        return None;
    }
    let mut r = Roster {
        ver: el.attr_str("ver"),
        items: Vec::new(),
    };
    for c in child_elements(el)? {
        if !plain_child(
            c,
            "item",
            &["jid", "name", "subscription", "ask", "approved"],
        ) {
            return None;
        }
        let mut item = RosterItem {
            jid: normalize_jid(c.attr_str("jid")?).ok()?,
            name: c.attr_str("name"),
            subscription: match c.attr("subscription") {
                None => None,
                Some(s) => Some(Subscription::parse(s)?),
            },
            ask: match c.attr("ask") {
                None => false,
                Some("subscribe") => true,
                Some(_) => return None,
            },
            approved: match c.attr("approved") {
                None => false,
                Some("true") => true,
                Some(_) => return None,
            },
            groups: Vec::new(),
        };
        for g in child_elements(c)? {
            if !plain_child(g, "group", &[]) {
                return None;
            }
            item.groups.push(text_only(g)?);
        }
        r.items.push(item);
    }
    Some(r)
}

impl Roster<'_> {
    pub(super) fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "query");
        t.attr("xmlns", ns::ROSTER)?
            .opt("ver", self.ver.as_deref())?;
        if self.items.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.items {
            normalize_jid(i.jid.as_ref())?;
            let mut t = Tag::open(out, "item");
            t.attr("jid", &i.jid)?
                .opt("name", i.name.as_deref())?
                .opt("subscription", i.subscription.map(Subscription::as_str))?
                .opt("ask", i.ask.then_some("subscribe"))?
                .opt("approved", i.approved.then_some("true"))?;
            if i.groups.is_empty() {
                t.empty();
                continue;
            }
            let out = t.body();
            for g in &i.groups {
                write_text_el(out, "group", &[], g)?;
            }
            close_tag(out, "item");
        }
        close_tag(out, "query");
        Ok(())
    }
}
