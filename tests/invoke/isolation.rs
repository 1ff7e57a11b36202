//! What one function can see of others and of the host, and who may invoke what
//! (semantics ENV Decision, ARN, POL).

use serde_json::{Value, json};

use crate::{Fixture, code_of, create_python, invoke, status_of};

/// `MARKER` is replaced per function so each package is distinct.
const PROBE: &str = r#"
import os
import resource
import shutil

MARKER = "@MARKER@"

def handler(event, context):
    action = event.get("action")
    if action == "plant":
        with open("/tmp/a-secret", "w") as f:
            f.write("secret of " + MARKER)
        return {"planted": True, "tmp": sorted(os.listdir("/tmp"))}
    if action == "kill-init":
        try:
            os.kill(1, 9)
            return {"kill": "sent"}
        except Exception as exc:
            return {"kill": type(exc).__name__}
    out = {"marker": MARKER}
    out["secret_visible"] = os.path.exists("/tmp/a-secret")
    out["tmp"] = sorted(os.listdir("/tmp"))
    out["task_files"] = sorted(os.listdir("/var/task"))
    with open("/var/task/lambda_function.py") as f:
        out["own_code"] = MARKER in f.read()
    try:
        with open("/etc/shadow") as f:
            f.read()
        out["shadow"] = "readable"
    except Exception as exc:
        out["shadow"] = type(exc).__name__
    out["uid"] = os.getuid()
    out["euid"] = os.geteuid()
    out["pid"] = os.getpid()
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["host_paths"] = {p: os.path.exists(p) for p in event.get("host_paths", [])}
    out["cmdlines"] = {}
    for p in out["pids"]:
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                out["cmdlines"][p] = f.read().decode("utf-8", "replace").split("\0")
        except OSError as exc:
            out["cmdlines"][p] = type(exc).__name__
    out["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    out["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    out["tmp_mb"] = shutil.disk_usage("/tmp").total // (1024 * 1024)
    try:
        with open("/var/task/intruder", "w") as f:
            f.write("x")
        out["task_writable"] = True
    except OSError:
        out["task_writable"] = False
    return out
"#;

fn probe(marker: &str) -> String {
    PROBE.replace("@MARKER@", marker)
}

fn assert_confined(got: &Value, marker: &str, host_paths: &[String]) {
    assert_eq!(got["marker"], marker);
    assert_eq!(got["secret_visible"], false, "another function's /tmp is invisible: {got}");
    assert_eq!(got["task_files"], json!(["lambda_function.py"]), "only its own package in /var/task: {got}");
    assert_eq!(got["own_code"], true, "/var/task holds its own code: {got}");
    assert_ne!(got["shadow"], "readable", "/etc/shadow must not be readable: {got}");
    assert_ne!(got["uid"], 0, "not root: {got}");
    assert_ne!(got["euid"], 0, "not root: {got}");
    assert_eq!(got["task_writable"], false, "only /tmp is writable: {got}");
    let pids = got["pids"].as_array().expect("pids");
    assert!(pids.contains(&got["pid"]), "its own pid is listed: {got}");
    assert!(pids.len() <= 5, "/proc shows only the sandbox's own few processes: {got}");
    for p in host_paths {
        assert_eq!(got["host_paths"][p], false, "host path {p} is invisible: {got}");
    }
    // ENV-6: per-container limits.
    assert_eq!(got["nofile"], 1024, "1,024 file descriptors: {got}");
    assert_eq!(got["nproc"], 1024, "1,024 processes and threads: {got}");
    let tmp_mb = got["tmp_mb"].as_u64().expect("tmp_mb");
    assert!((512..=540).contains(&tmp_mb), "/tmp holds 512 MB: {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_isolated_from_each_other_and_the_host() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let other = fx.env.tenant().await;
    let oc = fx.env.lambda(&other);
    create_python(c, "fn-a", &probe("A")).send().await.expect("create A");
    create_python(c, "fn-b", &probe("B")).send().await.expect("create B");
    create_python(&oc, "fn-c", &probe("C")).send().await.expect("create C");
    let host_paths: Vec<String> = vec![
        fx.env.data_dir.path().display().to_string(),
        env!("CARGO_MANIFEST_DIR").to_owned(),
        std::env::current_exe().expect("exe").display().to_string(),
    ];

    let planted = invoke(c, "fn-a", &json!({"action": "plant"})).await.ok();
    assert_eq!(planted["planted"], true);
    assert!(planted["tmp"].as_array().expect("tmp").contains(&json!("a-secret")));
    let a = invoke(c, "fn-a", &json!({"host_paths": host_paths})).await.ok();
    assert_eq!(a["secret_visible"], true, "A's own /tmp keeps the file (warm reuse)");
    assert_eq!(a["task_files"], json!(["lambda_function.py"]));

    let event = json!({"host_paths": host_paths});
    let (b, cc) = tokio::join!(invoke(c, "fn-b", &event), invoke(&oc, "fn-c", &event));
    let (b, cc) = (b.ok(), cc.ok());
    assert_confined(&b, "B", &host_paths);
    assert_confined(&cc, "C", &host_paths);
    assert_ne!(b["uid"], cc["uid"], "sandboxes of different tenants run as different users");

    // Killing pid 1 from inside touches only the sandbox (if anything): the host keeps serving.
    let killed = invoke(c, "fn-b", &json!({"action": "kill-init"})).await;
    if killed.function_error.is_some() {
        let doc = killed.json();
        assert_eq!(doc["errorType"], "Runtime.ExitError", "only B's sandbox may die: {doc}");
    }
    let a_again = invoke(c, "fn-a", &json!({})).await.ok();
    assert_eq!(a_again["secret_visible"], true, "A's sandbox was untouched: {a_again}");
    assert_confined(&invoke(c, "fn-b", &json!({})).await.ok(), "B", &[]);
    assert_confined(&invoke(&oc, "fn-c", &json!({})).await.ok(), "C", &[]);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_foreign_functions_are_refused() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    let other = fx.env.tenant().await;
    let oc = fx.env.lambda(&other);
    create_python(&oc, "theirs", &probe("T")).send().await.expect("create");

    let missing = c.invoke().function_name("no-such-function").send().await;
    assert_eq!(status_of(&missing), 404);
    assert_eq!(code_of(missing), "ResourceNotFoundException");
    let missing_arn = c.invoke().function_name(fx.arn("no-such-function")).send().await;
    assert_eq!(code_of(missing_arn), "ResourceNotFoundException");

    let theirs = format!("arn:aws:lambda:{}:{}:function:theirs", fx.env.region, other.account_id);
    let foreign = c.invoke().function_name(&theirs).send().await;
    assert_eq!(status_of(&foreign), 403);
    assert_eq!(code_of(foreign), "AccessDeniedException");
    let foreign_dry =
        c.invoke().function_name(&theirs).invocation_type(aws_sdk_lambda::types::InvocationType::DryRun).send().await;
    assert_eq!(status_of(&foreign_dry), 403, "INV-4: DryRun checks cross-account access");

    // Its owner can invoke it by the same ARN.
    assert_eq!(invoke(&oc, &theirs, &json!({})).await.ok()["marker"], "T");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_cannot_read_the_host_command_line() {
    let fx = Fixture::start().await;
    let c = &fx.client;
    create_python(c, "nosy", &probe("N")).send().await.expect("create");
    let got = invoke(c, "nosy", json!({})).await.ok();
    // The server's argv may carry secrets (`--database-url postgres://user:password@...`): no process
    // a function can see may expose it, including the sandbox's pid 1.
    let host_exe = std::env::current_exe().expect("exe").display().to_string();
    let cmdlines = got["cmdlines"].to_string();
    assert!(!cmdlines.contains(&host_exe), "the host's command line is visible in /proc: {cmdlines}");
    fx.stop().await;
}
