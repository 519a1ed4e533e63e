//! The pure Rust half of xmpp_bridge.
//!
//! Supported today:
//! - [`xml`]: a strict parser and writer for the XML subset XMPP allows
//!   (no DTDs, comments or processing instructions; size and depth limits).
//! - [`stream`]: an incremental parser for XMPP streams fed with chunks split
//!   anywhere.
//! - [`stanza`]: typed messages, presences and IQs with the payloads
//!   supported (delay, chat states, receipts, MUC, roster, disco, ping, stanza
//!   errors, stanza-id/origin-id, XEP-0335 JSON, the term payload); anything
//!   else survives as a generic [`xml::Element`].
//! - [`jid`]: JID parsing and normalisation (RFC 7622, PRECIS).
//! - [`etf`]: Erlang's External Term Format, read defensively (no pids,
//!   refs, funs; sizes checked before allocating), and serde both ways
//!   ([`etf::to_term`], [`etf::from_term`]).
//! - `connection` (feature `net`, on by default): XMPP connections on tokio,
//!   client sessions (c2s) and XEP-0114 external components.
//! - `bus` (feature `net`): a bus node, the peer of Elixir's
//!   `XmppBridge.Bus`: terms to a JID, RPC over IQ, monitors with
//!   heartbeat, confirmed and offline delivery (docs/PROTOCOL.md §5);
//!   groups (§6); names on a name host, a JID for every task (§7).
//!
//! ```
//! use xmpp_bridge::stanza::{self, Payload, Stanza};
//! use xmpp_bridge::{Event, Limits, StreamParser};
//! # fn main() -> Result<(), xmpp_bridge::Error> {
//!
//! let xml = b"<message xmlns='jabber:client' to='Romeo@Example.net' type='chat'>\
//!             <body>Art thou not Romeo?</body><request xmlns='urn:xmpp:receipts'/></message>";
//! if let Stanza::Message(m) = stanza::decode_bytes(xml, Limits::default())? {
//!     assert_eq!(m.to.as_deref(), Some("romeo@example.net")); // normalised
//!     assert!(matches!(m.payloads[0], Payload::ReceiptRequest));
//! }
//!
//! let mut parser = StreamParser::new(Limits::default());
//! parser.feed_with(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
//!     &mut |event, default_ns| {
//!         if let Event::Element(el) = event {
//!             println!("{:?}", stanza::decode(el, default_ns));
//!         }
//!     })?;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

#[cfg(feature = "net")]
pub mod bus;
#[cfg(feature = "net")]
pub mod connection;
pub mod error;
pub mod etf;
pub mod jid;
pub mod ns;
pub mod stanza;
pub mod stream;
pub mod xml;

pub use error::{Error, Result};
pub use stanza::{Iq, Message, Payload, Presence, Stanza};
pub use stream::{Event, StreamParser};
pub use xml::{Element, Limits, Node};
