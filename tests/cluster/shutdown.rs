//! SIGTERM to `lamina cluster` lets an invocation in flight finish before the processes stop.

use std::time::Duration;

use lamina_tests::ClusterOptions;
use serde_json::json;

use crate::{create_python, payload, serial, start};

const SLOW: &str = r#"import time


def handler(event, context):
    time.sleep(3)
    return {"done": event["n"]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_in_flight_across_sigterm_completes() {
    let _one_at_a_time = serial().await;
    let layout = ClusterOptions { routers: 1, exec_hosts: 1, ..ClusterOptions::default() };
    let Some(mut env) = start(&layout).await else { return };
    let tenant = env.tenant().await;
    let client = env.lambda(&tenant);
    create_python(&client, "slow", SLOW, 10).send().await.expect("create");
    // Warm the sandbox so the timed call below is the function's own 3 s.
    client.invoke().function_name("slow").payload(payload(&json!({"n": 0}))).send().await.expect("warm-up");

    let call = {
        let client = client.clone();
        tokio::spawn(
            async move { client.invoke().function_name("slow").payload(payload(&json!({"n": 1}))).send().await },
        )
    };
    // The call is well inside its 3 s by now (the warm sandbox starts it at once).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!call.is_finished(), "the call should still be running");
    let pid = env.server.cluster_pid().expect("cluster pid");
    let children: Vec<u32> = ["frontend", "invoke-router", "exec-host", "async-queue", "code-storage"]
        .iter()
        .flat_map(|s| env.server.cluster_children(s))
        .collect();
    assert_eq!(children.len(), 5, "one process per service");
    let status = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill");
    assert!(status.success());

    let out = tokio::time::timeout(Duration::from_secs(20), call).await.expect("answered").expect("join");
    let out = out.expect("the call in flight completes with 200");
    assert_eq!(out.function_error(), None);
    let body: serde_json::Value = serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("json");
    assert_eq!(body, json!({"done": 1}));
    let exit = tokio::time::timeout(Duration::from_secs(30), env.server.cluster_exit()).await.expect("cluster exits");
    assert!(exit.is_some_and(|s| s.success()), "cluster exit status {exit:?}");
    let alive: Vec<&u32> = children.iter().filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists()).collect();
    assert!(alive.is_empty(), "children outlived the cluster: {alive:?}");
    env.stop().await;
}
