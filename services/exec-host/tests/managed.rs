//! The managed runtimes (Python, Node.js bootstraps from `runtimes/`) inside real sandboxes.

mod common;

use common::{TestHost, json};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python311_handler_runs_and_keeps_state() {
    let t = TestHost::start().await;
    assert!(t.host.runtimes().contains(&"python3.11".to_string()), "{:?}", t.host.runtimes());
    let code = b"import os\ncount = 0\ndef handler(event, context):\n    global count\n    count += 1\n    print('hello from python', context.aws_request_id)\n    if event.get('fail'):\n        raise Exception('I failed!')\n    return {'count': count, 'event': event, 'mem': context.memory_limit_in_mb, 'fn': context.function_name}\n";
    let mut f = t.function("py311", "python3.11", &[("lambda_function.py", code, 0o644)]);
    f.handler = "lambda_function.handler".into();
    let a = t.invoke(&f, json!({"k": "v"})).await;
    assert!(!a.function_error, "{}", String::from_utf8_lossy(&a.payload));
    let v = json(&a);
    assert_eq!(v["count"], 1);
    assert_eq!(v["event"], json!({"k": "v"}));
    assert_eq!(v["fn"], "py311");
    assert!(a.log_tail.expect("tail").contains("hello from python"));
    let b = t.invoke(&f, json!({})).await;
    assert_eq!(json(&b)["count"], 2);
    let c = t.invoke(&f, json!({"fail": true})).await;
    assert!(c.function_error);
    let e = json(&c);
    assert_eq!(e["errorMessage"], "I failed!");
    assert_eq!(e["errorType"], "Exception");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_import_error_is_init_error() {
    let t = TestHost::start().await;
    let mut f = t.function("pybad", "python3.11", &[("lambda_function.py", b"def handler(:\n", 0o644)]);
    f.handler = "lambda_function.handler".into();
    let out = t.invoke(&f, json!({})).await;
    assert!(out.function_error);
    assert_eq!(json(&out)["errorType"], "Runtime.UserCodeSyntaxError", "{}", String::from_utf8_lossy(&out.payload));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_handler_runs() {
    let t = TestHost::start().await;
    let Some(runtime) = t.host.runtimes().into_iter().find(|r| r.starts_with("nodejs")) else {
        panic!("no nodejs runtime detected: {:?}", t.host.runtimes());
    };
    let code = b"exports.handler = async (event, context) => { console.log('hi from node'); return {got: event, mem: context.memoryLimitInMB}; };\n";
    let mut f = t.function("node", &runtime, &[("index.js", code, 0o644)]);
    f.handler = "index.handler".into();
    let out = t.invoke(&f, json!({"a": 1})).await;
    assert!(!out.function_error, "{}", String::from_utf8_lossy(&out.payload));
    assert_eq!(json(&out)["got"], json!({"a": 1}));
    assert!(out.log_tail.expect("tail").contains("hi from node"));
    t.host.shutdown().await;
}
