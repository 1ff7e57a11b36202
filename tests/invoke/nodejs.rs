//! The Node.js runtime: every way a handler finishes, errors, console logging, ES modules and the
//! empty-event-loop rule (programming-model §5.1-§5.2, §6; semantics ENV-5).

use std::time::{Duration, Instant};

use lamina_tests::zip_of;
use serde_json::json;

use crate::{Fixture, assert_platform_lines, create, invoke};

const CALLBACK_JS: &str = r#"
exports.handler = (event, context, callback) => {
  console.log('hello from node', JSON.stringify(event));
  callback(null, { got: event, requestId: context.awsRequestId, fn: context.functionName,
    version: context.functionVersion, memory: context.memoryLimitInMB, arn: context.invokedFunctionArn,
    group: context.logGroupName, remaining: context.getRemainingTimeInMillis(),
    waits: context.callbackWaitsForEmptyEventLoop });
};
"#;

const ASYNC_JS: &str = r#"
exports.handler = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return { doubled: event.n * 2 };
};
"#;

const SUCCEED_JS: &str = r#"
exports.handler = (event, context) => {
  context.succeed('succeeded ' + event.n);
};
"#;

const THROWS_JS: &str = r#"
exports.handler = async (event) => {
  if (event.kind === 'type') {
    return null.missing;
  }
  throw new Error('boom ' + event.n);
};
"#;

const ESM_MJS: &str = r#"
import { platform } from 'node:os';

export const handler = async (event, context) => ({
  esm: true,
  requireType: typeof require,
  platform: platform(),
  echo: event,
  requestId: context.awsRequestId,
});
"#;

/// Other ways to finish: `context.fail`, `callback(error)`, no callback at all, an
/// unstringifiable result, and the process exiting mid-invocation.
const ODD_JS: &str = r#"
exports.handler = (event, context, callback) => {
  switch (event.how) {
    case 'fail': return context.fail('plain failure');
    case 'callback-error': return callback(new TypeError('bad input'));
    case 'nothing': return;
    case 'circular': { const o = {}; o.self = o; return callback(null, o); }
    case 'exit': process.exit(2);
  }
  callback(null, 'fine');
};
"#;

/// `write` schedules a write to /tmp after a delay and answers at once through the callback;
/// `read` reports whether the write happened.
const LOOP_JS: &str = r#"
const fs = require('fs');

exports.handler = (event, context, callback) => {
  if (event.action === 'read') {
    return callback(null, { written: fs.existsSync(event.file) });
  }
  if (event.dontWait) {
    context.callbackWaitsForEmptyEventLoop = false;
  }
  setTimeout(() => fs.writeFileSync(event.file, 'late'), event.delayMs);
  callback(null, 'answered');
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_handler_styles_errors_and_logs() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let zip = zip_of(&[
        ("index.js", CALLBACK_JS.as_bytes()),
        ("async.js", ASYNC_JS.as_bytes()),
        ("succeed.js", SUCCEED_JS.as_bytes()),
        ("throws.js", THROWS_JS.as_bytes()),
        ("esm.mjs", ESM_MJS.as_bytes()),
        ("odd.js", ODD_JS.as_bytes()),
    ]);
    for (name, handler) in [
        ("cb", "index.handler"),
        ("asyncfn", "async.handler"),
        ("succeeds", "succeed.handler"),
        ("throws", "throws.handler"),
        ("esm", "esm.handler"),
        ("odd", "odd.handler"),
    ] {
        create(c, name, "nodejs20.x", handler, zip.clone()).timeout(5).send().await.expect("create");
    }

    let (cb, asy, succ, thrown, typed, esm) = tokio::join!(
        invoke(c, "cb", json!({"key1": "value1"})),
        invoke(c, "asyncfn", json!({"n": 21})),
        invoke(c, "succeeds", json!({"n": 1})),
        invoke(c, "throws", json!({"n": 7})),
        invoke(c, "throws", json!({"kind": "type"})),
        invoke(c, "esm", json!([1, "two"])),
    );

    // §5.1 callback(null, result).
    let got = cb.ok();
    assert_eq!(got["got"], json!({"key1": "value1"}));
    assert_eq!(got["requestId"], cb.request_id.as_str(), "awsRequestId = x-amzn-RequestId");
    assert_eq!(got["fn"], "cb");
    assert_eq!(got["version"], "$LATEST");
    assert_eq!(got["memory"], "128");
    assert_eq!(got["arn"], fx.arn("cb"));
    assert_eq!(got["group"], "/aws/lambda/cb");
    assert_eq!(got["waits"], true, "callbackWaitsForEmptyEventLoop defaults to true");
    let remaining = got["remaining"].as_i64().expect("remaining");
    assert!(remaining > 0 && remaining <= 5000, "{remaining}");
    assert_eq!(cb.executed_version.as_deref(), Some("$LATEST"));
    // LOGS-3: console.log lines are `<time>\t<request id>\tINFO\t<text>`.
    let line = cb.log.lines().find(|l| l.contains("hello from node")).expect("console.log line in the tail");
    let re = regex::Regex::new(&format!(
        r#"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{}\tINFO\thello from node \{{"key1":"value1"\}}$"#,
        cb.request_id
    ))
    .expect("re");
    assert!(re.is_match(line), "console.log format: {line:?}");
    assert_platform_lines(&cb.log, &cb.request_id, 128);

    // Later AWS: async handlers; §5.2 context.succeed.
    assert_eq!(asy.ok(), json!({"doubled": 42}));
    assert_eq!(succ.ok(), json!("succeeded 1"));

    // A thrown Error / rejection: Unhandled, errorType = the error's name.
    let doc = thrown.unhandled();
    assert_eq!(doc["errorType"], "Error", "{doc}");
    assert_eq!(doc["errorMessage"], "boom 7");
    let trace = doc["stackTrace"].as_array().expect("stackTrace");
    assert!(trace.iter().any(|f| f.as_str().is_some_and(|f| f.contains("/var/task/throws.js"))), "{doc}");
    assert!(thrown.log.contains("boom 7"), "ERR-5: logged:\n{}", thrown.log);
    let doc = typed.unhandled();
    assert_eq!(doc["errorType"], "TypeError", "{doc}");

    // ES module handler.
    let got = esm.ok();
    assert_eq!(got["esm"], true);
    assert_eq!(got["requireType"], "undefined", "really loaded as an ES module");
    assert_eq!(got["platform"], "linux");
    assert_eq!(got["echo"], json!([1, "two"]));
    assert_eq!(got["requestId"], esm.request_id.as_str());

    // §5.1/§5.2 and the ERR Decision: every failure is Unhandled; non-Error values become strings.
    let failed = invoke(c, "odd", json!({"how": "fail"})).await;
    assert_eq!(failed.unhandled(), json!({"errorMessage": "plain failure"}));
    let cb_err = invoke(c, "odd", json!({"how": "callback-error"})).await.unhandled();
    assert_eq!((&cb_err["errorType"], &cb_err["errorMessage"]), (&json!("TypeError"), &json!("bad input")));
    let nothing = invoke(c, "odd", json!({"how": "nothing"})).await;
    assert_eq!(nothing.function_error, None);
    assert_eq!(nothing.body_text(), "null", "returning without the callback is callback()");
    let circular = invoke(c, "odd", json!({"how": "circular"})).await.unhandled();
    assert_eq!(circular["errorType"], "TypeError", "an unstringifiable result: {circular}");
    assert_eq!(invoke(c, "odd", json!({})).await.ok(), json!("fine"));

    // Errors do not poison the warm sandbox.
    assert_eq!(invoke(c, "throws", &json!({"n": 8})).await.unhandled()["errorMessage"], "boom 8");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_waits_for_an_empty_event_loop_by_default() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create(c, "loop", "nodejs20.x", "index.handler", zip_of(&[("index.js", LOOP_JS.as_bytes())]))
        .timeout(10)
        .send()
        .await
        .expect("create");

    // Default: the answer waits until the timer has written the file.
    let started = Instant::now();
    let waited = invoke(c, "loop", &json!({"file": "/tmp/waited", "delayMs": 400})).await;
    assert_eq!(waited.ok(), json!("answered"));
    assert!(started.elapsed() >= Duration::from_millis(400), "the answer waited for the timer");
    let read = invoke(c, "loop", &json!({"action": "read", "file": "/tmp/waited"})).await;
    assert_eq!(read.ok(), json!({"written": true}), "the timer ran before the response");

    // callbackWaitsForEmptyEventLoop = false: the answer does not wait for the 3 s timer.
    let started = Instant::now();
    let eager = invoke(c, "loop", &json!({"file": "/tmp/eager", "delayMs": 3000, "dontWait": true})).await;
    assert_eq!(eager.ok(), json!("answered"));
    assert!(started.elapsed() < Duration::from_millis(2500), "answered before the timer: {:?}", started.elapsed());
    let read = invoke(c, "loop", &json!({"action": "read", "file": "/tmp/eager"})).await;
    assert_eq!(read.ok(), json!({"written": false}), "the timer had not run yet");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_exit_mid_invocation_is_process_exited() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create(c, "odd", "nodejs20.x", "index.handler", zip_of(&[("index.js", ODD_JS.as_bytes())]))
        .send()
        .await
        .expect("create");
    let exited = invoke(c, "odd", json!({"how": "exit"})).await;
    let doc = exited.unhandled();
    assert_eq!(invoke(c, "odd", json!({})).await.ok(), json!("fine"), "a fresh sandbox after the exit");
    assert_eq!(
        doc,
        json!({"errorMessage": "Process exited before completing request"}),
        "ERR Decision: a Node.js process that dies mid-invocation"
    );
    fx.stop().await;
}
