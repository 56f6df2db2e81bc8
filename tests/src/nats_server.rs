//! A throwaway `nats-server` with JetStream for tests and benches: its own
//! store directory and port, so a test can kill it and start it again with
//! the same state while the machine's own NATS (4222) is left alone.
//!
//! When the binary is missing the test is skipped with a message, except
//! under CI (the `CI` variable set), where it fails: `.ci/run` installs it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::host_process::KillOnDrop;

/// Where Debian's `nats-server` package puts the binary.
const BINARY: &str = "/usr/sbin/nats-server";

/// How long a start may take before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct NatsServer {
    store: tempfile::TempDir,
    addr: SocketAddr,
    process: Option<KillOnDrop>,
}

impl NatsServer {
    /// Starts a server on a free loopback port; `None` (after saying why)
    /// when the binary is missing outside CI.
    pub fn start(test: &str) -> Option<NatsServer> {
        let binary = Path::new(BINARY);
        if !binary.exists() {
            let why = format!("{BINARY} is missing; install the Debian package nats-server");
            if std::env::var_os("CI").is_some() {
                panic!("{why} (CI is set, so NATS tests may not be skipped)");
            }
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = NatsServer {
            store: tempfile::tempdir().expect("a store directory"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            process: None,
        };
        server.restart();
        Some(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    /// Kills the server at once (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the server (again) on the same port with the same store, and
    /// waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(BINARY)
            .args(["-js", "-sd"])
            .arg(self.store.path())
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        self.process = Some(KillOnDrop(child));
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {} within {START_TIMEOUT:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
