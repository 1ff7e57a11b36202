//! Code storage over gRPC as an execution host uses it: packages stored and fetched by digest,
//! checked against the digest before use, cached, and errors that keep their AWS shape.

use std::io::Write as _;

use bytes::Bytes;
use lamina_code_storage::{CodeClient, CodeStorage, ZipLimits};
use tokio_util::sync::CancellationToken;

fn zip_of(name: &str, body: &[u8]) -> Bytes {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(name, zip::write::SimpleFileOptions::default()).expect("entry");
    w.write_all(body).expect("write");
    Bytes::from(w.finish().expect("finish").into_inner())
}

struct Served {
    client: CodeClient,
    blobs: std::path::PathBuf,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = dir.path().join("blobs");
    let storage = CodeStorage::open(&blobs, ZipLimits::default()).expect("open storage");
    let (listener, addr) = lamina_rpc::transport::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let stop = CancellationToken::new();
    tokio::spawn(lamina_code_storage::serve(storage, listener, stop.clone()));
    let client = CodeClient::connect(&addr.to_string(), ZipLimits::default()).expect("client");
    Served { client, blobs, stop, _dir: dir }
}

#[tokio::test]
async fn packages_round_trip_by_digest_and_are_cached_after_a_verified_fetch() {
    let s = serve().await;
    let zip = zip_of("index.py", &vec![b'x'; 3 * 1024 * 1024]);
    let stored = s.client.put_zip(zip.clone()).await.expect("put over gRPC, in several chunks");
    assert_eq!(stored.size as usize, zip.len());
    assert_eq!(s.client.read(&stored.sha256_hex).await.expect("read"), Some(zip.to_vec()));

    let cache = tempfile::tempdir().expect("cache dir");
    let path = s.client.zip_path(&stored.sha256_hex, cache.path()).await.expect("fetch");
    assert_eq!(std::fs::read(&path).expect("cached copy"), zip.to_vec());
    // Served from the cache: the store no longer has it, the host still does.
    let kept = s.client.delete_unless_referenced(&stored.sha256_hex, async { Ok(true) }).await.expect("keep");
    assert!(!kept, "a reference found after hiding keeps the blob");
    assert!(s.client.read(&stored.sha256_hex).await.expect("read").is_some());
    let gone = s.client.delete_unless_referenced(&stored.sha256_hex, async { Ok(false) }).await.expect("delete");
    assert!(gone);
    assert_eq!(s.client.read(&stored.sha256_hex).await.expect("read"), None);
    assert_eq!(s.client.zip_path(&stored.sha256_hex, cache.path()).await.expect("cached"), path);
    s.stop.cancel();
}

#[tokio::test]
async fn a_package_whose_bytes_do_not_match_its_digest_is_refused() {
    let s = serve().await;
    let good = zip_of("a.py", b"print(1)");
    let stored = s.client.put_zip(good).await.expect("put");
    // The blob changes on disk behind code storage's back.
    std::fs::write(s.blobs.join(&stored.sha256_hex), zip_of("a.py", b"print(2)")).expect("tamper");
    let cache = tempfile::tempdir().expect("cache dir");
    let err = s.client.zip_path(&stored.sha256_hex, cache.path()).await.expect_err("digest mismatch");
    assert!(format!("{err:#}").contains("digest"), "{err:#}");
    let left: Vec<_> = std::fs::read_dir(cache.path()).expect("cache dir").collect();
    assert!(left.is_empty(), "nothing of a refused fetch stays in the cache: {left:?}");

    let missing = "0".repeat(64);
    assert!(s.client.zip_path(&missing, cache.path()).await.is_err(), "an unknown digest");
    assert!(s.client.zip_path("../../etc/passwd", cache.path()).await.is_err(), "not a digest");
    s.stop.cancel();
}

#[tokio::test]
async fn validation_errors_keep_their_aws_shape_over_grpc() {
    let s = serve().await;
    let err = s.client.put_zip(Bytes::from_static(b"not a zip")).await.expect_err("invalid zip");
    assert_eq!(err.error_type(), "InvalidParameterValueException");
    assert!(err.to_string().contains("Could not unzip uploaded file"), "{err}");
    let big = Bytes::from(vec![0u8; 51 * 1024 * 1024]);
    let err = s.client.put_zip(big).await.expect_err("over 50 MB");
    assert_eq!(err.error_type(), "RequestEntityTooLargeException", "{err}");
    assert_eq!(std::fs::read_dir(&s.blobs).expect("blobs").count(), 0, "nothing stored");
    s.stop.cancel();
}
