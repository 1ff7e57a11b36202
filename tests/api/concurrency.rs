//! Reserved concurrency: PutFunctionConcurrency and friends, and what Invoke does with them.

use lamina_tests::{TestEnv, backend_tests};

use crate::{code_of, create_python, status_of};

backend_tests!(reserved_concurrency_is_bounded_and_enforced);

async fn reserved_concurrency_is_bounded_and_enforced(env: &TestEnv) {
    let t = env.tenant_with(serde_json::json!({"ConcurrentExecutions": 110})).await;
    let c = env.lambda(&t);
    create_python(&c, "res").send().await.expect("create");
    create_python(&c, "other").send().await.expect("create");
    let none = c.get_function_concurrency().function_name("res").send().await.expect("get");
    assert_eq!(none.reserved_concurrent_executions(), None);

    let put = c.put_function_concurrency().function_name("res").reserved_concurrent_executions(10).send().await;
    assert_eq!(put.expect("put").reserved_concurrent_executions(), Some(10));
    let got = c.get_function_concurrency().function_name("res").send().await.expect("get");
    assert_eq!(got.reserved_concurrent_executions(), Some(10));
    let settings = c.get_account_settings().send().await.expect("settings");
    assert_eq!(settings.account_limit().map(|l| l.unreserved_concurrent_executions()), Some(Some(100)));
    let f = c.get_function().function_name("res").send().await.expect("get function");
    assert_eq!(f.concurrency().and_then(|x| x.reserved_concurrent_executions()), Some(10));

    let too_much = c.put_function_concurrency().function_name("other").reserved_concurrent_executions(1).send().await;
    assert_eq!(code_of(too_much), "InvalidParameterValueException", "unreserved may not drop below 100");
    let negative = c.put_function_concurrency().function_name("res").reserved_concurrent_executions(-1).send().await;
    assert_eq!(code_of(negative), "ValidationException");
    let missing = c.put_function_concurrency().function_name("nope").reserved_concurrent_executions(1).send().await;
    assert_eq!(code_of(missing), "ResourceNotFoundException");

    c.put_function_concurrency().function_name("res").reserved_concurrent_executions(0).send().await.expect("zero");
    let throttled = c.invoke().function_name("res").send().await;
    let status = status_of(&throttled);
    assert_eq!(code_of(throttled), "TooManyRequestsException");
    assert_eq!(status, 429);
    c.invoke().function_name("other").send().await.expect("other functions still run");

    c.delete_function_concurrency().function_name("res").send().await.expect("delete");
    let after = c.get_function_concurrency().function_name("res").send().await.expect("get");
    assert_eq!(after.reserved_concurrent_executions(), None);
    c.invoke().function_name("res").send().await.expect("runs again");
}
