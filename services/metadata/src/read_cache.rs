//! An in-process cache of what every Invoke reads (the invoke target and the alias), so a warm
//! invocation costs no database round trip: on SQLite that round trip is a hop to sqlx's worker
//! thread and back, which on a busy host cost more CPU than the rest of the invoke path.
//!
//! Every write made through [`Metadata`](crate::Metadata) holds a [`WriteGuard`] whose drop (after
//! the write committed, on success or failure) moves the generation on, which makes every entry
//! stale at once. Entries also expire after [`TTL`], which bounds how long a write made by another
//! process sharing the database (Postgres) can go unseen.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{AliasRow, InvokeTarget};

/// Longest an entry is trusted without a local write invalidating it.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries kept before the map is cleared (a bound, not a tuning knob).
const MAX_ENTRIES: usize = 10_000;

type Key = (String, String, String);

struct Entry<T> {
    generation: u64,
    at: Instant,
    value: Option<T>,
}

struct Map<T>(RwLock<HashMap<Key, Entry<T>>>);

impl<T: Clone> Map<T> {
    fn new() -> Self {
        Self(RwLock::new(HashMap::new()))
    }

    fn get(&self, key: &(&str, &str, &str), generation: u64) -> Option<Option<T>> {
        let map = self.0.read().expect("read cache poisoned");
        // A borrowed lookup would need a custom key type; three short strings are cheap to build.
        let entry = map.get(&(key.0.to_owned(), key.1.to_owned(), key.2.to_owned()))?;
        (entry.generation == generation && entry.at.elapsed() < TTL).then(|| entry.value.clone())
    }

    fn put(&self, key: &(&str, &str, &str), generation: u64, value: Option<T>) {
        let mut map = self.0.write().expect("read cache poisoned");
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            (key.0.to_owned(), key.1.to_owned(), key.2.to_owned()),
            Entry { generation, at: Instant::now(), value },
        );
    }
}

/// The cache; one per [`Metadata`](crate::Metadata) handle family (shared by its clones).
pub(crate) struct ReadCache {
    generation: AtomicU64,
    targets: Map<InvokeTarget>,
    aliases: Map<AliasRow>,
}

impl ReadCache {
    pub(crate) fn new() -> Self {
        Self { generation: AtomicU64::new(0), targets: Map::new(), aliases: Map::new() }
    }

    /// The generation to tag a value read from the database *after* this call.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn target(&self, key: &(&str, &str, &str)) -> Option<Option<InvokeTarget>> {
        self.targets.get(key, self.generation())
    }

    pub(crate) fn put_target(&self, key: &(&str, &str, &str), generation: u64, value: Option<InvokeTarget>) {
        self.targets.put(key, generation, value);
    }

    pub(crate) fn alias(&self, key: &(&str, &str, &str)) -> Option<Option<AliasRow>> {
        self.aliases.get(key, self.generation())
    }

    pub(crate) fn put_alias(&self, key: &(&str, &str, &str), generation: u64, value: Option<AliasRow>) {
        self.aliases.put(key, generation, value);
    }

    /// Held across a write; invalidates everything when dropped.
    pub(crate) fn writing(&self) -> WriteGuard<'_> {
        WriteGuard(self)
    }
}

/// See [`ReadCache::writing`].
pub(crate) struct WriteGuard<'a>(&'a ReadCache);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(version: &str) -> AliasRow {
        AliasRow {
            account_id: "a".into(),
            function_name: "f".into(),
            alias_name: "live".into(),
            function_version: version.into(),
            description: String::new(),
            routing_config: None,
            revision_id: "r".into(),
        }
    }

    #[test]
    fn a_write_makes_entries_read_before_it_stale() {
        let cache = ReadCache::new();
        let key = ("a", "f", "live");
        let generation = cache.generation();
        cache.put_alias(&key, generation, Some(alias("1")));
        assert_eq!(cache.alias(&key).flatten().map(|a| a.function_version), Some("1".into()));
        drop(cache.writing());
        assert!(cache.alias(&key).is_none(), "entry survived a write");
    }

    #[test]
    fn a_value_read_while_a_write_ran_is_not_trusted() {
        let cache = ReadCache::new();
        let key = ("a", "f", "live");
        let before = cache.generation();
        drop(cache.writing()); // the write commits between the read's start and its put
        cache.put_alias(&key, before, Some(alias("1")));
        assert!(cache.alias(&key).is_none());
    }

    #[test]
    fn absence_is_cached_too() {
        let cache = ReadCache::new();
        let key = ("a", "f", "gone");
        cache.put_alias(&key, cache.generation(), None);
        assert!(matches!(cache.alias(&key), Some(None)));
    }
}
