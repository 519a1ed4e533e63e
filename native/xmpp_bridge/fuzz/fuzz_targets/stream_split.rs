//! StreamParser fed the same bytes whole and in chunks must hand out the
//! same events (with the same default namespace) and end with the same
//! result.
//!
//! Input layout: `[mode, n, size_1 .. size_n, stream bytes ...]`.
//! - mode bit 0: prefix the stream bytes with an XML declaration and a
//!   `<stream:stream>` header, so stanzas are reached quickly;
//! - mode bits 1-2: max_bytes 64 KiB, 1 KiB, 128 or 32 (small limits put the
//!   size check on chunk boundaries);
//! - mode bit 3: max_depth 32 or 3;
//! - mode bit 4 (with bit 0 and the default limits): also check the body
//!   against xml::parse, which must agree on what one element is;
//! - `n = 1 + byte % 8` chunk sizes follow, used in turn until the input is
//!   consumed; a size of 0 feeds an empty chunk.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use xmpp_bridge::{Error, Event, Limits, StreamParser};

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

type Seen = Vec<(Event<'static>, Option<String>)>;

fn feed(p: &mut StreamParser, chunk: &[u8], seen: &mut Seen) -> Result<(), Error> {
    p.feed_with(chunk, &mut |ev, ns| {
        seen.push((ev.into_owned(), ns.map(str::to_owned)))
    })
}

/// With the header and the default limits, a body that xml::parse takes as
/// one element must come out of the stream as that element, and a body that
/// it refuses must not come out as exactly one complete element.
fn check_against_parse(body: &[u8], seen: &Seen, res: &Result<(), Error>, buffered: usize) {
    let trimmed = body.trim_ascii_start();
    if !trimmed.starts_with(b"<") || trimmed.starts_with(b"<?") {
        return; // an XML declaration is fine for xml::parse, not mid-stream
    }
    let parsed = xmpp_bridge::xml::parse(body, Limits::new(64 * 1024, 32));
    let elements: Vec<_> = seen.iter().skip(1).map(|(e, _)| e).collect();
    match parsed {
        Ok(el) => {
            let el = el.into_owned();
            assert!(
                res.is_ok() && elements == [&Event::Element(el.clone())],
                "xml::parse takes {:?} but the stream gives {res:?} {elements:?}",
                String::from_utf8_lossy(body)
            );
        }
        Err(e) => assert!(
            !(res.is_ok() && buffered == 0 && matches!(elements.as_slice(), [Event::Element(_)])),
            "xml::parse refuses {:?} ({e:?}) but the stream takes it: {elements:?}",
            String::from_utf8_lossy(body)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, n, rest @ ..] = data else {
        return;
    };
    let n = 1 + usize::from(*n % 8);
    if rest.len() < n {
        return;
    }
    let (sizes, body) = rest.split_at(n);
    let max_bytes = [64 * 1024, 1024, 128, 32][usize::from(mode >> 1 & 3)];
    let max_depth = if mode & 8 != 0 { 3 } else { 32 };
    let limits = Limits::new(max_bytes, max_depth);
    let mut input = Vec::with_capacity(HEADER.len() + body.len());
    if mode & 1 != 0 {
        input.extend_from_slice(HEADER);
    }
    input.extend_from_slice(body);

    let mut whole = StreamParser::new(limits);
    let mut whole_seen = Seen::new();
    let whole_res = feed(&mut whole, &input, &mut whole_seen);

    let mut split = StreamParser::new(limits);
    let mut split_seen = Seen::new();
    let mut split_res = Ok(());
    let mut chunks = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    // All sizes 0 would never finish: bound the number of empty feeds.
    let mut empties = 0;
    while pos < input.len() {
        let size = usize::from(sizes[i % n]);
        i += 1;
        if size == 0 {
            empties += 1;
            if empties > 64 {
                break;
            }
        }
        let end = (pos + size).min(input.len());
        chunks.push(end - pos);
        split_res = feed(&mut split, &input[pos..end], &mut split_seen);
        pos = end;
        if let Err(e) = &split_res {
            // A failed parser stays failed.
            let again = split.feed(b"<presence/>", &mut Vec::new());
            assert_eq!(again, Err(Error::ParserFailed(Box::new(e.clone()))));
            break;
        }
    }
    if pos < input.len() && split_res.is_ok() {
        chunks.push(input.len() - pos);
        split_res = feed(&mut split, &input[pos..], &mut split_seen);
    }
    if split_res.is_ok() && whole_res.is_ok() {
        assert_eq!(split.default_ns(), whole.default_ns());
        assert_eq!(
            split.buffered() > 0,
            whole.buffered() > 0,
            "one kept bytes the other dropped"
        );
    }

    if mode & 0x1f == 0x11 {
        check_against_parse(body, &whole_seen, &whole_res, whole.buffered());
    }

    let same = whole_seen == split_seen && whole_res == split_res;
    if !same {
        // Known: the size is checked after each scanning step, and a step
        // can take a whole start tag (after its last quote) at once: fed
        // whole, a header over the limit is taken and another error
        // (TooDeep, a bad '<!') wins; fed in pieces, TooLarge comes first.
        let too_large = |r: &Result<(), Error>| matches!(r, Err(Error::TooLarge(_)));
        if common::skip_known("too_large") && (too_large(&whole_res) || too_large(&split_res)) {
            return;
        }
        // Known: a byte-order mark (or its first byte) is taken at buffer
        // position 0, which compaction can bring back after whitespace.
        if common::skip_known("bom") && input.contains(&0xEF) {
            return;
        }
    }
    assert!(
        same,
        "whole and split feeding differ\nlimits: {limits:?}\ninput: {:?}\nchunks: {chunks:?}\n\
         whole: {whole_res:?} {whole_seen:#?}\nsplit: {split_res:?} {split_seen:#?}",
        String::from_utf8_lossy(&input)
    );
});
