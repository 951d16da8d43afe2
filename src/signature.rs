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

/// Checks a header made of comma-separated `<prefix><hex>` entries (PagerDuty: `v1=`; Jira:
/// `sha256=`, one entry). Entries without the prefix are skipped, as PagerDuty's own verifier
/// does; at least one entry must match one of `secrets`.
pub fn verify_header(
    header: Option<&str>,
    prefix: &str,
    secrets: &[String],
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let digests: Vec<&str> = header
        .split(',')
        // Tolerate a space after the comma: it is not part of any digest.
        .filter_map(|entry| entry.trim().strip_prefix(prefix))
        .collect();
    if digests.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let matched = digests
        .iter()
        .any(|d| secrets.iter().any(|s| verify_hex(s, body, d)));
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
}
