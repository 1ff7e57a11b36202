//! The S3 API under load: PutObject and GetObject of one object size through Lamina, beside the
//! same writes (temp file, fsync, rename: what the store does to make an object durable) and reads
//! on the raw filesystem in the same run; then CreateFunction from an S3 object against ZipFile.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use http::Method;

use crate::client::{self, Client};
use crate::stats::Stats;

/// One `s3` run.
pub struct S3Run<'a> {
    pub s3_endpoint: &'a str,
    pub size_kib: usize,
    pub requests: usize,
    pub concurrency: usize,
    /// Where the filesystem baseline writes (the server's data dir, for the same disk).
    pub baseline_dir: &'a Path,
    /// CreateFunction comparisons to run (0: skip).
    pub creates: usize,
}

pub async fn run(lambda: &Client, run: &S3Run<'_>) -> anyhow::Result<()> {
    let s3 = lambda.s3(run.s3_endpoint)?;
    let bucket = format!("bench-{}", uuid::Uuid::new_v4().simple());
    expect_ok(&s3, Method::PUT, &format!("/{bucket}"), b"").await.context("create bucket")?;
    let mut body = vec![0u8; run.size_kib * 1024];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut body);
    let mb = |stats: &Stats| stats.throughput() * body.len() as f64 / 1e6;

    // One signed request per key, replayed: the clients spend their CPU on sending.
    let keys = run.concurrency.max(1);
    let puts = (0..keys).map(|i| s3.signed_put(&format!("/{bucket}/obj-{i}"), &body)).collect::<Result<Vec<_>, _>>()?;
    let put = s3.fixed_count_each(puts, run.concurrency, run.requests).await?;
    let gets = (0..keys).map(|i| s3.presigned_get(&format!("/{bucket}/obj-{i}"))).collect::<Result<Vec<_>, _>>()?;
    let get = s3.fixed_count_each(gets, run.concurrency, run.requests).await?;
    let (fs_put, fs_get) = filesystem(run, &body).await?;
    let kib = run.size_kib;
    println!("PutObject {kib} KiB, {} concurrent: {} ({:.1} MB/s)", run.concurrency, put.summary(), mb(&put));
    println!("  filesystem write+fsync+rename: {} ({:.1} MB/s)", fs_put.summary(), mb(&fs_put));
    println!("GetObject {kib} KiB, {} concurrent: {} ({:.1} MB/s)", run.concurrency, get.summary(), mb(&get));
    println!("  filesystem read: {} ({:.1} MB/s)", fs_get.summary(), mb(&fs_get));

    if run.creates > 0 {
        creates(lambda, &s3, &bucket, run.creates).await?;
    }
    for i in 0..keys {
        let _ = s3.send_once(&s3.sign_delete(&format!("/{bucket}/obj-{i}"))?).await;
    }
    let _ = s3.send_once(&s3.sign_delete(&format!("/{bucket}/package.zip"))?).await;
    let _ = s3.send_once(&s3.sign_delete(&format!("/{bucket}"))?).await;
    Ok(())
}

async fn expect_ok(client: &Client, method: Method, path: &str, body: &[u8]) -> anyhow::Result<()> {
    let signed = match method {
        Method::PUT => client.signed_put(path, body)?,
        _ => client.presigned_get(path)?,
    };
    let (status, reply) = client.send_once(&signed).await?;
    anyhow::ensure!(status < 300, "{method} {path}: HTTP {status}: {}", String::from_utf8_lossy(&reply));
    Ok(())
}

/// The same object size written durably and read back straight on the filesystem, with the same
/// number of concurrent writers.
async fn filesystem(run: &S3Run<'_>, body: &[u8]) -> anyhow::Result<(Stats, Stats)> {
    let dir = Arc::new(tempfile::tempdir_in(run.baseline_dir).context("baseline dir")?);
    let body = Arc::new(body.to_vec());
    let per = run.requests.div_ceil(run.concurrency.max(1));
    let mut out = Vec::new();
    for reading in [false, true] {
        let started = Instant::now();
        let tasks: Vec<_> = (0..run.concurrency.max(1))
            .map(|w| {
                let (dir, body) = (dir.clone(), body.clone());
                tokio::task::spawn_blocking(move || -> anyhow::Result<Stats> {
                    let mut stats = Stats::default();
                    let target = dir.path().join(format!("obj-{w}"));
                    for _ in 0..per {
                        let t = Instant::now();
                        if reading {
                            let data = std::fs::read(&target)?;
                            anyhow::ensure!(data.len() == body.len(), "short read");
                        } else {
                            let mut tmp = tempfile::NamedTempFile::new_in(dir.path())?;
                            std::io::Write::write_all(&mut tmp, &body)?;
                            tmp.as_file().sync_all()?;
                            tmp.persist(&target)?;
                        }
                        stats.record(t.elapsed());
                    }
                    Ok(stats)
                })
            })
            .collect();
        let mut all = Stats::default();
        for t in tasks {
            all.merge(t.await??);
        }
        all.elapsed = started.elapsed();
        out.push(all);
    }
    let get = out.pop().context("read stats")?;
    let put = out.pop().context("write stats")?;
    Ok((put, get))
}

/// CreateFunction of the same 1 MiB package from the S3 object and from ZipFile, one after the other.
async fn creates(lambda: &Client, s3: &Client, bucket: &str, count: usize) -> anyhow::Result<()> {
    let mut payload = vec![0u8; 1024 * 1024];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut payload);
    let zip =
        client::zip_stored(&[("lambda_function.py", b"def handler(e, c):\n    return e\n"), ("blob.bin", &payload)]);
    expect_ok(s3, Method::PUT, &format!("/{bucket}/package.zip"), &zip).await.context("upload package")?;
    let code_s3 = serde_json::json!({"S3Bucket": bucket, "S3Key": "package.zip"});
    let code_zip =
        serde_json::json!({"ZipFile": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &zip)});
    for (label, code) in [("S3Bucket/S3Key", code_s3), ("ZipFile", code_zip)] {
        let mut stats = Stats::default();
        let started = Instant::now();
        for i in 0..count {
            let name = format!("bench-s3-create-{i}");
            let _ = lambda.delete_function(&name).await;
            let t = Instant::now();
            lambda.create_function_with_code(&name, code.clone()).await?;
            stats.record(t.elapsed());
            lambda.delete_function(&name).await?;
        }
        stats.elapsed = started.elapsed();
        println!("CreateFunction from {label}, 1 MiB package, sequential: {}", stats.summary());
    }
    Ok(())
}
