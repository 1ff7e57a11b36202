//! Function names, ARNs, qualifiers and account ids.
//!
//! Input: the FunctionName member, optionally followed by `\n` and a `Qualifier` parameter.
//! Invariants: what parses prints back to a string that parses to the same thing; every part of a
//! parsed FunctionName is itself valid on its own; combining with a Qualifier never panics.
#![no_main]

use lamina_common::names::{FunctionRef, function_arn, qualified_arn, validate_qualifier};
use lamina_common::{AccountId, FunctionName, Qualifier};
use libfuzzer_sys::fuzz_target;

fn reprint(r: &FunctionRef) -> String {
    let mut out = match (&r.region, &r.account_id) {
        (Some(region), Some(account)) => function_arn(region, account, &r.name),
        (Some(region), None) => format!("arn:aws:lambda:{region}:function:{}", r.name),
        (None, Some(account)) => format!("{account}:function:{}", r.name),
        // Not the bare name: `function:P` is the function `P`, never alias `P` of `function`.
        (None, None) => format!("function:{}", r.name),
    };
    if let Some(q) = &r.qualifier {
        out = format!("{out}:{q}");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (raw, param) = match text.split_once('\n') {
        Some((raw, param)) => (raw, Some(param)),
        None => (text, None),
    };

    if let Ok(r) = FunctionRef::parse(raw, "functionName") {
        let reprinted = reprint(&r);
        // The canonical form may add `function:` and so outgrow the 140 characters a member may have.
        if reprinted.chars().count() <= 140 {
            let again = FunctionRef::parse(&reprinted, "functionName").expect("a reprinted FunctionName parses");
            assert_eq!(again, r);
        }
        let name = FunctionName::parse(&r.name).expect("the name part is a valid bare name");
        assert_eq!(name.to_string(), r.name);
        if let Some(account) = &r.account_id {
            assert_eq!(AccountId::parse(account).expect("the account part is an account id").as_str(), account);
        }
        if let (Some(region), Some(account)) = (&r.region, &r.account_id) {
            let arn = match &r.qualifier {
                Some(q) => qualified_arn(region, account, &r.name, q),
                None => function_arn(region, account, &r.name),
            };
            if arn.chars().count() <= 140 {
                assert_eq!(FunctionRef::parse(&arn, "functionName").expect("built ARN parses"), r);
            }
        }
        if let Ok(Some(q)) = r.effective_qualifier(param) {
            // Whatever the two agree on is what a handler goes on with.
            let _ = Qualifier::parse(&q);
        }
    }

    for candidate in [Some(raw), param].into_iter().flatten() {
        if let Ok(q) = Qualifier::parse(candidate) {
            assert!(validate_qualifier(candidate).is_ok());
            let printed = q.to_string();
            assert_eq!(Qualifier::parse(&printed).expect("a printed qualifier parses"), q);
            match &q {
                Qualifier::Latest | Qualifier::Version(_) => assert_eq!(q.version(), Some(printed)),
                Qualifier::Alias(a) => assert_eq!((q.version(), a.as_str()), (None, candidate)),
            }
        }
        if let Ok(a) = AccountId::parse(candidate) {
            assert_eq!(a.to_string(), candidate);
        }
        if let Ok(n) = FunctionName::parse(candidate) {
            assert_eq!(FunctionRef::parse(candidate, "functionName").expect("a bare name is a FunctionName").name, n.as_str());
        }
    }
});
