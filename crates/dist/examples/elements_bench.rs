//! Benchmark driver for `bench/elements.sh`: generates apps of 1,000 and 10,000 elements
//! and times cold `build`, warm `ensure` and `check` against the I/O floor (reading every
//! source file once, in this process, on one thread).
//!
//! Usage: elements_bench <work-dir>

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jitnode_element::{check, Env};

/// Families of 100: one Meta, three Types (each with a loader), 96 instances with a config
/// template; every fourth instance starts after app init. Reuses a tree generated earlier
/// (marker file) so runs do not delete and recreate 20,000 files; returns the source file
/// paths either way.
fn generate(app: &Path, n: usize) -> Vec<PathBuf> {
    const MARK: &str = "generated-v1";
    let marker = app.join(".generated");
    let reuse = fs::read_to_string(&marker).is_ok_and(|m| m == format!("{MARK} {n}"));
    if !reuse && app.exists() {
        move_aside(app, &app.parent().expect("app has a parent").join("trash"));
    }
    let root = app.join("elements");
    let mut files = Vec::with_capacity(n * 2);
    let mut write = |path: PathBuf, text: String| {
        if !reuse {
            fs::create_dir_all(path.parent().expect("generated paths have a parent"))
                .expect("create bench folder");
            fs::write(&path, text).expect("write bench file");
        }
        files.push(path);
    };
    let families = n.div_ceil(100);
    let mut made = 0;
    'outer: for f in 0..families {
        let fam = format!("fam{f}");
        write(
            root.join(&fam).join("meta/e.json"),
            format!("{{\n  \"type\": \"\",\n  \"title\": \"Family {f}\"\n}}\n"),
        );
        made += 1;
        for t in 0..3 {
            if made == n {
                break 'outer;
            }
            write(
                root.join(&fam).join(format!("Type{t}/e.json")),
                format!(
                    "{{\n  \"type\": \"{fam}.meta\",\n  \"title\": \"Type {t}\",\n  \"backendBundleEntry\": \"builtin:bench{t}\",\n  \"inputArgs\": [{{\"name\": \"token\"}}]\n}}\n"
                ),
            );
            made += 1;
        }
        for i in 0..96 {
            if made == n {
                break 'outer;
            }
            let t = i % 3;
            let load = if i % 4 == 0 {
                ",\n  \"backendLoadTime\": \"afterAppInit\""
            } else {
                ""
            };
            let dir = root.join(&fam).join(format!("inst/i{i}"));
            write(
                dir.join("e.json"),
                format!(
                    "{{\n  \"type\": \"{fam}.Type{t}\",\n  \"title\": \"Instance {i}\"{load}\n}}\n"
                ),
            );
            write(
                dir.join("config.json"),
                format!(
                    "{{\n  \"token\": \"{{{{BENCH_TOKEN}}}}\",\n  \"host\": \"<<BENCH_HOST:-localhost>>\",\n  \"port\": {{{{BENCH_PORT:-8080}}}},\n  \"name\": \"{fam}-{i}\",\n  \"retries\": 3\n}}\n"
                ),
            );
            made += 1;
        }
    }
    if !reuse {
        fs::write(&marker, format!("{MARK} {n}")).expect("write marker");
    }
    files
}

/// Moves `dir` into `trash` instead of deleting it: on this ext4 (no journal) creating files
/// right after deleting many is slowed by the allocator skipping recently freed inodes, which
/// would measure the deletion, not the build. The trash is deleted once, at the end.
fn move_aside(dir: &Path, trash: &Path) {
    if dir.exists() {
        fs::create_dir_all(trash).expect("create trash");
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let to = trash.join(format!("{}-{n}", std::process::id()));
        fs::rename(dir, to).expect("move aside");
    }
}

fn ms(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1000.0
}

/// Median of `runs` timings; `prepare` runs untimed before each.
fn median(runs: usize, mut prepare: impl FnMut(), mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            prepare();
            ms(&mut f)
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Figures {
    floor: f64,
    copy: f64,
    cold: f64,
    warm: f64,
    check: f64,
}

fn bench(work: &Path, n: usize) -> Figures {
    let app = work.join(format!("app-{n}"));
    let files = generate(&app, n);
    let env = Env::from_map(HashMap::from([(
        "BENCH_TOKEN".to_string(),
        "t0k\"en".to_string(),
    )]));

    let floor = median(
        5,
        || {},
        || {
            let mut total = 0usize;
            for f in &files {
                total += fs::read(f).expect("read bench file").len();
            }
            assert!(total > 0);
        },
    );
    let trash = work.join("trash");
    // The real floor for a build that writes dist/: a plain single-threaded copy of the
    // same files (read, mkdir, write), as many runs as the cold build gets.
    let copy_root = app.join("copy");
    let elements = app.join("elements");
    let copy = median(
        3,
        || move_aside(&copy_root, &trash),
        || {
            let mut made = std::collections::HashSet::new();
            for f in &files {
                let rel = f.strip_prefix(&elements).expect("file under elements");
                let to = copy_root.join(rel);
                let parent = to.parent().expect("file has a parent");
                if made.insert(parent.to_path_buf()) {
                    fs::create_dir_all(parent).expect("mkdir");
                }
                fs::write(&to, fs::read(f).expect("read")).expect("write");
            }
        },
    );
    move_aside(&copy_root, &trash);
    let dist = app.join("dist");
    // Few cold runs: each creates ~3 inodes per element, and on this ext4 (no journal) freshly
    // freed inodes slow down later creations for minutes, so more runs measure the churn.
    let cold = median(
        3,
        || move_aside(&dist, &trash),
        || {
            let (tree, report) = jitnode_dist::build(&app).expect("cold build");
            assert!(report.full && tree.len() == n);
        },
    );
    let warm = median(
        7,
        || {},
        || {
            let (tree, report) = jitnode_dist::ensure(&app).expect("warm start");
            assert!(report.up_to_date() && tree.len() == n);
        },
    );
    let check_ms = median(
        5,
        || {},
        || {
            let p = check(&app.join("elements"), &env);
            assert!(p.is_empty(), "{p}");
        },
    );
    let f = Figures {
        floor,
        copy,
        cold,
        warm,
        check: check_ms,
    };
    println!(
        "{n:>6} elements, {} files: I/O floor {:.1} ms | plain copy {:.1} ms | cold build {:.1} ms ({:.2}x floor) | warm start {:.1} ms ({:.2}x) | check {:.1} ms ({:.2}x)",
        files.len(),
        f.floor,
        f.copy,
        f.cold,
        f.cold / f.floor,
        f.warm,
        f.warm / f.floor,
        f.check,
        f.check / f.floor
    );
    f
}

fn main() {
    // `elements_bench once <app>`: one cold build of an existing app (for profiling).
    if std::env::args().nth(1).as_deref() == Some("once") {
        let app = PathBuf::from(std::env::args().nth(2).expect("app folder"));
        move_aside(
            &app.join("dist"),
            &app.parent().expect("app has a parent").join("trash"),
        );
        let t = Instant::now();
        let (tree, _) = jitnode_dist::build(&app).expect("cold build");
        println!(
            "{} elements in {:.1} ms",
            tree.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
        return;
    }
    // `elements_bench warm <app>`: ten warm starts (for profiling).
    if std::env::args().nth(1).as_deref() == Some("warm") {
        let app = PathBuf::from(std::env::args().nth(2).expect("app folder"));
        for _ in 0..10 {
            let t = Instant::now();
            let (tree, r) = jitnode_dist::ensure(&app).expect("warm start");
            assert!(r.up_to_date());
            println!(
                "{} elements in {:.1} ms",
                tree.len(),
                t.elapsed().as_secs_f64() * 1000.0
            );
        }
        let t = Instant::now();
        let (found, _) = jitnode_element::walk(&app.join("elements"));
        let walk_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let bytes = fs::read(app.join("dist/manifest.json")).expect("manifest");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest JSON");
        let parse_ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "walk alone {walk_ms:.1} ms ({} elements); manifest read+parse alone {parse_ms:.1} ms ({} bytes, object: {})",
            found.len(),
            bytes.len(),
            v.is_object()
        );
        return;
    }
    let work = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "bench/.work".into()),
    );
    fs::create_dir_all(&work).expect("create work dir");
    println!(
        "threads: {} (floor = reading every source file once, one thread; medians)",
        jitnode_element::worker_count()
    );
    bench(&work, 1_000);
    let f = bench(&work, 10_000);
    let _ = fs::remove_dir_all(work.join("trash"));
    println!(
        "cold_10k_ms={:.1} copy_10k_ms={:.1} warm_10k_ms={:.1} check_10k_ms={:.1} floor_ratio={:.2} copy_ratio={:.2}",
        f.cold,
        f.copy,
        f.warm,
        f.check,
        f.cold / f.floor,
        f.cold / f.copy
    );
}
