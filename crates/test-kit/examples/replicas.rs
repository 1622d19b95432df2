//! Replica driver of bench/replicas.sh: one sandbox app served by several real `jitnode run`
//! hosts (the command given after `--`, run on the app directory given with `--app`) that
//! share one throwaway PostgreSQL cluster; DingTalk (the sandbox, in this process) pushes
//! each question on one of the app's connections at random.
//!
//! Phase 1, replicas: `REPLICAS_QUESTIONS` (2000) questions, each from its own user, at most
//! `REPLICAS_WINDOW` (100) awaiting their answer; `REPLICAS_REDELIVER_PCT` % (5) pushed
//! again 0-3 s later (same msgId), half of them on a connection of another host; every
//! `REPLICAS_DROP_MS` (1500) one connection chosen at random is dropped without a close
//! frame (the sandbox pushes again what stays unACKed after 5 s); host 0 is killed with
//! SIGKILL at a third and at two thirds of the questions and restarted each time. Claims
//! expire after `REPLICAS_LEASE_SECS` (3), so a dead host's claims and cards are taken over
//! or finalized within the run.
//!
//! Phase 2, one host alone with the offline agent, no faults: `REPLICAS_SOLO` (2000)
//! questions on SQLite, then on PostgreSQL; answers/s of each. These run on the app given
//! with `--solo-app` (bench/replicas.sh gives a copy whose agent streams without its typing
//! pause).
//!
//! Claim latency is what the hosts measured around their store call
//! (`jitnode_store_claim_seconds` on each host's /metrics, read before each SIGKILL and at
//! the end), its p99 interpolated within the histogram's buckets as Prometheus'
//! `histogram_quantile` does.
//!
//! Prints progress on stderr, then `faults: ..` and, last, `questions=.. answered_once=..
//! duplicates=.. lost=.. stuck_cards=.. answers_per_s=.. claim_p99_ms=..
//! sqlite_answers_per_s=.. pg_answers_per_s=..`. `lost` counts questions nothing came back
//! for; a question whose host died mid-answer and whose card the sweeper finalized as
//! failed is `notice_only` on the faults line. Exits 1 when a target is missed
//! (duplicates, lost or stuck cards above 0, claim p99 of 2 ms or more, answers/s under
//! 500 on SQLite or 300 on PostgreSQL).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jitnode_sandbox::{PostMessage, Sandbox, SandboxConfig};
use jitnode_test_kit::drive::{
    env_num, follow, post, redeliver_later, stuck_cards, Rng, Stop, Tally, QUESTIONS,
};
use jitnode_test_kit::postgres::PgCluster;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const APP: &str = "replicas-app";
const SECRET: &str = "replicas-secret";
const USER: &str = "rq-";
const CLAIM_METRIC: &str = "jitnode_store_claim_seconds_bucket{le=\"";

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind a port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// How one host is started.
#[derive(Clone)]
struct HostSpec {
    cmd: Vec<String>,
    app_dir: PathBuf,
    client_id: &'static str,
    secret: &'static str,
    store_url: String,
    lease_secs: u64,
    sandbox_url: String,
    verbose: bool,
}

/// One `jitnode run` process.
struct Host {
    child: Child,
    metrics: String,
}

impl Host {
    fn start(spec: &HostSpec) -> Result<Host, String> {
        let port = free_port()?;
        let child = Command::new(&spec.cmd[0])
            .args(&spec.cmd[1..])
            .arg(&spec.app_dir)
            .args(["--no-console", "--metrics", &format!("127.0.0.1:{port}")])
            .env("DINGTALK_OPENAPI_ENDPOINT", &spec.sandbox_url)
            .env("DINGTALK_CLIENT_ID", spec.client_id)
            .env("DINGTALK_CLIENT_SECRET", spec.secret)
            .env("JITNODE_STORE_URL", &spec.store_url)
            .env("JITNODE_STORE_LEASE_SECS", spec.lease_secs.to_string())
            .stdout(Stdio::null())
            .stderr(if spec.verbose {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", spec.cmd[0]))?;
        Ok(Host {
            child,
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        })
    }

    /// The host's claim histogram: (upper bound in seconds, cumulative count), ascending,
    /// +Inf last.
    async fn claim_buckets(&self, http: &reqwest::Client) -> Vec<(f64, u64)> {
        let text = match http.get(&self.metrics).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => {
                eprintln!("replicas: {}: {e}", self.metrics);
                String::new()
            }
        };
        text.lines()
            .filter_map(|l| l.strip_prefix(CLAIM_METRIC))
            .filter_map(|rest| {
                let (le, n) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, n.trim().parse().ok()?))
            })
            .collect()
    }

    async fn sigkill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    async fn stop(mut self) {
        if !jitnode_test_kit::drive::terminate(&mut self.child, Duration::from_secs(10)).await {
            self.sigkill().await;
        }
    }
}

/// Claim histograms of several processes, added up.
#[derive(Default)]
struct ClaimLatency(Vec<(f64, u64)>);

impl ClaimLatency {
    fn add(&mut self, buckets: &[(f64, u64)]) {
        if self.0.is_empty() {
            self.0 = buckets.to_vec();
            return;
        }
        for (mine, theirs) in self.0.iter_mut().zip(buckets) {
            mine.1 += theirs.1;
        }
    }

    fn count(&self) -> u64 {
        self.0.last().map_or(0, |b| b.1)
    }

    /// `<=bound ms: count` per bucket (not cumulative), for the log.
    fn shown(&self) -> String {
        let mut below = 0;
        let mut parts = Vec::new();
        for &(le, n) in &self.0 {
            parts.push(format!("<={}ms:{}", le * 1000.0, n - below));
            below = n;
        }
        parts.join(" ")
    }

    /// The `q` quantile in ms, linear within its bucket (the largest finite bound when it
    /// falls in +Inf).
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = q * total as f64;
        let (mut lo, mut below) = (0.0, 0u64);
        for &(le, n) in &self.0 {
            if n as f64 >= rank {
                if le.is_infinite() {
                    return lo * 1000.0;
                }
                let within = (n - below).max(1) as f64;
                return (lo + (le - lo) * (rank - below as f64) / within) * 1000.0;
            }
            (lo, below) = (le, n);
        }
        lo * 1000.0
    }
}

/// Waits for a connection of `app` not in `known`; returns it.
async fn new_connection(sb: &Sandbox, app: &str, known: &[String]) -> Option<String> {
    // The first start may build the demo's native plugin.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(c) = sb
            .connections_of(app)
            .into_iter()
            .map(|c| c.connection_id)
            .find(|c| !known.contains(c))
        {
            return Some(c);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // Woken by the next change of the app's connections (or the deadline).
        let n = sb.connections_of(app).len() + 1;
        sb.wait_for_connections(app, n, left.min(Duration::from_secs(1)))
            .await;
    }
}

/// Which host each connection belongs to: learnt as each host's new connection appears,
/// one fault at a time, so a reconnect is the dropped or restarted host's.
#[derive(Default)]
struct Owners(Mutex<HashMap<String, usize>>);

impl Owners {
    fn set(&self, conn: String, host: usize) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn, host);
    }
    fn of(&self, conn: &str) -> Option<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(conn)
            .copied()
    }
    fn known(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

#[derive(Default)]
struct Faults {
    redelivered: AtomicU64,
    elsewhere: AtomicU64,
    drops: AtomicU64,
    kills: AtomicU64,
}

/// What the fault task shares with the posting loop.
struct Replicas {
    sb: Arc<Sandbox>,
    spec: HostSpec,
    hosts: tokio::sync::Mutex<Vec<Host>>,
    owners: Owners,
    faults: Faults,
    claims: Mutex<ClaimLatency>,
    http: reqwest::Client,
    posted: AtomicU64,
}

impl Replicas {
    /// Starts host `i` (or restarts it in its slot) and learns its connection.
    async fn start_host(&self, i: usize) -> Result<(), String> {
        let known = self.owners.known();
        let host = Host::start(&self.spec)?;
        {
            let mut hosts = self.hosts.lock().await;
            if i < hosts.len() {
                hosts[i] = host;
            } else {
                hosts.push(host);
            }
        }
        let conn = new_connection(&self.sb, APP, &known)
            .await
            .ok_or(format!("host {i} did not connect within 300 s"))?;
        self.owners.set(conn, i);
        Ok(())
    }

    async fn kill_and_restart(&self, i: usize) -> Result<(), String> {
        {
            let mut hosts = self.hosts.lock().await;
            let buckets = hosts[i].claim_buckets(&self.http).await;
            if self.spec.verbose {
                eprintln!(
                    "replicas: host {i} claims before its kill: {}",
                    ClaimLatency(buckets.clone()).shown()
                );
            }
            self.claims
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(&buckets);
            hosts[i].sigkill().await;
        }
        self.faults.kills.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "replicas: host {i} killed (SIGKILL) at {} posted",
            self.posted.load(Ordering::Relaxed)
        );
        self.start_host(i).await
    }

    /// Drops one of the app's connections at random and learns its host's reconnection.
    async fn drop_one(&self, rng: &mut Rng) {
        let conns = self.sb.connections_of(APP);
        if conns.is_empty() {
            return;
        }
        let c = &conns[rng.below(conns.len() as u64) as usize];
        let owner = self.owners.of(&c.connection_id);
        let known = self.owners.known();
        if self.sb.drop_connection(&c.connection_id).is_err() {
            return;
        }
        self.faults.drops.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = owner {
            if let Some(new) = new_connection(&self.sb, APP, &known).await {
                self.owners.set(new, h);
            }
        }
    }

    /// A connection of a host other than the one `conn` belongs to, if one is known.
    fn elsewhere(&self, conn: Option<&str>, rng: &mut Rng) -> Option<String> {
        let owner = conn.and_then(|c| self.owners.of(c))?;
        let others: Vec<String> = self
            .sb
            .connections_of(APP)
            .into_iter()
            .filter(|c| c.accepting && self.owners.of(&c.connection_id).is_some_and(|h| h != owner))
            .map(|c| c.connection_id)
            .collect();
        (!others.is_empty()).then(|| others[rng.below(others.len() as u64) as usize].clone())
    }
}

/// Drops and kills, one at a time, until `stop`: a drop every `drop_every`, and host 0
/// killed and restarted as the posted count passes each of `kill_at`.
async fn fault_task(
    r: Arc<Replicas>,
    drop_every: Duration,
    mut kill_at: Vec<u64>,
    seed: u64,
    stop: Arc<Stop>,
) -> Result<(), String> {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut next_drop = Instant::now() + drop_every;
    loop {
        let posted = r.posted.load(Ordering::Relaxed);
        if kill_at.first().is_some_and(|&k| posted >= k) {
            kill_at.remove(0);
            r.kill_and_restart(0).await?;
        }
        if Instant::now() >= next_drop {
            r.drop_one(&mut rng).await;
            next_drop = Instant::now() + drop_every;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.stopped() => return Ok(()),
        }
    }
}

/// Posts `n` questions by users of `tally`, at most `window` awaiting their answer;
/// `each` sees every posted one. Returns how many were posted (fewer if answers stalled)
/// and the seconds from the first post until every posted one was done (or stalled).
async fn ask_all(
    sb: &Sandbox,
    app: &str,
    tally: &Tally,
    n: u64,
    window: u64,
    mut each: impl FnMut(u64, &jitnode_sandbox::Posted),
) -> Result<(u64, f64), String> {
    let started = Instant::now();
    let mut last_report = started;
    let mut posted = n;
    for i in 0..n {
        if i >= window
            && !tally
                .wait_done(i - window + 1, Duration::from_secs(60))
                .await
        {
            eprintln!(
                "replicas: {app}: stalled: {} of {i} done after 60 s",
                tally.done()
            );
            posted = i;
            break;
        }
        let user = tally.user(i);
        let m = PostMessage::text(app, QUESTIONS[i as usize % QUESTIONS.len()])
            .from(Some(&user), &user);
        let p = post(sb, &m).await?;
        each(i, &p);
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "replicas: {app}: {i} posted, {} done, {:.0}/s",
                tally.done(),
                tally.done() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    if !tally.wait_done(posted, Duration::from_secs(30)).await {
        eprintln!(
            "replicas: {app}: {} of {posted} done; the rest stalled",
            tally.done()
        );
    }
    Ok((posted, started.elapsed().as_secs_f64()))
}

/// One host alone on `store_url`, no faults: answers/s over `n` questions.
async fn solo(
    sb: &Arc<Sandbox>,
    spec: &HostSpec,
    n: u64,
    window: u64,
) -> Result<(f64, f64, u64), String> {
    let app = spec.client_id;
    sb.register_app(app, spec.secret);
    let tally = Arc::new(Tally::new(app, "solo-", n as usize));
    let stop = Stop::new();
    let follower = tokio::spawn(follow(sb.clone(), vec![tally.clone()], stop.clone()));
    let host = Host::start(spec)?;
    let result = async {
        new_connection(sb, app, &[])
            .await
            .ok_or(format!("{app}: the host did not connect within 300 s"))?;
        // Warm-up (first statements, first cards), not counted.
        let warm = Tally::new(app, "warm-", 50);
        let warm = Arc::new(warm);
        let wf = tokio::spawn(follow(sb.clone(), vec![warm.clone()], stop.clone()));
        ask_all(sb, app, &warm, 50, 50, |_, _| {}).await?;
        let (posted, secs) = ask_all(sb, app, &tally, n, window, |_, _| {}).await?;
        let http = reqwest::Client::new();
        let mut lat = ClaimLatency::default();
        lat.add(&host.claim_buckets(&http).await);
        let c = tally.counts(posted as usize);
        Ok::<_, String>((
            c.answered_once as f64 / secs,
            lat.quantile_ms(0.99),
            posted - c.answered_once as u64,
            wf,
        ))
    }
    .await;
    host.stop().await;
    stop.stop();
    let _ = follower.await;
    let (per_s, p99, missing, wf) = result?;
    let _ = wf.await;
    Ok((per_s, p99, missing))
}

struct Args {
    app: PathBuf,
    /// The app of the single-host runs (`--solo-app`; default `--app`).
    solo_app: PathBuf,
    cmd: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut app = None;
    let mut solo_app = None;
    let mut cmd = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--app" => app = it.next().map(PathBuf::from),
            "--solo-app" => solo_app = it.next().map(PathBuf::from),
            "--" => cmd = it.by_ref().collect(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let app = app.ok_or("give the app directory with --app")?;
    if cmd.is_empty() {
        return Err("give the robot command after -- (e.g. jitnode run)".into());
    }
    Ok(Args {
        solo_app: solo_app.unwrap_or_else(|| app.clone()),
        app,
        cmd,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let n = env_num("REPLICAS_QUESTIONS", 2000u64)?;
    let hosts_n = env_num("REPLICAS_HOSTS", 3u64)?.max(2) as usize;
    let window = env_num("REPLICAS_WINDOW", 100u64)?.max(1);
    let redeliver_pct = env_num("REPLICAS_REDELIVER_PCT", 5.0f64)?;
    let drop_every = Duration::from_millis(env_num("REPLICAS_DROP_MS", 1500u64)?.max(100));
    let lease_secs = env_num("REPLICAS_LEASE_SECS", 3u64)?.max(1);
    let solo_n = env_num("REPLICAS_SOLO", 2000u64)?;
    let seed = env_num("REPLICAS_SEED", 10u64)?.max(1);
    let verbose = std::env::var_os("REPLICAS_VERBOSE").is_some();
    // Off by default, as the tests run it. With it on, each claim's commit also waits for
    // its WAL flush, which is the disk's time, not the host's (about 5 ms on a plain VM
    // disk, a fraction of a millisecond on a local SSD).
    let fsync = std::env::var("REPLICAS_PG_FSYNC").unwrap_or_else(|_| "off".into());
    let fsync_shown = fsync.clone();

    let pg =
        tokio::task::spawn_blocking(move || PgCluster::start_with(&[("fsync", &fsync)])).await?;
    let sb = Arc::new(
        Sandbox::start(SandboxConfig {
            // Frames lost with a dropped link, and messages a killed host claimed but never
            // ACKed, come back this way.
            redeliver_unacked_after: Some(Duration::from_secs(5)),
            ..SandboxConfig::default()
        })
        .await?,
    );
    sb.register_app(APP, SECRET);
    let spec = HostSpec {
        cmd: a.cmd.clone(),
        app_dir: a.app.clone(),
        client_id: APP,
        secret: SECRET,
        store_url: pg.url(),
        lease_secs,
        sandbox_url: sb.base_url(),
        verbose,
    };
    let r = Arc::new(Replicas {
        sb: sb.clone(),
        spec,
        hosts: tokio::sync::Mutex::new(Vec::new()),
        owners: Owners::default(),
        faults: Faults::default(),
        claims: Mutex::new(ClaimLatency::default()),
        http: reqwest::Client::new(),
        posted: AtomicU64::new(0),
    });
    let tally = Arc::new(Tally::new(APP, USER, n as usize));
    let stop_follow = Stop::new();
    let follower = tokio::spawn(follow(sb.clone(), vec![tally.clone()], stop_follow.clone()));

    let phase1 = async {
        // One at a time: the first builds dist/ (and the native plugin) for all.
        for i in 0..hosts_n {
            r.start_host(i).await?;
            eprintln!("replicas: host {i} connected");
        }
        let stop_faults = Stop::new();
        let faults = tokio::spawn(fault_task(
            r.clone(),
            drop_every,
            vec![n / 3, 2 * n / 3],
            seed,
            stop_faults.clone(),
        ));
        let mut rng = Rng(seed);
        let (posted, secs) = ask_all(&sb, APP, &tally, n, window, |i, p| {
            r.posted.store(i + 1, Ordering::Relaxed);
            if rng.chance(redeliver_pct) {
                r.faults.redelivered.fetch_add(1, Ordering::Relaxed);
                let to = if rng.chance(50.0) {
                    r.elsewhere(p.connection_id.as_deref(), &mut rng)
                } else {
                    None
                };
                if to.is_some() {
                    r.faults.elsewhere.fetch_add(1, Ordering::Relaxed);
                }
                let delay = Duration::from_millis(rng.below(3000));
                redeliver_later(sb.clone(), APP, p.message_id.clone(), delay, to);
            }
        })
        .await?;
        stop_faults.stop();
        faults.await.map_err(|e| format!("fault task: {e}"))??;
        // Late redeliveries (3 s), unACKed ones (5 s) and the sweep of a dead host's cards
        // (a lease and half) may still come: a duplicate or a finalized card shows now.
        let settle = Duration::from_secs((lease_secs * 2).max(8));
        tokio::time::sleep(settle).await;
        let mut hosts = r.hosts.lock().await;
        for (i, h) in hosts.iter().enumerate() {
            let b = h.claim_buckets(&r.http).await;
            if verbose {
                eprintln!(
                    "replicas: host {i} claims: {}",
                    ClaimLatency(b.clone()).shown()
                );
            }
            r.claims.lock().unwrap_or_else(|e| e.into_inner()).add(&b);
        }
        for h in hosts.drain(..) {
            h.stop().await;
        }
        Ok::<_, String>((posted, secs))
    }
    .await;
    let (posted, secs) = match phase1 {
        Ok(v) => v,
        Err(e) => {
            for h in r.hosts.lock().await.drain(..) {
                h.stop().await;
            }
            return Err(e.into());
        }
    };
    let counts = tally.counts(posted as usize);
    // What the store knows of each lost question (its user is in the kept message).
    for i in tally.lost(posted as usize).into_iter().take(5) {
        let user = tally.user(i as u64);
        let row = pg.psql(&format!(
            "SELECT msg_key, host, state, attempts, claimed_at_ms, lease_until_ms, message IS NULL \
             FROM inbox WHERE message LIKE '%\"{user}\"%'"
        ));
        eprintln!(
            "replicas: lost question {i} ({user}): inbox: {}",
            row.trim()
        );
    }
    let stuck = stuck_cards(&sb, APP).len();
    let problems = sb.problems();
    for p in problems.iter().take(5) {
        eprintln!("replicas: sandbox problem: {p}");
    }
    let (claim_p99, claims) = {
        let c = r.claims.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!("replicas: claims per bucket: {}", c.shown());
        (c.quantile_ms(0.99), c.count())
    };
    stop_follow.stop();
    let _ = follower.await;

    let solo_dir = tempfile::tempdir()?;
    let solo_spec = |client_id, store_url: String| HostSpec {
        cmd: a.cmd.clone(),
        app_dir: a.solo_app.clone(),
        client_id,
        secret: SECRET,
        store_url,
        lease_secs: 60,
        sandbox_url: sb.base_url(),
        verbose,
    };
    let sqlite_url = format!("sqlite:{}", solo_dir.path().join("solo.sqlite3").display());
    let (sqlite_per_s, sqlite_p99, sqlite_missing) =
        solo(&sb, &solo_spec("solo-sqlite", sqlite_url), solo_n, 200).await?;
    let (pg_per_s, pg_p99, pg_missing) =
        solo(&sb, &solo_spec("solo-pg", pg.url()), solo_n, 200).await?;

    let f = &r.faults;
    println!(
        "faults: hosts={hosts_n} pg_fsync={fsync_shown} redelivered={} redelivered_to_other_host={} drops={} kills={} notice_only={} card_errors={} problems={} claims={claims} secs={secs:.1} solo_questions={solo_n} sqlite_claim_p99_ms={sqlite_p99:.2} pg_claim_p99_ms={pg_p99:.2} solo_unanswered={}",
        f.redelivered.load(Ordering::Relaxed),
        f.elsewhere.load(Ordering::Relaxed),
        f.drops.load(Ordering::Relaxed),
        f.kills.load(Ordering::Relaxed),
        counts.notice_only,
        tally.card_errors.load(Ordering::Relaxed),
        problems.len(),
        sqlite_missing + pg_missing,
    );
    let answers_per_s = (counts.answered_once + counts.notice_only) as f64 / secs;
    println!(
        "questions={posted} answered_once={} duplicates={} lost={} stuck_cards={stuck} answers_per_s={answers_per_s:.0} claim_p99_ms={claim_p99:.2} sqlite_answers_per_s={sqlite_per_s:.0} pg_answers_per_s={pg_per_s:.0}",
        counts.answered_once, counts.duplicates, counts.lost,
    );
    drop(pg);
    let missed = posted < n
        || counts.duplicates > 0
        || counts.lost > 0
        || stuck > 0
        || claim_p99 >= 2.0
        || sqlite_per_s < 500.0
        || pg_per_s < 300.0;
    if missed {
        std::process::exit(1);
    }
    Ok(())
}
