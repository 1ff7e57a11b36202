//! The EventInvokeConfig API: Put replaces, Update merges, Get/Delete/List by qualifier, AWS's
//! validation and not-found answers, and tenants kept apart.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::types::{DestinationConfig, OnFailure, OnSuccess};
use lamina_tests::{TestEnv, backend_tests, error_of};

use crate::{ECHO, create_python};

backend_tests!(put_get_update_list_delete, validation_and_not_found, tenants_see_only_their_own);

fn on_failure(arn: &str) -> DestinationConfig {
    DestinationConfig::builder().on_failure(OnFailure::builder().destination(arn).build()).build()
}

fn on_success(arn: &str) -> DestinationConfig {
    DestinationConfig::builder().on_success(OnSuccess::builder().destination(arn).build()).build()
}

async fn put_get_update_list_delete(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "f", ECHO).publish(true).send().await.expect("create f");
    create_python(&c, "catcher", ECHO).send().await.expect("create catcher");
    c.create_alias().function_name("f").name("live").function_version("1").send().await.expect("alias");
    let arn = |q: &str| format!("arn:aws:lambda:{}:{}:function:f:{q}", env.region, t.account_id);
    let catcher = format!("arn:aws:lambda:{}:{}:function:catcher", env.region, t.account_id);
    let queue = format!("arn:aws:sqs:{}:123456789012:failures", env.region);

    let before = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
    let put = c
        .put_function_event_invoke_config()
        .function_name("f")
        .maximum_retry_attempts(0)
        .destination_config(on_failure(&queue))
        .send()
        .await
        .expect("put");
    // The unqualified function's settings are $LATEST's, as AWS reports them.
    assert_eq!(put.function_arn(), Some(arn("$LATEST").as_str()));
    assert_eq!(put.maximum_retry_attempts(), Some(0));
    assert_eq!(put.maximum_event_age_in_seconds(), None, "unset settings are left out");
    let dest = put.destination_config().expect("DestinationConfig");
    assert_eq!(dest.on_failure().and_then(|d| d.destination()), Some(queue.as_str()));
    assert_eq!(dest.on_success().and_then(|d| d.destination()), None);
    let modified = put.last_modified().expect("LastModified").as_secs_f64();
    assert!((before - 1.0..before + 60.0).contains(&modified), "LastModified {modified} is epoch seconds of now");

    let got = c.get_function_event_invoke_config().function_name("f").send().await.expect("get");
    assert_eq!(got.function_arn(), Some(arn("$LATEST").as_str()));
    assert_eq!(got.maximum_retry_attempts(), Some(0));
    let same = c.get_function_event_invoke_config().function_name("f").qualifier("$LATEST").send().await;
    assert_eq!(same.expect("get $LATEST").maximum_retry_attempts(), Some(0), "unqualified is $LATEST");

    // Update merges: the retries and the destination stay.
    let updated = c
        .update_function_event_invoke_config()
        .function_name("f")
        .maximum_event_age_in_seconds(3600)
        .send()
        .await
        .expect("update");
    assert_eq!(updated.maximum_retry_attempts(), Some(0));
    assert_eq!(updated.maximum_event_age_in_seconds(), Some(3600));
    assert_eq!(
        updated.destination_config().and_then(|d| d.on_failure()).and_then(|d| d.destination()),
        Some(queue.as_str())
    );
    // A DestinationConfig given replaces both destinations.
    let updated = c
        .update_function_event_invoke_config()
        .function_name("f")
        .destination_config(on_success(&catcher))
        .send()
        .await
        .expect("update destinations");
    let dest = updated.destination_config().expect("DestinationConfig");
    assert_eq!(dest.on_success().and_then(|d| d.destination()), Some(catcher.as_str()));
    assert_eq!(dest.on_failure().and_then(|d| d.destination()), None);
    assert_eq!(updated.maximum_event_age_in_seconds(), Some(3600));

    // Put replaces: what it leaves out is removed.
    let replaced =
        c.put_function_event_invoke_config().function_name("f").maximum_event_age_in_seconds(60).send().await;
    let replaced = replaced.expect("put again");
    assert_eq!(replaced.maximum_retry_attempts(), None);
    assert_eq!(replaced.maximum_event_age_in_seconds(), Some(60));
    assert_eq!(replaced.destination_config().and_then(|d| d.on_success()).and_then(|d| d.destination()), None);

    // Versions and aliases have their own, addressed either way.
    let on_alias = c
        .put_function_event_invoke_config()
        .function_name("f")
        .qualifier("live")
        .maximum_retry_attempts(1)
        .send()
        .await
        .expect("put on alias");
    assert_eq!(on_alias.function_arn(), Some(arn("live").as_str()));
    let on_version = c.put_function_event_invoke_config().function_name("f:1").maximum_retry_attempts(2).send().await;
    assert_eq!(on_version.expect("put on version").function_arn(), Some(arn("1").as_str()));
    let by_arn = c.get_function_event_invoke_config().function_name(arn("live")).send().await.expect("by ARN");
    assert_eq!(by_arn.maximum_retry_attempts(), Some(1));

    let all = c.list_function_event_invoke_configs().function_name("f").send().await.expect("list");
    let arns: Vec<&str> = all.function_event_invoke_configs().iter().filter_map(|c| c.function_arn()).collect();
    assert_eq!(arns, [arn("$LATEST"), arn("1"), arn("live")]);
    assert_eq!(all.next_marker(), None);
    let mut paged = Vec::new();
    let mut marker = None;
    loop {
        let page = c
            .list_function_event_invoke_configs()
            .function_name("f")
            .max_items(2)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("list page");
        assert!(page.function_event_invoke_configs().len() <= 2);
        paged.extend(page.function_event_invoke_configs().iter().filter_map(|c| c.function_arn().map(str::to_owned)));
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    assert_eq!(paged, arns);

    c.delete_function_event_invoke_config().function_name("f").qualifier("live").send().await.expect("delete");
    let gone = c.get_function_event_invoke_config().function_name("f").qualifier("live").send().await;
    assert_eq!(
        error_of(gone),
        (
            "ResourceNotFoundException".to_owned(),
            format!("The function {} doesn't have an EventInvokeConfig", arn("live"))
        )
    );
    let again = c.delete_function_event_invoke_config().function_name("f").qualifier("live").send().await;
    assert_eq!(error_of(again).0, "ResourceNotFoundException");

    // Deleting an alias or a version deletes its settings; deleting the function deletes all; one
    // created again under the name starts without.
    c.put_function_event_invoke_config().function_name("f:live").maximum_retry_attempts(1).send().await.expect("put");
    c.delete_alias().function_name("f").name("live").send().await.expect("delete alias");
    c.create_alias().function_name("f").name("live").function_version("1").send().await.expect("alias again");
    let fresh = c.get_function_event_invoke_config().function_name("f:live").send().await;
    assert_eq!(error_of(fresh).0, "ResourceNotFoundException", "a new alias starts without settings");
    c.delete_alias().function_name("f").name("live").send().await.expect("delete alias");
    c.delete_function().function_name("f").qualifier("1").send().await.expect("delete version");
    let all = c.list_function_event_invoke_configs().function_name("f").send().await.expect("list");
    assert_eq!(all.function_event_invoke_configs().len(), 1, "{all:?}");
    c.delete_function().function_name("f").send().await.expect("delete function");
    create_python(&c, "f", ECHO).send().await.expect("create f again");
    let fresh = c.get_function_event_invoke_config().function_name("f").send().await;
    assert_eq!(error_of(fresh).0, "ResourceNotFoundException");
    let all = c.list_function_event_invoke_configs().function_name("f").send().await.expect("list");
    assert!(all.function_event_invoke_configs().is_empty());
}

async fn validation_and_not_found(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "f", ECHO).send().await.expect("create");
    let own = format!("arn:aws:lambda:{}:{}:function:f", env.region, t.account_id);
    let put = || c.put_function_event_invoke_config().function_name("f");

    assert_eq!(
        error_of(put().maximum_retry_attempts(3).send().await),
        (
            "ValidationException".to_owned(),
            "1 validation error detected: Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member \
             must have value less than or equal to 2"
                .to_owned()
        )
    );
    assert_eq!(
        error_of(put().maximum_event_age_in_seconds(59).send().await).1,
        "1 validation error detected: Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member \
         must have value greater than or equal to 60"
    );
    let (code, message) = error_of(put().maximum_event_age_in_seconds(21_601).maximum_retry_attempts(-1).send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.starts_with("2 validation errors detected: "), "{message}");
    let (code, message) = error_of(put().destination_config(on_failure("not-an-arn")).send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("at 'destinationConfig.onFailure.destination'"), "{message}");
    assert_eq!(
        error_of(put().send().await),
        (
            "InvalidParameterValueException".to_owned(),
            "You must specify at least one of error handling or destination setting.".to_owned()
        )
    );
    assert_eq!(
        error_of(put().destination_config(on_success(&own)).send().await),
        (
            "InvalidParameterValueException".to_owned(),
            "You can't specify the function as a destination for itself.".to_owned()
        )
    );
    let missing = format!("arn:aws:lambda:{}:{}:function:nope", env.region, t.account_id);
    assert_eq!(
        error_of(put().destination_config(on_failure(&missing)).send().await),
        ("InvalidParameterValueException".to_owned(), format!("The destination ARN {missing} is invalid."))
    );
    // SNS topics are destinations on AWS, not here: refused rather than never delivered to.
    let topic = format!("arn:aws:sns:{}:123456789012:alerts", env.region);
    let (code, message) = error_of(put().destination_config(on_failure(&topic)).send().await);
    assert_eq!(code, "InvalidParameterValueException");
    assert!(
        message.starts_with(&format!(
            "The provided destination config DestinationConfig(onSuccess=null, onFailure=OnFailure(destination={topic})) \
             is invalid."
        )),
        "{message}"
    );

    let nope = c.put_function_event_invoke_config().function_name("nope").maximum_retry_attempts(1).send().await;
    assert_eq!(error_of(nope), ("ResourceNotFoundException".to_owned(), "The function doesn't exist.".to_owned()));
    let no_alias = c
        .put_function_event_invoke_config()
        .function_name("f")
        .qualifier("ghost")
        .maximum_retry_attempts(1)
        .send()
        .await;
    assert_eq!(error_of(no_alias).0, "ResourceNotFoundException");
    let no_config = c.update_function_event_invoke_config().function_name("f").maximum_retry_attempts(1).send().await;
    assert_eq!(
        error_of(no_config),
        (
            "ResourceNotFoundException".to_owned(),
            format!("The function {own}:$LATEST doesn't have an EventInvokeConfig")
        )
    );
    let no_config = c.get_function_event_invoke_config().function_name("f").send().await;
    assert_eq!(error_of(no_config).1, format!("The function {own}:$LATEST doesn't have an EventInvokeConfig"));
    let no_config = c.delete_function_event_invoke_config().function_name("f").send().await;
    assert_eq!(error_of(no_config).1, format!("The function {own} doesn't have an EventInvokeConfig"));
    let listed = c.list_function_event_invoke_configs().function_name("nope").send().await;
    assert_eq!(error_of(listed).1, "The function doesn't exist.");
    let too_many = c.list_function_event_invoke_configs().function_name("f").max_items(51).send().await;
    assert_eq!(error_of(too_many).0, "ValidationException");
}

async fn tenants_see_only_their_own(env: &TestEnv) {
    let (a, b) = (env.tenant().await, env.tenant().await);
    let (ca, cb) = (env.lambda(&a), env.lambda(&b));
    create_python(&ca, "f", ECHO).send().await.expect("create a/f");
    create_python(&cb, "f", ECHO).send().await.expect("create b/f");
    let a_f = format!("arn:aws:lambda:{}:{}:function:f", env.region, a.account_id);
    ca.put_function_event_invoke_config().function_name("f").maximum_retry_attempts(0).send().await.expect("put a");

    // By name, B reaches its own function, which has no settings.
    let mine = cb.get_function_event_invoke_config().function_name("f").send().await;
    assert_eq!(error_of(mine).0, "ResourceNotFoundException");
    let listed = cb.list_function_event_invoke_configs().function_name("f").send().await.expect("list b");
    assert!(listed.function_event_invoke_configs().is_empty());
    // By ARN, A's function is refused whatever its policy could say: these are owner-only.
    for denied in [
        error_of(cb.get_function_event_invoke_config().function_name(&a_f).send().await),
        error_of(cb.put_function_event_invoke_config().function_name(&a_f).maximum_retry_attempts(2).send().await),
        error_of(cb.update_function_event_invoke_config().function_name(&a_f).maximum_retry_attempts(2).send().await),
        error_of(cb.delete_function_event_invoke_config().function_name(&a_f).send().await),
        error_of(cb.list_function_event_invoke_configs().function_name(&a_f).send().await),
    ] {
        assert_eq!(denied.0, "AccessDeniedException", "{denied:?}");
    }
    // Nor can B's failures be sent to A's function.
    let to_a =
        cb.put_function_event_invoke_config().function_name("f").destination_config(on_failure(&a_f)).send().await;
    assert_eq!(
        error_of(to_a),
        ("InvalidParameterValueException".to_owned(), format!("The destination ARN {a_f} is invalid."))
    );
    let still = ca.get_function_event_invoke_config().function_name("f").send().await.expect("a's settings");
    assert_eq!(still.maximum_retry_attempts(), Some(0));
}
