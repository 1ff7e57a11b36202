//! EventBridge's model constraints on the rule operations, worded as AWS words them: member
//! constraints as "N validation errors detected: Value '...' at 'member' ..." (all of them at once),
//! then the operation's own checks (`Parameter ScheduleExpression is not valid.`).

use lamina_common::names::Violations;
use lamina_common::{ApiError, ApiResult};

use super::{DEFAULT_BUS, PutRuleRequest, PutTargetsRequest, Target};
use crate::schedule::Schedule;

/// `[\.\-_A-Za-z0-9]+`: rule names, name prefixes and target ids.
pub const NAME_PATTERN: &str = "[\\.\\-_A-Za-z0-9]+";

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A required name-like member: present, 1-64 characters, [`NAME_PATTERN`].
pub fn name(v: &mut Violations, value: Option<&str>, member: &str) {
    match value {
        None => v.missing(member),
        Some(s) => {
            v.length(s, member, 1, 64);
            if !s.is_empty() && !is_name(s) {
                v.push(s, member, &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"));
            }
        }
    }
}

/// An optional string member's length.
fn length(v: &mut Violations, value: Option<&str>, member: &str, min: usize, max: usize) {
    if let Some(s) = value {
        v.length(s, member, min, max);
    }
}

/// `Limit` of the list operations: 1-100.
pub fn limit(v: &mut Violations, value: Option<i64>) {
    if let Some(n) = value {
        v.range(n, "limit", 1, 100);
    }
}

/// `NextToken`: 1-2048 characters.
pub fn next_token(v: &mut Violations, value: Option<&str>) {
    length(v, value, "nextToken", 1, 2048);
}

/// The event bus a request names: only `default` (by name or ARN) exists.
pub fn event_bus(v: &mut Violations, value: Option<&str>) {
    length(v, value, "eventBusName", 1, 1600);
}

/// After the member checks: the bus must be the default one.
pub fn default_bus(value: Option<&str>, region: &str, account_id: &str) -> ApiResult<()> {
    match value {
        None | Some(DEFAULT_BUS) => Ok(()),
        Some(arn) if arn == format!("arn:aws:events:{region}:{account_id}:event-bus/{DEFAULT_BUS}") => Ok(()),
        Some(other) => Err(ApiError::ResourceNotFound(format!("Event bus {other} does not exist."))),
    }
}

/// A PutRule request, checked.
#[derive(Debug, Clone)]
pub struct ValidRule {
    pub name: String,
    pub schedule: Option<(String, Schedule)>,
    pub event_pattern: Option<String>,
    pub enabled: bool,
    pub description: Option<String>,
    pub role_arn: Option<String>,
}

pub fn put_rule(r: &PutRuleRequest, region: &str, account_id: &str) -> ApiResult<ValidRule> {
    let mut v = Violations::default();
    name(&mut v, r.name.as_deref(), "name");
    length(&mut v, r.schedule_expression.as_deref(), "scheduleExpression", 0, 256);
    length(&mut v, r.event_pattern.as_deref(), "eventPattern", 0, 4096);
    length(&mut v, r.description.as_deref(), "description", 0, 512);
    length(&mut v, r.role_arn.as_deref(), "roleArn", 1, 1600);
    event_bus(&mut v, r.event_bus_name.as_deref());
    if let Some(state) = r.state.as_deref()
        && !matches!(state, "ENABLED" | "DISABLED")
    {
        v.push(state, "state", "Member must satisfy enum value set: [ENABLED, DISABLED]");
    }
    v.finish()?;
    default_bus(r.event_bus_name.as_deref(), region, account_id)?;
    // Empty strings are "not given" (the AWS CLI sends none; some SDK users send "").
    let schedule_text = r.schedule_expression.clone().filter(|s| !s.is_empty());
    let event_pattern = r.event_pattern.clone().filter(|s| !s.is_empty());
    if schedule_text.is_none() && event_pattern.is_none() {
        return Err(ApiError::ValidationMessage(
            "Parameter(s) EventPattern or ScheduleExpression must be specified.".into(),
        ));
    }
    let schedule = match schedule_text {
        Some(text) => {
            let parsed = Schedule::parse(&text)?;
            Some((text, parsed))
        }
        None => None,
    };
    if let Some(pattern) = &event_pattern {
        check_pattern(pattern)?;
    }
    Ok(ValidRule {
        name: r.name.clone().unwrap_or_default(),
        schedule,
        event_pattern,
        enabled: r.state.as_deref() != Some("DISABLED"),
        description: r.description.clone(),
        role_arn: r.role_arn.clone(),
    })
}

fn check_pattern(pattern: &str) -> ApiResult<()> {
    let invalid = |reason: String| ApiError::ValidationMessage(format!("Event pattern is not valid. Reason: {reason}"));
    match serde_json::from_str::<serde_json::Value>(pattern) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(invalid("Filter is not an object".into())),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// A target Lamina can deliver to, or why not (a failed entry, not a failed request).
#[derive(Debug, Clone)]
pub enum Entry {
    Accepted { id: String, arn: String, input: Option<String> },
    Failed { id: String, code: &'static str, message: String },
}

/// Checks PutTargets' members; then sorts the targets into accepted and failed entries: Lamina
/// delivers to its own functions in its own region, with the event or a constant `Input`.
pub fn put_targets(r: &PutTargetsRequest, region: &str, account_id: &str) -> ApiResult<(String, Vec<Entry>)> {
    let mut v = Violations::default();
    name(&mut v, r.rule.as_deref(), "rule");
    event_bus(&mut v, r.event_bus_name.as_deref());
    match &r.targets {
        None => v.missing("targets"),
        Some(targets) => {
            if targets.is_empty() {
                v.push_raw(
                    "Value '[]' at 'targets' failed to satisfy constraint: Member must have length greater than or equal to 1",
                );
            } else if targets.len() > 10 {
                v.push_raw(
                    "Value at 'targets' failed to satisfy constraint: Member must have length less than or equal to 10",
                );
            }
            for (i, t) in targets.iter().enumerate() {
                let member = |m: &str| format!("targets.{}.member.{m}", i + 1);
                name(&mut v, t.id.as_deref(), &member("id"));
                match t.arn.as_deref() {
                    None => v.missing(&member("arn")),
                    Some(arn) => v.length(arn, &member("arn"), 1, 1600),
                }
                length(&mut v, t.input.as_deref(), &member("input"), 0, 8192);
                length(&mut v, t.input_path.as_deref(), &member("inputPath"), 0, 256);
            }
        }
    }
    v.finish()?;
    default_bus(r.event_bus_name.as_deref(), region, account_id)?;
    let targets = r.targets.as_deref().unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut entries = Vec::with_capacity(targets.len());
    for t in targets {
        let id = t.id.clone().unwrap_or_default();
        if !seen.insert(id.clone()) {
            return Err(ApiError::ValidationMessage(format!("The request contains duplicate target ids: {id}")));
        }
        entries.push(entry(t, id, region)?);
    }
    Ok((r.rule.clone().unwrap_or_default(), entries))
}

fn entry(t: &Target, id: String, region: &str) -> ApiResult<Entry> {
    let arn = t.arn.clone().unwrap_or_default();
    if let Some(input) = &t.input
        && serde_json::from_str::<serde_json::Value>(input).is_err()
    {
        return Err(ApiError::ValidationMessage(format!("Target {id} Input is not valid JSON text.")));
    }
    if t.input.is_some() && (t.input_path.is_some() || t.input_transformer.is_some()) {
        return Err(ApiError::ValidationMessage(format!(
            "Target {id}: only one of Input, InputPath and InputTransformer may be given."
        )));
    }
    if t.input_path.is_some() || t.input_transformer.is_some() {
        let message =
            "Lamina delivers the event or a constant Input; InputPath and InputTransformer are not supported.";
        return Ok(Entry::Failed { id, code: "ValidationException", message: message.into() });
    }
    match function_target(&arn) {
        Some(f) if f.region == region => Ok(Entry::Accepted { id, arn, input: t.input.clone() }),
        Some(f) => Ok(Entry::Failed {
            id,
            code: "ValidationException",
            message: format!("The function {arn} is in region {}; rules here invoke functions in {region}.", f.region),
        }),
        None => Ok(Entry::Failed {
            id,
            code: "ValidationException",
            message: format!("Lamina rules invoke Lambda functions only: {arn} is not a function ARN."),
        }),
    }
}

/// A target's function: `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTarget {
    pub region: String,
    pub account_id: String,
    pub name: String,
    pub qualifier: Option<String>,
}

/// Parses a target ARN naming a function (`None` for any other ARN).
pub fn function_target(arn: &str) -> Option<FunctionTarget> {
    if !arn.starts_with("arn:aws:lambda:") {
        return None;
    }
    let r = lamina_common::names::FunctionRef::parse(arn, "arn").ok()?;
    Some(FunctionTarget { region: r.region?, account_id: r.account_id?, name: r.name, qualifier: r.qualifier })
}

/// RemoveTargets' members: the rule and 1-100 ids.
pub fn remove_targets(rule: Option<&str>, bus: Option<&str>, ids: Option<&[String]>) -> ApiResult<()> {
    let mut v = Violations::default();
    name(&mut v, rule, "rule");
    event_bus(&mut v, bus);
    match ids {
        None => v.missing("ids"),
        Some([]) => v.push_raw(
            "Value '[]' at 'ids' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ),
        Some(ids) if ids.len() > 100 => {
            v.push_raw("Value at 'ids' failed to satisfy constraint: Member must have length less than or equal to 100")
        }
        Some(ids) => {
            for (i, id) in ids.iter().enumerate() {
                name(&mut v, Some(id), &format!("ids.{}.member", i + 1));
            }
        }
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: ApiError) -> String {
        err.to_string()
    }

    #[test]
    fn put_rule_members_are_checked_together() {
        let r = PutRuleRequest {
            name: Some("bad name!".into()),
            state: Some("ON".into()),
            schedule_expression: Some("rate(1 minute)".into()),
            ..Default::default()
        };
        let err = put_rule(&r, "us-east-1", "111111111111").expect_err("invalid");
        assert_eq!(
            message(err),
            "2 validation errors detected: Value 'bad name!' at 'name' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+; Value 'ON' at 'state' failed to satisfy \
             constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"
        );
        let long = PutRuleRequest { name: Some("x".repeat(65)), ..Default::default() };
        assert!(message(put_rule(&long, "r", "a").expect_err("long")).contains("length less than or equal to 64"));
        let missing = PutRuleRequest::default();
        assert!(message(put_rule(&missing, "r", "a").expect_err("missing")).contains("Value null at 'name'"));
    }

    #[test]
    fn put_rule_needs_a_schedule_or_pattern_and_a_valid_expression() {
        let base = PutRuleRequest { name: Some("r".into()), ..Default::default() };
        let err = put_rule(&base, "us-east-1", "1").expect_err("neither");
        assert!(matches!(err, ApiError::ValidationMessage(_)));
        let bad = PutRuleRequest { schedule_expression: Some("rate(1 minutes)".into()), ..base.clone() };
        assert_eq!(message(put_rule(&bad, "us-east-1", "1").expect_err("bad")), crate::schedule::INVALID);
        let pattern = PutRuleRequest { event_pattern: Some("[1]".into()), ..base.clone() };
        assert!(message(put_rule(&pattern, "us-east-1", "1").expect_err("array")).starts_with("Event pattern"));
        let ok = PutRuleRequest { schedule_expression: Some("cron(0 10 * * ? *)".into()), ..base.clone() };
        let valid = put_rule(&ok, "us-east-1", "1").expect("valid");
        assert!(valid.enabled && valid.schedule.is_some());
        let other_bus = PutRuleRequest { event_bus_name: Some("custom".into()), ..ok.clone() };
        assert!(matches!(put_rule(&other_bus, "us-east-1", "1"), Err(ApiError::ResourceNotFound(_))));
        let bus_arn = "arn:aws:events:us-east-1:1:event-bus/default".to_owned();
        let by_arn = PutRuleRequest { event_bus_name: Some(bus_arn), ..ok };
        assert!(put_rule(&by_arn, "us-east-1", "1").is_ok());
    }

    #[test]
    fn targets_are_sorted_into_accepted_and_failed() {
        let t = |id: &str, arn: &str| Target { id: Some(id.into()), arn: Some(arn.into()), ..Default::default() };
        let request = PutTargetsRequest {
            rule: Some("r".into()),
            event_bus_name: None,
            targets: Some(vec![
                t("f", "arn:aws:lambda:us-east-1:111111111111:function:f"),
                t("alias", "arn:aws:lambda:us-east-1:111111111111:function:f:live"),
                t("queue", "arn:aws:sqs:us-east-1:111111111111:q"),
                t("far", "arn:aws:lambda:eu-west-1:111111111111:function:f"),
            ]),
        };
        let (rule, entries) = put_targets(&request, "us-east-1", "111111111111").expect("valid");
        assert_eq!(rule, "r");
        let accepted: Vec<bool> = entries.iter().map(|e| matches!(e, Entry::Accepted { .. })).collect();
        assert_eq!(accepted, [true, true, false, false]);
        let mut bad = request.clone();
        bad.targets = Some(vec![Target { input: Some("{".into()), ..t("x", "arn:aws:lambda:us-east-1:1:function:f") }]);
        assert!(matches!(put_targets(&bad, "us-east-1", "1"), Err(ApiError::ValidationMessage(_))));
        bad.targets = Some(vec![t("bad id", "a")]);
        let err = message(put_targets(&bad, "us-east-1", "1").expect_err("bad id"));
        assert!(err.contains("at 'targets.1.member.id'"), "{err}");
        bad.targets = Some((0..11).map(|i| t(&i.to_string(), "arn:aws:lambda:us-east-1:1:function:f")).collect());
        assert!(message(put_targets(&bad, "us-east-1", "1").expect_err("11")).contains("less than or equal to 10"));
    }
}
