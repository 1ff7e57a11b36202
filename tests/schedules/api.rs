//! The rule and target operations: what they store and answer, their validation errors in AWS's
//! words, and tenant isolation.

use aws_sdk_eventbridge::types::{RuleState, Target};
use lamina_tests::{TestEnv, backend_tests, status_of};

use crate::{error_of, events, rule_arn};

backend_tests!(rules_and_targets_round_trip, bad_requests_answer_aws_errors, tenants_see_only_their_rules);

fn target(id: &str, arn: &str) -> Target {
    Target::builder().id(id).arn(arn).build().expect("target")
}

async fn rules_and_targets_round_trip(env: &TestEnv) {
    let t = env.tenant().await;
    let ev = events(env, &t);
    let put = ev
        .put_rule()
        .name("every-five")
        .schedule_expression("rate(5 minutes)")
        .description("the guide's example")
        .send()
        .await
        .expect("put rule");
    assert_eq!(put.rule_arn(), Some(rule_arn(env, &t, "every-five").as_str()));

    let got = ev.describe_rule().name("every-five").send().await.expect("describe");
    assert_eq!(got.name(), Some("every-five"));
    assert_eq!(got.arn(), put.rule_arn());
    assert_eq!(got.schedule_expression(), Some("rate(5 minutes)"));
    assert_eq!(got.state(), Some(&RuleState::Enabled));
    assert_eq!(got.description(), Some("the guide's example"));
    assert_eq!(got.event_bus_name(), Some("default"));
    assert_eq!(got.created_by(), Some(t.account_id.as_str()));
    assert_eq!(got.event_pattern(), None);

    // PutRule again replaces the rule (omitted members are not kept, as on AWS).
    ev.put_rule()
        .name("every-five")
        .schedule_expression("cron(0/5 8-17 ? * MON-FRI *)")
        .state(RuleState::Disabled)
        .send()
        .await
        .expect("update rule");
    let got = ev.describe_rule().name("every-five").send().await.expect("describe");
    assert_eq!(got.schedule_expression(), Some("cron(0/5 8-17 ? * MON-FRI *)"));
    assert_eq!(got.state(), Some(&RuleState::Disabled));
    assert_eq!(got.description(), None);
    ev.enable_rule().name("every-five").send().await.expect("enable");
    assert_eq!(
        ev.describe_rule().name("every-five").send().await.expect("describe").state(),
        Some(&RuleState::Enabled)
    );
    ev.disable_rule().name("every-five").send().await.expect("disable");
    assert_eq!(
        ev.describe_rule().name("every-five").send().await.expect("describe").state(),
        Some(&RuleState::Disabled)
    );

    // An event-pattern rule is stored and listed (it never fires: Lamina has no event bus to match).
    let pattern = r#"{"source":["aws.ec2"]}"#;
    ev.put_rule().name("pattern-only").event_pattern(pattern).send().await.expect("pattern rule");
    let got = ev.describe_rule().name("pattern-only").send().await.expect("describe");
    assert_eq!((got.event_pattern(), got.schedule_expression()), (Some(pattern), None));

    // Listing: by name, with a prefix, in pages.
    for name in ["every-hour", "every-day"] {
        let expression = if name == "every-hour" { "rate(1 hour)" } else { "rate(1 day)" };
        ev.put_rule().name(name).schedule_expression(expression).send().await.expect("put rule");
    }
    let all = ev.list_rules().send().await.expect("list");
    let names: Vec<&str> = all.rules().iter().filter_map(|r| r.name()).collect();
    assert_eq!(names, ["every-day", "every-five", "every-hour", "pattern-only"]);
    assert_eq!(all.next_token(), None);
    let first = ev.list_rules().name_prefix("every-").limit(2).send().await.expect("page 1");
    let names: Vec<&str> = first.rules().iter().filter_map(|r| r.name()).collect();
    assert_eq!(names, ["every-day", "every-five"]);
    let token = first.next_token().expect("a second page").to_owned();
    let second = ev.list_rules().name_prefix("every-").limit(2).next_token(token).send().await.expect("page 2");
    let names: Vec<&str> = second.rules().iter().filter_map(|r| r.name()).collect();
    assert_eq!((names.as_slice(), second.next_token()), (["every-hour"].as_slice(), None));
    assert_eq!(second.rules()[0].arn(), Some(rule_arn(env, &t, "every-hour").as_str()));
    assert_eq!(second.rules()[0].schedule_expression(), Some("rate(1 hour)"));

    // Targets: functions are accepted, other services are failed entries.
    let function = format!("arn:aws:lambda:{}:{}:function:worker", env.region, t.account_id);
    let out = ev
        .put_targets()
        .rule("every-hour")
        .targets(target("plain", &function))
        .targets(
            Target::builder().id("constant").arn(format!("{function}:live")).input(r#"{"k": 1}"#).build().expect("t"),
        )
        .targets(target("queue", &format!("arn:aws:sqs:{}:{}:q", env.region, t.account_id)))
        .send()
        .await
        .expect("put targets");
    assert_eq!(out.failed_entry_count(), 1);
    assert_eq!(out.failed_entries()[0].target_id(), Some("queue"));
    assert!(out.failed_entries()[0].error_message().is_some_and(|m| m.contains("not a function ARN")));
    let listed = ev.list_targets_by_rule().rule("every-hour").send().await.expect("list targets");
    let got: Vec<(&str, &str, Option<&str>)> = listed.targets().iter().map(|t| (t.id(), t.arn(), t.input())).collect();
    let live = format!("{function}:live");
    assert_eq!(got, [("constant", live.as_str(), Some(r#"{"k": 1}"#)), ("plain", function.as_str(), None)]);
    let page = ev.list_targets_by_rule().rule("every-hour").limit(1).send().await.expect("page");
    assert_eq!(page.targets().len(), 1);
    assert!(page.next_token().is_some());

    // Five targets per rule; a PutTargets that would make six fails as a whole.
    let more: Vec<Target> = (0..4).map(|i| target(&format!("t{i}"), &function)).collect();
    let six = ev.put_targets().rule("every-hour").set_targets(Some(more.clone())).send().await;
    assert_eq!(error_of(six).0, "LimitExceededException");
    assert_eq!(ev.list_targets_by_rule().rule("every-hour").send().await.expect("list").targets().len(), 2);
    let three: Vec<Target> = more[..3].to_vec();
    ev.put_targets().rule("every-hour").set_targets(Some(three)).send().await.expect("five in all");
    // Re-putting an id replaces that target.
    ev.put_targets().rule("every-hour").targets(target("t0", &live)).send().await.expect("replace");
    let listed = ev.list_targets_by_rule().rule("every-hour").send().await.expect("list");
    assert_eq!(listed.targets().len(), 5);
    assert!(listed.targets().iter().any(|t| t.id() == "t0" && t.arn() == live));

    // A rule with targets cannot be deleted; without them it can, and is gone.
    let refused = ev.delete_rule().name("every-hour").send().await;
    assert_eq!(
        error_of(refused),
        ("ValidationException".to_owned(), "Rule can't be deleted since it has targets.".to_owned())
    );
    let ids = ["plain", "constant", "t0", "t1", "t2", "never-there"];
    let removed = ev
        .remove_targets()
        .rule("every-hour")
        .set_ids(Some(ids.iter().map(|s| s.to_string()).collect()))
        .send()
        .await
        .expect("remove targets");
    assert_eq!(removed.failed_entry_count(), 0);
    assert!(ev.list_targets_by_rule().rule("every-hour").send().await.expect("list").targets().is_empty());
    ev.delete_rule().name("every-hour").send().await.expect("delete");
    let gone = ev.describe_rule().name("every-hour").send().await;
    assert_eq!(status_of(&gone), 400, "EventBridge answers ResourceNotFoundException with 400");
    assert_eq!(
        error_of(gone),
        ("ResourceNotFoundException".to_owned(), "Rule every-hour does not exist on EventBus default.".to_owned())
    );
    // Deleting what does not exist succeeds, as on AWS.
    ev.delete_rule().name("every-hour").send().await.expect("delete again");
}

async fn bad_requests_answer_aws_errors(env: &TestEnv) {
    let t = env.tenant().await;
    let ev = events(env, &t);
    let invalid = "Parameter ScheduleExpression is not valid.";
    for expression in [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(30 seconds)",
        "rate(1 week)",
        "cron(0 10 * * ?)",
        "cron(0 10 * * * *)",
        "cron(0 10 ? * ? *)",
        "cron(60 10 * * ? *)",
        "cron(0 10 ? * MON#6 *)",
        "cron(0 0 1 1 ? 2200)",
        "every 5 minutes",
    ] {
        let result = ev.put_rule().name("r").schedule_expression(expression).send().await;
        assert_eq!(status_of(&result), 400, "{expression}");
        assert_eq!(error_of(result), ("ValidationException".to_owned(), invalid.to_owned()), "{expression}");
    }
    assert!(ev.list_rules().send().await.expect("list").rules().is_empty(), "nothing was stored");

    let bad_name = ev.put_rule().name("bad name!").schedule_expression("rate(1 day)").send().await;
    assert_eq!(
        error_of(bad_name),
        (
            "ValidationException".to_owned(),
            "1 validation error detected: Value 'bad name!' at 'name' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+"
                .to_owned()
        )
    );
    let long = ev.put_rule().name("n".repeat(65)).schedule_expression("rate(1 day)").send().await;
    assert!(error_of(long).1.contains("Member must have length less than or equal to 64"));
    let neither = ev.put_rule().name("r").send().await;
    assert_eq!(error_of(neither).0, "ValidationException");
    let other_bus = ev.put_rule().name("r").schedule_expression("rate(1 day)").event_bus_name("custom").send().await;
    assert_eq!(
        error_of(other_bus),
        ("ResourceNotFoundException".to_owned(), "Event bus custom does not exist.".into())
    );
    let limit = ev.list_rules().limit(0).send().await;
    assert!(error_of(limit).1.contains("at 'limit' failed to satisfy constraint"));

    let function = format!("arn:aws:lambda:{}:{}:function:f", env.region, t.account_id);
    let no_rule = ev.put_targets().rule("missing").targets(target("a", &function)).send().await;
    assert_eq!(
        error_of(no_rule),
        ("ResourceNotFoundException".to_owned(), "Rule missing does not exist on EventBus default.".to_owned())
    );
    for op in ["enable", "disable", "list-targets", "remove-targets"] {
        let code = match op {
            "enable" => error_of(ev.enable_rule().name("missing").send().await).0,
            "disable" => error_of(ev.disable_rule().name("missing").send().await).0,
            "list-targets" => error_of(ev.list_targets_by_rule().rule("missing").send().await).0,
            _ => error_of(ev.remove_targets().rule("missing").ids("a").send().await).0,
        };
        assert_eq!(code, "ResourceNotFoundException", "{op}");
    }
    ev.put_rule().name("r").schedule_expression("rate(1 day)").send().await.expect("valid rule");
    let bad_input = ev
        .put_targets()
        .rule("r")
        .targets(Target::builder().id("a").arn(&function).input("{not json").build().expect("t"))
        .send()
        .await;
    assert_eq!(error_of(bad_input).0, "ValidationException");
    let bad_id = ev.put_targets().rule("r").targets(target("no spaces", &function)).send().await;
    assert!(error_of(bad_id).1.contains("at 'targets.1.member.id'"));
}

async fn tenants_see_only_their_rules(env: &TestEnv) {
    let (a, b) = (env.tenant().await, env.tenant().await);
    let (ev_a, ev_b) = (events(env, &a), events(env, &b));
    ev_a.put_rule().name("mine").schedule_expression("rate(1 day)").send().await.expect("put");
    let function = format!("arn:aws:lambda:{}:{}:function:f", env.region, a.account_id);
    ev_a.put_targets().rule("mine").targets(target("t", &function)).send().await.expect("targets");

    assert!(ev_b.list_rules().send().await.expect("list").rules().is_empty());
    assert_eq!(error_of(ev_b.describe_rule().name("mine").send().await).0, "ResourceNotFoundException");
    assert_eq!(error_of(ev_b.list_targets_by_rule().rule("mine").send().await).0, "ResourceNotFoundException");
    assert_eq!(error_of(ev_b.disable_rule().name("mine").send().await).0, "ResourceNotFoundException");
    assert_eq!(error_of(ev_b.remove_targets().rule("mine").ids("t").send().await).0, "ResourceNotFoundException");
    // Deleting a rule the caller does not have succeeds and deletes nothing.
    ev_b.delete_rule().name("mine").send().await.expect("no-op delete");
    let still = ev_a.describe_rule().name("mine").send().await.expect("still there");
    assert_eq!(still.state(), Some(&RuleState::Enabled));
    assert_eq!(ev_a.list_targets_by_rule().rule("mine").send().await.expect("targets").targets().len(), 1);

    // The same name in another account is another rule.
    ev_b.put_rule().name("mine").schedule_expression("rate(2 days)").send().await.expect("b's own");
    let got_b = ev_b.describe_rule().name("mine").send().await.expect("describe b");
    assert_eq!(got_b.arn(), Some(rule_arn(env, &b, "mine").as_str()));
    assert_eq!(got_b.schedule_expression(), Some("rate(2 days)"));
    let got_a = ev_a.describe_rule().name("mine").send().await.expect("describe a");
    assert_eq!(got_a.schedule_expression(), Some("rate(1 day)"));
    assert!(ev_b.list_targets_by_rule().rule("mine").send().await.expect("b's targets").targets().is_empty());
}
