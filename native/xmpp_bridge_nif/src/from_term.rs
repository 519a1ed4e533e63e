//! Elixir terms -> Rust model, for encoding: the counterpart of `to_term`
//! (model -> terms). A field of the wrong type is reported as
//! `{:invalid_field, {module, field}}`.

use crate::atoms;
use crate::error::{invalid, NifError, NifResult};
use rustler::{Atom, ListIterator, Term};
use std::borrow::Cow;
use std::cell::Cell;
use xmpp_bridge::stanza::{
    Affiliation, ChatState, Condition, Delay, DiscoIdentity, DiscoInfo, DiscoItem, DiscoItems,
    ErrorType, Iq, IqType, LangText, Message, MessageType, MucHistory, MucItem, MucJoin, MucUser,
    Payload, Presence, PresenceType, Role, Roster, RosterItem, Show, Stanza, StanzaError,
    Subscription,
};
use xmpp_bridge::xml::{Element, Node, Str, MAX_DEPTH_CEILING};
use xmpp_bridge::Error;

thread_local! {
    /// How many more structs and elements this call may convert before it
    /// asks to be rescheduled on a dirty scheduler.
    static BUDGET: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Text used up the budget: the call is rescheduled once the struct or
    /// element being read is done.
    static OVER: Cell<bool> = const { Cell::new(false) };
}

/// Bytes of text that cost as much to write (escaped and copied) as one
/// struct or element costs to convert: a 250 KB body is as much work as a
/// big roster, and is handed to a dirty scheduler as one.
const TEXT_BYTES_PER_UNIT: usize = 128;

/// Sets the conversion budget of the current NIF call (`usize::MAX` on a
/// dirty scheduler).
pub fn set_budget(units: usize) {
    BUDGET.with(|b| b.set(units));
    OVER.with(|o| o.set(false));
}

/// Charges `len` bytes of text against the budget.
fn charge_text(len: usize) {
    BUDGET.with(|b| match b.get().checked_sub(len / TEXT_BYTES_PER_UNIT) {
        Some(left) => b.set(left),
        None => OVER.with(|o| o.set(true)),
    })
}

/// Charges `len` bytes of text that a caller converts itself (JSON
/// strings); `Reschedule` once the budget is spent.
pub(crate) fn spend_text(len: usize) -> NifResult<()> {
    spend(len / TEXT_BYTES_PER_UNIT)
}

/// `Reschedule` when text used up the budget.
fn check_text_budget() -> NifResult<()> {
    if OVER.with(|o| o.get()) {
        Err(NifError::Reschedule)
    } else {
        Ok(())
    }
}

/// Takes `units` from the call's budget; `Reschedule` once it is spent.
pub(crate) fn spend(units: usize) -> NifResult<()> {
    BUDGET.with(|b| match b.get().checked_sub(units) {
        Some(left) => {
            b.set(left);
            Ok(())
        }
        None => Err(NifError::Reschedule),
    })
}

/// A struct being read: its map and module, for error reporting.
struct S<'a> {
    map: Term<'a>,
    module: Atom,
}

fn is_nil(t: Term<'_>) -> bool {
    t.decode::<Atom>().is_ok_and(|a| a == atoms::nil())
}

/// A binary read in place: no copy.
fn text<'a>(t: Term<'a>) -> Option<Str<'a>> {
    let s = t.decode::<&'a str>().ok()?;
    charge_text(s.len());
    Some(Cow::Borrowed(s))
}

/// `{lang | nil, text}` and `{name, value}` pairs.
fn pair<'a>(t: Term<'a>, nil_first: bool) -> Option<(Option<Str<'a>>, Str<'a>)> {
    let (a, b): (Term<'a>, Term<'a>) = t.decode().ok()?;
    let first = if nil_first && is_nil(a) {
        None
    } else {
        Some(text(a)?)
    };
    Some((first, text(b)?))
}

impl<'a> S<'a> {
    fn new(map: Term<'a>, module: Atom) -> NifResult<Self> {
        spend(1)?;
        match map.map_get(atoms::__struct__()) {
            Ok(m) if m.decode::<Atom>().is_ok_and(|m| m == module) => Ok(S { map, module }),
            _ => Err(invalid(module, atoms::__struct__())),
        }
    }

    fn bad(&self, f: Atom) -> NifError {
        invalid(self.module, f)
    }

    /// A value that is not a struct or element at all is reported against
    /// the field that holds it (`{Message, :payloads}`), not as the shape
    /// it failed to be.
    fn blame(&self, e: NifError, f: Atom) -> NifError {
        match e {
            NifError::InvalidField(m, field)
                if field == atoms::__struct__()
                    && (m == atoms::xmlel() || m == atoms::stanza_error_mod()) =>
            {
                self.bad(f)
            }
            other => other,
        }
    }

    fn get(&self, f: Atom) -> NifResult<Term<'a>> {
        self.map.map_get(f).map_err(|_| self.bad(f))
    }

    fn string(&self, f: Atom) -> NifResult<Str<'a>> {
        text(self.get(f)?).ok_or_else(|| self.bad(f))
    }

    fn opt_string(&self, f: Atom) -> NifResult<Option<Str<'a>>> {
        let t = self.get(f)?;
        if is_nil(t) {
            return Ok(None);
        }
        text(t).map(Some).ok_or_else(|| self.bad(f))
    }

    fn list<T>(
        &self,
        f: Atom,
        mut conv: impl FnMut(Term<'a>) -> NifResult<T>,
    ) -> NifResult<Vec<T>> {
        let iter: ListIterator<'a> = self.get(f)?.decode().map_err(|_| self.bad(f))?;
        iter.map(&mut conv).collect()
    }

    fn strings(&self, f: Atom) -> NifResult<Vec<Str<'a>>> {
        self.list(f, |t| text(t).ok_or_else(|| self.bad(f)))
    }

    fn enum_<T>(&self, f: Atom, parse: fn(&str) -> Option<T>) -> NifResult<T> {
        self.get(f)?
            .decode::<Atom>()
            .ok()
            .and_then(crate::to_term::atom_wire)
            .and_then(parse)
            .ok_or_else(|| self.bad(f))
    }

    fn opt_enum<T>(&self, f: Atom, parse: fn(&str) -> Option<T>) -> NifResult<Option<T>> {
        if is_nil(self.get(f)?) {
            return Ok(None);
        }
        self.enum_(f, parse).map(Some)
    }

    fn opt_u32(&self, f: Atom) -> NifResult<Option<u32>> {
        let t = self.get(f)?;
        if is_nil(t) {
            return Ok(None);
        }
        t.decode::<i64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.bad(f))
    }

    fn bool(&self, f: Atom) -> NifResult<bool> {
        self.get(f)?.decode::<bool>().map_err(|_| self.bad(f))
    }

    fn lang_texts(&self, f: Atom) -> NifResult<Vec<LangText<'a>>> {
        self.list(f, |t| pair(t, true).ok_or_else(|| self.bad(f)))
    }

    fn attrs(&self) -> NifResult<Vec<(Str<'a>, Str<'a>)>> {
        attr_pairs(self.get(atoms::attrs())?).ok_or_else(|| self.bad(atoms::attrs()))
    }

    fn error(&self) -> NifResult<Option<StanzaError<'a>>> {
        let t = self.get(atoms::error())?;
        if is_nil(t) {
            return Ok(None);
        }
        stanza_error(t)
            .map(Some)
            .map_err(|e| self.blame(e, atoms::error()))
    }
}

fn attr_pairs(t: Term<'_>) -> Option<Vec<(Str<'_>, Str<'_>)>> {
    let iter: ListIterator = t.decode().ok()?;
    iter.map(|p| pair(p, false).and_then(|(n, v)| Some((n?, v))))
        .collect()
}

fn struct_module(t: Term<'_>) -> Option<Atom> {
    t.map_get(atoms::__struct__()).ok()?.decode::<Atom>().ok()
}

/// A stanza struct -> the model; `Reschedule` when it is too much work
/// for the call's budget (structs, elements and text together).
pub fn stanza(t: Term<'_>) -> NifResult<Stanza<'_>> {
    let stanza = stanza_fields(t)?;
    check_text_budget()?;
    Ok(stanza)
}

fn stanza_fields(t: Term<'_>) -> NifResult<Stanza<'_>> {
    let module = struct_module(t).ok_or_else(|| invalid(atoms::nil(), atoms::__struct__()))?;
    if module == atoms::message_mod() {
        let s = S::new(t, module)?;
        Ok(Stanza::Message(Message {
            id: s.opt_string(atoms::id())?,
            type_: s.enum_(atoms::type_(), MessageType::parse)?,
            from: s.opt_string(atoms::from())?,
            to: s.opt_string(atoms::to())?,
            lang: s.opt_string(atoms::lang())?,
            bodies: s.lang_texts(atoms::bodies())?,
            subjects: s.lang_texts(atoms::subjects())?,
            thread: s.opt_string(atoms::thread())?,
            thread_parent: s.opt_string(atoms::thread_parent())?,
            error: s.error()?,
            payloads: s.list(atoms::payloads(), |t| {
                payload(t).map_err(|e| s.blame(e, atoms::payloads()))
            })?,
            attrs: s.attrs()?,
        }))
    } else if module == atoms::presence_mod() {
        let s = S::new(t, module)?;
        let priority = s.get(atoms::priority())?;
        let priority = if is_nil(priority) {
            None
        } else {
            // Decoded wide and range-checked: rustler's narrow decoders
            // wrap (300 would become 44).
            let n = priority
                .decode::<i64>()
                .map_err(|_| invalid(module, atoms::priority()))?;
            Some(i8::try_from(n).map_err(|_| invalid(module, atoms::priority()))?)
        };
        Ok(Stanza::Presence(Presence {
            id: s.opt_string(atoms::id())?,
            type_: s.enum_(atoms::type_(), PresenceType::parse)?,
            from: s.opt_string(atoms::from())?,
            to: s.opt_string(atoms::to())?,
            lang: s.opt_string(atoms::lang())?,
            show: s.opt_enum(atoms::show(), Show::parse)?,
            statuses: s.lang_texts(atoms::statuses())?,
            priority,
            error: s.error()?,
            payloads: s.list(atoms::payloads(), |t| {
                payload(t).map_err(|e| s.blame(e, atoms::payloads()))
            })?,
            attrs: s.attrs()?,
        }))
    } else if module == atoms::iq_mod() {
        let s = S::new(t, module)?;
        let p = s.get(atoms::payload())?;
        let id = s
            .opt_string(atoms::id())?
            .ok_or_else(|| Error::MissingAttribute {
                element: "iq".into(),
                attribute: "id".into(),
            })?;
        Ok(Stanza::Iq(Iq {
            id,
            type_: s.enum_(atoms::type_(), IqType::parse)?,
            from: s.opt_string(atoms::from())?,
            to: s.opt_string(atoms::to())?,
            lang: s.opt_string(atoms::lang())?,
            payload: if is_nil(p) {
                None
            } else {
                Some(payload(p).map_err(|e| s.blame(e, atoms::payload()))?)
            },
            error: s.error()?,
            attrs: s.attrs()?,
        }))
    } else {
        Err(invalid(module, atoms::__struct__()))
    }
}

fn stanza_error(t: Term<'_>) -> NifResult<StanzaError<'_>> {
    let s = S::new(t, atoms::stanza_error_mod())?;
    let app = s.get(atoms::app())?;
    Ok(StanzaError {
        type_: s.enum_(atoms::type_(), ErrorType::parse)?,
        by: s.opt_string(atoms::by())?,
        condition: s.enum_(atoms::condition(), Condition::parse)?,
        condition_text: s.opt_string(atoms::condition_text())?,
        text: s.opt_string(atoms::text())?,
        text_lang: s.opt_string(atoms::text_lang())?,
        app: if is_nil(app) {
            None
        } else {
            Some(element(app, 1)?)
        },
    })
}

pub fn payload(t: Term<'_>) -> NifResult<Payload<'_>> {
    let Some(module) = struct_module(t) else {
        if let Ok((tag, text_term)) = t.decode::<(Atom, Term)>() {
            if tag == atoms::xmlcdata() {
                return text(text_term)
                    .map(Payload::Text)
                    .ok_or_else(|| invalid(atoms::xmlel(), atoms::children()));
            }
        }
        return element(t, 1).map(Payload::Xml);
    };
    let s = S::new(t, module)?;
    let p = if module == atoms::delay_mod() {
        Payload::Delay(Delay {
            stamp: s.string(atoms::stamp())?,
            from: s.opt_string(atoms::from())?,
            reason: s.opt_string(atoms::reason())?,
        })
    } else if module == atoms::chat_state_mod() {
        Payload::ChatState(s.enum_(atoms::state(), ChatState::parse)?)
    } else if module == atoms::receipt_request_mod() {
        Payload::ReceiptRequest
    } else if module == atoms::receipt_received_mod() {
        Payload::ReceiptReceived {
            id: s.opt_string(atoms::id())?,
        }
    } else if module == atoms::ping_mod() {
        Payload::Ping
    } else if module == atoms::stanza_id_mod() {
        Payload::StanzaId {
            id: s.string(atoms::id())?,
            by: s.string(atoms::by())?,
        }
    } else if module == atoms::origin_id_mod() {
        Payload::OriginId {
            id: s.string(atoms::id())?,
        }
    } else if module == atoms::json_mod() {
        Payload::Json(s.string(atoms::json())?)
    } else if module == atoms::term_mod() {
        Payload::Term(Cow::Owned(portable_etf(s.get(atoms::value())?)?))
    } else if module == atoms::muc_join_mod() {
        let h = s.get(atoms::history())?;
        let history = if is_nil(h) {
            None
        } else {
            let h = S::new(h, atoms::muc_history_mod())?;
            Some(MucHistory {
                maxchars: h.opt_u32(atoms::maxchars())?,
                maxstanzas: h.opt_u32(atoms::maxstanzas())?,
                seconds: h.opt_u32(atoms::seconds())?,
                since: h.opt_string(atoms::since())?,
            })
        };
        Payload::MucJoin(MucJoin {
            password: s.opt_string(atoms::password())?,
            history,
        })
    } else if module == atoms::muc_user_mod() {
        let items = s.list(atoms::items(), |t| {
            let i = S::new(t, atoms::muc_item_mod())?;
            Ok(MucItem {
                affiliation: i.opt_enum(atoms::affiliation(), Affiliation::parse)?,
                role: i.opt_enum(atoms::role(), Role::parse)?,
                jid: i.opt_string(atoms::jid())?,
                nick: i.opt_string(atoms::nick())?,
                actor_jid: i.opt_string(atoms::actor_jid())?,
                actor_nick: i.opt_string(atoms::actor_nick())?,
                reason: i.opt_string(atoms::reason())?,
            })
        })?;
        let codes = s.list(atoms::status_codes(), |t| {
            t.decode::<i64>()
                .ok()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| invalid(module, atoms::status_codes()))
        })?;
        Payload::MucUser(MucUser {
            items,
            status_codes: codes,
        })
    } else if module == atoms::roster_mod() {
        let items = s.list(atoms::items(), |t| {
            let i = S::new(t, atoms::roster_item_mod())?;
            let ask = i.get(atoms::ask())?;
            let ask = if is_nil(ask) {
                false
            } else if ask.decode::<Atom>().is_ok_and(|a| a == atoms::subscribe()) {
                true
            } else {
                return Err(invalid(atoms::roster_item_mod(), atoms::ask()));
            };
            Ok(RosterItem {
                jid: i.string(atoms::jid())?,
                name: i.opt_string(atoms::name())?,
                subscription: i.opt_enum(atoms::subscription(), Subscription::parse)?,
                ask,
                approved: i.bool(atoms::approved())?,
                groups: i.strings(atoms::groups())?,
            })
        })?;
        Payload::Roster(Roster {
            ver: s.opt_string(atoms::ver())?,
            items,
        })
    } else if module == atoms::disco_info_mod() {
        let identities = s.list(atoms::identities(), |t| {
            let i = S::new(t, atoms::disco_identity_mod())?;
            Ok(DiscoIdentity {
                category: i.string(atoms::category())?,
                type_: i.string(atoms::type_())?,
                name: i.opt_string(atoms::name())?,
                lang: i.opt_string(atoms::lang())?,
            })
        })?;
        Payload::DiscoInfo(DiscoInfo {
            node: s.opt_string(atoms::node())?,
            identities,
            features: s.strings(atoms::features())?,
            extensions: s.list(atoms::extensions(), |t| element(t, 2))?,
        })
    } else if module == atoms::disco_items_mod() {
        let items = s.list(atoms::items(), |t| {
            let i = S::new(t, atoms::disco_item_mod())?;
            Ok(DiscoItem {
                jid: i.string(atoms::jid())?,
                node: i.opt_string(atoms::node())?,
                name: i.opt_string(atoms::name())?,
            })
        })?;
        Payload::DiscoItems(DiscoItems {
            node: s.opt_string(atoms::node())?,
            items,
        })
    } else {
        return Err(invalid(module, atoms::__struct__()));
    };
    Ok(p)
}

/// `{:xmlel, name, attrs, children}` -> element, at most
/// [`MAX_DEPTH_CEILING`] levels deep.
pub fn element(t: Term<'_>, depth: usize) -> NifResult<Element<'_>> {
    let el = element_at(t, depth)?;
    check_text_budget()?;
    Ok(el)
}

fn element_at(t: Term<'_>, depth: usize) -> NifResult<Element<'_>> {
    if depth > MAX_DEPTH_CEILING {
        return Err(Error::TooDeep(MAX_DEPTH_CEILING).into());
    }
    spend(1)?;
    let bad = |f: Atom| invalid(atoms::xmlel(), f);
    let (tag, name, attrs, children): (Atom, Term, Term, ListIterator) =
        t.decode().map_err(|_| bad(atoms::__struct__()))?;
    if tag != atoms::xmlel() {
        return Err(bad(atoms::__struct__()));
    }
    let name = text(name).ok_or_else(|| bad(atoms::name()))?;
    let attrs = attr_pairs(attrs).ok_or_else(|| bad(atoms::attrs()))?;
    let mut kids = Vec::new();
    for c in children {
        if let Ok((tag, t)) = c.decode::<(Atom, Term)>() {
            if tag == atoms::xmlcdata() {
                kids.push(Node::Text(text(t).ok_or_else(|| bad(atoms::children()))?));
                continue;
            }
        }
        kids.push(Node::Element(element_at(c, depth + 1).map_err(
            |e| match e {
                crate::error::NifError::InvalidField(m, f)
                    if m == atoms::xmlel() && f == atoms::__struct__() =>
                {
                    bad(atoms::children())
                }
                other => other,
            },
        )?));
    }
    Ok(Element {
        name,
        attrs,
        children: kids,
    })
}

/// `term_to_binary(term)`, refused with `{:not_portable, what}` when the
/// term holds something that means nothing on another node (a pid, port,
/// reference or fun) or that the bus's readers refuse (a bit string, a
/// term nested deeper than they read): the check is the receivers' own
/// reader, so what is sent is what they accept.
fn portable_etf(term: Term<'_>) -> NifResult<Vec<u8>> {
    let etf = term.to_binary().as_slice().to_vec();
    match xmpp_bridge::etf::decode(&etf) {
        Ok(_) => Ok(etf),
        Err(e) => Err(NifError::NotPortable(crate::etf_error_what(&e))),
    }
}
