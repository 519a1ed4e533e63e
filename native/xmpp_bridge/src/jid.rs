//! JIDs (RFC 7622), validated and normalised by the `jid` crate.

use crate::error::{Error, Result};

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
    let normalized = crate::stanza::normalize_jid(s)?;
    let j = ::jid::Jid::new(&normalized).map_err(|_| Error::InvalidJid(s.to_owned()))?;
    Ok(JidParts {
        node: j.node().map(|n| n.as_str().to_owned()),
        domain: j.domain().as_str().to_owned(),
        resource: j.resource().map(|r| r.as_str().to_owned()),
    })
}

/// Validates `s` and returns its normalised form.
pub fn normalize(s: &str) -> Result<String> {
    crate::stanza::normalize_jid(s).map(|j| j.into_owned())
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
