//! Tenants see and touch only their own functions.

use lamina_tests::{TestEnv, backend_tests};

use crate::{code_of, create_python};

backend_tests!(tenants_are_isolated);

async fn tenants_are_isolated(env: &TestEnv) {
    let a = env.tenant().await;
    let b = env.tenant().await;
    let ca = env.lambda(&a);
    let cb = env.lambda(&b);
    create_python(&ca, "secret-fn").send().await.expect("a creates");
    create_python(&cb, "secret-fn").send().await.expect("b may use the same name");
    let listed = cb.list_functions().send().await.expect("list");
    assert_eq!(listed.functions().len(), 1);
    let b_arn = format!("arn:aws:lambda:us-east-1:{}:function:secret-fn", b.account_id);
    assert_eq!(listed.functions()[0].function_arn(), Some(b_arn.as_str()));

    let a_arn = format!("arn:aws:lambda:us-east-1:{}:function:secret-fn", a.account_id);
    let missing_arn = format!("arn:aws:lambda:us-east-1:{}:function:does-not-exist", a.account_id);
    for name in [a_arn.as_str(), &format!("{}:function:secret-fn", a.account_id), missing_arn.as_str()] {
        let r = cb.get_function().function_name(name).send().await;
        assert_eq!(code_of(r), "AccessDeniedException", "{name}: same answer whether or not it exists");
        let r = cb.update_function_configuration().function_name(name).timeout(9).send().await;
        assert_eq!(code_of(r), "AccessDeniedException");
        let r = cb.delete_function().function_name(name).send().await;
        assert_eq!(code_of(r), "AccessDeniedException");
    }
    let still = ca.get_function_configuration().function_name("secret-fn").send().await.expect("a's function intact");
    assert_eq!(still.timeout(), Some(3));
    cb.delete_function().function_name("secret-fn").send().await.expect("b deletes its own");
    ca.get_function().function_name("secret-fn").send().await.expect("a's function survives b's delete");
}
