//! A strict, fast parser and writer for the XML subset XMPP allows
//! (RFC 6120 §11): elements, attributes, character data, CDATA sections, the
//! five predefined entities and character references. DTDs, comments and
//! processing instructions are refused, so entity expansion attacks cannot
//! happen. Namespaces are kept the way fast_xml keeps them: `xmlns`
//! declarations are ordinary attributes and prefixed names stay as written.

mod parse;
mod write;

pub use parse::{check_input, parse, unescape};
pub(crate) use parse::{parse_start_tag, NAME_ENDS};
pub use write::{close_tag, escape_attr, escape_text, write_attr};
pub(crate) use write::{write_text_el, Tag};

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
