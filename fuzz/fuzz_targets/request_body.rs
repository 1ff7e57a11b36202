//! Every JSON request body: the first byte picks the operation
//! (`lamina_frontend::fuzzing::OPERATIONS`), the rest is the body, parsed into that operation's
//! request type and run through its checks. Invariants: no panic, and a refusal is always a
//! client error (4xx), never a 500.
#![no_main]

use lamina_frontend::fuzzing::request_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&op, body)) = data.split_first() else { return };
    if let Err(err) = request_body(op, body) {
        assert!(err.status().is_client_error(), "operation {op}: {} {err}", err.status());
    }
});
