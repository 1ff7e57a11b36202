//! The sandbox environment holds only the Lambda variables and the function's own (its own test
//! binary, because it changes the process environment).
#![allow(unsafe_code)]

mod common;

use common::{TestHost, json};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_scrubbed() {
    // SAFETY: this binary holds only this test and sets the variable before starting any
    // thread that reads the environment.
    unsafe { std::env::set_var("HOST_SECRET", "do-not-leak") };
    assert_eq!(std::env::var("HOST_SECRET").as_deref(), Ok("do-not-leak"));
    let t = TestHost::start().await;
    let mut f = t.py_function("envfn");
    f.environment.insert("MY_VAR".into(), "mine".into());
    let out = t.invoke(&f, json!({"action": "env"})).await;
    let v = json(&out);
    let keys: Vec<&str> = v.as_object().expect("env object").keys().map(String::as_str).collect();
    let allowed = [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "_HANDLER",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "AWS_LAMBDA_RUNTIME_API",
        "TZ",
        "LANG",
        "PATH",
        "MY_VAR",
        // Added by the Python interpreter itself.
        "LC_CTYPE",
    ];
    for k in &keys {
        assert!(allowed.contains(k), "unexpected variable {k} in {v}");
    }
    assert_eq!(v["MY_VAR"], "mine");
    assert_eq!(v["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128");
    assert_eq!(v["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/envfn");
    assert_eq!(v["LAMBDA_TASK_ROOT"], "/var/task");
    assert_eq!(v["_HANDLER"], "function.handler");
    assert_eq!(v["AWS_EXECUTION_ENV"], "AWS_Lambda_provided.al2023");
    assert!(v.get("HOST_SECRET").is_none());
    let stream = v["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().expect("stream");
    let hex = stream.rsplit(']').next().expect("hex part");
    assert!(stream.contains("/[$LATEST]") && hex.len() == 32, "{stream}");
    t.host.shutdown().await;
}
