//! Keeps secrets out of everything Goliath prints: log lines (its own and its libraries'),
//! error messages and command output. The configured secrets are registered at start, and
//! every line is scrubbed of them (and of their base64 forms, as in HTTP Basic auth), of
//! passwords in database URLs and libpq key/value strings, and of authorization headers.

use std::sync::{OnceLock, RwLock};

fn registry() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(RwLock::default)
}

/// Shorter values are not scrubbed as such (they would mangle ordinary words).
const MIN_SECRET_LEN: usize = 6;

/// Registers a secret (and its base64 form) to be scrubbed from all output.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    add([secret.to_string(), base64(secret.as_bytes())]);
}

/// Registers `user:secret` as HTTP Basic auth sends it (base64 of the pair).
pub fn register_basic(user: &str, secret: &str) {
    register(secret);
    add([base64(format!("{user}:{secret}").as_bytes())]);
}

fn add(forms: impl IntoIterator<Item = String>) {
    let mut list = registry().write().unwrap_or_else(|p| p.into_inner());
    for form in forms {
        if !list.contains(&form) {
            list.push(form);
        }
    }
    // Longest first, so a secret inside another is not half-replaced.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every secret removed.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for secret in registry().read().unwrap_or_else(|p| p.into_inner()).iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "<redacted>");
        }
    }
    out = scrub_url_passwords(&out);
    out = scrub_after(&out, "password=");
    out = scrub_after(&out, "password = ");
    for header in ["authorization: ", "Authorization: "] {
        out = scrub_after(&out, header);
    }
    out
}

/// `scheme://user:password@host` -> `scheme://user:<redacted>@host`, wherever it appears.
fn scrub_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '/')
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":<redacted>");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces what follows `marker` up to the end of the value (whitespace, `&`, a quote or the
/// line's end).
fn scrub_after(text: &str, marker: &str) -> String {
    if !text.contains(marker) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        // An authorization header's scheme stays readable.
        if marker.to_ascii_lowercase().starts_with("authorization") {
            if let Some(sp) = rest.find(' ') {
                if rest[..sp].chars().all(|c| c.is_ascii_alphabetic()) {
                    out.push_str(&rest[..=sp]);
                    rest = &rest[sp + 1..];
                }
            }
        }
        let end = if marker.to_ascii_lowercase().starts_with("authorization") {
            rest.find(['\r', '\n', '"']).unwrap_or(rest.len())
        } else {
            rest.find(|c: char| c.is_whitespace() || c == '&' || c == '"' || c == '\'')
                .unwrap_or(rest.len())
        };
        if end > 0 {
            out.push_str("<redacted>");
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The first work item id (`wi-<14 digits>-<6 hex>`) a log line names, for structured logs.
pub fn work_item_id_in(line: &str) -> Option<&str> {
    line.match_indices("wi-").find_map(|(at, _)| {
        let id = &line[at..];
        let end = id
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(id.len());
        let id = &id[..end];
        let parts: Vec<&str> = id.split('-').collect();
        (parts.len() == 3 && parts[1].len() == 14 && parts[2].len() >= 6).then_some(id)
    })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_urls_conninfo_and_headers_are_scrubbed() {
        register("tok-ABCDEFG123");
        register_basic("bot@example.com", "jira-token-XYZ");
        let basic = base64(b"bot@example.com:jira-token-XYZ");
        let line = format!(
            "connect postgres://app:hunter22@db:5432/x failed; host=db password=hunter22 \
             user=app; token tok-ABCDEFG123; authorization: Basic {basic}\r\n"
        );
        let clean = scrub(&line);
        for secret in ["hunter22", "tok-ABCDEFG123", &basic, "jira-token-XYZ"] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(
            clean.contains("postgres://app:<redacted>@db:5432/x"),
            "{clean}"
        );
        assert!(clean.contains("authorization: Basic <redacted>"), "{clean}");
        assert_eq!(scrub("nothing secret here"), "nothing secret here");
    }

    #[test]
    fn work_item_ids_are_found_in_log_lines() {
        assert_eq!(
            work_item_id_in("wi-20260314092652-c7d71f: created Jira issue OPS-1"),
            Some("wi-20260314092652-c7d71f")
        );
        assert_eq!(work_item_id_in("job 4 (jira_create_issue) done"), None);
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"f"), "Zg==");
    }
}
