//! Store-level replica bench (bench/store-claims.sh): 3 hosts (own pools) on one throwaway
//! PostgreSQL cluster race to claim 2,000 messages; 5% are delivered again to a random
//! host. Then one host claims alone on SQLite and on PostgreSQL. Prints the `key=value` line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jitnode_store::{Claim, ClaimState, Store, StoreOptions, StoreUrl, DEFAULT_LEASE};
use jitnode_test_kit::postgres::PgCluster;

const QUESTIONS: usize = 2000;

async fn open(url: &str, dir: &std::path::Path) -> Store {
    let u = StoreUrl::parse(url, "bench", dir).expect("url");
    Store::open(&u, &StoreOptions::default())
        .await
        .expect("store")
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() * 99 / 100).copied().unwrap_or(0.0)
}

/// Claims then marks answered, one message after another, on one host.
async fn single_host(store: &Store, n: usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        let key = format!("solo-{i}");
        if let Claim::Won { .. } = store
            .claim(&key, "solo", DEFAULT_LEASE)
            .await
            .expect("claim")
        {
            store
                .set_claim(&key, "solo", ClaimState::Answered, DEFAULT_LEASE)
                .await
                .expect("answered");
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Off by default, as the tests run it; CLAIMS_PG_FSYNC=on adds each commit's WAL flush.
    let fsync = std::env::var("CLAIMS_PG_FSYNC").unwrap_or_else(|_| "off".into());
    let pg = PgCluster::start_with(&[("fsync", &fsync)]);
    let hosts: Vec<Store> = open_hosts(&pg.url(), dir.path()).await;
    let wins: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    // Deliveries: every question once, 5% twice, to a host picked by a fixed-seed LCG.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut deliveries = Vec::new();
    for i in 0..QUESTIONS {
        for _ in 0..(if i % 20 == 0 { 2 } else { 1 }) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            deliveries.push((i, (seed >> 33) as usize % hosts.len()));
        }
    }
    let redelivered = deliveries.len() - QUESTIONS;
    let sem = Arc::new(tokio::sync::Semaphore::new(24));
    for (i, h) in deliveries {
        let store = hosts[h].clone();
        let (wins, lat, sem) = (wins.clone(), lat.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.expect("open semaphore");
            let host = format!("host-{h}");
            let key = format!("q-{i}");
            let t = Instant::now();
            let c = store
                .claim(&key, &host, DEFAULT_LEASE)
                .await
                .expect("claim");
            lat.lock()
                .expect("lock")
                .push(t.elapsed().as_secs_f64() * 1000.0);
            if let Claim::Won { .. } = c {
                store
                    .set_claim(&key, &host, ClaimState::Answered, DEFAULT_LEASE)
                    .await
                    .expect("answered");
                *wins.lock().expect("lock").entry(i).or_default() += 1;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    let wins = wins.lock().expect("lock").clone();
    let answered_once = wins.values().filter(|&&n| n == 1).count();
    let duplicates: usize = wins.values().map(|&n| n.saturating_sub(1)).sum();
    let lost = QUESTIONS - wins.len();
    let claim_p99 = p99(lat.lock().expect("lock").clone());
    let sqlite = single_host(&open("sqlite:solo.sqlite3", dir.path()).await, 1000).await;
    let pg_solo = single_host(&hosts[0], 1000).await;
    println!("hosts=3 pg_fsync={fsync} redelivered={redelivered} sqlite_single_host_claims_per_s={sqlite:.0} pg_single_host_claims_per_s={pg_solo:.0}");
    println!(
        "questions={QUESTIONS} answered_once={answered_once} duplicates={duplicates} lost={lost} answers_per_s={:.0} claim_p99_ms={claim_p99:.2}",
        QUESTIONS as f64 / secs
    );
    drop(pg);
}

async fn open_hosts(url: &str, dir: &std::path::Path) -> Vec<Store> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(open(url, dir).await);
    }
    v
}
