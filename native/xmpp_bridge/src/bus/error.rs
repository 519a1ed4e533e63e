//! What can go wrong on the bus, by operation.

use crate::connection::ConnError;
use std::fmt;

/// Why a node could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The session could not start (a fatal error: bad credentials, bad
    /// options, another session took the resource...).
    Connect(ConnError),
    /// Not a JID (the text says which and why).
    InvalidJid(String),
    /// The session's outbound queue is full: try again later.
    QueueFull,
    /// The node is closed.
    Closed,
    /// A value could not be turned into a term or JSON (or back).
    Encode(String),
    /// Not a group name (docs/PROTOCOL.md §6.1: 1 to 64 of `a-z`, `0-9`,
    /// `.`, `_`, `-`, starting with a letter or a digit); the text says
    /// why.
    InvalidGroup(String),
    /// The node is not in this group (it never joined, left it, or its
    /// join has not completed): only an occupant can broadcast.
    NotJoined(String),
    /// The room refused the join, or its configuration, with this
    /// condition (`conflict`, `forbidden`, `not-allowed`, ...).
    JoinFailed(String),
    /// No answer in time (a join within [`super::Config::join_timeout`],
    /// a query within [`super::Config::default_call_timeout`]).
    Timeout,
    /// Not a name (docs/PROTOCOL.md §7.1: 1 to 64 of `a-z`, `0-9`, `.`,
    /// `_`, `-`, starting with a letter or a digit); the text says why.
    InvalidName(String),
    /// The name is registered already (by another [`super::Name`]).
    NameTaken(String),
    /// Names need a name host: a node whose session is an external
    /// component (docs/PROTOCOL.md §7).
    NotNameHost,
    /// A name host does not join groups (docs/PROTOCOL.md §7.4): use a
    /// client node.
    GroupsOnNameHost,
    /// A query was answered with an error (or bounced by a server).
    Stanza {
        /// The RFC 6120 condition (`service-unavailable`, `item-not-found`,
        /// ...).
        condition: String,
        /// The error's text, if it had one.
        text: Option<String>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "could not connect: {e}"),
            Error::InvalidJid(why) => write!(f, "invalid JID: {why}"),
            Error::QueueFull => f.write_str("the outbound queue is full"),
            Error::Closed => f.write_str("the node is closed"),
            Error::Encode(why) => write!(f, "cannot encode: {why}"),
            Error::InvalidGroup(why) => write!(f, "invalid group name: {why}"),
            Error::NotJoined(group) => write!(f, "not in group {group:?}"),
            Error::JoinFailed(condition) => write!(f, "join failed: {condition}"),
            Error::Timeout => f.write_str("timeout"),
            Error::InvalidName(why) => write!(f, "invalid name: {why}"),
            Error::NameTaken(name) => write!(f, "the name {name:?} is registered already"),
            Error::NotNameHost => {
                f.write_str("not a name host (names need a node connected as a component)")
            }
            Error::GroupsOnNameHost => {
                f.write_str("a name host does not join groups: use a client node")
            }
            Error::Stanza {
                condition,
                text: Some(text),
            } => write!(f, "{condition}: {text}"),
            Error::Stanza {
                condition,
                text: None,
            } => f.write_str(condition),
        }
    }
}

impl std::error::Error for Error {}

/// Why a call returned no result (docs/PROTOCOL.md §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the caller's timeout, or the serving node stopped
    /// the handler at its deadline.
    Timeout,
    /// The serving node has no such method.
    NoMethod(String),
    /// The handler failed: what it raised or returned as an error.
    Crashed(String),
    /// The serving node is at its concurrency limit.
    Busy,
    /// The peer is not there: a server answered with this condition.
    PeerUnavailable(String),
    /// The serving node could not read the arguments (why).
    BadArgs(String),
    /// Another stanza error.
    Stanza {
        /// The RFC 6120 condition (`forbidden`, `jid-malformed`, ...).
        condition: String,
        /// The error's text, if it had one.
        text: Option<String>,
    },
    /// The answer could not be read, or not turned into the type asked for.
    Decode(String),
    /// The node closed before an answer came.
    Closed,
}

impl CallError {
    /// The reason's name: `timeout`, `no_method`, `crashed`, `busy`,
    /// `peer_unavailable`, `bad_args`, `stanza_error`, `decode`, `closed`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout => "timeout",
            CallError::NoMethod(_) => "no_method",
            CallError::Crashed(_) => "crashed",
            CallError::Busy => "busy",
            CallError::PeerUnavailable(_) => "peer_unavailable",
            CallError::BadArgs(_) => "bad_args",
            CallError::Stanza { .. } => "stanza_error",
            CallError::Decode(_) => "decode",
            CallError::Closed => "closed",
        }
    }

    /// The detail that goes with the reason, if any.
    pub fn detail(&self) -> Option<String> {
        match self {
            CallError::Timeout | CallError::Busy | CallError::Closed => None,
            CallError::NoMethod(s)
            | CallError::Crashed(s)
            | CallError::PeerUnavailable(s)
            | CallError::BadArgs(s)
            | CallError::Decode(s) => Some(s.clone()),
            CallError::Stanza { condition, text } => Some(match text {
                Some(t) => format!("{condition}: {t}"),
                None => condition.clone(),
            }),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(d) if !d.is_empty() => write!(f, "{}: {d}", self.kind()),
            _ => f.write_str(self.kind()),
        }
    }
}

impl std::error::Error for CallError {}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The message came back as `<message type='error'>` with this
    /// condition (e.g. `service-unavailable`, `resource-constraint`,
    /// `not-acceptable` from a peer that refused the term).
    Bounced {
        /// The RFC 6120 condition.
        condition: String,
        /// The error's text, if it had one.
        text: Option<String>,
    },
    /// The session lost the stanza (the connection broke and the stream
    /// could not be resumed).
    Session(ConnError),
    /// No receipt before the deadline.
    Timeout,
    /// The node closed first.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Bounced { condition, .. } => f.write_str(condition),
            SendError::Session(e) => write!(f, "session: {e}"),
            SendError::Timeout => f.write_str("timeout"),
            SendError::Closed => f.write_str("closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why a monitored node is considered down (docs/PROTOCOL.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// The first ping bounced, or the peer's session ended and no ping
    /// succeeded within the heartbeat timeout.
    NoConnection,
    /// The peer said goodbye: a clean stop.
    Shutdown,
    /// A heartbeat ping went unanswered (a killed or stopped peer whose
    /// server keeps its session).
    HeartbeatTimeout,
    /// Another incarnation answers at that address: the peer restarted.
    Restarted,
    /// A name host answered that no process holds the name
    /// (docs/PROTOCOL.md §7.3).
    Noproc,
    /// The process holding the name released it, and said how
    /// (docs/PROTOCOL.md §7.3: the goodbye's `exit`).
    Exit(ExitKind),
}

/// How the holder of a name ended (docs/PROTOCOL.md §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitKind {
    /// It released the name on purpose (a dropped [`super::Name`]).
    Normal,
    /// It was shut down.
    Shutdown,
    /// It was killed.
    Killed,
    /// Any other exit (a Rust task that panicked).
    Error,
}

impl ExitKind {
    /// `normal`, `shutdown`, `killed`, `error`: the goodbye's `exit`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitKind::Normal => "normal",
            ExitKind::Shutdown => "shutdown",
            ExitKind::Killed => "killed",
            ExitKind::Error => "error",
        }
    }

    /// The kind an `exit` attribute names; any other value is `Error`.
    pub fn parse(s: &str) -> ExitKind {
        match s {
            "normal" => ExitKind::Normal,
            "shutdown" => ExitKind::Shutdown,
            "killed" => ExitKind::Killed,
            _ => ExitKind::Error,
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DownReason {
    /// `noconnection`, `shutdown`, `heartbeat_timeout`, `restarted`,
    /// `noproc`, and `exit:normal`, `exit:shutdown`, `exit:killed`,
    /// `exit:error` (the BEAM's `{:exit, kind}`).
    pub fn as_str(self) -> &'static str {
        match self {
            DownReason::NoConnection => "noconnection",
            DownReason::Shutdown => "shutdown",
            DownReason::HeartbeatTimeout => "heartbeat_timeout",
            DownReason::Restarted => "restarted",
            DownReason::Noproc => "noproc",
            DownReason::Exit(ExitKind::Normal) => "exit:normal",
            DownReason::Exit(ExitKind::Shutdown) => "exit:shutdown",
            DownReason::Exit(ExitKind::Killed) => "exit:killed",
            DownReason::Exit(ExitKind::Error) => "exit:error",
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a member left a group's list (docs/PROTOCOL.md §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeftReason {
    /// The room sent its unavailable presence: it left (or was removed).
    Left,
    /// The node's heartbeat found it down, for this reason (§5.4).
    Down(DownReason),
}

impl LeftReason {
    /// `left`, or the DOWN reason's name (`heartbeat_timeout`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LeftReason::Left => "left",
            LeftReason::Down(r) => r.as_str(),
        }
    }
}

impl fmt::Display for LeftReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_errors_name_their_kind_and_detail() {
        assert_eq!(CallError::Timeout.to_string(), "timeout");
        assert_eq!(
            CallError::NoMethod("frob".into()).to_string(),
            "no_method: frob"
        );
        assert_eq!(
            CallError::Stanza {
                condition: "forbidden".into(),
                text: Some("no".into())
            }
            .to_string(),
            "stanza_error: forbidden: no"
        );
        assert_eq!(
            CallError::PeerUnavailable("service-unavailable".into()).detail(),
            Some("service-unavailable".into())
        );
        assert_eq!(CallError::Crashed(String::new()).to_string(), "crashed");
        assert_eq!(
            DownReason::HeartbeatTimeout.to_string(),
            "heartbeat_timeout"
        );
        assert_eq!(LeftReason::Left.to_string(), "left");
        assert_eq!(
            LeftReason::Down(DownReason::Restarted).as_str(),
            "restarted"
        );
        assert_eq!(
            Error::JoinFailed("conflict".into()).to_string(),
            "join failed: conflict"
        );
        assert_eq!(
            SendError::Bounced {
                condition: "service-unavailable".into(),
                text: None
            }
            .to_string(),
            "service-unavailable"
        );
    }
}
