//! Versions and aliases: publishing, immutability, numbering, qualifiers, routing.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, FunctionCode};
use lamina_tests::{TestEnv, backend_tests, python_zip};

use crate::{code_of, create_python, error_of};

backend_tests!(
    versions_are_numbered_and_immutable,
    aliases_point_at_versions,
    weighted_alias_splits_traffic,
    deleting_a_version_respects_alias_routing,
    alias_errors_keep_their_messages,
);

fn returning(value: &str) -> Blob {
    Blob::new(python_zip(&format!("def handler(event, context):\n    return {value:?}\n")))
}

async fn invoke_text(c: &aws_sdk_lambda::Client, name: &str) -> (String, String) {
    let out = c.invoke().function_name(name).send().await.expect("invoke");
    assert!(out.function_error().is_none(), "function error: {:?}", out.payload());
    let body = String::from_utf8(out.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default()).expect("utf8");
    (body, out.executed_version().unwrap_or_default().to_owned())
}

async fn versions_are_numbered_and_immutable(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "ver")
        .code(FunctionCode::builder().zip_file(returning("one")).build())
        .send()
        .await
        .expect("create");
    let v1 = c.publish_version().function_name("ver").description("first").send().await.expect("publish");
    assert_eq!(v1.version(), Some("1"));
    assert_eq!(v1.description(), Some("first"));
    let again = c.publish_version().function_name("ver").send().await.expect("publish unchanged");
    assert_eq!(again.version(), Some("1"), "nothing changed: the newest version is returned");

    let v2 = c
        .update_function_code()
        .function_name("ver")
        .zip_file(returning("two"))
        .publish(true)
        .send()
        .await
        .expect("update+publish");
    assert_eq!(v2.version(), Some("2"));
    let wrong = c.publish_version().function_name("ver").code_sha256("AAAA").send().await;
    assert_eq!(code_of(wrong), "InvalidParameterValueException");
    c.update_function_configuration().function_name("ver").timeout(7).send().await.expect("config change");
    let v3 = c.publish_version().function_name("ver").send().await.expect("config-only change publishes");
    assert_eq!(v3.version(), Some("3"));
    assert_eq!(v3.timeout(), Some(7));

    let listed = c.list_versions_by_function().function_name("ver").send().await.expect("list");
    let names: Vec<_> = listed.versions().iter().filter_map(|v| v.version()).collect();
    assert_eq!(names, ["$LATEST", "1", "2", "3"]);
    let page = c.list_versions_by_function().function_name("ver").max_items(2).send().await.expect("page");
    assert_eq!(page.versions().len(), 2);
    let rest = c
        .list_versions_by_function()
        .function_name("ver")
        .marker(page.next_marker().expect("marker"))
        .send()
        .await
        .expect("rest");
    let rest_names: Vec<_> = rest.versions().iter().filter_map(|v| v.version()).collect();
    assert_eq!(rest_names, ["2", "3"]);

    // Versions run their own code and configuration after $LATEST moved on.
    c.update_function_code().function_name("ver").zip_file(returning("latest")).send().await.expect("update");
    assert_eq!(invoke_text(&c, "ver:1").await, ("\"one\"".into(), "1".into()));
    assert_eq!(invoke_text(&c, "ver").await, ("\"latest\"".into(), "$LATEST".into()));
    let q = c.invoke().function_name("ver").qualifier("2").send().await.expect("qualifier param");
    assert_eq!(q.executed_version(), Some("2"));

    let immutable = c.update_function_configuration().function_name("ver:1").timeout(9).send().await;
    assert_eq!(code_of(immutable), "InvalidParameterValueException");
    let latest_del = c.delete_function().function_name("ver").qualifier("$LATEST").send().await;
    assert_eq!(code_of(latest_del), "InvalidParameterValueException");

    // Numbers never come back: not after deleting a version, not after re-creating the function.
    c.delete_function().function_name("ver").qualifier("3").send().await.expect("delete v3");
    let gone = c.get_function_configuration().function_name("ver").qualifier("3").send().await;
    assert_eq!(code_of(gone), "ResourceNotFoundException");
    let v4 = c.publish_version().function_name("ver").send().await.expect("publish");
    assert_eq!(v4.version(), Some("4"));
    c.delete_function().function_name("ver").send().await.expect("delete all");
    let reborn = create_python(&c, "ver").publish(true).send().await.expect("recreate");
    assert_eq!(reborn.version(), Some("5"), "name:N never denotes two executables");
}

async fn aliases_point_at_versions(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "al")
        .code(FunctionCode::builder().zip_file(returning("one")).build())
        .publish(true)
        .send()
        .await
        .expect("create");
    c.update_function_code().function_name("al").zip_file(returning("two")).publish(true).send().await.expect("v2");
    let prod = c
        .create_alias()
        .function_name("al")
        .name("PROD")
        .function_version("1")
        .description("live")
        .send()
        .await
        .expect("alias");
    let alias_arn = format!("arn:aws:lambda:us-east-1:{}:function:al:PROD", t.account_id);
    assert_eq!(prod.alias_arn(), Some(alias_arn.as_str()));
    assert_eq!(
        code_of(c.create_alias().function_name("al").name("PROD").function_version("2").send().await),
        "ResourceConflictException"
    );
    assert_eq!(
        code_of(c.create_alias().function_name("al").name("123").function_version("1").send().await),
        "ValidationException"
    );
    assert_eq!(
        code_of(c.create_alias().function_name("al").name("X").function_version("9").send().await),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code_of(c.create_alias().function_name("al").name("Y").function_version("PROD").send().await),
        "ValidationException"
    );
    assert_eq!(
        code_of(c.create_alias().function_name("nope").name("Y").function_version("1").send().await),
        "ResourceNotFoundException"
    );
    c.create_alias()
        .function_name("al")
        .name("DEV")
        .function_version("$LATEST")
        .send()
        .await
        .expect("alias to $LATEST");

    assert_eq!(invoke_text(&c, "al:PROD").await, ("\"one\"".into(), "1".into()));
    assert_eq!(invoke_text(&c, &alias_arn).await, ("\"one\"".into(), "1".into()));
    let cfg = c.get_function_configuration().function_name("al").qualifier("PROD").send().await.expect("get via alias");
    assert_eq!(cfg.version(), Some("1"));

    let updated =
        c.update_alias().function_name("al").name("PROD").function_version("2").send().await.expect("promote");
    assert_eq!(updated.function_version(), Some("2"));
    assert_eq!(updated.description(), Some("live"), "UpdateAlias keeps what it does not name");
    assert_eq!(invoke_text(&c, "al:PROD").await, ("\"two\"".into(), "2".into()));
    let stale = c
        .update_alias()
        .function_name("al")
        .name("PROD")
        .function_version("1")
        .revision_id(prod.revision_id().unwrap_or_default())
        .send()
        .await;
    assert_eq!(code_of(stale), "PreconditionFailedException");

    let filtered = c.list_aliases().function_name("al").function_version("2").send().await.expect("list");
    assert_eq!(filtered.aliases().iter().filter_map(|a| a.name()).collect::<Vec<_>>(), ["PROD"]);
    let all = c.list_aliases().function_name("al").send().await.expect("list");
    assert_eq!(all.aliases().len(), 2);

    let referenced = c.delete_function().function_name("al").qualifier("2").send().await;
    assert_eq!(code_of(referenced), "ResourceConflictException");
    let by_alias = c.delete_function().function_name("al").qualifier("PROD").send().await;
    assert_eq!(code_of(by_alias), "InvalidParameterValueException");
    c.delete_alias().function_name("al").name("PROD").send().await.expect("delete alias");
    assert_eq!(code_of(c.get_alias().function_name("al").name("PROD").send().await), "ResourceNotFoundException");
    c.delete_function().function_name("al").qualifier("2").send().await.expect("now deletable");
    c.create_alias()
        .function_name("al")
        .name("PROD")
        .function_version("1")
        .send()
        .await
        .expect("a deleted alias name can return");
}

async fn weighted_alias_splits_traffic(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "w")
        .code(FunctionCode::builder().zip_file(returning("one")).build())
        .publish(true)
        .send()
        .await
        .expect("v1");
    c.update_function_code().function_name("w").zip_file(returning("two")).publish(true).send().await.expect("v2");
    let routing = AliasRoutingConfiguration::builder().additional_version_weights("2", 0.3).build();
    let bad = c
        .create_alias()
        .function_name("w")
        .name("BAD")
        .function_version("$LATEST")
        .routing_config(routing.clone())
        .send()
        .await;
    assert_eq!(code_of(bad), "InvalidParameterValueException");
    c.create_alias()
        .function_name("w")
        .name("CANARY")
        .function_version("1")
        .routing_config(routing)
        .send()
        .await
        .expect("weighted");
    let n = 300;
    let mut twos = 0;
    for _ in 0..n {
        let (body, version) = invoke_text(&c, "w:CANARY").await;
        assert_eq!(body, if version == "2" { "\"two\"" } else { "\"one\"" }, "reported version is the one that ran");
        if version == "2" {
            twos += 1;
        }
    }
    // 300 draws at p = 0.3: mean 90, sd ≈ 7.9; ±5 sd.
    assert!((50..=130).contains(&twos), "version 2 ran {twos} of {n} times");
}

async fn deleting_a_version_respects_alias_routing(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "del")
        .code(FunctionCode::builder().zip_file(returning("v1")).build())
        .publish(true)
        .send()
        .await
        .expect("v1");
    for i in 2..=11 {
        let v = c
            .update_function_code()
            .function_name("del")
            .zip_file(returning(&format!("v{i}")))
            .publish(true)
            .send()
            .await
            .expect("publish");
        assert_eq!(v.version(), Some(i.to_string().as_str()));
    }
    c.create_alias()
        .function_name("del")
        .name("LIVE")
        .function_version("10")
        .routing_config(AliasRoutingConfiguration::builder().additional_version_weights("11", 0.2).build())
        .send()
        .await
        .expect("weighted alias");
    assert_eq!(
        error_of(c.delete_function().function_name("del").qualifier("11").send().await),
        (
            "ResourceConflictException".into(),
            "Unable to delete version because the following aliases reference it: [LIVE]".into()
        ),
        "a version referenced only by routing weights"
    );
    assert_eq!(
        code_of(c.delete_function().function_name("del").qualifier("10").send().await),
        "ResourceConflictException"
    );
    c.delete_function().function_name("del").qualifier("1").send().await.expect("1 is neither 10 nor 11");
    c.get_function_configuration().function_name("del").qualifier("11").send().await.expect("11 kept");
    assert_eq!(
        error_of(c.delete_function().function_name("del").qualifier("1").send().await),
        (
            "ResourceNotFoundException".into(),
            format!("Function not found: arn:aws:lambda:us-east-1:{}:function:del:1", t.account_id)
        )
    );
    c.update_alias()
        .function_name("del")
        .name("LIVE")
        .routing_config(
            AliasRoutingConfiguration::builder().set_additional_version_weights(Some(Default::default())).build(),
        )
        .send()
        .await
        .expect("drop the weight");
    c.delete_function().function_name("del").qualifier("11").send().await.expect("no longer referenced");
}

async fn alias_errors_keep_their_messages(env: &TestEnv) {
    let t = env.tenant().await;
    let c = env.lambda(&t);
    create_python(&c, "am").publish(true).send().await.expect("v1");
    let arn = format!("arn:aws:lambda:us-east-1:{}:function:am", t.account_id);
    assert_eq!(
        error_of(c.create_alias().function_name("am").name("A").function_version("4").send().await),
        ("ResourceNotFoundException".into(), format!("Function not found: {arn}:4"))
    );
    assert_eq!(
        error_of(c.create_alias().function_name("nope").name("A").function_version("1").send().await),
        (
            "ResourceNotFoundException".into(),
            format!("Function not found: arn:aws:lambda:us-east-1:{}:function:nope", t.account_id)
        )
    );
    let prod = c.create_alias().function_name("am").name("PROD").function_version("1").send().await.expect("alias");
    assert_eq!(
        error_of(c.create_alias().function_name("am").name("PROD").function_version("1").send().await),
        ("ResourceConflictException".into(), format!("Alias already exists: {arn}:PROD"))
    );
    assert_eq!(
        error_of(c.update_alias().function_name("am").name("NOPE").description("x").send().await),
        ("ResourceNotFoundException".into(), format!("Alias not found: {arn}:NOPE"))
    );
    assert_eq!(
        error_of(
            c.update_alias()
                .function_name("am")
                .name("PROD")
                .routing_config(AliasRoutingConfiguration::builder().additional_version_weights("7", 0.5).build())
                .send()
                .await
        ),
        ("ResourceNotFoundException".into(), format!("Function not found: {arn}:7"))
    );
    c.update_alias()
        .function_name("am")
        .name("PROD")
        .description("moved on")
        .revision_id(prod.revision_id().unwrap_or_default())
        .send()
        .await
        .expect("update at the current revision");
    assert_eq!(
        error_of(
            c.update_alias()
                .function_name("am")
                .name("PROD")
                .description("stale")
                .revision_id(prod.revision_id().unwrap_or_default())
                .send()
                .await
        ),
        (
            "PreconditionFailedException".into(),
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to \
             retrieve the latest Revision Id"
                .into()
        )
    );
}
