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

/// The cache; one per [`Metadata`](crate::Metadata) handle family (shared by its clones), and one
/// per [`MetadataClient::Grpc`](crate::MetadataClient::Grpc) on the caller's side of the wire.
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
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The invoke target for `key`, from the cache or from `load` (whose answer is then cached).
    pub(crate) async fn target<E>(
        &self,
        key: (&str, &str, &str),
        load: impl Future<Output = Result<Option<InvokeTarget>, E>>,
    ) -> Result<Option<InvokeTarget>, E> {
        self.get_or_load(&self.targets, key, load).await
    }

    /// The alias for `key`, from the cache or from `load`.
    pub(crate) async fn alias<E>(
        &self,
        key: (&str, &str, &str),
        load: impl Future<Output = Result<Option<AliasRow>, E>>,
    ) -> Result<Option<AliasRow>, E> {
        self.get_or_load(&self.aliases, key, load).await
    }

    async fn get_or_load<T: Clone, E>(
        &self,
        map: &Map<T>,
        key: (&str, &str, &str),
        load: impl Future<Output = Result<Option<T>, E>>,
    ) -> Result<Option<T>, E> {
        let generation = self.generation();
        if let Some(hit) = map.get(&key, generation) {
            return Ok(hit);
        }
        let found = load.await?;
        map.put(&key, generation, found.clone());
        Ok(found)
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

    async fn lookup(cache: &ReadCache, loaded: Option<AliasRow>) -> Option<String> {
        let found = cache.alias(("a", "f", "live"), async { Ok::<_, ()>(loaded) }).await;
        found.expect("infallible").map(|a| a.function_version)
    }

    #[tokio::test]
    async fn a_write_makes_entries_read_before_it_stale() {
        let cache = ReadCache::new();
        assert_eq!(lookup(&cache, Some(alias("1"))).await, Some("1".into()));
        assert_eq!(lookup(&cache, Some(alias("2"))).await, Some("1".into()), "served from the cache");
        drop(cache.writing());
        assert_eq!(lookup(&cache, Some(alias("2"))).await, Some("2".into()), "entry survived a write");
    }

    #[tokio::test]
    async fn a_value_read_while_a_write_ran_is_not_trusted() {
        let cache = ReadCache::new();
        let stale = cache
            .alias(("a", "f", "live"), async {
                drop(cache.writing()); // the write commits while the read is in flight
                Ok::<_, ()>(Some(alias("1")))
            })
            .await;
        assert_eq!(stale.expect("infallible").map(|a| a.function_version), Some("1".into()));
        assert_eq!(lookup(&cache, Some(alias("2"))).await, Some("2".into()));
    }

    #[tokio::test]
    async fn absence_is_cached_too() {
        let cache = ReadCache::new();
        assert_eq!(lookup(&cache, None).await, None);
        assert_eq!(lookup(&cache, Some(alias("1"))).await, None);
    }
}
