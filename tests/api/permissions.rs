//! Resource policies and cross-account invocation.

use aws_sdk_lambda::types::InvocationType;
use lamina_tests::{TestEnv, backend_tests};

use crate::{code_of, create_python, error_of};

backend_tests!(
    cross_account_invoke_follows_the_policy,
    policies_are_scoped_to_the_arn,
    policy_limits_and_errors,
    concurrent_add_permission_keeps_every_statement,
    policy_revision_ids_guard_changes,
);

async fn cross_account_invoke_follows_the_policy(env: &TestEnv) {
    let owner = env.tenant().await;
    let friend = env.tenant().await;
    let stranger = env.tenant().await;
    let co = env.lambda(&owner);
    let cf = env.lambda(&friend);
    let cs = env.lambda(&stranger);
    create_python(&co, "shared").send().await.expect("create");
    let arn = format!("arn:aws:lambda:us-east-1:{}:function:shared", owner.account_id);
    assert_eq!(code_of(cf.invoke().function_name(&arn).send().await), "AccessDeniedException");
    assert_eq!(code_of(co.get_policy().function_name("shared").send().await), "ResourceNotFoundException");

    let added = co
        .add_permission()
        .function_name("shared")
        .statement_id("friend")
        .action("lambda:InvokeFunction")
        .principal(&friend.account_id)
        .send()
        .await
        .expect("add permission");
    let statement: serde_json::Value = serde_json::from_str(added.statement().expect("statement")).expect("json");
    assert_eq!(statement["Principal"]["AWS"], format!("arn:aws:iam::{}:root", friend.account_id));
    assert_eq!(statement["Resource"], arn);
    assert_eq!(statement["Effect"], "Allow");

    let ran = cf
        .invoke()
        .function_name(&arn)
        .payload(aws_sdk_lambda::primitives::Blob::new(r#"{"x":1}"#))
        .send()
        .await
        .expect("friend invokes");
    assert_eq!(ran.payload().map(|p| p.as_ref().to_vec()), Some(br#"{"x": 1}"#.to_vec()));
    let dry = cf.invoke().function_name(&arn).invocation_type(InvocationType::DryRun).send().await.expect("dry run");
    assert_eq!(dry.status_code(), 204);
    assert_eq!(code_of(cs.invoke().function_name(&arn).send().await), "AccessDeniedException");
    assert_eq!(
        code_of(cf.get_function().function_name(&arn).send().await),
        "AccessDeniedException",
        "only InvokeFunction was granted"
    );

    let policy = co.get_policy().function_name("shared").send().await.expect("get policy");
    let doc: serde_json::Value = serde_json::from_str(policy.policy().expect("policy")).expect("json");
    assert_eq!(doc["Version"], "2012-10-17");
    assert_eq!(doc["Statement"].as_array().map(Vec::len), Some(1));
    assert!(policy.revision_id().is_some());

    co.remove_permission().function_name("shared").statement_id("friend").send().await.expect("remove");
    assert_eq!(code_of(cf.invoke().function_name(&arn).send().await), "AccessDeniedException", "revoked at once");
    assert_eq!(
        code_of(co.remove_permission().function_name("shared").statement_id("friend").send().await),
        "ResourceNotFoundException"
    );
}

async fn policies_are_scoped_to_the_arn(env: &TestEnv) {
    let owner = env.tenant().await;
    let friend = env.tenant().await;
    let co = env.lambda(&owner);
    let cf = env.lambda(&friend);
    create_python(&co, "scoped").publish(true).send().await.expect("create v1");
    co.create_alias().function_name("scoped").name("PROD").function_version("1").send().await.expect("alias");
    let base = format!("arn:aws:lambda:us-east-1:{}:function:scoped", owner.account_id);
    co.add_permission()
        .function_name("scoped")
        .qualifier("PROD")
        .statement_id("alias-only")
        .action("lambda:InvokeFunction")
        .principal(&friend.account_id)
        .send()
        .await
        .expect("alias permission");
    cf.invoke().function_name(format!("{base}:PROD")).send().await.expect("alias ARN allowed");
    for other in [base.clone(), format!("{base}:1"), format!("{base}:$LATEST")] {
        assert_eq!(code_of(cf.invoke().function_name(&other).send().await), "AccessDeniedException", "{other}");
    }
    co.add_permission()
        .function_name("scoped")
        .qualifier("1")
        .statement_id("v1")
        .action("lambda:*")
        .principal(&friend.account_id)
        .send()
        .await
        .expect("version permission");
    let ran = cf.invoke().function_name(format!("{base}:1")).send().await.expect("version ARN allowed");
    assert_eq!(ran.executed_version(), Some("1"));
    assert_eq!(code_of(cf.invoke().function_name(&base).send().await), "AccessDeniedException");
    co.delete_alias().function_name("scoped").name("PROD").send().await.expect("delete alias");
    co.create_alias().function_name("scoped").name("PROD").function_version("1").send().await.expect("recreate alias");
    assert_eq!(
        code_of(cf.invoke().function_name(format!("{base}:PROD")).send().await),
        "AccessDeniedException",
        "a deleted alias takes its policy with it"
    );
}

async fn policy_limits_and_errors(env: &TestEnv) {
    let owner = env.tenant().await;
    let co = env.lambda(&owner);
    create_python(&co, "pol").send().await.expect("create");
    let add = |sid: String| {
        co.add_permission()
            .function_name("pol")
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal("s3.amazonaws.com")
    };
    add("one".into()).source_arn("arn:aws:s3:::my-bucket").source_account("123456789012").send().await.expect("add");
    assert_eq!(code_of(add("one".into()).send().await), "ResourceConflictException");
    assert_eq!(code_of(add("bad sid".into()).send().await), "ValidationException");
    assert_eq!(code_of(add("q".into()).qualifier("7").send().await), "ResourceNotFoundException");
    assert_eq!(
        code_of(
            co.add_permission()
                .function_name("pol")
                .statement_id("x")
                .action("iam:PassRole")
                .principal("*")
                .send()
                .await
        ),
        "ValidationException"
    );
    let mut last = String::new();
    for i in 0..200 {
        let r =
            add(format!("statement-{i:03}")).source_arn(format!("arn:aws:s3:::bucket-{}", "b".repeat(40))).send().await;
        if r.is_err() {
            last = code_of(r);
            break;
        }
    }
    assert_eq!(last, "PolicyLengthExceededException");
    let policy = co.get_policy().function_name("pol").send().await.expect("policy");
    assert!(policy.policy().expect("doc").len() <= 20 * 1024, "the refused statement was not stored");
}

async fn concurrent_add_permission_keeps_every_statement(env: &TestEnv) {
    let owner = env.tenant().await;
    let co = env.lambda(&owner);
    create_python(&co, "busy").send().await.expect("create");
    let adds: Vec<_> = (0..20)
        .map(|i| {
            let co = co.clone();
            tokio::spawn(async move {
                co.add_permission()
                    .function_name("busy")
                    .statement_id(format!("sid-{i}"))
                    .action("lambda:InvokeFunction")
                    .principal("s3.amazonaws.com")
                    .send()
                    .await
            })
        })
        .collect();
    for add in adds {
        add.await.expect("join").expect("add permission");
    }
    let policy = co.get_policy().function_name("busy").send().await.expect("get policy");
    let doc: serde_json::Value = serde_json::from_str(policy.policy().expect("policy")).expect("json");
    let mut sids: Vec<_> =
        doc["Statement"].as_array().expect("statements").iter().filter_map(|s| s["Sid"].as_str()).collect();
    sids.sort_unstable();
    let mut expected: Vec<_> = (0..20).map(|i| format!("sid-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(sids, expected, "every concurrent AddPermission is in the policy");
}

async fn policy_revision_ids_guard_changes(env: &TestEnv) {
    let owner = env.tenant().await;
    let co = env.lambda(&owner);
    create_python(&co, "rev").send().await.expect("create");
    let add = |sid: &str| {
        co.add_permission().function_name("rev").statement_id(sid).action("lambda:InvokeFunction").principal("*")
    };
    add("a").send().await.expect("add a");
    let first = co.get_policy().function_name("rev").send().await.expect("policy").revision_id().map(str::to_owned);
    add("b").revision_id(first.clone().unwrap_or_default()).send().await.expect("add b at the current revision");
    let stale_message = "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to \
                         retrieve the latest Revision Id";
    assert_eq!(
        error_of(add("c").revision_id(first.clone().unwrap_or_default()).send().await),
        ("PreconditionFailedException".into(), stale_message.into())
    );
    assert_eq!(
        error_of(
            co.remove_permission()
                .function_name("rev")
                .statement_id("a")
                .revision_id(first.unwrap_or_default())
                .send()
                .await
        ),
        ("PreconditionFailedException".into(), stale_message.into())
    );
    assert_eq!(
        error_of(add("b").send().await),
        (
            "ResourceConflictException".into(),
            "The statement id (b) provided already exists. Please provide a new statement id, or remove the existing \
             statement."
                .into()
        )
    );
    assert_eq!(
        error_of(co.remove_permission().function_name("rev").statement_id("zzz").send().await),
        ("ResourceNotFoundException".into(), "Statement zzz is not found in resource policy.".into())
    );
    assert_eq!(
        error_of(add("q").qualifier("3").send().await),
        (
            "ResourceNotFoundException".into(),
            format!("Function not found: arn:aws:lambda:us-east-1:{}:function:rev:3", owner.account_id)
        )
    );
    let current = co.get_policy().function_name("rev").send().await.expect("policy");
    co.remove_permission()
        .function_name("rev")
        .statement_id("a")
        .revision_id(current.revision_id().unwrap_or_default())
        .send()
        .await
        .expect("remove at the current revision");
    co.remove_permission().function_name("rev").statement_id("b").send().await.expect("remove the last");
    assert_eq!(code_of(co.get_policy().function_name("rev").send().await), "ResourceNotFoundException");
}
