//! Identifiers parsed once, where a request enters, and passed on typed: an `AccountId` is 12
//! digits, a `FunctionName` a valid bare name, a `Qualifier` `$LATEST`, a version or an alias.

use std::fmt;

use crate::ApiError;

/// A 12-digit account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

/// A bare function name (1-64 of `[a-zA-Z0-9-_]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionName(String);

/// What a qualified ARN or a `Qualifier` parameter names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `$LATEST`.
    Latest,
    /// A published version number.
    Version(u64),
    /// An alias name.
    Alias(String),
}

impl AccountId {
    /// Parses a 12-digit account id.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ApiError::InvalidParameterValue(format!("Invalid account id: {s}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FunctionName {
    /// Parses a bare function name.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let valid =
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ApiError::invalid(s, "functionName", "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Qualifier {
    /// Parses `$LATEST`, a version number or an alias name.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        crate::names::validate_qualifier(s)?;
        if s == "$LATEST" {
            return Ok(Self::Latest);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u64>()
                .map(Self::Version)
                .map_err(|_| ApiError::InvalidParameterValue(format!("Invalid version: {s}")));
        }
        Ok(Self::Alias(s.to_owned()))
    }

    /// The version a qualifier names directly (`None` for an alias, which must be resolved).
    pub fn version(&self) -> Option<String> {
        match self {
            Self::Latest => Some("$LATEST".to_owned()),
            Self::Version(n) => Some(n.to_string()),
            Self::Alias(_) => None,
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("$LATEST"),
            Self::Version(n) => write!(f, "{n}"),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_parse_once_and_print_back() {
        assert_eq!(AccountId::parse("123456789012").expect("valid").to_string(), "123456789012");
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert!(AccountId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FunctionName::parse("my-fn_1").expect("valid").as_str(), "my-fn_1");
        for bad in ["", "a:b", "arn:aws:lambda", &"x".repeat(65)] {
            assert!(FunctionName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Qualifier::parse("$LATEST").expect("valid"), Qualifier::Latest);
        assert_eq!(Qualifier::parse("7").expect("valid"), Qualifier::Version(7));
        assert_eq!(Qualifier::parse("live").expect("valid"), Qualifier::Alias("live".into()));
        assert!(Qualifier::parse("").is_err() && Qualifier::parse("a/b").is_err());
        assert!(Qualifier::parse("99999999999999999999999").is_err(), "a version that overflows");
        for q in ["$LATEST", "12", "prod"] {
            assert_eq!(Qualifier::parse(q).expect("valid").to_string(), q);
        }
        assert_eq!(Qualifier::Version(3).version().as_deref(), Some("3"));
        assert_eq!(Qualifier::Alias("a".into()).version(), None);
    }
}
