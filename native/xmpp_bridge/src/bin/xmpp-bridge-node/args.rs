//! The command line: flags, environment variables and subcommands, read
//! into an [`Invocation`] or refused with a [`UsageError`] that says what
//! is wrong. Nothing here connects: a bad command line is found before
//! any network traffic.

use crate::convert;
use std::fmt;
use std::time::Duration;
use xmpp_bridge::bus;
use xmpp_bridge::connection::TlsMode;
use xmpp_bridge::etf::Term;

/// The text of `--help`.
pub const HELP: &str = include_str!("help.txt");

/// Longest duration a flag takes, in ms (a day).
const MAX_MS: u64 = 86_400_000;

/// A command line that cannot be run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage<T>(text: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(text.into()))
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// `--help`, `-h` or `help`.
    Help,
    /// `--version`.
    Version,
    /// A subcommand to run.
    Run(Box<Invocation>),
}

/// A subcommand with its session's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// How to reach the server and who to be.
    pub conn: ConnOpts,
    /// What to do once connected.
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// `serve`.
    Serve,
    /// `send`.
    Send,
    /// `call`.
    Call,
    /// `monitor`.
    Monitor,
    /// `broadcast`.
    Broadcast,
    /// `members`.
    Members,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Serve => "serve",
            Cmd::Send => "send",
            Cmd::Call => "call",
            Cmd::Monitor => "monitor",
            Cmd::Broadcast => "broadcast",
            Cmd::Members => "members",
        }
    }
}

/// A subcommand and its own options.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Serve methods and print events.
    Serve(ServeOpts),
    /// Send one term.
    Send(SendOpts),
    /// Call one method.
    Call(CallOpts),
    /// Wait for one DOWN.
    Monitor(MonitorOpts),
    /// Join a group, broadcast to it, leave.
    Broadcast(BroadcastOpts),
    /// Join a group, print its members, leave.
    Members(MembersOpts),
}

/// The session: the connection flags and their variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnOpts {
    /// The account (`user@domain`, maybe with a resource).
    pub jid: String,
    /// Its password.
    pub password: String,
    /// Where to connect (`None`: SRV records, then the domain).
    pub host: Option<String>,
    /// The port (`None`: the library's default, 5222).
    pub port: Option<u16>,
    /// The servers of a cluster, tried in turn (instead of host/port).
    pub servers: Vec<(String, u16)>,
    /// How the connection is secured.
    pub tls: TlsMode,
    /// CAs to trust instead of the web roots.
    pub ca_file: Option<String>,
    /// The name the server certificate must carry.
    pub server_name: Option<String>,
    /// The resource asked for (`None`: the JID's own or the subcommand's
    /// default).
    pub resource: Option<String>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Ping interval of monitors.
    pub heartbeat: Duration,
    /// How long a ping may stay unanswered.
    pub heartbeat_timeout: Duration,
}

impl ConnOpts {
    /// The node's configuration; `default_resource` is bound unless the
    /// JID or `--resource` names one.
    pub fn bus_config(&self, default_resource: &str) -> bus::Config {
        let mut c = bus::Config::new(self.jid.clone(), self.password.clone());
        match &self.resource {
            Some(r) => c.connection.resource = Some(r.clone()),
            // `Some` here means that the JID named no resource.
            None if c.connection.resource.is_some() => {
                c.connection.resource = Some(default_resource.to_owned())
            }
            None => {}
        }
        c.connection.host = self.host.clone();
        c.connection.servers = self.servers.clone();
        if let Some(port) = self.port {
            c.connection.port = port;
        }
        c.connection.tls = self.tls;
        c.connection.ca_file = self.ca_file.clone();
        c.connection.server_name = self.server_name.clone();
        c.connection.connect_timeout = self.connect_timeout;
        c.heartbeat = self.heartbeat;
        c.heartbeat_timeout = self.heartbeat_timeout;
        c
    }
}

/// `serve`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOpts {
    /// Send every received value back.
    pub echo: bool,
    /// Calls served at once.
    pub max_calls: usize,
    /// Nodes to watch.
    pub monitors: Vec<String>,
    /// Stop at the end of standard input.
    pub exit_on_eof: bool,
    /// Read commands from standard input (and stop at its end).
    pub commands: bool,
    /// Groups to join at start, in order (docs/PROTOCOL.md §6.1).
    pub joins: Vec<String>,
    /// The discovery group (§6.3), joined before the others.
    pub discovery: Option<String>,
    /// Watch the members of the groups joined by heartbeat
    /// (`--no-member-heartbeat` turns it off).
    pub member_heartbeat: bool,
    /// The status's `<show/>` (`None`: plain available).
    pub show: Option<bus::Show>,
    /// The status's text.
    pub status_text: Option<String>,
    /// The shortest time between two status updates for the load.
    pub status_interval: Duration,
}

/// What a send or a call carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A term (from JSON with tags, or from `--etf`).
    Term(Term),
    /// XEP-0335 JSON (`--json-payload`).
    Json(serde_json::Value),
}

/// `send`'s options.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOpts {
    /// The receiving node's address (`/bus` added to a bare JID).
    pub to: String,
    /// The value.
    pub body: Body,
    /// Ask for a receipt and wait for it.
    pub confirmed: bool,
    /// How long to wait for the outcome.
    pub timeout: Duration,
}

/// `call`'s options.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOpts {
    /// The serving node's address.
    pub to: String,
    /// The method.
    pub method: String,
    /// The arguments: a list term, or a JSON array.
    pub args: Body,
    /// How long to wait.
    pub timeout: Duration,
    /// Print the result as Base64 ETF.
    pub etf_output: bool,
}

/// `monitor`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorOpts {
    /// The watched node's address.
    pub jid: String,
    /// How long to wait for the DOWN (`None`: no limit).
    pub timeout: Option<Duration>,
}

/// `broadcast`'s options.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastOpts {
    /// The group.
    pub group: String,
    /// The values, broadcast in order.
    pub bodies: Vec<Body>,
    /// How long the join and the outcome may take.
    pub timeout: Duration,
}

/// `members`' options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersOpts {
    /// The group.
    pub group: String,
    /// How long the join may take.
    pub timeout: Duration,
}

/// Which subcommands take a flag.
#[derive(Debug, Clone, Copy)]
enum Scope {
    All,
    Only(&'static [Cmd]),
}

/// One flag: its name (without `--`), whether it takes a value, the
/// variable that stands in for it, where it is allowed, and whether it may
/// be given more than once.
#[derive(Debug)]
struct Spec {
    name: &'static str,
    value: bool,
    env: Option<&'static str>,
    scope: Scope,
    repeat: bool,
}

const fn flag(name: &'static str, value: bool, env: Option<&'static str>, scope: Scope) -> Spec {
    Spec {
        name,
        value,
        env,
        scope,
        repeat: false,
    }
}

const ONE_SHOT: &[Cmd] = &[
    Cmd::Send,
    Cmd::Call,
    Cmd::Monitor,
    Cmd::Broadcast,
    Cmd::Members,
];

const SPECS: &[Spec] = &[
    flag("jid", true, Some("XMPP_BRIDGE_JID"), Scope::All),
    flag("password", true, Some("XMPP_BRIDGE_PASSWORD"), Scope::All),
    flag("host", true, Some("XMPP_BRIDGE_HOST"), Scope::All),
    flag("port", true, Some("XMPP_BRIDGE_PORT"), Scope::All),
    flag("servers", true, Some("XMPP_BRIDGE_SERVERS"), Scope::All),
    flag("tls", true, Some("XMPP_BRIDGE_TLS"), Scope::All),
    flag("ca-file", true, Some("XMPP_BRIDGE_CA_FILE"), Scope::All),
    flag(
        "server-name",
        true,
        Some("XMPP_BRIDGE_SERVER_NAME"),
        Scope::All,
    ),
    flag("resource", true, Some("XMPP_BRIDGE_RESOURCE"), Scope::All),
    flag(
        "connect-timeout",
        true,
        Some("XMPP_BRIDGE_CONNECT_TIMEOUT_MS"),
        Scope::All,
    ),
    flag(
        "heartbeat-ms",
        true,
        Some("XMPP_BRIDGE_HEARTBEAT_MS"),
        Scope::All,
    ),
    flag(
        "heartbeat-timeout-ms",
        true,
        Some("XMPP_BRIDGE_HEARTBEAT_TIMEOUT_MS"),
        Scope::All,
    ),
    flag("echo", false, None, Scope::Only(&[Cmd::Serve])),
    flag(
        "max-calls",
        true,
        Some("XMPP_BRIDGE_MAX_CALLS"),
        Scope::Only(&[Cmd::Serve]),
    ),
    Spec {
        repeat: true,
        ..flag("monitor", true, None, Scope::Only(&[Cmd::Serve]))
    },
    flag("exit-on-eof", false, None, Scope::Only(&[Cmd::Serve])),
    flag("commands", false, None, Scope::Only(&[Cmd::Serve])),
    Spec {
        repeat: true,
        ..flag(
            "join",
            true,
            Some("XMPP_BRIDGE_JOIN"),
            Scope::Only(&[Cmd::Serve]),
        )
    },
    flag(
        "discovery",
        true,
        Some("XMPP_BRIDGE_DISCOVERY"),
        Scope::Only(&[Cmd::Serve]),
    ),
    flag(
        "no-member-heartbeat",
        false,
        None,
        Scope::Only(&[Cmd::Serve]),
    ),
    flag(
        "status",
        true,
        Some("XMPP_BRIDGE_STATUS"),
        Scope::Only(&[Cmd::Serve]),
    ),
    flag(
        "show",
        true,
        Some("XMPP_BRIDGE_SHOW"),
        Scope::Only(&[Cmd::Serve]),
    ),
    flag(
        "status-interval-ms",
        true,
        Some("XMPP_BRIDGE_STATUS_INTERVAL_MS"),
        Scope::Only(&[Cmd::Serve]),
    ),
    flag("timeout", true, None, Scope::Only(ONE_SHOT)),
    flag("confirmed", false, None, Scope::Only(&[Cmd::Send])),
    flag(
        "etf",
        false,
        None,
        Scope::Only(&[Cmd::Send, Cmd::Call, Cmd::Broadcast]),
    ),
    flag(
        "json-payload",
        false,
        None,
        Scope::Only(&[Cmd::Send, Cmd::Call, Cmd::Broadcast]),
    ),
];

/// The flags given, by spec, in order.
struct Given {
    flags: Vec<(&'static Spec, Option<String>)>,
}

impl Given {
    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(s, _)| s.name == name)
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(s, _)| s.name == name)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }
}

/// A value and where it came from (`--port` or `XMPP_BRIDGE_PORT`), for
/// error messages.
struct Sourced {
    value: String,
    source: String,
}

struct Reader<'a> {
    given: Given,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    /// The flag's value, else its variable's (an empty variable is unset).
    fn get(&self, name: &str) -> Option<Sourced> {
        if let Some(v) = self.given.all(name).pop() {
            return Some(Sourced {
                value: v,
                source: format!("--{name}"),
            });
        }
        let spec = SPECS.iter().find(|s| s.name == name)?;
        let var = spec.env?;
        (self.env)(var)
            .filter(|v| !v.is_empty())
            .map(|value| Sourced {
                value,
                source: var.to_owned(),
            })
    }

    fn ms(&self, name: &str, default: Option<u64>) -> Result<Option<Duration>, UsageError> {
        match self.get(name) {
            None => Ok(default.map(Duration::from_millis)),
            Some(s) => match s.value.parse::<u64>() {
                Ok(n) if (1..=MAX_MS).contains(&n) => Ok(Some(Duration::from_millis(n))),
                _ => usage(format!(
                    "{} takes milliseconds, 1 to {MAX_MS}, not {:?}",
                    s.source, s.value
                )),
            },
        }
    }
}

/// Reads the command line (`args` without the program name); `env` looks
/// up a variable.
pub fn parse(
    args: Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, UsageError> {
    // Help wins over everything else on the line (before `--`).
    for a in args.iter().take_while(|a| *a != "--") {
        if a == "--help" || a == "-h" {
            return Ok(Parsed::Help);
        }
        if a == "--version" {
            return Ok(Parsed::Version);
        }
    }
    let mut flags = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            positional.extend(it.by_ref());
            break;
        }
        let Some(body) = a.strip_prefix("--") else {
            positional.push(a);
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let Some(spec) = SPECS.iter().find(|s| s.name == name) else {
            return usage(format!("unknown flag --{name}"));
        };
        let value = match (spec.value, inline) {
            (true, Some(v)) => Some(v),
            (true, None) => match it.next() {
                Some(v) => Some(v),
                None => return usage(format!("--{name} needs a value")),
            },
            (false, None) => None,
            (false, Some(_)) => return usage(format!("--{name} takes no value")),
        };
        if !spec.repeat && flags.iter().any(|(s, _): &(&Spec, _)| s.name == name) {
            return usage(format!("--{name} is given twice"));
        }
        flags.push((spec, value));
    }
    let mut positional = positional.into_iter();
    let cmd = match positional.next() {
        None => Cmd::Serve,
        Some(first) => match first.as_str() {
            "serve" => Cmd::Serve,
            "send" => Cmd::Send,
            "call" => Cmd::Call,
            "monitor" => Cmd::Monitor,
            "broadcast" => Cmd::Broadcast,
            "members" => Cmd::Members,
            "help" => return Ok(Parsed::Help),
            other => {
                return usage(format!(
                    "unknown subcommand {other:?} \
                     (serve, send, call, monitor, broadcast, members, help)"
                ))
            }
        },
    };
    let rest: Vec<String> = positional.collect();
    for (spec, _) in &flags {
        if let Scope::Only(cmds) = spec.scope {
            if !cmds.contains(&cmd) {
                return usage(format!("--{} is not a flag of `{}`", spec.name, cmd.name()));
            }
        }
    }
    let r = Reader {
        given: Given { flags },
        env,
    };
    let conn = conn_opts(&r)?;
    let command = match cmd {
        Cmd::Serve => Command::Serve(serve_opts(&r, &rest)?),
        Cmd::Send => Command::Send(send_opts(&r, &rest)?),
        Cmd::Call => Command::Call(call_opts(&r, &rest)?),
        Cmd::Monitor => Command::Monitor(monitor_opts(&r, &rest)?),
        Cmd::Broadcast => Command::Broadcast(broadcast_opts(&r, &rest)?),
        Cmd::Members => Command::Members(members_opts(&r, &rest)?),
    };
    Ok(Parsed::Run(Box::new(Invocation { conn, command })))
}

fn conn_opts(r: &Reader) -> Result<ConnOpts, UsageError> {
    let Some(jid) = r.get("jid") else {
        return usage("no account: give --jid user@domain or set XMPP_BRIDGE_JID");
    };
    match xmpp_bridge::jid::parse(&jid.value) {
        Ok(parts) if parts.node.is_some() => {}
        Ok(_) => {
            return usage(format!(
                "{} {:?} names no user (user@domain)",
                jid.source, jid.value
            ))
        }
        Err(e) => return usage(format!("{} {:?} is not a JID: {e}", jid.source, jid.value)),
    }
    let Some(password) = r.get("password") else {
        return usage("no password: set XMPP_BRIDGE_PASSWORD or give --password");
    };
    let port = match r.get("port") {
        None => None,
        Some(s) => match s.value.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                return usage(format!(
                    "{} takes a port, 1 to 65535, not {:?}",
                    s.source, s.value
                ))
            }
        },
    };
    let servers = match r.get("servers") {
        None => Vec::new(),
        Some(s) => match parse_servers(&s.value) {
            Some(list) if r.get("host").is_none() => list,
            Some(_) => return usage("give --servers or --host, not both".to_string()),
            None => {
                return usage(format!(
                    "{} takes host:port[,host:port...], not {:?}",
                    s.source, s.value
                ))
            }
        },
    };
    let tls = match r.get("tls") {
        None => TlsMode::StartTls,
        Some(s) => match s.value.as_str() {
            "starttls" => TlsMode::StartTls,
            "direct" => TlsMode::Direct,
            "plain" => TlsMode::Plain,
            _ => {
                return usage(format!(
                    "{} takes starttls, direct or plain, not {:?}",
                    s.source, s.value
                ))
            }
        },
    };
    let resource = r.get("resource").map(|s| s.value);
    if let Some(res) = &resource {
        if xmpp_bridge::jid::parse(&format!("u@d/{res}")).is_err() {
            return usage(format!("--resource {res:?} is not a valid resource"));
        }
    }
    Ok(ConnOpts {
        jid: jid.value,
        password: password.value,
        host: r.get("host").map(|s| s.value),
        port,
        servers,
        tls,
        ca_file: r.get("ca-file").map(|s| s.value),
        server_name: r.get("server-name").map(|s| s.value),
        resource,
        connect_timeout: r.ms("connect-timeout", Some(10_000))?.expect("a default"),
        heartbeat: r.ms("heartbeat-ms", Some(5_000))?.expect("a default"),
        heartbeat_timeout: r
            .ms("heartbeat-timeout-ms", Some(5_000))?
            .expect("a default"),
    })
}

/// `host:port,host:port` (an IPv6 host in brackets), at least one.
fn parse_servers(text: &str) -> Option<Vec<(String, u16)>> {
    text.split(',')
        .map(|item| {
            let (host, port) = item.trim().rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
            (!host.is_empty()).then(|| (host.to_string(), port))
        })
        .collect()
}

fn target(cmd: &str, jid: &str) -> Result<String, UsageError> {
    bus::address(jid)
        .map_err(|e| UsageError(format!("{cmd}: {jid:?} is not a node's address: {e}")))
}

fn arity(
    cmd: &str,
    rest: &[String],
    min: usize,
    max: usize,
    shape: &str,
) -> Result<(), UsageError> {
    if rest.len() < min || rest.len() > max {
        let what = if rest.len() < min {
            "too few"
        } else {
            "too many"
        };
        return usage(format!(
            "{cmd}: {what} arguments (usage: {cmd} {shape}; got {})",
            rest.len()
        ));
    }
    Ok(())
}

fn serve_opts(r: &Reader, rest: &[String]) -> Result<ServeOpts, UsageError> {
    if let Some(extra) = rest.first() {
        return usage(format!("serve takes no arguments, got {extra:?}"));
    }
    let max_calls = match r.get("max-calls") {
        None => 64,
        Some(s) => match s.value.parse::<usize>() {
            Ok(n) if (1..=100_000).contains(&n) => n,
            _ => return usage(format!("{} takes 1 to 100000, not {:?}", s.source, s.value)),
        },
    };
    let monitors = r
        .given
        .all("monitor")
        .iter()
        .map(|j| target("--monitor", j))
        .collect::<Result<_, _>>()?;
    // `--join` may be repeated; XMPP_BRIDGE_JOIN lists groups by commas.
    let mut joins = r.given.all("join");
    let joins_source = if joins.is_empty() {
        joins = (r.env)("XMPP_BRIDGE_JOIN")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        "XMPP_BRIDGE_JOIN"
    } else {
        "--join"
    };
    for g in &joins {
        group_name(joins_source, g)?;
    }
    let mut unique = Vec::with_capacity(joins.len());
    for g in joins {
        if !unique.contains(&g) {
            unique.push(g);
        }
    }
    let discovery = match r.get("discovery") {
        None => None,
        Some(s) => {
            group_name(&s.source, &s.value)?;
            Some(s.value)
        }
    };
    let show = match r.get("show") {
        None => None,
        Some(s) => match s.value.as_str() {
            "available" => None,
            v => Some(bus::Show::parse(v).ok_or_else(|| {
                UsageError(format!(
                    "{} takes available, chat, away, xa or dnd, not {v:?}",
                    s.source
                ))
            })?),
        },
    };
    let status_text = r.get("status").map(|s| s.value);
    if let Some(t) = &status_text {
        if t.chars().count() > 1024 || t.chars().any(|c| c.is_control() && c != '\n') {
            return usage(
                "--status takes a text of at most 1024 characters, without control characters",
            );
        }
    }
    let commands = r.given.has("commands");
    Ok(ServeOpts {
        echo: r.given.has("echo"),
        max_calls,
        monitors,
        exit_on_eof: r.given.has("exit-on-eof") || commands,
        commands,
        joins: unique,
        discovery,
        member_heartbeat: !r.given.has("no-member-heartbeat"),
        show,
        status_text,
        status_interval: r.ms("status-interval-ms", Some(1_000))?.expect("a default"),
    })
}

/// Checks a group name (docs/PROTOCOL.md §6.1) given by `source`.
fn group_name(source: &str, name: &str) -> Result<(), UsageError> {
    bus::check_group(name).map_err(|e| UsageError(format!("{source}: {e}")))
}

/// How TERM and ARGS are written.
#[derive(Clone, Copy)]
enum Format {
    Json,
    Etf,
    JsonPayload,
}

fn format(r: &Reader) -> Result<Format, UsageError> {
    match (r.given.has("etf"), r.given.has("json-payload")) {
        (true, true) => usage("--etf and --json-payload exclude each other"),
        (true, false) => Ok(Format::Etf),
        (false, true) => Ok(Format::JsonPayload),
        (false, false) => Ok(Format::Json),
    }
}

fn body(what: &str, text: &str, format: Format) -> Result<Body, UsageError> {
    let bad = |e: String| UsageError(format!("{what}: {e}"));
    match format {
        Format::Json => convert::parse_term(text).map(Body::Term).map_err(bad),
        Format::Etf => convert::parse_etf(text).map(Body::Term).map_err(bad),
        Format::JsonPayload => serde_json::from_str(text)
            .map(Body::Json)
            .map_err(|e| bad(format!("not JSON: {e}"))),
    }
}

fn send_opts(r: &Reader, rest: &[String]) -> Result<SendOpts, UsageError> {
    arity("send", rest, 2, 2, "JID TERM")?;
    let to = target("send", &rest[0])?;
    let body = body("send: TERM", &rest[1], format(r)?)?;
    Ok(SendOpts {
        to,
        body,
        confirmed: r.given.has("confirmed"),
        timeout: r.ms("timeout", Some(10_000))?.expect("a default"),
    })
}

fn call_opts(r: &Reader, rest: &[String]) -> Result<CallOpts, UsageError> {
    arity("call", rest, 2, 3, "JID METHOD [ARGS]")?;
    let to = target("call", &rest[0])?;
    let method = rest[1].clone();
    if method.is_empty() || method.len() > 256 {
        return usage("call: a METHOD is 1 to 256 bytes long");
    }
    let format = format(r)?;
    let args = match rest.get(2) {
        None => match format {
            Format::JsonPayload => Body::Json(serde_json::Value::Array(Vec::new())),
            _ => Body::Term(Term::List(Vec::new())),
        },
        Some(text) => body("call: ARGS", text, format)?,
    };
    match &args {
        Body::Term(Term::List(_)) | Body::Json(serde_json::Value::Array(_)) => {}
        _ => {
            return usage(format!(
                "call: ARGS must be {} of the arguments, e.g. '[1, 2]'",
                match format {
                    Format::Etf => "the ETF of a list",
                    _ => "a JSON array",
                }
            ))
        }
    }
    Ok(CallOpts {
        to,
        method,
        args,
        timeout: r.ms("timeout", Some(5_000))?.expect("a default"),
        etf_output: matches!(format, Format::Etf),
    })
}

fn monitor_opts(r: &Reader, rest: &[String]) -> Result<MonitorOpts, UsageError> {
    arity("monitor", rest, 1, 1, "JID")?;
    Ok(MonitorOpts {
        jid: target("monitor", &rest[0])?,
        timeout: r.ms("timeout", None)?,
    })
}

fn broadcast_opts(r: &Reader, rest: &[String]) -> Result<BroadcastOpts, UsageError> {
    arity("broadcast", rest, 2, 10_000, "GROUP TERM...")?;
    group_name("broadcast", &rest[0])?;
    let format = format(r)?;
    let bodies = rest[1..]
        .iter()
        .enumerate()
        .map(|(i, t)| body(&format!("broadcast: TERM {}", i + 1), t, format))
        .collect::<Result<_, _>>()?;
    Ok(BroadcastOpts {
        group: rest[0].clone(),
        bodies,
        timeout: r.ms("timeout", Some(10_000))?.expect("a default"),
    })
}

fn members_opts(r: &Reader, rest: &[String]) -> Result<MembersOpts, UsageError> {
    arity("members", rest, 1, 1, "GROUP")?;
    group_name("members", &rest[0])?;
    Ok(MembersOpts {
        group: rest[0].clone(),
        timeout: r.ms("timeout", Some(10_000))?.expect("a default"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn run(line: &str) -> Invocation {
        run_env(line, &no_env)
    }

    fn run_env(line: &str, env: &dyn Fn(&str) -> Option<String>) -> Invocation {
        match parse(args(line), env) {
            Ok(Parsed::Run(i)) => *i,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse(args(line), &no_env) {
            Err(UsageError(e)) => e,
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    const LOGIN: &str = "--jid a@example.com --password pw";

    #[test]
    fn serve_is_the_default() {
        let i = run(LOGIN);
        assert_eq!(
            i.command,
            Command::Serve(ServeOpts {
                echo: false,
                max_calls: 64,
                monitors: vec![],
                exit_on_eof: false,
                commands: false,
                joins: vec![],
                discovery: None,
                member_heartbeat: true,
                show: None,
                status_text: None,
                status_interval: Duration::from_secs(1),
            })
        );
        let Command::Serve(s) = run(&format!("serve {LOGIN} --no-member-heartbeat")).command else {
            panic!()
        };
        assert!(!s.member_heartbeat);
        assert_eq!(i.conn.tls, TlsMode::StartTls);
        assert_eq!(i.conn.port, None);
        assert_eq!(i.conn.connect_timeout, Duration::from_secs(10));
        let i = run(&format!(
            "serve {LOGIN} --echo --max-calls=3 --monitor b@example.com --monitor c@x/y --exit-on-eof"
        ));
        let Command::Serve(s) = i.command else {
            panic!()
        };
        assert!(s.echo && s.exit_on_eof);
        assert_eq!(s.max_calls, 3);
        assert_eq!(s.monitors, vec!["b@example.com/bus", "c@x/y"]);
    }

    #[test]
    fn serve_joins_groups_and_publishes_a_status() {
        let i = run(&format!(
            "{LOGIN} --join jobs --join a.b_c-1 --join jobs --discovery bus --status ready \
             --show dnd --status-interval-ms 50 --commands"
        ));
        let Command::Serve(s) = i.command else {
            panic!()
        };
        assert_eq!(s.joins, vec!["jobs", "a.b_c-1"], "in order, once each");
        assert_eq!(s.discovery.as_deref(), Some("bus"));
        assert_eq!(s.status_text.as_deref(), Some("ready"));
        assert_eq!(s.show, Some(bus::Show::Dnd));
        assert_eq!(s.status_interval, Duration::from_millis(50));
        assert!(
            s.commands && s.exit_on_eof,
            "--commands stops at the end of input"
        );
        // The variables, and a flag wins over its variable.
        let env = |k: &str| match k {
            "XMPP_BRIDGE_JOIN" => Some(" one, two,,three ".to_owned()),
            "XMPP_BRIDGE_DISCOVERY" => Some("disc".to_owned()),
            "XMPP_BRIDGE_STATUS" => Some("from env".to_owned()),
            "XMPP_BRIDGE_SHOW" => Some("available".to_owned()),
            _ => None,
        };
        let Command::Serve(s) = run_env(LOGIN, &env).command else {
            panic!()
        };
        assert_eq!(s.joins, vec!["one", "two", "three"]);
        assert_eq!(s.discovery.as_deref(), Some("disc"));
        assert_eq!(s.status_text.as_deref(), Some("from env"));
        assert_eq!(s.show, None);
        let Command::Serve(s) = run_env(&format!("{LOGIN} --join mine"), &env).command else {
            panic!()
        };
        assert_eq!(s.joins, vec!["mine"]);
        let bad = |k: &str| (k == "XMPP_BRIDGE_JOIN").then(|| "ok,Bad".to_owned());
        let e = parse(args(LOGIN), &bad).unwrap_err().0;
        assert!(e.contains("XMPP_BRIDGE_JOIN") && e.contains("Bad"), "{e}");
    }

    #[test]
    fn broadcast_and_members_read_their_group() {
        let Command::Broadcast(b) = run(&format!("broadcast jobs 1 [2] {LOGIN}")).command else {
            panic!()
        };
        assert_eq!(b.group, "jobs");
        assert_eq!(
            b.bodies,
            vec![
                Body::Term(Term::Int(1)),
                Body::Term(Term::list(vec![Term::Int(2)]))
            ]
        );
        assert_eq!(b.timeout, Duration::from_secs(10));
        let Command::Broadcast(b) = run(&format!(
            "broadcast jobs {{\"a\":1}} --json-payload --timeout 7 {LOGIN}"
        ))
        .command
        else {
            panic!()
        };
        assert_eq!(b.bodies, vec![Body::Json(serde_json::json!({"a": 1}))]);
        assert_eq!(b.timeout, Duration::from_millis(7));
        let Command::Members(m) = run(&format!("members jobs {LOGIN}")).command else {
            panic!()
        };
        assert_eq!(m.group, "jobs");
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(parse(args("--help"), &no_env), Ok(Parsed::Help));
        assert_eq!(parse(args("call --bogus -h"), &no_env), Ok(Parsed::Help));
        assert_eq!(parse(args("help"), &no_env), Ok(Parsed::Help));
        assert_eq!(parse(args("--version"), &no_env), Ok(Parsed::Version));
        // After `--`, --help is an argument.
        assert!(parse(args(&format!("send {LOGIN} b@x -- --help")), &no_env).is_err());
    }

    #[test]
    fn help_mentions_every_subcommand_flag_variable_and_code() {
        for word in [
            "serve",
            "send",
            "call",
            "monitor",
            "broadcast GROUP",
            "members GROUP",
            "COMMANDS",
            "member_left",
            "EXIT CODES",
            "--exit-on-eof",
        ] {
            assert!(HELP.contains(word), "{word}");
        }
        for spec in SPECS {
            assert!(
                HELP.contains(&format!("--{}", spec.name)),
                "--{}",
                spec.name
            );
            if let Some(var) = spec.env {
                assert!(HELP.contains(var), "{var}");
            }
        }
        use crate::exit::*;
        for code in [
            FAILURE,
            USAGE,
            CONNECT,
            SEND_FAILED,
            TIMEOUT,
            NO_METHOD,
            CRASHED,
            BUSY,
            UNAVAILABLE,
            BAD_ARGS,
            CALL_OTHER,
            JOIN_FAILED,
            INTERRUPTED,
        ] {
            assert!(HELP.contains(&format!("\n    {code} ")), "code {code}");
        }
    }

    #[test]
    fn servers_of_a_cluster() {
        let i = run("serve --jid a@example.com --password p --servers 127.0.0.1:5222,[::1]:6222");
        assert_eq!(
            i.conn.servers,
            vec![("127.0.0.1".to_owned(), 5222), ("::1".to_owned(), 6222)]
        );
        let c = i.conn.bus_config("bus");
        assert_eq!(c.connection.servers.len(), 2);
        assert!(
            error("serve --jid a@example.com --password p --servers h:0").contains("host:port")
        );
        assert!(error("serve --jid a@example.com --password p --servers h").contains("host:port"));
        assert!(
            error("serve --jid a@example.com --password p --servers h:1 --host h")
                .contains("not both")
        );
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = |k: &str| match k {
            "XMPP_BRIDGE_JID" => Some("env@example.com".to_owned()),
            "XMPP_BRIDGE_PASSWORD" => Some("envpw".to_owned()),
            "XMPP_BRIDGE_PORT" => Some("5333".to_owned()),
            "XMPP_BRIDGE_TLS" => Some("plain".to_owned()),
            "XMPP_BRIDGE_HOST" => Some("".to_owned()),
            _ => None,
        };
        let i = run_env("", &env);
        assert_eq!(i.conn.jid, "env@example.com");
        assert_eq!(i.conn.password, "envpw");
        assert_eq!(i.conn.port, Some(5333));
        assert_eq!(i.conn.tls, TlsMode::Plain);
        assert_eq!(i.conn.host, None, "an empty variable is unset");
        let i = run_env("--jid f@example.com --port 1 --tls direct --host h", &env);
        assert_eq!(i.conn.jid, "f@example.com");
        assert_eq!(i.conn.port, Some(1));
        assert_eq!(i.conn.tls, TlsMode::Direct);
        assert_eq!(i.conn.host.as_deref(), Some("h"));
        // An error names where the bad value came from.
        let bad_env = |k: &str| (k == "XMPP_BRIDGE_PORT").then(|| "x".to_owned());
        let e = parse(args(LOGIN), &bad_env).unwrap_err().0;
        assert!(e.contains("XMPP_BRIDGE_PORT"), "{e}");
    }

    #[test]
    fn send_reads_its_term() {
        let i = run(&format!(
            "send b@example.com {{\"$atom\":\"hi\"}} --confirmed {LOGIN}"
        ));
        let Command::Send(s) = i.command else {
            panic!()
        };
        assert_eq!(s.to, "b@example.com/bus");
        assert_eq!(s.body, Body::Term(Term::atom("hi")));
        assert!(s.confirmed);
        assert_eq!(s.timeout, Duration::from_secs(10));
        let i = run(&format!("send b@x {LOGIN} -- -5"));
        let Command::Send(s) = i.command else {
            panic!()
        };
        assert_eq!(
            s.body,
            Body::Term(Term::Int(-5)),
            "-5 is a term, not a flag"
        );
        let i = run(&format!("send b@x {{\"a\":1}} --json-payload {LOGIN}"));
        let Command::Send(s) = i.command else {
            panic!()
        };
        assert_eq!(s.body, Body::Json(serde_json::json!({"a": 1})));
        let etf = crate::convert::etf_base64(&Term::Int(7));
        let i = run(&format!("send b@x {etf} --etf {LOGIN}"));
        let Command::Send(s) = i.command else {
            panic!()
        };
        assert_eq!(s.body, Body::Term(Term::Int(7)));
    }

    #[test]
    fn call_reads_its_arguments() {
        let i = run(&format!("call b@x add [1,2] --timeout 250 {LOGIN}"));
        let Command::Call(c) = i.command else {
            panic!()
        };
        assert_eq!(c.method, "add");
        assert_eq!(
            c.args,
            Body::Term(Term::list(vec![Term::Int(1), Term::Int(2)]))
        );
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert!(!c.etf_output);
        let i = run(&format!("call b@x load {LOGIN}"));
        let Command::Call(c) = i.command else {
            panic!()
        };
        assert_eq!(c.args, Body::Term(Term::list(vec![])));
        assert_eq!(c.timeout, Duration::from_secs(5));
        let i = run(&format!("call b@x echo [1] --json-payload {LOGIN}"));
        let Command::Call(c) = i.command else {
            panic!()
        };
        assert_eq!(c.args, Body::Json(serde_json::json!([1])));
    }

    #[test]
    fn monitor_reads_its_jid() {
        let i = run(&format!("monitor b@x/other --timeout 100 {LOGIN}"));
        let Command::Monitor(m) = i.command else {
            panic!()
        };
        assert_eq!(m.jid, "b@x/other");
        assert_eq!(m.timeout, Some(Duration::from_millis(100)));
    }

    #[test]
    fn the_resource_defaults_by_subcommand() {
        let i = run(LOGIN);
        let c = i.conn.bus_config("bus");
        assert_eq!(c.connection.resource.as_deref(), Some("bus"));
        let c = i.conn.bus_config("cli-1");
        assert_eq!(c.connection.resource.as_deref(), Some("cli-1"));
        let i = run("--jid a@example.com/mine --password pw");
        assert_eq!(
            i.conn.bus_config("bus").connection.resource,
            None,
            "the JID's own"
        );
        let i = run(&format!("{LOGIN} --resource r2"));
        assert_eq!(
            i.conn.bus_config("bus").connection.resource.as_deref(),
            Some("r2")
        );
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let cases = [
            ("--frob", "unknown flag --frob"),
            (&format!("{LOGIN} --join Jobs") as &str, "a-z or 0-9"),
            (&format!("{LOGIN} --join a@b"), "is not one of"),
            (&format!("{LOGIN} --discovery"), "needs a value"),
            (&format!("{LOGIN} --show sleepy"), "chat, away, xa or dnd"),
            (&format!("{LOGIN} --status-interval-ms 0"), "milliseconds"),
            (
                &format!("send {LOGIN} --join jobs b@x 1"),
                "not a flag of `send`",
            ),
            (&format!("broadcast {LOGIN} jobs"), "too few arguments"),
            (
                &format!("broadcast {LOGIN} No 1"),
                "broadcast: invalid group name: \"No\"",
            ),
            (&format!("broadcast {LOGIN} jobs [1,"), "TERM 1"),
            (&format!("members {LOGIN}"), "too few arguments"),
            (&format!("members {LOGIN} a b"), "too many arguments"),
            (
                &format!("members {LOGIN} jobs --etf"),
                "not a flag of `members`",
            ),
            ("frob", "unknown subcommand"),
            ("--jid", "--jid needs a value"),
            ("--echo=yes", "takes no value"),
            ("--jid a@x --jid b@x --password p", "given twice"),
            ("--password p", "no account"),
            ("--jid a@x", "no password"),
            ("--jid example.com --password p", "names no user"),
            ("--jid @x --password p", "not a JID"),
            (&format!("{LOGIN} --port 70000"), "takes a port"),
            (&format!("{LOGIN} --port 0"), "takes a port"),
            (&format!("{LOGIN} --tls ssl"), "starttls, direct or plain"),
            (&format!("{LOGIN} --connect-timeout -1"), "milliseconds"),
            (&format!("{LOGIN} --max-calls 0"), "1 to 100000"),
            (&format!("{LOGIN} --confirmed"), "not a flag of `serve`"),
            (
                &format!("call {LOGIN} --echo b@x m"),
                "not a flag of `call`",
            ),
            (&format!("serve {LOGIN} extra"), "takes no arguments"),
            (&format!("send {LOGIN} b@x"), "too few arguments"),
            (&format!("send {LOGIN} b@x 1 2"), "too many arguments"),
            (&format!("send {LOGIN} @@ 1"), "not a node's address"),
            (&format!("send {LOGIN} b@x [1,"), "not JSON"),
            (
                &format!("send {LOGIN} b@x {{\"$atom\":1}}"),
                "$atom takes a string",
            ),
            (
                &format!("send {LOGIN} b@x 1 --etf --json-payload"),
                "exclude each other",
            ),
            (&format!("send {LOGIN} b@x !! --etf"), "Base64"),
            (&format!("call {LOGIN} b@x add 1"), "must be a JSON array"),
            (
                &format!("call {LOGIN} b@x add {{\"a\":1}} --json-payload"),
                "JSON array",
            ),
            (
                &format!("call {LOGIN} b@x add [1] --timeout 0"),
                "milliseconds",
            ),
            (&format!("monitor {LOGIN}"), "too few"),
            (&format!("{LOGIN} --monitor nope@"), "not a node's address"),
            (&format!("{LOGIN} --resource="), "not a valid resource"),
        ];
        for (line, want) in cases {
            let e = error(line);
            assert!(e.contains(want), "{line}: {e}");
        }
        let long = "m".repeat(257);
        assert!(error(&format!("call {LOGIN} b@x {long}")).contains("1 to 256 bytes"));
    }
}
