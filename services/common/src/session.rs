//! Temporary credentials for function code, stateless: everything a verifier needs is in the
//! session token, MAC'd with the installation's session key, so no store is written when a
//! sandbox starts and any frontend can check them.
//!
//! - token = base64url(claims JSON) "." base64url(HMAC(key, "token" || claims part))
//! - access key id = "ASIA" + 16 base32 characters of HMAC(key, "access key id" || token MAC), so a
//!   key id only goes with its own token
//! - secret = base64 of HMAC(key, "secret" || access key id), 40 characters
//!
//! Revocation (the function no longer exists) is the verifier's business: see the frontend's auth.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every session access key id (as AWS STS's temporary keys).
pub const ACCESS_KEY_PREFIX: &str = "ASIA";

/// How long minted credentials are valid.
pub const VALIDITY: Duration = Duration::from_secs(12 * 3600);

/// Longest session token accepted (a real one is ~300 bytes; more is not worth decoding).
const MAX_TOKEN_LEN: usize = 4096;

/// Who the credentials speak for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The function's account: the principal of requests signed with the credentials.
    pub account_id: String,
    /// The function's unqualified ARN.
    pub function_arn: String,
    /// The function's execution role as configured.
    pub role: String,
    /// Unix seconds after which the credentials are refused.
    pub expires_at: i64,
}

impl SessionClaims {
    /// The function's name, from its ARN (`None` if the ARN is not a function ARN of `account_id`).
    pub fn function_name(&self) -> Option<&str> {
        let (prefix, name) = self.function_arn.split_once(":function:")?;
        let account = prefix.rsplit(':').next()?;
        (account == self.account_id && !name.is_empty() && !name.contains(':')).then_some(name)
    }
}

/// Temporary credentials as a sandbox gets them.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Unix seconds.
    pub expiration: i64,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not minted with this key, altered, or not a session token at all.
    #[error("The security token included in the request is invalid.")]
    Invalid,
    #[error("The security token included in the request is expired")]
    Expired,
}

/// The session key of an installation, derived from its master key (as the code-URL key is).
pub fn derive_key(master: &[u8; 32]) -> [u8; 32] {
    mac(master, &[b"lamina session credentials"])
}

/// Whether an access key id is a session key id (and so needs a session token).
pub fn is_session_key(access_key_id: &str) -> bool {
    access_key_id.starts_with(ACCESS_KEY_PREFIX)
}

/// Issues credentials for `claims`.
pub fn mint(key: &[u8; 32], claims: &SessionClaims) -> SessionCredentials {
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let body = URL_SAFE_NO_PAD.encode(json);
    let tag = mac(key, &[b"token", body.as_bytes()]);
    let access_key_id = access_key_id(key, &tag);
    let secret_access_key = secret(key, &access_key_id);
    SessionCredentials {
        session_token: format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag)),
        secret_access_key,
        access_key_id,
        expiration: claims.expires_at,
    }
}

/// Checks a key id and token at unix time `now`; gives the claims and the secret the request
/// must have been signed with.
pub fn verify(
    key: &[u8; 32],
    access_key_id: &str,
    session_token: &str,
    now: i64,
) -> Result<(SessionClaims, String), SessionError> {
    if session_token.len() > MAX_TOKEN_LEN || !is_session_key(access_key_id) {
        return Err(SessionError::Invalid);
    }
    let (body, tag) = session_token.split_once('.').ok_or(SessionError::Invalid)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| SessionError::Invalid)?;
    let mut check = HmacSha256::new_from_slice(key).map_err(|_| SessionError::Invalid)?;
    check.update(b"token");
    check.update(body.as_bytes());
    // Constant time.
    check.verify_slice(&tag).map_err(|_| SessionError::Invalid)?;
    let expected_id = self::access_key_id(key, &tag);
    if expected_id != access_key_id {
        return Err(SessionError::Invalid);
    }
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| SessionError::Invalid)?;
    let claims: SessionClaims = serde_json::from_slice(&json).map_err(|_| SessionError::Invalid)?;
    if now >= claims.expires_at {
        return Err(SessionError::Expired);
    }
    Ok((claims, secret(key, access_key_id)))
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else { return [0; 32] };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn access_key_id(key: &[u8; 32], token_mac: &[u8]) -> String {
    let raw = mac(key, &[b"access key id", token_mac]);
    format!("{ACCESS_KEY_PREFIX}{}", base32(&raw[..10]))
}

fn secret(key: &[u8; 32], access_key_id: &str) -> String {
    let raw = mac(key, &[b"secret", access_key_id.as_bytes()]);
    STANDARD.encode(&raw[..30])
}

/// RFC 4648 base32 without padding (10 bytes -> 16 characters).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn claims(expires_at: i64) -> SessionClaims {
        SessionClaims {
            account_id: "123456789012".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:thumbs".into(),
            role: "arn:aws:iam::123456789012:role/r".into(),
            expires_at,
        }
    }

    #[test]
    fn minted_credentials_verify_and_give_back_claims_and_secret() {
        let c = claims(2_000);
        let creds = mint(&KEY, &c);
        assert_eq!(creds.access_key_id.len(), 20);
        assert!(creds.access_key_id.starts_with("ASIA"));
        assert!(creds.access_key_id[4..].bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(creds.secret_access_key.len(), 40);
        assert_eq!(creds.expiration, 2_000);
        let (back, secret) = verify(&KEY, &creds.access_key_id, &creds.session_token, 1_000).expect("valid");
        assert_eq!((back, secret), (c.clone(), creds.secret_access_key.clone()));
        assert_eq!(c.function_name(), Some("thumbs"));
        // Deterministic: the same claims give the same credentials (nothing random to store).
        assert_eq!(mint(&KEY, &c), creds);
        assert!(!format!("{creds:?}").contains(&creds.secret_access_key));
    }

    #[test]
    fn expired_credentials_are_refused_as_expired() {
        let creds = mint(&KEY, &claims(2_000));
        assert_eq!(verify(&KEY, &creds.access_key_id, &creds.session_token, 2_000), Err(SessionError::Expired));
        assert_eq!(verify(&KEY, &creds.access_key_id, &creds.session_token, 5_000), Err(SessionError::Expired));
    }

    #[test]
    fn tampered_tokens_foreign_keys_and_mismatched_ids_are_invalid() {
        let creds = mint(&KEY, &claims(2_000));
        let other = mint(&KEY, &SessionClaims { account_id: "210987654321".into(), ..claims(2_000) });
        // A later expiry or another account written into the claims breaks the MAC.
        let (body, tag) = creds.session_token.split_once('.').expect("two parts");
        let mut json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("b64")).expect("json");
        json["expires_at"] = 9_999.into();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(json.to_string()));
        let invalid = Err(SessionError::Invalid);
        assert_eq!(verify(&KEY, &creds.access_key_id, &forged, 1_000), invalid);
        let mut flipped = creds.session_token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(verify(&KEY, &creds.access_key_id, &flipped, 1_000), invalid);
        // Each key id goes with its own token only.
        assert_eq!(verify(&KEY, &other.access_key_id, &creds.session_token, 1_000), invalid);
        // Another installation's key.
        assert_eq!(verify(&[8; 32], &creds.access_key_id, &creds.session_token, 1_000), invalid);
        for junk in ["", ".", "abc", "abc.def", &"x".repeat(5_000)] {
            assert_eq!(verify(&KEY, &creds.access_key_id, junk, 1_000), invalid, "{junk:.20}");
        }
        assert_eq!(verify(&KEY, "AKLMAAAAAAAAAAAAAAAA", &creds.session_token, 1_000), invalid);
    }

    #[test]
    fn keys_derive_from_the_master_key_and_base32_is_rfc4648() {
        assert_ne!(derive_key(&[1; 32]), derive_key(&[2; 32]));
        assert_eq!(derive_key(&[1; 32]), derive_key(&[1; 32]));
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
    }

    #[test]
    fn function_names_come_only_from_function_arns_of_the_account() {
        let mut c = claims(1);
        c.function_arn = "arn:aws:lambda:us-east-1:999999999999:function:f".into();
        assert_eq!(c.function_name(), None);
        c.function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f:1".into();
        assert_eq!(c.function_name(), None);
        c.function_arn = "nonsense".into();
        assert_eq!(c.function_name(), None);
    }
}
