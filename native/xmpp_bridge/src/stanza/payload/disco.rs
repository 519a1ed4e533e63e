//! XEP-0030 service discovery: disco#info (identities, features and
//! extensions such as XEP-0128 forms) and disco#items.

use crate::error::Result;
use crate::jid::normalize_jid;
use crate::ns;
use crate::stanza::{child_elements, is_empty, only_attrs, plain_child, XML_LANG};
use crate::xml::{close_tag, Element, Str, Tag};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoInfo<'a> {
    pub node: Option<Str<'a>>,
    pub identities: Vec<DiscoIdentity<'a>>,
    pub features: Vec<Str<'a>>,
    /// Extensions such as XEP-0128 data forms, kept as elements.
    pub extensions: Vec<Element<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoIdentity<'a> {
    pub category: Str<'a>,
    pub type_: Str<'a>,
    pub name: Option<Str<'a>>,
    pub lang: Option<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoItems<'a> {
    pub node: Option<Str<'a>>,
    pub items: Vec<DiscoItem<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoItem<'a> {
    pub jid: Str<'a>,
    pub node: Option<Str<'a>>,
    pub name: Option<Str<'a>>,
}

/// `<query/>` in the disco#info namespace.
pub(super) fn decode_info<'a>(el: &Element<'a>) -> Option<DiscoInfo<'a>> {
    if !(el.name == "query" && only_attrs(el, true, &["node"])) {
        return None;
    }
    let mut d = DiscoInfo {
        node: el.attr_str("node"),
        ..DiscoInfo::default()
    };
    // Children are written back identities first, then features, then
    // extensions: only that order is represented exactly.
    let mut phase = 0;
    for c in child_elements(el)? {
        if plain_child(c, "identity", &["category", "type", "name", XML_LANG])
            && is_empty(c)
            && phase == 0
        {
            d.identities.push(DiscoIdentity {
                category: c.attr_str("category")?,
                type_: c.attr_str("type")?,
                name: c.attr_str("name"),
                lang: c.attr_str(XML_LANG),
            });
        } else if plain_child(c, "feature", &["var"]) && is_empty(c) && phase <= 1 {
            phase = 1;
            d.features.push(c.attr_str("var")?);
        } else if c.attr("xmlns").is_some_and(|n| n != ns::DISCO_INFO) {
            phase = 2;
            d.extensions.push(c.clone());
        } else {
            return None;
        }
    }
    Some(d)
}

/// `<query/>` in the disco#items namespace.
pub(super) fn decode_items<'a>(el: &Element<'a>) -> Option<DiscoItems<'a>> {
    if !(el.name == "query" && only_attrs(el, true, &["node"])) {
        return None;
    }
    let mut d = DiscoItems {
        node: el.attr_str("node"),
        items: Vec::new(),
    };
    for c in child_elements(el)? {
        if !(plain_child(c, "item", &["jid", "node", "name"]) && is_empty(c)) {
            return None;
        }
        d.items.push(DiscoItem {
            jid: normalize_jid(c.attr_str("jid")?).ok()?,
            node: c.attr_str("node"),
            name: c.attr_str("name"),
        });
    }
    Some(d)
}

impl DiscoInfo<'_> {
    pub(super) fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "query");
        t.attr("xmlns", ns::DISCO_INFO)?
            .opt("node", self.node.as_deref())?;
        if self.identities.is_empty() && self.features.is_empty() && self.extensions.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.identities {
            Tag::open(out, "identity")
                .attr("category", &i.category)?
                .attr("type", &i.type_)?
                .opt("name", i.name.as_deref())?
                .opt(XML_LANG, i.lang.as_deref())?
                .empty();
        }
        for f in &self.features {
            Tag::open(out, "feature").attr("var", f)?.empty();
        }
        for x in &self.extensions {
            x.write_to(out)?;
        }
        close_tag(out, "query");
        Ok(())
    }
}

impl DiscoItems<'_> {
    pub(super) fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut t = Tag::open(out, "query");
        t.attr("xmlns", ns::DISCO_ITEMS)?
            .opt("node", self.node.as_deref())?;
        if self.items.is_empty() {
            t.empty();
            return Ok(());
        }
        let out = t.body();
        for i in &self.items {
            normalize_jid(i.jid.as_ref())?;
            Tag::open(out, "item")
                .attr("jid", &i.jid)?
                .opt("node", i.node.as_deref())?
                .opt("name", i.name.as_deref())?
                .empty();
        }
        close_tag(out, "query");
        Ok(())
    }
}
