//! A frontend skips a router it cannot connect to: one dead router costs a retry, not a failed call.

use lamina_tests::ClusterOptions;
use serde_json::json;

use crate::{create_python, kill9, payload, serial, start};

const ECHO: &str = r#"def handler(event, context):
    return event
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_through_the_other_router_when_one_is_dead() {
    let _one_at_a_time = serial().await;
    let layout = ClusterOptions { routers: 2, exec_hosts: 1, ..ClusterOptions::default() };
    let Some(env) = start(&layout).await else { return };
    let tenant = env.tenant().await;
    let client = env.lambda(&tenant);
    create_python(&client, "echo", ECHO, 10).send().await.expect("create");
    let routers = env.server.cluster_children("invoke-router");
    assert_eq!(routers.len(), 2);
    kill9(routers[0]);
    lamina_tests::wait_until(std::time::Duration::from_secs(5), "the router to be gone", || async {
        (!std::path::Path::new(&format!("/proc/{}/stat", routers[0])).exists()
            || std::fs::read_to_string(format!("/proc/{}/stat", routers[0])).is_ok_and(|s| s.contains(") Z")))
        .then_some(())
    })
    .await;
    // Round-robin would send every other call to the dead router.
    for i in 0..10 {
        let out = client
            .invoke()
            .function_name("echo")
            .payload(payload(&json!({"i": i})))
            .send()
            .await
            .unwrap_or_else(|e| panic!("call {i} failed although a router is alive: {e:?}"));
        let body: serde_json::Value = serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("json");
        assert_eq!(body, json!({"i": i}));
    }
    env.stop().await;
}
