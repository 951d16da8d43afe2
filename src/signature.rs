//! HMAC-SHA256 webhook signatures (PagerDuty V3 `X-PagerDuty-Signature`, Jira `X-Hub-Signature`).
//!
//! Both providers sign the raw request body with a shared secret and send the lowercase hex
//! digest. Comparison is constant time (`Mac::verify_slice`), and several secrets may be active
//! at once so a secret can be rotated without dropping deliveries.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Hex HMAC-SHA256 of `body` under `secret`, as the providers compute it.
pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// True when `digest_hex` is the HMAC of `body` under `secret`. Bad hex is simply no match.
pub fn verify_hex(secret: &str, body: &[u8], digest_hex: &str) -> bool {
    let Ok(digest) = hex::decode(digest_hex) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// Why a signature header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header has no entry of the expected form")]
    Malformed,
    #[error("no signature matches the body under any configured secret")]
    Mismatch,
}

/// Entries of a signature header that are looked at: PagerDuty sends one per active secret
/// (two during a rotation), so more is never legitimate and only costs comparisons.
pub const MAX_ENTRIES: usize = 8;

/// Checks a header made of comma-separated `<prefix><hex>` entries (PagerDuty: `v1=`; Jira:
/// `sha256=`, one entry). Entries without the prefix are skipped, as PagerDuty's own verifier
/// does; at least one entry must match one of `secrets`. The body is hashed once per secret,
/// however many entries there are (each entry is then a constant-time comparison), so a
/// header of many bogus entries costs no more than a valid one.
pub fn verify_header(
    header: Option<&str>,
    prefix: &str,
    secrets: &[String],
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_headers(header.into_iter(), prefix, secrets, body)
}

/// [`verify_header`] over every value of the header (a request may repeat it).
pub fn verify_headers<'a>(
    headers: impl Iterator<Item = &'a str>,
    prefix: &str,
    secrets: &[String],
    body: &[u8],
) -> Result<(), SignatureError> {
    let mut seen_header = false;
    let mut digests: Vec<Vec<u8>> = vec![];
    let mut entries = 0;
    for header in headers.filter(|h| !h.trim().is_empty()) {
        seen_header = true;
        // Tolerate a space after the comma: it is not part of any digest.
        for entry in header
            .split(',')
            .filter_map(|e| e.trim().strip_prefix(prefix))
        {
            entries += 1;
            if digests.len() < MAX_ENTRIES {
                // Bad hex is simply no match.
                digests.push(hex::decode(entry).unwrap_or_default());
            }
        }
    }
    if !seen_header {
        return Err(SignatureError::Missing);
    }
    if entries == 0 {
        return Err(SignatureError::Malformed);
    }
    use subtle::ConstantTimeEq;
    let matched = secrets.iter().any(|secret| {
        let mut mac =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        digests
            .iter()
            .any(|d| bool::from(d.as_slice().ct_eq(expected.as_slice())))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_round_trips_and_rejects_other_secret() {
        let sig = sign_hex("s3cret", b"{}");
        assert!(verify_hex("s3cret", b"{}", &sig));
        assert!(!verify_hex("other", b"{}", &sig));
        let header = format!("v1=deadbeef,v1={sig}");
        assert_eq!(
            verify_header(Some(&header), "v1=", &["s3cret".into()], b"{}"),
            Ok(())
        );
        assert_eq!(
            verify_header(Some("v0=abc"), "v1=", &["s3cret".into()], b"{}"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_header(None, "v1=", &["s3cret".into()], b"{}"),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn every_header_counts_and_entries_past_the_cap_are_ignored() {
        let sig = sign_hex("s3cret", b"{}");
        let secrets = ["s3cret".to_string()];
        let bogus = format!("v1={}", "00".repeat(32));
        let headers = [bogus.as_str(), &format!("v1={sig}")];
        assert_eq!(
            verify_headers(headers.iter().copied(), "v1=", &secrets, b"{}"),
            Ok(()),
            "the second header's entry matches"
        );
        let many = vec![bogus.clone(); 400].join(",") + &format!(",v1={sig}");
        assert_eq!(
            verify_header(Some(&many), "v1=", &secrets, b"{}"),
            Err(SignatureError::Mismatch),
            "only the first {MAX_ENTRIES} entries are looked at"
        );
        let upper = format!("v1={}", sig.to_uppercase());
        assert_eq!(
            verify_header(Some(&upper), "v1=", &secrets, b"{}"),
            Ok(()),
            "hex in either case, as go-pagerduty accepts"
        );
    }
}
