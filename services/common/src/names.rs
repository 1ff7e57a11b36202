//! Function names, ARNs and qualifiers: parsing and model validation.

use std::sync::LazyLock;

use regex::Regex;

use crate::error::{ApiError, violation};

/// The FunctionName pattern as AWS prints it in validation messages.
pub const FUNCTION_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?";
/// Qualifier pattern.
pub const QUALIFIER_PATTERN: &str = r"(|[a-zA-Z0-9$_-]+)";

// `[0-9]`, not `\d`: the regex crate's `\d` is any Unicode digit ("١٢٣٤٥٦٧٨٩٠١٢" would pass as an
// account id), AWS's patterns mean ASCII.
static FUNCTION_NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-[0-9]{1}):)?(?:(?P<account>[0-9]{12}):)?(?:function:)?(?P<name>[a-zA-Z0-9_-]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$",
    )
    .expect("static regex")
});
static QUALIFIER_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9$_-]+$").expect("static regex"));
static ACCOUNT_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9]{12}$").expect("static regex"));

/// A FunctionName as a request gives it: name, partial ARN or ARN, maybe qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// Account named in an ARN form; `None` for a bare name.
    pub account_id: Option<String>,
    /// Region named in a full ARN.
    pub region: Option<String>,
    /// The function's name.
    pub name: String,
    /// Qualifier suffix (`:1`, `:$LATEST`, `:alias`).
    pub qualifier: Option<String>,
}

impl FunctionRef {
    /// Parses and validates a FunctionName request member.
    pub fn parse(raw: &str, member: &str) -> Result<Self, ApiError> {
        if raw.is_empty() {
            return Err(ApiError::invalid(raw, member, "Member must have length greater than or equal to 1"));
        }
        if raw.chars().count() > 140 {
            return Err(ApiError::invalid(raw, member, "Member must have length less than or equal to 140"));
        }
        let Some(caps) = FUNCTION_NAME_RE.captures(raw) else {
            return Err(ApiError::invalid(
                raw,
                member,
                &format!("Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}"),
            ));
        };
        let name = caps["name"].to_owned();
        if name.len() > 64 {
            return Err(ApiError::invalid(raw, member, "Member must have length less than or equal to 64"));
        }
        Ok(Self {
            account_id: caps.name("account").map(|m| m.as_str().to_owned()),
            region: caps.name("region").map(|m| m.as_str().to_owned()),
            name,
            qualifier: caps.name("qualifier").map(|m| m.as_str().to_owned()),
        })
    }

    /// Combines the name's own qualifier with a `Qualifier` parameter; they must agree.
    pub fn effective_qualifier(&self, param: Option<&str>) -> Result<Option<String>, ApiError> {
        if let Some(q) = param {
            validate_qualifier(q)?;
        }
        match (self.qualifier.as_deref(), param) {
            (Some(a), Some(b)) if a != b => Err(ApiError::InvalidParameterValue(
                "The derived qualifier from the function name does not match the specified qualifier.".into(),
            )),
            (Some(a), _) => Ok(Some(a.to_owned())),
            (None, b) => Ok(b.map(str::to_owned)),
        }
    }
}

/// Validates a `Qualifier` query parameter.
pub fn validate_qualifier(q: &str) -> Result<(), ApiError> {
    if q.is_empty() || q.len() > 128 {
        return Err(ApiError::invalid(q, "qualifier", "Member must have length between 1 and 128"));
    }
    if !QUALIFIER_RE.is_match(q) {
        return Err(ApiError::invalid(
            q,
            "qualifier",
            &format!("Member must satisfy regular expression pattern: {QUALIFIER_PATTERN}"),
        ));
    }
    Ok(())
}

/// True for a 12-digit account id.
pub fn is_account_id(s: &str) -> bool {
    ACCOUNT_RE.is_match(s)
}

/// `arn:aws:lambda:<region>:<account>:function:<name>`.
pub fn function_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account_id}:function:{name}")
}

/// Function ARN with `:<qualifier>` appended.
pub fn qualified_arn(region: &str, account_id: &str, name: &str, qualifier: &str) -> String {
    format!("{}:{qualifier}", function_arn(region, account_id, name))
}

/// Accumulates model-constraint violations so one request reports all of them.
#[derive(Default, Debug)]
pub struct Violations(Vec<String>);

impl Violations {
    /// Records one violation.
    pub fn push(&mut self, value: &str, member: &str, constraint: &str) {
        self.0.push(violation(value, member, constraint));
    }

    /// Records a violation whose text is already complete.
    pub fn push_raw(&mut self, text: &str) {
        self.0.push(text.to_owned());
    }

    /// Required member missing.
    pub fn missing(&mut self, member: &str) {
        self.0.push(format!("Value null at '{member}' failed to satisfy constraint: Member must not be null"));
    }

    /// Checks a string's length in characters.
    pub fn length(&mut self, value: &str, member: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            self.push(value, member, &format!("Member must have length greater than or equal to {min}"));
        } else if n > max {
            self.push(value, member, &format!("Member must have length less than or equal to {max}"));
        }
    }

    /// Checks a regex (anchored by the caller) and prints AWS's pattern.
    pub fn pattern(&mut self, value: &str, member: &str, re: &Regex, printed: &str) {
        if !re.is_match(value) {
            self.push(value, member, &format!("Member must satisfy regular expression pattern: {printed}"));
        }
    }

    /// Checks an integer range.
    pub fn range(&mut self, value: i64, member: &str, min: i64, max: i64) {
        if value < min {
            self.push(&value.to_string(), member, &format!("Member must have value greater than or equal to {min}"));
        } else if value > max {
            self.push(&value.to_string(), member, &format!("Member must have value less than or equal to {max}"));
        }
    }

    /// Ends validation: `Err(ValidationException)` if anything was recorded.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_form() {
        let r = FunctionRef::parse("Thumbnail", "functionName").expect("bare");
        assert_eq!((r.account_id, r.name.as_str(), r.qualifier), (None, "Thumbnail", None));
        let r = FunctionRef::parse("123456789012:function:Thumbnail:PROD", "f").expect("partial");
        assert_eq!(r.account_id.as_deref(), Some("123456789012"));
        assert_eq!(r.qualifier.as_deref(), Some("PROD"));
        let r = FunctionRef::parse("123456789012:Thumbnail", "f").expect("guide partial");
        assert_eq!((r.account_id.as_deref(), r.name.as_str()), (Some("123456789012"), "Thumbnail"));
        let r = FunctionRef::parse("arn:aws:lambda:us-west-2:123456789012:function:T:$LATEST", "f").expect("arn");
        assert_eq!(r.region.as_deref(), Some("us-west-2"));
        assert_eq!(r.qualifier.as_deref(), Some("$LATEST"));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "has space", "a/b", &"x".repeat(65), &"x".repeat(141)] {
            let err = FunctionRef::parse(bad, "functionName").expect_err(bad);
            assert_eq!(err.error_type(), "ValidationException", "{bad}");
        }
    }

    /// Found by the `arn_qualifier` fuzz target: Unicode digits passed for account ids and regions.
    #[test]
    fn digits_are_ascii_only() {
        let r = FunctionRef::parse("\u{1e146}333\u{1e146}3000000:f", "functionName");
        assert!(r.is_err(), "{r:?}");
        assert!(FunctionRef::parse("arn:aws:lambda:us-east-\u{0661}:123456789012:function:f", "f").is_err());
        assert!(!is_account_id(
            "\u{0661}\u{0662}\u{0663}\u{0664}\u{0665}\u{0666}\u{0667}\u{0668}\u{0669}\u{0660}\u{0661}\u{0662}"
        ));
        assert!(is_account_id("123456789012"));
    }

    #[test]
    fn qualifier_mismatch_is_ipv() {
        let r = FunctionRef::parse("f:1", "f").expect("parse");
        assert!(r.effective_qualifier(Some("1")).is_ok());
        let err = r.effective_qualifier(Some("2")).expect_err("mismatch");
        assert_eq!(err.error_type(), "InvalidParameterValueException");
    }
}
