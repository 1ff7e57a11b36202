//! One package shared by two accounts (blobs are content-addressed): one account creating and
//! deleting functions of it over and over, the other creating functions of it at the same time.
//! No function of the second account may ever lose its code.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::FunctionCode;
use lamina_tests::{TestEnv, backend_tests, python_zip};

use crate::create_python;

backend_tests!(deleting_a_shared_package_never_takes_it_from_another_account);

const ROUNDS: usize = 40;

async fn deleting_a_shared_package_never_takes_it_from_another_account(env: &TestEnv) {
    let (churner, keeper) = (env.tenant().await, env.tenant().await);
    let (cc, ck) = (env.lambda(&churner), env.lambda(&keeper));
    let zip = python_zip("def handler(event, context):\n    return 'shared'\n");
    let code = || FunctionCode::builder().zip_file(Blob::new(zip.clone())).build();

    let churn = {
        let (cc, code) = (cc.clone(), code());
        tokio::spawn(async move {
            for i in 0..ROUNDS * 2 {
                let name = format!("churn-{i}");
                create_python(&cc, &name).code(code.clone()).send().await.expect("churner creates");
                cc.delete_function().function_name(&name).send().await.expect("churner deletes");
            }
        })
    };
    let mut kept = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("keep-{i}");
        create_python(&ck, &name).code(code()).send().await.expect("keeper creates");
        kept.push(name);
        // Every package the keeper's functions refer to is stored, at every moment.
        for name in &kept {
            assert_blob_present(&ck, name, &zip).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(50), churn).await.expect("churn finishes").expect("churn task");
    for name in &kept {
        assert_blob_present(&ck, name, &zip).await;
    }
    let ran = ck.invoke().function_name("keep-0").send().await.expect("invoke");
    assert_eq!(ran.function_error(), None, "{:?}", ran.payload());
    assert_eq!(ran.payload().map(|p| p.as_ref().to_vec()), Some(b"\"shared\"".to_vec()));
}

/// The function's package is stored: downloaded through GetFunction's `Code.Location`, as every
/// reader of a package (an execution host, this URL) gets it.
async fn assert_blob_present(client: &aws_sdk_lambda::Client, name: &str, zip: &[u8]) {
    let got = client.get_function().function_name(name).send().await.expect("get function");
    let url = got.code().and_then(|c| c.location()).expect("code location");
    let resp = reqwest::get(url).await.expect("download package");
    assert_eq!(resp.status().as_u16(), 200, "{name} lost its package");
    assert_eq!(resp.bytes().await.expect("package bytes").as_ref(), zip, "{name}'s package changed");
}
