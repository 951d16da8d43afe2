//! The admin page's login session: a cookie signed with the admin token, and a CSRF token
//! derived from it for every form. Nothing is stored server-side, so any replica sharing the
//! token accepts the session, and changing the token ends every session.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "goliath_admin";
/// How long a login lasts.
pub const LIFETIME_SECS: i64 = 12 * 3600;

fn mac(key: &str, parts: &[&str]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    for p in parts {
        m.update(p.as_bytes());
        m.update(b"|");
    }
    hex::encode(m.finalize().into_bytes())
}

/// A new session value, `<expires>.<nonce>.<mac>`, valid until `now + LIFETIME_SECS`.
pub fn issue(key: &str, now: i64, nonce: &str) -> String {
    let expires = (now + LIFETIME_SECS).to_string();
    let sig = mac(key, &["session", &expires, nonce]);
    format!("{expires}.{nonce}.{sig}")
}

/// The session's nonce when `value` was issued with `key` and has not expired.
pub fn verify<'a>(key: &str, value: &'a str, now: i64) -> Option<&'a str> {
    let mut parts = value.splitn(3, '.');
    let (expires, nonce, sig) = (parts.next()?, parts.next()?, parts.next()?);
    let expected = mac(key, &["session", expires, nonce]);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return None;
    }
    (expires.parse::<i64>().ok()? > now).then_some(nonce)
}

/// The CSRF token forms of a session carry.
pub fn csrf(key: &str, nonce: &str) -> String {
    mac(key, &["csrf", nonce])
}

/// Whether `given` is the session's CSRF token.
pub fn csrf_ok(key: &str, nonce: &str, given: &str) -> bool {
    bool::from(csrf(key, nonce).as_bytes().ct_eq(given.as_bytes()))
}

/// A fresh random nonce (from the operating system).
pub fn nonce() -> std::io::Result<String> {
    crate::secret::random_hex(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a-long-admin-token-0123";

    #[test]
    fn a_session_holds_until_it_expires_and_only_under_its_key() {
        let value = issue(KEY, 1_000, "abc");
        assert_eq!(verify(KEY, &value, 1_000), Some("abc"));
        assert_eq!(verify(KEY, &value, 1_000 + LIFETIME_SECS), None);
        assert_eq!(verify("another-admin-token-456", &value, 1_000), None);
    }

    #[test]
    fn a_tampered_session_is_refused() {
        let value = issue(KEY, 1_000, "abc");
        let longer = value.replacen(&(1_000 + LIFETIME_SECS).to_string(), "99999999999", 1);
        assert_eq!(verify(KEY, &longer, 1_000), None);
        let other_nonce = value.replacen(".abc.", ".abd.", 1);
        assert_eq!(verify(KEY, &other_nonce, 1_000), None);
        assert_eq!(verify(KEY, "garbage", 1_000), None);
        assert_eq!(verify(KEY, "", 1_000), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let token = csrf(KEY, "abc");
        assert!(csrf_ok(KEY, "abc", &token));
        assert!(!csrf_ok(KEY, "abd", &token));
        assert!(!csrf_ok(KEY, "abc", ""));
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
