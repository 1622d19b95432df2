//! The `jitnode` binary: wiring only. Element model, dist and runtime live in the library
//! crates; this file parses arguments, sets up logging and prints results.

mod ask_cmd;
mod doctor_cmd;
mod feedback_cmd;
mod sandbox_cmd;
mod store_cmd;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jitnode_element::AppTree;
use jitnode_host::{App, ChunkSink, Registry};
use serde_json::Value;

/// A host for JitAI-style elements (folders with an e.json), with a DingTalk robot built in.
///
/// An app directory holds `elements/` (the element sources), `dist/` (built from them) and an
/// optional `.env` (template variables; the process environment wins). APP defaults to the
/// current directory.
#[derive(Debug, Parser)]
#[command(name = "jitnode", version)]
struct Cli {
    /// More logs: -v for debug, -vv for trace. RUST_LOG, when set, decides instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report every problem of the app's elements; exit 1 if there is any.
    ///
    /// Covers e.json syntax and fields, type chains, config.json templates and their
    /// variables (from the environment and the app's .env), and every instance's rendered
    /// config against its Type's schema (native Types' plugins are built to read theirs).
    Check {
        /// The app directory (holds elements/, dist/, .env).
        #[arg(default_value = ".")]
        app: PathBuf,
    },
    /// Check each robot instance before going live: config, endpoint, credentials (token
    /// and Stream connection), card permissions. Each failure prints its fix; exit 1 on any.
    Doctor {
        /// The app directory (holds elements/, dist/, .env).
        #[arg(default_value = ".")]
        app: PathBuf,
    },
    /// Show element families as a tree (Meta > Type > instances).
    ///
    /// Each line gives the element's load time and the loader that loads it.
    Tree {
        /// The app directory (holds elements/, dist/, .env).
        #[arg(default_value = ".")]
        app: PathBuf,
    },
    /// Print the config schema of a Type: each field with its type, default and description.
    ///
    /// Given an instance, prints the schema its config.json is checked against.
    Schema {
        /// The app directory.
        #[arg(long, default_value = ".")]
        app: PathBuf,
        /// The Type's (or an instance's) fullName, e.g. aiagents.ragType.
        full_name: String,
        /// Print the JSON Schema itself.
        #[arg(long)]
        json: bool,
    },
    /// Build dist/ from elements/, rebuilding only what changed.
    ///
    /// Prints which elements were rebuilt and which were reused. Then builds the library of
    /// every native Type whose plugin crate changed into dist/native (with cargo) and
    /// records it there, so that dist/ runs without sources or cargo; unused library
    /// copies are removed.
    Build {
        /// The app directory (holds elements/, dist/, .env).
        #[arg(default_value = ".")]
        app: PathBuf,
    },
    /// Run the app until SIGINT/SIGTERM.
    ///
    /// Builds dist/ if stale, starts the beforeHandleRequest elements, then the
    /// afterAppInit ones, and loads the others on demand. An element failing to start is
    /// logged with its fullName; the rest keep running. Once every robot has connected or
    /// failed to (at most 15 s), a summary counts the elements started, failed and not
    /// ready, naming each that is not with why. On a signal, stops the elements
    /// (dependents first, each within --stop-deadline) and exits 0.
    Run {
        /// The app directory (holds elements/, dist/, .env).
        #[arg(default_value = ".")]
        app: PathBuf,
        /// Run from dist/ alone, without element sources.
        #[arg(long)]
        from_dist: bool,
        /// Also run the local DingTalk sandbox, register every robot's credentials with it
        /// and point the robots at it.
        #[arg(long)]
        sandbox: bool,
        /// Seconds each element gets to stop before it is abandoned.
        #[arg(long, default_value_t = 5, value_name = "SECS")]
        stop_deadline: u64,
        /// Reload changed elements while running: MODE auto (default), native or poll.
        #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true,
              default_missing_value = "auto", conflicts_with = "from_dist")]
        watch: Option<jitnode_host::WatchMode>,
        /// Serve the web console (and /healthz, /readyz, /metrics) at ADDR. Default: a
        /// free port on 127.0.0.1. Beyond loopback it demands a token, printed at start.
        #[arg(long, value_name = "ADDR", conflicts_with = "no_console")]
        console: Option<std::net::SocketAddr>,
        /// Do not serve the console.
        #[arg(long)]
        no_console: bool,
        /// With --no-console: serve only /healthz, /readyz and /metrics, at ADDR.
        #[arg(long, value_name = "ADDR", requires = "no_console")]
        metrics: Option<std::net::SocketAddr>,
        /// The shared store (`sqlite:PATH` or `postgres://user@host:port/db`); overrides
        /// JITNODE_STORE_URL (default `sqlite:data/jitnode.sqlite3`).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Call one function of one element, in-process.
    ///
    /// Loads just that element (and whatever it looks up), prints each streamed chunk as a
    /// JSON line as it arrives, then the result as the last line.
    Call {
        /// The app directory.
        #[arg(long, default_value = ".")]
        app: PathBuf,
        /// Run from dist/ alone, without element sources (implied when the app has no
        /// elements/).
        #[arg(long)]
        from_dist: bool,
        /// The element's fullName, e.g. demo.hello.
        full_name: String,
        /// The function to call, e.g. echo.
        function: String,
        /// Arguments as JSON (default: {}).
        args: Option<String>,
    },
    /// Play DingTalk's side on loopback, for local testing.
    Sandbox(sandbox_cmd::SandboxArgs),
    /// Ask the robot of a running `run --sandbox` a question; shows the card live.
    ///
    /// Posts the question through the sandbox (found via data/sandbox.json in the app
    /// directory), prints the card's text as it streams, then its buttons.
    Ask {
        /// The app directory.
        #[arg(long, default_value = ".")]
        app: PathBuf,
        /// Ask in a group chat (@-mentioning the robot) instead of one-to-one.
        #[arg(long)]
        group: bool,
        /// The robot instance to ask (its fullName), when the app has several.
        #[arg(long, value_name = "FULLNAME")]
        robot: Option<String>,
        /// The question.
        question: String,
    },
    /// Press a button on the last card shown by `ask`.
    ///
    /// BUTTON: very_helpful, helpful, unhelpful, very_unhelpful, regenerate or continue.
    Click {
        /// The app directory.
        #[arg(long, default_value = ".")]
        app: PathBuf,
        /// The robot instance whose last card to click (its fullName), when the app has
        /// several.
        #[arg(long, value_name = "FULLNAME")]
        robot: Option<String>,
        button: String,
    },
    /// List the robot's stored feedback, or export it.
    Feedback {
        /// The app directory.
        #[arg(long, default_value = ".")]
        app: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: feedback_cmd::Format,
        /// The store URL; overrides JITNODE_STORE_URL.
        #[arg(long)]
        store: Option<String>,
    },
    /// The shared store (claims, cards, records): `jitnode store status`.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Backend, schema version, counts, open claims and open cards (migrates first).
    Status {
        /// The app directory.
        #[arg(long, default_value = ".")]
        app: PathBuf,
        /// The store URL; overrides JITNODE_STORE_URL.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
}

impl Command {
    /// Quiet by default except for `run`, whose log is its output.
    fn default_level(&self) -> &'static str {
        match self {
            Command::Run { .. } | Command::Sandbox(_) => "info",
            _ => "warn",
        }
    }
}

fn init_logging(verbose: u8, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(match verbose {
            0 => default_level,
            1 => "debug",
            _ => "trace",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Where cargo builds native plugins, when set: one target dir shared by every native Type
/// and app (a CI cache, or tests), instead of `dist/native/<Type>/target`.
const NATIVE_TARGET_ENV: &str = "JITNODE_NATIVE_TARGET_DIR";

/// The native loader of an app: building from its sources, or (`dist_only`) loading only
/// the libraries recorded in its `dist/native/`, never running cargo.
fn native_loader(app: &Path, dist_only: bool) -> jitnode_native::NativeLoader {
    let mut options = match dist_only {
        true => jitnode_native::NativeOptions::for_dist(app),
        false => jitnode_native::NativeOptions::for_app(app),
    };
    if let Some(dir) = std::env::var_os(NATIVE_TARGET_ENV).filter(|d| !d.is_empty()) {
        options.target_dir = Some(PathBuf::from(dir));
    }
    jitnode_native::NativeLoader::new(options)
}

/// The loaders of this build: the host's own, the DingTalk robot, the AI agent, and native
/// plugins (built and kept under the app's `dist/native/`; see [`native_loader`]).
fn registry(app: &Path, dist_only: bool) -> Registry {
    let mut r = Registry::with_builtins();
    r.register(jitnode_robot::LOADER_NAME, jitnode_robot::loader());
    r.register(jitnode_agent::LOADER_NAME, jitnode_agent::loader());
    native_loader(app, dist_only).register(&mut r);
    r
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.command.default_level());
    let result = match cli.command {
        Command::Check { app } => check(&app).await,
        Command::Schema {
            app,
            full_name,
            json,
        } => schema(&app, &full_name, json).await,
        Command::Tree { app } => tree(&app),
        Command::Doctor { app } => doctor_cmd::doctor(&app).await,
        Command::Build { app } => build(&app).await,
        Command::Run {
            app,
            from_dist,
            sandbox,
            stop_deadline,
            watch,
            console,
            no_console,
            metrics,
            store,
        } => {
            let console = match (no_console, metrics) {
                (true, None) => None,
                (true, Some(addr)) => Some((addr, true)),
                (false, _) => Some((
                    console.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                    false,
                )),
            };
            match store_cmd::open(&app, store.as_deref()).await {
                Ok(store) => {
                    tracing::info!("store: {}", store.url());
                    jitnode_store::set_process_store(store);
                    run(
                        &app,
                        from_dist,
                        sandbox,
                        Duration::from_secs(stop_deadline),
                        watch,
                        console,
                    )
                    .await
                }
                Err(e) => Err(e),
            }
        }
        Command::Call {
            app,
            from_dist,
            full_name,
            function,
            args,
        } => call(&app, from_dist, &full_name, &function, args.as_deref()).await,
        Command::Sandbox(args) => sandbox_cmd::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Ask {
            app,
            group,
            robot,
            question,
        } => ask_cmd::ask(&app, robot.as_deref(), &question, group)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Click { app, robot, button } => ask_cmd::click(&app, robot.as_deref(), &button)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Feedback { app, format, store } => {
            feedback_cmd::run(&app, store.as_deref(), format)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Store {
            command: StoreCommand::Status { app, store },
        } => store_cmd::status(&app, store.as_deref())
            .await
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn check(app: &Path) -> Result<ExitCode, String> {
    let loaders = registry(app, false);
    let handle = tokio::runtime::Handle::current();
    let dir = app.to_path_buf();
    // Checking is synchronous; only the loaders' schemas (a native plugin may need a build)
    // are async, so they are awaited from the blocking thread.
    //
    // A loader that cannot give its schema (a native plugin that does not build here) is a
    // note, like a loader this build lacks: its instances' configs go unchecked, and `run`
    // reports the same failure when it loads them.
    let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = notes.clone();
    let problems = tokio::task::spawn_blocking(move || {
        jitnode_element::check_app_with(&dir, &|tree| {
            let (schemas, failed) = handle.block_on(jitnode_host::loader_schemas(tree, &loaders));
            noted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(failed.into_iter().map(|p| p.to_string()));
            (schemas, Vec::new())
        })
    })
    .await
    .map_err(|e| format!("checking did not finish: {e}"))?;
    let notes = std::mem::take(&mut *notes.lock().unwrap_or_else(|p| p.into_inner()));
    for note in notes {
        eprintln!("note: {note}; its instances' configs were not checked against it");
    }
    if problems.0.is_empty() {
        // Not a problem: an app may be checked before this build has all its loaders.
        if let Ok(tree) = jitnode_element::load_tree(&app.join("elements")) {
            for note in unavailable_loaders(&tree, &registry(app, false)) {
                eprintln!("note: {note}");
            }
            println!("ok: {} elements, no problems", tree.len());
        } else {
            println!("ok: no problems");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{problems}");
    let n = problems.0.len();
    println!("{n} problem{}", if n == 1 { "" } else { "s" });
    Ok(ExitCode::FAILURE)
}

async fn schema(app: &Path, full_name: &str, json: bool) -> Result<ExitCode, String> {
    let elements = app.join("elements");
    let tree = if elements.is_dir() {
        jitnode_element::load_tree(&elements).map_err(|p| p.to_string())?
    } else {
        jitnode_dist::load(app).map_err(|e| e.to_string())?
    };
    let el = tree
        .get(full_name)
        .ok_or_else(|| format!("no element named \"{full_name}\""))?;
    let (mut schemas, problems) =
        jitnode_host::loader_schemas(&tree, &registry(app, !app.join("elements").is_dir())).await;
    if let Some(p) = problems.first() {
        return Err(p.to_string());
    }
    let (files, problems) = jitnode_element::file_schemas(&tree);
    if let Some(p) = problems.first() {
        return Err(p.to_string());
    }
    for (name, s) in files.iter() {
        if schemas.get(name).is_none() {
            schemas.insert(name, s.clone());
        }
    }
    // A Type's own schema, else (an instance) the one its config is checked against.
    let found = match schemas.get(full_name) {
        Some(s) => Some((full_name, s)),
        None => schemas.for_element(el),
    };
    let Some((of, schema)) = found else {
        println!("{full_name}: no config schema (its config.json is not checked)");
        return Ok(ExitCode::SUCCESS);
    };
    if json {
        let text = serde_json::to_string_pretty(schema.raw()).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        println!("config.json of the instances of {of}:");
        print!("{}", schema.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// Types naming a loader this build does not have.
fn unavailable_loaders(tree: &AppTree, registry: &Registry) -> Vec<String> {
    tree.elements
        .values()
        .filter_map(|e| {
            let entry = e.def.backend_bundle_entry.as_deref()?;
            registry
                .get(entry)
                .is_none()
                .then(|| {
                    format!(
                        "{}: loader {entry} is not available in this build; its instances will not start",
                        e.full_name
                    )
                })
        })
        .collect()
}

fn tree(app: &Path) -> Result<ExitCode, String> {
    let elements = app.join("elements");
    let tree = if elements.is_dir() {
        jitnode_element::load_tree(&elements).map_err(|p| p.to_string())?
    } else {
        jitnode_dist::load(app).map_err(|e| e.to_string())?
    };
    print!("{}", jitnode_element::render_tree(&tree));
    Ok(ExitCode::SUCCESS)
}

/// At most this many names per list, so a 10,000-element build stays readable.
const NAMES_SHOWN: usize = 20;

fn names(list: &[String]) -> String {
    let mut s = list[..list.len().min(NAMES_SHOWN)].join(", ");
    if list.len() > NAMES_SHOWN {
        s.push_str(&format!(", ... and {} more", list.len() - NAMES_SHOWN));
    }
    s
}

async fn build(app: &Path) -> Result<ExitCode, String> {
    let (tree, report) = jitnode_dist::build(app).map_err(|e| e.to_string())?;
    println!(
        "dist/ {}: {} elements, {} rebuilt, {} reused, {} removed",
        if report.full {
            "fully rebuilt"
        } else if report.up_to_date() {
            "up to date"
        } else {
            "updated"
        },
        tree.len(),
        report.rebuilt.len(),
        report.reused.len(),
        report.removed.len()
    );
    for (label, list) in [
        ("rebuilt", &report.rebuilt),
        ("reused", &report.reused),
        ("removed", &report.removed),
    ] {
        if !list.is_empty() {
            println!("{label}: {}", names(list));
        }
    }
    // Native Types: their libraries belong in dist/ too, so it deploys without cargo.
    let loader = native_loader(app, false);
    let mut failed = 0;
    for el in tree.elements.values() {
        let native = el
            .def
            .backend_bundle_entry
            .as_deref()
            .is_some_and(jitnode_native::is_native_entry);
        if !native {
            continue;
        }
        match loader.build(el).await {
            Ok(Some(built)) => {
                let shown = built.library.strip_prefix(app).unwrap_or(&built.library);
                let removed = match built.removed.len() {
                    0 => String::new(),
                    1 => ", removed 1 unused copy".to_string(),
                    n => format!(", removed {n} unused copies"),
                };
                println!(
                    "native {}: {} {}{removed}",
                    el.full_name,
                    if built.rebuilt {
                        "built"
                    } else {
                        "up to date:"
                    },
                    shown.display()
                );
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(format!(
            "{failed} native Type{} failed to build; dist/ cannot run {} without its sources",
            if failed == 1 { "" } else { "s" },
            if failed == 1 { "it" } else { "them" }
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the app: from dist/ alone, or dist/ brought up to date from the sources first.
/// An app without elements/ runs from dist/ alone either way (native Types then load the
/// libraries recorded in dist/, never cargo).
fn open_app(
    app: &Path,
    from_dist: bool,
    env_overrides: BTreeMap<String, String>,
) -> Result<App, String> {
    let dist_only = from_dist || !app.join("elements").is_dir();
    if dist_only && !from_dist {
        tracing::debug!(
            "no elements/ in {}: running from dist/ alone",
            app.display()
        );
    }
    let (app, report) = App::open_with(app, from_dist, registry(app, dist_only), env_overrides)
        .map_err(|e| e.to_string())?;
    match report {
        Some(r) if !r.up_to_date() => tracing::info!(
            rebuilt = r.rebuilt.len(),
            reused = r.reused.len(),
            removed = r.removed.len(),
            "dist/ {}",
            if r.full { "built" } else { "updated" }
        ),
        Some(_) => tracing::debug!(elements = app.tree().len(), "dist/ is up to date"),
        None => tracing::debug!(elements = app.tree().len(), "running from dist/ alone"),
    }
    Ok(app)
}

/// How long `run` waits for robots to connect (or fail to) before its summary.
const READINESS_WAIT: Duration = Duration::from_secs(15);

async fn run(
    app_dir: &Path,
    from_dist: bool,
    sandbox: bool,
    stop_deadline: Duration,
    watch: Option<jitnode_host::WatchMode>,
    console: Option<(std::net::SocketAddr, bool)>,
) -> Result<ExitCode, String> {
    let mut signals = jitnode_host::ShutdownSignal::install()
        .map_err(|e| format!("cannot listen for signals: {e}"))?;
    // The sandbox starts first: the robot's config renders with its URL. Dropping it at
    // the end removes its state file.
    let demo = match sandbox {
        true => Some(ask_cmd::DemoSandbox::start(app_dir).await?),
        false => None,
    };
    let overrides = demo
        .as_ref()
        .map(ask_cmd::DemoSandbox::env_overrides)
        .unwrap_or_default();
    let app = open_app(app_dir, from_dist, overrides)?;
    if let Some(demo) = &demo {
        demo.attach(&app)?;
    }
    // Up before the elements start, so /readyz answers (503) while they do.
    let _console = match console {
        Some((bind, operators_only)) => {
            Some(start_console(app_dir, bind, operators_only, &app, demo.as_ref()).await?)
        }
        None => None,
    };
    // A signal during start-up (an element slow to load) stops what has started so far.
    let report = tokio::select! {
        r = app.start() => r,
        signal = signals.recv() => {
            tracing::info!("{signal} received while starting; stopping");
            return stop(&app, &mut signals, stop_deadline).await;
        }
    };
    // Started is not working: a robot may load fine and still be refused or unreachable.
    // Wait (bounded) until each robot knows, so the summary says which cannot work.
    let registry = app.readiness();
    let readiness = tokio::select! {
        r = tokio::time::timeout(READINESS_WAIT, registry.settled()) => {
            r.unwrap_or_else(|_| registry.report())
        }
        signal = signals.recv() => {
            tracing::info!("{signal} received while starting; stopping");
            return stop(&app, &mut signals, stop_deadline).await;
        }
    };
    let not_ready = readiness.not_ready();
    for (name, reason) in &not_ready {
        tracing::warn!(element = %name, "not ready: {reason}");
    }
    tracing::info!(
        started = report.started.len(),
        failed = report.failed.len(),
        not_ready = not_ready.len(),
        "app {} is running{}; Ctrl-C or SIGTERM stops it",
        app_dir.display(),
        match not_ready.is_empty() {
            true => String::new(),
            false => format!(
                "; not ready: {}",
                not_ready
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    );
    tokio::spawn(log_readiness_changes(registry, readiness));
    let signal = match watch {
        None => signals.recv().await,
        Some(mode) => {
            let mut reloader =
                jitnode_host::Reloader::new(app_dir, app.clone()).with_stop_deadline(stop_deadline);
            if let Some(demo) = &demo {
                reloader = reloader.before_restart(demo.on_reload());
            }
            let options = jitnode_host::WatchOptions {
                mode,
                ..jitnode_host::WatchOptions::default()
            };
            let watched =
                jitnode_host::watch::run(&mut reloader, &options, signals.recv(), |_| {}).await;
            match watched {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::error!("{e}; running without reloading");
                    signals.recv().await
                }
            }
        }
    };
    tracing::info!("{signal} received; stopping (a second signal exits at once)");
    stop(&app, &mut signals, stop_deadline).await
}

/// Serves the console of `app`; prints its URL (and, beyond loopback, its token) once.
async fn start_console(
    app_dir: &Path,
    bind: std::net::SocketAddr,
    operators_only: bool,
    app: &App,
    demo: Option<&ask_cmd::DemoSandbox>,
) -> Result<jitnode_console::Console, String> {
    let mut options = jitnode_console::ConsoleOptions::new(app_dir);
    options.bind = bind;
    options.operators_only = operators_only;
    options.agent_entry = format!(
        "{}{}",
        jitnode_host::BUILTIN_SCHEME,
        jitnode_agent::LOADER_NAME
    );
    let link = demo.map(ask_cmd::DemoSandbox::console_link);
    let console = jitnode_console::Console::start(options, app.clone(), link)
        .await
        .map_err(|e| e.to_string())?;
    // The log names the URL without the token, for whoever reads the log.
    let what = match operators_only {
        true => "Operator endpoints (/healthz, /readyz, /metrics)",
        false => "Console",
    };
    // "console serving" / "operator endpoints ... serving": what tests and people grep for.
    tracing::info!(url = %console.url(), "{} serving", what.to_lowercase());
    match console.token() {
        None => println!("{what}: {}", console.url()),
        Some(_) => println!(
            "{what}: {} (bound beyond loopback: open {} once; API clients send Authorization: Bearer <the token in that URL>)",
            console.url(),
            console.login_url()
        ),
    }
    let _ = std::io::stdout().flush();
    Ok(console)
}

/// Logs each element's readiness as it changes after the run summary (a robot connecting
/// later, losing its connection, a reloaded one).
async fn log_readiness_changes(
    readiness: jitnode_host::Readiness,
    mut last: jitnode_host::ReadinessReport,
) {
    loop {
        let now = readiness.wait_until(|r| *r != last).await;
        for (name, check) in &now.checks {
            if last.get(name) == Some(check) {
                continue;
            }
            match check {
                jitnode_host::Check::Ready => tracing::info!(element = %name, "ready"),
                jitnode_host::Check::NotReady { reason } => {
                    tracing::warn!(element = %name, "not ready: {reason}")
                }
                jitnode_host::Check::Pending { what } => {
                    tracing::info!(element = %name, "{what}")
                }
            }
        }
        last = now;
    }
}

/// Stops the app (dependents first, each element within `deadline`); a second signal
/// gives up waiting.
async fn stop(
    app: &App,
    signals: &mut jitnode_host::ShutdownSignal,
    deadline: Duration,
) -> Result<ExitCode, String> {
    tokio::select! {
        stopped = app.stop(deadline) => {
            tracing::info!(
                stopped = stopped.order().len(),
                abandoned = stopped.timed_out.len(),
                "stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        signal = signals.recv() => {
            tracing::warn!("{signal} received again; exiting without waiting for elements to stop");
            Ok(ExitCode::from(130))
        }
    }
}

async fn call(
    app_dir: &Path,
    from_dist: bool,
    full_name: &str,
    function: &str,
    args: Option<&str>,
) -> Result<ExitCode, String> {
    let args: Value = match args {
        None => Value::Object(Default::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| format!("the arguments are not valid JSON: {e}"))?,
    };
    let app = open_app(app_dir, from_dist, BTreeMap::new())?;
    let sink = ChunkSink::new(|chunk| {
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not abort the call; the result is moot then.
        let _ = writeln!(out, "{chunk}");
        let _ = out.flush();
    });
    let result = app.call(full_name, function, args, sink).await;
    app.stop(jitnode_host::DEFAULT_STOP_DEADLINE).await;
    let value = result.map_err(|e| e.to_string())?;
    println!("{value}");
    Ok(ExitCode::SUCCESS)
}
