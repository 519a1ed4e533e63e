//! A streaming parser for an XMPP stream: feed it byte chunks split anywhere
//! (inside a tag, an attribute, a CDATA section or a UTF-8 character) and it
//! hands back the stream header, each complete top-level element, and the
//! stream end.
//!
//! A resumable byte scanner finds where each top-level element ends, so
//! feeding costs O(bytes) however small the chunks are; the complete element
//! is then parsed once by [`crate::xml::parse`].

use crate::error::{Error, Forbidden, Result};
use crate::xml::{self, Element, Limits, Str};
use memchr::{memchr, memchr3, memmem};
use std::borrow::Cow;

/// The namespace of `<stream:stream>`.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// What a chunk of input produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The stream header's attributes (`xmlns`, `xmlns:stream`, `to`, `from`,
    /// `id`, `version`, `xml:lang`, ...).
    Start(Vec<(Str<'a>, Str<'a>)>),
    /// A complete top-level element: a stanza or a stream-level element such
    /// as `<stream:features/>`.
    Element(Element<'a>),
    /// `</stream:stream>`.
    End,
}

impl Event<'_> {
    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Start(attrs) => Event::Start(
                attrs
                    .into_iter()
                    .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
                    .collect(),
            ),
            Event::Element(e) => Event::Element(e.into_owned()),
            Event::End => Event::End,
        }
    }
}

/// Receives each event with the stream's default namespace; the event
/// borrows the parser's buffer, so no copy is made.
pub type Sink<'s> = dyn FnMut(Event<'_>, Option<&str>) + 's;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tags.
    Text,
    /// Just after `<`.
    TagOpen,
    /// Inside a start tag, outside quotes.
    StartTag,
    /// Inside a quoted attribute value.
    Quote(u8),
    /// Inside an end tag.
    EndTag,
    /// After `<!`, deciding what follows.
    Bang,
    /// Inside `<![CDATA[ ... ]]>`; the field is where the content starts.
    CData(usize),
    /// Inside the `<?xml ...?>` declaration.
    XmlDecl,
}

/// Incremental parser state for one XMPP stream.
#[derive(Debug)]
pub struct StreamParser {
    buf: Vec<u8>,
    pos: usize,
    state: State,
    /// 0 before the header, 1 inside the stream, 2 and more inside a stanza.
    depth: usize,
    /// Names of the elements open inside the current stanza, as
    /// (offset from `stanza_start`, length): an end tag is checked against
    /// its start tag as soon as it arrives.
    open: Vec<(usize, usize)>,
    /// Bytes dropped from the front of `buf` so far: the BOM is allowed only
    /// as the very first bytes of the stream.
    dropped: usize,
    tag_start: usize,
    stanza_start: usize,
    header_seen: bool,
    default_ns: Option<String>,
    limits: Limits,
    failed: Option<Error>,
    /// Top-level elements the current call may still hand out; scanning
    /// stops (the rest waits in `buf`) when it reaches zero.
    quota: usize,
    /// The last limited feed stopped with input left to scan.
    stopped: bool,
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            buf: Vec::new(),
            pos: 0,
            state: State::Text,
            depth: 0,
            open: Vec::new(),
            dropped: 0,
            tag_start: 0,
            stanza_start: 0,
            header_seen: false,
            default_ns: None,
            limits,
            failed: None,
            quota: usize::MAX,
            stopped: false,
        }
    }

    /// The default namespace the stream header declared (`jabber:client`,
    /// `jabber:server`, `jabber:component:accept`), once it has been seen.
    pub fn default_ns(&self) -> Option<&str> {
        self.default_ns.as_deref()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Forgets everything, for a stream restart (after STARTTLS or SASL).
    pub fn reset(&mut self) {
        *self = StreamParser::new(self.limits);
    }

    /// Bytes buffered while waiting for the end of an element.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True when a [`StreamParser::feed_limited`] call stopped before the
    /// end of its input: bytes wait that were not looked at yet.
    pub fn has_unscanned(&self) -> bool {
        self.stopped
    }

    /// Feeds a chunk; complete events are appended to `out` (as owned
    /// copies) even when an error follows them. See [`StreamParser::feed_with`].
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event<'static>>) -> Result<()> {
        self.feed_with(chunk, &mut |ev, _ns| out.push(ev.into_owned()))
    }

    /// Feeds a chunk and hands each complete event to `sink`, borrowed from
    /// the buffer. An error is fatal: later calls return
    /// [`Error::ParserFailed`].
    pub fn feed_with(&mut self, chunk: &[u8], sink: &mut Sink<'_>) -> Result<()> {
        self.feed_limited(chunk, usize::MAX, sink).map(|_| ())
    }

    /// Like [`StreamParser::feed_with`], but hands out at most `max`
    /// top-level elements and returns how many it did. Input after the
    /// last one handed out stays buffered, unscanned (see
    /// [`StreamParser::has_unscanned`]); a later call, with more bytes or
    /// with none, goes on from there. This is how a session stops at the
    /// exact stanza where its owner's credit runs out.
    pub fn feed_limited(&mut self, chunk: &[u8], max: usize, sink: &mut Sink<'_>) -> Result<usize> {
        if let Some(e) = &self.failed {
            return Err(Error::ParserFailed(Box::new(e.clone())));
        }
        self.buf.extend_from_slice(chunk);
        self.quota = max;
        self.stopped = false;
        let result = self.scan(sink);
        let handed_out = max - self.quota;
        self.quota = usize::MAX;
        match result {
            Ok(()) => {
                self.compact();
                Ok(handed_out)
            }
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                Err(e)
            }
        }
    }

    fn in_element(&self) -> bool {
        self.depth >= 2 || (self.depth == 1 && self.state != State::Text)
    }

    fn scan(&mut self, out: &mut Sink<'_>) -> Result<()> {
        while self.pos < self.buf.len() {
            if self.quota == 0 {
                self.stopped = true;
                return Ok(());
            }
            match self.state {
                State::Text => {
                    if self.depth >= 2 {
                        match memchr(b'<', &self.buf[self.pos..]) {
                            Some(i) => self.open_tag(self.pos + i),
                            None => self.pos = self.buf.len(),
                        }
                    } else {
                        let b = self.buf[self.pos];
                        match b {
                            b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                            b'<' => self.open_tag(self.pos),
                            // A byte-order mark may precede the header.
                            0xEF if self.depth == 0
                                && !self.header_seen
                                && self.dropped + self.pos == 0 =>
                            {
                                if self.buf.len() < 3 {
                                    break;
                                }
                                if &self.buf[..3] != b"\xEF\xBB\xBF" {
                                    return Err(Error::malformed("text before the stream header"));
                                }
                                self.pos += 3;
                            }
                            _ => {
                                return Err(Error::malformed(if self.depth == 0 {
                                    "text before the stream header"
                                } else {
                                    "text between stanzas"
                                }))
                            }
                        }
                    }
                }
                // Before each step that may fail, the bytes up to it count
                // against the size limit, as they do when fed one by one.
                State::TagOpen => {
                    match self.check_size(self.pos + 1).map(|()| self.buf[self.pos])? {
                        b'/' => {
                            self.state = State::EndTag;
                            self.pos += 1;
                        }
                        b'!' => {
                            self.state = State::Bang;
                            self.pos += 1;
                        }
                        b'?' => {
                            if self.depth == 0 && !self.header_seen {
                                self.state = State::XmlDecl;
                                self.pos += 1;
                            } else {
                                return Err(Error::ForbiddenXml(Forbidden::ProcessingInstruction));
                            }
                        }
                        b if xml::NAME_ENDS[b as usize] => {
                            return Err(Error::malformed(format!(
                                "expected an element name after '<', found {:?}",
                                b as char
                            )))
                        }
                        _ => self.state = State::StartTag,
                    }
                }
                State::StartTag => match memchr3(b'>', b'\'', b'"', &self.buf[self.pos..]) {
                    Some(i) => {
                        let at = self.pos + i;
                        let b = self.buf[at];
                        self.pos = at + 1;
                        if b == b'>' {
                            // The whole tag counts before anything else is
                            // checked, however the input was cut.
                            self.check_size(self.pos)?;
                            let open = !(at > self.tag_start + 1 && self.buf[at - 1] == b'/');
                            self.state = State::Text;
                            self.start_tag_done(open, out)?;
                        } else {
                            self.state = State::Quote(b);
                        }
                    }
                    None => self.pos = self.buf.len(),
                },
                State::Quote(q) => match memchr(q, &self.buf[self.pos..]) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.state = State::StartTag;
                    }
                    None => self.pos = self.buf.len(),
                },
                State::EndTag => match memchr(b'>', &self.buf[self.pos..]) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.check_size(self.pos)?;
                        self.state = State::Text;
                        self.end_tag_done(out)?;
                    }
                    None => self.pos = self.buf.len(),
                },
                State::Bang => {
                    let have = &self.buf[self.tag_start..];
                    const CDATA: &[u8] = b"<![CDATA[";
                    if have.len() < CDATA.len() && CDATA.starts_with(have) {
                        break;
                    }
                    // The byte that decides what follows `<!` counts first.
                    let common = have.iter().zip(CDATA).take_while(|(a, b)| a == b).count();
                    self.check_size((self.tag_start + common + 1).min(self.buf.len()))?;
                    if have.starts_with(CDATA) && self.depth >= 2 {
                        let body = self.tag_start + CDATA.len();
                        self.state = State::CData(body);
                        self.pos = body;
                    } else if have.starts_with(b"<!-") {
                        return Err(Error::ForbiddenXml(Forbidden::Comment));
                    } else if have.len() > 2 && have[2].is_ascii_uppercase() {
                        return Err(Error::ForbiddenXml(Forbidden::Dtd));
                    } else {
                        return Err(Error::malformed("unexpected '<!'"));
                    }
                }
                State::CData(body) => {
                    let from = self.pos.saturating_sub(2).max(body);
                    match memmem::find(&self.buf[from..], b"]]>") {
                        Some(i) => {
                            self.pos = from + i + 3;
                            self.state = State::Text;
                        }
                        None => self.pos = self.buf.len(),
                    }
                }
                State::XmlDecl => {
                    let from = self.pos.saturating_sub(1).max(self.tag_start + 2);
                    match memmem::find(&self.buf[from..], b"?>") {
                        Some(i) => {
                            self.pos = from + i + 2;
                            // The declaration counts against the limit
                            // however the input was cut.
                            self.check_size(self.pos)?;
                            self.state = State::Text;
                        }
                        None => self.pos = self.buf.len(),
                    }
                }
            }
            self.check_size(self.pos)?;
        }
        // Everything left belongs to the element being read.
        self.check_size(self.buf.len())
    }

    fn open_tag(&mut self, at: usize) {
        self.tag_start = at;
        if self.depth <= 1 {
            self.stanza_start = at;
        }
        self.pos = at + 1;
        self.state = State::TagOpen;
    }

    /// The element being read, up to byte `upto`, must fit the limit. Bytes
    /// after `pos` may belong to the elements that follow.
    fn check_size(&self, upto: usize) -> Result<()> {
        let start = if self.in_element() {
            self.stanza_start
        } else if self.state != State::Text {
            // A stream header still being read.
            self.tag_start
        } else {
            return Ok(());
        };
        if upto.saturating_sub(start) > self.limits.max_bytes {
            return Err(Error::TooLarge(self.limits.max_bytes));
        }
        Ok(())
    }

    fn start_tag_done(&mut self, open: bool, out: &mut Sink<'_>) -> Result<()> {
        match self.depth {
            0 => {
                let tag = xml::check_input(&self.buf[self.tag_start..self.pos])?;
                let (name, attrs) = xml::parse_start_tag(tag)?;
                check_header(&name, &attrs)?;
                let default_ns = attrs
                    .iter()
                    .find(|(n, _)| n == "xmlns")
                    .map(|(_, v)| v.to_string());
                out(Event::Start(attrs), default_ns.as_deref());
                self.default_ns = default_ns;
                self.header_seen = true;
                if open {
                    self.depth = 1;
                } else {
                    out(Event::End, self.default_ns.as_deref());
                }
                Ok(())
            }
            1 if !open => self.emit(out),
            _ if open => {
                self.depth += 1;
                if self.depth - 1 > self.limits.max_depth {
                    return Err(Error::TooDeep(self.limits.max_depth));
                }
                let name_start = self.tag_start + 1;
                let len = self.buf[name_start..self.pos]
                    .iter()
                    .position(|&b| xml::NAME_ENDS[b as usize])
                    .unwrap_or(self.pos - name_start);
                self.open.push((name_start - self.stanza_start, len));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn end_tag_done(&mut self, out: &mut Sink<'_>) -> Result<()> {
        match self.depth {
            0 => Err(Error::malformed("end tag before the stream header")),
            1 => {
                let tag = &self.buf[self.tag_start + 2..self.pos - 1];
                let name = std::str::from_utf8(tag).unwrap_or("").trim_end();
                if !(name == "stream" || name.ends_with(":stream")) {
                    return Err(Error::malformed(format!(
                        "end tag </{name}> does not close the stream"
                    )));
                }
                self.depth = 0;
                self.header_seen = false;
                out(Event::End, self.default_ns.as_deref());
                Ok(())
            }
            depth => {
                self.check_end_tag()?;
                self.depth -= 1;
                if depth == 2 {
                    self.emit(out)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The end tag just scanned must close the innermost open element.
    fn check_end_tag(&mut self) -> Result<()> {
        let (off, len) = self.open.pop().unwrap_or((0, 0));
        let start = self.stanza_start + off;
        let open = &self.buf[start..start + len];
        let mut end = &self.buf[self.tag_start + 2..self.pos - 1];
        while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = end {
            end = rest;
        }
        if open == end {
            return Ok(());
        }
        Err(Error::malformed(format!(
            "end tag </{}> does not match <{}>",
            String::from_utf8_lossy(end),
            String::from_utf8_lossy(open)
        )))
    }

    fn emit(&mut self, out: &mut Sink<'_>) -> Result<()> {
        let el = xml::parse(&self.buf[self.stanza_start..self.pos], self.limits)?;
        out(Event::Element(el), self.default_ns.as_deref());
        self.quota -= 1;
        Ok(())
    }

    /// Drops consumed bytes, but only once they are at least half the buffer,
    /// so a big element fed in tiny chunks is not moved again and again.
    fn compact(&mut self) {
        let keep = if self.in_element() {
            self.stanza_start
        } else if self.state != State::Text {
            self.tag_start
        } else {
            self.pos
        };
        if keep == self.buf.len() {
            self.buf.clear();
        } else if keep > 0 && keep >= self.buf.len() / 2 {
            self.buf.drain(..keep);
        } else {
            return;
        }
        self.pos -= keep;
        self.dropped += keep;
        self.tag_start = self.tag_start.saturating_sub(keep);
        self.stanza_start = self.stanza_start.saturating_sub(keep);
        if let State::CData(body) = self.state {
            self.state = State::CData(body - keep);
        }
    }
}

fn check_header(name: &str, attrs: &[(Str<'_>, Str<'_>)]) -> Result<()> {
    let (prefix, local) = match name.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, name),
    };
    if local != "stream" {
        return Err(Error::UnknownElement(name.to_owned()));
    }
    let decl = match prefix {
        Some(p) => format!("xmlns:{p}"),
        None => "xmlns".to_owned(),
    };
    match attrs.iter().find(|(n, _)| *n == decl) {
        Some((_, ns)) if ns == NS_STREAMS => Ok(()),
        Some((_, ns)) => Err(Error::BadNamespace(ns.to_string())),
        None => Err(Error::BadNamespace(String::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

    fn feed_all(chunks: &[&[u8]]) -> (Vec<Event<'static>>, Result<()>) {
        let mut p = StreamParser::new(Limits::default());
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = p.feed(c, &mut out) {
                return (out, Err(e));
            }
        }
        (out, Ok(()))
    }

    #[test]
    fn emits_header_stanzas_and_end_for_any_split() {
        let doc = format!(
            "{HEADER}\n<message to='a@b'><body>h\u{e9}llo &amp; <![CDATA[x>y]]> \u{1F600}</body></message> \
             <presence/><iq type='get' id='1' a='>'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"
        );
        let bytes = doc.as_bytes();
        let (whole, r) = feed_all(&[bytes]);
        r.unwrap();
        assert_eq!(whole.len(), 5);
        assert!(
            matches!(&whole[0], Event::Start(a) if a.iter().any(|(n, v)| n == "to" && v == "example.com"))
        );
        assert_eq!(whole[4], Event::End);
        for size in 1..=7 {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            let (events, r) = feed_all(&chunks);
            r.unwrap();
            assert_eq!(events, whole, "chunk size {size}");
        }
    }

    #[test]
    fn a_chunk_with_several_elements_is_checked_element_by_element() {
        let body = "x".repeat(500);
        let stanza = format!("<message><body>{body}</body></message>");
        let doc = format!("{HEADER}{stanza}{stanza}{stanza}");
        let mut p = StreamParser::new(Limits::new(1000, 64));
        let mut out = Vec::new();
        p.feed(doc.as_bytes(), &mut out).unwrap();
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn reports_a_mismatched_end_tag_at_once() {
        let mut p = StreamParser::new(Limits::default());
        let mut out = Vec::new();
        p.feed(HEADER.as_bytes(), &mut out).unwrap();
        let r = p.feed(b"<message><body>x</message>", &mut out);
        assert_eq!(
            r,
            Err(Error::MalformedXml(
                "end tag </message> does not match <body>".into()
            ))
        );
        let mut p = StreamParser::new(Limits::default());
        p.feed(HEADER.as_bytes(), &mut out).unwrap();
        assert!(matches!(
            p.feed(b"<message><<", &mut out),
            Err(Error::MalformedXml(_))
        ));
    }

    #[test]
    fn keeps_the_default_namespace() {
        let mut p = StreamParser::new(Limits::default());
        let mut out = Vec::new();
        p.feed(HEADER.as_bytes(), &mut out).unwrap();
        assert_eq!(p.default_ns(), Some("jabber:client"));
    }

    #[test]
    fn fatal_errors_stop_the_parser_but_keep_earlier_events() {
        let doc = format!("{HEADER}<presence/><message><!-- no --></message>");
        let mut p = StreamParser::new(Limits::default());
        let mut out = Vec::new();
        assert_eq!(
            p.feed(doc.as_bytes(), &mut out),
            Err(Error::ForbiddenXml(Forbidden::Comment))
        );
        assert_eq!(out.len(), 2);
        assert!(matches!(
            p.feed(b"<presence/>", &mut out),
            Err(Error::ParserFailed(_))
        ));
    }

    #[test]
    fn limits_size_and_depth() {
        let mut p = StreamParser::new(Limits::new(300, 64));
        let mut out = Vec::new();
        p.feed(HEADER.as_bytes(), &mut out).unwrap();
        p.feed(b"<message><body>", &mut out).unwrap();
        p.feed(&[b'x'; 200], &mut out).unwrap();
        let r = p.feed(&[b'x'; 200], &mut out);
        assert_eq!(r, Err(Error::TooLarge(300)));

        let mut p = StreamParser::new(Limits::new(10_000, 3));
        p.feed(HEADER.as_bytes(), &mut out).unwrap();
        let r = p.feed(b"<a><b><c><d>", &mut out);
        assert_eq!(r, Err(Error::TooDeep(3)));
    }

    #[test]
    fn refuses_bad_headers_and_dtds() {
        let (_, r) = feed_all(&[b"<stream:stream xmlns:stream='urn:wrong'>"]);
        assert_eq!(r, Err(Error::BadNamespace("urn:wrong".into())));
        let (_, r) = feed_all(&[b"<html>"]);
        assert_eq!(r, Err(Error::UnknownElement("html".into())));
        let (_, r) = feed_all(&[b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>"]);
        assert_eq!(r, Err(Error::ForbiddenXml(Forbidden::Dtd)));
    }

    #[test]
    fn a_limited_feed_stops_at_the_element_and_goes_on_later() {
        let doc = format!(
            "{HEADER}<presence/><message id='1'/><r xmlns='urn:xmpp:sm:3'/><message id='2'/><mess"
        );
        let mut p = StreamParser::new(Limits::default());
        let mut got: Vec<Event<'static>> = Vec::new();
        let mut sink = |ev: Event<'_>, _: Option<&str>| got.push(ev.into_owned());
        assert_eq!(p.feed_limited(doc.as_bytes(), 2, &mut sink).unwrap(), 2);
        assert!(p.has_unscanned());
        assert_eq!(p.feed_limited(b"", 1, &mut sink).unwrap(), 1);
        assert_eq!(p.feed_limited(b"age id='3'/>", 5, &mut sink).unwrap(), 2);
        assert!(!p.has_unscanned());
        let names: Vec<String> = got
            .iter()
            .filter_map(|e| match e {
                Event::Element(el) => Some(format!("{}{}", el.name, el.attr("id").unwrap_or(""))),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["presence", "message1", "r", "message2", "message3"]);
        // A quota of zero hands out nothing, not even the header.
        let mut p = StreamParser::new(Limits::default());
        let mut events = 0;
        assert_eq!(
            p.feed_limited(doc.as_bytes(), 0, &mut |_, _| events += 1)
                .unwrap(),
            0
        );
        assert_eq!(events, 0);
        assert!(p.has_unscanned());
    }

    #[test]
    fn tiny_chunks_of_a_big_stanza_stay_linear() {
        let mut p = StreamParser::new(Limits::default());
        let mut out = Vec::new();
        p.feed(HEADER.as_bytes(), &mut out).unwrap();
        let body = "y".repeat(200_000);
        let stanza = format!("<message><body>{body}</body></message>");
        for c in stanza.as_bytes().chunks(3) {
            p.feed(c, &mut out).unwrap();
        }
        assert_eq!(out.len(), 2);
        assert_eq!(p.buffered(), 0);
    }
}
