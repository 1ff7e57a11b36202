//! The Python runtime: results, the context object, environment, errors, logs, reuse, timeouts,
//! memory and crashes (semantics INV, ERR, TO, MEM, ENV, LOGS; programming-model §4-§7).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::Environment;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::{Fixture, assert_platform_lines, create_python, invoke, invoke_request, send};

/// Returns what it is asked for: the event, a constant, nothing, or its context and environment.
const PROBE: &str = r#"
import os

def handler(event, context):
    what = event.get("what") if isinstance(event, dict) else None
    if what == "string":
        return "value1"
    if what == "none":
        return None
    if what == "context":
        cc = context.client_context
        return {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "client_context": None if cc is None else {
                "installation_id": cc.client.installation_id,
                "custom": cc.custom,
                "env": cc.env,
            },
        }
    if what == "environ":
        return dict(os.environ)
    return event
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_results_and_context() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "probe", PROBE).timeout(7).send().await.expect("create");

    // INV-2: the result is the JSON of what the handler returned.
    let event = json!({"key1": "value1", "key2": "value2", "nested": {"list": [1, 2.5, "three", null, true]}});
    let echoed = invoke(c, "probe", &event).await;
    assert_eq!(echoed.status, 200);
    assert_eq!(echoed.ok(), event);
    assert_eq!(echoed.executed_version.as_deref(), Some("$LATEST"), "INV-13: X-Amz-Executed-Version");
    let string = invoke(c, "probe", &json!({"what": "string"})).await;
    assert_eq!(string.body_text(), r#""value1""#, "a string result keeps its quotes");
    let none = invoke(c, "probe", &json!({"what": "none"})).await;
    assert_eq!(none.function_error, None);
    assert_eq!(none.body_text(), "null", "no value is the body null");
    let empty = c.invoke().function_name("probe").send().await.expect("invoke without payload");
    assert_eq!(empty.payload().map(|p| p.as_ref().to_vec()), Some(b"null".to_vec()), "no payload: event None");

    // programming-model §4: the context object, invoked by name.
    let ctx = invoke(c, "probe", &json!({"what": "context"})).await;
    let got = ctx.ok();
    assert_eq!(got["function_name"], "probe");
    assert_eq!(got["function_version"], "$LATEST");
    assert_eq!(got["invoked_function_arn"], fx.arn("probe"), "a bare name is reported as the unqualified ARN");
    assert_eq!(got["memory_limit_in_mb"], "128", "a string of digits, the default 128");
    assert_eq!(got["aws_request_id"], ctx.request_id.as_str(), "INV-11: the same id as x-amzn-RequestId");
    assert_eq!(got["log_group_name"], "/aws/lambda/probe");
    let stream = got["log_stream_name"].as_str().expect("log stream");
    let stream_re = regex::Regex::new(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$").expect("re");
    assert!(stream_re.is_match(stream), "log stream name {stream}");
    let remaining = got["remaining"].as_i64().expect("remaining is an integer");
    assert!(remaining > 0 && remaining <= 7_000, "TO-5: remaining {remaining} ms within the 7 s timeout");
    assert_eq!(got["client_context"], Value::Null, "no client context unless supplied");

    // The ARN form used is the ARN reported: unqualified ARN and $LATEST-qualified.
    let by_arn = invoke(c, &fx.arn("probe"), &json!({"what": "context"})).await.ok();
    assert_eq!(by_arn["invoked_function_arn"], fx.arn("probe"));
    let qualified = send(invoke_request(c, "probe", json!({"what": "context"}).to_string()).qualifier("$LATEST")).await;
    assert_eq!(qualified.ok()["invoked_function_arn"], format!("{}:$LATEST", fx.arn("probe")));
    assert_eq!(qualified.executed_version.as_deref(), Some("$LATEST"));

    // INV-12: X-Amz-Client-Context is visible to the handler.
    let client_context = json!({"client": {"installation_id": "x"}, "custom": {"k": "v"}, "env": {}});
    let encoded = base64::engine::general_purpose::STANDARD.encode(client_context.to_string());
    let with_cc =
        send(invoke_request(c, "probe", json!({"what": "context"}).to_string()).client_context(encoded)).await.ok();
    assert_eq!(with_cc["client_context"], json!({"installation_id": "x", "custom": {"k": "v"}, "env": {}}));

    // Configured memory is reported as configured.
    create_python(c, "probe-256", PROBE).memory_size(256).send().await.expect("create 256");
    let big = invoke(c, "probe-256", &json!({"what": "context"})).await;
    assert_eq!(big.ok()["memory_limit_in_mb"], "256");
    assert_platform_lines(&big.log, &big.request_id, 256);
    fx.stop().await;
}

/// The variables a Lambda runtime may see besides the function's own (programming-model §7).
const LAMBDA_VARS: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_S3",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
    "TZ",
    "LANG",
    "LD_LIBRARY_PATH",
    "NODE_PATH",
    "PYTHONPATH",
    "PATH",
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sees_lambda_environment_only() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "envy", PROBE)
        .memory_size(192)
        .environment(Environment::builder().variables("GREETING", "hello").variables("EMPTY_ISH", " ").build())
        .send()
        .await
        .expect("create");
    let got = invoke(c, "envy", &json!({"what": "environ"})).await.ok();
    let environ: BTreeMap<String, String> = serde_json::from_value(got).expect("environ is a string map");

    assert_eq!(environ["GREETING"], "hello", "Environment.Variables are visible");
    assert_eq!(environ["EMPTY_ISH"], " ");
    assert_eq!(environ["AWS_LAMBDA_FUNCTION_NAME"], "envy");
    assert_eq!(environ["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "192");
    assert_eq!(environ["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/envy");
    assert_eq!(environ["AWS_REGION"], fx.env.region);
    assert_eq!(environ["AWS_DEFAULT_REGION"], fx.env.region);
    assert_eq!(environ["AWS_EXECUTION_ENV"], "AWS_Lambda_python3.11");
    assert_eq!(environ["_HANDLER"], "lambda_function.handler");
    assert_eq!(environ["LAMBDA_TASK_ROOT"], "/var/task");
    assert_eq!(environ["LAMBDA_RUNTIME_DIR"], "/var/runtime");
    assert_eq!(environ["TZ"], ":UTC");
    assert!(environ.contains_key("AWS_LAMBDA_RUNTIME_API"));
    assert!(environ.contains_key("_X_AMZN_TRACE_ID"), "the invocation's trace id");
    // Temporary credentials of the function's account, never the tenant's own keys, and this
    // installation's APIs on the sandbox's loopback.
    assert!(environ["AWS_ACCESS_KEY_ID"].starts_with("ASIA"), "session key id: {}", environ["AWS_ACCESS_KEY_ID"]);
    assert_ne!(environ["AWS_ACCESS_KEY_ID"], fx.tenant.access_key_id);
    assert!(!environ["AWS_SESSION_TOKEN"].is_empty());
    assert_eq!(environ["AWS_ENDPOINT_URL_LAMBDA"], "http://127.0.0.1:9000");
    assert_eq!(environ["AWS_ENDPOINT_URL_S3"], "http://127.0.0.1:9002");

    let own: BTreeSet<&str> = ["GREETING", "EMPTY_ISH"].into();
    // Python itself adds LC_CTYPE=C.UTF-8 when the locale LANG names is not installed (PEP 538).
    let python_own = |k: &str| k == "LC_CTYPE" && environ[k] == "C.UTF-8";
    let unexpected: Vec<&String> = environ
        .keys()
        .filter(|k| !own.contains(k.as_str()) && !LAMBDA_VARS.contains(&k.as_str()) && !python_own(k))
        .collect();
    assert!(unexpected.is_empty(), "only Lambda's and the function's variables: also saw {unexpected:?}");
    // Nothing of the host's environment (this test process runs the server) leaks in.
    let host: Vec<String> = std::env::vars().map(|(k, _)| k).filter(|k| !LAMBDA_VARS.contains(&k.as_str())).collect();
    assert!(!host.is_empty(), "the test process has variables of its own (HOME, CARGO_*, ...)");
    let leaked: Vec<&String> = host.iter().filter(|k| environ.contains_key(*k)).collect();
    assert!(leaked.is_empty(), "host variables visible to the function: {leaked:?}");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_errors_are_unhandled_with_aws_payloads() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let raising = "def handler(event, context):\n    raise ValueError('I failed!')\n";
    create_python(c, "raises", raising).send().await.expect("create raises");
    create_python(c, "syntax", "def handler(event, context)\n    return 1\n").send().await.expect("create syntax");
    create_python(c, "imports", "import no_such_module_here\n\ndef handler(event, context):\n    return 1\n")
        .send()
        .await
        .expect("create imports");
    create_python(c, "nohandler", "def other(event, context):\n    return 1\n").send().await.expect("create nohandler");
    create_python(c, "unmarshal", "def handler(event, context):\n    return {1, 2}\n").send().await.expect("create");
    let ev = json!({});
    let (raised, syntax, import, missing, unmarshal) = tokio::join!(
        invoke(c, "raises", &ev),
        invoke(c, "syntax", &ev),
        invoke(c, "imports", &ev),
        invoke(c, "nohandler", &ev),
        invoke(c, "unmarshal", &ev)
    );

    // ERR Decision: an exception escaping the handler is Unhandled; ERR-4 body shape.
    let doc = raised.unhandled();
    assert_eq!(doc["errorMessage"], "I failed!");
    assert_eq!(doc["errorType"], "ValueError");
    let trace = doc["stackTrace"].as_array().expect("stackTrace is a list");
    assert!(!trace.is_empty(), "{doc}");
    assert!(
        trace.iter().any(|f| f.to_string().contains("/var/task/lambda_function.py")),
        "frames name the file: {doc}"
    );
    assert!(trace.iter().any(|f| f.to_string().contains("raise ValueError")), "frames carry the source: {doc}");
    assert!(
        !trace.iter().any(|f| f.to_string().contains("bootstrap.py") || f.to_string().contains("lamina_runtime")),
        "the runtime's own frames are hidden: {doc}"
    );
    assert!(raised.log.contains("I failed!"), "ERR-5: the error is logged:\n{}", raised.log);
    assert!(raised.log.contains("Traceback (most recent call last):"), "ERR-7: with its traceback:\n{}", raised.log);
    assert_platform_lines(&raised.log, &raised.request_id, 128);
    assert_eq!(raised.executed_version.as_deref(), Some("$LATEST"));

    let doc = syntax.unhandled();
    assert_eq!(doc["errorType"], "Runtime.UserCodeSyntaxError", "{doc}");
    let msg = doc["errorMessage"].as_str().expect("message");
    assert!(msg.starts_with("Syntax error in module 'lambda_function': "), "{msg}");

    let doc = import.unhandled();
    assert_eq!(doc["errorType"], "Runtime.ImportModuleError", "{doc}");
    let msg = doc["errorMessage"].as_str().expect("message");
    assert!(msg.starts_with("Unable to import module 'lambda_function': "), "{msg}");
    assert!(msg.contains("no_such_module_here"), "{msg}");

    let doc = missing.unhandled();
    assert_eq!(doc["errorType"], "Runtime.HandlerNotFound", "{doc}");
    assert_eq!(doc["errorMessage"], "Handler 'handler' missing on module 'lambda_function'");

    // programming-model §5.4: a result that is not JSON-serialisable is an error.
    let doc = unmarshal.unhandled();
    assert_eq!(doc["errorType"], "Runtime.MarshalError", "{doc}");

    // A raising handler leaves the sandbox usable; an init failure is retried from scratch.
    let again = invoke(c, "raises", &ev).await;
    assert_eq!(again.unhandled()["errorType"], "ValueError");
    let again = invoke(c, "nohandler", &ev).await;
    assert_eq!(again.unhandled()["errorType"], "Runtime.HandlerNotFound");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_output_reaches_the_log_tail() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let source = r#"
import logging
import sys

logger = logging.getLogger()
logger.setLevel(logging.INFO)
print("init-time print")

def handler(event, context):
    print("printed line", event["n"])
    logger.info("logged line %s", event["n"])
    print("to stderr", file=sys.stderr)
    return event["n"]
"#;
    create_python(c, "logs", source).send().await.expect("create");

    let cold = invoke(c, "logs", &json!({"n": 1})).await;
    assert_eq!(cold.ok(), json!(1));
    let id = &cold.request_id;
    let report = assert_platform_lines(&cold.log, id, 128);
    assert!(report.contains("\tInit Duration: "), "cold start reports Init Duration: {report:?}");
    assert!(cold.log.contains("printed line 1\n"), "print output as is:\n{}", cold.log);
    assert!(cold.log.contains("to stderr\n"), "stderr is captured:\n{}", cold.log);
    assert!(cold.log.contains("init-time print\n"), "init output goes to the first log:\n{}", cold.log);
    let logged = cold.log.lines().find(|l| l.ends_with("logged line 1")).expect("logging line");
    let re =
        regex::Regex::new(&format!(r"^\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{id}\tlogged line 1$"))
            .expect("re");
    assert!(re.is_match(logged), "LOGS-3 logging format: {logged:?}");
    let start = cold.log.find("START RequestId").expect("start");
    let printed = cold.log.find("printed line 1").expect("printed");
    let end = cold.log.find("END RequestId").expect("end");
    assert!(start < printed && printed < end, "function output between START and END:\n{}", cold.log);

    let warm = invoke(c, "logs", &json!({"n": 2})).await;
    assert_eq!(warm.ok(), json!(2));
    let report = assert_platform_lines(&warm.log, &warm.request_id, 128);
    assert!(!report.contains("Init Duration"), "a warm call has no Init Duration: {report:?}");
    assert!(warm.log.contains("printed line 2\n"));
    assert!(!warm.log.contains("printed line 1"), "only this invocation's output:\n{}", warm.log);
    assert!(!warm.log.contains("init-time print"), "init ran once:\n{}", warm.log);
    assert!(!warm.log.contains(&cold.request_id), "only this invocation's lines:\n{}", warm.log);

    // TAIL-2: the tail is the last 4 KB of this invocation's log.
    let noisy = invoke(c, "logs", &json!({"n": "y".repeat(10_000)})).await;
    assert_eq!(noisy.function_error, None);
    assert!(noisy.log.len() <= 4096 && noisy.log.len() > 4000, "tail is 4 KB: {} bytes", noisy.log.len());
    assert!(!noisy.log.contains("START RequestId"), "the start was cut off");
    let last = noisy.log.lines().last().expect("a last line");
    assert!(last.starts_with(&format!("REPORT RequestId: {}\t", noisy.request_id)), "ends with REPORT: {last:?}");

    // TAIL-1: no tail unless asked for.
    let plain = c
        .invoke()
        .function_name("logs")
        .payload(aws_sdk_lambda::primitives::Blob::new(br#"{"n": 3}"#.to_vec()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(plain.log_result(), None);
    fx.stop().await;
}

/// Counts calls in module state and in `/tmp`, and reports a configured variable.
const STATEFUL: &str = r#"
import os

calls = 0

def handler(event, context):
    global calls
    calls += 1
    seen = None
    if os.path.exists("/tmp/state"):
        with open("/tmp/state") as f:
            seen = f.read()
    with open("/tmp/state", "w") as f:
        f.write(context.aws_request_id)
    return {"calls": calls, "tmp": seen, "flavour": os.environ.get("FLAVOUR")}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_sandbox_is_reused_until_the_configuration_changes() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "stateful", STATEFUL)
        .environment(Environment::builder().variables("FLAVOUR", "vanilla").build())
        .send()
        .await
        .expect("create");

    // ENV-3 + Decision: sequential calls reuse the sandbox: module state and /tmp survive.
    let first = invoke(c, "stateful", &json!({})).await;
    assert_eq!(first.ok(), json!({"calls": 1, "tmp": null, "flavour": "vanilla"}));
    let second = invoke(c, "stateful", &json!({})).await;
    assert_eq!(second.ok(), json!({"calls": 2, "tmp": first.request_id, "flavour": "vanilla"}));
    assert!(!second.log.contains("Init Duration"), "warm:\n{}", second.log);

    // ENV-2: after an update the next call runs in a new sandbox with the new configuration.
    c.update_function_configuration()
        .function_name("stateful")
        .environment(Environment::builder().variables("FLAVOUR", "chocolate").build())
        .send()
        .await
        .expect("update");
    lamina_tests::wait_until(Duration::from_secs(10), "update to finish", || async {
        let cfg = c.get_function_configuration().function_name("stateful").send().await.expect("get");
        let done = cfg.last_update_status().is_none_or(|s| s.as_str() == "Successful");
        done.then_some(())
    })
    .await;
    let third = invoke(c, "stateful", &json!({})).await;
    assert_eq!(third.ok(), json!({"calls": 1, "tmp": null, "flavour": "chocolate"}), "a fresh sandbox");
    assert!(third.log.contains("Init Duration"), "a cold start after the update:\n{}", third.log);
    let fourth = invoke(c, "stateful", &json!({})).await;
    assert_eq!(fourth.ok(), json!({"calls": 2, "tmp": third.request_id, "flavour": "chocolate"}));
    fx.stop().await;
}

/// Sleeps, exits, allocates or answers on request.
const MISBEHAVING: &str = r#"
import os
import time

calls = 0

def handler(event, context):
    global calls
    calls += 1
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if "exit" in event:
        print("about to exit", flush=True)
        os._exit(event["exit"])
    if event.get("allocate_mb"):
        hog = b"x" * (event["allocate_mb"] * 1024 * 1024)
        return len(hog)
    return {"calls": calls}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_unhandled_and_the_next_call_recovers() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "sleepy", MISBEHAVING).timeout(1).send().await.expect("create");
    assert_eq!(invoke(c, "sleepy", &json!({})).await.ok(), json!({"calls": 1}));

    let started = Instant::now();
    let timed_out = invoke(c, "sleepy", &json!({"sleep": 5})).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "TO-2: stopped at the timeout, took {took:?}");
    assert!(took >= Duration::from_millis(950), "not before the timeout: {took:?}");
    let doc = timed_out.unhandled();
    let msg = doc["errorMessage"].as_str().expect("message");
    assert!(msg.ends_with("Task timed out after 1.00 seconds"), "{msg}");
    let re = regex::Regex::new(&format!(
        r"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {} Task timed out after 1\.00 seconds$",
        timed_out.request_id
    ))
    .expect("re");
    assert!(re.is_match(msg), "2016-era timeout message: {msg}");
    let report = assert_platform_lines(&timed_out.log, &timed_out.request_id, 128);
    assert!(report.contains("\tBilled Duration: 1000 ms\t"), "billed = the timeout: {report:?}");
    let (end, rep) = (timed_out.log.find("END RequestId").expect("end"), timed_out.log.find("REPORT").expect("rep"));
    let line = timed_out.log.find("Task timed out after 1.00 seconds").expect("the timeout is logged");
    assert!(end < rep && rep < line, "TO: END, REPORT, then the timeout line:\n{}", timed_out.log);

    // The timed-out runtime was replaced: the next call succeeds in a fresh sandbox.
    let next = invoke(c, "sleepy", &json!({})).await;
    assert_eq!(next.ok(), json!({"calls": 1}), "module state was lost with the old sandbox");
    assert!(next.log.contains("Init Duration"), "{}", next.log);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_a_function_error_and_others_keep_running() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "hog", MISBEHAVING).memory_size(128).timeout(20).send().await.expect("create hog");
    let other = fx.env.tenant().await;
    let oc = fx.env.lambda(&other);
    create_python(&oc, "bystander", MISBEHAVING).send().await.expect("create bystander");

    let (oom, bystander) = tokio::join!(invoke(c, "hog", json!({"allocate_mb": 400})), async {
        invoke(&oc, "bystander", &json!({"sleep": 0.2})).await
    });
    assert_eq!(bystander.ok(), json!({"calls": 1}), "another tenant's function is unaffected");
    let doc = oom.unhandled();
    assert_eq!(doc["errorType"], "Runtime.OutOfMemory", "MEM-3: {doc}");
    let report = assert_platform_lines(&oom.log, &oom.request_id, 128);
    let used: u64 = report
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("max memory used");
    assert!((100..=140).contains(&used), "MEM-4: peak near the 128 MB limit, got {used} MB: {report:?}");
    assert!(oom.log.contains("Runtime.OutOfMemory"), "MEM-3: the log names the memory error:\n{}", oom.log);

    assert_eq!(invoke(&oc, "bystander", &json!({})).await.ok(), json!({"calls": 2}));
    assert_eq!(invoke(c, "hog", &json!({"allocate_mb": 16})).await.ok(), json!(16 * 1024 * 1024), "recovers");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_exit_is_an_exit_error() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "quitter", MISBEHAVING).send().await.expect("create");
    let crashed = invoke(c, "quitter", &json!({"exit": 3})).await;
    let doc = crashed.unhandled();
    assert_eq!(doc["errorType"], "Runtime.ExitError", "{doc}");
    assert_eq!(
        doc["errorMessage"],
        format!("RequestId: {} Error: Runtime exited with error: exit status 3", crashed.request_id)
    );
    assert!(crashed.log.contains("about to exit"), "output before the exit is kept:\n{}", crashed.log);
    assert_platform_lines(&crashed.log, &crashed.request_id, 128);
    let next = invoke(c, "quitter", &json!({})).await;
    assert_eq!(next.ok(), json!({"calls": 1}), "a fresh sandbox");
    fx.stop().await;
}
