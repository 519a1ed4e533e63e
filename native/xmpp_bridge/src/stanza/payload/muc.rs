//! XEP-0045 multi-user chat: joining a room (`<x/>` in the MUC namespace,
//! with its history request) and the room's user information (`<x/>` in
//! the MUC user namespace: items and status codes).

use crate::error::Result;
use crate::ns;
use crate::stanza::{
    check_jid, child_elements, is_empty, only_attrs, opt_jid, plain_child, text_only,
};
use crate::xml::{close_tag, write_text_el, Element, Str, Tag};

str_enum!(Affiliation { Owner = "owner", Admin = "admin", Member = "member", Outcast = "outcast", None = "none" });

str_enum!(Role { Moderator = "moderator", Participant = "participant", Visitor = "visitor", None = "none" });

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucJoin<'a> {
    pub password: Option<Str<'a>>,
    pub history: Option<MucHistory<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucHistory<'a> {
    pub maxchars: Option<u32>,
    pub maxstanzas: Option<u32>,
    pub seconds: Option<u32>,
    pub since: Option<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucUser<'a> {
    pub items: Vec<MucItem<'a>>,
    pub status_codes: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MucItem<'a> {
    pub affiliation: Option<Affiliation>,
    pub role: Option<Role>,
    pub jid: Option<Str<'a>>,
    pub nick: Option<Str<'a>>,
    pub actor_jid: Option<Str<'a>>,
    pub actor_nick: Option<Str<'a>>,
    pub reason: Option<Str<'a>>,
}

fn opt_u32(v: Option<&str>) -> Option<Option<u32>> {
    match v {
        None => Some(None),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| n.to_string() == s)
            .map(Some),
    }
}

/// `<x/>` in the MUC namespace, as sent to join a room.
pub(super) fn decode_join<'a>(el: &Element<'a>) -> Option<MucJoin<'a>> {
    if !(el.name == "x" && only_attrs(el, true, &[])) {
        return None;
    }
    let mut j = MucJoin::default();
    for c in child_elements(el)? {
        if plain_child(c, "password", &[]) && j.password.is_none() {
            j.password = Some(text_only(c)?);
        } else if plain_child(
            c,
            "history",
            &["maxchars", "maxstanzas", "seconds", "since"],
        ) && j.history.is_none()
            && is_empty(c)
        {
            j.history = Some(MucHistory {
                maxchars: opt_u32(c.attr("maxchars"))?,
                maxstanzas: opt_u32(c.attr("maxstanzas"))?,
                seconds: opt_u32(c.attr("seconds"))?,
                since: c.attr_str("since"),
            });
        } else {
            return None;
        }
    }
    Some(j)
}

/// `<x/>` in the MUC user namespace.
pub(super) fn decode_user<'a>(el: &Element<'a>) -> Option<MucUser<'a>> {
    if !(el.name == "x" && only_attrs(el, true, &[])) {
        return None;
    }
    let mut u = MucUser::default();
    for c in child_elements(el)? {
        if plain_child(c, "item", &["affiliation", "role", "jid", "nick"]) {
            let mut item = MucItem {
                affiliation: match c.attr("affiliation") {
                    None => None,
                    Some(a) => Some(Affiliation::parse(a)?),
                },
                role: match c.attr("role") {
                    None => None,
                    Some(r) => Some(Role::parse(r)?),
                },
                jid: opt_jid(c.attr_str("jid"))?,
                nick: c.attr_str("nick"),
                ..MucItem::default()
            };
            let mut actor = false;
            for g in child_elements(c)? {
                if plain_child(g, "actor", &["jid", "nick"]) && !actor && is_empty(g) {
                    actor = true;
                    item.actor_jid = opt_jid(g.attr_str("jid"))?;
                    item.actor_nick = g.attr_str("nick");
                    if item.actor_jid.is_none() && item.actor_nick.is_none() {
                        return None;
                    }
                } else if plain_child(g, "reason", &[]) && item.reason.is_none() {
                    item.reason = Some(text_only(g)?);
                } else {
                    return None;
                }
            }
            u.items.push(item);
        } else if plain_child(c, "status", &["code"]) && is_empty(c) {
            let code = c.attr("code")?;
            u.status_codes
                .push(code.parse::<u16>().ok().filter(|n| n.to_string() == code)?);
        } else {
            return None;
        }
    }
    Some(u)
}

impl MucJoin<'_> {
    pub(super) fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "x");
        t.attr("xmlns", ns::MUC)?;
        if self.password.is_none() && self.history.is_none() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        if let Some(h) = &self.history {
            let n = |v: Option<u32>| v.map(|n| n.to_string());
            let (mc, ms, s) = (n(h.maxchars), n(h.maxstanzas), n(h.seconds));
            let mut t = Tag::open(out, "history");
            t.opt("maxchars", mc.as_deref())?
                .opt("maxstanzas", ms.as_deref())?
                .opt("seconds", s.as_deref())?
                .opt("since", h.since.as_deref())?
                .empty();
        }
        if let Some(p) = &self.password {
            write_text_el(out, "password", &[], p)?;
        }
        close_tag(out, "x");
        Ok(())
    }
}

impl MucUser<'_> {
    pub(super) fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "x");
        t.attr("xmlns", ns::MUC_USER)?;
        if self.items.is_empty() && self.status_codes.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.items {
            check_jid(&i.jid)?;
            check_jid(&i.actor_jid)?;
            let mut t = Tag::open(out, "item");
            t.opt("affiliation", i.affiliation.map(Affiliation::as_str))?
                .opt("jid", i.jid.as_deref())?
                .opt("nick", i.nick.as_deref())?
                .opt("role", i.role.map(Role::as_str))?;
            let has_actor = i.actor_jid.is_some() || i.actor_nick.is_some();
            if !has_actor && i.reason.is_none() {
                t.empty();
                continue;
            }
            let out = t.body();
            if has_actor {
                Tag::open(out, "actor")
                    .opt("jid", i.actor_jid.as_deref())?
                    .opt("nick", i.actor_nick.as_deref())?
                    .empty();
            }
            if let Some(r) = &i.reason {
                write_text_el(out, "reason", &[], r)?;
            }
            close_tag(out, "item");
        }
        for code in &self.status_codes {
            Tag::open(out, "status")
                .attr("code", &code.to_string())?
                .empty();
        }
        close_tag(out, "x");
        Ok(())
    }
}
