//! A revoked access key stops working on every frontend, not only on the one that revoked it.

use lamina_tests::{ClusterOptions, Tenant};

use crate::{serial, start};

/// One ListFunctions call on a new connection (frontends share the port through SO_REUSEPORT, so
/// new connections spread over them); `Ok` or the error code.
async fn list_once(env: &lamina_tests::TestEnv, tenant: &Tenant) -> Result<(), String> {
    env.lambda(tenant).list_functions().send().await.map(|_| ()).map_err(|e| lamina_tests::code_of::<_, ()>(Err(e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_by_every_frontend_at_once() {
    let _one_at_a_time = serial().await;
    let layout = ClusterOptions { frontends: 2, routers: 1, exec_hosts: 1, ..ClusterOptions::default() };
    let Some(env) = start(&layout).await else { return };
    assert_eq!(env.server.cluster_children("frontend").len(), 2, "two frontends share the address");
    let owner = env.tenant().await;
    let (status, key) = env.admin(reqwest::Method::POST, &format!("/accounts/{}/keys", owner.account_id), None).await;
    assert_eq!(status, 201, "create key: {key}");
    let second = Tenant {
        account_id: owner.account_id.clone(),
        access_key_id: key["AccessKeyId"].as_str().expect("key id").to_owned(),
        secret_access_key: key["SecretAccessKey"].as_str().expect("secret").to_owned(),
    };
    // Both frontends learn the key (each caches secrets for 30 s).
    for _ in 0..30 {
        assert_eq!(list_once(&env, &second).await, Ok(()));
    }
    let (status, body) = env
        .admin(reqwest::Method::DELETE, &format!("/accounts/{}/keys/{}", owner.account_id, second.access_key_id), None)
        .await;
    assert_eq!(status, 204, "delete key: {body}");
    // Once the revocation has been answered, no frontend accepts the key any more.
    for i in 0..30 {
        assert_eq!(list_once(&env, &second).await, Err("UnrecognizedClientException".into()), "call {i}");
    }
    assert_eq!(list_once(&env, &owner).await, Ok(()), "the account's other key still works");
    env.stop().await;
}
