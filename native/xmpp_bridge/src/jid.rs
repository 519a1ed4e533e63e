//! JIDs as RFC 7622 defines them: split at the first `/` and the first
//! `@` before it, each part checked and normalised with the profile the
//! RFC names for it:
//!
//! - localpart: PRECIS UsernameCaseMapped (RFC 8265 §3.3: width mapping,
//!   lower case, NFC, the bidi rule), minus the eight ASCII characters RFC
//!   7622 §3.3.1 keeps out (`"&'/:<>@`);
//! - domainpart: an IP literal, or a domain name mapped and checked by UTS
//!   #46 (IDNA2008 with its STD3 ASCII rules), kept in its Unicode form
//!   (A-labels become U-labels), one trailing dot removed;
//! - resourcepart: PRECIS OpaqueString (RFC 8265 §4.2: non-ASCII spaces
//!   become ASCII spaces, NFC; case and spaces are kept);
//!
//! and each part 1 to 1023 bytes long (RFC 7622 §3.1).
//!
//! The PRECIS tables come from the `precis-profiles` crate, which derives
//! them from a recent Unicode version (so emoji and scripts assigned after
//! Unicode 3.2, which RFC 6122's stringprep refused, pass); UTS #46 from
//! the `idna` crate.

use crate::error::{Error, Result};
use crate::xml::Str;
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use precis_profiles::{OpaqueString, UsernameCaseMapped};
use std::borrow::Cow;
use std::fmt;

/// Longest part, in bytes of UTF-8 (RFC 7622 §3.1).
pub const MAX_PART_BYTES: usize = 1023;

/// The parts of a JID, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JidParts {
    pub node: Option<String>,
    pub domain: String,
    pub resource: Option<String>,
}

/// The part of a JID that made it invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JidPart {
    Localpart,
    Domainpart,
    Resourcepart,
}

impl JidPart {
    pub fn as_str(self) -> &'static str {
        match self {
            JidPart::Localpart => "localpart",
            JidPart::Domainpart => "domainpart",
            JidPart::Resourcepart => "resourcepart",
        }
    }
}

impl fmt::Display for JidPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JID's parts as written, not yet checked.
struct Split<'a> {
    local: Option<&'a str>,
    domain: &'a str,
    resource: Option<&'a str>,
}

/// RFC 7622 §3.1: the resourcepart is everything after the first `/` (it
/// may hold `@` and `/`); the localpart is what comes before the first `@`
/// of the rest. An empty localpart or resourcepart is an error of that
/// part, as is an empty domainpart.
fn split(s: &str) -> std::result::Result<Split<'_>, JidPart> {
    let (bare, resource) = match s.split_once('/') {
        Some((_, "")) => return Err(JidPart::Resourcepart),
        Some((bare, r)) => (bare, Some(r)),
        None => (s, None),
    };
    let (local, domain) = match bare.split_once('@') {
        Some(("", _)) => return Err(JidPart::Localpart),
        Some((l, d)) => (Some(l), d),
        None => (None, bare),
    };
    // One trailing dot is not part of the domain (RFC 7622 §3.2).
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(JidPart::Domainpart);
    }
    Ok(Split {
        local,
        domain,
        resource,
    })
}

fn invalid(s: &str, part: JidPart) -> Error {
    Error::InvalidJid {
        jid: s.to_owned(),
        part,
    }
}

fn check_len(part: Cow<'_, str>, which: JidPart) -> std::result::Result<Cow<'_, str>, JidPart> {
    if part.is_empty() || part.len() > MAX_PART_BYTES {
        Err(which)
    } else {
        Ok(part)
    }
}

/// The eight ASCII characters RFC 7622 §3.3.1 forbids in a localpart on
/// top of what UsernameCaseMapped forbids.
fn is_localpart_excluded(c: char) -> bool {
    matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
}

fn localpart(s: &str) -> std::result::Result<Cow<'_, str>, JidPart> {
    let out = UsernameCaseMapped::enforce(s).map_err(|_| JidPart::Localpart)?;
    if out.contains(is_localpart_excluded) {
        return Err(JidPart::Localpart);
    }
    check_len(out, JidPart::Localpart)
}

/// UTS #46 ToUnicode with the STD3 ASCII rules and hyphen checks.
fn uts46(s: &str) -> (Cow<'_, str>, std::result::Result<(), idna::Errors>) {
    idna::uts46::Uts46::new().to_unicode(
        s.as_bytes(),
        idna::uts46::AsciiDenyList::STD3,
        idna::uts46::Hyphens::CheckFirstLast,
    )
}

fn domainpart(s: &str) -> std::result::Result<Cow<'_, str>, JidPart> {
    // An IPv6 literal in brackets, as in a URI; kept as written (RFC 7622
    // §3.2 does not map it).
    if let Some(inner) = s.strip_prefix('[') {
        return match inner.strip_suffix(']') {
            Some(addr) if addr.parse::<std::net::Ipv6Addr>().is_ok() => Ok(Cow::Borrowed(s)),
            _ => Err(JidPart::Domainpart),
        };
    }
    let (out, result) = uts46(s);
    // UTS #46 lets empty labels through; a JID domain has none.
    if result.is_err() || out.split('.').any(str::is_empty) {
        return Err(JidPart::Domainpart);
    }
    // What comes out must come out again unchanged: an A-label can decode
    // to a label that is not valid input (`xn--xn--...` gives a U-label
    // that starts with `xn--`). Only a non-ASCII result or one that still
    // has an A-label can be unstable.
    if !out.is_ascii() || out.contains("xn--") {
        let (again, result) = uts46(&out);
        if result.is_err() || again != out {
            return Err(JidPart::Domainpart);
        }
    }
    check_len(out, JidPart::Domainpart)
}

fn resourcepart(s: &str) -> std::result::Result<Cow<'_, str>, JidPart> {
    let out = OpaqueString::enforce(s).map_err(|_| JidPart::Resourcepart)?;
    check_len(out, JidPart::Resourcepart)
}

/// The normalised parts of `s`, or the part that is invalid.
fn normalize_parts(s: &str) -> std::result::Result<[Option<Cow<'_, str>>; 3], JidPart> {
    let parts = split(s)?;
    let local = parts.local.map(localpart).transpose()?;
    let domain = domainpart(parts.domain)?;
    let resource = parts.resource.map(resourcepart).transpose()?;
    Ok([local, Some(domain), resource])
}

/// Parses and normalises `s` into its parts.
pub fn parse(s: &str) -> Result<JidParts> {
    let [local, domain, resource] = if is_plain_normalized_jid(s) {
        let p = split(s).map_err(|part| invalid(s, part))?;
        [
            p.local.map(Cow::Borrowed),
            Some(Cow::Borrowed(p.domain)),
            p.resource.map(Cow::Borrowed),
        ]
    } else {
        normalize_parts(s).map_err(|part| invalid(s, part))?
    };
    Ok(JidParts {
        node: local.map(Cow::into_owned),
        domain: domain.map(Cow::into_owned).unwrap_or_default(),
        resource: resource.map(Cow::into_owned),
    })
}

/// Validates `s` and returns its normalised form.
pub fn normalize(s: &str) -> Result<String> {
    normalize_jid(s).map(Cow::into_owned)
}

/// Validates and normalises a JID. A JID that is plainly normalised
/// already (lowercase ASCII localpart and domain, printable ASCII
/// resource) is returned as it is, without a trip through the profiles.
pub fn normalize_jid<'a>(s: impl Into<Str<'a>>) -> Result<Str<'a>> {
    let s = s.into();
    if is_plain_normalized_jid(&s) {
        return Ok(s);
    }
    normalize_with_profiles(&s).map(Cow::Owned)
}

/// [`normalize`] without the ASCII fast path: every part through its
/// profile. For the fuzz target that checks the two agree.
#[doc(hidden)]
pub fn normalize_with_profiles(s: &str) -> Result<String> {
    let [local, domain, resource] = normalize_parts(s).map_err(|part| invalid(s, part))?;
    Ok(join(
        local.as_deref(),
        domain.as_deref().unwrap_or_default(),
        resource.as_deref(),
    ))
}

fn join(local: Option<&str>, domain: &str, resource: Option<&str>) -> String {
    let mut out = String::with_capacity(
        local.map_or(0, |l| l.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1),
    );
    if let Some(l) = local {
        out.push_str(l);
        out.push('@');
    }
    out.push_str(domain);
    if let Some(r) = resource {
        out.push('/');
        out.push_str(r);
    }
    out
}

/// True for `node@domain/resource` made only of characters that every
/// profile maps to themselves: node `[a-z0-9._-]`, domain labels
/// `[a-z0-9-]` not starting or ending with `-`, resource printable ASCII.
fn is_plain_normalized_jid(s: &str) -> bool {
    let b = s.as_bytes();
    let slash = memchr::memchr(b'/', b).unwrap_or(b.len());
    let (bare, resource) = (&b[..slash], b.get(slash + 1..));
    let at = memchr::memchr(b'@', bare);
    let domain = match at {
        Some(i) => {
            let node = &bare[..i];
            if node.is_empty() || node.len() > MAX_PART_BYTES {
                return false;
            }
            if !node
                .iter()
                .all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            {
                return false;
            }
            &bare[i + 1..]
        }
        None => bare,
    };
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    let mut label_len = 0;
    let mut prev = b'.';
    for &c in domain {
        // "ab--" starts an IDNA-reserved label: leave those to UTS #46.
        if c == b'-' && label_len == 3 && prev == b'-' {
            return false;
        }
        match c {
            b'a'..=b'z' | b'0'..=b'9' => label_len += 1,
            b'-' if prev != b'.' => label_len += 1,
            b'.' if prev != b'.' && prev != b'-' => label_len = 0,
            _ => return false,
        }
        if label_len > 63 {
            return false;
        }
        prev = c;
    }
    if prev == b'.' || prev == b'-' {
        return false;
    }
    match resource {
        None => true,
        Some(r) => {
            !r.is_empty()
                && r.len() <= MAX_PART_BYTES
                && r.iter().all(|c| (0x21..=0x7e).contains(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(s: &str, part: JidPart) {
        assert_eq!(
            normalize(s),
            Err(Error::InvalidJid {
                jid: s.to_owned(),
                part
            }),
            "{s:?}"
        );
        assert!(parse(s).is_err(), "{s:?}");
    }

    /// RFC 7622 §3.5, the valid examples: each with its normalised form.
    #[test]
    fn rfc_7622_valid_examples() {
        for (jid, want) in [
            ("juliet@example.com", "juliet@example.com"),
            ("juliet@example.com/foo", "juliet@example.com/foo"),
            ("juliet@example.com/foo bar", "juliet@example.com/foo bar"),
            ("juliet@example.com/foo@bar", "juliet@example.com/foo@bar"),
            ("foo\\20bar@example.com", "foo\\20bar@example.com"),
            ("fussball@example.com", "fussball@example.com"),
            // UsernameCaseMapped lowercases; it does not fold ß to ss.
            ("fußball@example.com", "fußball@example.com"),
            ("π@example.com", "π@example.com"),
            ("Σ@example.com/foo", "σ@example.com/foo"),
            ("σ@example.com/foo", "σ@example.com/foo"),
            // A final sigma stays itself (stringprep folded it to σ).
            ("ς@example.com/foo", "ς@example.com/foo"),
            ("king@example.com/♚", "king@example.com/♚"),
            ("example.com", "example.com"),
            ("example.com/foobar", "example.com/foobar"),
            ("a.example.com/b@example.net", "a.example.com/b@example.net"),
        ] {
            assert_eq!(normalize(jid).as_deref(), Ok(want), "{jid:?}");
            // Normalising is idempotent.
            assert_eq!(normalize(want).as_deref(), Ok(want), "{want:?}");
        }
    }

    /// RFC 7622 §3.5, the invalid examples, with the part to blame.
    #[test]
    fn rfc_7622_invalid_examples() {
        bad("\"juliet\"@example.com", JidPart::Localpart);
        bad("foo bar@example.com", JidPart::Localpart);
        bad("@example.com/", JidPart::Resourcepart);
        bad("henry\u{2163}@example.com", JidPart::Localpart);
        bad("♚@example.com", JidPart::Localpart);
        bad("juliet@", JidPart::Domainpart);
        bad("/foobar", JidPart::Domainpart);
    }

    /// The one example of §3.5 we read otherwise: the RFC lists
    /// `juliet@example.com/ foo` (leading space) as invalid, but no rule
    /// of OpaqueString, which it names for resourceparts, refuses a space
    /// anywhere; refusing would make us drop what other servers deliver.
    #[test]
    fn a_resource_with_a_leading_space_is_accepted() {
        assert_eq!(
            parse("juliet@example.com/ foo")
                .unwrap()
                .resource
                .as_deref(),
            Some(" foo")
        );
    }

    #[test]
    fn parses_and_normalises() {
        let j = parse("Alice@Example.COM/Phone").unwrap();
        assert_eq!(j.node.as_deref(), Some("alice"));
        assert_eq!(j.domain, "example.com");
        assert_eq!(j.resource.as_deref(), Some("Phone"));
        assert_eq!(normalize("Alice@Example.COM").unwrap(), "alice@example.com");
    }

    #[test]
    fn emoji_symbols_and_mixed_scripts_in_resources_and_nicknames() {
        for (jid, resource) in [
            ("coven@chat.shakespeare.lit/Café ☕", "Café ☕"),
            ("juliet@example.com/📱 Phone", "📱 Phone"),
            ("room@muc.example.com/Ωmega Лиса 狐", "Ωmega Лиса 狐"),
            ("room@muc.example.com/☃ ✈ ♫ ∑", "☃ ✈ ♫ ∑"),
        ] {
            let j = parse(jid).unwrap_or_else(|e| panic!("{jid:?}: {e}"));
            assert_eq!(j.resource.as_deref(), Some(resource), "{jid:?}");
            assert_eq!(normalize(jid).as_deref(), Ok(jid));
        }
        // A non-ASCII space becomes an ASCII space; NFC composes.
        assert_eq!(
            normalize("a@example.com/x\u{00A0}y").as_deref(),
            Ok("a@example.com/x y")
        );
        assert_eq!(
            normalize("a@example.com/Cafe\u{0301}").as_deref(),
            Ok("a@example.com/Café")
        );
        // Control characters are no part of a resource.
        bad("a@example.com/x\u{0007}", JidPart::Resourcepart);
        // A variation selector (U+FE0F, which many emoji keyboards add)
        // is a default-ignorable code point, which PRECIS disallows.
        bad("room@muc.example.com/❤\u{FE0F} fan", JidPart::Resourcepart);
        // PRECIS lets a ZERO WIDTH JOINER stand only after a virama (RFC
        // 5892 A.2), so emoji ZWJ sequences are refused, as RFC 8264 says.
        bad(
            "room@muc.example.com/🏳\u{FE0F}\u{200D}🌈",
            JidPart::Resourcepart,
        );
    }

    #[test]
    fn localparts_are_case_mapped_beyond_ascii() {
        for (jid, want) in [
            ("ÉLODIE@example.com", "élodie@example.com"),
            ("ΑΘΗΝΑ@example.com", "αθηνα@example.com"),
            ("ДМИТРИЙ@example.com", "дмитрий@example.com"),
            // Fullwidth letters map to their ASCII forms.
            ("ＡＢＣ@example.com", "abc@example.com"),
        ] {
            assert_eq!(normalize(jid).as_deref(), Ok(want), "{jid:?}");
        }
        // Emoji and symbols are no part of a localpart.
        bad("😀@example.com", JidPart::Localpart);
    }

    #[test]
    fn domains_per_uts_46() {
        assert_eq!(
            normalize("user@BÜCHER.example").as_deref(),
            Ok("user@bücher.example")
        );
        // An A-label becomes its U-label.
        assert_eq!(
            normalize("user@xn--bcher-kva.example").as_deref(),
            Ok("user@bücher.example")
        );
        assert_eq!(normalize("[::1]").as_deref(), Ok("[::1]"));
        assert_eq!(normalize("a@127.0.0.1/r").as_deref(), Ok("a@127.0.0.1/r"));
        // One trailing dot goes, in parts and string alike.
        let j = parse("a@b./r").unwrap();
        assert_eq!((j.domain.as_str(), j.resource.as_deref()), ("b", Some("r")));
        assert_eq!(normalize("a@example.com.").unwrap(), "a@example.com");
        bad("a@example.com..", JidPart::Domainpart);
        bad("a@ex ample.com", JidPart::Domainpart);
        bad("a@b@c", JidPart::Domainpart);
        bad("a@exa_mple.com", JidPart::Domainpart);
        bad("a@-example.com", JidPart::Domainpart);
        bad("a@[::1", JidPart::Domainpart);
        bad("a@[nope]", JidPart::Domainpart);
        // Found by the fuzzer: an A-label whose U-label is not valid input.
        bad(
            "xn--xn--tlperrolorxamelolperttxn-loxae",
            JidPart::Domainpart,
        );
    }

    #[test]
    fn parts_longer_than_1023_bytes_are_refused() {
        let long = "a".repeat(MAX_PART_BYTES);
        assert!(normalize(&format!("{long}@example.com")).is_ok());
        bad(&format!("{long}a@example.com"), JidPart::Localpart);
        bad(&format!("é{long}@example.com"), JidPart::Localpart);
        assert!(normalize(&format!("a@example.com/{long}")).is_ok());
        bad(&format!("a@example.com/☕{long}"), JidPart::Resourcepart);
    }

    #[test]
    fn structural_errors_name_the_part() {
        bad("", JidPart::Domainpart);
        bad("@example.com", JidPart::Localpart);
        bad("example.com/", JidPart::Resourcepart);
        bad("a b@example.com", JidPart::Localpart);
        bad("a:b@example.com", JidPart::Localpart);
    }

    #[test]
    fn the_plain_fast_path_agrees_with_the_profiles() {
        for jid in [
            "alice@example.com",
            "alice@example.com/phone",
            "a.b_c-d@x-y.example.org/R~!#$%",
            "example.com",
        ] {
            assert!(is_plain_normalized_jid(jid), "{jid}");
            assert_eq!(normalize_with_profiles(jid).as_deref(), Ok(jid));
        }
    }
}
