//! Session credentials of function code (`ASIA` key id + `X-Amz-Security-Token`): accepted for the
//! function's account while the function exists and they have not expired; the sandbox gets them
//! with `AWS_ENDPOINT_URL_LAMBDA`, and the function's code calls the API with them.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_lambda::config::{BehaviorVersion, Region};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use lamina_common::session::{self, SessionClaims, SessionCredentials};
use lamina_tests::{Tenant, TestEnv, backend_tests, python_zip};

use crate::{create_python, error_of};

backend_tests!(session_credentials_act_for_the_functions_account, function_code_calls_the_api_with_its_credentials);

/// The installation's session key, derived from the master key in the data dir as the server does.
fn session_key(env: &TestEnv) -> [u8; 32] {
    let secrets = lamina::serve::Secrets::load(env.data_dir.path(), None, Some("test-admin-token")).expect("secrets");
    session::derive_key(&secrets.master)
}

fn now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn mint(env: &TestEnv, t: &Tenant, function: &str, expires_at: i64) -> SessionCredentials {
    let claims = SessionClaims {
        account_id: t.account_id.clone(),
        function_arn: format!("arn:aws:lambda:{}:{}:function:{function}", env.region, t.account_id),
        role: format!("arn:aws:iam::{}:role/lambda-role", t.account_id),
        expires_at,
    };
    session::mint(&session_key(env), &claims)
}

fn client(env: &TestEnv, c: &SessionCredentials) -> aws_sdk_lambda::Client {
    let creds = Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        Some(c.session_token.clone()),
        None,
        "lamina-session-tests",
    );
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env.region.clone()))
        .credentials_provider(creds)
        .endpoint_url(env.endpoint())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

async fn names(client: &aws_sdk_lambda::Client) -> Vec<String> {
    let out = client.list_functions().send().await.expect("ListFunctions with session credentials");
    out.functions().iter().filter_map(|f| f.function_name().map(str::to_owned)).collect()
}

/// A presigned GET of ListFunctions carrying the session token in its query.
async fn presigned_status(env: &TestEnv, c: &SessionCredentials) -> u16 {
    let url = format!("{}/2015-03-31/functions/", env.endpoint());
    let host = env.server.addr.to_string();
    let identity: Identity =
        Credentials::new(&c.access_key_id, &c.secret_access_key, Some(c.session_token.clone()), None, "t").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(300));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&env.region)
        .name("lambda")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let signable =
        SignableRequest::new("GET", &url, [("host", host.as_str())].into_iter(), SignableBody::UnsignedPayload)
            .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().method("GET").uri(&url).header("host", &host).body(()).expect("request");
    instructions.apply_to_request_http1x(&mut req);
    assert!(req.uri().to_string().contains("X-Amz-Security-Token="), "the token travels in the query");
    reqwest::get(req.uri().to_string()).await.expect("send").status().as_u16()
}

async fn session_credentials_act_for_the_functions_account(env: &TestEnv) {
    let t = env.tenant().await;
    let other = env.tenant().await;
    create_python(&env.lambda(&t), "reader").send().await.expect("create reader");
    create_python(&env.lambda(&other), "not-yours").send().await.expect("create other tenant's function");

    let creds = mint(env, &t, "reader", now() + 3600);
    assert!(creds.access_key_id.starts_with("ASIA"));
    let session = client(env, &creds);
    assert_eq!(names(&session).await, vec!["reader".to_string()], "the function's account, and only it");
    assert_eq!(presigned_status(env, &creds).await, 200, "presigned with X-Amz-Security-Token");

    // Token altered: its MAC no longer matches.
    let mut tampered = creds.clone();
    let last = tampered.session_token.pop().expect("non-empty token");
    tampered.session_token.push(if last == 'A' { 'B' } else { 'A' });
    let (code, message) = error_of(client(env, &tampered).list_functions().send().await);
    assert_eq!(code, "UnrecognizedClientException");
    assert_eq!(message, "The security token included in the request is invalid.");

    // A key id goes with its own token only.
    let sibling = mint(env, &t, "reader", now() + 1800);
    let crossed = SessionCredentials { access_key_id: sibling.access_key_id.clone(), ..creds.clone() };
    assert_eq!(error_of(client(env, &crossed).list_functions().send().await).0, "UnrecognizedClientException");

    // An ASIA key id without a token.
    let no_token = Tenant {
        account_id: t.account_id.clone(),
        access_key_id: creds.access_key_id.clone(),
        secret_access_key: creds.secret_access_key.clone(),
    };
    assert_eq!(error_of(env.lambda(&no_token).list_functions().send().await).0, "UnrecognizedClientException");

    // Minted with another installation's key.
    let foreign = session::mint(
        &[9; 32],
        &SessionClaims {
            account_id: t.account_id.clone(),
            function_arn: format!("arn:aws:lambda:{}:{}:function:reader", env.region, t.account_id),
            role: String::new(),
            expires_at: now() + 3600,
        },
    );
    assert_eq!(error_of(client(env, &foreign).list_functions().send().await).0, "UnrecognizedClientException");

    let expired = mint(env, &t, "reader", now() - 5);
    let (code, message) = error_of(client(env, &expired).list_functions().send().await);
    assert_eq!(code, "ExpiredTokenException");
    assert_eq!(message, "The security token included in the request is expired");

    // A deleted function's credentials are refused.
    create_python(&env.lambda(&t), "gone").send().await.expect("create gone");
    let gone = mint(env, &t, "gone", now() + 3600);
    env.lambda(&t).delete_function().function_name("gone").send().await.expect("delete gone");
    assert_eq!(error_of(client(env, &gone).list_functions().send().await).0, "UnrecognizedClientException");

    // The tenant's own keys work exactly as before.
    assert_eq!(names(&env.lambda(&t)).await, vec!["reader".to_string()]);
}

/// Signs `GET /2015-03-31/functions/` with the sandbox's credentials (no SDK needed) and calls
/// `AWS_ENDPOINT_URL_LAMBDA`.
const LIST_OWN_FUNCTIONS: &str = r#"
import datetime, hashlib, hmac, json, os, urllib.error, urllib.request

def handler(event, context):
    env = os.environ
    url = env["AWS_ENDPOINT_URL_LAMBDA"]
    host = url.split("://", 1)[1]
    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    day, region, path = amz[:8], env["AWS_REGION"], "/2015-03-31/functions/"
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": empty, "x-amz-date": amz,
               "x-amz-security-token": env["AWS_SESSION_TOKEN"]}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["GET", path, "", "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, empty])
    scope = f"{day}/{region}/lambda/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + env["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (day, region, "lambda", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={env['AWS_ACCESS_KEY_ID']}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    out = {"key_id": env["AWS_ACCESS_KEY_ID"], "endpoint": url, "s3": env.get("AWS_ENDPOINT_URL_S3")}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=10) as r:
            out["status"] = r.status
            out["names"] = [f["FunctionName"] for f in json.load(r)["Functions"]]
    except urllib.error.HTTPError as e:
        out["status"] = e.code
        out["error"] = e.headers.get("x-amzn-ErrorType")
    return out
"#;

async fn function_code_calls_the_api_with_its_credentials(env: &TestEnv) {
    let t = env.tenant().await;
    let lambda = env.lambda(&t);
    create_python(&lambda, "lister")
        .timeout(30)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(python_zip(LIST_OWN_FUNCTIONS)))
                .build(),
        )
        .send()
        .await
        .expect("create lister");
    let out = lambda.invoke().function_name("lister").send().await.expect("invoke lister");
    let payload = out.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default();
    assert_eq!(out.function_error(), None, "{}", String::from_utf8_lossy(&payload));
    let body: serde_json::Value = serde_json::from_slice(&payload).expect("JSON result");
    let key_id = body["key_id"].as_str().expect("key id");
    assert!(key_id.starts_with("ASIA"), "session credentials, never the tenant's own keys: {body}");
    assert_ne!(key_id, t.access_key_id);
    assert_eq!(body["endpoint"], "http://127.0.0.1:9000", "{body}");
    assert_eq!(body["status"], 200, "{body}");
    assert_eq!(body["names"], serde_json::json!(["lister"]), "{body}");
}
