//! The gRPC service and `MetadataClient::Grpc` against the in-process `Metadata` on SQLite: the
//! same answers and the same errors, the client-side read cache, and failover past an address that
//! refuses connections.

use std::collections::BTreeMap;

use lamina_common::policy::Statement;
use lamina_metadata::{
    AliasPatch, FunctionPatch, Metadata, MetadataClient, NewAccount, NewAlias, NewFunction, RoutingConfig, SecretCipher,
};
use tokio_util::sync::CancellationToken;

struct Served {
    local: Metadata,
    client: MetadataClient,
    shutdown: CancellationToken,
    path: std::path::PathBuf,
}

impl Served {
    async fn start() -> Self {
        let path = std::env::temp_dir().join(format!("lamina-metadata-grpc-{}.db", uuid::Uuid::new_v4()));
        let local = Metadata::connect(&format!("sqlite://{}", path.display()), SecretCipher::new(&[7; 32]))
            .await
            .expect("connect metadata");
        let (incoming, addr) = lamina_rpc::transport::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
        let shutdown = CancellationToken::new();
        tokio::spawn(lamina_metadata::serve(local.clone(), incoming, shutdown.clone()));
        // An address nothing listens on comes first: calls must move on to the live one.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let client = MetadataClient::connect(&[dead.to_string(), addr.to_string()]).expect("client");
        Self { local, client, shutdown, path }
    }

    fn stop(self) {
        self.shutdown.cancel();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

fn function(name: &str) -> NewFunction {
    NewFunction {
        function_name: name.into(),
        description: "first".into(),
        runtime: "python3.11".into(),
        role: "arn:aws:iam::123456789012:role/r".into(),
        handler: "lambda_function.handler".into(),
        memory_size: 128,
        timeout: 3,
        environment: Some(r#"{"A":"1"}"#.into()),
        vpc_config: None,
        code_sha256: "ab".repeat(32),
        code_size: 100,
        ephemeral_storage: 512,
        dead_letter_arn: Some("arn:aws:sqs:us-east-1:123456789012:dlq".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_client_answers_as_the_in_process_one() {
    let s = Served::start().await;
    let c = &s.client;
    assert_eq!(c.engine(), "remote");
    assert_eq!(c.health().await.expect("health")["engine"], "sqlite");

    let key = c.create_account(NewAccount { name: "t".into(), ..NewAccount::default() }).await.expect("account");
    let acct = key.account_id.clone();
    let found = c.lookup_secret(&key.access_key_id).await.expect("lookup");
    assert_eq!(found, Some((acct.clone(), key.secret_access_key.clone())));
    assert_eq!(c.account_by_name("t").await.expect("by name").map(|a| a.account_id), Some(acct.clone()));
    assert_eq!(c.list_access_keys(&acct).await.expect("keys"), vec![key.access_key_id.clone()]);
    let second = c.create_access_key(&acct).await.expect("second key");
    c.delete_access_key(&acct, &second.access_key_id).await.expect("revoke");
    assert_eq!(c.lookup_secret(&second.access_key_id).await.expect("lookup"), None);
    let limits =
        lamina_metadata::AccountLimits { concurrent_executions: Some(50), ..lamina_metadata::AccountLimits::default() };
    assert_eq!(c.set_limits(&acct, limits).await.expect("limits").concurrent_executions, 50);
    assert_eq!(c.list_accounts().await.expect("accounts").len(), 1);

    // Errors travel as data.
    let missing = c.account("999999999999").await.expect_err("no such account");
    assert_eq!(missing.error_type(), "ResourceNotFoundException");

    let created = c.create_function(&acct, function("f"), true).await.expect("create");
    assert_eq!(created.environment.as_deref(), Some(r#"{"A":"1"}"#));
    let latest = c.get_version(&acct, "f", "$LATEST").await.expect("get").expect("exists");
    assert_eq!(Some(&latest), s.local.get_version(&acct, "f", "$LATEST").await.expect("local").as_ref());
    assert_eq!(c.list_versions(&acct, "f").await.expect("versions").len(), 2);
    assert_eq!(c.list_latest(&acct, None, 10).await.expect("list").len(), 1);
    assert_eq!(c.usage(&acct).await.expect("usage"), (200, 1));

    let stale = c.update_latest(&acct, "f", FunctionPatch::default(), Some("nope")).await.expect_err("stale");
    assert_eq!(stale.error_type(), "PreconditionFailedException");
    let patch =
        FunctionPatch { description: Some("second".into()), environment: Some(None), ..FunctionPatch::default() };
    let updated = c.update_latest(&acct, "f", patch, Some(&latest.revision_id)).await.expect("update");
    assert_eq!((updated.row.description.as_str(), updated.row.environment), ("second", None));
    let v2 = c.publish_version(&acct, "f", None, None, None).await.expect("publish");
    assert_eq!(v2.version, "2");

    let routing = RoutingConfig { weights: BTreeMap::from([("2".to_owned(), 0.25)]) };
    let new = NewAlias {
        alias_name: "live".into(),
        function_version: "1".into(),
        description: String::new(),
        routing_config: Some(routing.clone()),
    };
    let alias = c.create_alias(&acct, "f", new).await.expect("alias");
    assert_eq!(alias.routing().expect("routing"), routing);
    let resolved = c.resolve_version(&acct, "f", Some("live")).await.expect("resolve").expect("found");
    assert_eq!((resolved.row.version.as_str(), resolved.alias.as_ref()), ("1", Some(&alias)));

    // Invoke's reads are cached on the client: a write it did not make shows after invalidation.
    assert_eq!(c.get_alias(&acct, "f", "live").await.expect("alias").map(|a| a.function_version), Some("1".into()));
    let target = c.invoke_target(&acct, "f", "1").await.expect("target").expect("exists");
    assert_eq!((target.reserved, target.account_limit), (None, 50));
    let moved = AliasPatch {
        function_version: Some("2".into()),
        routing_config: Some(RoutingConfig::default()),
        ..AliasPatch::default()
    };
    s.local.update_alias(&acct, "f", "live", moved, None).await.expect("update elsewhere");
    s.local.put_reserved_concurrency(&acct, "f", 5).await.expect("reserve elsewhere");
    assert_eq!(c.get_alias(&acct, "f", "live").await.expect("alias").map(|a| a.function_version), Some("1".into()));
    c.invalidate_cache();
    assert_eq!(c.get_alias(&acct, "f", "live").await.expect("alias").map(|a| a.function_version), Some("2".into()));
    let target = c.invoke_target(&acct, "f", "1").await.expect("target").expect("exists");
    assert_eq!((target.reserved, target.reserved_total), (Some(5), 5));
    assert_eq!(c.reserved_concurrency(&acct, "f").await.expect("reserved"), Some(5));
    assert_eq!(c.reserved_total(&acct, Some("f")).await.expect("total"), 0);
    c.delete_reserved_concurrency(&acct, "f").await.expect("unreserve");

    let statement: Statement = serde_json::from_value(serde_json::json!({
        "Sid": "s1",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
    }))
    .expect("statement");
    let policy = c.add_permission(&acct, "f", "", statement.clone(), None).await.expect("add");
    let again = c.add_permission(&acct, "f", "", statement.clone(), None).await.expect_err("same sid");
    assert_eq!(again.error_type(), "ResourceConflictException");
    let read = c.get_policy(&acct, "f", "").await.expect("policy").expect("exists");
    assert_eq!((read.statements, read.revision_id), (vec![statement], policy.revision_id));
    let left = c.remove_permission(&acct, "f", "", "s1", None).await.expect("remove");
    assert!(left.statements.is_empty());

    assert!(c.delete_alias(&acct, "f", "live").await.expect("delete alias"));
    assert!(c.delete_version(&acct, "f", "1").await.expect("delete version").is_empty(), "the digest is still used");
    assert!(c.code_referenced(&"ab".repeat(32)).await.expect("referenced"), "$LATEST and 2 still use it");
    let shas = c.delete_function(&acct, "f").await.expect("delete function");
    assert_eq!(shas, vec!["ab".repeat(32)], "the last references went with the function");
    assert!(!c.code_referenced(&"ab".repeat(32)).await.expect("referenced"));
    s.stop();
}
