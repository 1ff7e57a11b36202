//! Signature Version 4: every way a signature can be wrong, and the presigned form.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use lamina_tests::{Tenant, TestEnv, backend_tests};

use crate::code_of;

backend_tests!(signature_failures_are_403, presigned_urls_work_until_they_expire);

struct Signed<'a> {
    service: &'a str,
    region: &'a str,
    time: SystemTime,
    presign: Option<Duration>,
}

async fn send_signed(env: &TestEnv, t: &Tenant, how: Signed<'_>) -> (u16, String) {
    let url = format!("{}/2015-03-31/functions/", env.endpoint());
    let host = env.server.addr.to_string();
    let identity: Identity = Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "t").into();
    let mut settings = SigningSettings::default();
    if let Some(expires) = how.presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(how.region)
        .name(how.service)
        .time(how.time)
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let headers = [("host", host.as_str())];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(b"")).expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().method("GET").uri(&url).header("host", &host).body(()).expect("request");
    instructions.apply_to_request_http1x(&mut req);
    let mut out = reqwest::Client::new().get(req.uri().to_string());
    for (k, v) in req.headers() {
        out = out.header(k.as_str(), v.as_bytes());
    }
    let resp = out.send().await.expect("send");
    let status = resp.status().as_u16();
    let kind = resp.headers().get("x-amzn-ErrorType").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, kind)
}

async fn signature_failures_are_403(env: &TestEnv) {
    let t = env.tenant().await;
    let ok =
        send_signed(env, &t, Signed { service: "lambda", region: "us-east-1", time: SystemTime::now(), presign: None })
            .await;
    assert_eq!(ok, (200, String::new()), "a correct hand-signed request passes");

    let unsigned = reqwest::get(format!("{}/2015-03-31/functions/", env.endpoint())).await.expect("send");
    assert_eq!(unsigned.status().as_u16(), 403);
    assert_eq!(unsigned.headers()["x-amzn-ErrorType"], "MissingAuthenticationTokenException");

    let wrong_service =
        send_signed(env, &t, Signed { service: "s3", region: "us-east-1", time: SystemTime::now(), presign: None })
            .await;
    assert_eq!(wrong_service, (403, "InvalidSignatureException".into()));
    let wrong_region =
        send_signed(env, &t, Signed { service: "lambda", region: "eu-west-1", time: SystemTime::now(), presign: None })
            .await;
    assert_eq!(wrong_region, (403, "InvalidSignatureException".into()));
    let skewed = SystemTime::now() - Duration::from_secs(20 * 60);
    let old =
        send_signed(env, &t, Signed { service: "lambda", region: "us-east-1", time: skewed, presign: None }).await;
    assert_eq!(old, (403, "InvalidSignatureException".into()));
    let future = SystemTime::now() + Duration::from_secs(20 * 60);
    let ahead =
        send_signed(env, &t, Signed { service: "lambda", region: "us-east-1", time: future, presign: None }).await;
    assert_eq!(ahead, (403, "InvalidSignatureException".into()));
    let within = SystemTime::now() - Duration::from_secs(10 * 60);
    let fine =
        send_signed(env, &t, Signed { service: "lambda", region: "us-east-1", time: within, presign: None }).await;
    assert_eq!(fine.0, 200, "10 minutes of skew is tolerated");

    let wrong_secret = env.lambda_with(&t, "us-east-1", "not-the-secret");
    assert_eq!(code_of(wrong_secret.list_functions().send().await), "InvalidSignatureException");
    let unknown = Tenant { access_key_id: "AKLMUNKNOWNUNKNOWN12".into(), ..t.clone() };
    assert_eq!(code_of(env.lambda(&unknown).list_functions().send().await), "UnrecognizedClientException");
    let region = env.lambda_with(&t, "eu-west-1", &t.secret_access_key);
    assert_eq!(code_of(region.list_functions().send().await), "InvalidSignatureException");
}

async fn presigned_urls_work_until_they_expire(env: &TestEnv) {
    let t = env.tenant().await;
    let now = SystemTime::now();
    let fresh = send_signed(
        env,
        &t,
        Signed { service: "lambda", region: "us-east-1", time: now, presign: Some(Duration::from_secs(300)) },
    )
    .await;
    assert_eq!(fresh.0, 200, "presigned GET works: {fresh:?}");
    let issued = now - Duration::from_secs(120);
    let expired = send_signed(
        env,
        &t,
        Signed { service: "lambda", region: "us-east-1", time: issued, presign: Some(Duration::from_secs(60)) },
    )
    .await;
    assert_eq!(expired, (403, "InvalidSignatureException".into()));
}
