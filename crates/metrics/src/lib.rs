//! jitnode-metrics: the process's operator counters (messages, ACKs, answers, card API
//! calls, reconnects, reloads) and latency histograms, and their Prometheus text rendering
//! for `/metrics`.
//!
//! It is a handful of atomics and fixed-bucket histograms with no dependencies, so that
//! every layer (the Stream client, the robot, the agent, the host) can count into it
//! without pulling a metrics framework into a 2-core build. It is NOT a general metrics
//! library: the set of metrics is fixed here, one name for each fact.
//!
//! Counters are process-wide ([`global`]), as Prometheus scrapes a process.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency buckets: from a cached answer to a slow LLM.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds (seconds) of the store claim buckets: a claim is one store round trip, so
/// its target (2 ms at p99) needs buckets well under the answer ones.
pub const CLAIM_BUCKETS: [f64; 12] = [
    0.0002, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// A fixed-bucket histogram of durations (Prometheus `histogram`).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64; BUCKETS.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds, so it stays an atomic integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// With the answer-latency [`BUCKETS`].
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Histogram {
        Histogram::with_bounds(&BUCKETS)
    }

    /// With other upper bounds (seconds, ascending), e.g. [`CLAIM_BUCKETS`].
    pub const fn with_bounds(bounds: &'static [f64; BUCKETS.len()]) -> Histogram {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Non-cumulative per bucket; rendering accumulates.
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Card API calls by HTTP status (0: no answer at all).
#[derive(Debug, Default)]
pub struct ByCode(Mutex<Vec<(u16, u64)>>);

impl ByCode {
    pub const fn new() -> ByCode {
        ByCode(Mutex::new(Vec::new()))
    }
    pub fn inc(&self, code: u16) {
        // A panic elsewhere cannot leave the list half-written: entries are plain numbers.
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match v.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => {
                v.push((code, 1));
                v.sort_unstable();
            }
        }
    }
    pub fn get(&self, code: u16) -> u64 {
        let v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.iter().find(|(c, _)| *c == code).map_or(0, |(_, n)| *n)
    }
    fn snapshot(&self) -> Vec<(u16, u64)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    /// Robot messages delivered to the robot's handler (after the dedupe claim).
    pub messages_received: Counter,
    /// Frames ACKed back to the gateway.
    pub messages_acked: Counter,
    /// Questions that got an answer card (or reply).
    pub messages_answered: Counter,
    /// Questions whose answer failed or timed out.
    pub messages_failed: Counter,
    /// Redeliveries dropped by the dedupe window.
    pub dedupe_hits: Counter,
    /// Stream connections opened after the first one.
    pub reconnects: Counter,
    /// Card API calls, by HTTP status.
    pub card_calls: ByCode,
    /// From the message to the final answer.
    pub answer_latency: Histogram,
    /// One agent run (retrieval and LLM).
    pub llm_latency: Histogram,
    /// One claim of a robot message in the shared store (the call, as the host waits on
    /// it before the ACK), won or not.
    pub claim_latency: Histogram,
    /// Reloads applied to a running app.
    pub reloads: Counter,
}

impl Metrics {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Metrics {
        Metrics {
            messages_received: Counter::new(),
            messages_acked: Counter::new(),
            messages_answered: Counter::new(),
            messages_failed: Counter::new(),
            dedupe_hits: Counter::new(),
            reconnects: Counter::new(),
            card_calls: ByCode::new(),
            answer_latency: Histogram::new(),
            llm_latency: Histogram::new(),
            claim_latency: Histogram::with_bounds(&CLAIM_BUCKETS),
            reloads: Counter::new(),
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &Counter); 7] = [
            (
                "jitnode_messages_received_total",
                "Robot messages received.",
                &self.messages_received,
            ),
            (
                "jitnode_messages_acked_total",
                "Frames ACKed to the gateway.",
                &self.messages_acked,
            ),
            (
                "jitnode_messages_answered_total",
                "Questions answered.",
                &self.messages_answered,
            ),
            (
                "jitnode_messages_failed_total",
                "Questions whose answer failed.",
                &self.messages_failed,
            ),
            (
                "jitnode_dedupe_hits_total",
                "Redeliveries dropped as duplicates.",
                &self.dedupe_hits,
            ),
            (
                "jitnode_stream_reconnects_total",
                "Stream connections opened after the first.",
                &self.reconnects,
            ),
            (
                "jitnode_reloads_total",
                "Reloads applied to the running app.",
                &self.reloads,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let name = "jitnode_card_api_calls_total";
        let _ = writeln!(
            out,
            "# HELP {name} Card API calls by HTTP status (0: no answer).\n# TYPE {name} counter"
        );
        for (code, n) in self.card_calls.snapshot() {
            let _ = writeln!(out, "{name}{{code=\"{code}\"}} {n}");
        }
        self.answer_latency.render(
            "jitnode_answer_latency_seconds",
            "From a robot message to its final answer.",
            &mut out,
        );
        self.llm_latency.render(
            "jitnode_llm_latency_seconds",
            "One agent run: retrieval and LLM.",
            &mut out,
        );
        self.claim_latency.render(
            "jitnode_store_claim_seconds",
            "One claim of a robot message in the shared store, before its ACK.",
            &mut out,
        );
        out
    }
}

static GLOBAL: Metrics = Metrics::new();

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails with the whole rendering when `line` is not one of its lines.
    fn has_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }

    /// Fails unless `text` has the cumulative `buckets` (upper bound, count) of histogram
    /// `name`, and its `count` line.
    fn has_buckets(text: &str, name: &str, buckets: &[(&str, u64)], count: u64) {
        for (le, n) in buckets {
            has_line(text, &format!("{name}_bucket{{le=\"{le}\"}} {n}"));
        }
        has_line(text, &format!("{name}_count {count}"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_secs(100));
        let mut out = String::new();
        h.render("x", "help", &mut out);
        let buckets = [("0.005", 1), ("0.5", 2), ("30", 2), ("+Inf", 3)];
        has_buckets(&out, "x", &buckets, 3);
        has_line(&out, "x_sum 100.303");
    }

    #[test]
    fn claim_histogram_has_sub_millisecond_buckets() {
        let m = Metrics::new();
        m.claim_latency.observe(Duration::from_micros(400));
        m.claim_latency.observe(Duration::from_micros(1800));
        let buckets = [("0.0002", 0), ("0.0005", 1), ("0.002", 2)];
        has_buckets(&m.render(), "jitnode_store_claim_seconds", &buckets, 2);
    }

    #[test]
    fn card_calls_are_labelled_by_code() {
        let m = Metrics::new();
        m.card_calls.inc(403);
        m.card_calls.inc(200);
        m.card_calls.inc(200);
        let text = m.render();
        has_line(&text, "jitnode_card_api_calls_total{code=\"200\"} 2");
        has_line(&text, "jitnode_card_api_calls_total{code=\"403\"} 1");
    }
}
