//! Resource-policy evaluation: a pure function of (policy statements, request context).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An account (another tenant).
    Account(String),
    /// A service principal such as `s3.amazonaws.com`.
    Service(String),
}

/// What is being asked.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub caller: Caller,
    /// `lambda:InvokeFunction`, `lambda:GetFunction`, …
    pub action: String,
    /// The exact ARN the request addressed (POL-6).
    pub resource: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub event_source_token: Option<String>,
}

/// One statement as stored and as GetPolicy prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "Sid")]
    pub sid: String,
    #[serde(rename = "Effect")]
    pub effect: String,
    #[serde(rename = "Principal")]
    pub principal: Value,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Resource")]
    pub resource: String,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none", default)]
    pub condition: Option<Value>,
}

/// Glob match with `*` (any run) and `?` (one character), as ArnLike does.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        // A `*` in the pattern is always a wildcard, also where the text holds a `*` too.
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn action_matches(statement: &str, action: &str) -> bool {
    statement == "*" || statement == "lambda:*" || statement.eq_ignore_ascii_case(action)
}

/// Whether a statement's `Principal` (`"*"`, `{"AWS": …}`, `{"Service": …}`) names the caller.
pub fn principal_matches(principal: &Value, caller: &Caller) -> bool {
    let one = |v: &Value, key: &str| -> bool {
        let candidates: Vec<&str> = match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        candidates.iter().any(|c| match (key, caller) {
            ("AWS", Caller::Account(id)) => *c == "*" || *c == id || *c == format!("arn:aws:iam::{id}:root"),
            ("Service", Caller::Service(s)) => *c == s,
            _ => false,
        })
    };
    match principal {
        Value::String(s) => s == "*",
        Value::Object(map) => map.iter().any(|(k, v)| one(v, k)),
        _ => false,
    }
}

fn condition_holds(condition: &Option<Value>, req: &RequestContext) -> bool {
    let Some(Value::Object(ops)) = condition else { return true };
    ops.iter().all(|(op, body)| {
        let Value::Object(keys) = body else { return false };
        keys.iter().all(|(key, expected)| {
            let actual = match key.to_ascii_lowercase().as_str() {
                "aws:sourcearn" => req.source_arn.as_deref(),
                "aws:sourceaccount" => req.source_account.as_deref(),
                "lambda:eventsourcetoken" => req.event_source_token.as_deref(),
                _ => None,
            };
            let Some(actual) = actual else { return false };
            let wanted: Vec<&str> = match expected {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            match op.as_str() {
                "ArnLike" | "StringLike" => wanted.iter().any(|w| glob_match(w, actual)),
                "ArnEquals" | "StringEquals" => wanted.contains(&actual),
                _ => false,
            }
        })
    })
}

/// Whether any statement allows the request (there are no Deny statements in Lambda policies).
pub fn allows(statements: &[Statement], req: &RequestContext) -> bool {
    statements.iter().any(|s| {
        s.effect == "Allow"
            && action_matches(&s.action, &req.action)
            && principal_matches(&s.principal, &req.caller)
            && (s.resource == req.resource || glob_match(&s.resource, &req.resource))
            && condition_holds(&s.condition, req)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:111111111111:function:f";

    fn stmt(principal: Value, action: &str, resource: &str, condition: Option<Value>) -> Statement {
        Statement {
            sid: "s".into(),
            effect: "Allow".into(),
            principal,
            action: action.into(),
            resource: resource.into(),
            condition,
        }
    }

    fn req(caller: Caller, resource: &str) -> RequestContext {
        RequestContext {
            caller,
            action: "lambda:InvokeFunction".into(),
            resource: resource.into(),
            source_arn: None,
            source_account: None,
            event_source_token: None,
        }
    }

    #[test]
    fn table() {
        let acct = || Caller::Account("222222222222".into());
        let cases: Vec<(&str, Statement, RequestContext, bool)> = vec![
            (
                "account id",
                stmt(json!({"AWS": "222222222222"}), "lambda:InvokeFunction", ARN, None),
                req(acct(), ARN),
                true,
            ),
            (
                "root arn",
                stmt(json!({"AWS": "arn:aws:iam::222222222222:root"}), "lambda:*", ARN, None),
                req(acct(), ARN),
                true,
            ),
            (
                "other account",
                stmt(json!({"AWS": "333333333333"}), "lambda:InvokeFunction", ARN, None),
                req(acct(), ARN),
                false,
            ),
            (
                "wrong action",
                stmt(json!({"AWS": "222222222222"}), "lambda:GetFunction", ARN, None),
                req(acct(), ARN),
                false,
            ),
            (
                "qualified statement, unqualified call",
                stmt(json!({"AWS": "222222222222"}), "lambda:InvokeFunction", &format!("{ARN}:1"), None),
                req(acct(), ARN),
                false,
            ),
            (
                "alias statement, alias call",
                stmt(json!({"AWS": "222222222222"}), "lambda:InvokeFunction", &format!("{ARN}:PROD"), None),
                req(acct(), &format!("{ARN}:PROD")),
                true,
            ),
            (
                "service",
                stmt(json!({"Service": "s3.amazonaws.com"}), "lambda:InvokeFunction", ARN, None),
                req(Caller::Service("s3.amazonaws.com".into()), ARN),
                true,
            ),
            (
                "service is not an account",
                stmt(json!({"Service": "s3.amazonaws.com"}), "lambda:InvokeFunction", ARN, None),
                req(acct(), ARN),
                false,
            ),
            (
                "source arn missing",
                stmt(
                    json!({"Service": "s3.amazonaws.com"}),
                    "lambda:InvokeFunction",
                    ARN,
                    Some(json!({"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket-*"}})),
                ),
                req(Caller::Service("s3.amazonaws.com".into()), ARN),
                false,
            ),
            (
                "source arn wildcard",
                stmt(
                    json!({"Service": "s3.amazonaws.com"}),
                    "lambda:InvokeFunction",
                    ARN,
                    Some(json!({"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket-*"}})),
                ),
                RequestContext {
                    source_arn: Some("arn:aws:s3:::bucket-a".into()),
                    ..req(Caller::Service("s3.amazonaws.com".into()), ARN)
                },
                true,
            ),
            (
                "source account",
                stmt(
                    json!("*"),
                    "lambda:InvokeFunction",
                    ARN,
                    Some(json!({"StringEquals": {"AWS:SourceAccount": "444444444444"}})),
                ),
                RequestContext { source_account: Some("555555555555".into()), ..req(acct(), ARN) },
                false,
            ),
        ];
        for (what, s, r, expected) in cases {
            assert_eq!(allows(&[s], &r), expected, "{what}");
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("arn:aws:s3:::b-*", "arn:aws:s3:::b-x"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*", ""));
        // Found by the `policy` fuzz target: a `*` in the text used up the pattern's wildcard.
        assert!(glob_match("*", "*rn:aws"));
        assert!(glob_match("arn:aws:s3:::b-*", "arn:aws:s3:::b-*x"));
    }

    /// Property: adding a statement never removes access; removing the only matching one always does.
    #[test]
    fn monotonic_in_statements() {
        use rand::Rng as _;
        let mut rng = rand::rng();
        let principals = [
            json!({"AWS": "222222222222"}),
            json!({"AWS": "333333333333"}),
            json!("*"),
            json!({"Service": "s3.amazonaws.com"}),
        ];
        let actions = ["lambda:InvokeFunction", "lambda:*", "lambda:GetFunction", "*"];
        let resources = [ARN.to_string(), format!("{ARN}:1"), format!("{ARN}:*")];
        let callers = [Caller::Account("222222222222".into()), Caller::Service("s3.amazonaws.com".into())];
        for _ in 0..2000 {
            let n = rng.random_range(0..4);
            let mut statements: Vec<Statement> = (0..n)
                .map(|_| {
                    stmt(
                        principals[rng.random_range(0..principals.len())].clone(),
                        actions[rng.random_range(0..actions.len())],
                        &resources[rng.random_range(0..resources.len())],
                        None,
                    )
                })
                .collect();
            let r = req(callers[rng.random_range(0..callers.len())].clone(), &resources[rng.random_range(0..2)]);
            let before = allows(&statements, &r);
            let extra = stmt(
                principals[rng.random_range(0..principals.len())].clone(),
                actions[rng.random_range(0..actions.len())],
                &resources[rng.random_range(0..resources.len())],
                None,
            );
            statements.push(extra);
            assert!(!before || allows(&statements, &r), "adding a statement removed access");
            let matching: Vec<usize> = (0..statements.len()).filter(|i| allows(&statements[*i..=*i], &r)).collect();
            if matching.len() == 1 {
                statements.remove(matching[0]);
                assert!(!allows(&statements, &r), "removing the only matching statement kept access");
            }
        }
    }
}
