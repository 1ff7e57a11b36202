//! Resource-policy documents (statements as stored, `metadata::policies`) and their evaluation.
//!
//! Input: the statements' JSON, then NUL-separated request fields: caller (`svc:` prefix for a
//! service principal), action, resource, SourceArn, SourceAccount, EventSourceToken.
//! Invariants: no panic; parse → print → parse gives the same statements; a policy allows exactly
//! when one of its statements alone does; adding statements never removes access; a glob
//! pattern always matches its own text.
#![no_main]

use lamina_common::policy::{Caller, RequestContext, Statement, allows, glob_match};
use libfuzzer_sys::fuzz_target;

fn field(parts: &[&[u8]], i: usize) -> Option<String> {
    parts.get(i).map(|p| String::from_utf8_lossy(p).into_owned())
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    // The stored form is the statement list; a full document nests it under "Statement".
    let statements: Vec<Statement> = match serde_json::from_slice::<Vec<Statement>>(parts[0]) {
        Ok(s) => s,
        Err(_) => match serde_json::from_slice::<serde_json::Value>(parts[0]) {
            Ok(doc) => match doc.get("Statement").cloned().map(serde_json::from_value) {
                Some(Ok(s)) => s,
                _ => return,
            },
            Err(_) => return,
        },
    };
    let printed = serde_json::to_string(&statements).expect("statements serialise");
    let reparsed: Vec<Statement> = serde_json::from_str(&printed).expect("printed statements parse");
    assert_eq!(reparsed, statements);

    let caller = field(&parts, 1).unwrap_or_else(|| "222222222222".into());
    let req = RequestContext {
        caller: match caller.strip_prefix("svc:") {
            Some(service) => Caller::Service(service.to_owned()),
            None => Caller::Account(caller),
        },
        action: field(&parts, 2).unwrap_or_else(|| "lambda:InvokeFunction".into()),
        resource: field(&parts, 3).unwrap_or_else(|| "arn:aws:lambda:us-east-1:111111111111:function:f".into()),
        source_arn: field(&parts, 4),
        source_account: field(&parts, 5),
        event_source_token: field(&parts, 6),
    };
    let all = allows(&statements, &req);
    assert_eq!(all, allows(&statements, &req), "evaluation is not deterministic");
    let any_one = statements.iter().any(|s| allows(std::slice::from_ref(s), &req));
    assert_eq!(all, any_one, "a policy must allow exactly when one of its statements does");
    for n in 0..statements.len() {
        assert!(!allows(&statements[..n], &req) || all, "adding statements removed access");
    }
    for s in &statements {
        assert!(glob_match(&s.resource, &s.resource));
        assert!(glob_match("*", &s.resource));
    }
    assert!(glob_match(&req.resource, &req.resource));
});
