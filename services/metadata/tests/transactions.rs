//! Contract tests of the metadata rules that must hold as one transaction, on SQLite and Postgres.
//!
//! Postgres tests create a fresh database on `LAMINA_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`) and are skipped when it is unreachable outside CI.

use std::collections::BTreeMap;
use std::time::Duration;

use lamina_common::ApiError;
use lamina_common::policy::Statement;
use lamina_metadata::{
    AliasPatch, CodeRef, FunctionPatch, Metadata, NewAccount, NewAlias, NewFunction, RoutingConfig, SecretCipher,
};
use sqlx::Connection as _;

/// Generates one test per engine for each listed async fn taking `Metadata`.
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let path = std::env::temp_dir().join(format!("lamina-metadata-{}.db", uuid::Uuid::new_v4()));
                    let md = super::connect(&format!("sqlite://{}", path.display())).await;
                    super::$name(md).await;
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some((url, db)) = super::postgres_database().await else { return };
                    let md = super::connect(&url).await;
                    super::$name(md.clone()).await;
                    drop(md);
                    super::drop_postgres_database(&db).await;
                }
            )*
        }
    };
}

engine_tests!(
    concurrent_add_permission_keeps_every_statement,
    permission_rules_and_messages,
    concurrent_creates_stay_within_the_storage_quota,
    update_latest_applies_a_patch_under_its_guards,
    concurrent_code_updates_stay_within_the_storage_quota,
    delete_version_reads_alias_routing,
    only_digests_nothing_refers_to_are_released,
    alias_rules_and_messages,
);

fn postgres_base() -> String {
    std::env::var("LAMINA_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn admin_connection() -> Option<sqlx::PgConnection> {
    let url = format!("{}/postgres", postgres_base());
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => Some(conn),
        outcome => {
            assert!(std::env::var_os("CI").is_none(), "Postgres is required under CI: {outcome:?}");
            eprintln!("skipping: Postgres unreachable");
            None
        }
    }
}

async fn postgres_database() -> Option<(String, String)> {
    let mut conn = admin_connection().await?;
    let name = format!("lamina_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    Some((format!("{}/{name}", postgres_base()), name))
}

async fn drop_postgres_database(name: &str) {
    if let Some(mut conn) = admin_connection().await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("drop database if exists \"{name}\" with (force)")))
            .execute(&mut conn)
            .await;
    }
}

async fn connect(url: &str) -> Metadata {
    Metadata::connect(url, SecretCipher::new(&[7; 32])).await.expect("connect metadata")
}

async fn account(md: &Metadata, code_storage_bytes: Option<i64>) -> String {
    let name = format!("t-{}", uuid::Uuid::new_v4());
    md.create_account(NewAccount { name, code_storage_bytes, ..NewAccount::default() })
        .await
        .expect("account")
        .account_id
}

fn function(name: &str, sha: &str, size: i64) -> NewFunction {
    NewFunction {
        function_name: name.into(),
        description: String::new(),
        runtime: "python3.11".into(),
        role: "arn:aws:iam::123456789012:role/r".into(),
        handler: "lambda_function.handler".into(),
        memory_size: 128,
        timeout: 3,
        environment: None,
        vpc_config: None,
        code_sha256: sha.into(),
        code_size: size,
        ephemeral_storage: 512,
        dead_letter_arn: None,
    }
}

fn statement(sid: &str) -> Statement {
    Statement {
        sid: sid.into(),
        effect: "Allow".into(),
        principal: serde_json::json!({ "Service": "s3.amazonaws.com" }),
        action: "lambda:InvokeFunction".into(),
        resource: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        condition: None,
    }
}

fn code(sha: &str, size: i64) -> FunctionPatch {
    FunctionPatch { code: Some(CodeRef { sha256_hex: sha.into(), size }), ..FunctionPatch::default() }
}

/// Publishes `$LATEST` after giving it a distinct digest, so every call makes a new version.
async fn publish_new(md: &Metadata, acct: &str, name: &str, tag: &str) -> String {
    md.update_latest(acct, name, code(tag, 10), None).await.expect("update code");
    md.publish_version(acct, name, None, None, None).await.expect("publish").version
}

fn routing(version: &str, weight: f64) -> RoutingConfig {
    RoutingConfig { weights: BTreeMap::from([(version.to_owned(), weight)]) }
}

fn message(err: ApiError) -> (String, String) {
    let kind = format!("{err:?}").split('(').next().unwrap_or_default().to_owned();
    (kind, err.to_string())
}

async fn concurrent_add_permission_keeps_every_statement(md: Metadata) {
    let acct = account(&md, None).await;
    md.create_function(&acct, function("f", "aa", 10), false).await.expect("create");
    let adds: Vec<_> = (0..20)
        .map(|i| {
            let (md, acct) = (md.clone(), acct.clone());
            tokio::spawn(async move { md.add_permission(&acct, "f", "", statement(&format!("s{i}")), None).await })
        })
        .collect();
    for add in adds {
        add.await.expect("join").expect("add permission");
    }
    let policy = md.get_policy(&acct, "f", "").await.expect("get").expect("policy");
    assert_eq!(policy.statements.len(), 20, "a concurrent add lost a statement");
}

async fn permission_rules_and_messages(md: Metadata) {
    let acct = account(&md, None).await;
    md.create_function(&acct, function("f", "aa", 10), true).await.expect("create v1");
    let first = md.add_permission(&acct, "f", "", statement("one"), None).await.expect("add");
    let dup = md.add_permission(&acct, "f", "", statement("one"), None).await.expect_err("duplicate sid");
    assert_eq!(
        message(dup),
        (
            "ResourceConflict".into(),
            "The statement id (one) provided already exists. Please provide a new statement id, or remove the \
             existing statement."
                .into()
        )
    );
    let stale = md.add_permission(&acct, "f", "", statement("two"), Some("stale")).await.expect_err("stale");
    assert_eq!(message(stale).0, "PreconditionFailed");
    let second =
        md.add_permission(&acct, "f", "", statement("two"), Some(&first.revision_id)).await.expect("current revision");
    assert_eq!(second.statements.len(), 2);

    let missing = md.add_permission(&acct, "f", "7", statement("x"), None).await.expect_err("no version 7");
    assert_eq!(
        message(missing),
        ("ResourceNotFound".into(), format!("Function not found: arn:aws:lambda::{acct}:function:f:7"))
    );
    let no_alias = md.add_permission(&acct, "f", "PROD", statement("x"), None).await.expect_err("no alias");
    assert_eq!(message(no_alias).0, "ResourceNotFound");
    let no_fn = md.add_permission(&acct, "g", "", statement("x"), None).await.expect_err("no function");
    assert_eq!(message(no_fn).1, format!("Function not found: arn:aws:lambda::{acct}:function:g"));
    md.add_permission(&acct, "f", "1", statement("v1"), None).await.expect("version policy");
    assert!(md.get_policy(&acct, "f", "").await.expect("get").is_some_and(|p| p.statements.len() == 2));

    let gone = md.remove_permission(&acct, "f", "", "nope", None).await.expect_err("no such sid");
    assert_eq!(message(gone), ("ResourceNotFound".into(), "Statement nope is not found in resource policy.".into()));
    let stale = md.remove_permission(&acct, "f", "", "one", Some(&first.revision_id)).await.expect_err("stale");
    assert_eq!(message(stale).0, "PreconditionFailed");
    let left = md.remove_permission(&acct, "f", "", "one", Some(&second.revision_id)).await.expect("remove");
    assert_eq!(left.statements.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(), ["two"]);
    md.remove_permission(&acct, "f", "", "two", None).await.expect("remove last");
    assert!(md.get_policy(&acct, "f", "").await.expect("get").is_none());

    // The size limit counts the document GetPolicy returns; the refused statement is not stored.
    let mut last = None;
    for i in 0..40 {
        let mut big = statement(&format!("big-{i}"));
        big.condition = Some(serde_json::json!({ "ArnLike": { "AWS:SourceArn": "x".repeat(1000) } }));
        if let Err(err) = md.add_permission(&acct, "f", "", big, None).await {
            last = Some(message(err));
            break;
        }
    }
    let (kind, text) = last.expect("the limit was reached");
    assert_eq!(kind, "PolicyLengthExceeded");
    assert!(text.ends_with("is bigger than the limit (20480)."), "{text}");
    let stored = md.get_policy(&acct, "f", "").await.expect("get").expect("policy");
    assert!(stored.document().len() <= lamina_metadata::MAX_POLICY_BYTES);
}

async fn concurrent_creates_stay_within_the_storage_quota(md: Metadata) {
    let acct = account(&md, Some(500)).await;
    let creates: Vec<_> = (0..10)
        .map(|i| {
            let (md, acct) = (md.clone(), acct.clone());
            tokio::spawn(async move { md.create_function(&acct, function(&format!("f{i}"), "aa", 100), false).await })
        })
        .collect();
    let mut created = 0;
    for create in creates {
        match create.await.expect("join") {
            Ok(_) => created += 1,
            Err(ApiError::CodeStorageExceeded(_)) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 5, "the quota fits exactly five");
    assert_eq!(md.usage(&acct).await.expect("usage"), (500, 5));
}

async fn update_latest_applies_a_patch_under_its_guards(md: Metadata) {
    let acct = account(&md, Some(100)).await;
    let created = md.create_function(&acct, function("f", "aa", 40), false).await.expect("create");
    let patch = FunctionPatch {
        description: Some("new".into()),
        timeout: Some(9),
        environment: Some(Some(r#"{"A":"1"}"#.into())),
        ..FunctionPatch::default()
    };
    let updated = md.update_latest(&acct, "f", patch, Some(&created.revision_id)).await.expect("update");
    assert_eq!((updated.row.description.as_str(), updated.row.timeout), ("new", 9));
    assert_eq!(updated.row.handler, created.handler, "fields the patch does not name are kept");
    assert_eq!(updated.replaced_code_sha256, None);
    assert_ne!(updated.row.revision_id, created.revision_id);

    let stale = md.update_latest(&acct, "f", code("bb", 40), Some(&created.revision_id)).await.expect_err("stale");
    assert_eq!(
        message(stale),
        (
            "PreconditionFailed".into(),
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to \
             retrieve the latest Revision Id"
                .into()
        )
    );
    let cleared = md
        .update_latest(&acct, "f", FunctionPatch { environment: Some(None), ..FunctionPatch::default() }, None)
        .await
        .expect("clear environment");
    assert_eq!(cleared.row.environment, None);

    let too_big = md.update_latest(&acct, "f", code("cc", 101), None).await.expect_err("over quota");
    assert_eq!(message(too_big).0, "CodeStorageExceeded");
    let swapped = md.update_latest(&acct, "f", code("dd", 100), None).await.expect("replacing code frees its size");
    assert_eq!(swapped.replaced_code_sha256.as_deref(), Some("aa"));
    let row = md.get_version(&acct, "f", "$LATEST").await.expect("get").expect("row");
    assert_eq!((row.code_sha256.as_str(), row.code_size, row.timeout), ("dd", 100, 9));

    let none = md.update_latest(&acct, "g", code("ee", 1), None).await.expect_err("no function");
    assert_eq!(message(none).1, format!("Function not found: arn:aws:lambda::{acct}:function:g"));
}

async fn concurrent_code_updates_stay_within_the_storage_quota(md: Metadata) {
    let acct = account(&md, Some(1000)).await;
    for i in 0..8 {
        md.create_function(&acct, function(&format!("f{i}"), "aa", 10), false).await.expect("create");
    }
    // 80 bytes used; each update grows one function by 190, so four fit (80 + 4 * 190 = 840).
    let updates: Vec<_> = (0..8)
        .map(|i| {
            let (md, acct) = (md.clone(), acct.clone());
            tokio::spawn(async move { md.update_latest(&acct, &format!("f{i}"), code("bb", 200), None).await })
        })
        .collect();
    let mut grown = 0;
    for update in updates {
        match update.await.expect("join") {
            Ok(_) => grown += 1,
            Err(ApiError::CodeStorageExceeded(_)) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(grown, 4);
    assert_eq!(md.usage(&acct).await.expect("usage").0, 840);
}

async fn delete_version_reads_alias_routing(md: Metadata) {
    let acct = account(&md, None).await;
    md.create_function(&acct, function("f", "v1", 10), true).await.expect("create v1");
    for i in 2..=11 {
        assert_eq!(publish_new(&md, &acct, "f", &format!("v{i}")).await, i.to_string());
    }
    let alias = NewAlias {
        alias_name: "LIVE".into(),
        function_version: "10".into(),
        description: String::new(),
        routing_config: Some(routing("11", 0.25)),
    };
    md.create_alias(&acct, "f", alias).await.expect("alias");
    md.add_permission(&acct, "f", "11", statement("v11"), None).await.expect("version policy");

    let blocked = md.delete_version(&acct, "f", "11").await.expect_err("weighted version");
    assert_eq!(
        message(blocked),
        (
            "ResourceConflict".into(),
            "Unable to delete version because the following aliases reference it: [LIVE]".into()
        )
    );
    assert!(md.get_version(&acct, "f", "11").await.expect("get").is_some());
    assert!(md.get_policy(&acct, "f", "11").await.expect("get").is_some(), "the refused delete kept the policy");
    let primary = md.delete_version(&acct, "f", "10").await.expect_err("primary version");
    assert_eq!(message(primary).0, "ResourceConflict");
    assert_eq!(md.delete_version(&acct, "f", "1").await.expect("1 is not 11 or 10"), vec!["v1".to_string()]);
    assert_eq!(md.delete_version(&acct, "f", "2").await.expect("unreferenced"), vec!["v2".to_string()]);
    let missing = md.delete_version(&acct, "f", "2").await.expect_err("already gone");
    assert_eq!(message(missing).1, format!("Function not found: arn:aws:lambda::{acct}:function:f:2"));

    md.update_alias(
        &acct,
        "f",
        "LIVE",
        AliasPatch { routing_config: Some(RoutingConfig::default()), ..Default::default() },
        None,
    )
    .await
    .expect("drop routing");
    md.delete_version(&acct, "f", "11").await.expect("no longer referenced");
    assert!(md.get_policy(&acct, "f", "11").await.expect("get").is_none(), "its policy went with it");
}

async fn only_digests_nothing_refers_to_are_released(md: Metadata) {
    let acct = account(&md, None).await;
    let other = account(&md, None).await;
    md.create_function(&acct, function("f", "shared", 10), true).await.expect("create f + version 1");
    md.create_function(&other, function("g", "shared", 10), false).await.expect("another account, same package");
    // f: $LATEST moves to new code; version 1 and g still hold the old digest.
    let moved = md.update_latest(&acct, "f", code("fresh", 10), None).await.expect("update code");
    assert_eq!(moved.replaced_code_sha256, None, "version 1 still refers to it");
    assert_eq!(md.delete_version(&acct, "f", "1").await.expect("delete 1"), Vec::<String>::new(), "g refers to it");
    let gone = md.delete_function(&other, "g").await.expect("delete g");
    assert_eq!(gone, vec!["shared".to_string()], "the last reference went with g");
    let back = md.update_latest(&acct, "f", code("other", 10), None).await.expect("update again");
    assert_eq!(back.replaced_code_sha256.as_deref(), Some("fresh"), "nothing else refers to it");
    assert_eq!(md.delete_function(&acct, "f").await.expect("delete f"), vec!["other".to_string()]);
}

async fn alias_rules_and_messages(md: Metadata) {
    let acct = account(&md, None).await;
    md.create_function(&acct, function("f", "v1", 10), true).await.expect("create v1");
    publish_new(&md, &acct, "f", "v2").await;
    let new = |version: &str, routing: Option<RoutingConfig>| NewAlias {
        alias_name: "A".into(),
        function_version: version.into(),
        description: "d".into(),
        routing_config: routing,
    };
    let cases: Vec<(NewAlias, (&str, String))> = vec![
        (new("9", None), ("ResourceNotFound", format!("Function not found: arn:aws:lambda::{acct}:function:f:9"))),
        (
            new("$LATEST", Some(routing("2", 0.5))),
            ("InvalidParameterValue", "$LATEST is not supported for an alias pointing to more than 1 version".into()),
        ),
        (
            new("1", Some(RoutingConfig { weights: BTreeMap::from([("2".into(), 0.1), ("3".into(), 0.1)]) })),
            ("InvalidParameterValue", "Only one additional version can be specified.".into()),
        ),
        (
            new("1", Some(routing("1", 0.5))),
            (
                "InvalidParameterValue",
                "Invalid function version 1. Function version 1 is already included in primary version or is not a \
                 published version."
                    .into(),
            ),
        ),
        (
            new("1", Some(routing("2", 1.5))),
            ("InvalidParameterValue", "Invalid weight 1.5: must be between 0.0 and 1.0".into()),
        ),
        (
            new("1", Some(routing("5", 0.5))),
            ("ResourceNotFound", format!("Function not found: arn:aws:lambda::{acct}:function:f:5")),
        ),
    ];
    for (alias, (kind, text)) in cases {
        let err = md.create_alias(&acct, "f", alias.clone()).await.expect_err("refused");
        assert_eq!(message(err), (kind.to_owned(), text), "{alias:?}");
    }
    let no_fn = md.create_alias(&acct, "g", new("1", None)).await.expect_err("no function");
    assert_eq!(message(no_fn).1, format!("Function not found: arn:aws:lambda::{acct}:function:g"));
    assert!(md.list_aliases(&acct, "f").await.expect("list").is_empty(), "nothing was stored");

    let created = md.create_alias(&acct, "f", new("1", Some(routing("2", 0.5)))).await.expect("create");
    assert_eq!(created.routing_config.as_deref(), Some(r#"{"AdditionalVersionWeights":{"2":0.5}}"#));
    let taken = md.create_alias(&acct, "f", new("2", None)).await.expect_err("taken");
    assert_eq!(message(taken).1, format!("Alias already exists: arn:aws:lambda::{acct}:function:f:A"));

    let stale = md
        .update_alias(&acct, "f", "A", AliasPatch { description: Some("x".into()), ..Default::default() }, Some("old"))
        .await
        .expect_err("stale");
    assert_eq!(message(stale).0, "PreconditionFailed");
    let missing = md.update_alias(&acct, "f", "B", AliasPatch::default(), None).await.expect_err("no alias");
    assert_eq!(message(missing).1, format!("Alias not found: arn:aws:lambda::{acct}:function:f:B"));
    // The kept routing config must fit a changed primary version.
    let clash = md
        .update_alias(&acct, "f", "A", AliasPatch { function_version: Some("2".into()), ..Default::default() }, None)
        .await
        .expect_err("primary equals the weighted version");
    assert_eq!(message(clash).0, "InvalidParameterValue");
    let updated = md
        .update_alias(
            &acct,
            "f",
            "A",
            AliasPatch { description: Some("kept routing".into()), ..Default::default() },
            Some(&created.revision_id),
        )
        .await
        .expect("update");
    assert_eq!(updated.routing_config, created.routing_config, "UpdateAlias keeps what it does not name");
    assert_eq!((updated.function_version.as_str(), updated.description.as_str()), ("1", "kept routing"));
    assert_ne!(updated.revision_id, created.revision_id);
}
