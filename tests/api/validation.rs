//! Every validation error, with its AWS error code, and proof that a refused request changed nothing.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime, VpcConfig};
use lamina_tests::{TestEnv, backend_tests, zip_of};

use crate::{code_of, create_python, status_of};

backend_tests!(model_and_service_errors, bad_packages_are_refused, oversize_requests_get_413);

async fn model_and_service_errors(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let cases: Vec<(&str, aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder, &str)> = vec![
        ("space in name", create_python(&c, "bad name"), "ValidationException"),
        ("65-char name", create_python(&c, &"n".repeat(65)), "ValidationException"),
        (
            "141-char arn",
            create_python(&c, &format!("arn:aws:lambda:us-east-1:{}:function:{}", t.account_id, "n".repeat(100))),
            "ValidationException",
        ),
        ("qualified name", create_python(&c, "withq:1"), "ValidationException"),
        ("memory 100", create_python(&c, "m1").memory_size(100), "ValidationException"),
        ("memory 1600", create_python(&c, "m2").memory_size(1600), "ValidationException"),
        ("memory step", create_python(&c, "m3").memory_size(200), "InvalidParameterValueException"),
        ("timeout 0", create_python(&c, "t1").timeout(0), "ValidationException"),
        ("timeout 301", create_python(&c, "t2").timeout(301), "ValidationException"),
        ("runtime", create_python(&c, "r1").runtime(Runtime::from("python9")), "ValidationException"),
        ("role", create_python(&c, "r2").role("not-a-role"), "ValidationException"),
        ("handler space", create_python(&c, "h1").handler("a b"), "ValidationException"),
        ("handler long", create_python(&c, "h2").handler("h".repeat(129)), "ValidationException"),
        ("description", create_python(&c, "d1").description("d".repeat(257)), "ValidationException"),
        (
            "env key",
            create_python(&c, "e1").environment(Environment::builder().variables("1BAD", "x").build()),
            "ValidationException",
        ),
        (
            "env reserved",
            create_python(&c, "e2").environment(Environment::builder().variables("AWS_REGION", "x").build()),
            "InvalidParameterValueException",
        ),
        (
            "env 4KB",
            create_python(&c, "e3").environment(Environment::builder().variables("BIG", "x".repeat(5000)).build()),
            "InvalidParameterValueException",
        ),
        (
            "vpc half",
            create_python(&c, "v1").vpc_config(VpcConfig::builder().subnet_ids("subnet-1").build()),
            "InvalidParameterValueException",
        ),
        (
            "both code sources",
            create_python(&c, "c1").code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip_of(&[("a", b"b")])))
                    .s3_bucket("bkt")
                    .s3_key("k")
                    .build(),
            ),
            "InvalidParameterValueException",
        ),
    ];
    for (what, req, expected) in cases {
        let result = req.send().await;
        let status = status_of(&result);
        assert_eq!(code_of(result), expected, "{what}");
        assert_eq!(status, 400, "{what}");
    }
    let listed = c.list_functions().send().await.expect("list");
    assert!(listed.functions().is_empty(), "no refused request created anything");

    // The message names the member and constraint the way AWS words it.
    let err = create_python(&c, "m4").memory_size(64).timeout(0).send().await.expect_err("two violations");
    let msg = err
        .as_service_error()
        .and_then(|e| aws_sdk_lambda::error::ProvideErrorMetadata::message(e))
        .unwrap_or_default()
        .to_owned();
    assert!(msg.starts_with("2 validation errors detected: "), "{msg}");
    assert!(msg.contains("Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128"), "{msg}");
}

async fn bad_packages_are_refused(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let with = |zip: Vec<u8>, name: &str| {
        create_python(&c, name).code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
    };
    let not_zip = with(b"definitely not a zip".to_vec(), "z1").send().await;
    assert_eq!(code_of(not_zip), "InvalidParameterValueException");
    let slip = with(zip_of(&[("../../etc/evil", b"x")]), "z2").send().await;
    assert_eq!(code_of(slip), "InvalidParameterValueException");
    let absolute = with(zip_of(&[("/etc/evil", b"x")]), "z3").send().await;
    assert_eq!(code_of(absolute), "InvalidParameterValueException");
    // 300 MB of zeros deflates to a small zip but is over the 250 MB unzipped limit.
    let bomb = {
        use std::io::Write as _;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("zeros", zip::write::SimpleFileOptions::default().compression_level(Some(9))).expect("start");
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..300 {
            w.write_all(&chunk).expect("write");
        }
        w.finish().expect("finish").into_inner()
    };
    assert!(bomb.len() < 2 << 20);
    let bomb = with(bomb, "z4").send().await;
    assert_eq!(code_of(bomb), "InvalidParameterValueException");
    assert!(c.list_functions().send().await.expect("list").functions().is_empty());
    assert_eq!(std::fs::read_dir(env.blob_dir()).expect("blob dir").filter(|e| e.is_ok()).count(), 0, "nothing stored");
}

async fn oversize_requests_get_413(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    // 51 MB stored (not deflated) so the zip itself is over the 50 MB limit.
    let big = {
        use std::io::Write as _;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        w.start_file("blob", opts).expect("start");
        w.write_all(&vec![7u8; 51 * 1024 * 1024]).expect("write");
        w.finish().expect("finish").into_inner()
    };
    let result = create_python(&c, "big").code(FunctionCode::builder().zip_file(Blob::new(big)).build()).send().await;
    let status = status_of(&result);
    assert_eq!(code_of(result), "RequestEntityTooLargeException");
    assert_eq!(status, 413);
    assert!(c.list_functions().send().await.expect("list").functions().is_empty());
}
