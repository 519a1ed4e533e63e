//! JIDs (RFC 7622), validated and normalised by the `jid` crate.

use crate::error::{Error, Result};
use crate::xml::Str;
use std::borrow::Cow;

/// The parts of a JID, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JidParts {
    pub node: Option<String>,
    pub domain: String,
    pub resource: Option<String>,
}

/// Parses and normalises `s` into its parts.
pub fn parse(s: &str) -> Result<JidParts> {
    // Normalised (and checked) first, so that parts and string agree.
    let normalized = normalize_jid(s)?;
    let j = ::jid::Jid::new(&normalized).map_err(|_| Error::InvalidJid(s.to_owned()))?;
    Ok(JidParts {
        node: j.node().map(|n| n.as_str().to_owned()),
        domain: j.domain().as_str().to_owned(),
        resource: j.resource().map(|r| r.as_str().to_owned()),
    })
}

/// Validates `s` and returns its normalised form.
pub fn normalize(s: &str) -> Result<String> {
    normalize_jid(s).map(|j| j.into_owned())
}

/// Validates and normalises a JID (RFC 7622). A JID that is plainly
/// normalised already (lowercase ASCII node and domain, printable ASCII
/// resource) is returned as it is without a trip through stringprep.
pub fn normalize_jid<'a>(s: impl Into<Str<'a>>) -> Result<Str<'a>> {
    let s = s.into();
    if is_plain_normalized_jid(&s) {
        return Ok(s);
    }
    let invalid = || Error::InvalidJid(s.to_string());
    // RFC 7622 §3.2: a trailing dot of the domain is not part of it.
    let input = strip_trailing_dot(&s);
    // One trailing dot is allowed, not two (an empty label).
    let domain_end = input.find('/').unwrap_or(input.len());
    if input[..domain_end].ends_with('.') {
        return Err(invalid());
    }
    let once = ::jid::Jid::new(&input).map_err(|_| invalid())?.into_inner();
    // The stringprep tables predate some characters (U+213B folds to
    // "FAX", which folds again): a JID that is not stable under its own
    // normalisation is refused rather than compared wrongly.
    let twice = ::jid::Jid::new(&once).map_err(|_| invalid())?.into_inner();
    if once != twice {
        return Err(invalid());
    }
    Ok(Cow::Owned(once))
}

/// `node@domain./res` -> `node@domain/res`.
pub fn strip_trailing_dot(s: &str) -> Cow<'_, str> {
    let end = s.find('/').unwrap_or(s.len());
    if end > 1 && s.as_bytes()[end - 1] == b'.' {
        Cow::Owned(format!("{}{}", &s[..end - 1], &s[end..]))
    } else {
        Cow::Borrowed(s)
    }
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
            if node.is_empty() || node.len() > 1023 {
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
        // "ab--" starts an IDNA-reserved label: leave those to the crate.
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
        Some(r) => !r.is_empty() && r.len() <= 1023 && r.iter().all(|c| (0x21..=0x7e).contains(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let j = parse("Alice@Example.COM/Phone").unwrap();
        assert_eq!(j.node.as_deref(), Some("alice"));
        assert_eq!(j.domain, "example.com");
        assert_eq!(j.resource.as_deref(), Some("Phone"));
        assert_eq!(normalize("Alice@Example.COM").unwrap(), "alice@example.com");
    }

    #[test]
    fn fuzz_findings_stay_fixed() {
        // A trailing dot is not part of the domain, in parts and string alike.
        let j = parse("a@b./r").unwrap();
        assert_eq!((j.domain.as_str(), j.resource.as_deref()), ("b", Some("r")));
        assert_eq!(normalize("a@example.com.").unwrap(), "a@example.com");
        // Not stable under its own normalisation (U+213B -> FAX -> fax).
        assert!(normalize("\u{213B}@a").is_err());
        // IDNA-reserved "--" labels are the crate's to judge.
        assert_eq!(
            normalize("x@ab--cd.example").ok(),
            ::jid::Jid::new("x@ab--cd.example")
                .ok()
                .map(|j| j.into_inner())
        );
    }

    #[test]
    fn refuses_invalid_jids() {
        for bad in [
            "",
            "a@b@c",
            "@example.com",
            "example.com/",
            "a b@example.com",
        ] {
            assert_eq!(parse(bad), Err(Error::InvalidJid(bad.to_owned())), "{bad}");
        }
    }
}
