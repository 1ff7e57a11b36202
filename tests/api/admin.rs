//! The admin API: token, accounts, limits, key rotation.

use lamina_tests::{Tenant, TestEnv, backend_tests};
use reqwest::Method;
use serde_json::json;

use crate::code_of;

backend_tests!(admin_requires_its_token, keys_rotate);

async fn admin_requires_its_token(env: &TestEnv) {
    let resp = reqwest::Client::new()
        .get(format!("{}/_lamina/admin/accounts", env.admin_endpoint()))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 403);
    // Not on the public listener, even with the right token.
    let public = reqwest::Client::new()
        .get(format!("{}/_lamina/admin/accounts", env.endpoint()))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .expect("send");
    assert_eq!(public.status().as_u16(), 404);
    let (status, body) = env.admin(Method::GET, "/accounts", None).await;
    assert_eq!(status, 200);
    assert!(body["Accounts"].as_array().is_some_and(|a| a.iter().any(|x| x["Name"] == "default")), "{body}");
    let t = env.tenant().await;
    assert_eq!(t.account_id.len(), 12);
    assert!(t.account_id.bytes().all(|b| b.is_ascii_digit()));
    let (status, acct) = env
        .admin(Method::PUT, &format!("/accounts/{}/limits", t.account_id), Some(json!({"ConcurrentExecutions": 3})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(acct["ConcurrentExecutions"], 3);
    let (status, _) = env.admin(Method::POST, "/accounts", Some(json!({"Name": acct["Name"]}))).await;
    assert_eq!(status, 409, "account names are unique");
}

async fn keys_rotate(env: &TestEnv) {
    let t = env.tenant().await;
    let (status, key) = env.admin(Method::POST, &format!("/accounts/{}/keys", t.account_id), None).await;
    assert_eq!(status, 201);
    let second = Tenant {
        access_key_id: key["AccessKeyId"].as_str().expect("id").into(),
        secret_access_key: key["SecretAccessKey"].as_str().expect("secret").into(),
        ..t.clone()
    };
    env.lambda(&second).list_functions().send().await.expect("new key works");
    let (status, _) =
        env.admin(Method::DELETE, &format!("/accounts/{}/keys/{}", t.account_id, t.access_key_id), None).await;
    assert_eq!(status, 204);
    assert_eq!(code_of(env.lambda(&t).list_functions().send().await), "UnrecognizedClientException");
    env.lambda(&second).list_functions().send().await.expect("the other key still works");
    let secret_at_rest = std::fs::read(env.data_dir.path().join("lamina.db")).unwrap_or_default();
    let needle = second.secret_access_key.as_bytes();
    assert!(!secret_at_rest.windows(needle.len()).any(|w| w == needle), "secrets are encrypted at rest");
}
