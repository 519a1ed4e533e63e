//! Rough single-stanza timings of the pure Rust codec (the real benchmark,
//! against the ProcessOne stack, is `make bench-codec`).
use std::time::Instant;

// The NIF uses mimalloc; time with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use xmpp_bridge::{jid, stanza, xml, Limits};

fn main() {
    let doc = "<message xmlns='jabber:client' from='juliet@example.com/balcony' to='romeo@example.net/orchard' type='chat' id='ktx72v49' xml:lang='en'><body>Art thou not Romeo, and a Montague?</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>";
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(xml::parse(doc.as_bytes(), Limits::default()).unwrap());
    }
    println!(
        "xml::parse      {:.3} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(stanza::decode_bytes(doc.as_bytes(), Limits::default()).unwrap());
    }
    println!(
        "stanza::decode  {:.3} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let s = stanza::decode_bytes(doc.as_bytes(), Limits::default()).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(s.to_bytes().unwrap());
    }
    println!(
        "stanza::encode  {:.3} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(jid::normalize_jid("juliet@example.com/balcony").unwrap());
    }
    println!(
        "normalize_jid   {:.3} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );

    // A file given on the command line (a big stanza, say) is timed too.
    if let Some(path) = std::env::args().nth(1) {
        let doc = std::fs::read(path).expect("readable file");
        let limits = Limits::new(1 << 20, 64);
        let n = 2_000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(xml::parse(&doc, limits).unwrap());
        }
        let per = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "file xml::parse     {:.1} us ({:.0} MB/s)",
            per * 1e6,
            doc.len() as f64 / per / 1e6
        );
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(stanza::decode_bytes(&doc, limits).unwrap());
        }
        let per = t.elapsed().as_secs_f64() / n as f64;
        println!(
            "file stanza::decode {:.1} us ({:.0} MB/s)",
            per * 1e6,
            doc.len() as f64 / per / 1e6
        );
    }
}
