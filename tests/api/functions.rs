//! The function lifecycle: create, read, list, update, delete.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode};
use base64::Engine as _;
use lamina_tests::{TestEnv, backend_tests, python_zip};
use sha2::{Digest, Sha256};

use crate::{code_of, create_python, error_of};

backend_tests!(
    lifecycle_reports_every_field,
    list_paginates_over_many_functions,
    updates_change_only_what_they_name,
    published_rows_are_immutable_in_the_database,
    deleting_frees_unreferenced_blobs,
    account_settings_report_usage,
    code_storage_quota_is_enforced,
    code_updates_check_revision_and_quota,
);

async fn lifecycle_reports_every_field(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let zip = python_zip("def handler(event, context):\n    return 1\n");
    let created = crate::create_python(&c, "lifecycle")
        .code(FunctionCode::builder().zip_file(Blob::new(zip.clone())).build())
        .description("first")
        .environment(Environment::builder().variables("GREETING", "hi").build())
        .send()
        .await
        .expect("create");
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
    assert_eq!(created.code_sha256(), Some(sha.as_str()));
    assert_eq!(created.code_size(), zip.len() as i64);
    assert_eq!(created.version(), Some("$LATEST"));
    assert_eq!(created.timeout(), Some(3));
    assert_eq!(created.memory_size(), Some(128));
    assert_eq!(created.description(), Some("first"));
    let arn = format!("arn:aws:lambda:us-east-1:{}:function:lifecycle", t.account_id);
    assert_eq!(created.function_arn(), Some(arn.as_str()));
    let lm = created.last_modified().expect("last modified");
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$").expect("re");
    assert!(re.is_match(lm), "{lm}");
    assert_eq!(
        created.environment().and_then(|e| e.variables()).and_then(|v| v.get("GREETING")).map(String::as_str),
        Some("hi")
    );

    for name in [
        "lifecycle",
        arn.as_str(),
        &format!("{}:function:lifecycle", t.account_id),
        &format!("{}:lifecycle", t.account_id),
    ] {
        let got = c.get_function_configuration().function_name(name).send().await.expect("get by any name form");
        assert_eq!(got.function_name(), Some("lifecycle"), "{name}");
        assert_eq!(got.code_sha256(), Some(sha.as_str()));
    }
    let qualified = c
        .get_function_configuration()
        .function_name("lifecycle")
        .qualifier("$LATEST")
        .send()
        .await
        .expect("qualified $LATEST");
    assert_eq!(qualified.version(), Some("$LATEST"));

    c.delete_function().function_name("lifecycle").send().await.expect("delete");
    let gone = c.get_function().function_name("lifecycle").send().await;
    assert_eq!(code_of(gone), "ResourceNotFoundException");
    let again = c.delete_function().function_name("lifecycle").send().await;
    assert_eq!(code_of(again), "ResourceNotFoundException");
}

// Code.Location downloads: tests/s3/packages.rs (the URL is a presigned GET on the S3 API).

async fn list_paginates_over_many_functions(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let total = 105;
    for i in 0..total {
        create_python(&c, &format!("fn-{i:03}")).send().await.expect("create");
    }
    let mut seen = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = c.list_functions().set_marker(marker.clone()).send().await.expect("list");
        assert!(page.functions().len() <= 50, "AWS caps a page at 50");
        seen.extend(page.functions().iter().filter_map(|f| f.function_name().map(str::to_owned)));
        pages += 1;
        match page.next_marker() {
            Some(m) => marker = Some(m.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..total).map(|i| format!("fn-{i:03}")).collect();
    assert_eq!(seen, expected, "every function exactly once, in order");

    let mut small = Vec::new();
    let mut marker = None;
    loop {
        let page = c.list_functions().max_items(7).set_marker(marker.clone()).send().await.expect("list");
        assert!(page.functions().len() <= 7);
        small.extend(page.functions().iter().filter_map(|f| f.function_name().map(str::to_owned)));
        match page.next_marker() {
            Some(m) => marker = Some(m.to_owned()),
            None => break,
        }
    }
    assert_eq!(small, expected);
    let bad = c.list_functions().marker("%%%not-a-marker").send().await;
    assert_eq!(code_of(bad), "InvalidParameterValueException");
    let zero = c.list_functions().max_items(0).send().await;
    assert_eq!(code_of(zero), "ValidationException");
}

async fn updates_change_only_what_they_name(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let created = create_python(&c, "upd")
        .environment(Environment::builder().variables("AA", "1").variables("BB", "2").build())
        .send()
        .await
        .expect("create");
    let updated = c
        .update_function_configuration()
        .function_name("upd")
        .memory_size(256)
        .timeout(10)
        .environment(Environment::builder().variables("CC", "3").build())
        .send()
        .await
        .expect("update config");
    assert_eq!(updated.memory_size(), Some(256));
    assert_eq!(updated.timeout(), Some(10));
    assert_eq!(updated.handler(), created.handler(), "untouched members keep their value");
    let vars = updated.environment().and_then(|e| e.variables()).expect("vars");
    assert_eq!(vars.len(), 1, "Environment replaces the whole map: {vars:?}");
    assert_ne!(updated.revision_id(), created.revision_id());

    let stale = c
        .update_function_configuration()
        .function_name("upd")
        .revision_id(created.revision_id().unwrap_or_default())
        .description("stale")
        .send()
        .await;
    assert_eq!(code_of(stale), "PreconditionFailedException");

    let zip = python_zip("def handler(event, context):\n    return 'v2'\n");
    let new_code = c
        .update_function_code()
        .function_name("upd")
        .zip_file(Blob::new(zip.clone()))
        .send()
        .await
        .expect("update code");
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
    assert_eq!(new_code.code_sha256(), Some(sha.as_str()));
    assert_eq!(new_code.memory_size(), Some(256), "code update keeps configuration");

    let qualified = c.update_function_configuration().function_name("upd:1").timeout(5).send().await;
    assert_eq!(code_of(qualified), "InvalidParameterValueException");
    let mismatch = c.get_function().function_name("upd:1").qualifier("2").send().await;
    assert_eq!(code_of(mismatch), "InvalidParameterValueException");
    let after = c.get_function_configuration().function_name("upd").send().await.expect("get");
    assert_eq!(after.timeout(), Some(10), "failed updates changed nothing");
    let missing = c.update_function_configuration().function_name("nope").timeout(5).send().await;
    assert_eq!(code_of(missing), "ResourceNotFoundException");
}

async fn published_rows_are_immutable_in_the_database(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let v1 = create_python(&c, "frozen").publish(true).send().await.expect("create+publish");
    assert_eq!(v1.version(), Some("1"));
    let arn = format!("arn:aws:lambda:us-east-1:{}:function:frozen:1", t.account_id);
    assert_eq!(v1.function_arn(), Some(arn.as_str()));
    let direct = env
        .server
        .metadata
        .store()
        .execute_raw("update function_versions set timeout = 99 where function_name = 'frozen' and version = '1'")
        .await;
    assert!(direct.is_err(), "the schema must refuse to change a published version");
    let latest = env
        .server
        .metadata
        .store()
        .execute_raw(
            "update function_versions set description = 'x' where function_name = 'frozen' and version = '$LATEST'",
        )
        .await;
    assert_eq!(latest.expect("$LATEST is mutable"), 1);
    let got = c.get_function_configuration().function_name("frozen").qualifier("1").send().await.expect("get v1");
    assert_eq!(got.timeout(), Some(3));
}

async fn deleting_frees_unreferenced_blobs(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let zip = python_zip("def handler(event, context):\n    return 'shared'\n");
    let hex_sha = hex::encode(Sha256::digest(&zip));
    for name in ["share-a", "share-b"] {
        create_python(&c, name)
            .code(FunctionCode::builder().zip_file(Blob::new(zip.clone())).build())
            .send()
            .await
            .expect("create");
    }
    let blob = env.blob_dir().join(&hex_sha);
    assert!(blob.exists());
    c.delete_function().function_name("share-a").send().await.expect("delete a");
    assert!(blob.exists(), "still referenced by share-b");
    c.delete_function().function_name("share-b").send().await.expect("delete b");
    assert!(!blob.exists(), "no reference left");
}

async fn account_settings_report_usage(env: &TestEnv) {
    let t = env.tenant_with(serde_json::json!({"ConcurrentExecutions": 7})).await;
    let c = env.lambda(&t);
    let a = create_python(&c, "use-a").send().await.expect("create");
    create_python(&c, "use-b").publish(true).send().await.expect("create");
    let s = c.get_account_settings().send().await.expect("settings");
    let limit = s.account_limit().expect("limit");
    assert_eq!(limit.concurrent_executions(), 7);
    assert_eq!(limit.code_size_zipped(), 52_428_800);
    assert_eq!(limit.code_size_unzipped(), 262_144_000);
    let usage = s.account_usage().expect("usage");
    assert_eq!(usage.function_count(), 2);
    assert_eq!(usage.total_code_size(), a.code_size() * 3, "$LATEST twice plus version 1");
}

async fn code_storage_quota_is_enforced(env: &TestEnv) {
    let one = python_zip("def handler(event, context):\n    return event\n").len() as i64;
    let t = env.tenant_with(serde_json::json!({"CodeStorageBytes": one * 2 + 10})).await;
    let c = env.lambda(&t);
    create_python(&c, "q1").send().await.expect("first fits");
    create_python(&c, "q2").send().await.expect("second fits");
    let third = create_python(&c, "q3").send().await;
    assert_eq!(code_of(third), "CodeStorageExceededException");
    let listed = c.list_functions().send().await.expect("list");
    assert_eq!(listed.functions().len(), 2, "the refused function was not created");
}

async fn code_updates_check_revision_and_quota(env: &TestEnv) {
    let small = python_zip("def handler(event, context):\n    return event\n");
    let t = env.tenant_with(serde_json::json!({"CodeStorageBytes": small.len() as i64 + 200})).await;
    let c = env.lambda(&t);
    let created = create_python(&c, "cu").send().await.expect("create");
    // Letters from an LCG: deflate cannot shrink them below the quota's 200 spare bytes.
    let noise: String = (0..4000u32)
        .scan(12345u32, |seed, _| {
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            Some(char::from(b'a' + ((*seed >> 16) % 26) as u8))
        })
        .collect();
    let big = python_zip(&format!("def handler(event, context):\n    return {noise:?}\n"));
    assert_eq!(
        error_of(c.update_function_code().function_name("cu").zip_file(Blob::new(big)).send().await),
        ("CodeStorageExceededException".into(), "Code storage limit exceeded.".into())
    );
    let other = python_zip("def handler(event, context):\n    return 2\n");
    let updated = c
        .update_function_code()
        .function_name("cu")
        .zip_file(Blob::new(other.clone()))
        .revision_id(created.revision_id().unwrap_or_default())
        .send()
        .await
        .expect("update at the current revision");
    assert_ne!(updated.code_sha256(), created.code_sha256());
    let stale = c
        .update_function_code()
        .function_name("cu")
        .zip_file(Blob::new(small))
        .revision_id(created.revision_id().unwrap_or_default())
        .send()
        .await;
    assert_eq!(
        error_of(stale),
        (
            "PreconditionFailedException".into(),
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to \
             retrieve the latest Revision Id"
                .into()
        )
    );
    let now = c.get_function_configuration().function_name("cu").send().await.expect("get");
    assert_eq!(now.code_sha256(), updated.code_sha256(), "refused updates changed nothing");
    assert_eq!(now.revision_id(), updated.revision_id());
    assert_eq!(
        error_of(c.update_function_code().function_name("nope").zip_file(Blob::new(other)).send().await),
        (
            "ResourceNotFoundException".into(),
            format!("Function not found: arn:aws:lambda:us-east-1:{}:function:nope", t.account_id)
        )
    );
}
