//! The S3 API through the real aws-sdk-s3 client: buckets, objects, listing, multipart, versioning.

mod s3_common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier,
    VersioningConfiguration,
};
use s3_common::*;

#[tokio::test]
async fn buckets_are_global_owned_limited_and_deleted_only_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let alice = server.client(ALICE_KEY);
    let bob = server.client(BOB_KEY);

    alice.create_bucket().bucket("shared-name").send().await.unwrap();
    alice.head_bucket().bucket("shared-name").send().await.unwrap();
    let err = alice.create_bucket().bucket("shared-name").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("BucketAlreadyOwnedByYou".to_owned(), 409));

    let err = bob.create_bucket().bucket("shared-name").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("BucketAlreadyExists".to_owned(), 409));
    let err = bob.head_bucket().bucket("shared-name").send().await.unwrap_err();
    assert_eq!(code_of(&err).1, 403);
    let err =
        bob.put_object().bucket("shared-name").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap_err();
    assert_eq!(code_of(&err), ("AccessDenied".to_owned(), 403));
    let err = bob.list_objects_v2().bucket("shared-name").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("AccessDenied".to_owned(), 403));
    let err = alice.head_bucket().bucket("no-such-bucket").send().await.unwrap_err();
    assert_eq!(code_of(&err).1, 404);
    let err = alice.create_bucket().bucket(CODE_BUCKET).send().await.unwrap_err();
    assert_eq!(code_of(&err), ("BucketAlreadyExists".to_owned(), 409));

    let listed = alice.list_buckets().send().await.unwrap();
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["shared-name"]);
    assert!(bob.list_buckets().send().await.unwrap().buckets().is_empty());

    // The harness allows 5 buckets per account.
    for i in 1..5 {
        alice.create_bucket().bucket(format!("alice-{i}")).send().await.unwrap();
    }
    let err = alice.create_bucket().bucket("alice-5").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("TooManyBuckets".to_owned(), 400));
    bob.create_bucket().bucket("bob-1").send().await.unwrap();

    alice.put_object().bucket("alice-1").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let err = alice.delete_bucket().bucket("alice-1").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("BucketNotEmpty".to_owned(), 409));
    alice.delete_object().bucket("alice-1").key("k").send().await.unwrap();
    let upload = alice.create_multipart_upload().bucket("alice-1").key("m").send().await.unwrap();
    let err = alice.delete_bucket().bucket("alice-1").send().await.unwrap_err();
    assert_eq!(code_of(&err).0, "BucketNotEmpty", "an in-progress upload keeps the bucket");
    alice
        .abort_multipart_upload()
        .bucket("alice-1")
        .key("m")
        .upload_id(upload.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    alice.delete_bucket().bucket("alice-1").send().await.unwrap();
    let err = alice.head_bucket().bucket("alice-1").send().await.unwrap_err();
    assert_eq!(code_of(&err).1, 404);
    // The name is free again, for anyone.
    bob.create_bucket().bucket("alice-1").send().await.unwrap();

    let loc = alice.get_bucket_location().bucket("shared-name").send().await.unwrap();
    assert!(loc.location_constraint().is_none_or(|c| c.as_str().is_empty()));
    server.stop().await;
}

#[tokio::test]
async fn objects_put_get_head_range_copy_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let s3 = server.client(ALICE_KEY);
    s3.create_bucket().bucket("objs").send().await.unwrap();
    let data = body(1000, 7);

    let put = s3
        .put_object()
        .bucket("objs")
        .key("dir/file one.bin")
        .content_type("application/x-test")
        .metadata("color", "blue")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.e_tag(), Some(format!("\"{}\"", md5_hex(&data)).as_str()));
    assert!(put.version_id().is_none(), "unversioned buckets report no version id");
    // aws-sdk-s3 sends a CRC32 by default (flexible checksums); it is checked and kept.
    assert!(put.checksum_crc32().is_some(), "{put:?}");
    let err = s3
        .put_object()
        .bucket("objs")
        .key("bad-crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from_static(b"payload"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), ("BadDigest".to_owned(), 400));

    let got = s3.get_object().bucket("objs").key("dir/file one.bin").send().await.unwrap();
    assert_eq!(got.content_type(), Some("application/x-test"));
    assert_eq!(got.metadata().unwrap().get("color").map(String::as_str), Some("blue"));
    assert_eq!(got.e_tag(), put.e_tag());
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &data[..]);

    let head = s3.head_object().bucket("objs").key("dir/file one.bin").send().await.unwrap();
    assert_eq!(head.content_length(), Some(1000));
    assert_eq!(head.content_type(), Some("application/x-test"));

    let part = s3.get_object().bucket("objs").key("dir/file one.bin").range("bytes=10-19").send().await.unwrap();
    assert_eq!(part.content_range(), Some("bytes 10-19/1000"));
    assert_eq!(part.body.collect().await.unwrap().into_bytes().as_ref(), &data[10..20]);
    let tail = s3.get_object().bucket("objs").key("dir/file one.bin").range("bytes=-5").send().await.unwrap();
    assert_eq!(tail.body.collect().await.unwrap().into_bytes().as_ref(), &data[995..]);
    let err = s3.get_object().bucket("objs").key("dir/file one.bin").range("bytes=5000-6000").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("InvalidRange".to_owned(), 416));

    let err = s3
        .put_object()
        .bucket("objs")
        .key("bad-md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b"not empty"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), ("BadDigest".to_owned(), 400));
    let err = s3.head_object().bucket("objs").key("bad-md5").send().await.unwrap_err();
    assert_eq!(code_of(&err).1, 404, "a refused upload leaves nothing");

    // Copy keeps metadata by default and replaces it on request.
    let copied =
        s3.copy_object().bucket("objs").key("copy").copy_source("objs/dir/file%20one.bin").send().await.unwrap();
    assert_eq!(copied.copy_object_result().unwrap().e_tag(), put.e_tag());
    let head = s3.head_object().bucket("objs").key("copy").send().await.unwrap();
    assert_eq!(head.metadata().unwrap().get("color").map(String::as_str), Some("blue"));
    s3.copy_object()
        .bucket("objs")
        .key("copy2")
        .copy_source("objs/dir/file%20one.bin")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("color", "red")
        .content_type("text/plain")
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("objs").key("copy2").send().await.unwrap();
    assert_eq!(head.metadata().unwrap().get("color").map(String::as_str), Some("red"));
    assert_eq!(head.content_type(), Some("text/plain"));
    let err = s3.copy_object().bucket("objs").key("x").copy_source("objs/missing").send().await.unwrap_err();
    assert_eq!(code_of(&err).0, "NoSuchKey");
    // A source in another account's bucket is not readable.
    let bob = server.client(BOB_KEY);
    bob.create_bucket().bucket("bobs").send().await.unwrap();
    bob.put_object().bucket("bobs").key("secret").body(ByteStream::from_static(b"s")).send().await.unwrap();
    let err = s3.copy_object().bucket("objs").key("stolen").copy_source("bobs/secret").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("AccessDenied".to_owned(), 403));

    s3.delete_object().bucket("objs").key("copy").send().await.unwrap();
    let err = s3.get_object().bucket("objs").key("copy").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("NoSuchKey".to_owned(), 404));
    // Deleting a missing key succeeds, as in S3.
    s3.delete_object().bucket("objs").key("never-there").send().await.unwrap();

    let deleted = s3
        .delete_objects()
        .bucket("objs")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("copy2").build().unwrap())
                .objects(ObjectIdentifier::builder().key("dir/file one.bin").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 2);
    let quiet = s3
        .delete_objects()
        .bucket("objs")
        .delete(
            Delete::builder()
                .quiet(true)
                .objects(ObjectIdentifier::builder().key("whatever").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(quiet.deleted().is_empty());
    let listed = s3.list_objects_v2().bucket("objs").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));
    server.stop().await;
}

#[tokio::test]
async fn list_v2_prefix_delimiter_and_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let s3 = server.client(ALICE_KEY);
    s3.create_bucket().bucket("list").send().await.unwrap();
    let keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d+e f"];
    for k in keys {
        s3.put_object().bucket("list").key(k).body(ByteStream::from_static(b"x")).send().await.unwrap();
    }
    let top = s3.list_objects_v2().bucket("list").delimiter("/").send().await.unwrap();
    let prefixes: Vec<_> = top.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    let objects: Vec<_> = top.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(prefixes, ["a/", "b/"]);
    assert_eq!(objects, ["c", "d+e f"]);
    assert_eq!(top.key_count(), Some(4));

    let under_a = s3.list_objects_v2().bucket("list").prefix("a/").delimiter("/").send().await.unwrap();
    let objects: Vec<_> = under_a.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = under_a.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(objects, ["a/1", "a/2"]);
    assert_eq!(prefixes, ["a/b/"]);

    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page =
            s3.list_objects_v2().bucket("list").max_keys(2).set_continuation_token(token.clone()).send().await.unwrap();
        pages += 1;
        seen.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_owned);
        assert!(token.is_some());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys);

    let after = s3.list_objects_v2().bucket("list").start_after("b/1").send().await.unwrap();
    let objects: Vec<_> = after.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objects, ["c", "d+e f"]);

    let v1 = s3.list_objects().bucket("list").prefix("a/").max_keys(2).send().await.unwrap();
    assert_eq!(v1.contents().len(), 2);
    assert_eq!(v1.is_truncated(), Some(true));
    server.stop().await;
}

#[tokio::test]
async fn multipart_complete_and_bad_completions_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let s3 = server.client(ALICE_KEY);
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let parts_data = [body(5 * 1024 * 1024, 1), body(5 * 1024 * 1024, 2), body(1234, 3)];

    let up = s3.create_multipart_upload().bucket("mpu").key("big").content_type("video/x").send().await.unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let mut completed = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.e_tag(), Some(format!("\"{}\"", md5_hex(data)).as_str()));
        completed.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
    }
    let listed = s3.list_parts().bucket("mpu").key("big").upload_id(&id).send().await.unwrap();
    assert_eq!(listed.parts().len(), 3);
    let uploads = s3.list_multipart_uploads().bucket("mpu").send().await.unwrap();
    assert_eq!(uploads.uploads().len(), 1);

    let done = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    let mut md5s = Vec::new();
    for d in &parts_data {
        md5s.extend(hex::decode(md5_hex(d)).unwrap());
    }
    let expected = format!("\"{}-3\"", md5_hex(&md5s));
    assert_eq!(done.e_tag(), Some(expected.as_str()));
    let got = s3.get_object().bucket("mpu").key("big").send().await.unwrap();
    assert_eq!(got.content_type(), Some("video/x"));
    assert_eq!(got.e_tag(), Some(expected.as_str()));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len(), 10 * 1024 * 1024 + 1234);
    assert_eq!(&bytes[..], &parts_data.concat()[..]);
    let err = s3.list_parts().bucket("mpu").key("big").upload_id(&id).send().await.unwrap_err();
    assert_eq!(code_of(&err).0, "NoSuchUpload", "complete removes the upload");

    // Bad completions: wrong order, a missing part, a small non-last part.
    let up = s3.create_multipart_upload().bucket("mpu").key("bad").send().await.unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let mut etags = Vec::new();
    for (n, data) in [(1, body(100, 1)), (2, body(100, 2))] {
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("bad")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
        etags.push(out.e_tag().unwrap().to_owned());
    }
    let part = |n: i32, e: &str| CompletedPart::builder().part_number(n).e_tag(e).build();
    let attempts = [
        (vec![part(2, &etags[1]), part(1, &etags[0])], "InvalidPartOrder"),
        (vec![part(1, &etags[0]), part(3, &etags[1])], "InvalidPart"),
        (vec![part(1, &etags[1])], "InvalidPart"),
        (vec![part(1, &etags[0]), part(2, &etags[1])], "EntityTooSmall"),
    ];
    for (parts, code) in attempts {
        let err = s3
            .complete_multipart_upload()
            .bucket("mpu")
            .key("bad")
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .unwrap_err();
        assert_eq!(code_of(&err), (code.to_owned(), 400));
        let err = s3.head_object().bucket("mpu").key("bad").send().await.unwrap_err();
        assert_eq!(code_of(&err).1, 404, "no object after a failed complete");
    }
    s3.abort_multipart_upload().bucket("mpu").key("bad").upload_id(&id).send().await.unwrap();
    let uploads = s3.list_multipart_uploads().bucket("mpu").send().await.unwrap();
    assert!(uploads.uploads().is_empty());
    assert!(std::fs::read_dir(server.root.join("buckets/mpu/uploads")).unwrap().next().is_none());
    let err = s3
        .upload_part()
        .bucket("mpu")
        .key("bad")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"late"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), ("NoSuchUpload".to_owned(), 404));
    server.stop().await;
}

#[tokio::test]
async fn versioning_keeps_versions_and_delete_markers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let s3 = server.client(ALICE_KEY);
    s3.create_bucket().bucket("ver").send().await.unwrap();
    assert!(s3.get_bucket_versioning().bucket("ver").send().await.unwrap().status().is_none());
    s3.put_bucket_versioning()
        .bucket("ver")
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        s3.get_bucket_versioning().bucket("ver").send().await.unwrap().status(),
        Some(&BucketVersioningStatus::Enabled)
    );
    let v1 = s3.put_object().bucket("ver").key("k").body(ByteStream::from_static(b"one")).send().await.unwrap();
    let v2 = s3.put_object().bucket("ver").key("k").body(ByteStream::from_static(b"two")).send().await.unwrap();
    let (v1, v2) = (v1.version_id().unwrap().to_owned(), v2.version_id().unwrap().to_owned());
    assert_ne!(v1, v2);

    let latest = s3.get_object().bucket("ver").key("k").send().await.unwrap();
    assert_eq!(latest.version_id(), Some(v2.as_str()));
    assert_eq!(latest.body.collect().await.unwrap().into_bytes().as_ref(), b"two");
    let old = s3.get_object().bucket("ver").key("k").version_id(&v1).send().await.unwrap();
    assert_eq!(old.body.collect().await.unwrap().into_bytes().as_ref(), b"one");
    let err = s3.get_object().bucket("ver").key("k").version_id("0".repeat(32)).send().await.unwrap_err();
    assert_eq!(code_of(&err), ("NoSuchVersion".to_owned(), 404));

    let del = s3.delete_object().bucket("ver").key("k").send().await.unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().unwrap().to_owned();
    let err = s3.get_object().bucket("ver").key("k").send().await.unwrap_err();
    assert_eq!(code_of(&err), ("NoSuchKey".to_owned(), 404));
    let old = s3.get_object().bucket("ver").key("k").version_id(&v1).send().await.unwrap();
    assert_eq!(old.body.collect().await.unwrap().into_bytes().as_ref(), b"one");
    assert_eq!(s3.list_objects_v2().bucket("ver").send().await.unwrap().key_count(), Some(0));

    let versions = s3.list_object_versions().bucket("ver").send().await.unwrap();
    assert_eq!(versions.versions().len(), 2);
    assert_eq!(versions.delete_markers().len(), 1);
    assert_eq!(versions.delete_markers()[0].is_latest(), Some(true));

    // Removing the marker by version id brings v2 back.
    s3.delete_object().bucket("ver").key("k").version_id(&marker).send().await.unwrap();
    let latest = s3.get_object().bucket("ver").key("k").send().await.unwrap();
    assert_eq!(latest.version_id(), Some(v2.as_str()));
    let err = s3.delete_bucket().bucket("ver").send().await.unwrap_err();
    assert_eq!(code_of(&err).0, "BucketNotEmpty");
    server.stop().await;
}

#[tokio::test]
async fn data_survives_restart_and_crash_leftovers_stay_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let s3 = server.client(ALICE_KEY);
    s3.create_bucket().bucket("keep").send().await.unwrap();
    s3.put_object().bucket("keep").key("k").body(ByteStream::from_static(b"kept")).send().await.unwrap();
    let root = server.root.clone();
    server.stop().await;

    // A crash mid-upload: a temp file, and data moved into an object dir whose record never landed.
    std::fs::write(root.join("tmp/partial-upload"), b"half").unwrap();
    let orphan = root.join("buckets/keep/objects/0000000000000000000000000000000000000000000000000000000000000000");
    std::fs::create_dir_all(orphan.join("d")).unwrap();
    std::fs::create_dir_all(orphan.join("v")).unwrap();
    std::fs::write(orphan.join("key"), b"crashed").unwrap();
    std::fs::write(orphan.join("d/abc"), b"half").unwrap();

    let server = Server::start(dir.path()).await;
    assert!(!root.join("tmp/partial-upload").exists(), "stale temp files are removed at open");
    let s3 = server.client(ALICE_KEY);
    let got = s3.get_object().bucket("keep").key("k").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"kept");
    let listed = s3.list_objects_v2().bucket("keep").send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["k"]);
    let err = s3.head_object().bucket("keep").key("crashed").send().await.unwrap_err();
    assert_eq!(code_of(&err).1, 404);
    server.stop().await;
}
