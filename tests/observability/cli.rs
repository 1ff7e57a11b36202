//! The AWS CLI v1 and boto3 against Lamina with `--endpoint-url`, unchanged: `aws logs
//! filter-log-events`, `get-log-events`, `describe-log-groups`, and `aws cloudwatch
//! get-metric-statistics` in each protocol CloudWatch's model lists (botocore picks JSON 1.0; a
//! copy of the model in `AWS_DATA_PATH` makes the same botocore speak the query protocol or RPC v2
//! CBOR, as older and newer clients do).
//!
//! The Python comes from `LAMINA_TEST_AWS_PYTHON` (scripts/test.sh: the test servers' virtualenv,
//! with `awscli` and `boto3`). Without it the test is skipped, except under CI, where it fails.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use lamina_tests::{Tenant, TestEnv, create_python};
use serde_json::Value;

use super::metrics::totals;
use super::{PRINTER, cloudwatch, invoke, logs};

/// The Python with `awscli` and `boto3`, or `None` (skipped) outside CI.
fn python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("LAMINA_TEST_AWS_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(python));
    }
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    assert!(!ci, "LAMINA_TEST_AWS_PYTHON must name a Python with awscli and boto3 under CI (scripts/test.sh sets it)");
    eprintln!("skipping: LAMINA_TEST_AWS_PYTHON is not set (a Python with awscli and boto3)");
    None
}

struct Cli<'a> {
    python: PathBuf,
    env: &'a TestEnv,
    tenant: &'a Tenant,
    /// An `AWS_DATA_PATH` holding a model that changes botocore's protocol.
    data_path: Option<PathBuf>,
}

impl Cli<'_> {
    fn command(&self, program_args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.python);
        command
            .args(program_args)
            .env("AWS_ACCESS_KEY_ID", &self.tenant.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.tenant.secret_access_key)
            .env("AWS_DEFAULT_REGION", &self.env.region)
            .env("AWS_REGION", &self.env.region)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .kill_on_drop(true);
        match &self.data_path {
            Some(path) => command.env("AWS_DATA_PATH", path),
            None => command.env_remove("AWS_DATA_PATH"),
        };
        command
    }

    /// `aws <args> --endpoint-url <lamina> --output json`.
    async fn aws(&self, args: &[&str]) -> Output {
        let endpoint = self.env.endpoint();
        let mut all = vec!["-m", "awscli"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--endpoint-url", &endpoint, "--output", "json"]);
        let run = self.command(&all).output();
        tokio::time::timeout(Duration::from_secs(60), run).await.expect("aws CLI within 60 s").expect("run the aws CLI")
    }

    /// `aws ...` that must succeed; its JSON output.
    async fn json(&self, args: &[&str]) -> Value {
        let out = self.aws(args).await;
        assert!(out.status.success(), "aws {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("aws {args:?} output ({e}): {out:?}"))
    }
}

/// A copy of botocore's CloudWatch model that only lists `protocol`.
async fn model_speaking(python: &Path, dir: &Path, protocol: &str) -> PathBuf {
    let root = dir.join(protocol);
    let script = "import json, sys, botocore.loaders\n\
                  model = botocore.loaders.Loader().load_service_model('cloudwatch', 'service-2')\n\
                  model['metadata']['protocol'] = sys.argv[2]\n\
                  model['metadata']['protocols'] = [sys.argv[2]]\n\
                  version = model['metadata']['apiVersion']\n\
                  import os\n\
                  out = os.path.join(sys.argv[1], 'cloudwatch', version)\n\
                  os.makedirs(out, exist_ok=True)\n\
                  json.dump(model, open(os.path.join(out, 'service-2.json'), 'w'))\n";
    let status = tokio::process::Command::new(python)
        .args(["-c", script, &root.to_string_lossy(), protocol])
        .env_remove("AWS_DATA_PATH")
        .status()
        .await
        .expect("run python");
    assert!(status.success(), "write the {protocol} model");
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_v1_and_boto3() {
    let Some(python) = python() else { return };
    let env = TestEnv::start(lamina_tests::Backend::Sqlite).await.expect("sqlite always available");
    run(&env, python).await;
    env.stop().await;
}

async fn run(env: &TestEnv, python: PathBuf) {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    create_python(&lambda, "cli", PRINTER).send().await.expect("create");
    let since = chrono::Utc::now().timestamp() - 120;
    let (id, _) = invoke(&lambda, "cli", r#"{"tag": "CLIMARK", "n": 2}"#).await;
    invoke(&lambda, "cli", r#"{"tag": "other", "n": 1}"#).await;
    let window = (since, chrono::Utc::now().timestamp() + 120);
    let client = logs(env, &t);
    let group = "/aws/lambda/cli";
    let stream = lamina_tests::wait_until(Duration::from_secs(5), "the second invocation's lines", || async {
        let found = client.filter_log_events().log_group_name(group).filter_pattern("other").send().await.ok()?;
        found.events().first().and_then(|e| e.log_stream_name()).map(str::to_owned)
    })
    .await;
    let cw = cloudwatch(env, &t);
    lamina_tests::wait_until(Duration::from_secs(10), "2 invocations in the metrics", || async {
        (totals(&cw, "Invocations", &[("FunctionName", "cli")], window).await.sum == 2.0).then_some(())
    })
    .await;

    let cli = Cli { python: python.clone(), env, tenant: &t, data_path: None };
    let filtered =
        cli.json(&["logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "CLIMARK"]).await;
    let messages: Vec<&str> =
        filtered["events"].as_array().expect("events").iter().filter_map(|e| e["message"].as_str()).collect();
    assert_eq!(messages.iter().map(|m| m.trim_end()).collect::<Vec<_>>(), ["line 0 CLIMARK", "line 1 CLIMARK"]);

    let read = cli
        .json(&["logs", "get-log-events", "--log-group-name", group, "--log-stream-name", &stream, "--start-from-head"])
        .await;
    let lines: Vec<&str> =
        read["events"].as_array().expect("events").iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(lines.first().is_some_and(|l| l.starts_with(&format!("START RequestId: {id}"))), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with(&format!("REPORT RequestId: {id}"))), "{lines:?}");
    assert!(read["nextForwardToken"].as_str().is_some_and(|t| t.starts_with("f/")), "{read}");

    let groups = cli.json(&["logs", "describe-log-groups"]).await;
    assert_eq!(groups["logGroups"][0]["logGroupName"], group);

    // get-metric-statistics in each of CloudWatch's protocols.
    let start = chrono::DateTime::from_timestamp(window.0, 0).expect("start").to_rfc3339();
    let end = chrono::DateTime::from_timestamp(window.1, 0).expect("end").to_rfc3339();
    let models = tempfile::tempdir().expect("temp dir");
    let statistics = |period: &'static str| {
        [
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/Lambda",
            "--metric-name",
            "Invocations",
            "--dimensions",
            "Name=FunctionName,Value=cli",
            "--statistics",
            "Sum",
            "SampleCount",
            "--period",
            period,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    for (protocol, content_type) in [
        (None, "application/x-amz-json-1.0"),
        (Some("query"), "application/x-www-form-urlencoded"),
        (Some("smithy-rpc-v2-cbor"), "application/cbor"),
    ] {
        let data_path = match protocol {
            Some(p) => Some(model_speaking(&python, models.path(), p).await),
            None => None,
        };
        let cli = Cli { python: python.clone(), env, tenant: &t, data_path };
        let mut args = statistics("60");
        args.extend(["--start-time".into(), start.clone(), "--end-time".into(), end.clone(), "--debug".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli.aws(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{protocol:?}: {stderr}");
        assert!(stderr.contains(content_type), "{protocol:?} sent as {content_type}");
        let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
        let points = answer["Datapoints"].as_array().expect("Datapoints");
        let sum: f64 = points.iter().map(|p| p["Sum"].as_f64().expect("Sum")).sum();
        assert_eq!(sum, 2.0, "{protocol:?}: {answer}");
        // CLI v1 prints timestamps as they came: ISO 8601 from XML, epoch seconds from JSON and CBOR.
        assert!(points.iter().all(|p| p["Unit"] == "Count" && !p["Timestamp"].is_null()), "{answer}");

        let mut args = statistics("30");
        args.extend(["--start-time".into(), start.clone(), "--end-time".into(), end.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli.aws(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("(InvalidParameterValue)"), "{protocol:?}: {stderr}");
    }

    // boto3, as scripts use it.
    let script = "import boto3, json, sys, datetime\n\
                  kw = dict(endpoint_url=sys.argv[1])\n\
                  logs = boto3.client('logs', **kw)\n\
                  cw = boto3.client('cloudwatch', **kw)\n\
                  events = logs.filter_log_events(logGroupName='/aws/lambda/cli', filterPattern='CLIMARK')['events']\n\
                  start = datetime.datetime.fromtimestamp(int(sys.argv[2]), datetime.timezone.utc)\n\
                  end = datetime.datetime.fromtimestamp(int(sys.argv[3]), datetime.timezone.utc)\n\
                  stats = cw.get_metric_statistics(Namespace='AWS/Lambda', MetricName='Invocations', \
                  Dimensions=[{'Name': 'FunctionName', 'Value': 'cli'}], StartTime=start, EndTime=end, \
                  Period=60, Statistics=['Sum'])\n\
                  data = cw.get_metric_data(StartTime=start, EndTime=end, MetricDataQueries=[{'Id': 'inv', \
                  'MetricStat': {'Metric': {'Namespace': 'AWS/Lambda', 'MetricName': 'Invocations', \
                  'Dimensions': [{'Name': 'FunctionName', 'Value': 'cli'}]}, 'Period': 60, 'Stat': 'Sum'}}])\n\
                  try:\n    cw.get_metric_statistics(Namespace='AWS/Lambda', MetricName='Invocations', \
                  StartTime=start, EndTime=end, Period=30, Statistics=['Sum'])\n    code = None\n\
                  except cw.exceptions.InvalidParameterValueException as e:\n    code = e.response['Error']['Code']\n\
                  print(json.dumps({'lines': [e['message'].strip() for e in events], \
                  'sum': sum(p['Sum'] for p in stats['Datapoints']), \
                  'data': sum(sum(r['Values']) for r in data['MetricDataResults']), 'code': code}))\n";
    let endpoint = env.endpoint();
    let (from, to) = (window.0.to_string(), window.1.to_string());
    let out = cli.command(&["-c", script, &endpoint, &from, &to]).output().await.expect("run boto3");
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("boto3 output");
    assert_eq!(
        answer,
        serde_json::json!({"lines": ["line 0 CLIMARK", "line 1 CLIMARK"], "sum": 2.0, "data": 2.0,
                           "code": "InvalidParameterValue"})
    );
}
