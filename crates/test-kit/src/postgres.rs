//! A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, `postgres` on a free
//! loopback port, stopped and deleted on drop. Binaries come from PATH or
//! /usr/lib/postgresql/*/bin; missing ones are a panic with the install command (a test that
//! needs PostgreSQL fails, it is never skipped). As root (CI), both run as the `postgres`
//! user, since initdb refuses root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres) not found on PATH or in \
/usr/lib/postgresql/*/bin; install them with `apt-get install -y postgresql`";

/// A running cluster; database and user `postgres`, no password (trust on
/// loopback only).
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_user: Option<&'static str>,
    /// Server settings (`-c name=value`) on every start.
    settings: Vec<String>,
    child: Option<Child>,
}

fn find_bin() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("postgres").is_file() {
                return d;
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

fn is_root() -> bool {
    // `id -u` avoids a libc dependency for one call.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn command(as_user: Option<&str>, program: &Path) -> Command {
    match as_user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("bound socket has an address").port()
}

impl PgCluster {
    /// Initializes and starts a cluster, waiting until it accepts connections. Tests run
    /// it with `fsync=off`: they check behaviour, not durability, and it saves disk flushes.
    pub fn start() -> PgCluster {
        PgCluster::start_with(&[("fsync", "off")])
    }

    /// [`start`](Self::start) with these server settings instead (e.g. `fsync=on`, as a
    /// real deployment runs, for a bench's latencies).
    pub fn start_with(settings: &[(&str, &str)]) -> PgCluster {
        let bin = find_bin();
        let as_user = is_root().then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("jitnode-pg")
            .tempdir()
            .expect("temp dir");
        if as_user.is_some() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown of the cluster dir to `postgres` failed (is the postgres user there? {INSTALL_HINT})");
        }
        let data = dir.path().join("data");
        let out = command(as_user, &bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .unwrap_or_else(|e| panic!("running initdb: {e}; {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cluster = PgCluster {
            bin,
            dir,
            port: free_port(),
            as_user,
            settings: settings.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            child: None,
        };
        cluster.run();
        cluster
    }

    /// Starts the server (again, after [`stop`](Self::stop)) on the same port and data.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "cluster already running");
        let data = self.dir.path().join("data");
        let child = command(self.as_user, &self.bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "max_connections=60"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting postgres: {e}; {INSTALL_HINT}"));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits for the server's own readiness signal: the status line of `postmaster.pid`
    /// reads `ready` once it accepts connections.
    fn wait_ready(&mut self) {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if text.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("postgres exited during start-up ({status})");
                }
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT to the postmaster is PostgreSQL's fast shutdown; its pid is the first
            // line of postmaster.pid (the child may be runuser).
            let pid_file = self.dir.path().join("data").join("postmaster.pid");
            if let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_string))
            {
                let _ = Command::new("kill").args(["-INT", pid.trim()]).status();
            }
            let _ = child.wait();
        }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` with `psql` (unaligned, tuples only); its output, or the error it gave.
    pub fn psql(&self, sql: &str) -> String {
        let out = command(self.as_user, &self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-At", "-c", sql, "postgres"])
            .output();
        match out {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("psql: {e}"),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
