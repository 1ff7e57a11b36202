//! Encryption at rest for secret access keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;

/// Seals secrets with ChaCha20-Poly1305 under the server's master key.
pub struct SecretCipher {
    cipher: ChaCha20Poly1305,
}

impl SecretCipher {
    /// Builds a cipher from a 32-byte master key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self { cipher: ChaCha20Poly1305::new(Key::from_slice(key)) }
    }

    /// A fresh random master key.
    pub fn generate_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        key
    }

    /// `base64(nonce || ciphertext)`.
    pub fn seal(&self, plaintext: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| anyhow::anyhow!("encrypt secret"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(B64.encode(out))
    }

    /// Reverses [`seal`](Self::seal).
    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let raw = B64.decode(sealed)?;
        anyhow::ensure!(raw.len() > 12, "sealed secret too short");
        let (nonce, body) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| anyhow::anyhow!("decrypt secret: wrong master key?"))?;
        Ok(String::from_utf8(plain)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_hides_plaintext() {
        let c = super::SecretCipher::new(&super::SecretCipher::generate_key());
        let sealed = c.seal("wJalrXUtnFEMI").expect("seal");
        assert!(!sealed.contains("wJalrXUtnFEMI"));
        assert_eq!(c.open(&sealed).expect("open"), "wJalrXUtnFEMI");
    }
}
