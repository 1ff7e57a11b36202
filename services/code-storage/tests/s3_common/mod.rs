//! A real S3 server on a temp dir, driven with the real `aws-sdk-s3` client over loopback.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use lamina_code_storage::s3::{
    BoxFuture, Caller, CodeDownloads, Credentials, Delivery, ObjectEvents, S3Api, S3Config, S3Store, serve,
};
use lamina_code_storage::{CodeStorage, ZipLimits};
use tokio_util::sync::CancellationToken;

pub const ALICE: &str = "111111111111";
pub const BOB: &str = "222222222222";
pub const ALICE_KEY: (&str, &str) = ("AKIAALICE0000000", "alice-secret");
pub const BOB_KEY: (&str, &str) = ("AKIABOB000000000", "bob-secret");
pub const SESSION_KEY: (&str, &str) = ("ASIASESSION00000", "session-secret");
pub const SESSION_TOKEN: &str = "good-session-token";
pub const CODE_KEY: (&str, &str) = ("AKIACODEDOWNLOAD", "code-secret");
pub const CODE_BUCKET: &str = "lamina-code";

/// Two accounts' keys and one session key (Alice's) that needs its token.
pub struct Keys;

impl Credentials for Keys {
    fn lookup<'a>(
        &'a self,
        access_key_id: &'a str,
        session_token: Option<&'a str>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Caller>>> {
        Box::pin(async move {
            let caller = |account: &str, secret: &str| {
                Some(Caller { account_id: account.to_owned(), secret_access_key: secret.to_owned() })
            };
            Ok(match access_key_id {
                k if k == ALICE_KEY.0 => caller(ALICE, ALICE_KEY.1),
                k if k == BOB_KEY.0 => caller(BOB, BOB_KEY.1),
                k if k == SESSION_KEY.0 && session_token == Some(SESSION_TOKEN) => caller(ALICE, SESSION_KEY.1),
                _ => None,
            })
        })
    }
}

/// Records deliveries in memory (a test double of the async queue peer).
#[derive(Default)]
pub struct Events {
    pub delivered: Mutex<Vec<Delivery>>,
    pub refused: Mutex<HashSet<String>>,
    pub fail: AtomicBool,
}

impl Events {
    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.delivered.lock().unwrap())
    }
    pub fn set_fail(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
}

impl ObjectEvents for Events {
    fn check_destination<'a>(
        &'a self,
        _bucket_owner: &'a str,
        _bucket: &'a str,
        function_arn: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Result<(), String>>> {
        Box::pin(async move {
            if self.refused.lock().unwrap().contains(function_arn) {
                Ok(Err("no permission for s3.amazonaws.com".to_owned()))
            } else {
                Ok(Ok(()))
            }
        })
    }

    fn deliver<'a>(&'a self, deliveries: Vec<Delivery>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                anyhow::bail!("queue unavailable");
            }
            self.delivered.lock().unwrap().extend(deliveries);
            Ok(())
        })
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub events: Arc<Events>,
    pub code: CodeStorage,
    pub root: PathBuf,
    /// The server's own store, for calls the S3 API does not make (`read_object`).
    pub store: S3Store,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, Arc::new(Events::default()), 5).await
    }

    pub async fn start_with(dir: &Path, events: Arc<Events>, max_buckets: usize) -> Self {
        let root = dir.join("s3");
        let store = S3Store::open(&root).unwrap();
        let code = CodeStorage::open(dir.join("blobs"), ZipLimits::default()).unwrap();
        let config = S3Config {
            region: "us-east-1".to_owned(),
            base_domain: Some("s3.localhost".to_owned()),
            max_buckets_per_account: max_buckets,
            code_downloads: Some(CodeDownloads {
                access_key_id: CODE_KEY.0.to_owned(),
                secret_access_key: CODE_KEY.1.to_owned(),
                bucket: CODE_BUCKET.to_owned(),
            }),
        };
        let api = S3Api::new(store.clone(), code.clone(), Arc::new(Keys), events.clone(), None, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, api, shutdown.clone()));
        Self { addr, events, code, root, store, shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client(&self, key: (&str, &str)) -> aws_sdk_s3::Client {
        self.client_with(key.0, key.1, None)
    }

    pub fn client_with(&self, key: &str, secret: &str, token: Option<&str>) -> aws_sdk_s3::Client {
        let creds = aws_credential_types::Credentials::new(key, secret, token.map(str::to_owned), None, "test");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// The S3 error code and HTTP status of a failed call.
pub fn code_of<E>(err: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>) -> (String, u16)
where
    E: ProvideErrorMetadata,
{
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    (err.code().unwrap_or("<none>").to_owned(), status)
}

pub fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

pub fn md5_hex(data: &[u8]) -> String {
    use s3s::crypto::Checksum as _;
    let mut m = s3s::crypto::Md5::default();
    m.update(data);
    hex::encode(m.finalize())
}
