//! Environment variables are sealed at rest: neither the database row nor the SQLite file holds
//! them, while the API and the sandbox still see the plaintext; rows written in plaintext before
//! sealing existed keep working and are sealed at the next start.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode};
use lamina_tests::{Backend, TestEnv, backend_tests, python_zip};

use crate::create_python;

backend_tests!(environment_variables_are_sealed_at_rest, plaintext_rows_from_before_sealing_keep_working);

const SECRET: &str = "hunter2-6f1c";

/// Every stored `environment` value of the account's functions, straight from the database.
async fn stored_environments(env: &TestEnv, account_id: &str) -> Vec<Option<String>> {
    lamina_metadata::on_pool!(env.server.metadata.store(), pool => {
        sqlx::query_scalar::<_, Option<String>>("select environment from function_versions where account_id = $1")
            .bind(account_id)
            .fetch_all(pool)
            .await
    })
    .expect("read rows")
}

/// Every SQLite file (database, WAL, shared memory) under the data directory.
fn sqlite_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() {
            out.extend(sqlite_files(&path));
        } else if name.contains(".db") {
            out.push(path);
        }
    }
    out
}

async fn environment_variables_are_sealed_at_rest(env: &TestEnv) {
    let owner = env.tenant().await;
    let client = env.lambda(&owner);
    let code = "import os\ndef handler(event, context):\n    return os.environ.get('SECRET')\n";
    create_python(&client, "sealed")
        .code(FunctionCode::builder().zip_file(Blob::new(python_zip(code))).build())
        .environment(Environment::builder().variables("SECRET", SECRET).build())
        .publish(true)
        .send()
        .await
        .expect("create");

    let rows = stored_environments(env, &owner.account_id).await;
    assert_eq!(rows.len(), 2, "$LATEST and version 1");
    for row in &rows {
        let row = row.as_deref().expect("variables stored");
        assert!(!row.contains(SECRET) && !row.contains("SECRET"), "stored in plaintext: {row}");
    }
    if env.backend == Backend::Sqlite {
        let files = sqlite_files(env.data_dir.path());
        assert!(!files.is_empty(), "no SQLite file found");
        for file in files {
            let bytes = std::fs::read(&file).expect("read database file");
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{} holds the secret",
                file.display()
            );
        }
    }

    let config = client.get_function_configuration().function_name("sealed").send().await.expect("configuration");
    let vars = config.environment().and_then(|e| e.variables()).expect("variables");
    assert_eq!(vars.get("SECRET").map(String::as_str), Some(SECRET));
    let version = client.get_function_configuration().function_name("sealed:1").send().await.expect("version 1");
    assert_eq!(
        version.environment().and_then(|e| e.variables()).and_then(|v| v.get("SECRET")).map(String::as_str),
        Some(SECRET)
    );
    let ran = client.invoke().function_name("sealed").send().await.expect("invoke");
    assert_eq!(ran.function_error(), None, "{:?}", ran.payload());
    assert_eq!(
        ran.payload().map(|p| p.as_ref().to_vec()),
        Some(format!("\"{SECRET}\"").into_bytes()),
        "the sandbox sees it"
    );

    // Sealing differs each time, yet unchanged variables are still "nothing to publish".
    client
        .update_function_configuration()
        .function_name("sealed")
        .environment(Environment::builder().variables("SECRET", SECRET).build())
        .send()
        .await
        .expect("same variables again");
    let published = client.publish_version().function_name("sealed").send().await.expect("publish");
    assert_eq!(published.version(), Some("1"), "same code and configuration publish no new version");
}

async fn plaintext_rows_from_before_sealing_keep_working(env: &TestEnv) {
    let owner = env.tenant().await;
    let client = env.lambda(&owner);
    create_python(&client, "legacy").send().await.expect("create");
    let legacy = format!(r#"{{"OLD":"{SECRET}"}}"#);
    lamina_metadata::on_pool!(env.server.metadata.store(), pool => {
        sqlx::query("update function_versions set environment = $1 where account_id = $2")
            .bind(&legacy)
            .bind(&owner.account_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
    })
    .expect("write a plaintext row as an old release did");
    env.server.metadata.invalidate_cache();
    let config = client.get_function_configuration().function_name("legacy").send().await.expect("plaintext row");
    let vars = config.environment().and_then(|e| e.variables()).expect("variables");
    assert_eq!(vars.get("OLD").map(String::as_str), Some(SECRET), "a plaintext row still reads");
    let sealed = env.server.metadata.seal_plaintext_environments().await.expect("seal at start");
    assert_eq!(sealed, 1);
    let rows = stored_environments(env, &owner.account_id).await;
    assert!(rows.iter().all(|r| r.as_deref().is_some_and(|r| !r.contains(SECRET))), "{rows:?}");
    let config = client.get_function_configuration().function_name("legacy").send().await.expect("configuration");
    let vars = config.environment().and_then(|e| e.variables()).expect("variables");
    assert_eq!(vars.get("OLD").map(String::as_str), Some(SECRET));
}
