//! Temporary credentials handed to each invocation for its function's code: minted with the
//! installation's session key (see `lamina_common::session`), cached per function and minted
//! again well before they expire.

use std::collections::HashMap;
use std::sync::Mutex;

use lamina_common::session::{self, SessionClaims, SessionCredentials};

/// Credentials are minted again once less than this is left (seconds): an hour, plus the longest
/// function timeout, so that a sandbox started with them can take invocations for a while (the
/// host retires a warm sandbox whose credentials would expire within its timeout + 15 minutes).
const REMINT_BELOW_S: i64 = 3600 + 900;

/// Most functions whose credentials are cached (then the cache starts over).
const CACHE_LIMIT: usize = 100_000;

/// Mints and caches session credentials.
pub(crate) struct Minter {
    key: [u8; 32],
    /// By (account, function ARN, role): a changed role gets credentials of its own at once.
    cache: Mutex<HashMap<(String, String, String), SessionCredentials>>,
}

impl Minter {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key, cache: Mutex::default() }
    }

    /// Credentials for the function `function_arn` (unqualified) of `account_id`, valid at least
    /// [`REMINT_BELOW_S`] from `now` (unix seconds).
    pub(crate) fn credentials(&self, account_id: &str, function_arn: &str, role: &str, now: i64) -> SessionCredentials {
        let key = (account_id.to_owned(), function_arn.to_owned(), role.to_owned());
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.get(&key)
            && c.expiration - now >= REMINT_BELOW_S
        {
            return c.clone();
        }
        let validity = i64::try_from(session::VALIDITY.as_secs()).unwrap_or(i64::MAX);
        let claims = SessionClaims {
            account_id: account_id.to_owned(),
            function_arn: function_arn.to_owned(),
            role: role.to_owned(),
            expires_at: now.saturating_add(validity),
        };
        let minted = session::mint(&self.key, &claims);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, minted.clone());
        minted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

    #[test]
    fn credentials_are_reused_until_little_validity_is_left_then_minted_again() {
        let minter = Minter::new([3; 32]);
        let first = minter.credentials("123456789012", ARN, "role", 1_000);
        let (claims, _) =
            session::verify(&[3; 32], &first.access_key_id, &first.session_token, 1_001).expect("verifies");
        assert_eq!((claims.account_id.as_str(), claims.function_arn.as_str()), ("123456789012", ARN));
        assert_eq!(first.expiration, 1_000 + 12 * 3600);
        let later = 1_000 + 12 * 3600 - REMINT_BELOW_S;
        assert_eq!(minter.credentials("123456789012", ARN, "role", later), first);
        let renewed = minter.credentials("123456789012", ARN, "role", later + 1);
        assert_ne!(renewed.access_key_id, first.access_key_id);
        assert_eq!(renewed.expiration, later + 1 + 12 * 3600);
        let other = minter.credentials("123456789012", "arn:aws:lambda:us-east-1:123456789012:function:g", "r", later);
        assert_ne!(other.access_key_id, renewed.access_key_id);
    }
}
