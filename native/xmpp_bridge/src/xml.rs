//! A strict, fast parser and writer for the XML subset XMPP allows
//! (RFC 6120 §11): elements, attributes, character data, CDATA sections, the
//! five predefined entities and character references. DTDs, comments and
//! processing instructions are refused, so entity expansion attacks cannot
//! happen. Namespaces are kept the way fast_xml keeps them: `xmlns`
//! declarations are ordinary attributes and prefixed names stay as written.

use crate::error::{Error, Forbidden, Result};
use memchr::{memchr, memmem};
use std::borrow::Cow;

/// Default largest stanza accepted, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;
/// Default deepest element nesting accepted (the stanza itself is depth 1).
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Hard ceiling for the nesting limit: trees are walked recursively when they
/// are turned into terms or written, and dirty schedulers have small stacks.
pub const MAX_DEPTH_CEILING: usize = 256;

/// Text that borrows from the parsed input where it can.
pub type Str<'a> = Cow<'a, str>;

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node<'a> {
    Element(Element<'a>),
    Text(Str<'a>),
}

/// A generic XML element, the shape of fast_xml's `#xmlel{}`. Names, values
/// and text borrow from the input when they hold no entity reference;
/// [`Element::into_owned`] detaches it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element<'a> {
    pub name: Str<'a>,
    pub attrs: Vec<(Str<'a>, Str<'a>)>,
    pub children: Vec<Node<'a>>,
}

impl<'a> Node<'a> {
    pub fn into_owned(self) -> Node<'static> {
        match self {
            Node::Element(e) => Node::Element(e.into_owned()),
            Node::Text(t) => Node::Text(Cow::Owned(t.into_owned())),
        }
    }
}

fn own(s: Str<'_>) -> Str<'static> {
    Cow::Owned(s.into_owned())
}

impl<'a> Element<'a> {
    pub fn new(name: impl Into<Str<'a>>) -> Self {
        Element {
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Element<'static> {
        Element {
            name: own(self.name),
            attrs: self
                .attrs
                .into_iter()
                .map(|(n, v)| (own(n), own(v)))
                .collect(),
            children: self.children.into_iter().map(Node::into_owned).collect(),
        }
    }

    /// Builder: adds an attribute.
    pub fn with_attr(mut self, name: impl Into<Str<'a>>, value: impl Into<Str<'a>>) -> Self {
        self.attrs.push((name.into(), value.into()));
        self
    }

    /// Builder: adds a child element.
    pub fn with_child(mut self, child: Element<'a>) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: adds a text node.
    pub fn with_text(mut self, text: impl Into<Str<'a>>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The value of attribute `name`, sharing the borrowed input.
    pub fn attr_str(&self, name: &str) -> Option<Str<'a>> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// The concatenation of the direct text children.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            if let Node::Text(t) = child {
                out.push_str(t);
            }
        }
        out
    }

    /// Child elements, skipping text.
    pub fn elements(&self) -> impl Iterator<Item = &Element<'a>> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Serialises the element (attributes in single quotes, empty elements
    /// self-closed).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(128);
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Appends the serialised element to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        write_element(self, out, 1)
    }
}

fn write_element(el: &Element<'_>, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH_CEILING {
        return Err(Error::TooDeep(MAX_DEPTH_CEILING));
    }
    check_name(&el.name)?;
    out.push(b'<');
    out.extend_from_slice(el.name.as_bytes());
    for (name, value) in &el.attrs {
        check_name(name)?;
        write_attr(out, name, value)?;
    }
    if el.children.is_empty() {
        out.extend_from_slice(b"/>");
        return Ok(());
    }
    out.push(b'>');
    for child in &el.children {
        match child {
            Node::Element(e) => write_element(e, out, depth + 1)?,
            Node::Text(t) => escape_text(out, t)?,
        }
    }
    close_tag(out, &el.name);
    Ok(())
}

/// Writes ` name='value'` with the value escaped.
pub fn write_attr(out: &mut Vec<u8>, name: &str, value: &str) -> Result<()> {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"='");
    escape_attr(out, value)?;
    out.push(b'\'');
    Ok(())
}

/// Writes `</name>`.
pub fn close_tag(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| {
            !matches!(
                b,
                b' ' | b'\t' | b'\r' | b'\n' | b'<' | b'>' | b'&' | b'\'' | b'"' | b'=' | b'/'
            ) && b >= 0x20
        });
    if ok {
        Ok(())
    } else {
        Err(Error::malformed(format!("invalid XML name {name:?}")))
    }
}

#[inline]
fn bad_control(b: u8) -> bool {
    b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r'
}

/// How the writer treats a byte: 0 copy, 1 escape, 2 refuse (a C0 control
/// XML 1.0 cannot carry), 3 look closer (0xEF may start U+FFFE or U+FFFF).
const fn byte_classes(attr: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 2;
        i += 1;
    }
    t[b'\r' as usize] = 1;
    t[b'\t' as usize] = if attr { 1 } else { 0 };
    t[b'\n' as usize] = if attr { 1 } else { 0 };
    t[b'&' as usize] = 1;
    t[b'<' as usize] = 1;
    t[b'>' as usize] = 1;
    if attr {
        t[b'\'' as usize] = 1;
        t[b'"' as usize] = 1;
    }
    t[0xEF] = 3;
    t
}

static TEXT_CLASSES: [u8; 256] = byte_classes(false);
static ATTR_CLASSES: [u8; 256] = byte_classes(true);

fn escape_for(b: u8) -> &'static [u8] {
    match b {
        b'&' => b"&amp;",
        b'<' => b"&lt;",
        b'>' => b"&gt;",
        b'\'' => b"&apos;",
        b'"' => b"&quot;",
        b'\t' => b"&#9;",
        b'\n' => b"&#10;",
        // A bare CR would be turned into LF by any XML parser.
        _ => b"&#13;",
    }
}

/// One pass over `s`: copies it to `out`, escaping what `classes` says, and
/// refuses characters XML 1.0 cannot carry.
fn escape_into(out: &mut Vec<u8>, s: &str, classes: &[u8; 256]) -> Result<()> {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match classes[b as usize] {
            0 => {}
            1 => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(escape_for(b));
                start = i + 1;
            }
            2 => return Err(Error::InvalidXmlChar(u32::from(b))),
            _ => {
                // EF BF BE / EF BF BF are U+FFFE / U+FFFF.
                if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
                {
                    return Err(Error::InvalidXmlChar(
                        0xFFF0 | u32::from(bytes[i + 2] & 0x0F),
                    ));
                }
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    Ok(())
}

/// Appends `text` escaped for character data.
pub fn escape_text(out: &mut Vec<u8>, text: &str) -> Result<()> {
    escape_into(out, text, &TEXT_CLASSES)
}

/// Appends `value` escaped for a single-quoted attribute.
pub fn escape_attr(out: &mut Vec<u8>, value: &str) -> Result<()> {
    escape_into(out, value, &ATTR_CLASSES)
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest element accepted, in bytes of input.
    pub max_bytes: usize,
    /// Deepest nesting accepted; the root element is depth 1.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl Limits {
    /// Limits with the depth clamped to [`MAX_DEPTH_CEILING`].
    pub fn new(max_bytes: usize, max_depth: usize) -> Self {
        Limits {
            max_bytes,
            max_depth: max_depth.clamp(1, MAX_DEPTH_CEILING),
        }
    }
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
                    loop {
                        match self.b.get(vstart + vlen) {
                            None => return Err(self.eof(&format!("in the start tag <{name}>"))),
                            Some(&b) if b == quote => break,
                            Some(b'<') => {
                                return Err(Error::malformed(format!(
                                    "'<' in the value of attribute {aname} of <{name}>"
                                )))
                            }
                            Some(b'&') => has_ref = true,
                            Some(_) => {}
                        }
                        vlen += 1;
                    }
                    if attrs.iter().any(|(n, _)| n == aname) {
                        return Err(Error::malformed(format!(
                            "duplicate attribute {aname} in <{name}>"
                        )));
                    }
                    let raw = &self.s[vstart..vstart + vlen];
                    let value = if has_ref {
                        unescape(raw)?
                    } else {
                        Cow::Borrowed(raw)
                    };
                    attrs.push((Cow::Borrowed(aname), value));
                    self.pos = vstart + vlen + 1;
                }
            }
        }
    }
}

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
    fn round_trips_through_the_writer() {
        let src = "<m xmlns='jabber:client' a='&apos;&quot;&amp;'><b>x &lt; y &amp; z</b><e/></m>";
        let el = p(src).unwrap();
        let out = el.to_bytes().unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap(), src);
        assert_eq!(parse(&out, Limits::default()).unwrap(), el);
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

    #[test]
    fn writer_refuses_unencodable_characters() {
        let el = Element::new("a").with_text("x\u{1}");
        assert_eq!(el.to_bytes(), Err(Error::InvalidXmlChar(1)));
        let el = Element::new("a b");
        assert!(matches!(el.to_bytes(), Err(Error::MalformedXml(_))));
    }
}
