//! The operation × foreign-account matrix: every operation that addresses a function, called by
//! another account with no grant, with a grant of that very action and with `lambda:*`. Only the
//! operations AWS lets a resource policy grant across accounts may pass; every refusal is AWS's
//! AccessDenied and leaves the function exactly as it was.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::{Blob, ByteStream};
use aws_sdk_lambda::types::InvocationType;
use lamina_tests::{Tenant, TestEnv, backend_tests, python_zip};

use crate::create_python;

backend_tests!(foreign_accounts_get_exactly_the_grantable_operations);

/// Every operation that takes a function name, with the action a grant names and whether AWS lets
/// a resource policy grant it to another account.
const OPERATIONS: &[(&str, &str, bool)] = &[
    ("GetFunction", "lambda:GetFunction", true),
    ("GetFunctionConfiguration", "lambda:GetFunctionConfiguration", true),
    ("UpdateFunctionConfiguration", "lambda:UpdateFunctionConfiguration", false),
    ("UpdateFunctionCode", "lambda:UpdateFunctionCode", true),
    ("DeleteFunction", "lambda:DeleteFunction", true),
    ("CreateFunction", "lambda:CreateFunction", false),
    ("Invoke", "lambda:InvokeFunction", true),
    ("InvokeAsync", "lambda:InvokeFunction", true),
    ("PublishVersion", "lambda:PublishVersion", true),
    ("ListVersionsByFunction", "lambda:ListVersionsByFunction", true),
    ("CreateAlias", "lambda:CreateAlias", true),
    ("GetAlias", "lambda:GetAlias", true),
    ("ListAliases", "lambda:ListAliases", true),
    ("UpdateAlias", "lambda:UpdateAlias", true),
    ("DeleteAlias", "lambda:DeleteAlias", true),
    ("GetPolicy", "lambda:GetPolicy", true),
    ("AddPermission", "lambda:AddPermission", false),
    ("RemovePermission", "lambda:RemovePermission", false),
    ("PutFunctionConcurrency", "lambda:PutFunctionConcurrency", true),
    ("GetFunctionConcurrency", "lambda:GetFunctionConcurrency", false),
    ("DeleteFunctionConcurrency", "lambda:DeleteFunctionConcurrency", true),
    // Lamina's log API: logs belong to the owner's account (CloudWatch Logs); a GetFunction grant
    // used to open them.
    ("GetLogEvents", "lambda:GetFunction", false),
];

/// What came back: HTTP status, error code and message.
#[derive(Debug)]
struct Outcome {
    status: u16,
    code: String,
    message: String,
}

fn outcome<R, E>(
    result: Result<R, aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> Outcome
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug,
{
    let status = crate::status_of(&result);
    match result {
        Ok(_) => Outcome { status, code: String::new(), message: String::new() },
        Err(err) => match err.as_service_error() {
            Some(e) => Outcome {
                status,
                code: e.code().unwrap_or_default().to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            },
            None => panic!("not a service error: {err:?}"),
        },
    }
}

/// What every cell needs; owned, so the cells of a phase run at once.
#[derive(Clone)]
struct Ctx {
    owner: Tenant,
    foreign: Tenant,
    stranger: Tenant,
    co: Client,
    cf: Client,
    endpoint: String,
    host: String,
    region: String,
}

/// Everything a foreign call could change, as the owner sees it.
async fn snapshot(ctx: &Ctx, name: &str) -> String {
    let co = &ctx.co;
    let config = match co.get_function_configuration().function_name(name).send().await {
        Ok(c) => format!("{:?} {:?} {:?}", c.revision_id(), c.code_sha256(), c.description()),
        Err(e) => format!("gone: {:?}", e.as_service_error().and_then(|e| e.meta().code())),
    };
    if config.starts_with("gone") {
        return config;
    }
    let versions: Vec<String> = co
        .list_versions_by_function()
        .function_name(name)
        .send()
        .await
        .expect("list versions")
        .versions()
        .iter()
        .map(|v| format!("{:?}/{:?}", v.version(), v.revision_id()))
        .collect();
    let aliases: Vec<String> = co
        .list_aliases()
        .function_name(name)
        .send()
        .await
        .expect("list aliases")
        .aliases()
        .iter()
        .map(|a| format!("{:?}/{:?}/{:?}", a.name(), a.function_version(), a.revision_id()))
        .collect();
    let policy = co.get_policy().function_name(name).send().await.map(|p| (p.policy, p.revision_id));
    let policy = format!("{:?}", policy.ok());
    let reserved = co.get_function_concurrency().function_name(name).send().await.expect("concurrency");
    let (_, events) = logs(ctx, &ctx.owner, name).await;
    format!("{config} {versions:?} {aliases:?} {policy} {:?} logs={events}", reserved.reserved_concurrent_executions())
}

/// Calls `operation` on the owner's function `arn` as the foreign client.
async fn call(ctx: &Ctx, operation: &str, arn: &str) -> Outcome {
    let (cf, foreign) = (&ctx.cf, &ctx.foreign);
    match operation {
        "GetFunction" => outcome(cf.get_function().function_name(arn).send().await),
        "GetFunctionConfiguration" => outcome(cf.get_function_configuration().function_name(arn).send().await),
        "UpdateFunctionConfiguration" => {
            outcome(cf.update_function_configuration().function_name(arn).description("foreign").send().await)
        }
        "UpdateFunctionCode" => outcome(
            cf.update_function_code()
                .function_name(arn)
                .zip_file(Blob::new(python_zip("def handler(e, c):\n    return 'foreign'\n")))
                .send()
                .await,
        ),
        "DeleteFunction" => outcome(cf.delete_function().function_name(arn).send().await),
        "CreateFunction" => outcome(create_python(cf, arn).send().await),
        "Invoke" => outcome(cf.invoke().function_name(arn).invocation_type(InvocationType::DryRun).send().await),
        #[allow(deprecated, reason = "InvokeAsync is one of the operations a grant must cover")]
        "InvokeAsync" => {
            outcome(cf.invoke_async().function_name(arn).invoke_args(ByteStream::from_static(b"{}")).send().await)
        }
        "PublishVersion" => outcome(cf.publish_version().function_name(arn).send().await),
        "ListVersionsByFunction" => outcome(cf.list_versions_by_function().function_name(arn).send().await),
        "CreateAlias" => {
            outcome(cf.create_alias().function_name(arn).name("FOREIGN").function_version("1").send().await)
        }
        "GetAlias" => outcome(cf.get_alias().function_name(arn).name("LIVE").send().await),
        "ListAliases" => outcome(cf.list_aliases().function_name(arn).send().await),
        "UpdateAlias" => outcome(cf.update_alias().function_name(arn).name("LIVE").description("foreign").send().await),
        "DeleteAlias" => outcome(cf.delete_alias().function_name(arn).name("LIVE").send().await),
        "GetPolicy" => outcome(cf.get_policy().function_name(arn).send().await),
        "AddPermission" => outcome(
            cf.add_permission()
                .function_name(arn)
                .statement_id("foreign-added")
                .action("lambda:*")
                .principal(&foreign.account_id)
                .send()
                .await,
        ),
        "RemovePermission" => outcome(cf.remove_permission().function_name(arn).statement_id("decoy").send().await),
        "PutFunctionConcurrency" => {
            outcome(cf.put_function_concurrency().function_name(arn).reserved_concurrent_executions(5).send().await)
        }
        "GetFunctionConcurrency" => outcome(cf.get_function_concurrency().function_name(arn).send().await),
        "DeleteFunctionConcurrency" => outcome(cf.delete_function_concurrency().function_name(arn).send().await),
        "GetLogEvents" => logs(ctx, foreign, arn).await.0,
        other => panic!("no call for {other}"),
    }
}

/// `GET /_lamina/v1/functions/{function}/logs` (signed by hand: the SDK has no such call); the
/// outcome and the number of events returned.
async fn logs(ctx: &Ctx, t: &Tenant, function: &str) -> (Outcome, usize) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let url = format!("{}/_lamina/v1/functions/{function}/logs", ctx.endpoint);
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(&t.access_key_id, &t.secret_access_key, None, None, "t").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&ctx.region)
        .name("lambda")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let signable =
        SignableRequest::new("GET", &url, [("host", ctx.host.as_str())].into_iter(), SignableBody::Bytes(b""))
            .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().method("GET").uri(&url).header("host", &ctx.host).body(()).expect("request");
    instructions.apply_to_request_http1x(&mut req);
    let mut out = reqwest::Client::new().get(req.uri().to_string());
    for (k, v) in req.headers() {
        out = out.header(k.as_str(), v.as_bytes());
    }
    let resp = out.send().await.expect("send");
    let status = resp.status().as_u16();
    let code = resp.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let message = body["message"].as_str().or_else(|| body["Message"].as_str()).unwrap_or_default().to_owned();
    let events = body["Events"].as_array().map_or(0, Vec::len);
    (Outcome { status, code: code.split(':').next().unwrap_or_default().to_owned(), message }, events)
}

/// One cell: a fresh function whose policy grants `grant` (`None`: nothing to the foreign
/// account; `Some(true)`: `lambda:*`), one foreign call; `Err` describes what is wrong.
async fn cell(
    ctx: Ctx,
    phase: &'static str,
    grant: Option<bool>,
    op: (&'static str, &'static str, bool),
) -> Result<(), String> {
    let (operation, action, grantable) = op;
    let co = &ctx.co;
    let name = format!("x-{}-{}", operation.to_lowercase(), phase.len());
    let arn = format!("arn:aws:lambda:{}:{}:function:{name}", ctx.region, ctx.owner.account_id);
    create_python(co, &name).publish(true).send().await.expect("create");
    co.create_alias().function_name(&name).name("LIVE").function_version("1").send().await.expect("alias");
    // A policy that is not empty but grants nothing to the foreign account for this call.
    for (sid, act, who) in [("decoy", "lambda:ListTags", &ctx.foreign), ("stranger", "lambda:*", &ctx.stranger)] {
        co.add_permission()
            .function_name(&name)
            .statement_id(sid)
            .action(act)
            .principal(&who.account_id)
            .send()
            .await
            .expect("add permission");
    }
    if let Some(wildcard) = grant {
        co.add_permission()
            .function_name(&name)
            .statement_id("grant")
            .action(if wildcard { "lambda:*" } else { action })
            .principal(&ctx.foreign.account_id)
            .send()
            .await
            .expect("grant");
    }
    let before = snapshot(&ctx, &name).await;
    let got = call(&ctx, operation, &arn).await;
    if grant.is_some() && grantable {
        return if got.status < 300 { Ok(()) } else { Err(format!("{phase}: {operation} refused: {got:?}")) };
    }
    let iam = if operation == "GetLogEvents" { "logs:GetLogEvents" } else { action };
    let expected = format!(
        "User: arn:aws:iam::{}:root is not authorized to perform: {iam} on resource: {arn}",
        ctx.foreign.account_id
    );
    if got.status != 403 || got.code != "AccessDeniedException" || got.message != expected {
        return Err(format!("{phase}: {operation} not refused as AWS does: {got:?}, expected {expected}"));
    }
    let after = snapshot(&ctx, &name).await;
    if before != after {
        return Err(format!("{phase}: refused {operation} changed the function:\n  {before}\n  {after}"));
    }
    Ok(())
}

async fn foreign_accounts_get_exactly_the_grantable_operations(env: &TestEnv) {
    // Room to reserve concurrency above the unreserved minimum of 100.
    let owner = env.tenant_with(serde_json::json!({ "ConcurrentExecutions": 1000 })).await;
    let (foreign, stranger) = (env.tenant().await, env.tenant().await);
    let ctx = Ctx {
        co: env.lambda(&owner),
        cf: env.lambda(&foreign),
        owner,
        foreign,
        stranger,
        endpoint: env.endpoint(),
        host: env.server.addr.to_string(),
        region: env.region.clone(),
    };
    let mut failures = Vec::new();
    for (phase, grant) in [("no grant", None), ("exact grant", Some(false)), ("lambda:* grant", Some(true))] {
        let mut cells = tokio::task::JoinSet::new();
        for &op in OPERATIONS {
            cells.spawn(cell(ctx.clone(), phase, grant, op));
        }
        while let Some(done) = cells.join_next().await {
            if let Err(failure) = done.expect("cell task") {
                failures.push(failure);
            }
        }
    }
    assert!(failures.is_empty(), "{} cells of the matrix are wrong:\n{}", failures.len(), failures.join("\n"));
}
