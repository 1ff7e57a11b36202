//! The AWS SDKs of the managed runtimes (`scripts/install-runtime-sdks.sh`, `Config::runtime_sdk_dir`):
//! boto3 for Python and the AWS SDK for JavaScript v3 for Node.js, at the pinned versions, read-only,
//! and a function's own packaged copy taking precedence.
//!
//! The SDK directory is `LAMINA_RUNTIME_SDK_DIR`, else `runtime-sdks` in the cargo target directory
//! of this test binary (the install script's default; `scripts/test.sh` runs it). Without it these
//! tests fail when `CI` is set and are skipped otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{TestHost, invocation, json};
use lamina_common::FunctionSnapshot;
use lamina_common::session::SessionCredentials;
use lamina_exec_host::InvokeOutcome;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The host-wide nftables table follows the last host started (tests/credentials.rs): one host at
/// a time in this binary, so that the endpoint test's redirect stays in place.
static ONE_HOST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installed SDK directory, or `None` (test skipped) when it is missing outside CI.
fn sdk_dir() -> Option<PathBuf> {
    let dir =
        std::env::var_os("LAMINA_RUNTIME_SDK_DIR").filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
            // <target>/debug/deps/runtime_sdks-<hash>
            let exe = std::env::current_exe().expect("test binary path");
            let target = exe.ancestors().nth(3).expect("target directory");
            target.join("runtime-sdks")
        });
    let installed = dir.join("python/boto3").is_dir() && dir.join("nodejs/node_modules/@aws-sdk/client-s3").is_dir();
    if installed {
        return Some(dir.canonicalize().expect("canonical SDK dir"));
    }
    let msg = format!("runtime SDKs not installed in {}: run scripts/install-runtime-sdks.sh", dir.display());
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("skipped: {msg}");
    None
}

/// `name==version` of a package in `runtimes/sdk-requirements.txt`.
fn pinned_python(name: &str) -> String {
    let text = std::fs::read_to_string(repo().join("runtimes/sdk-requirements.txt")).expect("read requirements");
    let prefix = format!("{name}==");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{name} not pinned"))
        .to_string()
}

/// Version of an npm dependency in `runtimes/sdk-package.json`.
fn pinned_node(name: &str) -> String {
    let text = std::fs::read_to_string(repo().join("runtimes/sdk-package.json")).expect("read package.json");
    let v: Value = serde_json::from_str(&text).expect("package.json");
    v["dependencies"][name].as_str().unwrap_or_else(|| panic!("{name} not pinned")).to_string()
}

async fn host(sdk: &Path) -> TestHost {
    let sdk = sdk.to_path_buf();
    TestHost::start_with(move |c| c.runtime_sdk_dir = Some(sdk)).await
}

fn node_runtime(t: &TestHost) -> String {
    let runtimes = t.host.runtimes();
    runtimes
        .iter()
        .find(|r| r.starts_with("nodejs"))
        .unwrap_or_else(|| panic!("no nodejs runtime detected: {runtimes:?}"))
        .clone()
}

fn with_handler(mut f: FunctionSnapshot, handler: &str) -> FunctionSnapshot {
    f.handler = handler.into();
    f
}

fn ok(out: &InvokeOutcome) -> Value {
    assert!(!out.function_error, "function error: {}", String::from_utf8_lossy(&out.payload));
    json(out)
}

const PY_SDK: &[u8] = br#"
import os, sys
import boto3, botocore

def handler(event, context):
    try:
        open("/var/sdk/python/written", "w")
        writable = True
    except OSError:
        writable = False
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    return {
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "boto3_file": boto3.__file__,
        "client": type(client).__name__,
        "path": sys.path,
        "writable": writable,
        "mountinfo": open("/proc/self/mountinfo").read(),
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_functions_import_the_pinned_boto3_read_only() {
    let _one = ONE_HOST.lock().await;
    let Some(sdk) = sdk_dir() else { return };
    let t = host(&sdk).await;
    let f = with_handler(t.function("pysdk", "python3.11", &[("app.py", PY_SDK, 0o644)]), "app.handler");
    let v = ok(&t.invoke(&f, json!({})).await);
    assert_eq!(v["boto3"], pinned_python("boto3"));
    assert_eq!(v["botocore"], pinned_python("botocore"));
    assert_eq!(v["boto3_file"], "/var/sdk/python/boto3/__init__.py");
    assert_eq!(v["client"], "S3");
    let path: Vec<&str> = v["path"].as_array().expect("sys.path").iter().filter_map(Value::as_str).collect();
    let task = path.iter().position(|p| *p == "/var/task").expect("task root on sys.path");
    let sdk_pos = path.iter().position(|p| *p == "/var/sdk/python").expect("SDK on sys.path");
    assert!(task < sdk_pos, "the task root must come first: {path:?}");
    assert_eq!(v["writable"], false, "the SDK directory must be read-only");
    let mountinfo = v["mountinfo"].as_str().expect("mountinfo");
    assert!(!mountinfo.contains(&*sdk.to_string_lossy()), "host path of the SDK visible:\n{mountinfo}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_functions_own_boto3_takes_precedence() {
    let _one = ONE_HOST.lock().await;
    let Some(sdk) = sdk_dir() else { return };
    let t = host(&sdk).await;
    let code = b"import boto3, botocore\ndef handler(event, context):\n    return {'boto3': boto3.__version__, 'file': boto3.__file__, 'botocore': botocore.__file__}\n";
    let f = t.function(
        "pyown",
        "python3.11",
        &[("app.py", code, 0o644), ("boto3/__init__.py", b"__version__ = 'own'\n", 0o644)],
    );
    let v = ok(&t.invoke(&with_handler(f, "app.handler"), json!({})).await);
    assert_eq!(v["boto3"], "own");
    assert_eq!(v["file"], "/var/task/boto3/__init__.py");
    // What the package does not bring still comes from the runtime.
    assert_eq!(v["botocore"], "/var/sdk/python/botocore/__init__.py");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_without_sdk_dir_has_no_boto3() {
    let _one = ONE_HOST.lock().await;
    let t = TestHost::start_with(|c| c.runtime_sdk_dir = None).await;
    let code = b"import os\ndef handler(event, context):\n    import boto3\n    return 'imported'\n";
    let f = with_handler(t.function("pynosdk", "python3.11", &[("app.py", code, 0o644)]), "app.handler");
    let out = t.invoke(&f, json!({})).await;
    assert!(out.function_error, "boto3 came from somewhere: {}", String::from_utf8_lossy(&out.payload));
    assert_eq!(json(&out)["errorType"], "ModuleNotFoundError");
    t.host.shutdown().await;
}

const NODE_CJS: &[u8] = br#"
const { S3Client } = require('@aws-sdk/client-s3');
const { LambdaClient } = require('@aws-sdk/client-lambda');
exports.handler = async () => ({
  s3: typeof S3Client,
  lambda: typeof LambdaClient,
  version: require('@aws-sdk/client-s3/package.json').version,
  resolved: require.resolve('@aws-sdk/client-s3'),
});
"#;

const NODE_ESM: &[u8] = br#"
import { S3Client } from '@aws-sdk/client-s3';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
export const handler = async () => ({
  s3: typeof S3Client,
  lambda: typeof LambdaClient,
  version: require('@aws-sdk/client-s3/package.json').version,
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_functions_require_and_import_the_pinned_sdk() {
    let _one = ONE_HOST.lock().await;
    let Some(sdk) = sdk_dir() else { return };
    let t = host(&sdk).await;
    let runtime = node_runtime(&t);
    let files: &[(&str, &[u8], u32)] = &[("index.js", NODE_CJS, 0o644), ("esm.mjs", NODE_ESM, 0o644)];
    let pinned = pinned_node("@aws-sdk/client-s3");
    assert_eq!(pinned, pinned_node("@aws-sdk/client-lambda"), "the two clients are pinned together");

    let cjs = ok(&t.invoke(&with_handler(t.function("nodecjs", &runtime, files), "index.handler"), json!({})).await);
    assert_eq!(cjs["s3"], "function");
    assert_eq!(cjs["lambda"], "function");
    assert_eq!(cjs["version"], pinned);
    assert!(
        cjs["resolved"].as_str().is_some_and(|p| p.starts_with("/var/sdk/nodejs/node_modules/@aws-sdk/client-s3/")),
        "{cjs}"
    );

    let esm = ok(&t.invoke(&with_handler(t.function("nodeesm", &runtime, files), "esm.handler"), json!({})).await);
    assert_eq!(esm, json!({"s3": "function", "lambda": "function", "version": pinned}));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodejs_functions_own_sdk_takes_precedence() {
    let _one = ONE_HOST.lock().await;
    let Some(sdk) = sdk_dir() else { return };
    let t = host(&sdk).await;
    let runtime = node_runtime(&t);
    let stub_pkg = br#"{"name": "@aws-sdk/client-s3", "version": "0.0.0-own", "main": "index.js"}"#;
    let stub = b"exports.S3Client = 'own';\n";
    let cjs =
        b"const { S3Client } = require('@aws-sdk/client-s3');\nexports.handler = async () => ({ s3: S3Client });\n";
    let esm =
        b"import { S3Client } from '@aws-sdk/client-s3';\nexport const handler = async () => ({ s3: S3Client });\n";
    let files: &[(&str, &[u8], u32)] = &[
        ("index.js", cjs, 0o644),
        ("esm.mjs", esm, 0o644),
        ("node_modules/@aws-sdk/client-s3/package.json", stub_pkg, 0o644),
        ("node_modules/@aws-sdk/client-s3/index.js", stub, 0o644),
    ];
    for handler in ["index.handler", "esm.handler"] {
        let f = with_handler(t.function("nodeown", &runtime, files), handler);
        assert_eq!(ok(&t.invoke(&f, json!({})).await), json!({"s3": "own"}), "{handler}");
    }
    t.host.shutdown().await;
}

/// A fake S3 on the host's loopback: answers every request with `hello` and records each request
/// head (request line and headers, lower-cased names).
async fn fake_s3(heads: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake S3");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        buf.drain(..end + 4);
                        heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(head);
                        let reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

const PY_GET: &[u8] = br#"
import boto3
s3 = boto3.client("s3")

def handler(event, context):
    return s3.get_object(Bucket="py-bucket", Key="some/key.txt")["Body"].read().decode()
"#;

const NODE_GET: &[u8] = br#"
import { S3Client, GetObjectCommand } from '@aws-sdk/client-s3';
const s3 = new S3Client({});
export const handler = async () => {
  const out = await s3.send(new GetObjectCommand({ Bucket: 'node-bucket', Key: 'some/key.txt' }));
  return out.Body.transformToString();
};
"#;

/// The SDKs, unconfigured, take the endpoint (`AWS_ENDPOINT_URL_S3`), the session credentials and
/// the region from the environment the host gives the sandbox, and address buckets path-style.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdks_call_the_s3_endpoint_with_the_sandbox_credentials() {
    let _one = ONE_HOST.lock().await;
    let Some(sdk) = sdk_dir() else { return };
    let heads = Arc::new(Mutex::new(Vec::new()));
    let port = fake_s3(heads.clone()).await;
    let t = TestHost::start_with(move |c| {
        c.runtime_sdk_dir = Some(sdk);
        c.s3_endpoint = Some(format!("127.0.0.1:{port}"));
    })
    .await;
    let runtime = node_runtime(&t);
    let creds = SessionCredentials {
        access_key_id: "ASIASDKTESTKEY000001".into(),
        secret_access_key: "secret".into(),
        session_token: "session-token-for-the-sdk-test".into(),
        expiration: chrono::Utc::now().timestamp() + 12 * 3600,
    };
    let cases = [("python3.11", "app.py", PY_GET, "py-bucket"), (runtime.as_str(), "app.mjs", NODE_GET, "node-bucket")];
    for (runtime, file, code, bucket) in cases {
        let mut f = with_handler(t.function("sdkget", runtime, &[(file, code, 0o644)]), "app.handler");
        f.timeout_s = 20;
        let mut inv = invocation(&f, json!({}));
        inv.credentials = Some(creds.clone());
        let out = t.host.invoke(inv).await.expect("invoke");
        assert_eq!(ok(&out), "hello", "{runtime}");
        let heads = heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let head = heads
            .iter()
            .find(|h| h.contains(bucket))
            .unwrap_or_else(|| panic!("{runtime}: no request for {bucket}: {heads:?}"));
        assert!(head.starts_with(&format!("get /{bucket}/some/key.txt")), "{runtime}: not path-style: {head}");
        assert!(head.contains("\r\nhost: 127.0.0.1:9002\r\n"), "{runtime}: {head}");
        let auth = format!("credential={}/", creds.access_key_id.to_lowercase());
        assert!(head.contains(&auth) && head.contains("/us-east-1/s3/aws4_request"), "{runtime}: {head}");
        assert!(head.contains(&format!("x-amz-security-token: {}", creds.session_token)), "{runtime}: {head}");
    }
    t.host.shutdown().await;
}

/// Cold-start cost of the SDKs (docs/runtimes.md): median Init Duration of fresh functions that
/// import nothing, import the SDK, or also create an S3 client. A measurement, not run by default:
/// `cargo test -p lamina-exec-host --test runtime_sdks -- --ignored --nocapture cold_start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn cold_start_cost() {
    let _one = ONE_HOST.lock().await;
    let Some(sdk) = sdk_dir() else { return };
    let t = host(&sdk).await;
    let node = node_runtime(&t);
    let cases: [(&str, &str, &str, &[u8]); 6] = [
        ("python: nothing", "python3.11", "app.py", b"def handler(e, c):\n    return 1\n"),
        ("python: import boto3", "python3.11", "app.py", b"import boto3\ndef handler(e, c):\n    return 1\n"),
        (
            "python: boto3.client('s3')",
            "python3.11",
            "app.py",
            b"import boto3\ns3 = boto3.client('s3')\ndef handler(e, c):\n    return 1\n",
        ),
        ("node: nothing", &node, "app.js", b"exports.handler = async () => 1;\n"),
        (
            "node: require client-s3",
            &node,
            "app.js",
            b"const { S3Client } = require('@aws-sdk/client-s3');\nexports.handler = async () => 1;\n",
        ),
        (
            "node: new S3Client({})",
            &node,
            "app.js",
            b"const { S3Client } = require('@aws-sdk/client-s3');\nconst s3 = new S3Client({});\nexports.handler = async () => 1;\n",
        ),
    ];
    for (label, runtime, file, code) in cases {
        let mut inits = Vec::new();
        for i in 0..17 {
            let f = with_handler(t.function(&format!("cold{i}"), runtime, &[(file, code, 0o644)]), "app.handler");
            let out = t.invoke(&f, json!({})).await;
            ok(&out);
            // The first two warm up the page cache; the pause lets the spare sandboxes refill.
            if i >= 2 {
                inits.push(out.init_duration_ms.expect("cold start"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        inits.sort_by(f64::total_cmp);
        println!("{label:28} Init Duration median {:6.1} ms, min {:6.1} ms", inits[inits.len() / 2], inits[0]);
    }
    t.host.shutdown().await;
}
