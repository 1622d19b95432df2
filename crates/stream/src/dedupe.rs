//! Redelivery filter: remembers message ids being handled and handled recently.
//!
//! The gateway redelivers robot messages 15–60 s later when it thinks the first delivery
//! was lost, and EVENTs may come twice even when ACKed. An id is "in flight" from
//! [`Dedupe::begin`] until [`Dedupe::finish`]; a successful finish keeps it for the window,
//! a failed one forgets it so a redelivery can retry.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Done(Instant),
}

/// Not thread-safe by itself; the client keeps it behind a mutex (operations are O(1)
/// amortised, so the lock is held only briefly).
#[derive(Debug)]
pub struct Dedupe {
    window: Duration,
    ids: HashMap<String, State>,
    /// Done ids in the order they finished, for expiry.
    expiry: VecDeque<(Instant, String)>,
}

impl Dedupe {
    pub fn new(window: Duration) -> Dedupe {
        Dedupe {
            window,
            ids: HashMap::new(),
            expiry: VecDeque::new(),
        }
    }

    /// `true` if `id` is new and now in flight; `false` for a duplicate.
    pub fn begin(&mut self, id: &str) -> bool {
        self.purge(Instant::now());
        if self.ids.contains_key(id) {
            return false;
        }
        self.ids.insert(id.to_string(), State::InFlight);
        true
    }

    /// Ends the handling of `id`: remembered for the window if it succeeded, forgotten if not.
    pub fn finish(&mut self, id: &str, ok: bool) {
        let now = Instant::now();
        if ok {
            self.ids.insert(id.to_string(), State::Done(now));
            self.expiry.push_back((now, id.to_string()));
        } else {
            self.ids.remove(id);
        }
        self.purge(now);
    }

    /// Ids currently remembered (in flight or done within the window).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn purge(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if *at + self.window > now {
                break;
            }
            let (at, id) = self.expiry.pop_front().expect("front exists");
            // Only drop it if this queue entry is the latest finish of that id.
            if self.ids.get(&id) == Some(&State::Done(at)) {
                self.ids.remove(&id);
            }
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
}
