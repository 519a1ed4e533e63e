//! Output: one JSON object a line on stdout (events, results), one line
//! of text a diagnostic on stderr.

use crate::convert;
use crate::json::Json;
use std::io::Write;
use xmpp_bridge::bus::{render, Member, Payload, Status};
use xmpp_bridge::etf::Term;

/// The program's name, first on every diagnostic.
pub const NAME: &str = "xmpp-bridge-node";

/// Prints one JSON line on stdout, whole (lines from several tasks do
/// not mix). A closed stdout is not an error: the node goes on.
pub fn line(v: &Json) {
    let mut text = v.to_string();
    text.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints `{"event": name, ...fields}`.
pub fn event(name: &str, fields: Vec<(&str, Json)>) {
    let mut members = vec![("event", Json::str(name))];
    members.extend(fields);
    line(&Json::object(members));
}

/// Prints a diagnostic on stderr.
pub fn diag(text: impl std::fmt::Display) {
    eprintln!("{NAME}: {text}");
}

/// The fields that describe a term: `json` (as [`convert`] writes it),
/// `text` (Elixir syntax, as the message's body) and `etf` (Base64).
pub fn term_fields(t: &Term) -> Vec<(&'static str, Json)> {
    vec![
        ("json", convert::term_to_json(t)),
        ("text", Json::str(render::render(t))),
        ("etf", Json::str(convert::etf_base64(t))),
    ]
}

/// The fields that describe a message's or a broadcast's payload:
/// `payload` (`term` or `json`), then `json`, `text` and `etf` as
/// [`term_fields`] (`json` is the JSON received for a JSON payload).
pub fn payload_fields(payload: &Payload) -> Vec<(&'static str, Json)> {
    match payload {
        Payload::Term(t) => {
            let mut fields = vec![("payload", Json::str("term"))];
            fields.extend(term_fields(t));
            fields
        }
        Payload::Json(v) => {
            let t = payload.to_term();
            vec![
                ("payload", Json::str("json")),
                ("json", Json::from_serde(v)),
                ("text", Json::str(render::render(&t))),
                ("etf", Json::str(convert::etf_base64(&t))),
            ]
        }
    }
}

/// A status as fields: `show` (null for plain available), `text`, and
/// `term`, its value as JSON (null without one; a JSON value as received),
/// plus `etf` for a term.
pub fn status_fields(status: &Status) -> Vec<(&'static str, Json)> {
    let mut fields = vec![
        (
            "show",
            status.show.map_or(Json::Null, |s| Json::str(s.as_str())),
        ),
        ("text", status.text.clone().map_or(Json::Null, Json::str)),
    ];
    match &status.payload {
        None => fields.push(("term", Json::Null)),
        Some(Payload::Term(t)) => {
            fields.push(("term", convert::term_to_json(t)));
            fields.push(("etf", Json::str(convert::etf_base64(t))));
        }
        Some(Payload::Json(v)) => fields.push(("term", Json::from_serde(v))),
    }
    fields
}

/// A group's members as a JSON array: `{"jid":J,"bus":B,"show":S,
/// "text":T,"term":V}` each (see [`status_fields`]), sorted by JID.
pub fn members_json(members: &[Member]) -> Json {
    Json::Array(
        members
            .iter()
            .map(|m| {
                let mut fields = vec![
                    ("jid", Json::str(m.jid.clone())),
                    ("bus", Json::Bool(m.bus)),
                ];
                fields.extend(status_fields(&m.status));
                Json::object(fields)
            })
            .collect(),
    )
}
