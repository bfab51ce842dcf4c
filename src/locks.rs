//! One async lock per key (a call, a conversation), each guarding that key's stored record.
//! A webhook holds its key's lock from reading the record to answering, so concurrent retries
//! and callbacks of one call or conversation run one at a time, while different keys never
//! wait on each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OwnedMutexGuard;

type Cell<V> = Arc<tokio::sync::Mutex<Option<V>>>;

/// The lock table. `None` inside a lock means no record (yet, or any more).
pub struct KeyedLocks<V> {
    table: Mutex<HashMap<String, Cell<V>>>,
}

impl<V> KeyedLocks<V> {
    /// A table holding `records` (as loaded at start).
    pub fn new(records: impl IntoIterator<Item = (String, V)>) -> KeyedLocks<V> {
        let table =
            records.into_iter().map(|(key, value)| (key, Arc::new(tokio::sync::Mutex::new(Some(value)))));
        KeyedLocks { table: Mutex::new(table.collect()) }
    }

    /// The record of `key`, locked until the guard is dropped.
    pub async fn lock(&self, key: &str) -> KeyedGuard<'_, V> {
        let cell = self.table().entry(key.to_owned()).or_default().clone();
        KeyedGuard { locks: self, key: key.to_owned(), guard: Some(cell.lock_owned().await) }
    }

    /// The keys that have a lock now (records, and keys being worked on).
    pub fn keys(&self) -> Vec<String> {
        self.table().keys().cloned().collect()
    }

    /// How many keys have a lock now.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.table().is_empty()
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Cell<V>>> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A key's record, locked. When it is dropped holding no record and nobody else waits for the
/// key, the key leaves the table: keys without a record cost nothing between two requests.
pub struct KeyedGuard<'a, V> {
    locks: &'a KeyedLocks<V>,
    key: String,
    guard: Option<OwnedMutexGuard<Option<V>>>,
}

impl<V> std::ops::Deref for KeyedGuard<'_, V> {
    type Target = Option<V>;

    fn deref(&self) -> &Option<V> {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<V> std::ops::DerefMut for KeyedGuard<'_, V> {
    fn deref_mut(&mut self) -> &mut Option<V> {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<V> Drop for KeyedGuard<'_, V> {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else { return };
        if guard.is_some() {
            return;
        }
        // Under the table's lock no new holder can appear; the table and this guard are the
        // only holders when nobody else waits.
        let mut table = self.locks.table();
        if Arc::strong_count(OwnedMutexGuard::mutex(&guard)) <= 2 {
            table.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;

    use super::*;

    #[tokio::test]
    async fn keys_without_a_record_leave_the_table_unless_someone_waits() {
        let locks: KeyedLocks<u32> = KeyedLocks::new([("kept".to_owned(), 1)]);
        drop(locks.lock("passing").await);
        assert_eq!(locks.keys(), ["kept"]);

        // A second request for "busy" waits while the first holds it without a record.
        let first = locks.lock("busy").await;
        let mut second = Box::pin(locks.lock("busy"));
        let polled = std::future::poll_fn(|cx| Poll::Ready(second.as_mut().poll(cx).is_pending())).await;
        assert!(polled, "the second request waits");
        drop(first);
        assert!(locks.keys().contains(&"busy".to_owned()), "kept for the waiter");

        let mut second = second.await;
        *second = Some(7);
        drop(second);
        assert_eq!(*locks.lock("busy").await, Some(7), "a stored record stays");
        *locks.lock("busy").await = None;
        assert_eq!(locks.keys(), ["kept"]);
    }
}
