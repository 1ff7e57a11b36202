//! The S3 API's authentication (SigV4 headers, presigned URLs, session tokens, package downloads)
//! and S3 event notifications, through the real aws-sdk-s3 client and plain HTTP.

mod s3_common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration,
    NotificationConfiguration, NotificationConfigurationFilter, S3KeyFilter,
};
use s3_common::*;

const FN_ARN: &str = "arn:aws:lambda:us-east-1:111111111111:function:thumbs";

#[tokio::test]
async fn signatures_keys_sessions_and_presigned_urls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let s3 = server.client(ALICE_KEY);
    s3.create_bucket().bucket("auth").send().await.unwrap();
    s3.put_object().bucket("auth").key("doc.txt").body(ByteStream::from_static(b"hello")).send().await.unwrap();
    let http = reqwest::Client::new();

    // Unsigned: 403 AccessDenied in S3's XML shape, with a RequestId.
    let resp = http.get(format!("{}/auth/doc.txt", server.endpoint())).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let request_id = resp.headers().get("x-amz-request-id").unwrap().to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    assert!(text.contains(&format!("<RequestId>{request_id}</RequestId>")), "{text}");

    let wrong = server.client_with(ALICE_KEY.0, "not-the-secret", None);
    let err = wrong.get_object().bucket("auth").key("doc.txt").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("SignatureDoesNotMatch".to_owned(), 403));
    let unknown = server.client_with("AKIANOBODY000000", "x", None);
    let err = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(code_of(&err), ("InvalidAccessKeyId".to_owned(), 403));

    // Session credentials work only with their token.
    let no_token = server.client_with(SESSION_KEY.0, SESSION_KEY.1, None);
    let err = no_token.get_object().bucket("auth").key("doc.txt").send().await.unwrap_err();
    assert_eq!(code_of(&err).1, 403);
    let bad_token = server.client_with(SESSION_KEY.0, SESSION_KEY.1, Some("forged"));
    let err = bad_token.get_object().bucket("auth").key("doc.txt").send().await.unwrap_err();
    assert_eq!(code_of(&err).0, "InvalidToken");
    let session = server.client_with(SESSION_KEY.0, SESSION_KEY.1, Some(SESSION_TOKEN));
    let got = session.get_object().bucket("auth").key("doc.txt").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"hello");
    session.put_object().bucket("auth").key("by-session").body(ByteStream::from_static(b"s")).send().await.unwrap();

    // Presigned GET: works, also with a session token in the query; an expired one is refused.
    let presigned = s3
        .get_object()
        .bucket("auth")
        .key("doc.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    let resp = http.get(presigned.uri()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");
    let presigned = session
        .get_object()
        .bucket("auth")
        .key("doc.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    assert!(presigned.uri().contains("X-Amz-Security-Token"));
    assert_eq!(http.get(presigned.uri()).send().await.unwrap().status(), 200);
    let expired = s3
        .get_object()
        .bucket("auth")
        .key("doc.txt")
        .presigned(
            PresigningConfig::builder()
                .start_time(SystemTime::now() - Duration::from_secs(3600))
                .expires_in(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let resp = http.get(expired.uri()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("<Code>AccessDenied</Code>"));
    // Tampering with a presigned URL breaks its signature.
    let tampered = presigned.uri().replace("doc.txt", "by-session");
    assert_eq!(http.get(tampered).send().await.unwrap().status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn package_downloads_serve_blobs_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let digest = "ab".repeat(32);
    std::fs::write(server.code.path(&digest), b"PK-zip-bytes").unwrap();
    let code = server.client(CODE_KEY);
    let url = code
        .get_object()
        .bucket(CODE_BUCKET)
        .key(format!("{ALICE}/{digest}.zip"))
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    let resp = reqwest::get(url.uri()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"PK-zip-bytes");

    let missing =
        code.get_object().bucket(CODE_BUCKET).key(format!("{ALICE}/{}.zip", "cd".repeat(32))).send().await.unwrap_err();
    assert_eq!(code_of(&missing).1, 404);
    let err = code.list_buckets().send().await.unwrap_err();
    assert_eq!(code_of(&err), ("AccessDenied".to_owned(), 403));
    let err = code
        .put_object()
        .bucket(CODE_BUCKET)
        .key(format!("{ALICE}/{digest}.zip"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), ("AccessDenied".to_owned(), 403));
    let alice = server.client(ALICE_KEY);
    alice.create_bucket().bucket("alices").send().await.unwrap();
    let err = code.get_object().bucket("alices").key("k").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("AccessDenied".to_owned(), 403));
    // Nobody else reads the reserved bucket.
    let err = alice.get_object().bucket(CODE_BUCKET).key(format!("{ALICE}/{digest}.zip")).send().await.unwrap_err();
    assert_eq!(code_of(&err), ("AccessDenied".to_owned(), 403));
    server.stop().await;
}

fn lambda_config(id: &str, events: &[&str], prefix: Option<&str>, suffix: Option<&str>) -> LambdaFunctionConfiguration {
    let mut rules = Vec::new();
    if let Some(p) = prefix {
        rules.push(FilterRule::builder().name(FilterRuleName::Prefix).value(p).build());
    }
    if let Some(s) = suffix {
        rules.push(FilterRule::builder().name(FilterRuleName::Suffix).value(s).build());
    }
    let mut b = LambdaFunctionConfiguration::builder().id(id).lambda_function_arn(FN_ARN);
    for e in events {
        b = b.events(Event::from(*e));
    }
    if !rules.is_empty() {
        b = b.filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                .build(),
        );
    }
    b.build().unwrap()
}

#[tokio::test]
async fn notifications_validate_filter_and_carry_s3_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let s3 = server.client(ALICE_KEY);
    s3.create_bucket().bucket("photos").send().await.unwrap();

    let put_conf = |confs: Vec<LambdaFunctionConfiguration>| {
        s3.put_bucket_notification_configuration()
            .bucket("photos")
            .notification_configuration(
                NotificationConfiguration::builder().set_lambda_function_configurations(Some(confs)).build(),
            )
            .send()
    };
    let err = put_conf(vec![lambda_config("x", &["s3:ObjectCreated:Bogus"], None, None)]).await.unwrap_err();
    assert_eq!(code_of(&err), ("InvalidArgument".to_owned(), 400));
    server.events.refused.lock().unwrap().insert(FN_ARN.to_owned());
    let err = put_conf(vec![lambda_config("x", &["s3:ObjectCreated:*"], None, None)]).await.unwrap_err();
    assert_eq!(code_of(&err).0, "InvalidArgument");
    assert!(format!("{err:?}").contains("Unable to validate the following destination configurations"));
    server.events.refused.lock().unwrap().clear();

    put_conf(vec![
        lambda_config("created", &["s3:ObjectCreated:*"], Some("images/"), Some(".jpg")),
        lambda_config("removed", &["s3:ObjectRemoved:*"], None, None),
    ])
    .await
    .unwrap();
    let got = s3.get_bucket_notification_configuration().bucket("photos").send().await.unwrap();
    assert_eq!(got.lambda_function_configurations().len(), 2);
    assert_eq!(got.lambda_function_configurations()[0].id(), Some("created"));
    assert_eq!(got.lambda_function_configurations()[0].lambda_function_arn(), FN_ARN);

    // Not matching the filter: no delivery.
    s3.put_object().bucket("photos").key("images/a.png").body(ByteStream::from_static(b"png")).send().await.unwrap();
    s3.put_object().bucket("photos").key("docs/a.jpg").body(ByteStream::from_static(b"jpg")).send().await.unwrap();
    assert!(server.events.take().is_empty());

    let put = s3
        .put_object()
        .bucket("photos")
        .key("images/my photo.jpg")
        .body(ByteStream::from_static(b"jpeg-bytes"))
        .send()
        .await
        .unwrap();
    let delivered = server.events.take();
    assert_eq!(delivered.len(), 1, "delivered before the PUT was answered");
    let d = &delivered[0];
    assert_eq!(d.function_arn, FN_ARN);
    assert_eq!(d.bucket_owner, ALICE);
    let records = d.event["Records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["eventVersion"], "2.1");
    assert_eq!(r["eventSource"], "aws:s3");
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["eventName"], "ObjectCreated:Put");
    let time = r["eventTime"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    assert_eq!(r["userIdentity"]["principalId"], ALICE);
    assert_eq!(r["requestParameters"]["sourceIPAddress"], "127.0.0.1");
    assert!(!r["responseElements"]["x-amz-request-id"].as_str().unwrap().is_empty());
    assert!(!r["responseElements"]["x-amz-id-2"].as_str().unwrap().is_empty());
    assert_eq!(r["s3"]["s3SchemaVersion"], "1.0");
    assert_eq!(r["s3"]["configurationId"], "created");
    assert_eq!(r["s3"]["bucket"]["name"], "photos");
    assert_eq!(r["s3"]["bucket"]["ownerIdentity"]["principalId"], ALICE);
    assert_eq!(r["s3"]["bucket"]["arn"], "arn:aws:s3:::photos");
    assert_eq!(r["s3"]["object"]["key"], "images/my+photo.jpg");
    assert_eq!(r["s3"]["object"]["size"], 10);
    assert_eq!(format!("\"{}\"", r["s3"]["object"]["eTag"].as_str().unwrap()), put.e_tag().unwrap());
    assert!(r["s3"]["object"].get("versionId").is_none(), "unversioned bucket");
    let seq1 = r["s3"]["object"]["sequencer"].as_str().unwrap().to_owned();

    // Copy and multipart complete are ObjectCreated too; sequencers increase.
    s3.copy_object()
        .bucket("photos")
        .key("images/copy.jpg")
        .copy_source("photos/images/my%20photo.jpg")
        .send()
        .await
        .unwrap();
    let up = s3.create_multipart_upload().bucket("photos").key("images/mp.jpg").send().await.unwrap();
    let id = up.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("photos")
        .key("images/mp.jpg")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("photos")
        .key("images/mp.jpg")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let names: Vec<String> =
        server.events.take().iter().map(|d| d.event["Records"][0]["eventName"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"]);

    // Deletes: one record per key, with the removed-config id.
    s3.delete_object().bucket("photos").key("images/copy.jpg").send().await.unwrap();
    let delivered = server.events.take();
    assert_eq!(delivered.len(), 1);
    let r = &delivered[0].event["Records"][0];
    assert_eq!(r["eventName"], "ObjectRemoved:Delete");
    assert_eq!(r["s3"]["configurationId"], "removed");
    assert!(r["s3"]["object"]["sequencer"].as_str().unwrap() > seq1.as_str());

    // When the queue cannot take the event, the client gets 503 and the object stays.
    server.events.set_fail(true);
    let err = s3
        .put_object()
        .bucket("photos")
        .key("images/queued.jpg")
        .body(ByteStream::from_static(b"q"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), ("ServiceUnavailable".to_owned(), 503));
    server.events.set_fail(false);
    s3.head_object().bucket("photos").key("images/queued.jpg").send().await.unwrap();

    // Versioned buckets: versionId in the record; a plain delete creates a marker.
    s3.put_bucket_versioning()
        .bucket("photos")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let put =
        s3.put_object().bucket("photos").key("images/v.jpg").body(ByteStream::from_static(b"v")).send().await.unwrap();
    let d = server.events.take();
    assert_eq!(d[0].event["Records"][0]["s3"]["object"]["versionId"], put.version_id().unwrap());
    s3.delete_object().bucket("photos").key("images/v.jpg").send().await.unwrap();
    let d = server.events.take();
    assert_eq!(d[0].event["Records"][0]["eventName"], "ObjectRemoved:DeleteMarkerCreated");
    server.stop().await;
}

/// Virtual-hosted-style addressing (`<bucket>.s3.localhost`): the SDK presigns against the bucket's
/// host name, which this test resolves to the server; path style keeps working beside it.
#[tokio::test]
async fn virtual_hosted_style_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let creds = aws_credential_types::Credentials::new(ALICE_KEY.0, ALICE_KEY.1, None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(format!("http://s3.localhost:{}", server.addr.port()))
        .build();
    let virtual_hosted = aws_sdk_s3::Client::from_conf(conf);
    server.client(ALICE_KEY).create_bucket().bucket("vhost").send().await.unwrap();
    let http = reqwest::Client::builder().resolve("vhost.s3.localhost", server.addr).build().unwrap();
    let presign = || PresigningConfig::expires_in(Duration::from_secs(600)).unwrap();

    let put = virtual_hosted.put_object().bucket("vhost").key("dir/v.txt").presigned(presign()).await.unwrap();
    assert!(put.uri().starts_with(&format!("http://vhost.s3.localhost:{}/dir/v.txt?", server.addr.port())));
    let resp = http.put(put.uri()).body("virtual").send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let get = virtual_hosted.get_object().bucket("vhost").key("dir/v.txt").presigned(presign()).await.unwrap();
    let resp = http.get(get.uri()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"virtual");
    // The same object through path style.
    let got = server.client(ALICE_KEY).get_object().bucket("vhost").key("dir/v.txt").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"virtual");
}
