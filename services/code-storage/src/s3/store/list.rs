//! Listing: a directory scan plus a sort per request (O(objects × versions) file reads; no index).

use anyhow::Context as _;

use super::versions::{VersionRecord, read_versions};
use super::{S3Store, StoreResult};

#[derive(Debug, Clone, Default)]
pub(crate) struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Entries (keys or common prefixes) at or before this are skipped.
    pub marker: Option<String>,
    /// For version listings: with `marker`, versions of that key up to and including this one are skipped.
    pub version_marker: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Default)]
pub(crate) struct ListPage {
    /// The latest version of each listed key (never a delete marker).
    pub objects: Vec<VersionRecord>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or prefix returned, to continue after.
    pub last: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct VersionsPage {
    /// (record, is_latest), keys ascending, versions newest first.
    pub versions: Vec<(VersionRecord, bool)>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_marker: Option<String>,
}

enum Entry {
    Key(String, Vec<VersionRecord>),
    Prefix(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Key(k, _) | Entry::Prefix(k) => k,
        }
    }
}

impl S3Store {
    /// ListObjects(V2): latest versions and common prefixes in key order.
    pub(crate) async fn list_objects(&self, bucket: &str, params: &ListParams) -> StoreResult<ListPage> {
        let entries = self.entries(bucket, params, false).await?;
        let mut page = ListPage::default();
        let mut count = 0;
        for entry in entries {
            if params.marker.as_deref().is_some_and(|m| entry.name() <= m) {
                continue;
            }
            if count == params.max_keys {
                page.is_truncated = true;
                break;
            }
            count += 1;
            page.last = Some(entry.name().to_owned());
            match entry {
                Entry::Key(_, mut versions) => page.objects.push(versions.remove(0)),
                Entry::Prefix(p) => page.common_prefixes.push(p),
            }
        }
        Ok(page)
    }

    /// ListObjectVersions: every version and delete marker.
    pub(crate) async fn list_versions(&self, bucket: &str, params: &ListParams) -> StoreResult<VersionsPage> {
        let entries = self.entries(bucket, params, true).await?;
        let mut page = VersionsPage::default();
        let mut count = 0;
        'entries: for entry in entries {
            let name = entry.name().to_owned();
            if let Some(marker) = params.marker.as_deref() {
                let skip_whole = match params.version_marker.as_deref() {
                    Some(_) => name.as_str() < marker,
                    None => name.as_str() <= marker,
                };
                if skip_whole {
                    continue;
                }
            }
            match entry {
                Entry::Prefix(p) => {
                    if count == params.max_keys {
                        page.is_truncated = true;
                        break;
                    }
                    count += 1;
                    page.next_key_marker = Some(p.clone());
                    page.next_version_marker = None;
                    page.common_prefixes.push(p);
                }
                Entry::Key(key, versions) => {
                    let mut skipping =
                        params.marker.as_deref() == Some(key.as_str()) && params.version_marker.is_some();
                    for (i, v) in versions.into_iter().enumerate() {
                        if skipping {
                            if Some(v.version_id.as_str()) == params.version_marker.as_deref() {
                                skipping = false;
                            }
                            continue;
                        }
                        if count == params.max_keys {
                            page.is_truncated = true;
                            break 'entries;
                        }
                        count += 1;
                        page.next_key_marker = Some(key.clone());
                        page.next_version_marker = Some(v.version_id.clone());
                        page.versions.push((v, i == 0));
                    }
                }
            }
        }
        if !page.is_truncated {
            page.next_key_marker = None;
            page.next_version_marker = None;
        }
        Ok(page)
    }

    /// Keys under the prefix (with their versions, newest first), grouped by the delimiter, in order.
    /// Keys whose latest version is a delete marker count only when `all_versions`.
    async fn entries(&self, bucket: &str, params: &ListParams, all_versions: bool) -> StoreResult<Vec<Entry>> {
        let objects = self.bucket_dir(bucket).join("objects");
        let mut dir = tokio::fs::read_dir(&objects).await.context("list objects")?;
        let mut keys = Vec::new();
        while let Some(entry) = dir.next_entry().await.context("list objects")? {
            let Ok(raw) = tokio::fs::read(entry.path().join("key")).await else { continue };
            let Ok(key) = String::from_utf8(raw) else { continue };
            if key.starts_with(&params.prefix) {
                keys.push((key, entry.path()));
            }
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<Entry> = Vec::new();
        for (key, path) in keys {
            let group = params.delimiter.as_deref().filter(|d| !d.is_empty()).and_then(|d| {
                let rest = &key[params.prefix.len()..];
                rest.find(d).map(|pos| format!("{}{}", params.prefix, &rest[..pos + d.len()]))
            });
            if let Some(group) = &group
                && matches!(out.last(), Some(Entry::Prefix(p)) if p == group)
            {
                continue;
            }
            let versions = read_versions(&path).await?;
            let visible = match versions.first() {
                None => false,
                Some(latest) => all_versions || !latest.delete_marker,
            };
            if !visible {
                continue;
            }
            out.push(match group {
                Some(group) => Entry::Prefix(group),
                None => Entry::Key(key, versions),
            });
        }
        Ok(out)
    }
}
