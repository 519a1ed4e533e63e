//! The pure Rust half of xmpp_bridge.
//!
//! Supported today:
//! - [`xml`]: a strict parser and writer for the XML subset XMPP allows
//!   (no DTDs, comments or processing instructions; size and depth limits).
//! - [`stream`]: an incremental parser for XMPP streams fed with chunks split
//!   anywhere.
//! - [`stanza`]: typed messages, presences and IQs with the payloads the bus
//!   uses (delay, chat states, receipts, MUC, roster, disco, ping, stanza
//!   errors, stanza-id/origin-id, XEP-0335 JSON, the term payload); anything
//!   else survives as a generic [`xml::Element`].
//! - [`jid`]: JID parsing and normalisation (RFC 7622) through the `jid` crate.
#![deny(unsafe_code)]

pub mod error;
pub mod jid;
pub mod ns;
pub mod stanza;
pub mod stream;
pub mod xml;

pub use error::{Error, Result};
pub use stanza::{Iq, Message, Payload, Presence, Stanza};
pub use stream::{Event, StreamParser};
pub use xml::{Element, Limits, Node};
