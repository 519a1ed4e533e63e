//! The program's exit codes (also listed by `--help`).

use xmpp_bridge::bus::CallError;

/// Success: served until a signal, sent, answered, DOWN seen.
pub const OK: i32 = 0;
/// Something unexpected: the session ended by itself, output failed.
pub const FAILURE: i32 = 1;
/// Bad command line: unknown flag, missing value, bad JSON, bad JID.
pub const USAGE: i32 = 2;
/// Could not connect or log in (in time).
pub const CONNECT: i32 = 3;
/// `send`: the message bounced or the session lost it.
pub const SEND_FAILED: i32 = 4;
/// `call`: no answer in time; `send --confirmed`: no receipt in time;
/// `monitor --timeout`: no DOWN in time.
pub const TIMEOUT: i32 = 5;
/// `call`: the node serves no such method.
pub const NO_METHOD: i32 = 6;
/// `call`: the handler crashed (raised, panicked, returned an error).
pub const CRASHED: i32 = 7;
/// `call`: the node is at its concurrency limit.
pub const BUSY: i32 = 8;
/// `call`: the node is not there (its server answered for it).
pub const UNAVAILABLE: i32 = 9;
/// `call`: the node could not read the arguments.
pub const BAD_ARGS: i32 = 10;
/// `call`: another error (a stanza error, an unreadable answer, closed).
pub const CALL_OTHER: i32 = 11;
/// `broadcast`, `members`, `serve --join`: a group could not be joined.
pub const JOIN_FAILED: i32 = 12;
/// `serve`: a second SIGINT/SIGTERM while shutting down.
pub const INTERRUPTED: i32 = 130;

/// The exit code for a call's error.
pub fn for_call_error(e: &CallError) -> i32 {
    match e {
        CallError::Timeout => TIMEOUT,
        CallError::NoMethod(_) => NO_METHOD,
        CallError::Crashed(_) => CRASHED,
        CallError::Busy => BUSY,
        CallError::PeerUnavailable(_) => UNAVAILABLE,
        CallError::BadArgs(_) => BAD_ARGS,
        CallError::Stanza { .. } | CallError::Decode(_) | CallError::Closed => CALL_OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_error_has_its_own_code() {
        let errors = [
            CallError::Timeout,
            CallError::NoMethod("m".into()),
            CallError::Crashed("c".into()),
            CallError::Busy,
            CallError::PeerUnavailable("gone".into()),
            CallError::BadArgs("b".into()),
        ];
        let codes: std::collections::HashSet<i32> = errors.iter().map(for_call_error).collect();
        assert_eq!(codes.len(), errors.len());
        assert!(!codes.contains(&OK) && !codes.contains(&USAGE) && !codes.contains(&FAILURE));
        assert_eq!(for_call_error(&CallError::Closed), CALL_OTHER);
    }
}
