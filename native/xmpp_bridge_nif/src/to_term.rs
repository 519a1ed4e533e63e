//! Rust model -> Elixir terms (structs are maps built in one call).

use crate::atoms;
use crate::error::NifError;
use rustler::{Atom, Encoder, Env, Term, TermType};
use std::collections::HashMap;
use std::sync::OnceLock;
use xmpp_bridge::stanza::{self, LangText, Payload, Stanza, StanzaError};
use xmpp_bridge::xml::{Element, Node};
use xmpp_bridge::{ns, Event};

fn str_term<'a>(env: Env<'a>, s: &str) -> Term<'a> {
    crate::binary(env, s.as_bytes())
}

fn opt<'a>(env: Env<'a>, s: &Option<String>) -> Term<'a> {
    match s {
        Some(s) => str_term(env, s),
        None => atoms::nil().encode(env),
    }
}

fn nil(env: Env<'_>) -> Term<'_> {
    atoms::nil().encode(env)
}

/// The atom for an enum value as written in XML (`bad-request` ->
/// `:bad_request`). Atoms of the known enums are looked up once and cached:
/// the VM's atom table takes a lock per lookup.
pub fn enum_atom<'a>(env: Env<'a>, wire: &'static str) -> Term<'a> {
    static CACHE: OnceLock<HashMap<&'static str, Atom>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        stanza::ENUM_VALUES
            .iter()
            .flat_map(|values| values.iter())
            .map(|w| (*w, make_atom(env, w)))
            .collect()
    });
    match cache.get(wire) {
        Some(a) => a.encode(env),
        None => make_atom(env, wire).encode(env),
    }
}

fn make_atom(env: Env<'_>, wire: &str) -> Atom {
    Atom::from_str(env, &wire.replace('-', "_")).expect("enum atoms are short")
}

fn make_struct<'a>(env: Env<'a>, module: Atom, fields: &[(Atom, Term<'a>)]) -> Term<'a> {
    let mut keys = Vec::with_capacity(fields.len() + 1);
    let mut values = Vec::with_capacity(fields.len() + 1);
    keys.push(atoms::__struct__().encode(env));
    values.push(module.encode(env));
    for (k, v) in fields {
        keys.push(k.encode(env));
        values.push(*v);
    }
    Term::map_from_term_arrays(env, &keys, &values).expect("struct keys are unique")
}

fn list<'a, T>(env: Env<'a>, items: &[T], f: impl Fn(Env<'a>, &T) -> Term<'a>) -> Term<'a> {
    let terms: Vec<Term<'a>> = items.iter().map(|i| f(env, i)).collect();
    terms.encode(env)
}

fn lang_texts<'a>(env: Env<'a>, texts: &[LangText]) -> Term<'a> {
    list(env, texts, |env, (lang, text)| (opt(env, lang), str_term(env, text)).encode(env))
}

fn attr_list<'a>(env: Env<'a>, attrs: &[(String, String)]) -> Term<'a> {
    list(env, attrs, |env, (n, v)| (str_term(env, n), str_term(env, v)).encode(env))
}

/// `{:xmlel, name, attrs, children}`
pub fn element<'a>(env: Env<'a>, el: &Element) -> Term<'a> {
    let children = list(env, &el.children, |env, c| match c {
        Node::Element(e) => element(env, e),
        Node::Text(t) => (atoms::xmlcdata(), str_term(env, t)).encode(env),
    });
    (atoms::xmlel(), str_term(env, &el.name), attr_list(env, &el.attrs), children).encode(env)
}

pub fn stanza(env: Env<'_>, s: Stanza) -> Term<'_> {
    match s {
        Stanza::Message(m) => {
            let payloads = list(env, &m.payloads, payload);
            make_struct(
                env,
                atoms::message_mod(),
                &[
                    (atoms::attrs(), attr_list(env, &m.attrs)),
                    (atoms::bodies(), lang_texts(env, &m.bodies)),
                    (atoms::error(), stanza_error(env, &m.error)),
                    (atoms::from(), opt(env, &m.from)),
                    (atoms::id(), opt(env, &m.id)),
                    (atoms::lang(), opt(env, &m.lang)),
                    (atoms::payloads(), payloads),
                    (atoms::subjects(), lang_texts(env, &m.subjects)),
                    (atoms::thread(), opt(env, &m.thread)),
                    (atoms::thread_parent(), opt(env, &m.thread_parent)),
                    (atoms::to(), opt(env, &m.to)),
                    (atoms::type_(), enum_atom(env, m.type_.as_str())),
                ],
            )
        }
        Stanza::Presence(p) => {
            let payloads = list(env, &p.payloads, payload);
            make_struct(
                env,
                atoms::presence_mod(),
                &[
                    (atoms::id(), opt(env, &p.id)),
                    (atoms::type_(), enum_atom(env, p.type_.as_str())),
                    (atoms::from(), opt(env, &p.from)),
                    (atoms::to(), opt(env, &p.to)),
                    (atoms::lang(), opt(env, &p.lang)),
                    (atoms::show(), p.show.map_or_else(|| nil(env), |s| enum_atom(env, s.as_str()))),
                    (atoms::statuses(), lang_texts(env, &p.statuses)),
                    (atoms::priority(), p.priority.map_or_else(|| nil(env), |n| n.encode(env))),
                    (atoms::error(), stanza_error(env, &p.error)),
                    (atoms::payloads(), payloads),
                    (atoms::attrs(), attr_list(env, &p.attrs)),
                ],
            )
        }
        Stanza::Iq(i) => make_struct(
            env,
            atoms::iq_mod(),
            &[
                (atoms::id(), str_term(env, &i.id)),
                (atoms::type_(), enum_atom(env, i.type_.as_str())),
                (atoms::from(), opt(env, &i.from)),
                (atoms::to(), opt(env, &i.to)),
                (atoms::lang(), opt(env, &i.lang)),
                (atoms::payload(), i.payload.as_ref().map_or_else(|| nil(env), |p| payload(env, p))),
                (atoms::error(), stanza_error(env, &i.error)),
                (atoms::attrs(), attr_list(env, &i.attrs)),
            ],
        ),
    }
}

fn stanza_error<'a>(env: Env<'a>, e: &Option<StanzaError>) -> Term<'a> {
    let Some(e) = e else { return nil(env) };
    make_struct(
        env,
        atoms::stanza_error_mod(),
        &[
            (atoms::type_(), enum_atom(env, e.type_.as_str())),
            (atoms::by(), opt(env, &e.by)),
            (atoms::condition(), enum_atom(env, e.condition.as_str())),
            (atoms::condition_text(), opt(env, &e.condition_text)),
            (atoms::text(), opt(env, &e.text)),
            (atoms::text_lang(), opt(env, &e.text_lang)),
            (atoms::app(), e.app.as_ref().map_or_else(|| nil(env), |a| element(env, a))),
        ],
    )
}

fn opt_u32(env: Env<'_>, v: Option<u32>) -> Term<'_> {
    v.map_or_else(|| nil(env), |n| n.encode(env))
}

fn opt_enum<'a>(env: Env<'a>, v: Option<&'static str>) -> Term<'a> {
    v.map_or_else(|| nil(env), |s| enum_atom(env, s))
}

pub fn payload<'a>(env: Env<'a>, p: &Payload) -> Term<'a> {
    match p {
        Payload::Xml(el) => element(env, el),
        Payload::Delay(d) => make_struct(
            env,
            atoms::delay_mod(),
            &[
                (atoms::stamp(), str_term(env, &d.stamp)),
                (atoms::from(), opt(env, &d.from)),
                (atoms::reason(), opt(env, &d.reason)),
            ],
        ),
        Payload::ChatState(s) => make_struct(env, atoms::chat_state_mod(), &[(atoms::state(), enum_atom(env, s.as_str()))]),
        Payload::ReceiptRequest => make_struct(env, atoms::receipt_request_mod(), &[]),
        Payload::ReceiptReceived { id } => make_struct(env, atoms::receipt_received_mod(), &[(atoms::id(), opt(env, id))]),
        Payload::Ping => make_struct(env, atoms::ping_mod(), &[]),
        Payload::StanzaId { id, by } => make_struct(
            env,
            atoms::stanza_id_mod(),
            &[(atoms::id(), str_term(env, id)), (atoms::by(), str_term(env, by))],
        ),
        Payload::OriginId { id } => make_struct(env, atoms::origin_id_mod(), &[(atoms::id(), str_term(env, id))]),
        Payload::Json(j) => make_struct(env, atoms::json_mod(), &[(atoms::json(), str_term(env, j))]),
        Payload::Term(etf) => match safe_term(env, etf) {
            Some(value) => make_struct(env, atoms::term_mod(), &[(atoms::value(), value)]),
            // A term we may not build here (unknown atom, fun): keep the XML.
            None => element(env, &raw_term_element(p)),
        },
        Payload::MucJoin(j) => {
            let history = j.history.as_ref().map_or_else(
                || nil(env),
                |h| {
                    make_struct(
                        env,
                        atoms::muc_history_mod(),
                        &[
                            (atoms::maxchars(), opt_u32(env, h.maxchars)),
                            (atoms::maxstanzas(), opt_u32(env, h.maxstanzas)),
                            (atoms::seconds(), opt_u32(env, h.seconds)),
                            (atoms::since(), opt(env, &h.since)),
                        ],
                    )
                },
            );
            make_struct(
                env,
                atoms::muc_join_mod(),
                &[(atoms::password(), opt(env, &j.password)), (atoms::history(), history)],
            )
        }
        Payload::MucUser(u) => {
            let items = list(env, &u.items, |env, i| {
                make_struct(
                    env,
                    atoms::muc_item_mod(),
                    &[
                        (atoms::affiliation(), opt_enum(env, i.affiliation.map(stanza::Affiliation::as_str))),
                        (atoms::role(), opt_enum(env, i.role.map(stanza::Role::as_str))),
                        (atoms::jid(), opt(env, &i.jid)),
                        (atoms::nick(), opt(env, &i.nick)),
                        (atoms::actor_jid(), opt(env, &i.actor_jid)),
                        (atoms::actor_nick(), opt(env, &i.actor_nick)),
                        (atoms::reason(), opt(env, &i.reason)),
                    ],
                )
            });
            make_struct(
                env,
                atoms::muc_user_mod(),
                &[(atoms::items(), items), (atoms::status_codes(), u.status_codes.encode(env))],
            )
        }
        Payload::Roster(r) => {
            let items = list(env, &r.items, |env, i| {
                let groups = list(env, &i.groups, |env, g| str_term(env, g));
                let ask = if i.ask { atoms::subscribe().encode(env) } else { nil(env) };
                make_struct(
                    env,
                    atoms::roster_item_mod(),
                    &[
                        (atoms::jid(), str_term(env, &i.jid)),
                        (atoms::name(), opt(env, &i.name)),
                        (atoms::subscription(), opt_enum(env, i.subscription.map(stanza::Subscription::as_str))),
                        (atoms::ask(), ask),
                        (atoms::approved(), i.approved.encode(env)),
                        (atoms::groups(), groups),
                    ],
                )
            });
            make_struct(env, atoms::roster_mod(), &[(atoms::ver(), opt(env, &r.ver)), (atoms::items(), items)])
        }
        Payload::DiscoInfo(d) => {
            let identities = list(env, &d.identities, |env, i| {
                make_struct(
                    env,
                    atoms::disco_identity_mod(),
                    &[
                        (atoms::category(), str_term(env, &i.category)),
                        (atoms::type_(), str_term(env, &i.type_)),
                        (atoms::name(), opt(env, &i.name)),
                        (atoms::lang(), opt(env, &i.lang)),
                    ],
                )
            });
            make_struct(
                env,
                atoms::disco_info_mod(),
                &[
                    (atoms::node(), opt(env, &d.node)),
                    (atoms::identities(), identities),
                    (atoms::features(), list(env, &d.features, |env, f| str_term(env, f))),
                    (atoms::extensions(), list(env, &d.extensions, element)),
                ],
            )
        }
        Payload::DiscoItems(d) => {
            let items = list(env, &d.items, |env, i| {
                make_struct(
                    env,
                    atoms::disco_item_mod(),
                    &[
                        (atoms::jid(), str_term(env, &i.jid)),
                        (atoms::node(), opt(env, &i.node)),
                        (atoms::name(), opt(env, &i.name)),
                    ],
                )
            });
            make_struct(env, atoms::disco_items_mod(), &[(atoms::node(), opt(env, &d.node)), (atoms::items(), items)])
        }
    }
}

fn raw_term_element(p: &Payload) -> Element {
    let mut out = Vec::new();
    // Writing a Term payload cannot fail: base64 text only.
    let _ = p.write_to(&mut out);
    xmpp_bridge::xml::parse(&out, xmpp_bridge::Limits::new(usize::MAX, 2))
        .unwrap_or_else(|_| Element::new("term").with_attr("xmlns", ns::TERM))
}

/// `binary_to_term(etf, [:safe])`, refusing funs as well: a remote payload
/// must not create atoms or code references in this VM.
fn safe_term<'a>(env: Env<'a>, etf: &[u8]) -> Option<Term<'a>> {
    let (term, used) = env.binary_to_term(etf)?;
    if used != etf.len() || contains_fun(term) {
        return None;
    }
    Some(term)
}

fn contains_fun(term: Term<'_>) -> bool {
    let mut stack = vec![term];
    while let Some(t) = stack.pop() {
        match t.get_type() {
            TermType::Fun => return true,
            TermType::List => {
                let mut cur = t;
                while let Ok((head, tail)) = cur.list_get_cell() {
                    stack.push(head);
                    cur = tail;
                }
                if !cur.is_empty_list() {
                    stack.push(cur);
                }
            }
            TermType::Tuple => {
                if let Ok(items) = rustler::types::tuple::get_tuple(t) {
                    stack.extend(items);
                }
            }
            TermType::Map => {
                if let Some(iter) = rustler::types::map::MapIterator::new(t) {
                    for (k, v) in iter {
                        stack.push(k);
                        stack.push(v);
                    }
                }
            }
            _ => {}
        }
    }
    false
}

pub fn stream_event<'a>(env: Env<'a>, ev: Event, default_ns: Option<&str>) -> Term<'a> {
    match ev {
        Event::Start(attrs) => (atoms::stream_start(), attr_list(env, &attrs)).encode(env),
        Event::End => atoms::stream_end().encode(env),
        Event::Element(el) => {
            if !matches!(el.name.as_str(), "message" | "presence" | "iq") {
                return element(env, &el);
            }
            match stanza::decode_or_return(el, default_ns) {
                Ok(s) => stanza(env, s),
                Err((e, el)) => {
                    (atoms::invalid_stanza(), NifError::from(e).to_term(env), element(env, &el)).encode(env)
                }
            }
        }
    }
}
