//! The card update scheduler of one streamed answer.
//!
//! The agent's chunks go into a [`TextFeed`] (a `tokio::sync::watch` of the text so far);
//! [`drive`] turns that into card updates through a [`CardUpdater`] (a trait, implemented
//! for closures `FnMut(String, Publish) -> impl Future<Output = Result<(), E>>`).
//!
//! Semantics:
//! - **One in flight.** Updates are awaited one after another, never overlapping.
//! - **Minimum interval** between the starts of two calls. The driver's start counts as a
//!   call (it is started right after the thinking card was sent), except for a final that
//!   is the card's first update: a quick answer has nothing left to coalesce, so it goes at
//!   once.
//! - **Coalescing.** When a call may start, it sends the latest text; everything that arrived
//!   in between is skipped. An unchanged or blank text is not sent as a partial update.
//! - **Cap.** At most `max_updates` calls when nothing fails: `max_updates - 1` partial ones,
//!   one kept back for the final.
//! - **Final.** When the feed is finished, the final text is always published (as
//!   [`Publish::Final`], respecting the interval), retried while the failure limit allows.
//! - **Failures.** A failed partial update is retried with the latest text at the next slot.
//!   After `max_consecutive_failures` failures in a row the driver stops calling the card
//!   API (`gave_up`) and only waits for the end of the answer, so the caller can send the
//!   whole text as a markdown reply ([`ThrottleReport::needs_fallback`]).
//! - **Refusals.** A failure says how to retry ([`RetryHint`]): at the next slot (the
//!   default), after a backoff that doubles with each failure in a row (a rate limit:
//!   [`BACKOFF_BASE`] up to [`BACKOFF_MAX`], the latest text still wins), or never (a
//!   refusal no retry fixes, such as a missing permission: the driver gives up at once).
//! - **Abandoned.** When the feed is dropped without `finish`, nothing final is sent; the
//!   caller turns the card into a failed one.
//!
//! When [`drive`] returns, no update is in flight. The driver waits as long as the feed is
//! open: the caller bounds the answer (`answerTimeoutMs`) and drops the feed on timeout,
//! error or shutdown, then turns the card into a failed one.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::config::RobotConfig;

/// How a failed update is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// At the next slot (`min_interval` after the failed call).
    Next,
    /// After a backoff that doubles with each failure in a row.
    Backoff,
    /// Not at all: give up the card now.
    Never,
}

/// What a failure says about retrying; [`Retry::Next`] unless the error knows better.
pub trait RetryHint {
    fn retry(&self) -> Retry {
        Retry::Next
    }
}

impl RetryHint for String {}

/// The first backoff after a rate limit (or `min_interval`, when longer).
pub const BACKOFF_BASE: Duration = Duration::from_millis(1000);
/// The longest backoff between two calls.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// The wait after the `n`th failure in a row (n >= 1) that asks for a backoff.
pub fn backoff_after(n: u32, min_interval: Duration) -> Duration {
    let base = BACKOFF_BASE.max(min_interval);
    base.saturating_mul(1u32 << n.saturating_sub(1).min(8))
        .min(BACKOFF_MAX.max(min_interval))
}

/// What the driver is publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Text so far; the answer is still being written.
    Partial,
    /// The whole answer; the card gets its final form (buttons).
    Final,
}

/// Something that updates the card with a text.
pub trait CardUpdater {
    type Error;
    fn update(
        &mut self,
        text: String,
        publish: Publish,
    ) -> impl Future<Output = Result<(), Self::Error>>;
}

impl<F, Fut, E> CardUpdater for F
where
    F: FnMut(String, Publish) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Error = E;
    fn update(&mut self, text: String, publish: Publish) -> impl Future<Output = Result<(), E>> {
        self(text, publish)
    }
}

/// The limits of one answer's updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub min_interval: Duration,
    /// Calls per answer, the final one included; at least 1.
    pub max_updates: u32,
    /// Failures in a row after which the card API is given up; at least 1.
    pub max_consecutive_failures: u32,
}

impl ThrottleConfig {
    pub fn from_robot(config: &RobotConfig) -> ThrottleConfig {
        ThrottleConfig {
            min_interval: config.card.min_interval,
            max_updates: config.card.max_updates,
            max_consecutive_failures: config.fallback_after_failures,
        }
    }
}

/// The state of an answer as the feed publishes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub text: String,
    pub finished: bool,
}

/// The producer's side: the agent's streaming callback appends here.
#[derive(Debug)]
pub struct TextFeed {
    tx: watch::Sender<Snapshot>,
}

/// A new feed and the receiver to give to [`drive`].
pub fn feed() -> (TextFeed, watch::Receiver<Snapshot>) {
    let (tx, rx) = watch::channel(Snapshot::default());
    (TextFeed { tx }, rx)
}

impl TextFeed {
    /// Appends a chunk of answer text.
    pub fn append(&self, chunk: &str) {
        if chunk.is_empty() {
            return;
        }
        // send_modify works with or without receivers, so a driver that already returned
        // does not turn the producer's appends into errors.
        self.tx.send_modify(|s| s.text.push_str(chunk));
    }

    /// Replaces the text so far (for producers that send whole snapshots).
    pub fn set(&self, text: impl Into<String>) {
        let text = text.into();
        self.tx.send_modify(|s| s.text = text);
    }

    /// The text so far.
    pub fn text(&self) -> String {
        self.tx.borrow().text.clone()
    }

    /// The answer is complete with the text so far.
    pub fn finish(self) {
        self.tx.send_modify(|s| s.finished = true);
    }

    /// The answer is complete with this text, through a shared reference (for a feed kept
    /// in an `Arc` so the agent's chunk sink can hold a weak one).
    pub fn complete(&self, text: impl Into<String>) {
        let text = text.into();
        self.tx.send_modify(|s| {
            s.text = text;
            s.finished = true;
        });
    }

    /// The answer is complete with this text.
    pub fn finish_with(self, text: impl Into<String>) {
        let text = text.into();
        self.tx.send_modify(|s| {
            s.text = text;
            s.finished = true;
        });
    }
}

/// What happened to one answer's card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleReport<E> {
    /// Update calls made, partial and final, failed ones included.
    pub updates: u32,
    pub partial_updates: u32,
    pub failures: u32,
    /// Failures in a row at the end.
    pub consecutive_failures: u32,
    /// The feed was finished (not dropped).
    pub finished: bool,
    pub final_published: bool,
    /// The card API was given up after too many failures in a row.
    pub gave_up: bool,
    /// The last text seen: the whole answer when `finished`.
    pub text: String,
    pub last_error: Option<E>,
}

impl<E> ThrottleReport<E> {
    /// The answer is complete but its card does not show it: send it as a markdown reply.
    pub fn needs_fallback(&self) -> bool {
        self.finished && !self.final_published
    }
}

/// Drives the card updates of one answer until the feed is finished (then publishes the
/// final text) or dropped. See the module doc for the rules.
pub async fn drive<U: CardUpdater>(
    mut rx: watch::Receiver<Snapshot>,
    mut updater: U,
    config: ThrottleConfig,
) -> ThrottleReport<U::Error>
where
    U::Error: RetryHint,
{
    let partial_cap = config.max_updates.max(1) - 1;
    let failure_limit = config.max_consecutive_failures.max(1);
    let mut report = ThrottleReport {
        updates: 0,
        partial_updates: 0,
        failures: 0,
        consecutive_failures: 0,
        finished: false,
        final_published: false,
        gave_up: false,
        text: String::new(),
        last_error: None,
    };
    let mut last_call = Instant::now();
    let mut last_published: Option<String> = None;
    // No call starts before this (a rate limit's backoff).
    let mut not_before = last_call;

    let record = |report: &mut ThrottleReport<U::Error>,
                  not_before: &mut Instant,
                  result: Result<(), U::Error>| match result {
        Ok(()) => {
            report.consecutive_failures = 0;
            true
        }
        Err(e) => {
            report.failures += 1;
            report.consecutive_failures += 1;
            match e.retry() {
                Retry::Next => {}
                Retry::Backoff => {
                    *not_before = Instant::now()
                        + backoff_after(report.consecutive_failures, config.min_interval);
                }
                Retry::Never => report.gave_up = true,
            }
            report.last_error = Some(e);
            if report.consecutive_failures >= failure_limit {
                report.gave_up = true;
            }
            false
        }
    };

    // Streaming phase.
    loop {
        let snap = rx.borrow_and_update().clone();
        report.text = snap.text;
        if snap.finished {
            report.finished = true;
            break;
        }
        let closed = rx.has_changed().is_err();
        if closed {
            // Dropped without finish: abandoned; the caller shows the failure.
            return report;
        }
        let wants_partial = !report.gave_up
            && report.partial_updates < partial_cap
            && !report.text.trim().is_empty()
            && last_published.as_deref() != Some(report.text.as_str());
        if wants_partial {
            let due = (last_call + config.min_interval).max(not_before);
            if Instant::now() < due {
                // Woken early by new text too, so that a finish before the slot goes out
                // at once (see the final phase); the latest text wins either way.
                tokio::select! {
                    _ = sleep_until(due) => {}
                    _ = rx.changed() => {}
                }
                continue;
            }
            last_call = Instant::now();
            report.updates += 1;
            report.partial_updates += 1;
            let text = report.text.clone();
            let result = updater.update(text.clone(), Publish::Partial).await;
            if record(&mut report, &mut not_before, result) {
                last_published = Some(text);
            }
            continue;
        }
        if rx.changed().await.is_err() {
            // Closed while idle: finished just before, or abandoned.
            let snap = rx.borrow().clone();
            report.text = snap.text;
            if snap.finished {
                report.finished = true;
                break;
            }
            return report;
        }
    }

    // Final phase: the kept-back update, retried while failures allow. As the card's first
    // update it goes at once: the interval after the create is there to coalesce chunks,
    // and a finished answer has none left to coalesce.
    while !report.gave_up {
        let due = if report.updates == 0 {
            not_before
        } else {
            (last_call + config.min_interval).max(not_before)
        };
        sleep_until(due).await;
        last_call = Instant::now();
        report.updates += 1;
        let result = updater.update(report.text.clone(), Publish::Final).await;
        if record(&mut report, &mut not_before, result) {
            report.final_published = true;
            break;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::time::sleep;

    use super::*;
    use Publish::{Final, Partial};
    use Step::{Append, Finish, FinishWith, Wait};

    #[derive(Debug, Clone)]
    struct Call {
        at: Duration,
        text: String,
        publish: Publish,
    }

    /// A fake card API: records calls, takes `delay` per call, fails the calls whose index
    /// `fail(i)` says.
    #[derive(Clone)]
    struct Fake {
        start: Instant,
        calls: Arc<Mutex<Vec<Call>>>,
        in_flight: Arc<AtomicUsize>,
        max_in_flight: Arc<AtomicUsize>,
        delay: Duration,
        fail: Arc<dyn Fn(usize) -> bool + Send + Sync>,
    }

    impl Fake {
        fn new(delay: Duration, fail: impl Fn(usize) -> bool + Send + Sync + 'static) -> Fake {
            Fake {
                start: Instant::now(),
                calls: Arc::default(),
                in_flight: Arc::default(),
                max_in_flight: Arc::default(),
                delay,
                fail: Arc::new(fail),
            }
        }

        fn ok() -> Fake {
            Fake::new(Duration::ZERO, |_| false)
        }

        fn updater(
            &self,
        ) -> impl FnMut(
            String,
            Publish,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
               + Send {
            let me = self.clone();
            move |text, publish| {
                let me = me.clone();
                Box::pin(async move {
                    let index = {
                        let mut calls = me.calls.lock().unwrap();
                        calls.push(Call {
                            at: me.start.elapsed(),
                            text,
                            publish,
                        });
                        calls.len() - 1
                    };
                    let now = me.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    me.max_in_flight.fetch_max(now, Ordering::SeqCst);
                    sleep(me.delay).await;
                    me.in_flight.fetch_sub(1, Ordering::SeqCst);
                    if (me.fail)(index) {
                        Err(format!("403 on call {index}"))
                    } else {
                        Ok(())
                    }
                })
            }
        }

        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }
    }

    fn config(min_ms: u64, max_updates: u32, failures: u32) -> ThrottleConfig {
        ThrottleConfig {
            min_interval: Duration::from_millis(min_ms),
            max_updates,
            max_consecutive_failures: failures,
        }
    }

    /// Appends `n` chunks `every` apart, then finishes.
    async fn produce(feed: TextFeed, n: usize, every: Duration) -> String {
        let mut all = String::new();
        for i in 0..n {
            sleep(every).await;
            let chunk = format!("c{i} ");
            all.push_str(&chunk);
            feed.append(&chunk);
        }
        feed.finish();
        all
    }

    fn assert_spacing(calls: &[Call], min: Duration) {
        let mut prev = Duration::ZERO; // the driver's start counts as a call
        for c in calls {
            assert!(c.at >= prev + min, "calls too close: {calls:?}");
            prev = c.at;
        }
    }

    /// Fails unless the calls published exactly these kinds, in this order.
    fn assert_kinds(calls: &[Call], kinds: &[Publish]) {
        let got: Vec<Publish> = calls.iter().map(|c| c.publish).collect();
        assert_eq!(got, kinds, "{calls:?}");
    }

    /// A failure that carries its retry hint.
    #[derive(Debug, Clone, PartialEq)]
    struct Hinted(Retry);

    impl RetryHint for Hinted {
        fn retry(&self) -> Retry {
            self.0
        }
    }

    /// Records the times of its calls; answers the first `failures` with `hint`.
    fn hinted(
        hint: Retry,
        failures: usize,
        log: Arc<Mutex<Vec<(Duration, Publish)>>>,
    ) -> impl FnMut(String, Publish) -> std::future::Ready<Result<(), Hinted>> {
        let start = Instant::now();
        move |_text, publish| {
            let mut log = log.lock().unwrap();
            log.push((start.elapsed(), publish));
            std::future::ready(if log.len() <= failures {
                Err(Hinted(hint))
            } else {
                Ok(())
            })
        }
    }

    /// Drives `updater` while `n` chunks arrive `every_ms` apart, then the answer finishes;
    /// returns the report and the whole answer.
    async fn drive_stream<U: CardUpdater>(
        updater: U,
        config: ThrottleConfig,
        n: usize,
        every_ms: u64,
    ) -> (ThrottleReport<U::Error>, String)
    where
        U::Error: RetryHint,
    {
        let (feed, rx) = feed();
        let producer = tokio::spawn(produce(feed, n, Duration::from_millis(every_ms)));
        let report = drive(rx, updater, config).await;
        (report, producer.await.unwrap())
    }

    /// One step of a scripted answer.
    enum Step {
        Append(&'static str),
        /// Let this many milliseconds pass.
        Wait(u64),
        Finish,
        FinishWith(&'static str),
    }

    /// Drives the fake's updates on another task while `steps` write the feed; a script
    /// without a finish drops the feed at its end. Returns the report and the calls.
    async fn drive_scripted(
        fake: Fake,
        config: ThrottleConfig,
        steps: &[Step],
    ) -> (ThrottleReport<String>, Vec<Call>) {
        let (feed, rx) = feed();
        let driver = tokio::spawn(drive(rx, fake.updater(), config));
        let mut feed = Some(feed);
        for step in steps {
            match step {
                Step::Append(chunk) => feed.as_ref().expect("no step after a finish").append(chunk),
                Step::Wait(ms) => sleep(Duration::from_millis(*ms)).await,
                Step::Finish => feed.take().expect("one finish").finish(),
                Step::FinishWith(text) => feed.take().expect("one finish").finish_with(*text),
            }
        }
        drop(feed);
        (driver.await.unwrap(), fake.calls())
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_backs_off_doubling_and_the_latest_text_wins() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let updater = hinted(Retry::Backoff, 3, log.clone());
        let (report, _) = drive_stream(updater, config(300, 100, 5), 120, 100).await;
        let calls = log.lock().unwrap().clone();
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
        // After failures 1, 2 and 3: 1 s, 2 s, 4 s; then the normal 300 ms again.
        assert!(gaps[0] >= Duration::from_millis(1000), "{calls:?}");
        assert!(gaps[1] >= Duration::from_millis(2000), "{calls:?}");
        assert!(gaps[2] >= Duration::from_millis(4000), "{calls:?}");
        assert!(gaps[3] < Duration::from_millis(400), "{calls:?}");
        assert!(report.final_published && !report.gave_up, "{report:?}");
        // 12 s of chunks: 7 s of backoff, then one call per 300 ms; not one per chunk.
        assert!(calls.len() < 30, "{calls:?}");
        assert_eq!(backoff_after(20, Duration::from_millis(300)), BACKOFF_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_no_retry_fixes_gives_up_at_once() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let updater = hinted(Retry::Never, 100, log.clone());
        let (report, _) = drive_stream(updater, config(300, 20, 5), 10, 100).await;
        assert_eq!(log.lock().unwrap().len(), 1);
        assert!(report.gave_up && report.needs_fallback(), "{report:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_coalesces_into_the_final_update() {
        let fake = Fake::ok();
        let (feed, rx) = feed();
        for i in 0..100 {
            feed.append(&format!("w{i} "));
        }
        let expected = feed.text();
        feed.finish();
        let report = drive(rx, fake.updater(), config(300, 20, 3)).await;
        let calls = fake.calls();
        assert_kinds(&calls, &[Final]);
        assert_eq!(calls[0].text, expected);
        // The first update, and a final: nothing to wait for.
        assert_eq!(calls[0].at, Duration::ZERO);
        assert_eq!(report.updates, 1);
        assert!(report.final_published && report.finished && !report.needs_fallback());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_finished_before_the_first_slot_goes_out_when_it_finishes() {
        let steps = [Append("quick "), Wait(100), Append("answer"), Finish];
        let (report, calls) = drive_scripted(Fake::ok(), config(300, 20, 3), &steps).await;
        // Not held until the 300 ms slot: the one call is the final, at the finish.
        assert_kinds(&calls, &[Final]);
        assert_eq!(calls[0].text, "quick answer");
        assert_eq!(calls[0].at, Duration::from_millis(100));
        assert!(report.final_published);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_stream_respects_the_interval_and_coalesces() {
        let fake = Fake::ok();
        let (report, full) = drive_stream(fake.updater(), config(300, 100, 3), 30, 100).await;
        let calls = fake.calls();
        assert_spacing(&calls, Duration::from_millis(300));
        // 3 s of chunks at one update per 300 ms: about ten, far fewer than 30 chunks.
        assert!((8..=11).contains(&report.partial_updates), "{report:?}");
        let last = calls.last().unwrap();
        assert_eq!(last.publish, Final);
        assert_eq!(last.text, full);
        // Every partial is a growing prefix of the answer: coalesced, never stale.
        let mut prev_len = 0;
        for c in &calls[..calls.len() - 1] {
            assert_eq!(c.publish, Partial);
            assert!(full.starts_with(&c.text));
            assert!(c.text.len() > prev_len);
            prev_len = c.text.len();
        }
        assert_eq!(report.updates as usize, calls.len());
        assert_eq!(report.text, full);
    }

    #[tokio::test(start_paused = true)]
    async fn cap_keeps_one_update_for_the_final() {
        let fake = Fake::ok();
        let (report, full) = drive_stream(fake.updater(), config(300, 5, 3), 50, 100).await;
        let calls = fake.calls();
        assert_kinds(&calls, &[Partial, Partial, Partial, Partial, Final]);
        assert_eq!(report.partial_updates, 4);
        assert_eq!(report.updates, 5);
        assert_eq!(calls[4].text, full);
    }

    #[tokio::test(start_paused = true)]
    async fn max_updates_one_means_only_the_final() {
        let fake = Fake::ok();
        let (report, _) = drive_stream(fake.updater(), config(300, 1, 3), 10, 500).await;
        let calls = fake.calls();
        assert_kinds(&calls, &[Final]);
        assert_eq!(report.partial_updates, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn final_is_sent_even_when_the_text_did_not_change() {
        let steps = [Append("complete answer"), Wait(2000), Finish];
        let (report, calls) = drive_scripted(Fake::ok(), config(300, 20, 3), &steps).await;
        assert_kinds(&calls, &[Partial, Final]);
        assert_eq!(calls[1].text, "complete answer");
        // No time left to wait: the interval since the partial at 300 ms has long passed.
        assert_eq!(calls[1].at, Duration::from_secs(2));
        assert!(report.final_published);
    }

    #[tokio::test(start_paused = true)]
    async fn blank_text_is_not_published_but_an_empty_final_is() {
        let steps = [Append("  \n"), Wait(1000), FinishWith("")];
        let (report, calls) = drive_scripted(Fake::ok(), config(300, 20, 3), &steps).await;
        assert_kinds(&calls, &[Final]);
        assert!(report.final_published);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_updates_never_overlap_and_send_the_latest_text() {
        let fake = Fake::new(Duration::from_millis(1000), |_| false);
        let (report, full) = drive_stream(fake.updater(), config(300, 100, 3), 40, 50).await;
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 1);
        let calls = fake.calls();
        // Each call starts when the previous ended: 1 s apart.
        for pair in calls.windows(2) {
            assert!(pair[1].at >= pair[0].at + Duration::from_millis(1000));
        }
        // 2 s of chunks with 1 s calls: a couple of partials, then the final.
        assert!(report.partial_updates <= 3, "{report:?}");
        assert_eq!(calls.last().unwrap().text, full);
        assert_eq!(calls.last().unwrap().publish, Final);
        assert!(report.final_published);
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_give_up_and_ask_for_fallback() {
        let fake = Fake::new(Duration::from_millis(10), |_| true);
        let (report, full) = drive_stream(fake.updater(), config(300, 20, 3), 30, 100).await;
        assert_eq!(fake.calls().len(), 3);
        assert_eq!(report.failures, 3);
        assert_eq!(report.consecutive_failures, 3);
        assert!(report.gave_up);
        assert!(report.finished);
        assert!(!report.final_published);
        assert!(report.needs_fallback());
        // The driver waited for the whole answer so the fallback has all of it.
        assert_eq!(report.text, full);
        assert_eq!(report.last_error.as_deref(), Some("403 on call 2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_failure_count() {
        // Calls 0, 1 fail, 2 succeeds, 3, 4 fail, then fine.
        let fake = Fake::new(Duration::ZERO, |i| matches!(i, 0 | 1 | 3 | 4));
        let (report, full) = drive_stream(fake.updater(), config(300, 20, 3), 30, 100).await;
        assert!(!report.gave_up, "{report:?}");
        assert_eq!(report.failures, 4);
        assert_eq!(report.consecutive_failures, 0);
        assert!(report.final_published);
        assert_eq!(fake.calls().last().unwrap().text, full);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_final_is_retried_within_the_limit() {
        // Only partial call 0 happens, then finals 1 (fails) and 2 (succeeds).
        let steps = [Append("all of it"), Wait(1000), Finish];
        let (report, calls) = drive_scripted(
            Fake::new(Duration::ZERO, |i| i == 1),
            config(300, 20, 3),
            &steps,
        )
        .await;
        assert_kinds(&calls, &[Partial, Final, Final]);
        assert!(calls[2].at >= calls[1].at + Duration::from_millis(300));
        assert!(report.final_published);
        assert_eq!(report.failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_final_gives_up_at_the_limit() {
        let fake = Fake::new(Duration::ZERO, |_| true);
        let (feed, rx) = feed();
        feed.finish_with("answer");
        let report = drive(rx, fake.updater(), config(300, 20, 2)).await;
        assert_eq!(fake.calls().len(), 2);
        assert!(report.gave_up && report.needs_fallback());
        assert_eq!(report.text, "answer");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_feed_is_abandoned_without_a_final() {
        let steps = [Append("half an "), Wait(1000), Append("answer")];
        let (report, calls) = drive_scripted(Fake::ok(), config(300, 20, 3), &steps).await;
        assert!(!report.finished);
        assert!(!report.final_published);
        assert!(!report.needs_fallback());
        assert_eq!(report.text, "half an answer");
        // The partial before the drop went out; nothing after it.
        assert_kinds(&calls, &[Partial]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_can_run_on_another_task() {
        // Compile-time check that drive(..) with a Send updater is Send, plus a run.
        let fake = Fake::ok();
        let (feed, rx) = feed();
        let handle = tokio::spawn(drive(rx, fake.updater(), config(0, 3, 1)));
        feed.finish_with("x");
        let report = handle.await.unwrap();
        assert!(report.final_published);
        assert_eq!(fake.calls()[0].at, Duration::ZERO);
    }

    #[test]
    fn config_comes_from_the_robot_config() {
        let robot = RobotConfig::from_value(&serde_json::json!({
            "clientId": "a", "clientSecret": "b", "agent": "x.y",
            "fallbackAfterFailures": 4, "card": {"minIntervalMs": 500, "maxUpdates": 9}
        }))
        .unwrap();
        assert_eq!(ThrottleConfig::from_robot(&robot), config(500, 9, 4));
    }
}
