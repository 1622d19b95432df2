//! Redelivery filter: remembers message ids being handled and handled recently.
//!
//! The gateway redelivers robot messages 15–60 s later when it thinks the first delivery
//! was lost, and EVENTs may come twice even when ACKed. An id is "in flight" from
//! [`Dedupe::begin`] until [`Dedupe::finish`]; a successful finish keeps it for at least the
//! window (and at most twice the window), a failed one forgets it so a redelivery can retry.
//!
//! Memory: the window is minutes long, so at thousands of messages a second it holds
//! hundreds of thousands of ids. Instead of the id strings it keeps a 64-bit keyed
//! fingerprint, in two generations of plain sets: ids finished since the last turn, and ids
//! of the turn before. Each window the older generation is dropped whole, so there is no
//! per-id timestamp and no sweep: 9 bytes a slot, and a set only ever doubles one
//! generation's worth. Two ids share a fingerprint with probability 2⁻⁶⁴ per pair: with a
//! million ids in the window, one false "duplicate" every 1.8·10¹³ messages. The SipHash key
//! is random per process, so ids cannot be chosen from outside to collide.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// Passes a fingerprint through instead of hashing it again: it is already a keyed hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 fingerprints are hashed here, through `write_u64`; fold anything else anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Fingerprints = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// Not thread-safe by itself; the client keeps it behind a mutex (operations are O(1)
/// amortised, so the lock is held only briefly).
pub struct Dedupe {
    window: Duration,
    key: RandomState,
    in_flight: Fingerprints,
    /// Finished since `turned`.
    current: Fingerprints,
    /// Finished in the window before `turned`.
    previous: Fingerprints,
    turned: Instant,
}

impl std::fmt::Debug for Dedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedupe")
            .field("window", &self.window)
            .field("ids", &self.len())
            .finish()
    }
}

impl Dedupe {
    pub fn new(window: Duration) -> Dedupe {
        Dedupe {
            window,
            key: RandomState::new(),
            in_flight: Fingerprints::default(),
            current: Fingerprints::default(),
            previous: Fingerprints::default(),
            turned: Instant::now(),
        }
    }

    fn fingerprint(&self, id: &str) -> u64 {
        self.key.hash_one(id)
    }

    /// Moves the generations on by the windows that have passed since the last turn: an id
    /// finished in the current generation is then at least one window old when it goes.
    fn turn(&mut self) {
        let now = Instant::now();
        let since = now.saturating_duration_since(self.turned);
        if since < self.window {
            return;
        }
        if since >= self.window.saturating_mul(2) {
            self.previous = Fingerprints::default();
        } else {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current = Fingerprints::default();
        self.turned = now;
    }

    /// `true` if `id` is new and now in flight; `false` for a duplicate.
    pub fn begin(&mut self, id: &str) -> bool {
        self.turn();
        let fp = self.fingerprint(id);
        if self.current.contains(&fp) || self.previous.contains(&fp) {
            return false;
        }
        self.in_flight.insert(fp)
    }

    /// Ends the handling of `id`: remembered for the window if it succeeded, forgotten if not.
    pub fn finish(&mut self, id: &str, ok: bool) {
        self.turn();
        let fp = self.fingerprint(id);
        self.in_flight.remove(&fp);
        if ok {
            self.current.insert(fp);
        } else {
            // A retry after a failure must get through, whichever generation held an
            // earlier success of the same id.
            self.current.remove(&fp);
            self.previous.remove(&fp);
        }
    }

    /// Ids remembered now (in flight, or finished within the last one or two windows).
    pub fn len(&self) -> usize {
        self.in_flight.len() + self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handles `m0`..`m{n-1}` successfully, one each `gap` (a zero gap is a burst).
    async fn handle_all(d: &mut Dedupe, n: u32, gap: Duration) {
        for i in 0..n {
            let id = format!("m{i}");
            assert!(d.begin(&id), "{id} is new");
            d.finish(&id, true);
            tokio::time::advance(gap).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_while_in_flight_and_after_done_is_dropped() {
        let mut d = Dedupe::new(Duration::from_secs(300));
        assert!(d.begin("m1"));
        assert!(!d.begin("m1"), "in flight");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(!d.begin("m1"), "in flight ids never expire");
        d.finish("m1", true);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(!d.begin("m1"), "done within the window");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!d.begin("m1"), "kept into the second window");
        tokio::time::advance(Duration::from_secs(300)).await;
        assert!(d.begin("m1"), "two windows passed");
    }

    #[tokio::test(start_paused = true)]
    async fn failure_allows_retry() {
        let mut d = Dedupe::new(Duration::from_secs(300));
        assert!(d.begin("m1"));
        d.finish("m1", false);
        assert!(d.begin("m1"));
        d.finish("m1", true);
        assert!(!d.begin("m1"));
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_forgets_old_ids_only() {
        let mut d = Dedupe::new(Duration::from_secs(60));
        handle_all(&mut d, 200, Duration::from_secs(1)).await;
        // Now is 200 s: m0..m79 finished 121 s ago or more, m141..m199 less than 60 s ago.
        assert!(d.begin("m0"));
        assert!(d.begin("m79"));
        assert!(!d.begin("m141"));
        assert!(!d.begin("m199"));
        assert!(d.len() < 130, "{} ids remembered", d.len());
    }

    #[tokio::test(start_paused = true)]
    async fn refinished_id_keeps_its_newer_expiry() {
        let mut d = Dedupe::new(Duration::from_secs(60));
        assert!(d.begin("m"));
        d.finish("m", true);
        tokio::time::advance(Duration::from_secs(121)).await;
        assert!(d.begin("m"));
        tokio::time::advance(Duration::from_secs(30)).await;
        d.finish("m", true);
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(!d.begin("m"), "second finish was 40 s ago");
    }

    #[tokio::test(start_paused = true)]
    async fn old_generations_go_so_the_sets_stay_bounded() {
        let mut d = Dedupe::new(Duration::from_secs(10));
        handle_all(&mut d, 10_000, Duration::from_secs(1)).await;
        assert!((10..=20).contains(&d.len()), "{} ids remembered", d.len());
        let slots = d.current.capacity() + d.previous.capacity() + d.in_flight.capacity();
        assert!(slots <= 96, "{slots} slots");
        assert!(!d.begin("m9999"));
        assert!(
            d.begin("m9980"),
            "finished 20 s ago: two windows have passed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn memory_comes_back_after_a_burst() {
        let mut d = Dedupe::new(Duration::from_secs(10));
        handle_all(&mut d, 50_000, Duration::ZERO).await;
        assert!(!d.begin("m0"));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(d.begin("m0"), "the burst is two windows old");
        let slots = d.current.capacity() + d.previous.capacity();
        assert!(slots < 1000, "{slots} slots kept after the burst went");
    }
}
