//! JIDs: for every string,
//! - jid::normalize_jid (ASCII fast path, then the RFC 7622 profiles)
//!   agrees with jid::normalize_with_profiles (the profiles alone): the
//!   fast path only takes what the profiles leave as it is;
//! - normalisation is idempotent: normalize(normalize(x)) == normalize(x);
//! - jid::parse accepts exactly what jid::normalize accepts, and its parts
//!   put back together give the normalised form;
//! - no normalised part is empty or longer than 1023 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_bridge::jid as xjid;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let ours = xjid::normalize_jid(s).map(|j| j.into_owned());
    let slow = xjid::normalize_with_profiles(s);
    assert_eq!(ours, slow, "fast path and profiles disagree on {s:?}");

    let normalized = xjid::normalize(s).ok();
    assert_eq!(
        normalized,
        ours.ok(),
        "jid::normalize differs from jid::normalize_jid on {s:?}"
    );

    let parts = xjid::parse(s).ok();
    assert_eq!(
        parts.is_some(),
        normalized.is_some(),
        "parse/normalize disagree on {s:?}"
    );
    if let (Some(p), Some(n)) = (&parts, &normalized) {
        let mut joined = String::new();
        for part in [p.node.as_deref(), Some(p.domain.as_str()), p.resource.as_deref()]
            .into_iter()
            .flatten()
        {
            assert!(
                !part.is_empty() && part.len() <= xjid::MAX_PART_BYTES,
                "part {part:?} of {s:?}"
            );
        }
        if let Some(node) = &p.node {
            joined.push_str(node);
            joined.push('@');
        }
        joined.push_str(&p.domain);
        if let Some(r) = &p.resource {
            joined.push('/');
            joined.push_str(r);
        }
        assert_eq!(&joined, n, "parts of {s:?} do not make its normalised form");
    }

    if let Some(n) = &normalized {
        let twice = xjid::normalize(n);
        assert_eq!(
            twice.as_ref().ok(),
            Some(n),
            "normalisation is not idempotent: {s:?} -> {n:?} -> {twice:?}"
        );
    }
});
