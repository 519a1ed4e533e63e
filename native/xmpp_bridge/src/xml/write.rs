//! The writer: elements to bytes, escaping as it goes, and the tag helpers
//! the stanza encoder writes with.

use super::{Element, Node, MAX_DEPTH_CEILING};
use crate::error::{Error, Result};

impl Element<'_> {
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

/// A start tag being written: attributes are added to it, then it is closed
/// empty or opened for a body.
pub(crate) struct Tag<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Tag<'a> {
    pub(crate) fn open(out: &'a mut Vec<u8>, name: &str) -> Self {
        out.push(b'<');
        out.extend_from_slice(name.as_bytes());
        Tag { out }
    }

    pub(crate) fn attr(&mut self, name: &str, value: &str) -> Result<&mut Self> {
        write_attr(self.out, name, value)?;
        Ok(self)
    }

    pub(crate) fn opt(&mut self, name: &str, value: Option<&str>) -> Result<&mut Self> {
        if let Some(v) = value {
            write_attr(self.out, name, v)?;
        }
        Ok(self)
    }

    pub(crate) fn empty(&mut self) {
        self.out.extend_from_slice(b"/>");
    }

    pub(crate) fn body(&mut self) -> &mut Vec<u8> {
        self.out.push(b'>');
        self.out
    }
}

/// Writes `<name attrs>text</name>`, self-closed when `text` is empty;
/// attributes whose value is `None` are left out.
pub(crate) fn write_text_el(
    out: &mut Vec<u8>,
    name: &str,
    attrs: &[(&str, Option<&str>)],
    text: &str,
) -> Result<()> {
    let mut t = Tag::open(out, name);
    for (n, v) in attrs {
        t.opt(n, *v)?;
    }
    if text.is_empty() {
        t.empty();
    } else {
        escape_text(t.body(), text)?;
        close_tag(out, name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::xml::{parse, Element, Limits};

    #[test]
    fn round_trips_through_the_writer() {
        let src = "<m xmlns='jabber:client' a='&apos;&quot;&amp;'><b>x &lt; y &amp; z</b><e/></m>";
        let el = parse(src.as_bytes(), Limits::default()).unwrap();
        let out = el.to_bytes().unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap(), src);
        assert_eq!(parse(&out, Limits::default()).unwrap(), el);
    }

    #[test]
    fn writer_refuses_unencodable_characters() {
        let el = Element::new("a").with_text("x\u{1}");
        assert_eq!(el.to_bytes(), Err(Error::InvalidXmlChar(1)));
        let el = Element::new("a b");
        assert!(matches!(el.to_bytes(), Err(Error::MalformedXml(_))));
    }
}
