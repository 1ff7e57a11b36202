//! What makes a deployment package acceptable.

use std::io::{Cursor, Read};

use lamina_common::{ApiError, ApiResult};

/// Size and shape limits for a package (semantics LIM).
#[derive(Debug, Clone)]
pub struct ZipLimits {
    /// Largest zip accepted in a request, in bytes (50 MB).
    pub max_zipped: u64,
    /// Largest total of unzipped entries, in bytes (250 MB).
    pub max_unzipped: u64,
    /// Most entries one zip may hold.
    pub max_entries: usize,
}

impl Default for ZipLimits {
    fn default() -> Self {
        Self { max_zipped: 50 * 1024 * 1024, max_unzipped: 262_144_000, max_entries: 20_000 }
    }
}

fn unreadable() -> ApiError {
    ApiError::InvalidParameterValue(
        "Could not unzip uploaded file. Please check your file, then try to upload again.".into(),
    )
}

/// Checks a zip fully: readable, every entry decompresses with a good CRC, no path escapes the root,
/// and the real (not declared) unzipped size stays under the limit.
pub fn validate_zip(zip: &[u8], limits: &ZipLimits) -> ApiResult<()> {
    if zip.len() as u64 > limits.max_zipped {
        return Err(ApiError::RequestTooLarge(format!("Zipped size must be smaller than {} bytes", limits.max_zipped)));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(|_| unreadable())?;
    if archive.len() > limits.max_entries {
        return Err(ApiError::InvalidParameterValue(format!(
            "Zip file has too many entries: {} (at most {})",
            archive.len(),
            limits.max_entries
        )));
    }
    let too_big =
        || ApiError::InvalidParameterValue(format!("Unzipped size must be smaller than {} bytes", limits.max_unzipped));
    let mut total: u64 = 0;
    let mut sink = vec![0u8; 64 * 1024];
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| unreadable())?;
        if entry.enclosed_name().is_none() {
            return Err(ApiError::InvalidParameterValue(format!("Zip entry has an unsafe path: {}", entry.name())));
        }
        total = total.saturating_add(entry.size());
        if total > limits.max_unzipped {
            return Err(too_big());
        }
        // Declared sizes can lie (zip bombs): count what really comes out.
        let mut actual: u64 = 0;
        loop {
            let n = entry.read(&mut sink).map_err(|_| unreadable())?;
            if n == 0 {
                break;
            }
            actual += n as u64;
            if total - entry.size() + actual > limits.max_unzipped {
                return Err(too_big());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn accepts_a_plain_zip() {
        validate_zip(&zip_of(&[("index.py", b"def h(e, c): return 1\n")]), &ZipLimits::default()).expect("valid");
    }

    #[test]
    fn rejects_garbage_slip_and_bombs() {
        let limits = ZipLimits { max_unzipped: 1000, ..ZipLimits::default() };
        let err = validate_zip(b"not a zip", &limits).expect_err("garbage");
        assert_eq!(err.error_type(), "InvalidParameterValueException");
        let err = validate_zip(&zip_of(&[("../evil", b"x")]), &limits).expect_err("slip");
        assert!(err.to_string().contains("unsafe path"), "{err}");
        let err = validate_zip(&zip_of(&[("/etc/passwd", b"x")]), &limits).expect_err("abs");
        assert!(err.to_string().contains("unsafe path"), "{err}");
        let err = validate_zip(&zip_of(&[("big", &[0u8; 5000])]), &limits).expect_err("bomb");
        assert!(err.to_string().contains("Unzipped size"), "{err}");
    }
}
