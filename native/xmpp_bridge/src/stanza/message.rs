//! `<message/>` (RFC 6121 §5): bodies, subjects and thread have fields of
//! their own; the rest of its children are payloads.

use super::{
    decode_children, lang_text, only_attrs, text_only, write_error_payloads_close, write_head,
    write_lang_texts, Child, Common, LangText, Payload, StanzaError,
};
use crate::error::{Error, Result};
use crate::xml::{write_text_el, Str};

str_enum!(MessageType { Normal = "normal", Chat = "chat", Groupchat = "groupchat", Headline = "headline", Error = "error" });

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub id: Option<Str<'a>>,
    pub type_: MessageType,
    pub from: Option<Str<'a>>,
    pub to: Option<Str<'a>>,
    pub lang: Option<Str<'a>>,
    pub bodies: Vec<LangText<'a>>,
    pub subjects: Vec<LangText<'a>>,
    pub thread: Option<Str<'a>>,
    pub thread_parent: Option<Str<'a>>,
    pub error: Option<StanzaError<'a>>,
    pub payloads: Vec<Payload<'a>>,
    /// Attributes with no field of their own (a non-default `xmlns` too).
    pub attrs: Vec<(Str<'a>, Str<'a>)>,
}

impl Default for Message<'_> {
    fn default() -> Self {
        Message {
            id: None,
            type_: MessageType::Normal,
            from: None,
            to: None,
            lang: None,
            bodies: Vec::new(),
            subjects: Vec::new(),
            thread: None,
            thread_parent: None,
            error: None,
            payloads: Vec::new(),
            attrs: Vec::new(),
        }
    }
}

/// The `type` attribute; `normal` when there is none.
pub(super) fn parse_type(type_attr: Option<&str>) -> Result<MessageType> {
    Ok(match type_attr {
        None => MessageType::Normal,
        Some(t) => {
            MessageType::parse(t).ok_or_else(|| Error::invalid_value("message", "type", t))?
        }
    })
}

/// The message from its checked attributes (`Common`) and its children.
pub(super) fn decode<'a>(
    c: Common<'a>,
    type_: MessageType,
    children: impl Iterator<Item = Child<'a>>,
    ns: &str,
) -> Message<'a> {
    let mut m = Message {
        id: c.id,
        type_,
        from: c.from,
        to: c.to,
        lang: c.lang,
        attrs: c.attrs,
        ..Message::default()
    };
    decode_children(children, ns, &mut m.error, &mut m.payloads, |el| {
        match el.name.as_ref() {
            "body" => lang_text(el, ns).map(|t| m.bodies.push(t)),
            "subject" => lang_text(el, ns).map(|t| m.subjects.push(t)),
            "thread"
                if m.thread.is_none()
                    && el.attr("xmlns").is_none()
                    && only_attrs(el, false, &["parent"]) =>
            {
                text_only(el).map(|t| {
                    m.thread = Some(t);
                    m.thread_parent = el.attr_str("parent");
                })
            }
            _ => None,
        }
    });
    m
}

impl Message<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let type_ = (self.type_ != MessageType::Normal).then(|| self.type_.as_str());
        let mut t = write_head(
            out,
            "message",
            self.id.as_deref(),
            type_,
            &self.from,
            &self.to,
            &self.lang,
            &self.attrs,
        )?;
        if self.bodies.is_empty()
            && self.subjects.is_empty()
            && self.thread.is_none()
            && self.error.is_none()
            && self.payloads.is_empty()
        {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        write_lang_texts(out, "subject", &self.subjects)?;
        write_lang_texts(out, "body", &self.bodies)?;
        if let Some(th) = &self.thread {
            write_text_el(
                out,
                "thread",
                &[("parent", self.thread_parent.as_deref())],
                th,
            )?;
        }
        write_error_payloads_close(out, &self.error, &self.payloads, "message")
    }
}
