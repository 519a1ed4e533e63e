//! Rust model -> Elixir terms (structs are maps built in one call).

use crate::atoms;
use crate::error::NifError;
use rustler::{Atom, Encoder, Env, Term};
use std::collections::HashMap;
use std::sync::OnceLock;
use xmpp_bridge::stanza::{self, LangText, Payload, Stanza, StanzaError};
use xmpp_bridge::xml::{Element, Node, Str};
use xmpp_bridge::{ns, Event};

fn str_term<'a>(env: Env<'a>, s: &str) -> Term<'a> {
    crate::binary(env, s.as_bytes())
}

fn opt<'a>(env: Env<'a>, s: &Option<Str<'_>>) -> Term<'a> {
    match s {
        Some(s) => str_term(env, s),
        None => atoms::nil().encode(env),
    }
}

fn nil(env: Env<'_>) -> Term<'_> {
    atoms::nil().encode(env)
}

/// An enum of the codec with a cached atom per value (`bad-request` ->
/// `:bad_request`): the VM's atom table takes a lock per lookup, a cached
/// atom costs an array index.
pub trait AtomEnum: Copy + 'static {
    const WIRE: &'static [&'static str];
    fn index(self) -> usize;
    fn atoms() -> &'static OnceLock<Vec<Atom>>;
}

macro_rules! atom_enums {
    ($($t:ident),* $(,)?) => {$(
        impl AtomEnum for stanza::$t {
            const WIRE: &'static [&'static str] = stanza::$t::WIRE;
            fn index(self) -> usize {
                stanza::$t::index(self)
            }
            fn atoms() -> &'static OnceLock<Vec<Atom>> {
                static ATOMS: OnceLock<Vec<Atom>> = OnceLock::new();
                &ATOMS
            }
        }
    )*};
}

atom_enums!(
    MessageType,
    PresenceType,
    Show,
    IqType,
    ErrorType,
    Condition,
    ChatState,
    Affiliation,
    Role,
    Subscription
);

pub fn enum_term<E: AtomEnum>(env: Env<'_>, e: E) -> Term<'_> {
    let atoms = E::atoms().get_or_init(|| E::WIRE.iter().map(|w| make_atom(w)).collect());
    atoms[e.index()].encode(env)
}

/// The wire value of an enum atom (`:bad_request` -> `bad-request`).
pub fn atom_wire(a: Atom) -> Option<&'static str> {
    enum_cache().to_wire.get(&term_key(a)).copied()
}

/// Hashes the one word it is given (a pointer or a term) by multiplying:
/// keys here are few and fixed, SipHash's protection is not needed.
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Fast<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<WordHasher>>;

struct EnumCache {
    // Atoms live as long as the VM, so their raw term is a stable key.
    to_wire: Fast<usize, &'static str>,
}

fn enum_cache() -> &'static EnumCache {
    static CACHE: OnceLock<EnumCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let values = stanza::ENUM_VALUES.iter().flat_map(|v| v.iter().copied());
        let to_wire = values
            .map(|wire| (term_key(make_atom(wire)), wire))
            .collect();
        EnumCache { to_wire }
    })
}

fn term_key(a: Atom) -> usize {
    // An atom term is an immediate: the same word for the VM's lifetime.
    let raw: rustler::sys::ErlNifTerm = a.as_c_arg();
    // SAFETY: ErlNifTerm is a repr(transparent) wrapper around a word.
    unsafe { std::mem::transmute::<rustler::sys::ErlNifTerm, usize>(raw) }
}

fn make_atom(wire: &str) -> Atom {
    let name = wire.replace('-', "_");
    // enif_make_atom_len needs no process environment.
    let env = rustler::OwnedEnv::new();
    env.run(|env| Atom::from_str(env, &name).expect("enum atoms are short"))
}

/// Most fields any of our structs has, plus `__struct__`.
const MAX_FIELDS: usize = 16;

/// Builds a struct map in one call, without heap allocation. `fields` must
/// be sorted by atom name, as Elixir sorts struct keys, so the VM's check of
/// the key order is a single pass.
fn make_struct<'a>(env: Env<'a>, module: Atom, fields: &[(Atom, Term<'a>)]) -> Term<'a> {
    let n = fields.len() + 1;
    assert!(n <= MAX_FIELDS, "struct with too many fields");
    let mut keys = [atoms::nil().as_c_arg(); MAX_FIELDS];
    let mut values = [atoms::nil().as_c_arg(); MAX_FIELDS];
    keys[0] = atoms::__struct__().as_c_arg();
    values[0] = module.as_c_arg();
    for (i, (k, v)) in fields.iter().enumerate() {
        keys[i + 1] = k.as_c_arg();
        values[i + 1] = v.as_c_arg();
    }
    let mut map = std::mem::MaybeUninit::uninit();
    // SAFETY: both arrays hold `n` valid terms of this env; `map` is written
    // by the call before it is read, and only when the call succeeds.
    let made = unsafe {
        rustler::sys::enif_make_map_from_arrays(
            env.as_c_arg(),
            keys.as_ptr(),
            values.as_ptr(),
            n,
            map.as_mut_ptr(),
        )
    };
    assert!(made != 0, "duplicate struct key");
    // SAFETY: initialised by the successful call above.
    unsafe { Term::new(env, map.assume_init()) }
}

/// A list built back to front with cons cells: no intermediate vector.
fn list<'a, T>(env: Env<'a>, items: &[T], f: impl Fn(Env<'a>, &T) -> Term<'a>) -> Term<'a> {
    items
        .iter()
        .rev()
        .fold(Term::list_new_empty(env), |tail, i| {
            tail.list_prepend(f(env, i))
        })
}

fn lang_texts<'a>(env: Env<'a>, texts: &[LangText<'_>]) -> Term<'a> {
    list(env, texts, |env, (lang, text)| {
        (opt(env, lang), str_term(env, text)).encode(env)
    })
}

fn attr_list<'a>(env: Env<'a>, attrs: &[(Str<'_>, Str<'_>)]) -> Term<'a> {
    list(env, attrs, |env, (n, v)| {
        (str_term(env, n), str_term(env, v)).encode(env)
    })
}

/// `{:xmlel, name, attrs, children}`
pub fn element<'a>(env: Env<'a>, el: &Element<'_>) -> Term<'a> {
    let children = list(env, &el.children, |env, c| match c {
        Node::Element(e) => element(env, e),
        Node::Text(t) => (atoms::xmlcdata(), str_term(env, t)).encode(env),
    });
    (
        atoms::xmlel(),
        str_term(env, &el.name),
        attr_list(env, &el.attrs),
        children,
    )
        .encode(env)
}

pub fn stanza<'a>(env: Env<'a>, s: Stanza<'_>) -> Term<'a> {
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
                    (atoms::type_(), enum_term(env, m.type_)),
                ],
            )
        }
        Stanza::Presence(p) => {
            let payloads = list(env, &p.payloads, payload);
            make_struct(
                env,
                atoms::presence_mod(),
                &[
                    (atoms::attrs(), attr_list(env, &p.attrs)),
                    (atoms::error(), stanza_error(env, &p.error)),
                    (atoms::from(), opt(env, &p.from)),
                    (atoms::id(), opt(env, &p.id)),
                    (atoms::lang(), opt(env, &p.lang)),
                    (atoms::payloads(), payloads),
                    (
                        atoms::priority(),
                        p.priority.map_or_else(|| nil(env), |n| n.encode(env)),
                    ),
                    (
                        atoms::show(),
                        p.show.map_or_else(|| nil(env), |s| enum_term(env, s)),
                    ),
                    (atoms::statuses(), lang_texts(env, &p.statuses)),
                    (atoms::to(), opt(env, &p.to)),
                    (atoms::type_(), enum_term(env, p.type_)),
                ],
            )
        }
        Stanza::Iq(i) => make_struct(
            env,
            atoms::iq_mod(),
            &[
                (atoms::attrs(), attr_list(env, &i.attrs)),
                (atoms::error(), stanza_error(env, &i.error)),
                (atoms::from(), opt(env, &i.from)),
                (atoms::id(), str_term(env, &i.id)),
                (atoms::lang(), opt(env, &i.lang)),
                (
                    atoms::payload(),
                    i.payload
                        .as_ref()
                        .map_or_else(|| nil(env), |p| payload(env, p)),
                ),
                (atoms::to(), opt(env, &i.to)),
                (atoms::type_(), enum_term(env, i.type_)),
            ],
        ),
    }
}

fn stanza_error<'a>(env: Env<'a>, e: &Option<StanzaError<'_>>) -> Term<'a> {
    let Some(e) = e else { return nil(env) };
    make_struct(
        env,
        atoms::stanza_error_mod(),
        &[
            (
                atoms::app(),
                e.app.as_ref().map_or_else(|| nil(env), |a| element(env, a)),
            ),
            (atoms::by(), opt(env, &e.by)),
            (atoms::condition(), enum_term(env, e.condition)),
            (atoms::condition_text(), opt(env, &e.condition_text)),
            (atoms::text(), opt(env, &e.text)),
            (atoms::text_lang(), opt(env, &e.text_lang)),
            (atoms::type_(), enum_term(env, e.type_)),
        ],
    )
}

fn opt_u32(env: Env<'_>, v: Option<u32>) -> Term<'_> {
    v.map_or_else(|| nil(env), |n| n.encode(env))
}

fn opt_enum<E: AtomEnum>(env: Env<'_>, v: Option<E>) -> Term<'_> {
    v.map_or_else(|| nil(env), |e| enum_term(env, e))
}

pub fn payload<'a>(env: Env<'a>, p: &Payload<'_>) -> Term<'a> {
    match p {
        Payload::Xml(el) => element(env, el),
        Payload::Text(t) => (atoms::xmlcdata(), str_term(env, t)).encode(env),
        Payload::Delay(d) => make_struct(
            env,
            atoms::delay_mod(),
            &[
                (atoms::from(), opt(env, &d.from)),
                (atoms::reason(), opt(env, &d.reason)),
                (atoms::stamp(), str_term(env, &d.stamp)),
            ],
        ),
        Payload::ChatState(s) => make_struct(
            env,
            atoms::chat_state_mod(),
            &[(atoms::state(), enum_term(env, *s))],
        ),
        Payload::ReceiptRequest => make_struct(env, atoms::receipt_request_mod(), &[]),
        Payload::ReceiptReceived { id } => make_struct(
            env,
            atoms::receipt_received_mod(),
            &[(atoms::id(), opt(env, id))],
        ),
        Payload::Ping => make_struct(env, atoms::ping_mod(), &[]),
        Payload::StanzaId { id, by } => make_struct(
            env,
            atoms::stanza_id_mod(),
            &[
                (atoms::by(), str_term(env, by)),
                (atoms::id(), str_term(env, id)),
            ],
        ),
        Payload::OriginId { id } => make_struct(
            env,
            atoms::origin_id_mod(),
            &[(atoms::id(), str_term(env, id))],
        ),
        Payload::Json(j) => {
            make_struct(env, atoms::json_mod(), &[(atoms::json(), str_term(env, j))])
        }
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
                &[
                    (atoms::history(), history),
                    (atoms::password(), opt(env, &j.password)),
                ],
            )
        }
        Payload::MucUser(u) => {
            let items = list(env, &u.items, |env, i| {
                make_struct(
                    env,
                    atoms::muc_item_mod(),
                    &[
                        (atoms::actor_jid(), opt(env, &i.actor_jid)),
                        (atoms::actor_nick(), opt(env, &i.actor_nick)),
                        (atoms::affiliation(), opt_enum(env, i.affiliation)),
                        (atoms::jid(), opt(env, &i.jid)),
                        (atoms::nick(), opt(env, &i.nick)),
                        (atoms::reason(), opt(env, &i.reason)),
                        (atoms::role(), opt_enum(env, i.role)),
                    ],
                )
            });
            make_struct(
                env,
                atoms::muc_user_mod(),
                &[
                    (atoms::items(), items),
                    (atoms::status_codes(), u.status_codes.encode(env)),
                ],
            )
        }
        Payload::Roster(r) => {
            let items = list(env, &r.items, |env, i| {
                let groups = list(env, &i.groups, |env, g| str_term(env, g));
                let ask = if i.ask {
                    atoms::subscribe().encode(env)
                } else {
                    nil(env)
                };
                make_struct(
                    env,
                    atoms::roster_item_mod(),
                    &[
                        (atoms::approved(), i.approved.encode(env)),
                        (atoms::ask(), ask),
                        (atoms::groups(), groups),
                        (atoms::jid(), str_term(env, &i.jid)),
                        (atoms::name(), opt(env, &i.name)),
                        (atoms::subscription(), opt_enum(env, i.subscription)),
                    ],
                )
            });
            make_struct(
                env,
                atoms::roster_mod(),
                &[(atoms::items(), items), (atoms::ver(), opt(env, &r.ver))],
            )
        }
        Payload::DiscoInfo(d) => {
            let identities = list(env, &d.identities, |env, i| {
                make_struct(
                    env,
                    atoms::disco_identity_mod(),
                    &[
                        (atoms::category(), str_term(env, &i.category)),
                        (atoms::lang(), opt(env, &i.lang)),
                        (atoms::name(), opt(env, &i.name)),
                        (atoms::type_(), str_term(env, &i.type_)),
                    ],
                )
            });
            make_struct(
                env,
                atoms::disco_info_mod(),
                &[
                    (atoms::extensions(), list(env, &d.extensions, element)),
                    (
                        atoms::features(),
                        list(env, &d.features, |env, f| str_term(env, f)),
                    ),
                    (atoms::identities(), identities),
                    (atoms::node(), opt(env, &d.node)),
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
                        (atoms::name(), opt(env, &i.name)),
                        (atoms::node(), opt(env, &i.node)),
                    ],
                )
            });
            make_struct(
                env,
                atoms::disco_items_mod(),
                &[(atoms::items(), items), (atoms::node(), opt(env, &d.node))],
            )
        }
    }
}

fn raw_term_element(p: &Payload<'_>) -> Element<'static> {
    let mut out = Vec::new();
    // Writing a Term payload cannot fail: base64 text only.
    let _ = p.write_to(&mut out);
    xmpp_bridge::xml::parse(&out, xmpp_bridge::Limits::new(usize::MAX, 2))
        .map(Element::into_owned)
        .unwrap_or_else(|_| Element::new("term").with_attr("xmlns", ns::TERM))
}

/// The term a remote peer sent, built defensively: the bytes are read by
/// `xmpp_bridge::etf` (no pids, ports, references, funs, bit strings;
/// sizes checked), and an atom this VM does not know becomes
/// `%XmppBridge.Bus.UnknownAtom{name: name}` instead of a new atom. `None`
/// when the bytes are refused (the payload then stays XML).
fn safe_term<'a>(env: Env<'a>, etf: &[u8]) -> Option<Term<'a>> {
    let term = xmpp_bridge::etf::decode(etf).ok()?;
    build_term(env, &term)
}

pub(crate) fn build_term<'a>(env: Env<'a>, t: &xmpp_bridge::etf::Term) -> Option<Term<'a>> {
    use xmpp_bridge::etf::Term as T;
    Some(match t {
        T::Int(i) => i.encode(env),
        // The VM's own reader builds big integers from their ETF form.
        T::BigInt { .. } => env.binary_to_term(&xmpp_bridge::etf::encode(t))?.0,
        T::Float(f) => f.encode(env),
        T::Atom(name) => match existing_atom(env, t, name) {
            Some(atom) => atom,
            None => make_struct(
                env,
                atoms::unknown_atom_mod(),
                &[(atoms::name(), str_term(env, name))],
            ),
        },
        T::Binary(b) => crate::binary(env, b),
        T::List(items) => term_list(env, items, Term::list_new_empty(env))?,
        T::ImproperList(items, tail) => term_list(env, items, build_term(env, tail)?)?,
        T::Tuple(items) => {
            let items = items
                .iter()
                .map(|i| build_term(env, i))
                .collect::<Option<Vec<_>>>()?;
            rustler::types::tuple::make_tuple(env, &items)
        }
        T::Map(pairs) => {
            let mut map = Term::map_new(env);
            for (k, v) in pairs {
                map = map.map_put(build_term(env, k)?, build_term(env, v)?).ok()?;
            }
            map
        }
    })
}

/// The atom `name` if this VM has it. Before NIF 2.17 (OTP 26) the lookup
/// takes Latin-1 names only; other names go through the VM's safe reader,
/// which also refuses to create them.
fn existing_atom<'a>(env: Env<'a>, t: &xmpp_bridge::etf::Term, name: &str) -> Option<Term<'a>> {
    match Atom::existing_from_utf8_bytes(env, name.as_bytes()) {
        Ok(atom) => Some(atom.encode(env)),
        Err(_) if !name.is_ascii() => env
            .binary_to_term(&xmpp_bridge::etf::encode(t))
            .map(|(atom, _)| atom),
        Err(_) => None,
    }
}

fn term_list<'a>(
    env: Env<'a>,
    items: &[xmpp_bridge::etf::Term],
    tail: Term<'a>,
) -> Option<Term<'a>> {
    items
        .iter()
        .rev()
        .try_fold(tail, |acc, i| Some(acc.list_prepend(build_term(env, i)?)))
}

pub fn stream_event<'a>(env: Env<'a>, ev: Event<'_>, default_ns: Option<&str>) -> Term<'a> {
    match ev {
        Event::Start(attrs) => (atoms::stream_start(), attr_list(env, &attrs)).encode(env),
        Event::End => atoms::stream_end().encode(env),
        Event::Element(el) => {
            if !matches!(el.name.as_ref(), "message" | "presence" | "iq") {
                return element(env, &el);
            }
            match stanza::decode_or_return(el, default_ns) {
                Ok(s) => stanza(env, s),
                Err((e, el)) => (
                    atoms::invalid_stanza(),
                    NifError::from(e).to_term(env),
                    element(env, &el),
                )
                    .encode(env),
            }
        }
    }
}
