//! Bounds on what "regenerate" clicks may cost. Each click starts a full agent (and LLM)
//! run outside the message handler's limit, so without bounds a user tapping the button
//! repeatedly multiplies the cost. Three rules apply, in this order:
//! - one regeneration per answer card at a time (a repeated click on the same card while
//!   its new answer is being written is ignored);
//! - at most [`PER_USER_PER_WINDOW`] regenerations per user per [`WINDOW`];
//! - at most [`MAX_CONCURRENT`] regenerations running in the robot at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Regenerations running at once, robot-wide.
pub const MAX_CONCURRENT: usize = 4;
/// Regenerations one user may start per [`WINDOW`].
pub const PER_USER_PER_WINDOW: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Users remembered for the rate limit; past it, users with no click in the window are
/// forgotten first.
const MAX_USERS: usize = 10_000;

/// Why a click did not start a regeneration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This card is already being regenerated.
    AlreadyRunning,
    /// The user has started [`PER_USER_PER_WINDOW`] regenerations within [`WINDOW`].
    UserRate,
    /// [`MAX_CONCURRENT`] regenerations are running.
    Busy,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::AlreadyRunning => "this answer is already being regenerated",
            Refusal::UserRate => "the user regenerated too often in the last minute",
            Refusal::Busy => "too many regenerations are running",
        })
    }
}

#[derive(Default)]
struct State {
    running: HashSet<String>,
    clicks: HashMap<String, VecDeque<Instant>>,
}

/// Shared by a robot's callback handler; cheap to clone.
#[derive(Clone, Default)]
pub struct Regenerations {
    state: Arc<Mutex<State>>,
}

/// Held while a regeneration runs; dropping it frees the card and the slot.
pub struct Permit {
    state: Arc<Mutex<State>>,
    record: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.state).running.remove(&self.record);
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // The sets stay consistent even if a holder panicked: keep serving.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Regenerations {
    /// Admits a regeneration of `record` asked by `user` at `now`, or says why not.
    pub fn try_start(&self, record: &str, user: &str, now: Instant) -> Result<Permit, Refusal> {
        let mut s = lock(&self.state);
        if s.running.contains(record) {
            return Err(Refusal::AlreadyRunning);
        }
        if s.running.len() >= MAX_CONCURRENT {
            return Err(Refusal::Busy);
        }
        let recent = |clicks: &mut VecDeque<Instant>| {
            while clicks
                .front()
                .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
            {
                clicks.pop_front();
            }
        };
        if !s.clicks.contains_key(user) && s.clicks.len() >= MAX_USERS {
            s.clicks.retain(|_, c| {
                recent(c);
                !c.is_empty()
            });
            if s.clicks.len() >= MAX_USERS {
                // Every remembered user clicked within the window: refuse newcomers rather
                // than forget a limit in force.
                return Err(Refusal::Busy);
            }
        }
        let clicks = s.clicks.entry(user.to_string()).or_default();
        recent(clicks);
        if clicks.len() >= PER_USER_PER_WINDOW {
            return Err(Refusal::UserRate);
        }
        clicks.push_back(now);
        s.running.insert(record.to_string());
        Ok(Permit {
            state: self.state.clone(),
            record: record.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_per_card_a_user_rate_and_a_global_cap() {
        let r = Regenerations::default();
        let t0 = Instant::now();
        let p = r.try_start("rec1", "u1", t0).expect("first click starts");
        assert_eq!(
            r.try_start("rec1", "u1", t0).err(),
            Some(Refusal::AlreadyRunning)
        );
        assert_eq!(
            r.try_start("rec1", "u2", t0).err(),
            Some(Refusal::AlreadyRunning)
        );
        drop(p);
        // Done: the same card may be regenerated again.
        let mut held = vec![r.try_start("rec1", "u1", t0).expect("again after it ended")];
        // u1 has used 2 of 5; three more cards, then the rate limit.
        for i in 2..=4 {
            let p = r
                .try_start(&format!("rec{i}"), "u1", t0)
                .expect("under the caps");
            if i < 4 {
                held.push(p);
            }
        }
        assert_eq!(r.try_start("rec9", "u1", t0).err(), Some(Refusal::UserRate));
        // Three running; one more fits, then the robot is busy for everyone.
        let fourth = r.try_start("rec5", "u2", t0).expect("fourth slot");
        assert_eq!(r.try_start("rec6", "u3", t0).err(), Some(Refusal::Busy));
        drop(fourth);
        held.clear();
        // The window passes: u1 may regenerate again.
        let later = t0 + WINDOW;
        assert!(r.try_start("rec9", "u1", later).is_ok());
    }

    #[test]
    fn the_user_table_is_bounded() {
        let r = Regenerations::default();
        let t0 = Instant::now();
        for i in 0..MAX_USERS {
            drop(
                r.try_start(&format!("r{i}"), &format!("u{i}"), t0)
                    .expect("admitted"),
            );
        }
        assert_eq!(r.try_start("x", "newcomer", t0).err(), Some(Refusal::Busy));
        // Once their clicks leave the window, old users are forgotten to make room.
        assert!(r.try_start("x", "newcomer", t0 + WINDOW).is_ok());
        assert!(lock(&r.state).clicks.len() <= MAX_USERS);
    }
}
