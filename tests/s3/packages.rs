//! Deployment packages from S3, and GetFunction's presigned `Code.Location`.

use std::time::{Duration, SystemTime};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::FunctionCode;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use base64::Engine as _;
use lamina_tests::{TestEnv, backend_tests};
use sha2::{Digest, Sha256};

use crate::{bucket_name, create_python, invoke, lambda_error, put, returning, s3_error};

backend_tests!(
    create_function_from_s3,
    unreadable_objects_fail_as_aws_reports_them,
    versions_pick_the_code_and_publishing_pins_it,
    code_location_downloads_the_zip,
    bucket_policy_lets_another_account_deploy,
);

fn from_s3(bucket: &str, key: &str) -> FunctionCode {
    FunctionCode::builder().s3_bucket(bucket).s3_key(key).build()
}

async fn create_function_from_s3(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let bucket = bucket_name("pkgs");
    let zip = returning("from s3");
    put(env, &t, &bucket, "builds/function.zip", zip.clone()).await;
    let created = create_python(&c, "s3fn", from_s3(&bucket, "builds/function.zip")).send().await.expect("create");
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
    assert_eq!(created.code_sha256(), Some(digest.as_str()), "stored exactly the object's bytes");
    assert_eq!(created.code_size(), zip.len() as i64);
    assert_eq!(invoke(&c, "s3fn", None).await, "\"from s3\"");

    // UpdateFunctionCode takes the same source as top-level members.
    put(env, &t, &bucket, "builds/v2.zip", returning("updated from s3")).await;
    let updated =
        c.update_function_code().function_name("s3fn").s3_bucket(&bucket).s3_key("builds/v2.zip").send().await;
    assert_ne!(updated.expect("update").code_sha256(), Some(digest.as_str()));
    assert_eq!(invoke(&c, "s3fn", None).await, "\"updated from s3\"");
}

async fn unreadable_objects_fail_as_aws_reports_them(env: &TestEnv) {
    let t = env.tenant().await;
    let other = env.tenant().await;
    let c = env.lambda(&t);
    let bucket = bucket_name("mine");
    put(env, &t, &bucket, "ok.zip", returning("ok")).await;
    let foreign = bucket_name("theirs");
    put(env, &other, &foreign, "f.zip", returning("theirs")).await;
    let message = |code: &str, text: &str| {
        format!("Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {text}")
    };
    let cases = [
        (from_s3(&bucket, "missing.zip"), message("NoSuchKey", "The specified key does not exist.")),
        (from_s3(&bucket_name("nobody"), "f.zip"), message("NoSuchBucket", "The specified bucket does not exist")),
        (from_s3(&foreign, "f.zip"), message("AccessDenied", "Access Denied")),
    ];
    for (i, (code, expected)) in cases.into_iter().enumerate() {
        let (err, text) = lambda_error(create_python(&c, &format!("bad-{i}"), code).send().await);
        assert_eq!((err.as_str(), text.as_str()), ("InvalidParameterValueException", expected.as_str()));
    }
    let missing_version = FunctionCode::builder()
        .s3_bucket(&bucket)
        .s3_key("ok.zip")
        .s3_object_version("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
        .build();
    let (err, text) = lambda_error(create_python(&c, "bad-version", missing_version).send().await);
    assert_eq!(err, "InvalidParameterValueException");
    assert!(text.starts_with("Error occurred while GetObject. S3 Error Code: NoSuch"), "{text}");
    // The other tenant can read its own object.
    let theirs = env.lambda(&other);
    create_python(&theirs, "theirs", from_s3(&foreign, "f.zip")).send().await.expect("owner reads it");
    let (err, text) = lambda_error(
        theirs.update_function_code().function_name("theirs").s3_bucket(&foreign).s3_key("nope").send().await,
    );
    assert_eq!(
        (err.as_str(), text.as_str()),
        ("InvalidParameterValueException", message("NoSuchKey", "The specified key does not exist.").as_str())
    );
    assert_eq!(crate::invoke(&theirs, "theirs", None).await, "\"theirs\"", "a refused update changes nothing");

    let both = FunctionCode::builder().zip_file(Blob::new(returning("x"))).s3_bucket(&bucket).s3_key("ok.zip").build();
    let (err, text) = lambda_error(create_python(&c, "both", both).send().await);
    assert_eq!(err, "InvalidParameterValueException");
    assert_eq!(text, "Please do not provide other FunctionCode parameters when providing a ZipFile.");
    let (err, text) = lambda_error(create_python(&c, "neither", FunctionCode::builder().build()).send().await);
    assert_eq!(
        (err.as_str(), text.as_str()),
        ("InvalidParameterValueException", "Please provide a source for function code.")
    );
    let (err, _) = lambda_error(create_python(&c, "short", from_s3("ab", "ok.zip")).send().await);
    assert_eq!(err, "ValidationException", "bucket names are 3-63 characters");
    // Nothing was created by the refused requests.
    let names: Vec<String> = c
        .list_functions()
        .send()
        .await
        .expect("list")
        .functions()
        .iter()
        .filter_map(|f| f.function_name().map(str::to_owned))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

async fn versions_pick_the_code_and_publishing_pins_it(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let s3 = env.s3(&t);
    let bucket = bucket_name("versioned");
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .expect("enable versioning");
    let v1 = put(env, &t, &bucket, "f.zip", returning("one")).await.expect("version id of v1");
    let v2 = put(env, &t, &bucket, "f.zip", returning("two")).await.expect("version id of v2");
    assert_ne!(v1, v2);
    let code = FunctionCode::builder().s3_bucket(&bucket).s3_key("f.zip").s3_object_version(&v1).build();
    create_python(&c, "pinned", code).publish(true).send().await.expect("create from version 1");
    assert_eq!(invoke(&c, "pinned", None).await, "\"one\"", "the named version, not the newest");

    // UpdateFunctionCode without a version reads the newest; the published version keeps its code,
    // and so does everything once the object is overwritten again.
    c.update_function_code().function_name("pinned").s3_bucket(&bucket).s3_key("f.zip").send().await.expect("update");
    assert_eq!(invoke(&c, "pinned", None).await, "\"two\"");
    put(env, &t, &bucket, "f.zip", returning("three")).await;
    s3.delete_object().bucket(&bucket).key("f.zip").version_id(&v1).send().await.expect("delete version 1");
    assert_eq!(invoke(&c, "pinned", Some("1")).await, "\"one\"", "a published version never changes");
    assert_eq!(invoke(&c, "pinned", None).await, "\"two\"", "$LATEST holds the bytes read at update time");
}

/// `Code.Location` is a presigned GET on the S3 API: it serves the exact zip for ten minutes, and
/// nothing else.
async fn code_location_downloads_the_zip(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    let zip = returning("download");
    create_python(&c, "dl", FunctionCode::builder().zip_file(Blob::new(zip.clone())).build())
        .send()
        .await
        .expect("create");
    let got = c.get_function().function_name("dl").send().await.expect("get");
    let code = got.code().expect("code");
    assert_eq!(code.repository_type(), Some("S3"));
    let url = code.location().expect("location");
    assert!(url.starts_with(&env.s3_endpoint()), "{url} is on the S3 API");
    assert!(url.contains("X-Amz-Expires=600"), "{url}");
    let resp = reqwest::get(url).await.expect("download");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.expect("bytes");
    assert_eq!(body.as_ref(), zip.as_slice(), "the URL serves the exact zip");
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
    assert_eq!(got.configuration().and_then(|c| c.code_sha256()), Some(digest.as_str()));

    let (signed, signature) = url.split_once("X-Amz-Signature=").expect("signature");
    let flipped = match signature.strip_prefix('0') {
        Some(rest) => format!("1{rest}"),
        None => format!("0{}", signature.get(1..).unwrap_or_default()),
    };
    let tampered = format!("{signed}X-Amz-Signature={flipped}");
    assert_eq!(reqwest::get(&tampered).await.expect("download").status().as_u16(), 403);
    let sha = hex::encode(Sha256::digest(&zip));
    let other_blob = url.replace(&sha, &"0".repeat(64));
    assert_eq!(reqwest::get(&other_blob).await.expect("download").status().as_u16(), 403, "a URL is good for one blob");

    // Signed eleven minutes ago with the same key: expired.
    let secrets = lamina::serve::Secrets::load(env.data_dir.path(), None, Some(&env.server.admin_token)).expect("keys");
    let locations = lamina::serve::code_locations(&secrets, &env.region, env.s3_endpoint()).expect("locations");
    let old = SystemTime::now() - Duration::from_secs(11 * 60);
    let expired = locations.location_at(&env.region, &t.account_id, &sha, old).expect("old location");
    assert_eq!(reqwest::get(&expired).await.expect("download").status().as_u16(), 403, "expired");
    let fresh = locations.location_at(&env.region, &t.account_id, &sha, SystemTime::now()).expect("location");
    assert_eq!(reqwest::get(&fresh).await.expect("download").status().as_u16(), 200, "the same key, in time");
}

/// Another account's bucket becomes a package source once its bucket policy grants the deployer
/// `s3:GetObject`, and stops being one when the policy goes; deployed code stays.
async fn bucket_policy_lets_another_account_deploy(env: &TestEnv) {
    let owner = env.tenant().await;
    let deployer = env.tenant().await;
    let bucket = bucket_name("shared");
    put(env, &owner, &bucket, "builds/pkg.zip", returning("shared package")).await;
    let c = env.lambda(&deployer);
    let denied = (
        "InvalidParameterValueException".to_owned(),
        "Error occurred while GetObject. S3 Error Code: AccessDenied. S3 Error Message: Access Denied".to_owned(),
    );
    assert_eq!(lambda_error(create_python(&c, "shared", from_s3(&bucket, "builds/pkg.zip")).send().await), denied);

    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{}:root", deployer.account_id)},
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/builds/*"),
        }]
    });
    let owner_s3 = env.s3(&owner);
    owner_s3.put_bucket_policy().bucket(&bucket).policy(policy.to_string()).send().await.expect("put policy");
    let created =
        create_python(&c, "shared", from_s3(&bucket, "builds/pkg.zip")).send().await.expect("create from the bucket");
    assert_eq!(created.code_size(), returning("shared package").len() as i64);
    assert_eq!(invoke(&c, "shared", None).await, "\"shared package\"");
    // The grant is exactly s3:GetObject on builds/*: no listing, no writes.
    let s3 = env.s3(&deployer);
    s3.get_object().bucket(&bucket).key("builds/pkg.zip").send().await.expect("deployer reads the object");
    assert_eq!(s3_error(s3.list_objects_v2().bucket(&bucket).send().await), "AccessDenied");
    let write = s3.put_object().bucket(&bucket).key("builds/evil.zip").body(returning("evil").into()).send().await;
    assert_eq!(s3_error(write), "AccessDenied");

    owner_s3.delete_bucket_policy().bucket(&bucket).send().await.expect("delete policy");
    let update = c.update_function_code().function_name("shared").s3_bucket(&bucket).s3_key("builds/pkg.zip");
    assert_eq!(lambda_error(update.send().await), denied);
    assert_eq!(invoke(&c, "shared", None).await, "\"shared package\"", "deployed code stays");
}
