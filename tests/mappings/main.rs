//! Event-source mappings through the Rust AWS SDK: CRUD, the state machine the poller manager
//! drives, validation per source kind, pagination and tenant isolation, on SQLite and Postgres (and
//! the lifecycle once on a cluster, where the manager runs in the async-queue processes).
//!
//! Enabled mappings start real pollers, so these tests need the servers `scripts/test.sh` starts
//! (moto's SQS, kinesalite, RabbitMQ) and refuse to run when the SDK endpoints are not on loopback:
//! a poller must never reach a real AWS endpoint from a test.

mod lifecycle;
mod listing;
mod validation;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::operation::get_event_source_mapping::GetEventSourceMappingOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use lamina_tests::{TestEnv, python_zip, wait_until};

/// One `#[tokio::test]` per engine (in-process `lamina serve`) for each listed async fn.
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = lamina_tests::TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite");
                    super::$name(&env).await;
                    env.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(env) = lamina_tests::TestEnv::start(lamina_tests::Backend::Postgres).await else { return };
                    super::$name(&env).await;
                    env.stop().await;
                }
            )*
        }
    };
}

/// Panics unless the SDK endpoints the pollers use point at this machine (see the module docs).
pub fn require_local_servers() {
    for name in ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_KINESIS", "LAMINA_AMQP_URL"] {
        let value = std::env::var(name).unwrap_or_default();
        let host = value.split("://").nth(1).unwrap_or_default().rsplit('@').next().unwrap_or_default();
        assert!(
            host.starts_with("127.0.0.1") || host.starts_with("localhost"),
            "{name}={value:?} is not a loopback server: run the tests through scripts/test.sh"
        );
    }
}

/// Creates the Python function `name` and returns its unqualified ARN.
pub async fn function(client: &aws_sdk_lambda::Client, name: &str, publish: bool) -> String {
    let out = client
        .create_function()
        .function_name(name)
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler("lambda_function.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip("def handler(event, context):\n    return {}\n")))
                .build(),
        )
        .publish(publish)
        .send()
        .await
        .expect("CreateFunction");
    let arn = out.function_arn().expect("FunctionArn");
    // A published version's ARN ends in `:1`.
    if publish { arn.rsplit_once(':').map(|(base, _)| base.to_owned()).expect("qualified") } else { arn.to_owned() }
}

/// Records the HTTP status of the answer an SDK call got (the SDK hides it on success).
#[derive(Debug, Clone, Default)]
pub struct StatusProbe(Arc<Mutex<Option<u16>>>);

impl StatusProbe {
    pub fn status(&self) -> Option<u16> {
        *self.0.lock().expect("probe lock")
    }
}

impl Intercept for StatusProbe {
    fn name(&self) -> &'static str {
        "StatusProbe"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self.0.lock().expect("probe lock") = Some(context.response().status().as_u16());
        Ok(())
    }
}

/// Waits until the mapping reaches `state` (the poller manager settles transitions about once a second).
pub async fn wait_for_state(client: &aws_sdk_lambda::Client, uuid: &str, state: &str) -> GetEventSourceMappingOutput {
    wait_until(Duration::from_secs(30), &format!("mapping {uuid} {state}"), || async {
        let m = client.get_event_source_mapping().uuid(uuid).send().await.ok()?;
        (m.state() == Some(state)).then_some(m)
    })
    .await
}

/// Waits until GetEventSourceMapping answers 404 (a deleted mapping is removed once settled).
pub async fn wait_until_gone(client: &aws_sdk_lambda::Client, uuid: &str) -> (String, String) {
    wait_until(Duration::from_secs(30), &format!("mapping {uuid} gone"), || async {
        match client.get_event_source_mapping().uuid(uuid).send().await {
            Ok(_) => None,
            Err(e) => Some(lamina_tests::error_of::<_, ()>(Err(e))),
        }
    })
    .await
}

/// Makes another (simulated) replica hold the mapping's lease, as a second async-queue process
/// would: this server's manager may then neither poll nor settle the mapping.
pub async fn hold_lease_elsewhere(env: &TestEnv, uuid: &str) {
    let key = lamina_event_sources::pollers::lease_key(uuid);
    let far = chrono::Utc::now().timestamp_millis() + 600_000;
    lamina_metadata::on_pool!(env.server.metadata.store(), pool => {
        sqlx::query(
            "insert into event_source_leases (lease_key, owner, expires_at, created_at, updated_at) \
             values ($1, 'another-replica', $2, $2, $2) \
             on conflict (lease_key) do update set owner = excluded.owner, expires_at = excluded.expires_at",
        )
        .bind(&key)
        .bind(far)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .expect("take the lease");
}

/// The simulated replica gives the lease up.
pub async fn release_lease_elsewhere(env: &TestEnv, uuid: &str) {
    let key = lamina_event_sources::pollers::lease_key(uuid);
    lamina_metadata::on_pool!(env.server.metadata.store(), pool => {
        sqlx::query("delete from event_source_leases where lease_key = $1 and owner = 'another-replica'")
            .bind(&key)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .expect("release the lease");
}

/// Rows of `table` naming mapping `uuid` (checkpoints and leases the API cannot show).
pub async fn rows_naming(env: &TestEnv, table: &str, uuid: &str) -> i64 {
    let sql = match table {
        "event_source_checkpoints" => "select count(*) from event_source_checkpoints where uuid = $1",
        "event_source_leases" => "select count(*) from event_source_leases where lease_key like '%' || $1 || '%'",
        other => panic!("unknown table {other}"),
    };
    lamina_metadata::on_pool!(env.server.metadata.store(), pool => {
        sqlx::query_scalar::<_, i64>(sql).bind(uuid).fetch_one(pool).await
    })
    .expect("count rows")
}
