//! Shared by the SigV4 targets: a request written as text, the way the seeds are.
//!
//! Line 1 is the request target (`/path?query`), every further line a `name: value` header;
//! lines that are not valid HTTP are dropped, as a server would never hand them over.

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

pub fn request_from_text(data: &[u8]) -> Option<(Uri, HeaderMap)> {
    let mut lines = data.split(|b| *b == b'\n');
    let uri = Uri::try_from(lines.next()?).ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        headers.append(name, value);
    }
    Some((uri, headers))
}
