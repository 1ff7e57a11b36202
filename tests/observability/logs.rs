//! CloudWatch Logs through `aws-sdk-cloudwatchlogs`: what a function prints is readable within 1 s
//! of the invocation, in order, page by page; filter patterns and time ranges; retention, deletion;
//! one tenant never sees another's logs; bad input is refused with the SDK's error types.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::types::{OrderBy, OutputLogEvent};
use lamina_tests::{TestEnv, code_of, create_python};

use super::{PRINTER, invoke, logs, logs_call, now_ms};

lamina_tests::backend_tests!(logs_are_read_through_cloudwatch_logs, logs_are_tenant_scoped_and_checked);

/// The lines of invocation `request_id` (START to REPORT) in group `group` and the stream holding
/// them, once they are all there.
async fn invocation(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    request_id: &str,
) -> Option<(String, Vec<OutputLogEvent>)> {
    let streams = client.describe_log_streams().log_group_name(group).send().await.ok()?;
    for stream in streams.log_streams() {
        let name = stream.log_stream_name()?;
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(name)
            .start_from_head(true)
            .send()
            .await
            .ok()?;
        let events = page.events();
        let starts = |prefix: String| move |e: &OutputLogEvent| e.message().is_some_and(|m| m.starts_with(&prefix));
        let start = events.iter().position(starts(format!("START RequestId: {request_id} ")));
        let report = events.iter().position(starts(format!("REPORT RequestId: {request_id}\t")));
        if let (Some(start), Some(report)) = (start, report) {
            return Some((name.to_owned(), events[start..=report].to_vec()));
        }
    }
    None
}

fn text(e: &OutputLogEvent) -> &str {
    e.message().unwrap_or_default().trim_end()
}

async fn logs_are_read_through_cloudwatch_logs(env: &TestEnv) {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    let client = logs(env, &t);
    create_python(&lambda, "printer", PRINTER).send().await.expect("create printer");
    let group = "/aws/lambda/printer";

    // Within 1 s of the invocation's answer: the group, its stream and every line, in order.
    let (id, returned) = invoke(&lambda, "printer", r#"{"tag": "first", "n": 3}"#).await;
    let deadline = returned + Duration::from_secs(1);
    let (stream, lines) = loop {
        if let Some(found) = invocation(&client, group, &id).await {
            break found;
        }
        assert!(Instant::now() < deadline, "the invocation's log lines did not arrive within 1 s of its return");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seen_after = returned.elapsed();
    assert!(seen_after <= Duration::from_secs(1), "log lines took {seen_after:?}");
    let texts: Vec<&str> = lines.iter().map(text).collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    assert!(texts[0].starts_with(&format!("START RequestId: {id} Version: $LATEST")), "{texts:?}");
    assert_eq!(&texts[1..4], ["line 0 first", "line 1 first", "line 2 first"]);
    assert_eq!(texts[4], format!("END RequestId: {id}"));
    assert!(texts[5].starts_with(&format!("REPORT RequestId: {id}\tDuration: ")), "{texts:?}");
    let times: Vec<i64> = lines.iter().map(|e| e.timestamp().unwrap_or_default()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "timestamps in order: {times:?}");
    assert!(lines.iter().all(|e| e.ingestion_time().unwrap_or_default() >= e.timestamp().unwrap_or_default()));

    let groups = client.describe_log_groups().log_group_name_prefix("/aws/lambda/").send().await.expect("groups");
    let names: Vec<&str> = groups.log_groups().iter().filter_map(|g| g.log_group_name()).collect();
    assert_eq!(names, [group]);
    let described = &groups.log_groups()[0];
    assert!(described.creation_time().unwrap_or_default() > 0);
    assert!(described.arn().unwrap_or_default().contains(&format!(":{}:log-group:{group}", t.account_id)));
    let streams = client
        .describe_log_streams()
        .log_group_name(group)
        .order_by(OrderBy::LastEventTime)
        .descending(true)
        .send()
        .await
        .expect("streams");
    assert!(streams.log_streams().iter().any(|s| s.log_stream_name() == Some(&stream)));

    // More invocations, then the stream page by page, both ways.
    let mut ids = vec![id];
    for tag in ["alpha", "beta", "gamma"] {
        let payload = format!(r#"{{"tag": "{tag}", "n": 2}}"#);
        ids.push(invoke(&lambda, "printer", &payload).await.0);
    }
    for id in &ids {
        lamina_tests::wait_until(Duration::from_secs(5), "every invocation's lines", || async {
            invocation(&client, group, id).await
        })
        .await;
    }
    check_log_event_tokens(&client, group, &stream).await;

    // FilterLogEvents: a term, a time range, pages.
    let beta =
        client.filter_log_events().log_group_name(group).filter_pattern("beta").send().await.expect("filter beta");
    let found: Vec<&str> = beta.events().iter().map(|e| e.message().unwrap_or_default().trim_end()).collect();
    assert_eq!(found, ["line 0 beta", "line 1 beta"]);
    assert!(beta.next_token().is_none(), "one page holds everything");
    assert!(beta.events().iter().all(|e| e.event_id().is_some() && e.log_stream_name().is_some()));

    let all = client.filter_log_events().log_group_name(group).send().await.expect("filter all");
    let alpha_start = all
        .events()
        .iter()
        .find(|e| e.message().is_some_and(|m| m.starts_with(&format!("START RequestId: {}", ids[1]))))
        .and_then(|e| e.timestamp())
        .expect("alpha's START");
    let first_lines: Vec<i64> = all
        .events()
        .iter()
        .filter(|e| e.message().is_some_and(|m| m.contains(" first")))
        .filter_map(|e| e.timestamp())
        .collect();
    assert!(first_lines.iter().all(|&ts| ts < alpha_start), "invocations one after another");
    let since_alpha = client
        .filter_log_events()
        .log_group_name(group)
        .filter_pattern("line")
        .start_time(alpha_start)
        .end_time(now_ms() + 60_000)
        .send()
        .await
        .expect("filter by time");
    let found: Vec<&str> = since_alpha.events().iter().map(|e| e.message().unwrap_or_default().trim_end()).collect();
    assert_eq!(found, ["line 0 alpha", "line 1 alpha", "line 0 beta", "line 1 beta", "line 0 gamma", "line 1 gamma"]);
    let before = client
        .filter_log_events()
        .log_group_name(group)
        .start_time(0)
        .end_time(alpha_start - 1)
        .send()
        .await
        .expect("filter before alpha");
    assert!(before.events().iter().all(|e| e.timestamp().unwrap_or_default() < alpha_start));
    assert!(before.events().iter().any(|e| e.message().is_some_and(|m| m.contains("line 2 first"))));

    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .filter_log_events()
            .log_group_name(group)
            .limit(4)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("filter page");
        assert!(page.events().len() <= 4);
        paged.extend(page.events().iter().filter_map(|e| e.event_id().map(str::to_owned)));
        pages += 1;
        assert!(pages < 100, "FilterLogEvents pages never end");
        match page.next_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    let unpaged: Vec<String> = all.events().iter().filter_map(|e| e.event_id().map(str::to_owned)).collect();
    assert_eq!(paged, unpaged, "pages of 4 hold every event once, in order");
    assert!(pages >= unpaged.len() / 4, "{pages} pages for {} events", unpaged.len());

    // Retention.
    client.put_retention_policy().log_group_name(group).retention_in_days(7).send().await.expect("retention");
    let groups = client.describe_log_groups().log_group_name_prefix(group).send().await.expect("groups");
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(7));
    let bad = client.put_retention_policy().log_group_name(group).retention_in_days(8).send().await;
    assert_eq!(code_of(bad), "InvalidParameterException");

    // More groups, listed page by page.
    for name in ["/aws/lambda/zz-a", "/aws/lambda/zz-b", "/custom/one"] {
        client.create_log_group().log_group_name(name).send().await.expect("create group");
    }
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client.describe_log_groups().limit(1).set_next_token(token.clone()).send().await.expect("page");
        assert!(page.log_groups().len() <= 1);
        listed.extend(page.log_groups().iter().filter_map(|g| g.log_group_name().map(str::to_owned)));
        match page.next_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
        assert!(listed.len() < 20, "DescribeLogGroups pages never end");
    }
    assert_eq!(listed, ["/aws/lambda/printer", "/aws/lambda/zz-a", "/aws/lambda/zz-b", "/custom/one"]);

    // Deletion.
    client.delete_log_group().log_group_name(group).send().await.expect("delete group");
    let groups = client.describe_log_groups().log_group_name_prefix(group).send().await.expect("groups");
    assert!(groups.log_groups().is_empty());
    let gone = client.get_log_events().log_group_name(group).log_stream_name(&stream).send().await;
    assert_eq!(code_of(gone), "ResourceNotFoundException");
}

/// GetLogEvents forward and backward by tokens, against the whole stream in one call.
async fn check_log_event_tokens(client: &aws_sdk_cloudwatchlogs::Client, group: &str, stream: &str) {
    let whole = client
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .send()
        .await
        .expect("whole stream");
    let all: Vec<String> = whole.events().iter().map(|e| text(e).to_owned()).collect();
    assert!(all.len() >= 6, "a stream long enough to page: {all:?}");

    // Forward: the SDK's paginator follows nextForwardToken and stops when it comes back unchanged.
    let forward: Vec<String> = client
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .limit(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("forward pages")
        .iter()
        .map(|e| text(e).to_owned())
        .collect();
    assert_eq!(forward, all);

    // Backward from the end: the newest page first, then older ones by nextBackwardToken.
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .limit(2)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("backward page");
        let events: Vec<String> = page.events().iter().map(|e| text(e).to_owned()).collect();
        assert!(events.len() <= 2);
        let next = page.next_backward_token().map(str::to_owned);
        assert!(next.as_deref().is_some_and(|t| t.starts_with("b/")), "backward token {next:?}");
        assert!(page.next_forward_token().is_some_and(|t| t.starts_with("f/")));
        if events.is_empty() || next == token {
            break;
        }
        pages.push(events);
        token = next;
        assert!(pages.len() < 100, "backward pages never end");
    }
    let backward: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(backward, all);
}

async fn logs_are_tenant_scoped_and_checked(env: &TestEnv) {
    let owner = env.tenant().await;
    let other = env.tenant().await;
    let lambda = env.lambda(&owner);
    create_python(&lambda, "private", PRINTER).send().await.expect("create");
    let (id, _) = invoke(&lambda, "private", r#"{"tag": "secret"}"#).await;
    let mine = logs(env, &owner);
    let group = "/aws/lambda/private";
    let (stream, _) =
        lamina_tests::wait_until(Duration::from_secs(5), "the owner's log lines", || invocation(&mine, group, &id))
            .await;

    // The other tenant sees nothing and can touch nothing.
    let theirs = logs(env, &other);
    let listed = theirs.describe_log_groups().send().await.expect("other's groups");
    assert!(listed.log_groups().is_empty(), "{:?}", listed.log_groups());
    let filtered = theirs.filter_log_events().log_group_name(group).send().await;
    assert_eq!(code_of(filtered), "ResourceNotFoundException");
    let read = theirs.get_log_events().log_group_name(group).log_stream_name(&stream).send().await;
    let err = read.expect_err("another tenant's stream");
    assert!(err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()), "{err:?}");
    let streams = theirs.describe_log_streams().log_group_name(group).send().await;
    assert_eq!(code_of(streams), "ResourceNotFoundException");
    let deleted = theirs.delete_log_group().log_group_name(group).send().await;
    assert_eq!(code_of(deleted), "ResourceNotFoundException");
    let retention = theirs.put_retention_policy().log_group_name(group).retention_in_days(1).send().await;
    assert_eq!(code_of(retention), "ResourceNotFoundException");
    // The owner's group is untouched.
    let still = mine.describe_log_groups().send().await.expect("owner's groups");
    assert_eq!(still.log_groups().len(), 1);
    assert_eq!(still.log_groups()[0].retention_in_days(), None);

    // Bad input, with the SDK's error types.
    let zero = mine.get_log_events().log_group_name(group).log_stream_name(&stream).limit(0).send().await;
    let err = zero.expect_err("limit 0");
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_parameter_exception()), "{err:?}");
    let too_many = mine.describe_log_groups().limit(51).send().await;
    assert_eq!(code_of(too_many), "InvalidParameterException");
    let pattern = mine.filter_log_events().log_group_name(group).filter_pattern("{ $.level = ").send().await;
    let err = pattern.expect_err("unparseable pattern");
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_parameter_exception()), "{err:?}");
    let missing = mine.get_log_events().log_group_name("/aws/lambda/nope").log_stream_name("s").send().await;
    assert_eq!(code_of(missing), "ResourceNotFoundException");

    // What the JSON 1.1 protocol itself refuses.
    let unknown = logs_call(env, &owner, "PutSubscriptionFilter", &serde_json::json!({})).await;
    assert_eq!((unknown.status, unknown.json()["__type"].as_str()), (400, Some("UnknownOperationException")));
    let target = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "Logs_20140328.GetLogEvents")];
    let garbled = super::signed_post(env, &owner, "logs", "/", &target, b"{not json").await;
    assert_eq!(garbled.status, 400);
    assert_eq!(garbled.header("x-amzn-ErrorType"), Some("SerializationException"));
    assert_eq!(garbled.header("content-type"), Some("application/x-amz-json-1.1"));
    // Signed for Lambda rather than CloudWatch Logs.
    let wrong_scope = super::signed_post(env, &owner, "lambda", "/", &target, b"{}").await;
    assert_eq!(wrong_scope.status, 403, "{}", wrong_scope.text());
}
