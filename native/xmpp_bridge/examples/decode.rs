//! Decode a stanza and an XMPP stream with the pure Rust codec:
//! `cargo run -p xmpp_bridge --example decode`.
use xmpp_bridge::stanza::{self, Payload, Stanza};
use xmpp_bridge::{Event, Limits, StreamParser};

fn main() -> Result<(), xmpp_bridge::Error> {
    // One stanza.
    let xml = b"<message xmlns='jabber:client' to='Romeo@Example.net' type='chat'>\
                <body>Art thou not Romeo?</body>\
                <request xmlns='urn:xmpp:receipts'/></message>";
    if let Stanza::Message(m) = stanza::decode_bytes(xml, Limits::default())? {
        println!("to={:?} body={:?}", m.to, m.bodies[0].1);
        assert!(matches!(m.payloads[0], Payload::ReceiptRequest));
        println!(
            "{}",
            String::from_utf8_lossy(&Stanza::Message(m).to_bytes()?)
        );
    }

    // A stream, fed in chunks split anywhere.
    let stream = "<stream:stream xmlns='jabber:client' \
                  xmlns:stream='http://etherx.jabber.org/streams'>\
                  <presence from='juliet@example.com/balcony'><show>away</show></presence>\
                  <iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>";
    let mut parser = StreamParser::new(Limits::default());
    for chunk in stream.as_bytes().chunks(5) {
        parser.feed_with(chunk, &mut |event, default_ns| match event {
            Event::Start(attrs) => println!("stream header with {} attributes", attrs.len()),
            Event::Element(el) => match stanza::decode(el, default_ns) {
                Ok(s) => println!("stanza: {s:?}"),
                Err(e) => println!("could not decode a stanza: {e}"),
            },
            Event::End => println!("stream end"),
        })?;
    }

    // Bad input is an error that names the problem.
    let err = stanza::decode_bytes(b"<message to='a@b@c'/>", Limits::default()).unwrap_err();
    println!("error: {err}");
    Ok(())
}
