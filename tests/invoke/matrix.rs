//! The same behaviours exercised on every runtime kind, with the same assertions: context fields,
//! warm reuse (module state and `/tmp`), the log tail, timeout, memory overrun, a crash, an init
//! failure and an oversize response. Python has its own, deeper tests in python.rs; here it is the
//! reference the Node.js and custom runtimes are held to.

use std::time::{Duration, Instant};

use aws_sdk_lambda::types::Environment;
use lamina_tests::zip_of;
use serde_json::{Value, json};

use crate::{Fixture, assert_platform_lines, create, invoke};

const PYTHON: &str = r#"
import os

calls = 0
if os.environ.get("INIT_FAIL") == "1":
    raise RuntimeError("init failed on purpose")


def handler(event, context):
    global calls
    calls += 1
    if "sleep" in event:
        import time
        time.sleep(event["sleep"])
    if "allocate_mb" in event:
        keep = [bytearray(b"x" * (1024 * 1024)) for _ in range(event["allocate_mb"])]
        return len(keep)
    if "exit" in event:
        print("about to exit", flush=True)
        os._exit(event["exit"])
    if "respond_bytes" in event:
        return "x" * event["respond_bytes"]
    print("log line for", context.aws_request_id)
    try:
        tmp = open("/tmp/mark").read()
    except OSError:
        tmp = None
    open("/tmp/mark", "w").write("written by call %d" % calls)
    return {"calls": calls, "tmp": tmp, "context": {
        "function_name": context.function_name, "function_version": context.function_version,
        "memory_mb": str(context.memory_limit_in_mb), "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn, "log_group": context.log_group_name,
        "log_stream": context.log_stream_name, "remaining_ms": context.get_remaining_time_in_millis()}}
"#;

const NODE: &str = r#"
const fs = require('fs');
let calls = 0;
if (process.env.INIT_FAIL === '1') throw new Error('init failed on purpose');

exports.handler = async (event, context) => {
  calls += 1;
  if (event.sleep !== undefined) await new Promise((r) => setTimeout(r, event.sleep * 1000));
  if (event.allocate_mb !== undefined) {
    const keep = [];
    for (let i = 0; i < event.allocate_mb; i++) keep.push(Buffer.alloc(1024 * 1024, 1));
    return keep.length;
  }
  if (event.exit !== undefined) {
    console.log('about to exit');
    process.exit(event.exit);
  }
  if (event.respond_bytes !== undefined) return 'x'.repeat(event.respond_bytes);
  console.log('log line for', context.awsRequestId);
  let tmp = null;
  try { tmp = fs.readFileSync('/tmp/mark', 'utf8'); } catch (e) { tmp = null; }
  fs.writeFileSync('/tmp/mark', `written by call ${calls}`);
  return { calls, tmp, context: {
    function_name: context.functionName, function_version: context.functionVersion,
    memory_mb: String(context.memoryLimitInMB), request_id: context.awsRequestId,
    arn: context.invokedFunctionArn, log_group: context.logGroupName,
    log_stream: context.logStreamName, remaining_ms: context.getRemainingTimeInMillis() } };
};
"#;

/// A custom runtime: an executable `bootstrap` (Python, the host's interpreter) that speaks the
/// Runtime API itself and builds the context from the `/next` headers and the environment.
const CUSTOM: &str = r#"#!/usr/bin/python3
import http.client, json, os, time

api = os.environ["AWS_LAMBDA_RUNTIME_API"]


def call(method, path, body=None):
    conn = http.client.HTTPConnection(api)
    conn.request(method, "/2018-06-01/runtime" + path, body)
    resp = conn.getresponse()
    return resp, resp.read()


if os.environ.get("INIT_FAIL") == "1":
    print("init failed on purpose", flush=True)
    call("POST", "/init/error", json.dumps({"errorMessage": "init failed on purpose", "errorType": "Custom.InitError"}))
    raise SystemExit(1)
calls = 0
while True:
    resp, body = call("GET", "/invocation/next")
    rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(body)
    calls += 1
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "allocate_mb" in event:
        keep = [bytearray(b"x" * (1024 * 1024)) for _ in range(event["allocate_mb"])]
        result = len(keep)
    elif "exit" in event:
        print("about to exit", flush=True)
        os._exit(event["exit"])
    elif "respond_bytes" in event:
        result = "x" * event["respond_bytes"]
    else:
        print("log line for", rid, flush=True)
        try:
            tmp = open("/tmp/mark").read()
        except OSError:
            tmp = None
        open("/tmp/mark", "w").write("written by call %d" % calls)
        deadline = int(resp.getheader("Lambda-Runtime-Deadline-Ms"))
        result = {"calls": calls, "tmp": tmp, "context": {
            "function_name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            "function_version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
            "memory_mb": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "request_id": rid,
            "arn": resp.getheader("Lambda-Runtime-Invoked-Function-Arn"),
            "log_group": os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
            "log_stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
            "remaining_ms": deadline - int(time.time() * 1000)}}
    call("POST", "/invocation/%s/response" % rid, json.dumps(result))
"#;

struct Kind {
    runtime: &'static str,
    handler: &'static str,
    zip: Vec<u8>,
    /// The error document of an init failure: `(errorType, errorMessage)`.
    init_error: (&'static str, &'static str),
    /// The error document of a runtime that exits (status 3) mid-invocation, given the request id.
    crash: fn(&str) -> Value,
}

fn exit_error(request_id: &str) -> Value {
    json!({
        "errorType": "Runtime.ExitError",
        "errorMessage": format!("RequestId: {request_id} Error: Runtime exited with error: exit status 3"),
    })
}

fn python() -> Kind {
    Kind {
        runtime: "python3.11",
        handler: "lambda_function.handler",
        zip: lamina_tests::python_zip(PYTHON),
        init_error: ("RuntimeError", "init failed on purpose"),
        crash: exit_error,
    }
}

fn node() -> Kind {
    Kind {
        runtime: "nodejs20.x",
        handler: "index.handler",
        zip: zip_of(&[("index.js", NODE.as_bytes())]),
        init_error: ("Error", "init failed on purpose"),
        // semantics.md ERR: what a Node.js process dying mid-invocation reports.
        crash: |_| json!({"errorMessage": "Process exited before completing request"}),
    }
}

fn custom() -> Kind {
    Kind {
        runtime: "provided.al2023",
        handler: "unused",
        zip: zip_of(&[("bootstrap", CUSTOM.as_bytes())]),
        init_error: ("Custom.InitError", "init failed on purpose"),
        crash: exit_error,
    }
}

/// Runs every behaviour of the module docs against one runtime kind.
async fn exercise(kind: Kind) {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let make = |name: &str| create(c, name, kind.runtime, kind.handler, kind.zip.clone()).memory_size(128);
    make("fn").timeout(1).send().await.expect("create fn");

    // Context fields, the log tail, then warm reuse of module state and /tmp.
    let first = invoke(c, "fn", &json!({})).await;
    let got = first.ok();
    let ctx = &got["context"];
    assert_eq!(ctx["function_name"], "fn", "{got}");
    assert_eq!(ctx["function_version"], "$LATEST", "{got}");
    assert_eq!(ctx["memory_mb"], "128", "{got}");
    assert_eq!(ctx["request_id"], first.request_id.as_str(), "{got}");
    assert_eq!(ctx["arn"], fx.arn("fn"), "{got}");
    assert_eq!(ctx["log_group"], "/aws/lambda/fn", "{got}");
    assert!(ctx["log_stream"].as_str().is_some_and(|s| s.contains("/[$LATEST]")), "{got}");
    let remaining = ctx["remaining_ms"].as_i64().expect("remaining");
    assert!(remaining > 0 && remaining <= 1_000, "remaining time within the 1 s timeout: {got}");
    assert_eq!((got["calls"].clone(), got["tmp"].clone()), (json!(1), Value::Null), "a fresh sandbox: {got}");
    assert!(first.log.contains(&format!("log line for {}", first.request_id)), "output in the tail:\n{}", first.log);
    assert!(assert_platform_lines(&first.log, &first.request_id, 128).contains("Init Duration"), "{}", first.log);

    let second = invoke(c, "fn", &json!({})).await;
    let got = second.ok();
    assert_eq!(got["calls"], 2, "module state survives in a warm sandbox: {got}");
    assert_eq!(got["tmp"], "written by call 1", "/tmp survives in a warm sandbox: {got}");
    assert!(!second.log.contains("Init Duration"), "warm: no init:\n{}", second.log);

    // Timeout: ends at the deadline; the sandbox is replaced.
    let started = Instant::now();
    let timed_out = invoke(c, "fn", &json!({"sleep": 5})).await;
    assert!(started.elapsed() < Duration::from_secs(4), "stopped at the timeout: {:?}", started.elapsed());
    let doc = timed_out.unhandled();
    assert!(doc["errorMessage"].as_str().is_some_and(|m| m.ends_with("Task timed out after 1.00 seconds")), "{doc}");
    assert_eq!(invoke(c, "fn", &json!({})).await.ok()["calls"], 1, "a fresh sandbox after the timeout");

    // Memory overrun: 400 MB in a 128 MB function; the host and the function recover.
    make("hog").timeout(20).send().await.expect("create hog");
    let oom = invoke(c, "hog", &json!({"allocate_mb": 400})).await;
    assert_eq!(oom.unhandled()["errorType"], "Runtime.OutOfMemory", "{}", oom.body_text());
    assert_eq!(invoke(c, "hog", &json!({"allocate_mb": 16})).await.ok(), json!(16), "recovers");

    // A crash mid-invocation.
    let crashed = invoke(c, "fn", &json!({"exit": 3})).await;
    assert_eq!(crashed.unhandled(), (kind.crash)(&crashed.request_id));
    assert!(crashed.log.contains("about to exit"), "output before the crash is kept:\n{}", crashed.log);

    // An oversize response (from the function with time to build it at 128 MB's CPU share).
    let huge = invoke(c, "hog", &json!({"respond_bytes": 7 * 1024 * 1024})).await;
    assert_eq!(huge.unhandled()["errorType"], "Function.ResponseSizeTooLarge", "{}", huge.body_text());

    // An init failure.
    let env = Environment::builder().variables("INIT_FAIL", "1").build();
    make("broken").environment(env).send().await.expect("create broken");
    let broken = invoke(c, "broken", &json!({})).await;
    let doc = broken.unhandled();
    assert_eq!(
        (doc["errorType"].as_str(), doc["errorMessage"].as_str()),
        (Some(kind.init_error.0), Some(kind.init_error.1))
    );
    assert!(broken.log.contains("init failed on purpose"), "the init failure is logged:\n{}", broken.log);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_behaves_like_lambda() {
    exercise(python()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_behaves_like_lambda() {
    exercise(node()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_runtime_behaves_like_lambda() {
    exercise(custom()).await;
}
