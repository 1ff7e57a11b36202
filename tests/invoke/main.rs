//! End-to-end Invoke through the Rust AWS SDK: real sandboxes running the Python, Node.js, Java and
//! custom (`provided*`) runtimes. Execution does not depend on the metadata engine, so every test
//! runs on SQLite, each with its own server.

mod custom;
mod ephemeral_storage;
mod isolation;
mod java;
mod limits;
mod matrix;
mod nodejs;
mod python;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::RequestId as _;
use aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder;
use aws_sdk_lambda::operation::invoke::builders::InvokeFluentBuilder;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LogType, Runtime};
use base64::Engine as _;
use lamina_tests::{Backend, Tenant, TestEnv};
use serde_json::Value;

pub use lamina_tests::{code_of, status_of};

/// A server on SQLite with one tenant and its client.
pub struct Fixture {
    pub env: TestEnv,
    pub tenant: Tenant,
    pub client: Client,
}

impl Fixture {
    /// Starts a server with a default tenant.
    pub async fn start() -> Self {
        Self::start_with(serde_json::json!({})).await
    }

    /// Starts a server whose tenant has the limits in `extra` (e.g. `ConcurrentExecutions`).
    pub async fn start_with(extra: Value) -> Self {
        let env = TestEnv::start(Backend::from_env()).await.expect("test target available");
        let tenant = env.tenant_with(extra).await;
        let client = env.lambda(&tenant);
        Self { env, tenant, client }
    }

    /// The unqualified ARN of one of the tenant's functions.
    pub fn arn(&self, name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{name}", self.env.region, self.tenant.account_id)
    }

    pub async fn stop(self) {
        self.env.stop().await;
    }
}

/// A CreateFunction request with a zip package, ready to adjust.
pub fn create(client: &Client, name: &str, runtime: &str, handler: &str, zip: Vec<u8>) -> CreateFunctionFluentBuilder {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::from(runtime))
        .role("arn:aws:iam::123456789012:role/lambda-role")
        .handler(handler)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
}

pub use lamina_tests::create_python;

/// What an AWS client sees of a completed (HTTP 200) synchronous Invoke.
#[derive(Debug)]
pub struct Invoked {
    pub status: i32,
    pub body: Vec<u8>,
    /// `X-Amz-Function-Error`.
    pub function_error: Option<String>,
    /// `X-Amz-Executed-Version`.
    pub executed_version: Option<String>,
    /// `x-amzn-RequestId`.
    pub request_id: String,
    /// The decoded `X-Amz-Log-Result` ("" when absent).
    pub log: String,
}

impl Invoked {
    /// The body as JSON (panics with the raw text if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a success and returns the result.
    pub fn ok(&self) -> Value {
        assert_eq!(self.function_error, None, "function failed: {}\nlog:\n{}", self.body_text(), self.log);
        self.json()
    }

    /// Asserts an `Unhandled` function error and returns the error document.
    pub fn unhandled(&self) -> Value {
        assert_eq!(self.status, 200, "function errors still answer 200");
        assert_eq!(
            self.function_error.as_deref(),
            Some("Unhandled"),
            "expected a function error, got {}\nlog:\n{}",
            self.body_text(),
            self.log
        );
        self.json()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An Invoke request of `payload` with the log tail requested.
pub fn invoke_request(client: &Client, function: &str, payload: impl Into<Vec<u8>>) -> InvokeFluentBuilder {
    client.invoke().function_name(function).log_type(LogType::Tail).payload(Blob::new(payload.into()))
}

/// Sends a prepared Invoke that must be answered with 200 and collects what the client sees.
pub async fn send(req: InvokeFluentBuilder) -> Invoked {
    let out = req.send().await.expect("invoke answered 200");
    let log = out
        .log_result()
        .map(|b64| {
            let raw = base64::engine::general_purpose::STANDARD.decode(b64).expect("log result is base64");
            String::from_utf8(raw).expect("log result is UTF-8")
        })
        .unwrap_or_default();
    Invoked {
        status: out.status_code(),
        body: out.payload().map(|b| b.as_ref().to_vec()).unwrap_or_default(),
        function_error: out.function_error().map(str::to_owned),
        executed_version: out.executed_version().map(str::to_owned),
        request_id: out.request_id().expect("x-amzn-RequestId").to_owned(),
        log,
    }
}

/// Invokes `function` with the JSON `event` and the log tail.
pub async fn invoke(client: &Client, function: &str, event: impl std::borrow::Borrow<Value>) -> Invoked {
    send(invoke_request(client, function, event.borrow().to_string())).await
}

/// Checks the START / END / REPORT lines of a log tail for request `id`; returns the REPORT line.
pub fn assert_platform_lines(log: &str, id: &str, memory_mb: u32) -> String {
    assert!(log.contains(&format!("START RequestId: {id} Version: $LATEST")), "START line missing:\n{log}");
    assert!(log.contains(&format!("END RequestId: {id}")), "END line missing:\n{log}");
    let report = log
        .lines()
        .find(|l| l.starts_with(&format!("REPORT RequestId: {id}\t")))
        .unwrap_or_else(|| panic!("REPORT line missing:\n{log}"))
        .to_owned();
    let re = regex::Regex::new(&format!(
        r"^REPORT RequestId: {id}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: {memory_mb} MB\tMax Memory Used: \d+ MB\t(Init Duration: \d+\.\d\d ms\t)?$"
    ))
    .expect("regex");
    assert!(re.is_match(&report), "REPORT line malformed: {report:?}");
    // LOGS-2: Billed Duration is Duration rounded up to the next 100 ms (TO-4: a timeout bills the timeout).
    let field = |name: &str| -> f64 {
        let rest = report.split(&format!("\t{name}: ")).nth(1).expect("field");
        rest.split(' ').next().and_then(|n| n.parse().ok()).expect("number")
    };
    let (duration, billed) = (field("Duration"), field("Billed Duration"));
    assert!(billed % 100.0 == 0.0 && billed >= 100.0, "billed in 100 ms steps: {report:?}");
    assert!(billed >= duration && billed - duration <= 100.0, "billed = duration rounded up: {report:?}");
    let start = log.find("START RequestId").expect("start");
    let end = log.find("END RequestId").expect("end");
    let rep = log.find("REPORT RequestId").expect("report");
    assert!(start < end && end < rep, "START, END, REPORT in order:\n{log}");
    report
}

/// Log events of a function through `GET /_lamina/v1/functions/{name}/logs`.
pub async fn log_messages(env: &TestEnv, t: &Tenant, function: &str) -> Vec<String> {
    env.log_messages(t, function).await
}
