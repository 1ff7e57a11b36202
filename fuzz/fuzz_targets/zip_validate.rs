//! Deployment-package validation (`code-storage`): any bytes as a zip.
//! Invariants: no panic, bounded work; an accepted zip really unzips within the limit, every entry
//! with a CRC-checked body and a path that stays inside the package root.
#![no_main]

use std::io::{Cursor, Read};

use lamina_code_storage::{ZipLimits, validate_zip};
use libfuzzer_sys::fuzz_target;

const LIMITS: ZipLimits = ZipLimits { max_zipped: 1 << 20, max_unzipped: 1 << 20, max_entries: 1000 };

fuzz_target!(|data: &[u8]| {
    if validate_zip(data, &LIMITS).is_err() {
        return;
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).expect("an accepted zip opens");
    assert!(archive.len() <= LIMITS.max_entries);
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("an accepted zip's entries open");
        assert!(entry.enclosed_name().is_some(), "accepted an unsafe path: {:?}", entry.name());
        let mut out = Vec::new();
        entry.read_to_end(&mut out).expect("an accepted zip's entries unzip");
        total += out.len() as u64;
    }
    assert!(total <= LIMITS.max_unzipped, "accepted {total} unzipped bytes");
});
