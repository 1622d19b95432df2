//! Pieces of the multi-process benches (examples `soak` and `replicas`): a seeded generator,
//! env settings, and the tally of what came back to each posted question, read from the
//! sandbox's transcript as it grows.
//!
//! Each question comes from a user of its own (`<prefix><i>`), so its card and its webhook
//! replies name it in their conversation id. An answer is a card that reached "finished"
//! (flowStatus 3) or a markdown reply (the robot's fallback when the card API keeps
//! failing); a notice is a failed card (flowStatus 5) or a text reply.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jitnode_sandbox::{CardState, PostMessage, Posted, Sandbox, SandboxError, TranscriptEntry};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A stop signal for the benches' background tasks. Unlike a bare [`Notify`], a stop given
/// while a task is busy (not waiting) is not lost: the task sees it at its next wait.
#[derive(Default)]
pub struct Stop {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn new() -> Arc<Stop> {
        Arc::new(Stop::default())
    }

    /// Stops every task waiting now or later.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Returns once [`Stop::stop`] was called, before or during this wait.
    pub async fn stopped(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a stop in between still wakes it.
        notified.as_mut().enable();
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

/// Questions the demo's knowledge base answers, asked in turn.
pub const QUESTIONS: [&str; 6] = [
    "How do I reset my password?",
    "What are your opening hours?",
    "How can I get a refund for my order?",
    "Where can I download an invoice?",
    "How do I change my delivery address?",
    "我的订单什么时候发货？",
];

/// A small deterministic generator (xorshift64*), so a seed replays the same faults.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: f64) -> bool {
        (self.next_u64() % 1_000_000) as f64 / 10_000.0 < pct
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A bench setting from the environment: `default` when unset, an error naming the
/// variable when set to something that is not a number (never silently the default).
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|e| format!("{name}={v:?} is not a valid number: {e}")),
    }
}

/// Resident memory of a process, in kB (0 when unreadable).
pub fn rss_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS:")
}

/// Peak resident memory of a process so far, in kB (0 when unreadable).
pub fn peak_rss_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmHWM:")
}

/// The command of a robot under a bench: pointed at the sandbox with the app's
/// credentials, stdout discarded, stderr shown only when `verbose_var` is set.
pub fn robot_command(
    program: &str,
    args: &[String],
    sb: &Sandbox,
    app: &str,
    secret: &str,
    verbose_var: &str,
) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    let stderr = if std::env::var_os(verbose_var).is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    };
    c.args(args)
        .env("DINGTALK_OPENAPI_ENDPOINT", sb.base_url())
        .env("DINGTALK_CLIENT_ID", app)
        .env("DINGTALK_CLIENT_SECRET", secret)
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    c
}

/// Asks a child process to stop with SIGTERM (so it can finalize its cards) and waits up
/// to `grace` for it; false when it is still running then.
pub async fn terminate(child: &mut tokio::process::Child, grace: Duration) -> bool {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    tokio::time::timeout(grace, child.wait()).await.is_ok()
}

/// The kB value of the `field` line of `/proc/<pid>/status` (0 when unreadable).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// What came back for one question.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Cards that reached "finished" plus markdown replies.
    pub answers: u32,
    /// Failed cards and text notices: the user saw something, not necessarily the answer.
    pub notices: u32,
}

/// Follows the transcript of one app: per question what came back, and how many are done.
pub struct Tally {
    app: String,
    prefix: String,
    outcomes: Mutex<Vec<Outcome>>,
    done: AtomicU64,
    pub card_errors: AtomicU64,
    changed: Notify,
}

impl Tally {
    /// `n` questions to app `app`, asked by users `<prefix><i>`.
    pub fn new(app: &str, prefix: &str, n: usize) -> Tally {
        Tally {
            app: app.to_string(),
            prefix: prefix.to_string(),
            outcomes: Mutex::new(vec![Outcome::default(); n]),
            done: AtomicU64::new(0),
            card_errors: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    /// The user who asks question `i`.
    pub fn user(&self, i: u64) -> String {
        format!("{}{i}", self.prefix)
    }

    pub fn lock(&self) -> MutexGuard<'_, Vec<Outcome>> {
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The question index a card's or webhook's conversation id names.
    fn index_of(&self, conversation: &str) -> Option<usize> {
        let rest = &conversation[conversation.find(&self.prefix)? + self.prefix.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    pub fn read(&self, e: &TranscriptEntry) {
        if e.client_id != self.app {
            return;
        }
        if e.status != 200 || e.error.is_some() {
            if e.is_card() {
                self.card_errors.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Some(i) = e.conversation_id.as_deref().and_then(|c| self.index_of(c)) else {
            return;
        };
        let (answer, notice) = match e.kind.as_str() {
            "webhook" if e.msgtype.as_deref() == Some("markdown") => (true, false),
            "webhook" => (false, true),
            "card.instances.update" => {
                match e
                    .body
                    .pointer("/cardData/cardParamMap/flowStatus")
                    .and_then(|v| v.as_str())
                {
                    Some("3") => (true, false),
                    Some("5") => (false, true),
                    _ => return,
                }
            }
            _ => return,
        };
        let mut all = self.lock();
        let Some(o) = all.get_mut(i) else { return };
        let was_done = o.answers + o.notices > 0;
        o.answers += u32::from(answer);
        o.notices += u32::from(notice);
        if !was_done {
            self.done.fetch_add(1, Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` questions are done; false after `timeout` without progress.
    pub async fn wait_done(&self, n: u64, timeout: Duration) -> bool {
        // A fresh deadline before each wait: the timeout runs from the last progress.
        let deadline = || jitnode_sandbox::deadline_after(timeout);
        jitnode_sandbox::wait_notified(&self.changed, deadline, || self.done() >= n).await
    }

    /// The indices among the first `n` that nothing came back for.
    pub fn lost(&self, n: usize) -> Vec<usize> {
        let all = self.lock();
        let o = &all[..n.min(all.len())];
        (0..o.len())
            .filter(|&i| o[i].answers + o[i].notices == 0)
            .collect()
    }

    /// The first `n` outcomes counted: (answered once, with duplicates, lost, notice only).
    pub fn counts(&self, n: usize) -> Counts {
        let all = self.lock();
        let o = &all[..n.min(all.len())];
        Counts {
            answered_once: o.iter().filter(|o| o.answers == 1).count(),
            duplicates: o.iter().filter(|o| o.answers > 1).count(),
            lost: o.iter().filter(|o| o.answers + o.notices == 0).count(),
            notice_only: o.iter().filter(|o| o.answers == 0 && o.notices > 0).count(),
        }
    }
}

/// What [`Tally::counts`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub answered_once: usize,
    /// Questions answered more than once.
    pub duplicates: usize,
    /// Questions nothing came back for.
    pub lost: usize,
    /// Questions that got a failure notice and no answer (e.g. a card finalized by the
    /// sweeper after its host died mid-answer).
    pub notice_only: usize,
}

/// Reads every new transcript entry into the tallies, woken by each change, until `stop`.
pub async fn follow(sb: Arc<Sandbox>, tallies: Vec<Arc<Tally>>, stop: Arc<Stop>) {
    let mut seen = 0u64;
    loop {
        let fresh = sb.entries_after(seen);
        if let Some(last) = fresh.last() {
            // Entries that fell out of the ring before being read would go unseen.
            if last.seq - seen > fresh.len() as u64 {
                eprintln!(
                    "drive: {} transcript entries dropped before being read",
                    last.seq - seen - fresh.len() as u64
                );
            }
            seen = last.seq;
        }
        for e in &fresh {
            for t in &tallies {
                t.read(e);
            }
        }
        tokio::select! {
            _ = sb.wait_for_entry(seen, Duration::from_secs(1), |_| true) => {}
            _ = stop.stopped() => return,
        }
    }
}

/// Posts a message, waiting up to 60 s for a connection while the robot reconnects
/// (DingTalk holds pushes for a client that is away).
pub async fn post(sb: &Sandbox, m: &PostMessage) -> Result<Posted, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match sb.post_message(m) {
            Ok(p) => return Ok(p),
            Err(SandboxError::NoConnection { .. }) if Instant::now() < deadline => {
                sb.wait_for_connections(&m.client_id, 1, Duration::from_secs(60))
                    .await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Pushes `message_id`'s message again after `delay`, on `connection` when given and still
/// open (else on a random one), waiting for a connection if needed.
pub fn redeliver_later(
    sb: Arc<Sandbox>,
    app: &str,
    message_id: String,
    delay: Duration,
    connection: Option<String>,
) {
    let app = app.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Some(c) = &connection {
            if sb.redeliver_to(&message_id, c).is_ok() {
                return;
            }
        }
        for _ in 0..60 {
            match sb.redeliver_now(&message_id) {
                Err(SandboxError::NoConnection { .. }) => {
                    sb.wait_for_connections(&app, 1, Duration::from_secs(1))
                        .await;
                }
                Ok(_) | Err(_) => return,
            }
        }
    });
}

/// The app's cards neither finished ("3") nor failed ("5"): still spinning in a chat.
pub fn stuck_cards(sb: &Sandbox, app: &str) -> Vec<CardState> {
    let stuck = sb.cards_where(|c| {
        c.client_id == app && !matches!(c.flow_status.as_deref(), Some("3" | "5"))
    });
    for c in stuck.iter().take(5) {
        eprintln!(
            "drive: stuck card {} of {:?}: flowStatus {:?}, {} updates",
            c.id, c.conversation_id, c.flow_status, c.updates
        );
    }
    stuck
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stop_given_while_nobody_waits_is_seen_by_the_next_wait() {
        let stop = Stop::new();
        // A bare Notify::notify_waiters here would be lost: no task waits yet.
        stop.stop();
        let seen = tokio::time::timeout(Duration::from_secs(1), stop.stopped()).await;
        assert!(seen.is_ok(), "the stop given before the wait was lost");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_task_wakes_on_stop_and_not_before() {
        let stop = Stop::new();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished(), "woke without a stop");
        stop.stop();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken by the stop")
            .unwrap();
    }
}
