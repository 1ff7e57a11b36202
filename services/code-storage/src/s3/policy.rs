//! Bucket policies: the subset of S3's policy language Lamina accepts, and its evaluation.
//!
//! Glob and principal matching are the Lambda resource policies' ([`lamina_common::policy`]), so the
//! two APIs agree on what `*`, `?`, an account id and `arn:aws:iam::<id>:root` mean.

use lamina_common::policy::{Caller, glob_match, principal_matches};
use serde_json::{Map, Value};

use super::store::BucketMeta;

/// S3's message for anything that is not a JSON object.
pub(crate) const NOT_JSON: &str = "Policies must be valid JSON and the first byte must be '{'";

/// S3 refuses policies above 20 KB.
const MAX_POLICY_BYTES: usize = 20 * 1024;

const ARN_PREFIX: &str = "arn:aws:s3:::";

/// Actions on objects (`arn:aws:s3:::bucket/key`); validation knows S3's names even where Lamina
/// has no operation for them, so a policy written for S3 is accepted.
const OBJECT_ACTIONS: &[&str] = &[
    "GetObject",
    "GetObjectVersion",
    "PutObject",
    "DeleteObject",
    "DeleteObjectVersion",
    "AbortMultipartUpload",
    "ListMultipartUploadParts",
    "GetObjectAcl",
    "GetObjectVersionAcl",
    "PutObjectAcl",
    "PutObjectVersionAcl",
    "GetObjectAttributes",
    "GetObjectVersionAttributes",
    "GetObjectTagging",
    "GetObjectVersionTagging",
    "PutObjectTagging",
    "PutObjectVersionTagging",
    "DeleteObjectTagging",
    "DeleteObjectVersionTagging",
    "GetObjectRetention",
    "PutObjectRetention",
    "GetObjectLegalHold",
    "PutObjectLegalHold",
    "BypassGovernanceRetention",
    "RestoreObject",
    "ReplicateObject",
    "ReplicateDelete",
    "ReplicateTags",
    "ObjectOwnerOverrideToBucketOwner",
];

/// Actions on the bucket itself (`arn:aws:s3:::bucket`).
const BUCKET_ACTIONS: &[&str] = &[
    "ListBucket",
    "ListBucketVersions",
    "ListBucketMultipartUploads",
    "GetBucketLocation",
    "GetBucketVersioning",
    "PutBucketVersioning",
    "GetBucketPolicy",
    "PutBucketPolicy",
    "DeleteBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketNotification",
    "PutBucketNotification",
    "DeleteBucket",
    "GetBucketAcl",
    "PutBucketAcl",
    "GetBucketTagging",
    "PutBucketTagging",
    "GetBucketCORS",
    "PutBucketCORS",
    "GetBucketWebsite",
    "PutBucketWebsite",
    "DeleteBucketWebsite",
    "GetBucketLogging",
    "PutBucketLogging",
    "GetLifecycleConfiguration",
    "PutLifecycleConfiguration",
    "GetEncryptionConfiguration",
    "PutEncryptionConfiguration",
    "GetBucketPublicAccessBlock",
    "PutBucketPublicAccessBlock",
    "GetBucketOwnershipControls",
    "PutBucketOwnershipControls",
    "GetBucketObjectLockConfiguration",
    "PutBucketObjectLockConfiguration",
    "GetReplicationConfiguration",
    "PutReplicationConfiguration",
    "GetBucketRequestPayment",
    "PutBucketRequestPayment",
];

/// One validated statement.
#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    /// `"*"` or `{"AWS": ...}`, as [`principal_matches`] reads it.
    principal: Value,
    /// Lower-cased action patterns (`s3:getobject`, `s3:*`, `*`).
    actions: Vec<String>,
    resources: Vec<String>,
}

/// A parsed, validated bucket policy.
#[derive(Debug, Clone)]
pub(crate) struct BucketPolicy {
    statements: Vec<Statement>,
}

/// The ARN a request addresses: the bucket, or one object in it.
pub(crate) fn arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{ARN_PREFIX}{bucket}/{key}"),
        None => format!("{ARN_PREFIX}{bucket}"),
    }
}

/// Whether `caller` may do `action` (`s3:GetObject`, …) on `resource`: an explicit Deny refuses
/// anyone, the owner is allowed otherwise, and another account needs an Allow.
pub(crate) fn permits(meta: &BucketMeta, caller: &str, action: &str, resource: &str) -> bool {
    let policy = match meta.policy.as_deref().map(|text| BucketPolicy::parse(text, &meta.name)) {
        None => return caller == meta.owner,
        Some(Ok(policy)) => policy,
        Some(Err(reason)) => {
            // Only validated policies are stored; if one no longer parses, grant nothing extra.
            tracing::error!(bucket = meta.name, reason, "stored bucket policy does not parse");
            return caller == meta.owner;
        }
    };
    policy.decides(caller, &meta.owner, action, resource)
}

impl BucketPolicy {
    /// Validates `text` as a policy for `bucket`; Err is the `MalformedPolicy` message.
    pub(crate) fn parse(text: &str, bucket: &str) -> Result<Self, String> {
        if text.len() > MAX_POLICY_BYTES {
            return Err("Policies cannot exceed 20 KB in size".to_owned());
        }
        if !text.trim_start().starts_with('{') {
            return Err(NOT_JSON.to_owned());
        }
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(text) else {
            return Err(NOT_JSON.to_owned());
        };
        for (field, value) in &doc {
            match field.as_str() {
                "Version" => match value.as_str() {
                    Some("2012-10-17" | "2008-10-17") => {}
                    _ => return Err("The policy must contain a valid version string".to_owned()),
                },
                "Id" | "Statement" => {}
                other => return Err(format!("Unknown field {other}")),
            }
        }
        let raw: Vec<&Value> = match doc.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => return Err("Statement must be an object or a list of objects".to_owned()),
            None => return Err("Missing required field Statement".to_owned()),
        };
        if raw.is_empty() {
            return Err("Missing required field Statement".to_owned());
        }
        let statements = raw.into_iter().map(|s| statement(s, bucket)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    /// Explicit Deny beats everything; then the owner is allowed, anyone else needs an Allow.
    fn decides(&self, caller: &str, owner: &str, action: &str, resource: &str) -> bool {
        let who = Caller::Account(caller.to_owned());
        let action = action.to_ascii_lowercase();
        let matching = |allow: bool| {
            self.statements.iter().any(|s| {
                s.allow == allow
                    && principal_matches(&s.principal, &who)
                    && s.actions.iter().any(|a| glob_match(a, &action))
                    && s.resources.iter().any(|r| glob_match(r, resource))
            })
        };
        if matching(false) {
            return false;
        }
        caller == owner || matching(true)
    }
}

fn statement(value: &Value, bucket: &str) -> Result<Statement, String> {
    let Value::Object(map) = value else {
        return Err("Statement must be an object or a list of objects".to_owned());
    };
    for field in map.keys() {
        match field.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Resource" => {}
            "Condition" => return Err("Conditions are not supported in Lamina bucket policies".to_owned()),
            "NotPrincipal" | "NotAction" | "NotResource" => {
                return Err(format!("{field} is not supported in Lamina bucket policies"));
            }
            other => return Err(format!("Unknown field {other}")),
        }
    }
    let allow = match map.get("Effect").map(|e| e.as_str()) {
        Some(Some("Allow")) => true,
        Some(Some("Deny")) => false,
        Some(other) => return Err(format!("Invalid effect: {}", other.unwrap_or_default())),
        None => return Err("Missing required field Effect".to_owned()),
    };
    let principal = map.get("Principal").ok_or("Missing required field Principal")?;
    check_principal(principal)?;
    let actions = strings(map, "Action")?;
    let resources = strings(map, "Resource")?;
    let mut kinds = (false, false); // (some action is a bucket action, some is an object action)
    for action in &actions {
        let lower = action.to_ascii_lowercase();
        let known =
            |names: &[&str]| names.iter().any(|n| glob_match(&lower, &format!("s3:{}", n.to_ascii_lowercase())));
        let (on_bucket, on_object) = (known(BUCKET_ACTIONS), known(OBJECT_ACTIONS));
        if !(lower == "*" || lower.starts_with("s3:")) || !(on_bucket || on_object) {
            return Err("Policy has invalid action".to_owned());
        }
        kinds = (kinds.0 || on_bucket, kinds.1 || on_object);
    }
    let mut applies = false;
    for resource in &resources {
        let rest = resource.strip_prefix(ARN_PREFIX).ok_or("Policy has invalid resource")?;
        let (bucket_part, object_part) = match rest.split_once('/') {
            Some((b, o)) => (b, Some(o)),
            None => (rest, None),
        };
        if !glob_match(bucket_part, bucket) {
            return Err("Policy has invalid resource".to_owned());
        }
        let names_bucket = glob_match(resource, &arn(bucket, None));
        let names_objects = object_part.is_some() || rest.ends_with('*');
        applies |= (kinds.0 && names_bucket) || (kinds.1 && names_objects);
    }
    if !applies {
        return Err("Action does not apply to any resource(s) in statement".to_owned());
    }
    Ok(Statement {
        allow,
        principal: principal.clone(),
        actions: actions.iter().map(|a| a.to_ascii_lowercase()).collect(),
        resources,
    })
}

/// `"*"`, or `{"AWS": p}` / `{"AWS": [p, …]}` with p an account id, its root ARN, or `*`.
fn check_principal(principal: &Value) -> Result<(), String> {
    const INVALID: &str = "Invalid principal in policy";
    let account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    let valid = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s == "*"
                || account(s)
                || s.strip_prefix("arn:aws:iam::").and_then(|r| r.strip_suffix(":root")).is_some_and(account)
        })
    };
    match principal {
        Value::String(s) if s == "*" => Ok(()),
        Value::Object(map) if !map.is_empty() => {
            for (kind, value) in map {
                let ok = kind == "AWS"
                    && match value {
                        Value::Array(list) => !list.is_empty() && list.iter().all(valid),
                        other => valid(other),
                    };
                if !ok {
                    return Err(INVALID.to_owned());
                }
            }
            Ok(())
        }
        _ => Err(INVALID.to_owned()),
    }
}

/// A field that is one string or a non-empty list of strings.
fn strings(map: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    let invalid = || {
        if field == "Action" {
            "Policy has invalid action".to_owned()
        } else {
            "Policy has invalid resource".to_owned()
        }
    };
    match map.get(field) {
        None => Err(format!("Missing required field {field}")),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(list)) if !list.is_empty() => {
            list.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid)).collect()
        }
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const OWNER: &str = "111111111111";
    const BOB: &str = "222222222222";

    fn policy(statements: Value) -> BucketPolicy {
        let text = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
        BucketPolicy::parse(&text, "b").unwrap()
    }

    fn refused(doc: Value) -> String {
        BucketPolicy::parse(&doc.to_string(), "b").unwrap_err()
    }

    #[test]
    fn evaluation() {
        let p = policy(json!([
            {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{BOB}:root")},
             "Action": ["s3:Get*"], "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"},
        ]));
        let obj = |k: &str| arn("b", Some(k));
        assert!(p.decides(BOB, OWNER, "s3:GetObject", &obj("a.zip")));
        assert!(p.decides(BOB, OWNER, "s3:getobjectversion", &obj("a.zip")));
        assert!(!p.decides(BOB, OWNER, "s3:PutObject", &obj("a.zip")));
        assert!(!p.decides(BOB, OWNER, "s3:ListBucket", &arn("b", None)));
        assert!(!p.decides("333333333333", OWNER, "s3:GetObject", &obj("a.zip")));
        assert!(!p.decides(BOB, OWNER, "s3:GetObject", &obj("secret/x")));
        // The owner needs no Allow, but an explicit Deny names everyone.
        assert!(p.decides(OWNER, OWNER, "s3:PutObject", &obj("a.zip")));
        assert!(!p.decides(OWNER, OWNER, "s3:GetObject", &obj("secret/x")));
    }

    #[test]
    fn validation() {
        let ok = |s: Value| json!({"Version": "2012-10-17", "Statement": s});
        let base = json!({"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"});
        assert!(BucketPolicy::parse(&ok(base.clone()).to_string(), "b").is_ok());
        assert_eq!(BucketPolicy::parse("not json", "b").unwrap_err(), NOT_JSON);
        assert_eq!(BucketPolicy::parse("{\"Statement\": [", "b").unwrap_err(), NOT_JSON);
        let with = |field: &str, value: Value| {
            let mut s = base.clone();
            s[field] = value;
            refused(ok(s))
        };
        assert_eq!(with("Effect", json!("Maybe")), "Invalid effect: Maybe");
        assert_eq!(with("Principal", json!({"AWS": "bob"})), "Invalid principal in policy");
        assert_eq!(with("Principal", json!({"Service": "s3.amazonaws.com"})), "Invalid principal in policy");
        assert_eq!(with("Action", json!("s3:Frobnicate")), "Policy has invalid action");
        assert_eq!(with("Action", json!("lambda:InvokeFunction")), "Policy has invalid action");
        assert_eq!(with("Resource", json!("arn:aws:s3:::other/*")), "Policy has invalid resource");
        assert_eq!(with("Resource", json!("arn:aws:s3:::b")), "Action does not apply to any resource(s) in statement");
        assert!(with("Condition", json!({})).contains("not supported"));
        assert_eq!(refused(json!({"Version": "2012-10-17"})), "Missing required field Statement");
        assert_eq!(
            refused(json!({"Version": "1999", "Statement": base})),
            "The policy must contain a valid version string"
        );
        let mut no_principal = base.clone();
        no_principal.as_object_mut().unwrap().remove("Principal");
        assert_eq!(refused(ok(no_principal)), "Missing required field Principal");
        // Wildcards and lists that S3 accepts.
        let mut wide = base.clone();
        wide["Action"] = json!(["s3:*", "*"]);
        wide["Resource"] = json!(["arn:aws:s3:::b", "arn:aws:s3:::b*"]);
        wide["Principal"] = json!({"AWS": [BOB, "arn:aws:iam::333333333333:root", "*"]});
        assert!(BucketPolicy::parse(&ok(wide).to_string(), "b").is_ok());
    }
}
