//! `<presence/>` (RFC 6121 §4): show, statuses and priority have fields of
//! their own; the rest of its children are payloads.

use super::{
    decode_children, lang_text, only_attrs, text_only, write_error_payloads_close, write_head,
    write_lang_texts, Child, Common, LangText, Payload, StanzaError,
};
use crate::error::{Error, Result};
use crate::xml::{write_text_el, Str};

str_enum!(PresenceType {
    Available = "available", Unavailable = "unavailable", Subscribe = "subscribe", Subscribed = "subscribed",
    Unsubscribe = "unsubscribe", Unsubscribed = "unsubscribed", Probe = "probe", Error = "error",
});

str_enum!(Show { Away = "away", Chat = "chat", Dnd = "dnd", Xa = "xa" });

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence<'a> {
    pub id: Option<Str<'a>>,
    pub type_: PresenceType,
    pub from: Option<Str<'a>>,
    pub to: Option<Str<'a>>,
    pub lang: Option<Str<'a>>,
    pub show: Option<Show>,
    pub statuses: Vec<LangText<'a>>,
    pub priority: Option<i8>,
    pub error: Option<StanzaError<'a>>,
    pub payloads: Vec<Payload<'a>>,
    pub attrs: Vec<(Str<'a>, Str<'a>)>,
}

impl Default for Presence<'_> {
    fn default() -> Self {
        Presence {
            id: None,
            type_: PresenceType::Available,
            from: None,
            to: None,
            lang: None,
            show: None,
            statuses: Vec::new(),
            priority: None,
            error: None,
            payloads: Vec::new(),
            attrs: Vec::new(),
        }
    }
}

/// The `type` attribute; `available` when there is none.
pub(super) fn parse_type(type_attr: Option<&str>) -> Result<PresenceType> {
    Ok(match type_attr {
        None => PresenceType::Available,
        // "available" is the absence of a type, never a value of it.
        Some(t) => PresenceType::parse(t)
            .filter(|t| *t != PresenceType::Available)
            .ok_or_else(|| Error::invalid_value("presence", "type", t))?,
    })
}

/// The presence from its checked attributes (`Common`) and its children.
pub(super) fn decode<'a>(
    c: Common<'a>,
    type_: PresenceType,
    children: impl Iterator<Item = Child<'a>>,
    ns: &str,
) -> Presence<'a> {
    let mut p = Presence {
        id: c.id,
        type_,
        from: c.from,
        to: c.to,
        lang: c.lang,
        attrs: c.attrs,
        ..Presence::default()
    };
    decode_children(children, ns, &mut p.error, &mut p.payloads, |el| {
        let plain = el.attr("xmlns").is_none() && only_attrs(el, false, &[]);
        match el.name.as_ref() {
            "show" if plain && p.show.is_none() => text_only(el)
                .and_then(|t| Show::parse(&t))
                .map(|s| p.show = Some(s)),
            "status" => lang_text(el, ns).map(|t| p.statuses.push(t)),
            "priority" if plain && p.priority.is_none() => text_only(el)
                .and_then(|t| t.parse::<i8>().ok().filter(|n| n.to_string() == t))
                .map(|n| p.priority = Some(n)),
            _ => None,
        }
    });
    p
}

impl Presence<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let type_ = (self.type_ != PresenceType::Available).then(|| self.type_.as_str());
        let mut t = write_head(
            out,
            "presence",
            self.id.as_deref(),
            type_,
            &self.from,
            &self.to,
            &self.lang,
            &self.attrs,
        )?;
        if self.show.is_none()
            && self.statuses.is_empty()
            && self.priority.is_none()
            && self.error.is_none()
            && self.payloads.is_empty()
        {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        if let Some(s) = self.show {
            write_text_el(out, "show", &[], s.as_str())?;
        }
        write_lang_texts(out, "status", &self.statuses)?;
        if let Some(p) = self.priority {
            write_text_el(out, "priority", &[], &p.to_string())?;
        }
        write_error_payloads_close(out, &self.error, &self.payloads, "presence")
    }
}
