//! Throwaway PostgreSQL databases for tests.
//!
//! The server is the one `WEBCARE_TEST_POSTGRES_URL` names (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust authentication, as
//! `.ci/run` sets it up). Each [`TestDatabase`] is a fresh database with a
//! unique name, dropped when the value is. When the server cannot be
//! reached the test is skipped with a message, except under CI (the `CI`
//! variable set), where it fails: CI must not pass without having run them.
//!
//! Used by the host's tests through `#[path]`, like the other files of the
//! kit, so it depends on nothing but tokio-postgres and tokio.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The server the tests use.
pub fn server_url() -> String {
    std::env::var("WEBCARE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database of its own for one test, dropped at the end.
pub struct TestDatabase {
    /// Connection URL of the database.
    pub url: String,
    /// Its name.
    pub name: String,
    admin: tokio_postgres::Config,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    /// Creates a fresh database; `None` (after saying why on stderr) when
    /// no server is reachable outside CI. Panics under CI.
    pub async fn create(test: &str) -> Option<TestDatabase> {
        let server = server_url();
        let admin: tokio_postgres::Config = server
            .parse()
            .unwrap_or_else(|e| panic!("WEBCARE_TEST_POSTGRES_URL is not a valid URL: {e}"));
        let client = match connect(&admin).await {
            Ok(client) => client,
            Err(e) => {
                let why = format!(
                    "PostgreSQL at {} is not reachable ({e}); start it or set \
                     WEBCARE_TEST_POSTGRES_URL",
                    describe(&admin)
                );
                if std::env::var_os("CI").is_some() {
                    panic!("{why} (CI is set, so PostgreSQL tests may not be skipped)");
                }
                eprintln!("SKIPPED {test}: {why}");
                return None;
            }
        };
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "webcare_test_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            stamp
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let mut url = to_url(&admin, &name);
        // Connection parameters of the server URL (`?options=...`) apply
        // to the test databases too.
        if let Some((_, query)) = server.split_once('?') {
            url.push('?');
            url.push_str(query);
        }
        Some(TestDatabase { url, name, admin })
    }
}

impl Drop for TestDatabase {
    /// Drops the database (closing any connection still open to it). Runs
    /// on a thread of its own so it works inside and outside a runtime.
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping a test database");
            rt.block_on(async move {
                let client = connect(&admin).await?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, String> {
    let mut config = config.clone();
    config.connect_timeout(std::time::Duration::from_secs(5));
    let (client, connection) =
        config.connect(tokio_postgres::NoTls).await.map_err(
            |e| match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        )?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// The server's URL with another database.
fn to_url(config: &tokio_postgres::Config, dbname: &str) -> String {
    let mut url = String::from("postgres://");
    if let Some(user) = config.get_user() {
        url.push_str(&percent(user.as_bytes()));
        if let Some(password) = config.get_password() {
            url.push(':');
            url.push_str(&percent(password));
        }
        url.push('@');
    }
    url.push_str(&describe(config));
    url.push('/');
    url.push_str(dbname);
    url
}

fn percent(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
