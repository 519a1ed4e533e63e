//! Output: one JSON object a line on stdout (events, results), one line
//! of text a diagnostic on stderr.

use crate::convert;
use crate::json::Json;
use std::io::Write;
use xmpp_bridge::bus::render;
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
