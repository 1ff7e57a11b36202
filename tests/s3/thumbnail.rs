//! The guide's "Using AWS Lambda with Amazon S3" tutorial end to end: the deployment package is
//! uploaded to a bucket and the function created from it; uploading a PNG to the source bucket runs
//! `CreateThumbnail.handler`, which downloads the image through the S3 API with its sandbox's
//! credentials (boto3 as the runtime provides it), halves it, and uploads it to `<source>resized`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_lambda::types::{FunctionCode, Runtime};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration, NotificationConfiguration,
    NotificationConfigurationFilter, S3KeyFilter,
};
use lamina_tests::{TestEnv, backend_tests, wait_until};

use crate::bucket_name;

backend_tests!(thumbnail_tutorial);

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/thumbnail")
}

/// Runs the fixture's PNG codec: `script` sees `tinypng` and `sys.argv[1:]`.
fn python(script: &str, args: &[&Path]) -> String {
    let out = std::process::Command::new("/usr/bin/python3.11")
        .env("PYTHONPATH", fixture_dir())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3.11");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn thumbnail_tutorial(env: &TestEnv) {
    let t = env.tenant().await;
    let (lambda, s3) = (env.lambda(&t), env.s3(&t));
    let source = bucket_name("photos");
    let resized = format!("{source}resized");
    let packages = bucket_name("packages");
    for bucket in [&source, &resized, &packages] {
        s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
    }

    // zip -g CreateThumbnail.zip CreateThumbnail.py (+ the PNG codec standing in for Pillow)
    let read = |name: &str| std::fs::read(fixture_dir().join(name)).expect("fixture");
    let package = lamina_tests::zip_of(&[
        ("CreateThumbnail.py", read("CreateThumbnail.py").as_slice()),
        ("tinypng.py", read("tinypng.py").as_slice()),
    ]);
    s3.put_object()
        .bucket(&packages)
        .key("CreateThumbnail.zip")
        .body(ByteStream::from(package))
        .send()
        .await
        .expect("upload package");
    let created = lambda
        .create_function()
        .function_name("CreateThumbnail")
        .runtime(Runtime::from("python3.11"))
        .role("arn:aws:iam::123456789012:role/lambda-s3-execution-role")
        .handler("CreateThumbnail.handler")
        .timeout(60)
        .memory_size(256)
        .code(FunctionCode::builder().s3_bucket(&packages).s3_key("CreateThumbnail.zip").build())
        .send()
        .await
        .expect("create function from S3");
    let arn = created.function_arn().expect("arn").to_owned();
    lambda
        .add_permission()
        .function_name("CreateThumbnail")
        .statement_id("some-unique-id")
        .action("lambda:InvokeFunction")
        .principal("s3.amazonaws.com")
        .source_arn(format!("arn:aws:s3:::{source}"))
        .source_account(&t.account_id)
        .send()
        .await
        .expect("add permission");
    let suffix = FilterRule::builder().name(FilterRuleName::Suffix).value(".png").build();
    let filter =
        NotificationConfigurationFilter::builder().key(S3KeyFilter::builder().filter_rules(suffix).build()).build();
    let config = LambdaFunctionConfiguration::builder()
        .lambda_function_arn(&arn)
        .events(Event::S3ObjectCreated)
        .filter(filter)
        .build()
        .expect("configuration");
    s3.put_bucket_notification_configuration()
        .bucket(&source)
        .notification_configuration(NotificationConfiguration::builder().lambda_function_configurations(config).build())
        .send()
        .await
        .expect("configure notification");

    let dir = tempfile::tempdir().expect("tempdir");
    let original = dir.path().join("HappyFace.png");
    python(
        "import sys, tinypng\n\
         rows = [bytes(v for x in range(96) for v in (x * 2, y * 3, (x + y) % 256)) for y in range(64)]\n\
         tinypng.write(sys.argv[1], 96, 64, rows)",
        &[&original],
    );
    s3.put_object()
        .bucket(&source)
        .key("images/HappyFace.png")
        .content_type("image/png")
        .body(ByteStream::from(std::fs::read(&original).expect("read image")))
        .send()
        .await
        .expect("upload image");

    let thumbnail = wait_until(Duration::from_secs(120), "the thumbnail in the resized bucket", || async {
        let got = s3.get_object().bucket(&resized).key("images/HappyFace.png").send().await.ok()?;
        Some(got.body.collect().await.ok()?.into_bytes())
    })
    .await;
    let thumb_path = dir.path().join("thumb.png");
    std::fs::write(&thumb_path, &thumbnail).expect("write thumbnail");
    let size = python("import sys, tinypng\nw, h, _ = tinypng.read(sys.argv[1])\nprint(w, h)", &[&thumb_path]);
    assert_eq!(size, "48 32", "the thumbnail is half the size of the 96x64 original");

    let listed = s3.list_objects_v2().bucket(&resized).send().await.expect("list resized");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["images/HappyFace.png"]);
    // The handler prints after its upload: the line may land a moment after the thumbnail.
    let line = format!("Successfully resized {source}/images/HappyFace.png");
    wait_until(Duration::from_secs(30), "the handler's log line", || async {
        env.log_messages(&t, "CreateThumbnail").await.iter().any(|m| m.contains(&line)).then_some(())
    })
    .await;
}
