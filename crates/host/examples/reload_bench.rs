//! Save-to-running latency of a config edit under `jitnode run --watch`.
//!
//! Generates an app of N `builtin:echo` instances (all `afterAppInit`) in a temp folder,
//! starts it with the real watcher (default options: native, 150 ms debounce), then edits
//! one instance's config.json at a time and measures from just before the write until that
//! instance's runtime has been loaded with the new config (the echo loader is wrapped to
//! report each load). Prints one line per N: `n=.. p50_ms=.. p99_ms=.. max_ms=..`.
//!
//! Usage: reload_bench <N> <edits> [<N> <edits> ...]

use std::time::{Duration, Instant};

use jitnode_host::watch::{self, WatchOptions};
use jitnode_host::{
    App, BoxError, BoxFuture, EchoLoader, ElementRuntime, LoadContext, Loader, Registry, Reloader,
};
use tokio::sync::mpsc;

/// `builtin:echo`, reporting (element, prefix) each time it loads an element.
struct Reporting {
    tx: mpsc::UnboundedSender<(String, String)>,
}

impl Loader for Reporting {
    fn load(&self, cx: LoadContext) -> BoxFuture<'_, Result<Box<dyn ElementRuntime>, BoxError>> {
        Box::pin(async move {
            let name = cx.full_name().to_string();
            let prefix = EchoLoader::prefix(&cx);
            let rt = EchoLoader.load(cx).await?;
            let _ = self.tx.send((name, prefix));
            Ok(rt)
        })
    }
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create folder");
    std::fs::write(path, text).expect("write file");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(n: usize, edits: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let app_dir = dir.path().to_path_buf();
    let root = app_dir.join("elements");
    write(&root.join("bench/meta/e.json"), r#"{"type": ""}"#);
    write(
        &root.join("bench/echoType/e.json"),
        r#"{"type": "bench.meta", "backendBundleEntry": "builtin:echo"}"#,
    );
    for i in 0..n {
        let d = root.join(format!("bench/g{}/i{i}", i / 100));
        write(
            &d.join("e.json"),
            r#"{"type": "bench.echoType", "backendLoadTime": "afterAppInit"}"#,
        );
        write(&d.join("config.json"), r#"{"prefix": "start"}"#);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut registry = Registry::with_builtins();
    registry.register("echo", Reporting { tx });
    let (app, _) = App::open(&app_dir, false, registry).expect("open the generated app");
    let t = Instant::now();
    let started = app.start().await;
    assert_eq!(started.started.len(), n, "{:?}", started.failed);
    eprintln!("n={n}: started in {:?}", t.elapsed());
    while rx.try_recv().is_ok() {}

    let mut reloader = Reloader::new(&app_dir, app.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = WatchOptions::default();
    // Its watches are in place once this returns: the first edit is seen.
    let events = watch::FileEvents::watch(&app_dir, &options).expect("watch the app");
    let watcher = tokio::spawn(async move {
        watch::run_events(&mut reloader, events, &options, stop_rx, |_| {}).await
    });

    let mut lat = Vec::with_capacity(edits);
    for k in 0..edits {
        let i = (k * 7919) % n;
        let name = format!("bench.g{}.i{i}", i / 100);
        let prefix = format!("edit{k}");
        let path = root.join(format!("bench/g{}/i{i}/config.json", i / 100));
        let t0 = Instant::now();
        write(&path, &format!(r#"{{"prefix": "{prefix}"}}"#));
        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some((el, p)) = rx.recv().await {
                if el == name && p == prefix {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            seen,
            Ok(true),
            "edit {k} of {name} was not reloaded in time"
        );
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = stop_tx.send(());
    let _ = watcher.await;
    app.stop(Duration::from_secs(5)).await;
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "n={n} edits={edits} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are numbers: <N> <edits> ..."))
        .collect();
    let pairs: Vec<(usize, usize)> = if args.is_empty() {
        vec![(10, 50), (1000, 20)]
    } else {
        args.chunks(2)
            .map(|c| (c[0], *c.get(1).unwrap_or(&20)))
            .collect()
    };
    for (n, edits) in pairs {
        bench(n, edits).await;
    }
}
