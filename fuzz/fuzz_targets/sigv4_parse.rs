//! SigV4 claim parsing (Authorization header and presigned query) and the scope/time checks.
//! Invariants: no panic for any header or query; a parsed claim's credential parts hold no `/`;
//! `check_scope` succeeds or fails the same way when asked twice.
#![no_main]

#[path = "common.rs"]
mod common;

use chrono::{TimeZone, Utc};
use lamina_frontend::auth::sigv4::{check_scope, parse_claim};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((uri, headers)) = common::request_from_text(data) else { return };
    let Ok(claim) = parse_claim(&headers, &uri) else { return };
    for part in [&claim.access_key_id, &claim.date, &claim.region, &claim.service] {
        assert!(!part.contains('/'), "credential part {part:?} holds a '/'");
    }
    assert!(!claim.signed_headers.is_empty());
    // Our clock at a fixed instant, and at the request's own time (so the later checks run too).
    let fixed = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date");
    let own = chrono::NaiveDateTime::parse_from_str(&claim.amz_date, "%Y%m%dT%H%M%SZ").map(|t| t.and_utc());
    for now in [Some(fixed), own.ok()].into_iter().flatten() {
        let first = check_scope(&claim, &claim.region, &claim.service, now).map_err(|e| e.to_string());
        let again = check_scope(&claim, &claim.region, &claim.service, now).map_err(|e| e.to_string());
        assert_eq!(first, again);
        let _ = check_scope(&claim, "us-east-1", "lambda", now);
    }
});
