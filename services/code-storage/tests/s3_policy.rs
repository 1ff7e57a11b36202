//! Bucket policies: Put/Get/DeleteBucketPolicy and cross-account access through them, with the
//! real aws-sdk-s3 client against a real server, and `S3Store::read_object` (CreateFunction's read).

mod s3_common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier, VersioningConfiguration};
use lamina_code_storage::s3::ReadError;
use s3_common::*;
use serde_json::json;

const BUCKET: &str = "shared";

fn allow_bob(actions: &[&str], resources: &[&str]) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "bob",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{BOB}:root")},
            "Action": actions,
            "Resource": resources,
        }]
    })
    .to_string()
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, data: &'static [u8]) {
    s3.put_object().bucket(BUCKET).key(key).body(ByteStream::from_static(data)).send().await.unwrap();
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, (String, u16)> {
    match s3.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => Ok(out.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => Err(code_of(&e)),
    }
}

fn denied() -> (String, u16) {
    ("AccessDenied".to_owned(), 403)
}

#[tokio::test]
async fn policy_grants_bob_get_object_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let (alice, bob) = (server.client(ALICE_KEY), server.client(BOB_KEY));
    alice.create_bucket().bucket(BUCKET).send().await.unwrap();
    put(&alice, "pkg/a.zip", b"package").await;

    assert_eq!(get(&bob, "pkg/a.zip").await, Err(denied()));

    let policy = allow_bob(&["s3:GetObject"], &[&format!("arn:aws:s3:::{BUCKET}/*")]);
    alice.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.unwrap();

    assert_eq!(get(&bob, "pkg/a.zip").await.unwrap(), b"package");
    let head = bob.head_object().bucket(BUCKET).key("pkg/a.zip").send().await.unwrap();
    assert_eq!(head.content_length(), Some(7));
    let err = bob.put_object().bucket(BUCKET).key("x").body(ByteStream::from_static(b"x")).send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    let err = bob.list_objects_v2().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    let err = bob.delete_object().bucket(BUCKET).key("pkg/a.zip").send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    let err = bob.get_bucket_policy().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    let err = bob.delete_bucket_policy().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    let err = bob.delete_bucket().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    // A version read is its own action (s3:GetObjectVersion), not granted here.
    let err = bob.get_object().bucket(BUCKET).key("pkg/a.zip").version_id("null").send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    // Nothing bob tried changed anything.
    assert_eq!(get(&alice, "pkg/a.zip").await.unwrap(), b"package");
    let listed = alice.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["pkg/a.zip"]);
    server.stop().await;
}

#[tokio::test]
async fn deny_beats_allow_and_binds_the_owner_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let (alice, bob) = (server.client(ALICE_KEY), server.client(BOB_KEY));
    alice.create_bucket().bucket(BUCKET).send().await.unwrap();
    put(&alice, "public/a", b"a").await;
    put(&alice, "secret/s", b"s").await;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "s3:*",
             "Resource": [format!("arn:aws:s3:::{BUCKET}"), format!("arn:aws:s3:::{BUCKET}/*")]},
            {"Effect": "Deny", "Principal": "*", "Action": ["s3:GetObject*"],
             "Resource": format!("arn:aws:s3:::{BUCKET}/secret/*")},
        ]
    })
    .to_string();
    alice.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.unwrap();

    assert_eq!(get(&bob, "public/a").await.unwrap(), b"a");
    assert_eq!(get(&bob, "secret/s").await, Err(denied()));
    assert_eq!(get(&alice, "secret/s").await, Err(denied()), "an explicit Deny names the owner too");

    // s3:* lets bob write and list; what he writes belongs to the bucket (alice lists it as hers).
    put(&bob, "public/from-bob", b"b").await;
    let listed = bob.list_objects_v2().bucket(BUCKET).prefix("public/").fetch_owner(true).send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["public/a", "public/from-bob"]);
    assert!(listed.contents().iter().all(|o| o.owner().and_then(|w| w.id()) == Some(ALICE)));
    bob.head_bucket().bucket(BUCKET).send().await.unwrap();

    // DeleteObjects is decided per key.
    let deny_delete = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": BOB}, "Action": "s3:DeleteObject",
             "Resource": format!("arn:aws:s3:::{BUCKET}/public/*")},
        ]
    })
    .to_string();
    alice.put_bucket_policy().bucket(BUCKET).policy(&deny_delete).send().await.unwrap();
    let ids = ["public/from-bob", "secret/s"].map(|k| ObjectIdentifier::builder().key(k).build().unwrap());
    let out = bob
        .delete_objects()
        .bucket(BUCKET)
        .delete(Delete::builder().set_objects(Some(ids.to_vec())).build().unwrap())
        .send()
        .await
        .unwrap();
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["public/from-bob"]);
    let errors: Vec<(&str, &str)> = out.errors().iter().map(|e| (e.key().unwrap(), e.code().unwrap())).collect();
    assert_eq!(errors, [("secret/s", "AccessDenied")]);

    // The owner can always remove the policy, whatever it denies.
    alice.delete_bucket_policy().bucket(BUCKET).send().await.unwrap();
    assert_eq!(get(&alice, "secret/s").await.unwrap(), b"s");
    assert_eq!(get(&bob, "public/a").await, Err(denied()));
    server.stop().await;
}

#[tokio::test]
async fn malformed_policies_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let (alice, bob) = (server.client(ALICE_KEY), server.client(BOB_KEY));
    alice.create_bucket().bucket(BUCKET).send().await.unwrap();
    put(&alice, "k", b"v").await;
    let good = allow_bob(&["s3:GetObject"], &[&format!("arn:aws:s3:::{BUCKET}/*")]);
    alice.put_bucket_policy().bucket(BUCKET).policy(&good).send().await.unwrap();

    let cases = [
        ("not json".to_owned(), "Policies must be valid JSON and the first byte must be '{'"),
        ("{\"Version\": \"2012-10-17\", \"Statement\": [".to_owned(), "Policies must be valid JSON"),
        (json!({"Version": "2012-10-17"}).to_string(), "Missing required field Statement"),
        (allow_bob(&["s3:Frobnicate"], &[&format!("arn:aws:s3:::{BUCKET}/*")]), "Policy has invalid action"),
        (allow_bob(&["s3:GetObject"], &["arn:aws:s3:::someone-elses/*"]), "Policy has invalid resource"),
        (
            allow_bob(&["s3:GetObject"], &[&format!("arn:aws:s3:::{BUCKET}")]),
            "Action does not apply to any resource(s) in statement",
        ),
        (
            json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:GetObject",
                   "Resource": format!("arn:aws:s3:::{BUCKET}/*")}})
            .to_string(),
            "Invalid principal in policy",
        ),
        (
            json!({"Statement": {"Effect": "Perhaps", "Principal": "*", "Action": "s3:GetObject",
                   "Resource": format!("arn:aws:s3:::{BUCKET}/*")}})
            .to_string(),
            "Invalid effect: Perhaps",
        ),
    ];
    for (policy, message) in cases {
        let err = alice.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.unwrap_err();
        assert_eq!(code_of(&err), ("MalformedPolicy".to_owned(), 400), "{policy}");
        let got = aws_sdk_s3::error::ProvideErrorMetadata::message(&err).unwrap_or_default().to_owned();
        assert!(got.starts_with(message), "{policy}: {got}");
    }
    // Only the owner may set a policy, valid or not.
    let err = bob.put_bucket_policy().bucket(BUCKET).policy(&good).send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());

    let stored = alice.get_bucket_policy().bucket(BUCKET).send().await.unwrap();
    assert_eq!(stored.policy(), Some(good.as_str()));
    assert_eq!(get(&bob, "k").await.unwrap(), b"v");
    server.stop().await;
}

#[tokio::test]
async fn get_and_delete_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let alice = server.client(ALICE_KEY);
    alice.create_bucket().bucket(BUCKET).send().await.unwrap();
    let err = alice.get_bucket_policy().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), ("NoSuchBucketPolicy".to_owned(), 404));
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::message(&err), Some("The bucket policy does not exist"));
    let err = alice.get_bucket_policy().bucket("no-such-bucket").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("NoSuchBucket".to_owned(), 404));

    let policy = allow_bob(&["s3:ListBucket"], &[&format!("arn:aws:s3:::{BUCKET}")]);
    alice.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.unwrap();
    let got = alice.get_bucket_policy().bucket(BUCKET).send().await.unwrap();
    assert_eq!(got.policy(), Some(policy.as_str()));
    server.client(BOB_KEY).list_objects_v2().bucket(BUCKET).send().await.unwrap();

    alice.delete_bucket_policy().bucket(BUCKET).send().await.unwrap();
    let err = alice.get_bucket_policy().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), ("NoSuchBucketPolicy".to_owned(), 404));
    let err = server.client(BOB_KEY).list_objects_v2().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), denied());
    // The policy survives a restart (it lives in bucket.json).
    alice.put_bucket_policy().bucket(BUCKET).policy(&policy).send().await.unwrap();
    server.stop().await;
    let server = Server::start(dir.path()).await;
    let got = server.client(ALICE_KEY).get_bucket_policy().bucket(BUCKET).send().await.unwrap();
    assert_eq!(got.policy(), Some(policy.as_str()));
    server.stop().await;
}

#[tokio::test]
async fn read_object_honours_the_bucket_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let alice = server.client(ALICE_KEY);
    alice.create_bucket().bucket(BUCKET).send().await.unwrap();
    alice
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    let v1 = alice
        .put_object()
        .bucket(BUCKET)
        .key("f.zip")
        .body(ByteStream::from_static(b"v1"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    put(&alice, "f.zip", b"v2").await;
    let store = &server.store;

    let read = |version: Option<String>| async move {
        store.read_object(BOB, BUCKET, "f.zip", version.as_deref(), 1024).await
    };
    assert!(matches!(read(None).await, Err(ReadError::AccessDenied)));

    let object = format!("arn:aws:s3:::{BUCKET}/f.zip");
    alice.put_bucket_policy().bucket(BUCKET).policy(allow_bob(&["s3:GetObject"], &[&object])).send().await.unwrap();
    assert_eq!(read(None).await.unwrap().as_ref(), b"v2");
    assert!(matches!(read(Some(v1.clone())).await, Err(ReadError::AccessDenied)));
    assert!(matches!(store.read_object(BOB, BUCKET, "other.zip", None, 1024).await, Err(ReadError::AccessDenied)));

    let both = allow_bob(&["s3:GetObject", "s3:GetObjectVersion"], &[&object]);
    alice.put_bucket_policy().bucket(BUCKET).policy(both).send().await.unwrap();
    assert_eq!(read(Some(v1)).await.unwrap().as_ref(), b"v1");
    // The owner reads without any statement; a missing bucket is still NoSuchBucket.
    assert_eq!(store.read_object(ALICE, BUCKET, "f.zip", None, 1024).await.unwrap().as_ref(), b"v2");
    assert!(matches!(store.read_object(BOB, "nope", "f.zip", None, 1024).await, Err(ReadError::NoSuchBucket)));
    server.stop().await;
}
