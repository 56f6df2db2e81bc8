//! A throwaway PostgreSQL server that speaks TLS, for the queue's TLS tests.
//!
//! The machine's own server (see [`crate::postgres_db`]) is left as it is:
//! this one is a fresh cluster (`initdb`) in a temporary directory, on a
//! free loopback port, with `ssl = on` and a certificate from a
//! [`TestPki`], trusting every local connection. It runs as the `postgres`
//! user when the tests run as root (PostgreSQL refuses to run as root) and
//! is stopped (SIGTERM, then SIGKILL) when dropped.
//!
//! Needs the server binaries (Debian's `postgresql` package, which `.ci/run`
//! installs when missing): without them the test is skipped with a message,
//! except under CI, where it fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::fake_api::free_port;
use crate::test_pki::TestPki;

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running TLS-enabled PostgreSQL server.
pub struct PgTlsServer {
    /// Its loopback port.
    pub port: u16,
    child: Child,
    dir: TempDir,
}

impl PgTlsServer {
    /// Starts a server whose certificate `pki` issued; `None` (after saying
    /// why on stderr) when PostgreSQL's server binaries are not installed,
    /// outside CI. Panics under CI or when the server does not start.
    pub fn start(test: &str, pki: &TestPki) -> Option<PgTlsServer> {
        let Some(bin) = server_binaries() else {
            let why = "PostgreSQL's server binaries (initdb, postgres) are not installed \
                       under /usr/lib/postgresql; install the postgresql package";
            if std::env::var_os("CI").is_some() {
                panic!("{why} (CI is set, so this test may not be skipped)");
            }
            eprintln!("SKIPPED {test}: {why}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("webcare-pg-tls-")
            .tempdir()
            .expect("temporary directory");
        let root = dir.path();
        let data = root.join("data");
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(root.join("server.crt"), &pki.cert_pem).expect("certificate");
        std::fs::write(root.join("server.key"), &pki.key_pem).expect("key");
        std::fs::set_permissions(
            root.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod key");
        let owner = server_user();
        if let Some((uid, gid)) = owner {
            for path in [
                root.to_path_buf(),
                root.join("server.crt"),
                root.join("server.key"),
            ] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
            }
        }

        let log = root.join("server.log");
        let initdb = as_server_user(owner.is_some(), &bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .expect("running initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );

        let port = free_port();
        let out = std::fs::File::create(&log).expect("server log");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&log, Some(uid), Some(gid)).expect("chown log");
        }
        let err = out.try_clone().expect("server log");
        let child = as_server_user(owner.is_some(), &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(root)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "ssl=on",
                "-c",
                &format!("ssl_cert_file={}", root.join("server.crt").display()),
                "-c",
                &format!("ssl_key_file={}", root.join("server.key").display()),
                "-c",
                "fsync=off",
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting postgres");
        let mut server = PgTlsServer { port, child, dir };
        server.wait_until_ready(&log);
        Some(server)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_until_ready(&mut self, log: &Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "postgres exited at start-up ({status}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            // Ready once it accepts connections and logs that it does.
            let logged = std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("ready to accept connections");
            if logged && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start within {START_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgTlsServer {
    fn drop(&mut self) {
        // SIGTERM: a "smart" shutdown would wait for clients; SIGINT is
        // PostgreSQL's fast shutdown (disconnects them).
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with initdb and postgres.
fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The `postgres` user's uid and gid when the tests run as root.
fn server_user() -> Option<(u32, u32)> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let user = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres") && fields.len() > 3);
    match user {
        Some(fields) => Some((fields[2].parse().ok()?, fields[3].parse().ok()?)),
        None => panic!("running as root, but there is no postgres user to run the server as"),
    }
}

/// `program`, run as `postgres` when the tests run as root.
fn as_server_user(drop_root: bool, program: &Path) -> Command {
    if drop_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}
