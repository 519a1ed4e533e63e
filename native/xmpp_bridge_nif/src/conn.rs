//! XMPP sessions owned by BEAM processes: a resource per session, one shared
//! tokio runtime, events sent to the owner as terms built from the read
//! buffer.

use crate::atoms;
use crate::error::NifError;
use crate::to_term;
use rustler::env::SavedTerm;
use rustler::{
    Atom, Encoder, Env, LocalPid, Monitor, NifResult, OwnedEnv, Resource, ResourceArc, Term,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use xmpp_bridge::connection::{
    self, Active, Config, ConnError, Event, Handle, Handler, Mode, QueueError, Reconnect, TlsMode,
};
use xmpp_bridge::stream::Event as XEvent;
use xmpp_bridge::xml::Element;

/// The runtime every session shares: two worker threads, off the
/// schedulers, at OS nice value `nice` (the value of the first session
/// opened; see `lower_priority`).
fn runtime(nice: i32) -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("xmpp_bridge")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// Lowers the calling thread's CPU priority to nice `nice` (0: leaves it).
/// When the machine's cores are all busy, the VM's schedulers then run
/// before the sessions' I/O threads instead of being preempted by them: a
/// scheduler thread that loses its core in the middle of a process's time
/// slice is a long_schedule for that process. Lowering needs no privilege;
/// Linux keeps a nice value per thread, so only these threads change.
#[allow(unsafe_code)]
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: plain system calls on the calling thread; a failure
        // leaves the priority as it was, which is harmless.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

type Waiters = Arc<Mutex<HashMap<u64, LocalPid>>>;

/// One session, as the BEAM holds it.
pub struct ConnResource {
    handle: Handle,
    waiters: Waiters,
}

#[rustler::resource_impl]
impl Resource for ConnResource {
    const IMPLEMENTS_DOWN: bool = true;

    /// The owner died: the session ends, and its memory goes with the last
    /// reference.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.handle.close();
    }
}

/// Live session resources, for tests that check nothing leaks.
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for ConnResource {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.handle.close();
    }
}

#[rustler::nif]
fn conn_count() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn lock(w: &Waiters) -> std::sync::MutexGuard<'_, HashMap<u64, LocalPid>> {
    match w.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Environments kept for reuse between reads (each message needs its own).
const SPARE_ENVS: usize = 64;

struct NifHandler {
    owner: LocalPid,
    id: u64,
    env: OwnedEnv,
    /// Messages built from one read, sent together by `flush`: building all
    /// terms first and then sending them back to back wakes the receiving
    /// scheduler once per read instead of once per stanza.
    pending: Vec<(LocalPid, OwnedEnv, SavedTerm)>,
    spare: Vec<OwnedEnv>,
    waiters: Waiters,
    /// The session keeps its own resource alive, so that its owner monitor
    /// stays in place even when the owner drops the `%Connection{}`; it is
    /// released when the session ends.
    keep: Arc<Mutex<Option<ResourceArc<ConnResource>>>>,
}

fn conn_error<'a>(env: Env<'a>, e: &ConnError) -> Term<'a> {
    let kind = Atom::from_str(env, e.kind()).expect("short atom");
    match e {
        ConnError::StreamError(condition, text) => {
            let text = text
                .as_deref()
                .map_or_else(|| atoms::nil().encode(env), |t| t.encode(env));
            (kind, (condition.as_str(), text)).encode(env)
        }
        _ => match e.detail() {
            Some(d) => (kind, d).encode(env),
            None => kind.encode(env),
        },
    }
}

fn element_event<'a>(env: Env<'a>, el: Element<'_>, ns: Option<&str>) -> Term<'a> {
    let is_stanza = matches!(el.name.as_ref(), "message" | "presence" | "iq");
    let term = to_term::stream_event(env, XEvent::Element(el), ns);
    if is_stanza && term.map_get(atoms::__struct__()).is_ok() {
        (atoms::stanza(), term).encode(env)
    } else if is_stanza {
        // {:invalid_stanza, reason, xmlel} as it is.
        term
    } else {
        (atoms::element(), term).encode(env)
    }
}

impl NifHandler {
    /// Builds a message for `to` now; `flush` sends it.
    fn queue(&mut self, to: LocalPid, build: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        let env = self.spare.pop().unwrap_or_default();
        let saved = env.run(|e| env.save(build(e)));
        self.pending.push((to, env, saved));
    }

    fn tell_owner(&mut self, build: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        // Whatever was built before goes first: the owner sees events in order.
        self.flush();
        let id = self.id;
        // The owner may be gone: the session is closing then.
        let _ = self.env.send_and_clear(&self.owner, |env| {
            (atoms::xmpp_bridge(), id, build(env)).encode(env)
        });
    }

    fn tell_waiter(&mut self, token: u64, build: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        let Some(pid) = lock(&self.waiters).remove(&token) else {
            return;
        };
        self.flush();
        let _ = self.env.send_and_clear(&pid, |env| {
            (atoms::xmpp_bridge_iq(), token, build(env)).encode(env)
        });
    }
}

impl Handler for NifHandler {
    fn event(&mut self, event: Event) {
        match event {
            Event::IqFailed(tokens, reason) => {
                for token in tokens {
                    let r = reason.clone();
                    self.tell_waiter(token, move |env| {
                        (atoms::error(), conn_error(env, &r)).encode(env)
                    });
                }
            }
            Event::Online { jid, resumed } => self.tell_owner(move |env| {
                let info = Term::map_from_pairs(
                    env,
                    &[
                        (atoms::jid().encode(env), jid.encode(env)),
                        (atoms::resumed().encode(env), resumed.encode(env)),
                    ],
                )
                .expect("distinct keys");
                (atoms::online(), info).encode(env)
            }),
            Event::Disconnected(e) => {
                self.tell_owner(move |env| (atoms::disconnected(), conn_error(env, &e)).encode(env))
            }
            Event::Reconnecting { attempt, delay } => self.tell_owner(move |env| {
                let info = Term::map_from_pairs(
                    env,
                    &[
                        (atoms::attempt().encode(env), attempt.encode(env)),
                        (
                            atoms::delay_ms().encode(env),
                            (delay.as_millis() as u64).encode(env),
                        ),
                    ],
                )
                .expect("distinct keys");
                (atoms::reconnecting(), info).encode(env)
            }),
            Event::Acked(seqs) => self.tell_owner(move |env| (atoms::acked(), seqs).encode(env)),
            Event::Passive => self.tell_owner(|env| atoms::passive().encode(env)),
            Event::Failed(seqs, e) => {
                self.tell_owner(move |env| (atoms::failed(), seqs, conn_error(env, &e)).encode(env))
            }
            Event::Closed(reason) => {
                let released = match self.keep.lock() {
                    Ok(mut k) => k.take(),
                    Err(poisoned) => poisoned.into_inner().take(),
                };
                drop(released);
                // Waiters of a session that is over get an answer too.
                let left: Vec<u64> = lock(&self.waiters).keys().copied().collect();
                for token in left {
                    self.tell_waiter(token, |env| (atoms::error(), atoms::closed()).encode(env));
                }
                self.tell_owner(move |env| {
                    let why = reason
                        .as_ref()
                        .map_or_else(|| atoms::normal().encode(env), |e| conn_error(env, e));
                    (atoms::closed(), why).encode(env)
                })
            }
        }
    }

    fn stanza(&mut self, el: Element<'_>, ns: Option<&str>) {
        let id = self.id;
        self.queue(self.owner, |env| {
            (atoms::xmpp_bridge(), id, element_event(env, el, ns)).encode(env)
        });
    }

    fn flush(&mut self) {
        for (pid, mut env, saved) in self.pending.drain(..) {
            // The receiver may be gone: the session is closing then.
            let _ = env.send_and_clear(&pid, |e| saved.load(e));
            if self.spare.len() < SPARE_ENVS {
                self.spare.push(env);
            }
        }
    }

    fn iq_response(&mut self, token: u64, el: Element<'_>, ns: Option<&str>) {
        let Some(pid) = lock(&self.waiters).remove(&token) else {
            return;
        };
        self.queue(pid, |env| {
            let term = to_term::stream_event(env, XEvent::Element(el), ns);
            let result = if term.map_get(atoms::__struct__()).is_ok() {
                (atoms::ok(), term).encode(env)
            } else {
                (atoms::error(), term).encode(env)
            };
            (atoms::xmpp_bridge_iq(), token, result).encode(env)
        });
    }
}

/// Reads the options map that `XmppBridge.Connection` built; every key is
/// read strictly, and the first one that is missing or holds a value the
/// core does not know is named in the error.
fn config(opts: Term<'_>) -> Result<Config, &'static str> {
    let get = |k: &'static str| -> Result<Term<'_>, &'static str> {
        Atom::from_str(opts.get_env(), k)
            .and_then(|a| opts.map_get(a))
            .map_err(|_| k)
    };
    let is_atom = |t: Term<'_>, a: Atom| t.decode::<Atom>().is_ok_and(|x| x == a);
    let string = |k| get(k)?.decode::<String>().map_err(|_| k);
    let opt_string = |k| -> Result<Option<String>, &'static str> {
        let t = get(k)?;
        if is_atom(t, atoms::nil()) {
            Ok(None)
        } else {
            t.decode().map(Some).map_err(|_| k)
        }
    };
    let boolean = |k| get(k)?.decode::<bool>().map_err(|_| k);
    let ms = |k| {
        get(k)?
            .decode::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| k)
    };
    let opt_ms = |k| -> Result<Option<Duration>, &'static str> {
        let t = get(k)?;
        if is_atom(t, atoms::nil()) {
            Ok(None)
        } else {
            t.decode::<u64>()
                .map(|n| Some(Duration::from_millis(n)))
                .map_err(|_| k)
        }
    };
    let one_of = |k, choices: &[(Atom, u8)]| -> Result<u8, &'static str> {
        let t = get(k)?;
        choices
            .iter()
            .find(|(a, _)| is_atom(t, *a))
            .map(|(_, v)| *v)
            .ok_or(k)
    };
    let mode = match one_of("mode", &[(atoms::client(), 0), (atoms::component(), 1)])? {
        0 => Mode::Client,
        _ => Mode::Component,
    };
    let tls = match one_of(
        "tls",
        &[
            (atoms::starttls(), 0),
            (atoms::direct(), 1),
            (atoms::plain(), 2),
        ],
    )? {
        0 => TlsMode::StartTls,
        1 => TlsMode::Direct,
        _ => TlsMode::Plain,
    };
    let active = get("active")?;
    let active = if is_atom(active, atoms::true_()) {
        Active::Unlimited
    } else if is_atom(active, atoms::once()) {
        Active::More(1)
    } else {
        match active.decode::<u32>() {
            Ok(n) if n > 0 => Active::More(n),
            _ => return Err("active"),
        }
    };
    let max_attempts = get("max_attempts")?;
    let max_attempts = if is_atom(max_attempts, atoms::nil()) {
        None
    } else {
        Some(max_attempts.decode::<u32>().map_err(|_| "max_attempts")?)
    };
    let dns_server = opt_string("dns_server")?
        .map(|s| s.parse::<std::net::SocketAddr>())
        .transpose()
        .map_err(|_| "dns_server")?;
    // Checked and normalised by XmppBridge.Connection: [{host, port}].
    let servers: Vec<(String, u16)> = get("servers")?.decode().map_err(|_| "servers")?;
    Ok(Config {
        mode,
        jid: string("jid")?,
        password: string("password")?,
        host: opt_string("host")?,
        servers,
        dns_server,
        port: get("port")?.decode().map_err(|_| "port")?,
        tls,
        ca_file: opt_string("ca_file")?,
        server_name: opt_string("server_name")?,
        resource: opt_string("resource")?,
        connect_timeout: ms("connect_timeout")?,
        keepalive: opt_ms("keepalive")?,
        keepalive_timeout: ms("keepalive_timeout")?,
        reconnect: Reconnect {
            enabled: boolean("reconnect")?,
            initial: ms("backoff_initial")?,
            max: ms("backoff_max")?,
            max_attempts,
        },
        queue_limit: get("queue_limit")?.decode().map_err(|_| "queue_limit")?,
        stream_management: boolean("stream_management")?,
        initial_presence: boolean("initial_presence")?,
        max_stanza_bytes: get("max_stanza_bytes")?
            .decode()
            .map_err(|_| "max_stanza_bytes")?,
        batch_delay: ms("batch_delay")?,
        active,
        bus_incarnation: opt_string("bus_incarnation")?,
    })
}

/// `{:error, {:bad_option, {key, value}}}` for the option `key` of `opts`.
fn bad_option<'a>(env: Env<'a>, opts: Term<'a>, key: &str) -> Term<'a> {
    let k = Atom::from_str(env, key).expect("short atom");
    let v = opts.map_get(k).unwrap_or_else(|_| atoms::nil().encode(env));
    (atoms::error(), (atoms::bad_option(), (k, v))).encode(env)
}

#[rustler::nif]
fn conn_open<'a>(env: Env<'a>, opts: Term<'a>, owner: LocalPid, id: u64) -> NifResult<Term<'a>> {
    let config = match config(opts) {
        Ok(c) => c,
        Err(key) => return Ok(bad_option(env, opts, key)),
    };
    let nice: i32 = match opts
        .map_get(atoms::io_thread_nice())
        .and_then(|t| t.decode())
    {
        Ok(n) if (0..=19).contains(&n) => n,
        _ => return Ok(bad_option(env, opts, "io_thread_nice")),
    };
    let waiters: Waiters = Arc::default();
    let keep = Arc::new(Mutex::new(None));
    let handler = NifHandler {
        owner,
        id,
        env: OwnedEnv::new(),
        pending: Vec::new(),
        spare: Vec::new(),
        waiters: waiters.clone(),
        keep: keep.clone(),
    };
    let handle = connection::spawn(runtime(nice).handle(), config, handler);
    LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let res = ResourceArc::new(ConnResource { handle, waiters });
    if let Ok(mut k) = keep.lock() {
        // Unless the session already ended (a bad config ends it at once).
        if !res.handle.is_closed() {
            *k = Some(res.clone());
        }
    }
    if res.monitor(Some(env), &owner).is_none() {
        // The owner is already dead.
        res.handle.close();
        return Ok((atoms::error(), atoms::noproc()).encode(env));
    }
    Ok((atoms::ok(), res).encode(env))
}

fn queue_error(env: Env<'_>, e: QueueError) -> Term<'_> {
    let reason = match e {
        QueueError::Full => atoms::queue_full(),
        QueueError::Closed => atoms::closed(),
    };
    (atoms::error(), reason).encode(env)
}

/// Serialises a stanza struct (or an xmlel) for the stream, converting at
/// most `units` structs and elements (`NifError::Reschedule` beyond).
fn stream_bytes(term: Term<'_>, units: usize) -> Result<Vec<u8>, NifError> {
    crate::from_term::set_budget(units);
    if term.map_get(atoms::__struct__()).is_ok() {
        crate::from_term::stanza(term).and_then(|s| s.to_stream_bytes().map_err(NifError::from))
    } else {
        crate::from_term::element(term, 1).and_then(|el| el.to_bytes().map_err(NifError::from))
    }
}

fn encode_error<'a>(env: Env<'a>, e: NifError) -> Term<'a> {
    match e {
        NifError::Reschedule => crate::dirty(env),
        e => crate::err(env, e),
    }
}

fn do_conn_send<'a>(env: Env<'a>, res: &ConnResource, stanza: Term<'a>, units: usize) -> Term<'a> {
    let bytes = match stream_bytes(stanza, units) {
        Ok(b) => b,
        Err(e) => return encode_error(env, e),
    };
    match res.handle.send(bytes) {
        Ok(seq) => (atoms::ok(), seq).encode(env),
        Err(e) => queue_error(env, e),
    }
}

/// Encodes and queues a stanza; `:dirty` when it is too big to encode on a
/// normal scheduler (the caller then uses `conn_send_dirty`).
#[rustler::nif]
fn conn_send<'a>(env: Env<'a>, res: ResourceArc<ConnResource>, stanza: Term<'a>) -> Term<'a> {
    crate::timed(env, || do_conn_send(env, &res, stanza, crate::ENCODE_UNITS))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn conn_send_dirty<'a>(env: Env<'a>, res: ResourceArc<ConnResource>, stanza: Term<'a>) -> Term<'a> {
    do_conn_send(env, &res, stanza, usize::MAX)
}

fn do_conn_iq<'a>(
    env: Env<'a>,
    res: &ConnResource,
    iq: Term<'a>,
    waiter: LocalPid,
    token: u64,
    units: usize,
) -> Term<'a> {
    let id: String = match iq.map_get(atoms::id()).and_then(|t| t.decode()) {
        Ok(id) => id,
        Err(_) => return crate::err(env, NifError::InvalidField(atoms::iq_mod(), atoms::id())),
    };
    let bytes = match stream_bytes(iq, units) {
        Ok(b) => b,
        Err(e) => return encode_error(env, e),
    };
    lock(&res.waiters).insert(token, waiter);
    match res.handle.iq(token, id, bytes) {
        Ok(seq) => (atoms::ok(), seq).encode(env),
        Err(e) => {
            lock(&res.waiters).remove(&token);
            queue_error(env, e)
        }
    }
}

/// Encodes and queues an IQ request whose answer goes to `waiter`;
/// `:dirty` as for `conn_send`.
#[rustler::nif]
fn conn_iq<'a>(
    env: Env<'a>,
    res: ResourceArc<ConnResource>,
    iq: Term<'a>,
    waiter: LocalPid,
    token: u64,
) -> Term<'a> {
    crate::timed(env, || {
        do_conn_iq(env, &res, iq, waiter, token, crate::ENCODE_UNITS)
    })
}

#[rustler::nif(schedule = "DirtyCpu")]
fn conn_iq_dirty<'a>(
    env: Env<'a>,
    res: ResourceArc<ConnResource>,
    iq: Term<'a>,
    waiter: LocalPid,
    token: u64,
) -> Term<'a> {
    do_conn_iq(env, &res, iq, waiter, token, usize::MAX)
}

/// How many more incoming stanzas the owner takes (see
/// `XmppBridge.Connection.set_active/2`): a positive integer adds to the
/// credit, `:once` sets it to one, `true` lifts the limit, `false` stops
/// delivery now.
#[rustler::nif]
fn conn_set_active<'a>(env: Env<'a>, res: ResourceArc<ConnResource>, mode: Term<'a>) -> Term<'a> {
    match active(mode) {
        Some(a) => {
            res.handle.set_active(a);
            atoms::ok().encode(env)
        }
        None => (atoms::error(), (atoms::bad_argument(), mode)).encode(env),
    }
}

fn active(t: Term<'_>) -> Option<Active> {
    if let Ok(n) = t.decode::<u32>() {
        return (n > 0).then_some(Active::More(n));
    }
    let a: Atom = t.decode().ok()?;
    if a == atoms::once() {
        Some(Active::Once)
    } else if a == atoms::true_() {
        Some(Active::Unlimited)
    } else if a == atoms::false_() {
        Some(Active::Off)
    } else {
        None
    }
}

/// Test hook: makes the session task panic, to show that its owner still
/// gets `{:closed, {:internal_error, _}}` as the last message.
#[rustler::nif]
fn conn_inject_panic(res: ResourceArc<ConnResource>) -> Atom {
    res.handle.inject_panic();
    atoms::ok()
}

#[rustler::nif]
fn conn_cancel_iq(res: ResourceArc<ConnResource>, token: u64, id: String) -> Atom {
    lock(&res.waiters).remove(&token);
    res.handle.cancel_iq(id);
    atoms::ok()
}

#[rustler::nif]
fn conn_close(res: ResourceArc<ConnResource>) -> Atom {
    res.handle.close();
    atoms::ok()
}

#[rustler::nif]
fn conn_alive(res: ResourceArc<ConnResource>) -> bool {
    !res.handle.is_closed()
}
