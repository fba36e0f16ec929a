//! Random values from the OS: the secrets endpoints hand out, the one-time IDs of signed
//! assertions. One place, so every caller gets the same source and none rolls its own.

/// `bytes` random bytes from the OS, hex-encoded; `None` when the OS has none to give.
pub fn try_hex(bytes: usize) -> Option<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).ok()?;
    Some(hex::encode(buffer))
}

/// `bytes` random bytes from the OS, hex-encoded, for secrets that cannot do without.
pub fn hex(bytes: usize) -> String {
    try_hex(bytes).expect("the OS random source is available")
}

/// A fresh random secret: 32 bytes, hex-encoded.
pub fn secret() -> String {
    hex(32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_long_and_fresh() {
        assert_eq!(super::secret().len(), 64);
        assert_ne!(super::secret(), super::secret());
        assert_eq!(super::hex(16).len(), 32);
    }
}
