//! The rustler NIF behind `XmppBridge.Native`: term conversion around the
//! pure `xmpp_bridge` crate. Every function returns `{:ok, value}` or
//! `{:error, reason}`; rustler turns a panic into an exception in the calling
//! process, never a VM crash.

mod atoms;
mod conn;
mod error;
mod from_term;
mod json;
mod to_term;

use error::NifError;
use rustler::{Binary, Encoder, Env, NewBinary, Resource, ResourceArc, Term};
use std::sync::Mutex;

// Decoding allocates many small strings; mimalloc serves them several times
// faster than the system allocator (measured with `make bench-codec`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use xmpp_bridge::xml::{self, Limits};
use xmpp_bridge::{stanza, StreamParser};

fn ok<'a>(env: Env<'a>, value: Term<'a>) -> Term<'a> {
    (atoms::ok(), value).encode(env)
}

pub(crate) fn err<'a>(env: Env<'a>, e: impl Into<NifError>) -> Term<'a> {
    (atoms::error(), e.into().to_term(env)).encode(env)
}

fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut b = NewBinary::new(env, bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    b.into()
}

fn limits(max_bytes: usize, max_depth: usize) -> Limits {
    Limits::new(max_bytes, max_depth)
}

/// Work a normal-scheduler call may take on, in estimated microseconds; the
/// contract is to hold a scheduler for well under 1 ms. Above it the NIF
/// returns `:dirty` and the Elixir side calls the `_dirty` variant.
const BUDGET_US: usize = 500;

/// Estimated cost of parsing `bytes` into terms: about 2.5 ns a byte (text
/// is validated, unescaped and copied) plus 0.1 µs per tag (measured with `make bench-codec` and the codec_speed
/// example). Counting `<` runs at memory speed, and only for inputs large
/// enough to matter.
fn too_big_for_normal(bytes: &[u8], already_buffered: usize) -> bool {
    const ALWAYS_FINE: usize = 16 * 1024;
    if bytes.len() + already_buffered < ALWAYS_FINE {
        return false;
    }
    let tags = memchr::memchr_iter(b'<', bytes).count() + already_buffered / 40;
    (bytes.len() + already_buffered) / 400 + tags / 10 > BUDGET_US
}

/// Structs and elements an encode on a normal scheduler may convert before
/// it gives up and asks for a dirty scheduler (about 0.35 µs each: the work
/// thrown away then stays near 150 µs).
pub(crate) const ENCODE_UNITS: usize = 400;

pub(crate) fn dirty(env: Env<'_>) -> Term<'_> {
    atoms::dirty().encode(env)
}

/// Runs `work` on a normal scheduler and tells the VM how much of the
/// process's time slice it used, so that back-to-back calls get the process
/// preempted instead of holding the scheduler.
pub(crate) fn timed<'a>(env: Env<'a>, work: impl FnOnce() -> Term<'a>) -> Term<'a> {
    let start = std::time::Instant::now();
    let result = work();
    // Counted against a 400 µs slice rather than the nominal 1 ms, so that
    // two heavy calls in a row already make the process yield: together
    // they stay under 1 ms.
    let percent = (start.elapsed().as_micros() / 4).clamp(1, 100) as i32;
    rustler::schedule::consume_timeslice(env, percent);
    result
}

fn do_stanza_decode<'a>(
    env: Env<'a>,
    input: Binary,
    max_bytes: usize,
    max_depth: usize,
) -> Term<'a> {
    match stanza::decode_bytes(input.as_slice(), limits(max_bytes, max_depth)) {
        Ok(s) => ok(env, to_term::stanza(env, s)),
        Err(e) => err(env, e),
    }
}

#[rustler::nif]
fn stanza_decode<'a>(env: Env<'a>, input: Binary, max_bytes: usize, max_depth: usize) -> Term<'a> {
    if too_big_for_normal(input.as_slice(), 0) {
        return dirty(env);
    }
    timed(env, || do_stanza_decode(env, input, max_bytes, max_depth))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn stanza_decode_dirty<'a>(
    env: Env<'a>,
    input: Binary,
    max_bytes: usize,
    max_depth: usize,
) -> Term<'a> {
    do_stanza_decode(env, input, max_bytes, max_depth)
}

fn do_stanza_encode<'a>(env: Env<'a>, term: Term<'a>, units: usize) -> Term<'a> {
    from_term::set_budget(units);
    let result = from_term::stanza(term).and_then(|s| s.to_bytes().map_err(NifError::from));
    match result {
        Ok(bytes) => ok(env, binary(env, &bytes)),
        Err(NifError::Reschedule) => dirty(env),
        Err(e) => err(env, e),
    }
}

#[rustler::nif]
fn stanza_encode<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    timed(env, || do_stanza_encode(env, term, ENCODE_UNITS))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn stanza_encode_dirty<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    do_stanza_encode(env, term, usize::MAX)
}

fn do_xml_parse<'a>(env: Env<'a>, input: Binary, max_bytes: usize, max_depth: usize) -> Term<'a> {
    match xml::parse(input.as_slice(), limits(max_bytes, max_depth)) {
        Ok(el) => ok(env, to_term::element(env, &el)),
        Err(e) => err(env, e),
    }
}

#[rustler::nif]
fn xml_parse<'a>(env: Env<'a>, input: Binary, max_bytes: usize, max_depth: usize) -> Term<'a> {
    if too_big_for_normal(input.as_slice(), 0) {
        return dirty(env);
    }
    timed(env, || do_xml_parse(env, input, max_bytes, max_depth))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn xml_parse_dirty<'a>(
    env: Env<'a>,
    input: Binary,
    max_bytes: usize,
    max_depth: usize,
) -> Term<'a> {
    do_xml_parse(env, input, max_bytes, max_depth)
}

#[rustler::nif]
fn xml_encode<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    timed(env, || do_xml_encode(env, term, ENCODE_UNITS))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn xml_encode_dirty<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    do_xml_encode(env, term, usize::MAX)
}

fn do_xml_encode<'a>(env: Env<'a>, term: Term<'a>, units: usize) -> Term<'a> {
    from_term::set_budget(units);
    let result = from_term::element(term, 1).and_then(|el| el.to_bytes().map_err(NifError::from));
    match result {
        Ok(bytes) => ok(env, binary(env, &bytes)),
        Err(NifError::Reschedule) => dirty(env),
        Err(e) => err(env, e),
    }
}

#[rustler::nif]
fn jid_parse<'a>(env: Env<'a>, input: Binary) -> Term<'a> {
    let parsed = std::str::from_utf8(input.as_slice())
        .map_err(|e| xmpp_bridge::Error::InvalidUtf8(e.valid_up_to()))
        .and_then(xmpp_bridge::jid::parse);
    match parsed {
        Ok(j) => ok(env, (j.node, j.domain, j.resource).encode(env)),
        Err(e) => err(env, e),
    }
}

#[rustler::nif]
fn jid_normalize<'a>(env: Env<'a>, input: Binary) -> Term<'a> {
    let normalized = std::str::from_utf8(input.as_slice())
        .map_err(|e| xmpp_bridge::Error::InvalidUtf8(e.valid_up_to()))
        .and_then(xmpp_bridge::jid::normalize);
    match normalized {
        Ok(j) => ok(env, j.encode(env)),
        Err(e) => err(env, e),
    }
}

/// The state of one streaming parser, owned by the BEAM through a resource.
pub struct StreamResource {
    parser: Mutex<StreamParser>,
}

#[rustler::resource_impl]
impl Resource for StreamResource {}

fn lock(res: &StreamResource) -> std::sync::MutexGuard<'_, StreamParser> {
    // A panic while the lock was held leaves a parser that is at worst
    // failed; it is still safe to use.
    match res.parser.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[rustler::nif]
fn stream_new(max_bytes: usize, max_depth: usize) -> ResourceArc<StreamResource> {
    ResourceArc::new(StreamResource {
        parser: Mutex::new(StreamParser::new(limits(max_bytes, max_depth))),
    })
}

fn do_stream_feed<'a>(env: Env<'a>, res: ResourceArc<StreamResource>, chunk: Binary) -> Term<'a> {
    let mut parser = lock(&res);
    let mut terms: Vec<Term<'a>> = Vec::new();
    let result = parser.feed_with(chunk.as_slice(), &mut |ev, default_ns| {
        terms.push(to_term::stream_event(env, ev, default_ns));
    });
    if let Err(e @ xmpp_bridge::Error::ParserFailed(_)) = result {
        return err(env, e);
    }
    if let Err(e) = result {
        terms.push((atoms::parse_error(), NifError::from(e).to_term(env)).encode(env));
    }
    ok(env, terms.encode(env))
}

#[rustler::nif]
fn stream_feed<'a>(env: Env<'a>, res: ResourceArc<StreamResource>, chunk: Binary) -> Term<'a> {
    let buffered = lock(&res).buffered();
    if too_big_for_normal(chunk.as_slice(), buffered) {
        return dirty(env);
    }
    timed(env, || do_stream_feed(env, res, chunk))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn stream_feed_dirty<'a>(
    env: Env<'a>,
    res: ResourceArc<StreamResource>,
    chunk: Binary,
) -> Term<'a> {
    do_stream_feed(env, res, chunk)
}

#[rustler::nif]
fn stream_reset(res: ResourceArc<StreamResource>) -> rustler::Atom {
    lock(&res).reset();
    atoms::ok()
}

#[rustler::nif]
fn stream_buffered(res: ResourceArc<StreamResource>) -> usize {
    lock(&res).buffered()
}

/// Bytes of JSON text a normal-scheduler call may decode (serde_json and
/// term building together cost a few ns a byte; measured by the
/// scheduler test with the largest JSON a stanza can carry).
const JSON_DECODE_NORMAL_BYTES: usize = 64 * 1024;

fn do_json_encode<'a>(env: Env<'a>, term: Term<'a>, units: usize) -> Term<'a> {
    from_term::set_budget(units);
    match json::encode(term) {
        Ok(s) => ok(env, binary(env, s.as_bytes())),
        Err(NifError::Reschedule) => dirty(env),
        Err(e) => err(env, e),
    }
}

#[rustler::nif]
fn json_encode<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    timed(env, || do_json_encode(env, term, JSON_ENCODE_UNITS))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn json_encode_dirty<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    do_json_encode(env, term, usize::MAX)
}

/// JSON values an encode on a normal scheduler may convert before it asks
/// for a dirty scheduler (each costs well under 0.1 µs to read and write).
const JSON_ENCODE_UNITS: usize = 4_000;

fn do_json_decode<'a>(env: Env<'a>, input: Binary) -> Term<'a> {
    match json::decode(env, input.as_slice()) {
        Ok(t) => ok(env, t),
        Err(e) => err(env, e),
    }
}

#[rustler::nif]
fn json_decode<'a>(env: Env<'a>, input: Binary) -> Term<'a> {
    if input.len() > JSON_DECODE_NORMAL_BYTES {
        return dirty(env);
    }
    timed(env, || do_json_decode(env, input))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode_dirty<'a>(env: Env<'a>, input: Binary) -> Term<'a> {
    do_json_decode(env, input)
}

/// ETF larger than this is read or checked on a dirty scheduler (about
/// 3 ns a byte: 64 KiB stays near 200 µs).
const TERM_NORMAL_BYTES: usize = 64 * 1024;

/// Checks that `term_to_binary` output `etf` is a term the bus's readers
/// take (no pid, port, reference, fun, bit string; not too deep):
/// `{:ok, body}` or `{:error, {:not_portable, what}}`.
#[rustler::nif]
fn term_check<'a>(env: Env<'a>, etf: Binary) -> Term<'a> {
    if etf.len() > TERM_NORMAL_BYTES {
        return dirty(env);
    }
    timed(env, || do_term_check(env, etf.as_slice()))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn term_check_dirty<'a>(env: Env<'a>, etf: Binary) -> Term<'a> {
    do_term_check(env, etf.as_slice())
}

/// `{:ok, body}`: the term in Elixir syntax for a message's `<body/>`
/// (at most 1024 bytes), rendered from the same read as the check.
fn do_term_check<'a>(env: Env<'a>, etf: &[u8]) -> Term<'a> {
    match xmpp_bridge::etf::decode(etf) {
        Ok(term) => ok(env, xmpp_bridge::bus::render::render(&term).encode(env)),
        Err(e) => err(env, NifError::NotPortable(etf_error_what(&e))),
    }
}

/// `{:ok, body, base64}`: as `term_check`, and the ETF in Base64 for a
/// `<term/>` element (encoded here rather than in Elixir: a send does one
/// NIF call for both).
#[rustler::nif]
fn term_pack<'a>(env: Env<'a>, etf: Binary) -> Term<'a> {
    if etf.len() > TERM_NORMAL_BYTES {
        return dirty(env);
    }
    timed(env, || do_term_pack(env, etf.as_slice()))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn term_pack_dirty<'a>(env: Env<'a>, etf: Binary) -> Term<'a> {
    do_term_pack(env, etf.as_slice())
}

fn do_term_pack<'a>(env: Env<'a>, etf: &[u8]) -> Term<'a> {
    use base64::Engine;
    match xmpp_bridge::etf::decode(etf) {
        Ok(term) => {
            let body = xmpp_bridge::bus::render::render(&term);
            let b64 = base64::engine::general_purpose::STANDARD.encode(etf);
            (atoms::ok(), body, b64).encode(env)
        }
        Err(e) => err(env, NifError::NotPortable(etf_error_what(&e))),
    }
}

pub(crate) fn etf_error_what(e: &xmpp_bridge::etf::EtfError) -> String {
    match e {
        xmpp_bridge::etf::EtfError::Refused(what) => (*what).to_owned(),
        other => other.to_string(),
    }
}

/// Reads ETF that came from the network: `{:ok, term}` with unknown atoms
/// as `%XmppBridge.Bus.UnknownAtom{}`, or `{:error, {:not_portable, what}}`.
#[rustler::nif]
fn term_decode<'a>(env: Env<'a>, etf: Binary) -> Term<'a> {
    if etf.len() > TERM_NORMAL_BYTES {
        return dirty(env);
    }
    timed(env, || do_term_decode(env, etf.as_slice()))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn term_decode_dirty<'a>(env: Env<'a>, etf: Binary) -> Term<'a> {
    do_term_decode(env, etf.as_slice())
}

fn do_term_decode<'a>(env: Env<'a>, etf: &[u8]) -> Term<'a> {
    let built = xmpp_bridge::etf::decode(etf)
        .map_err(|e| etf_error_what(&e))
        .and_then(|t| {
            to_term::build_term(env, &t).ok_or_else(|| "a map with a duplicate key".to_owned())
        });
    match built {
        Ok(term) => ok(env, term),
        Err(what) => err(env, NifError::NotPortable(what)),
    }
}

rustler::init!("Elixir.XmppBridge.Native");
