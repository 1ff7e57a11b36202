//! ListEventSourceMappings: every mapping once across pages, filters by function (as addressed)
//! and by source, and tenants that see only their own mappings.

use std::collections::BTreeSet;

use lamina_tests::{TestEnv, error_of};

use crate::{function, require_local_servers};

crate::engine_tests!(pages_and_filters, tenants_see_only_their_own);

/// Every UUID ListEventSourceMappings returns, page by page (`MaxItems` per page).
async fn all_pages(
    client: &aws_sdk_lambda::Client,
    function_name: Option<&str>,
    source: Option<&str>,
    max_items: i32,
) -> Vec<String> {
    let mut uuids = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_event_source_mappings()
            .set_function_name(function_name.map(str::to_owned))
            .set_event_source_arn(source.map(str::to_owned))
            .set_marker(marker.clone())
            .max_items(max_items)
            .send()
            .await
            .expect("ListEventSourceMappings");
        assert!(page.event_source_mappings().len() <= max_items as usize);
        uuids.extend(page.event_source_mappings().iter().filter_map(|m| m.uuid().map(str::to_owned)));
        match page.next_marker() {
            Some(next) => marker = Some(next.to_owned()),
            None => return uuids,
        }
    }
}

fn set(uuids: &[String]) -> BTreeSet<String> {
    let unique: BTreeSet<String> = uuids.iter().cloned().collect();
    assert_eq!(unique.len(), uuids.len(), "a mapping listed twice: {uuids:?}");
    unique
}

async fn pages_and_filters(env: &TestEnv) {
    require_local_servers();
    let t = env.tenant().await;
    let client = env.lambda(&t);
    function(&client, "a", true).await;
    function(&client, "b", false).await;
    let queue = |i: usize| format!("arn:aws:sqs:{}:{}:q{i}", env.region, t.account_id);
    let mut by_function: [Vec<String>; 3] = Default::default();
    let mut by_queue: Vec<Vec<String>> = vec![Vec::new(); 4];
    for (i, of_queue) in by_queue.iter_mut().enumerate() {
        for (slot, name) in ["a", "a:1", "b"].iter().enumerate() {
            let m = client
                .create_event_source_mapping()
                .function_name(*name)
                .event_source_arn(queue(i))
                .enabled(false)
                .send()
                .await
                .expect("create");
            let uuid = m.uuid().expect("UUID").to_owned();
            by_function[slot].push(uuid.clone());
            of_queue.push(uuid);
        }
    }
    let everything: BTreeSet<String> = by_function.iter().flatten().cloned().collect();
    assert_eq!(everything.len(), 12);

    for page_size in [1, 5, 12, 100] {
        assert_eq!(set(&all_pages(&client, None, None, page_size).await), everything, "pages of {page_size}");
    }
    let first = client.list_event_source_mappings().max_items(5).send().await.expect("list");
    assert_eq!(first.event_source_mappings().len(), 5);
    assert!(first.next_marker().is_some());
    let all = client.list_event_source_mappings().send().await.expect("list");
    assert_eq!((all.event_source_mappings().len(), all.next_marker()), (12, None));

    // By function as addressed: a qualified name lists that version's, a name every qualifier's.
    let a1: BTreeSet<String> = by_function[1].iter().cloned().collect();
    assert_eq!(set(&all_pages(&client, Some("a:1"), None, 2).await), a1);
    let a_all: BTreeSet<String> = by_function[0].iter().chain(&by_function[1]).cloned().collect();
    assert_eq!(set(&all_pages(&client, Some("a"), None, 3).await), a_all);
    let b_arn = format!("arn:aws:lambda:{}:{}:function:b", env.region, t.account_id);
    let b: BTreeSet<String> = by_function[2].iter().cloned().collect();
    assert_eq!(set(&all_pages(&client, Some(&b_arn), None, 100).await), b);
    let partial = format!("{}:function:b", t.account_id);
    assert_eq!(set(&all_pages(&client, Some(&partial), None, 100).await), b);

    // By source, and both.
    let q2: BTreeSet<String> = by_queue[2].iter().cloned().collect();
    assert_eq!(set(&all_pages(&client, None, Some(&queue(2)), 2).await), q2);
    let both = all_pages(&client, Some("b"), Some(&queue(3)), 100).await;
    assert_eq!(both, vec![by_queue[3][2].clone()]);
    assert!(all_pages(&client, Some("nonexistent"), None, 100).await.is_empty(), "filters need not exist");
    assert!(all_pages(&client, None, Some(&queue(9)), 100).await.is_empty());

    // Bad parameters.
    let (code, message) = error_of(client.list_event_source_mappings().max_items(0).send().await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
    let (code, _) = error_of(client.list_event_source_mappings().marker("not-a-marker").send().await);
    assert_eq!(code, "InvalidParameterValueException");
    let (code, message) = error_of(client.list_event_source_mappings().event_source_arn("queue").send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("'eventSourceArn'"), "{message}");
    let (code, _) = error_of(client.list_event_source_mappings().function_name("no spaces").send().await);
    assert_eq!(code, "ValidationException");
}

async fn tenants_see_only_their_own(env: &TestEnv) {
    require_local_servers();
    let (owner, other) = (env.tenant().await, env.tenant().await);
    let (mine, theirs) = (env.lambda(&owner), env.lambda(&other));
    let function_arn = function(&mine, "private", false).await;
    function(&theirs, "private", false).await;
    let queue = format!("arn:aws:sqs:{}:{}:shared-queue", env.region, owner.account_id);
    let created = mine
        .create_event_source_mapping()
        .function_name("private")
        .event_source_arn(&queue)
        .enabled(false)
        .send()
        .await
        .expect("create");
    let uuid = created.uuid().expect("UUID");
    crate::wait_for_state(&mine, uuid, "Disabled").await;

    let not_found = ("ResourceNotFoundException".to_owned(), "The resource you requested does not exist.".to_owned());
    assert_eq!(error_of(theirs.get_event_source_mapping().uuid(uuid).send().await), not_found);
    assert_eq!(error_of(theirs.update_event_source_mapping().uuid(uuid).enabled(true).send().await), not_found);
    assert_eq!(error_of(theirs.delete_event_source_mapping().uuid(uuid).send().await), not_found);
    assert!(theirs.list_event_source_mappings().send().await.expect("list").event_source_mappings().is_empty());
    let filtered =
        theirs.list_event_source_mappings().function_name(&function_arn).send().await.expect("list by foreign ARN");
    assert!(filtered.event_source_mappings().is_empty());
    let by_source = theirs.list_event_source_mappings().event_source_arn(&queue).send().await.expect("list by source");
    assert!(by_source.event_source_mappings().is_empty());

    // Another tenant cannot point a mapping at this tenant's function; its own same-named
    // function on the same queue is its own mapping.
    let (code, message) = error_of(
        theirs
            .create_event_source_mapping()
            .function_name(&function_arn)
            .event_source_arn(&queue)
            .enabled(false)
            .send()
            .await,
    );
    assert_eq!((code.as_str(), message.as_str()), ("InvalidParameterValueException", "Function does not exist"));
    let own = theirs
        .create_event_source_mapping()
        .function_name("private")
        .event_source_arn(&queue)
        .enabled(false)
        .send()
        .await
        .expect("the other tenant's own mapping");
    assert_ne!(own.function_arn(), Some(function_arn.as_str()));

    let still = mine.get_event_source_mapping().uuid(uuid).send().await.expect("untouched");
    assert_eq!(still.state(), Some("Disabled"));
    assert_eq!(mine.list_event_source_mappings().send().await.expect("list").event_source_mappings().len(), 1);
}
