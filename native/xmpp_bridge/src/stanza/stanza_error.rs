//! `<error/>` in a stanza (RFC 6120 §8.3): type, defined condition, text
//! and an application-specific condition.

use super::{check_jid, child_elements, ns_of, only_attrs, opt_jid, text_only, XML_LANG};
use crate::error::Result;
use crate::ns;
use crate::xml::{close_tag, write_text_el, Element, Str, Tag};

str_enum!(ErrorType { Auth = "auth", Cancel = "cancel", Continue = "continue", Modify = "modify", Wait = "wait" });

str_enum!(
    /// RFC 6120 §8.3.3 defined conditions.
    Condition {
        BadRequest = "bad-request", Conflict = "conflict", FeatureNotImplemented = "feature-not-implemented",
        Forbidden = "forbidden", Gone = "gone", InternalServerError = "internal-server-error",
        ItemNotFound = "item-not-found", JidMalformed = "jid-malformed", NotAcceptable = "not-acceptable",
        NotAllowed = "not-allowed", NotAuthorized = "not-authorized", PolicyViolation = "policy-violation",
        RecipientUnavailable = "recipient-unavailable", Redirect = "redirect",
        RegistrationRequired = "registration-required", RemoteServerNotFound = "remote-server-not-found",
        RemoteServerTimeout = "remote-server-timeout", ResourceConstraint = "resource-constraint",
        ServiceUnavailable = "service-unavailable", SubscriptionRequired = "subscription-required",
        UndefinedCondition = "undefined-condition", UnexpectedRequest = "unexpected-request",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError<'a> {
    pub type_: ErrorType,
    pub by: Option<Str<'a>>,
    pub condition: Condition,
    /// The URI inside `<gone/>` or `<redirect/>`.
    pub condition_text: Option<Str<'a>>,
    pub text: Option<Str<'a>>,
    pub text_lang: Option<Str<'a>>,
    /// An application-specific condition element.
    pub app: Option<Element<'a>>,
}

/// The typed error, when `el` can be represented exactly; `None` leaves it
/// to the caller (a payload, or a refused IQ).
pub(super) fn decode<'a>(el: &Element<'a>, ns: &str) -> Option<StanzaError<'a>> {
    if ns_of(el, ns) != ns || el.attr("xmlns").is_some() || !only_attrs(el, false, &["type", "by"])
    {
        return None;
    }
    let type_ = ErrorType::parse(el.attr("type")?)?;
    let by = opt_jid(el.attr_str("by"))?;
    let mut condition = None;
    let mut condition_text = None;
    let mut text = None;
    let mut text_lang = None;
    let mut app = None;
    for c in child_elements(el)? {
        let in_stanzas = c.attr("xmlns") == Some(ns::STANZAS);
        if in_stanzas && c.name == "text" && text.is_none() && only_attrs(c, true, &[XML_LANG]) {
            text = Some(text_only(c)?);
            text_lang = c.attr_str(XML_LANG);
        } else if in_stanzas && condition.is_none() && only_attrs(c, true, &[]) {
            let cond = Condition::parse(&c.name)?;
            let t = text_only(c)?;
            if !t.is_empty() {
                if !matches!(cond, Condition::Gone | Condition::Redirect) {
                    return None;
                }
                condition_text = Some(t);
            }
            condition = Some(cond);
        } else if !in_stanzas && app.is_none() && c.attr("xmlns").is_some() {
            app = Some(c.clone());
        } else {
            return None;
        }
    }
    Some(StanzaError {
        type_,
        by,
        condition: condition?,
        condition_text,
        text,
        text_lang,
        app,
    })
}

impl StanzaError<'_> {
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        check_jid(&self.by)?;
        let mut t = Tag::open(out, "error");
        t.attr("type", self.type_.as_str())?
            .opt("by", self.by.as_deref())?;
        let out = t.body();
        let cond = self.condition.as_str();
        let text = match (self.condition, &self.condition_text) {
            (Condition::Gone | Condition::Redirect, Some(t)) => t.as_ref(),
            _ => "",
        };
        write_text_el(out, cond, &[("xmlns", Some(ns::STANZAS))], text)?;
        if let Some(text) = &self.text {
            write_text_el(
                out,
                "text",
                &[
                    ("xmlns", Some(ns::STANZAS)),
                    (XML_LANG, self.text_lang.as_deref()),
                ],
                text,
            )?;
        }
        if let Some(app) = &self.app {
            app.write_to(out)?;
        }
        close_tag(out, "error");
        Ok(())
    }
}
