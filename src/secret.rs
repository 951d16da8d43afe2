//! Random secrets (session nonces, the built-in simulator's webhook secret) from the operating
//! system's generator.

use std::io::Read;

/// `bytes` random bytes from `/dev/urandom`, hex-encoded.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_the_length_asked_and_never_repeat() {
        let (a, b) = (
            super::random_hex(16).unwrap(),
            super::random_hex(16).unwrap(),
        );
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
