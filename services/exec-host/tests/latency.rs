//! Prints cold-start and warm-invoke latency (run with `--ignored --nocapture`).

mod common;

use std::time::Instant;

use common::{PY_BOOTSTRAP, TestHost, json};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn measure_latency() {
    for quota in [false, true] {
        let t = TestHost::start_with(|c| c.cpu_quota = quota).await;
        let mut cold = Vec::new();
        let mut init = Vec::new();
        for i in 0..10 {
            let f = t.py_function(&format!("lat{i}"));
            let s = Instant::now();
            let out = t.invoke(&f, json!({"action": "echo"})).await;
            cold.push(s.elapsed().as_secs_f64() * 1000.0);
            init.push(out.init_duration_ms.unwrap_or(0.0));
        }
        let f = t.py_function("warm");
        t.invoke(&f, json!({"action": "echo"})).await;
        let mut warm = Vec::new();
        for _ in 0..50 {
            let s = Instant::now();
            let out = t.invoke(&f, json!({"action": "tmp_list"})).await;
            assert!(json(&out).is_array());
            warm.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        t.host.shutdown().await;
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "cpu_quota={quota}: cold invoke median {:.1} ms (init {:.1} ms), warm invoke median {:.2} ms",
            med(&mut cold),
            med(&mut init),
            med(&mut warm)
        );
    }
    // The same bootstrap's interpreter start outside any sandbox (imports only).
    let script = PY_BOOTSTRAP.lines().take(2).collect::<Vec<_>>().join("\n");
    let mut direct = Vec::new();
    for _ in 0..10 {
        let s = Instant::now();
        let st = std::process::Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(&script)
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
            .status();
        assert!(st.is_ok());
        direct.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    direct.sort_by(f64::total_cmp);
    println!("direct python3 start + imports median {:.1} ms", direct[direct.len() / 2]);
}
