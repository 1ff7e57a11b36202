//! `EphemeralStorage` end to end: validated, stored, reported, carried to the host and applied as
//! the size of the sandbox's `/tmp` (a disk volume, not memory).

use aws_sdk_lambda::types::EphemeralStorage;
use serde_json::json;

use crate::{Fixture, create_python, invoke};

const DF: &str = r#"
import os
def handler(event, context):
    st = os.statvfs("/tmp")
    return st.f_blocks * st.f_frsize // (1024 * 1024)
"#;

fn size(mb: i32) -> EphemeralStorage {
    EphemeralStorage::builder().size(mb).build().expect("ephemeral storage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_storage_is_stored_reported_and_applied() {
    let fx = Fixture::start().await;
    let c = &fx.client;

    let bad = create_python(c, "df", DF).ephemeral_storage(size(100)).send().await;
    let err = bad.expect_err("512 MB is the minimum");
    let msg = err
        .as_service_error()
        .and_then(|e| aws_sdk_lambda::error::ProvideErrorMetadata::message(e))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        msg,
        "1 validation error detected: Value '100' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value greater than or equal to 512"
    );

    let created = create_python(c, "df", DF).ephemeral_storage(size(1024)).send().await.expect("create");
    assert_eq!(created.ephemeral_storage().map(|e| e.size()), Some(1024));
    let total = invoke(c, "df", &json!({})).await.ok().as_u64().expect("df");
    assert!((1024..=1075).contains(&total), "/tmp of EphemeralStorage 1024 is {total} MB");

    let updated = c
        .update_function_configuration()
        .function_name("df")
        .ephemeral_storage(size(2048))
        .send()
        .await
        .expect("update");
    assert_eq!(updated.ephemeral_storage().map(|e| e.size()), Some(2048));
    let got = c.get_function_configuration().function_name("df").send().await.expect("get");
    assert_eq!(got.ephemeral_storage().map(|e| e.size()), Some(2048));
    let published = c.publish_version().function_name("df").send().await.expect("publish");
    assert_eq!(published.ephemeral_storage().map(|e| e.size()), Some(2048));
    let listed = c.list_functions().send().await.expect("list");
    let row = listed.functions().iter().find(|f| f.function_name() == Some("df")).expect("listed");
    assert_eq!(row.ephemeral_storage().map(|e| e.size()), Some(2048));
    let total = invoke(c, "df", &json!({})).await.ok().as_u64().expect("df");
    assert!((2048..=2150).contains(&total), "/tmp after the update is {total} MB");

    // A function without the member gets Lambda's default.
    let plain = create_python(c, "plain", DF).send().await.expect("create");
    assert_eq!(plain.ephemeral_storage().map(|e| e.size()), Some(512));
    fx.stop().await;
}
