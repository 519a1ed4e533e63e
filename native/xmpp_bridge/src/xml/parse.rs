//! The parser: bytes to elements that borrow from them.

use super::{Element, Limits, Node, Str};
use crate::error::{Error, Forbidden, Result};
use memchr::{memchr, memmem};
use std::borrow::Cow;

#[inline]
fn bad_control(b: u8) -> bool {
    b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r'
}

/// Checks that `input` is UTF-8 without characters XML forbids, and returns
/// it as `&str`.
pub fn check_input(input: &[u8]) -> Result<&str> {
    let s = std::str::from_utf8(input).map_err(|e| Error::InvalidUtf8(e.valid_up_to()))?;
    if input.iter().fold(false, |acc, &b| acc | bad_control(b)) {
        let at = input.iter().position(|&b| bad_control(b)).unwrap_or(0);
        return Err(Error::malformed(format!(
            "control character 0x{:02x} at byte {at}",
            input[at]
        )));
    }
    // U+FFFE and U+FFFF (EF BF BE / EF BF BF) are not XML characters either:
    // accepting them would make stanzas the writer cannot send on.
    let mut from = 0;
    while let Some(i) = memchr(0xEF, &input[from..]) {
        let at = from + i;
        if input.get(at + 1) == Some(&0xBF) && matches!(input.get(at + 2), Some(0xBE | 0xBF)) {
            return Err(Error::malformed(format!(
                "character U+FFF{:X} at byte {at} is not allowed in XML",
                input[at + 2] & 0x0F
            )));
        }
        from = at + 1;
    }
    Ok(s)
}

/// Parses one complete element (optionally preceded by an XML declaration
/// and surrounded by whitespace). The element borrows from `input`.
pub fn parse(input: &[u8], limits: Limits) -> Result<Element<'_>> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLarge(limits.max_bytes));
    }
    let s = check_input(input)?;
    let mut p = Parser::new(s, limits);
    p.skip_ws();
    if p.rest().starts_with(b"<?xml") && p.rest().get(5).is_some_and(|b| b.is_ascii_whitespace()) {
        p.skip_xml_decl()?;
        p.skip_ws();
    }
    let el = p.parse_element()?;
    p.skip_ws();
    if p.pos != p.b.len() {
        return Err(Error::malformed(format!(
            "content after the root element at byte {}",
            p.pos
        )));
    }
    Ok(el)
}

/// A start tag parsed on its own: the stream header.
pub(crate) fn parse_start_tag(s: &str) -> Result<(Str<'_>, Vec<(Str<'_>, Str<'_>)>)> {
    let mut p = Parser::new(s, Limits::default());
    let (name, attrs, _open) = p.start_tag()?;
    Ok((name, attrs))
}

/// Bytes that end an element or attribute name.
pub(crate) static NAME_ENDS: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b" \t\r\n/>=<'\"&";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

pub(crate) struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    limits: Limits,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(s: &'a str, limits: Limits) -> Self {
        Parser {
            s,
            b: s.as_bytes(),
            pos: 0,
            limits,
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.pos..]
    }

    fn eof(&self, what: &str) -> Error {
        Error::malformed(format!("unexpected end of input {what}"))
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.pos < self.b.len() && matches!(self.b[self.pos], b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
        self.pos > start
    }

    fn skip_xml_decl(&mut self) -> Result<()> {
        match memmem::find(self.rest(), b"?>") {
            Some(i) => {
                self.pos += i + 2;
                Ok(())
            }
            None => Err(self.eof("in the XML declaration")),
        }
    }

    /// Parses the element starting at `self.pos` (which must be `<`).
    pub(crate) fn parse_element(&mut self) -> Result<Element<'a>> {
        let mut stack: Vec<Element<'a>> = Vec::new();
        loop {
            if self.pos >= self.b.len() {
                return Err(match stack.last() {
                    Some(top) => self.eof(&format!("inside <{}>", top.name)),
                    None => self.eof("before the root element"),
                });
            }
            if self.b[self.pos] != b'<' {
                if stack.is_empty() {
                    return Err(Error::malformed(format!(
                        "expected '<' at byte {}",
                        self.pos
                    )));
                }
                let start = self.pos;
                let end = match memchr(b'<', self.rest()) {
                    Some(i) => start + i,
                    None => {
                        return Err(self.eof(&format!("inside <{}>", stack[stack.len() - 1].name)))
                    }
                };
                let text = unescape(&self.s[start..end])?;
                push_text(stack.last_mut().expect("non-empty stack"), text);
                self.pos = end;
                continue;
            }
            let finished = match self.b.get(self.pos + 1) {
                None => return Err(self.eof("after '<'")),
                Some(b'/') => {
                    let el = self.end_tag(&mut stack)?;
                    attach(&mut stack, el)
                }
                Some(b'!') => {
                    self.bang(&mut stack)?;
                    None
                }
                Some(b'?') => return Err(Error::ForbiddenXml(Forbidden::ProcessingInstruction)),
                Some(_) => {
                    let (name, attrs, open) = self.start_tag()?;
                    let el = Element {
                        name,
                        attrs,
                        children: Vec::new(),
                    };
                    if stack.len() + 1 > self.limits.max_depth {
                        return Err(Error::TooDeep(self.limits.max_depth));
                    }
                    if open {
                        stack.push(el);
                        None
                    } else {
                        attach(&mut stack, el)
                    }
                }
            };
            if let Some(root) = finished {
                return Ok(root);
            }
        }
    }

    fn end_tag(&mut self, stack: &mut Vec<Element<'a>>) -> Result<Element<'a>> {
        let start = self.pos + 2;
        let gt = memchr(b'>', &self.b[start..]).ok_or_else(|| self.eof("in an end tag"))?;
        let mut name = &self.s[start..start + gt];
        if name.ends_with([' ', '\t', '\r', '\n']) {
            name = name.trim_end_matches([' ', '\t', '\r', '\n']);
        }
        let top = stack.pop().ok_or_else(|| {
            Error::malformed(format!("unexpected end tag </{name}> at byte {}", self.pos))
        })?;
        if top.name != name {
            return Err(Error::malformed(format!(
                "end tag </{name}> does not match <{}>",
                top.name
            )));
        }
        self.pos = start + gt + 1;
        Ok(top)
    }

    fn bang(&mut self, stack: &mut [Element<'a>]) -> Result<()> {
        let rest = self.rest();
        if rest.starts_with(b"<![CDATA[") {
            let body = self.pos + 9;
            let end = memmem::find(&self.b[body..], b"]]>")
                .ok_or_else(|| self.eof("in a CDATA section"))?;
            let top = stack
                .last_mut()
                .ok_or_else(|| Error::malformed("CDATA section outside of an element"))?;
            // An empty CDATA section adds no text node: `<a></a>` has none.
            if end > 0 {
                push_text(top, Cow::Borrowed(&self.s[body..body + end]));
            }
            self.pos = body + end + 3;
            Ok(())
        } else if rest.starts_with(b"<!--") {
            Err(Error::ForbiddenXml(Forbidden::Comment))
        } else if rest.starts_with(b"<!DOCTYPE")
            || rest.starts_with(b"<!ENTITY")
            || rest.starts_with(b"<!ELEMENT")
            || rest.starts_with(b"<!ATTLIST")
        {
            Err(Error::ForbiddenXml(Forbidden::Dtd))
        } else if rest.len() < 9 {
            Err(self.eof("after '<!'"))
        } else {
            Err(Error::malformed(format!(
                "unexpected '<!' at byte {}",
                self.pos
            )))
        }
    }

    fn name(&mut self, what: &str) -> Result<&'a str> {
        let start = self.pos;
        let len = self.b[start..]
            .iter()
            .position(|&b| NAME_ENDS[b as usize])
            .unwrap_or(self.b.len() - start);
        self.pos += len;
        if self.pos == start {
            return Err(if self.pos >= self.b.len() {
                self.eof(&format!("reading {what}"))
            } else {
                Error::malformed(format!("expected {what} at byte {}", self.pos))
            });
        }
        Ok(&self.s[start..self.pos])
    }

    /// Parses `<name attr='v' ...>` or `.../>`; returns whether it stays open.
    #[allow(clippy::type_complexity)]
    fn start_tag(&mut self) -> Result<(Str<'a>, Vec<(Str<'a>, Str<'a>)>, bool)> {
        self.pos += 1;
        let name = self.name("an element name")?;
        let mut attrs: Vec<(Str<'a>, Str<'a>)> = Vec::new();
        loop {
            let had_ws = self.skip_ws();
            match self.b.get(self.pos) {
                None => return Err(self.eof(&format!("in the start tag <{name}>"))),
                Some(b'>') => {
                    self.pos += 1;
                    return Ok((Cow::Borrowed(name), attrs, true));
                }
                Some(b'/') => {
                    if self.b.get(self.pos + 1) == Some(&b'>') {
                        self.pos += 2;
                        return Ok((Cow::Borrowed(name), attrs, false));
                    }
                    return Err(Error::malformed(format!("stray '/' in <{name}>")));
                }
                Some(_) if !had_ws => {
                    return Err(Error::malformed(format!(
                        "expected whitespace before an attribute in <{name}>"
                    )))
                }
                Some(_) => {
                    let aname = self.name("an attribute name")?;
                    self.skip_ws();
                    if self.b.get(self.pos) != Some(&b'=') {
                        return Err(Error::malformed(format!(
                            "attribute {aname} of <{name}> has no value"
                        )));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    let quote = match self.b.get(self.pos) {
                        Some(q @ (b'\'' | b'"')) => *q,
                        None => return Err(self.eof(&format!("in the start tag <{name}>"))),
                        Some(_) => {
                            return Err(Error::malformed(format!(
                                "attribute {aname} of <{name}> is not quoted"
                            )))
                        }
                    };
                    let vstart = self.pos + 1;
                    // Values are short: one scalar pass finds the closing
                    // quote and notes any '&', cheaper than two SIMD scans.
                    let mut vlen = 0;
                    let mut has_ref = false;
                    let mut has_ws = false;
                    loop {
                        let Some(&b) = self.b.get(vstart + vlen) else {
                            return Err(self.eof(&format!("in the start tag <{name}>")));
                        };
                        // One table look-up for the common byte.
                        if ATTR_VALUE_SPECIAL[usize::from(b)] {
                            match b {
                                b if b == quote => break,
                                b'<' => {
                                    return Err(Error::malformed(format!(
                                        "'<' in the value of attribute {aname} of <{name}>"
                                    )))
                                }
                                b'&' => has_ref = true,
                                b'\t' | b'\n' | b'\r' => has_ws = true,
                                // The other quote character.
                                _ => {}
                            }
                        }
                        vlen += 1;
                    }
                    if attrs.iter().any(|(n, _)| n == aname) {
                        return Err(Error::malformed(format!(
                            "duplicate attribute {aname} in <{name}>"
                        )));
                    }
                    let raw = &self.s[vstart..vstart + vlen];
                    let value = attr_value(raw, has_ref, has_ws)?;
                    attrs.push((Cow::Borrowed(aname), value));
                    self.pos = vstart + vlen + 1;
                }
            }
        }
    }
}

/// Bytes an attribute value's scan must look at: the quotes, `<`, `&`,
/// and the whitespace XML 1.0 §3.3.3 turns into spaces.
static ATTR_VALUE_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let special = *b"'\"<&\t\n\r";
    while i < special.len() {
        t[special[i] as usize] = true;
        i += 1;
    }
    t
};

fn push_text<'a>(el: &mut Element<'a>, text: Str<'a>) {
    if let Some(Node::Text(prev)) = el.children.last_mut() {
        prev.to_mut().push_str(&text);
    } else {
        el.children.push(Node::Text(text));
    }
}

/// Attaches a finished element to its parent; returns it when it is the root.
fn attach<'a>(stack: &mut [Element<'a>], el: Element<'a>) -> Option<Element<'a>> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(Node::Element(el));
            None
        }
        None => Some(el),
    }
}

fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// An attribute value as XML 1.0 reads it (§3.3.3, attributes of type
/// CDATA, which is what a parser without a DTD assumes): every literal tab,
/// LF or CR is a space, a CR LF pair one space (line ends are joined first,
/// §2.11); references are replaced after that, so `&#9;`, `&#10;` and
/// `&#13;` keep their characters. Borrows when nothing changes.
fn attr_value(raw: &str, has_ref: bool, has_ws: bool) -> Result<Str<'_>> {
    if !has_ws {
        return if has_ref {
            unescape(raw)
        } else {
            Ok(Cow::Borrowed(raw))
        };
    }
    let mut spaced = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                spaced.push(' ');
            }
            '\t' | '\n' => spaced.push(' '),
            c => spaced.push(c),
        }
    }
    if has_ref {
        Ok(Cow::Owned(unescape(&spaced)?.into_owned()))
    } else {
        Ok(Cow::Owned(spaced))
    }
}

/// Replaces entity and character references; borrows when there are none.
pub fn unescape(raw: &str) -> Result<Str<'_>> {
    let bytes = raw.as_bytes();
    let Some(first) = memchr(b'&', bytes) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    let mut i = first;
    let mut start = 0;
    loop {
        out.push_str(&raw[start..i]);
        let semi = memchr(b';', &bytes[i..])
            .filter(|&j| j <= 12)
            .ok_or_else(|| Error::malformed("'&' not followed by an entity reference"))?;
        let ent = &raw[i + 1..i + semi];
        let c = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ if ent.starts_with('#') => {
                let n = if let Some(hex) = ent.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    ent[1..].parse::<u32>().ok()
                };
                match n.filter(|&n| is_xml_char(n)).and_then(char::from_u32) {
                    Some(c) => c,
                    None => {
                        return Err(Error::malformed(format!(
                            "invalid character reference &{ent};"
                        )))
                    }
                }
            }
            _ if !ent.is_empty()
                && ent
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') =>
            {
                return Err(Error::UndefinedEntity(ent.to_owned()))
            }
            _ => return Err(Error::malformed("'&' not followed by an entity reference")),
        };
        out.push(c);
        start = i + semi + 1;
        match memchr(b'&', &bytes[start..]) {
            Some(j) => i = start + j,
            None => {
                out.push_str(&raw[start..]);
                return Ok(Cow::Owned(out));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Element<'_>> {
        parse(s.as_bytes(), Limits::default())
    }

    #[test]
    fn parses_nested_elements_text_and_attrs() {
        let el = p("<?xml version='1.0'?>\n<a x='1' y=\"&lt;2&gt;\"><b/>t&amp;u<![CDATA[<raw>]]><c>&#x41;&#66;</c></a>").unwrap();
        assert_eq!(el.name, "a");
        assert_eq!(el.attr("y"), Some("<2>"));
        assert_eq!(el.children.len(), 3);
        assert_eq!(el.children[1], Node::Text("t&u<raw>".into()));
        assert_eq!(el.elements().nth(1).unwrap().text(), "AB");
    }

    #[test]
    fn attribute_whitespace_is_normalised_as_xml_1_0_says() {
        let el =
            p("<a x='a\tb\nc\r\nd\re  f' y='&#9;&#10;&#13;' z='&#x9;\t&amp;\n&lt;'/>").unwrap();
        // Literal tab, LF, CR: a space each; CR LF: one space; spaces kept.
        assert_eq!(el.attr("x"), Some("a b c d e  f"));
        // Character references keep their characters.
        assert_eq!(el.attr("y"), Some("\t\n\r"));
        assert_eq!(el.attr("z"), Some("\t & <"));
        // Written back so that a parser reads the same value again.
        let out = el.to_bytes().unwrap();
        let again = p(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(again.attrs, el.attrs);
    }

    #[test]
    fn refuses_forbidden_constructs() {
        let laughs =
            "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><a>&lol2;</a>";
        assert_eq!(p(laughs), Err(Error::ForbiddenXml(Forbidden::Dtd)));
        assert_eq!(
            p("<a><!-- c --></a>"),
            Err(Error::ForbiddenXml(Forbidden::Comment))
        );
        assert_eq!(
            p("<a><?pi x?></a>"),
            Err(Error::ForbiddenXml(Forbidden::ProcessingInstruction))
        );
        assert_eq!(p("<a>&lol;</a>"), Err(Error::UndefinedEntity("lol".into())));
    }

    #[test]
    fn reports_malformed_input() {
        for bad in [
            "<a>",
            "<a></b>",
            "<a x=1/>",
            "<a x='1' x='2'/>",
            "<a/><b/>",
            "text",
            "<a>&#0;</a>",
            "<a x='<'/>",
            "",
            "<",
            "<a b/>",
        ] {
            assert!(
                matches!(p(bad), Err(Error::MalformedXml(_))),
                "{bad}: {:?}",
                p(bad)
            );
        }
        assert_eq!(
            parse(b"<a>\xff</a>", Limits::default()),
            Err(Error::InvalidUtf8(3))
        );
    }

    #[test]
    fn enforces_limits() {
        let deep = "<a>".repeat(10) + &"</a>".repeat(10);
        assert_eq!(
            parse(deep.as_bytes(), Limits::new(1024, 5)),
            Err(Error::TooDeep(5))
        );
        assert!(parse(deep.as_bytes(), Limits::new(1024, 10)).is_ok());
        assert_eq!(
            parse(deep.as_bytes(), Limits::new(20, 64)),
            Err(Error::TooLarge(20))
        );
    }
}
