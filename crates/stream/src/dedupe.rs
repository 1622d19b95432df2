//! Redelivery filter: remembers message ids being handled and handled recently.
//!
//! The gateway redelivers robot messages 15–60 s later when it thinks the first delivery
//! was lost, and EVENTs may come twice even when ACKed. An id is "in flight" from
//! [`Dedupe::begin`] until [`Dedupe::finish`]; a successful finish keeps it for the window,
//! a failed one forgets it so a redelivery can retry.
//!
//! Memory: the window is minutes long, so at thousands of messages a second it holds
//! hundreds of thousands of ids. Instead of the id strings it keeps a 128-bit keyed
//! fingerprint and a millisecond timestamp, 24 bytes per id in one map and no expiry queue:
//! an expired entry counts as absent at once and is swept out in bulk when the map would
//! otherwise grow, and at least once per window. Two different ids share a fingerprint with probability about
//! n²/2¹²⁹ (n = ids in the window; ~10⁻²⁵ for ten million), which is far below any other
//! failure the client can have; the SipHash keys are random per process, so ids cannot be
//! chosen from outside to collide.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// 128-bit fingerprint of a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fp(u64, u64);

impl Hash for Fp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: one half is enough to pick a bucket.
        state.write_u64(self.0);
    }
}

/// Passes a fingerprint half through instead of hashing it again.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `Fp` is hashed here, and it uses `write_u64`; fold anything else anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Map value for an id still being handled; a done id stores its finish time + 1 (ms).
const IN_FLIGHT: u64 = 0;

/// Not thread-safe by itself; the client keeps it behind a mutex (operations are O(1)
/// amortised, so the lock is held only briefly).
pub struct Dedupe {
    window: Duration,
    /// Timestamps are milliseconds since this instant.
    origin: Instant,
    keys: (RandomState, RandomState),
    ids: HashMap<Fp, u64, BuildHasherDefault<PassThrough>>,
    /// Stamp of the last sweep of expired entries.
    swept: u64,
}

impl std::fmt::Debug for Dedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedupe")
            .field("window", &self.window)
            .field("ids", &self.ids.len())
            .finish()
    }
}

impl Dedupe {
    pub fn new(window: Duration) -> Dedupe {
        Dedupe {
            window,
            origin: Instant::now(),
            keys: (RandomState::new(), RandomState::new()),
            ids: HashMap::default(),
            swept: 0,
        }
    }

    fn fingerprint(&self, id: &str) -> Fp {
        Fp(self.keys.0.hash_one(id), self.keys.1.hash_one(id))
    }

    /// Stamp of `now`: milliseconds since `origin`, plus one so it never equals IN_FLIGHT.
    fn stamp(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.origin).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1
    }

    fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a map value still blocks its id at stamp `now`.
    fn live(&self, value: u64, now: u64) -> bool {
        value == IN_FLIGHT || value.saturating_add(self.window_ms()) > now
    }

    /// `true` if `id` is new and now in flight; `false` for a duplicate.
    pub fn begin(&mut self, id: &str) -> bool {
        let now = self.stamp(Instant::now());
        self.sweep_if_due(now);
        let fp = self.fingerprint(id);
        if let Some(&value) = self.ids.get(&fp) {
            if self.live(value, now) {
                return false;
            }
        }
        self.ids.insert(fp, IN_FLIGHT);
        true
    }

    /// Ends the handling of `id`: remembered for the window if it succeeded, forgotten if not.
    pub fn finish(&mut self, id: &str, ok: bool) {
        let now = self.stamp(Instant::now());
        let fp = self.fingerprint(id);
        // No sweep here: this only updates or removes the entry `begin` made.
        if ok {
            self.ids.insert(fp, now);
        } else {
            self.ids.remove(&fp);
        }
    }

    /// Ids currently remembered (in flight or done within the window).
    pub fn len(&self) -> usize {
        let now = self.stamp(Instant::now());
        self.ids.values().filter(|&&v| self.live(v, now)).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired entries before the map would grow (so it only grows for live ids) and
    /// once per window (so memory comes back after a burst). Each sweep is O(map size) and
    /// leaves the map at most half full, so it follows at least that many inserts or a whole
    /// window: amortised O(1).
    fn sweep_if_due(&mut self, now: u64) {
        let full = self.ids.len() >= self.ids.capacity();
        let stale = now.saturating_sub(self.swept) >= self.window_ms();
        if !full && !stale {
            return;
        }
        self.swept = now;
        let window = self.window_ms();
        self.ids
            .retain(|_, v| *v == IN_FLIGHT || v.saturating_add(window) > now);
        let (len, cap) = (self.ids.len(), self.ids.capacity());
        if cap > 4096 && len < cap / 4 {
            self.ids.shrink_to(len * 2);
        } else if len * 2 > cap {
            // Mostly live: grow now, so the next sweep is at least `len` inserts away.
            self.ids.reserve(len.max(16));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(d.begin("m1"), "window passed");
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
        for i in 0..100 {
            let id = format!("m{i}");
            assert!(d.begin(&id));
            d.finish(&id, true);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // m0..m40 finished more than 60 s ago.
        assert!(d.begin("m0"));
        assert!(d.begin("m40"));
        assert!(!d.begin("m41"));
        assert!(!d.begin("m99"));
        assert!(d.len() < 100);
    }

    #[tokio::test(start_paused = true)]
    async fn refinished_id_keeps_its_newer_expiry() {
        let mut d = Dedupe::new(Duration::from_secs(60));
        assert!(d.begin("m"));
        d.finish("m", true);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(d.begin("m"));
        tokio::time::advance(Duration::from_secs(30)).await;
        d.finish("m", true);
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(!d.begin("m"), "second finish was 40 s ago");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_swept_so_the_map_stays_bounded() {
        let mut d = Dedupe::new(Duration::from_secs(10));
        for i in 0..10_000 {
            let id = format!("m{i}");
            assert!(d.begin(&id));
            d.finish(&id, true);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(d.len(), 9, "only ids finished less than 10 s ago are live");
        assert!(d.ids.len() <= 64, "map holds {} entries", d.ids.len());
        assert!(d.ids.capacity() <= 128, "capacity {}", d.ids.capacity());
        assert!(!d.begin("m9999"));
        assert!(d.begin("m9990"), "finished 10 s ago: the window has passed");
    }
}
