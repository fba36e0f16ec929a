//! Random values from the OS: the secrets endpoints hand out, the one-time IDs of signed
//! assertions. One place, so every caller gets the same source and none rolls its own.

/// `bytes` random bytes from the OS, hex-encoded.
pub fn hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random source is available");
    hex::encode(buffer)
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
