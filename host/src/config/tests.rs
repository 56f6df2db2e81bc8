use std::env::VarError;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The environment the tests' configs see: only `ACME_TOKEN` is set.
fn env(name: &str) -> Result<String, VarError> {
    match name {
        "ACME_TOKEN" => Ok("env-token".into()),
        _ => Err(VarError::NotPresent),
    }
}

/// A directory with a config file, a plugin file and a secret file.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        std::fs::write(dir.path().join("plugins/feed.wasm"), b"\0asm").unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/token"), "file-token\n").unwrap();
        Fixture { dir }
    }

    fn load(&self, toml: &str) -> Result<Config, ConfigErrors> {
        let path = self.dir.path().join("webcare.toml");
        std::fs::write(&path, toml).unwrap();
        validate::load(&path, &env)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

const BRAND: &str = r#"
[[brand]]
id = "acme"
name = "ACME Corp"
time_zone = "Europe/Amsterdam"
working_hours = "mon-fri 08:00-18:00, sat 10:00-14:00"
first_response_target = "30m"
"#;

const CONNECTOR: &str = r#"
[[brand.connector]]
id = "feed"
plugin = "plugins/feed.wasm"
allow_hosts = ["api.example.com", "http://127.0.0.1:8080"]
"#;

#[test]
fn a_good_config_loads_with_defaults_and_resolved_paths() {
    let fx = Fixture::new();
    let toml = format!(
        r#"[host]
data_dir = "./data"

[storage]
kind = "sqlite"
path = "queue.db"
{BRAND}{CONNECTOR}poll_interval = "2m"

[brand.connector.limits]
memory_mib = 32
cpu_ms = 500

[brand.connector.settings]
base_url = "https://api.example.com"
page_size = 25
verbose = true

[brand.connector.secrets]
api_token = {{ env = "ACME_TOKEN" }}
webhook_token = {{ file = "secrets/token" }}

[[brand]]
id = "globex"
{CONNECTOR}enabled = false
poll = false
"#
    );
    let config = fx.load(&toml).unwrap_or_else(|e| panic!("{e}"));
    let root = std::path::absolute(fx.dir.path()).unwrap();

    assert_eq!(config.host.data_dir, root.join("data"));
    assert_eq!(config.host.component_cache, root.join("data/components"));
    assert_eq!(config.host.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.host.shutdown_grace, Duration::from_secs(10));
    assert_eq!(
        config.storage_path(),
        Some(root.join("data/queue.db").as_path())
    );

    let acme = &config.brands[0];
    assert_eq!(acme.name, "ACME Corp");
    assert_eq!(acme.time_zone.iana_name(), Some("Europe/Amsterdam"));
    assert_eq!(acme.first_response_target, Duration::from_secs(1800));
    // Monday 2024-05-06, 07:30 UTC is 09:30 in Amsterdam.
    assert!(acme.is_working_time("2024-05-06T07:30:00Z".parse().unwrap()));
    assert!(!acme.is_working_time("2024-05-06T05:30:00Z".parse().unwrap()));

    let feed = &acme.connectors[0];
    assert_eq!(feed.plugin, root.join("plugins/feed.wasm"));
    assert!(feed.enabled);
    assert!(feed.poll, "polling is on unless switched off");
    assert_eq!(feed.poll_interval, Duration::from_secs(120));
    assert_eq!(
        feed.allow_hosts.entries().collect::<Vec<_>>(),
        ["api.example.com", "http://127.0.0.1:8080"]
    );
    assert_eq!(feed.limits.memory_bytes, 32 * 1024 * 1024);
    assert_eq!(feed.limits.cpu_budget, Duration::from_millis(500));
    assert_eq!(feed.limits.call_timeout, CallLimits::default().call_timeout);
    assert_eq!(feed.settings["page_size"], "25");
    assert_eq!(feed.settings["verbose"], "true");
    assert_eq!(
        feed.secrets["webhook_token"],
        SecretRef::File(root.join("secrets/token"))
    );
    assert_eq!(feed.line, line_of(&toml, "[[brand.connector]]"));
    assert_eq!(
        feed.key_lines["settings.page_size"],
        line_of(&toml, "page_size")
    );
    let token = feed.secrets["webhook_token"].resolve().unwrap();
    assert_eq!(token.expose(), "file-token");

    // Defaults of a brand and a disabled connector; the same connector id
    // in another brand is fine.
    let globex = &config.brands[1];
    assert_eq!(globex.name, "globex");
    assert_eq!(globex.time_zone.iana_name(), Some("UTC"));
    assert_eq!(globex.working_hours, WorkingHours::always());
    assert_eq!(globex.first_response_target, Duration::from_secs(3600));
    assert!(!globex.connectors[0].enabled);
    assert!(!globex.connectors[0].poll);
    assert_eq!(globex.connectors[0].poll_interval, Duration::from_secs(60));
    assert_eq!(config.connectors().count(), 2);
}

#[test]
fn postgres_storage_by_reference_or_plain_url() {
    let fx = Fixture::new();
    std::fs::write(
        fx.path("secrets/db"),
        "postgres://care:hunter2@db.internal/queue\n",
    )
    .unwrap();
    let config = fx
        .load("[storage]\nkind = \"postgres\"\nurl = { file = \"secrets/db\" }\npool_size = 3\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let root = std::path::absolute(fx.dir.path()).unwrap();
    assert_eq!(
        config.storage,
        StorageConfig::Postgres {
            url: DatabaseUrl::Reference(SecretRef::File(root.join("secrets/db"))),
            pool_size: 3,
            ca_file: None,
        }
    );
    assert_eq!(config.storage_path(), None);
    let StorageConfig::Postgres { url, .. } = &config.storage else {
        unreachable!()
    };
    assert_eq!(
        url.resolve().unwrap().expose(),
        "postgres://care:hunter2@db.internal/queue"
    );

    // A URL without a password may be written in; the pool size defaults.
    let config = fx
        .load("[storage]\nkind = \"postgresql\"\nurl = \"postgres://care@db.internal/queue\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.storage,
        StorageConfig::Postgres {
            url: DatabaseUrl::Plain("postgres://care@db.internal/queue".into()),
            pool_size: 8,
            ca_file: None,
        }
    );

    // TLS roots, relative to the config file.
    std::fs::write(fx.path("secrets/db-ca.pem"), "PEM").unwrap();
    let config = fx
        .load(
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://care@db.internal/queue?sslmode=require\"\n\
             ca_file = \"secrets/db-ca.pem\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let StorageConfig::Postgres { ca_file, .. } = &config.storage else {
        unreachable!()
    };
    assert_eq!(
        ca_file.as_deref(),
        Some(root.join("secrets/db-ca.pem").as_path())
    );
}

#[test]
fn defaults_without_host_and_storage_tables() {
    let fx = Fixture::new();
    let config = fx.load("").unwrap();
    let root = std::path::absolute(fx.dir.path()).unwrap();
    assert_eq!(config.host.data_dir, root.join("webcare-data"));
    assert_eq!(
        config.storage_path(),
        Some(root.join("webcare-data/webcare.db").as_path())
    );
    assert!(config.brands.is_empty());
}

#[test]
fn service_spec_carries_identity_settings_and_resolved_secrets() {
    let fx = Fixture::new();
    let toml = format!(
        "{BRAND}{CONNECTOR}[brand.connector.secrets]\napi_token = {{ file = \"secrets/token\" }}\n"
    );
    let config = fx.load(&toml).unwrap();
    let spec = crate::service::spec_from_config(&config).unwrap();
    let connector = &spec.connectors[0];
    assert_eq!(connector.id.to_string(), "acme/feed");
    assert_eq!(connector.secrets["api_token"].expose(), "file-token");
    assert!(
        connector
            .allow_list
            .allows_url(&"https://api.example.com/x".parse().unwrap())
    );

    std::fs::remove_file(fx.path("secrets/token")).unwrap();
    let (_, connector) = config.connectors().next().unwrap();
    let err = connector.resolve_secrets().unwrap_err();
    assert_eq!(err.name, "api_token");
    assert!(err.to_string().contains("cannot read secret file"), "{err}");
}

/// 1-based line of the first occurrence of `marker` in `text`.
fn line_of(text: &str, marker: &str) -> usize {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("marker {marker:?} not in the config"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn each_broken_config_names_its_key_and_line() {
    let acme_feed = r#"brand "acme" connector "feed": "#;
    // (what, config, key named, a marker on the line named, part of the message)
    let cases: Vec<(&str, String, String, &str, &str)> = vec![
        (
            "unknown top-level key",
            format!("hots = 1\n{BRAND}"),
            "hots".into(),
            "hots",
            "allowed here: host, storage, stream, brand",
        ),
        (
            "unknown connector key",
            format!("{BRAND}{CONNECTOR}pol_interval = \"60s\"\n"),
            format!("{acme_feed}pol_interval"),
            "pol_interval",
            "did you mean `poll_interval`?",
        ),
        (
            "unknown key in a sub-table",
            format!("{BRAND}{CONNECTOR}[brand.connector.limits]\ncpu = 5\n"),
            format!("{acme_feed}limits.cpu"),
            "cpu =",
            "did you mean `cpu_ms`?",
        ),
        (
            "wrong type",
            format!("{BRAND}{CONNECTOR}enabled = \"yes\"\n"),
            format!("{acme_feed}enabled"),
            "\"yes\"",
            "expected true or false",
        ),
        (
            "duplicate brand id",
            format!("{BRAND}\n[[brand]]\nid = \"acme\" # again\n"),
            "brand[1].id".into(),
            "# again",
            "duplicate id \"acme\" (also used at line 3)",
        ),
        (
            "duplicate connector id within a brand",
            format!(
                "{BRAND}{CONNECTOR}{}",
                CONNECTOR.replace("\"feed\"", "\"feed\" # again")
            ),
            "brand \"acme\" connector[1].id".into(),
            "# again",
            "give each connector of a brand its own id",
        ),
        (
            "bad id characters",
            BRAND.replace("\"acme\"", "\"ACME Corp\""),
            "brand[0].id".into(),
            "ACME Corp\"\n",
            "is not a valid id",
        ),
        (
            "missing connector id",
            format!("{BRAND}\n[[brand.connector]]\nplugin = \"plugins/feed.wasm\"\n"),
            "brand \"acme\" connector[0].id".into(),
            "[[brand.connector]]",
            "missing; add e.g. id = \"feed\"",
        ),
        (
            "bad duration",
            format!("{BRAND}{CONNECTOR}poll_interval = \"5x\"\n"),
            format!("{acme_feed}poll_interval"),
            "\"5x\"",
            "\"5x\" is not a duration (use e.g. 30s, 5m)",
        ),
        (
            "poll interval below 1s",
            format!("{BRAND}{CONNECTOR}poll_interval = \"500ms\"\n"),
            format!("{acme_feed}poll_interval"),
            "500ms",
            "below the minimum of 1s",
        ),
        (
            "bad allow-list entry",
            format!("{BRAND}{CONNECTOR}").replace(
                "[\"api.example.com\", ",
                "[\"api.example.com\",\n  \"ftp://files.example.com\", ",
            ),
            format!("{acme_feed}allow_hosts[1]"),
            "ftp://",
            "unknown scheme",
        ),
        (
            "zero limit",
            format!("{BRAND}{CONNECTOR}[brand.connector.limits]\ntimeout_ms = 0\n"),
            format!("{acme_feed}limits.timeout_ms"),
            "timeout_ms",
            "must be at least 1",
        ),
        (
            "bad time zone",
            BRAND.replace("Europe/Amsterdam", "Europe/Amsterdm"),
            "brand \"acme\": time_zone".into(),
            "Amsterdm",
            "is not a time zone of the IANA database",
        ),
        (
            "bad working hours",
            BRAND.replace("sat 10:00", "sa 10:00"),
            "brand \"acme\": working_hours".into(),
            "working_hours",
            "\"sa\" is not a day",
        ),
        (
            "float setting",
            format!("{BRAND}{CONNECTOR}[brand.connector.settings]\nratio = 0.5\n"),
            format!("{acme_feed}settings.ratio"),
            "ratio",
            "not floats; quote the value",
        ),
        (
            "inline secret",
            format!("{BRAND}{CONNECTOR}[brand.connector.secrets]\napi_token = \"hunter2\"\n"),
            format!("{acme_feed}secrets.api_token"),
            "hunter2",
            "put the value in an environment variable or a file",
        ),
        (
            "secret with both env and file",
            format!(
                "{BRAND}{CONNECTOR}[brand.connector.secrets]\n\
                 api_token = {{ env = \"ACME_TOKEN\", file = \"secrets/token\" }}\n"
            ),
            format!("{acme_feed}secrets.api_token"),
            "api_token",
            "give exactly one of env or file",
        ),
        (
            "secret env var unset",
            format!(
                "{BRAND}{CONNECTOR}[brand.connector.secrets]\napi_token = {{ env = \"ACME_UNSET\" }}\n"
            ),
            format!("{acme_feed}secrets.api_token"),
            "ACME_UNSET",
            "environment variable ACME_UNSET is not set; export it",
        ),
        (
            "secret file missing",
            format!(
                "{BRAND}{CONNECTOR}[brand.connector.secrets]\napi_token = {{ file = \"secrets/nope\" }}\n"
            ),
            format!("{acme_feed}secrets.api_token"),
            "secrets/nope",
            "cannot read secret file",
        ),
        (
            "missing plugin file",
            format!("{BRAND}{CONNECTOR}").replace("plugins/feed.wasm", "plugins/gone.wasm"),
            format!("{acme_feed}plugin"),
            "gone.wasm",
            "gone.wasm does not exist; build the plugin or fix the path",
        ),
        (
            "bad listen address",
            "[host]\nlisten = \"localhost:8080\"\n".into(),
            "host.listen".into(),
            "localhost",
            "is not an address",
        ),
        (
            "postgres without url",
            "[storage]\nkind = \"postgres\"\n".into(),
            "storage.url".into(),
            "postgres",
            "missing; add e.g. url = { env = \"WEBCARE_DATABASE_URL\" }",
        ),
        (
            "unknown storage kind",
            "[storage]\nkind = \"mysql\"\n".into(),
            "storage.kind".into(),
            "mysql",
            "use \"sqlite\" or \"postgres\"",
        ),
        (
            "unknown storage key",
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://care@db/q\"\npool = 4\n".into(),
            "storage.pool".into(),
            "pool = 4",
            "did you mean `pool_size`?",
        ),
        (
            "password in a plain url",
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://care:hunter2@db/q\"\n".into(),
            "storage.url".into(),
            "hunter2",
            "a password may not be written into the config file",
        ),
        (
            "url env var unset",
            "[storage]\nkind = \"postgres\"\nurl = { env = \"DB_UNSET\" }\n".into(),
            "storage.url".into(),
            "DB_UNSET",
            "environment variable DB_UNSET is not set",
        ),
        (
            "url env var not a url",
            "[storage]\nkind = \"postgres\"\nurl = { env = \"ACME_TOKEN\" }\n".into(),
            "storage.url".into(),
            "ACME_TOKEN",
            "the URL in environment variable ACME_TOKEN",
        ),
        (
            "url for sqlite",
            "[storage]\nurl = { env = \"ACME_TOKEN\" }\n".into(),
            "storage.url".into(),
            "ACME_TOKEN",
            "only for kind = \"postgres\"",
        ),
        (
            "path for postgres",
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://care@db/q\"\npath = \"q.db\"\n"
                .into(),
            "storage.path".into(),
            "q.db",
            "only for kind = \"sqlite\"",
        ),
        (
            "ca_file for sqlite",
            "[storage]\nca_file = \"ca.pem\"\n".into(),
            "storage.ca_file".into(),
            "ca.pem",
            "only for kind = \"postgres\"",
        ),
        (
            "ca_file missing",
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://care@db/q?sslmode=require\"\n\
             ca_file = \"nope/ca.pem\"\n"
                .into(),
            "storage.ca_file".into(),
            "nope/ca.pem",
            "does not exist; give the PEM file of the CA",
        ),
        (
            "pool size 0",
            "[storage]\nkind = \"postgres\"\nurl = \"postgres://care@db/q\"\npool_size = 0\n"
                .into(),
            "storage.pool_size".into(),
            "pool_size",
            "must be 1 to 1000 connections",
        ),
        (
            "stream without kind",
            "[stream]\nurl = \"nats://127.0.0.1:4222\"\n".into(),
            "stream.kind".into(),
            "[stream]",
            "missing; add kind = \"nats\"",
        ),
        (
            "unknown stream kind",
            "[stream]\nkind = \"kafka\"\nurl = \"nats://127.0.0.1:4222\"\n".into(),
            "stream.kind".into(),
            "kafka",
            "use \"nats\"",
        ),
        (
            "stream without url",
            "[stream]\nkind = \"nats\"\n".into(),
            "stream.url".into(),
            "[stream]",
            "missing; add e.g. url = \"nats://127.0.0.1:4222\"",
        ),
        (
            "stream url not nats",
            "[stream]\nkind = \"nats\"\nurl = \"http://nats.example:4222\"\n".into(),
            "stream.url".into(),
            "http://",
            "write nats://HOST:PORT",
        ),
        (
            "password in a plain nats url",
            "[stream]\nkind = \"nats\"\nurl = \"nats://care:hunter2@nats.example:4222\"\n".into(),
            "stream.url".into(),
            "hunter2",
            "credentials (user, password or token) may not be written",
        ),
        (
            "nats url env var unset",
            "[stream]\nkind = \"nats\"\nurl = { env = \"NATS_UNSET\" }\n".into(),
            "stream.url".into(),
            "NATS_UNSET",
            "environment variable NATS_UNSET is not set",
        ),
        (
            "bad stream name",
            "[stream]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nstream = \"web care\"\n"
                .into(),
            "stream.stream".into(),
            "web care",
            "a JetStream stream name is 1 to 255 letters, digits",
        ),
        (
            "wildcard in the subject prefix",
            "[stream]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nsubject_prefix = \"care.>\"\n"
                .into(),
            "stream.subject_prefix".into(),
            "care.>",
            "dot-separated subject tokens without wildcards",
        ),
        (
            "duplicate window 0",
            "[stream]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nduplicate_window_seconds = 0\n"
                .into(),
            "stream.duplicate_window_seconds".into(),
            "duplicate_window_seconds",
            "must be 1 to 604800 seconds",
        ),
        (
            "unknown stream key",
            "[stream]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nduplicate_window = 60\n"
                .into(),
            "stream.duplicate_window".into(),
            "duplicate_window = 60",
            "did you mean `duplicate_window_seconds`?",
        ),
        (
            "TOML syntax error",
            format!("{BRAND}[[brand.connector]\nid = \"feed\"\n"),
            String::new(),
            "[[brand.connector]",
            "invalid TOML",
        ),
    ];
    let fx = Fixture::new();
    for (what, toml, key, marker, says) in cases {
        let errors = match fx.load(&toml) {
            Ok(_) => panic!("{what}: loaded\n{toml}"),
            Err(errors) => errors,
        };
        let first = errors.iter().next().unwrap();
        assert_eq!(
            errors.0.len(),
            1,
            "{what}: expected one error, got\n{errors}"
        );
        assert_eq!(first.key, key, "{what}: {first}");
        assert_eq!(first.line, Some(line_of(&toml, marker)), "{what}: {first}");
        assert!(first.message.contains(says), "{what}: {first}");
        assert!(!first.to_string().contains("hunter2"), "{what}: {first}");
        assert!(
            first
                .to_string()
                .starts_with(&fx.path("webcare.toml").display().to_string()),
            "{what}: {first}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let fx = Fixture::new();
    let toml = format!(
        "[host]\nlisten = \"nowhere\"\ncolour = \"blue\"\n\
         {BRAND}{CONNECTOR}pol_interval = \"1m\"\nenabled = 3\n\
         [[brand]]\nid = \"b2\"\ntime_zone = \"Mars/Olympus\"\n\
         {CONNECTOR}poll_interval = \"soon\"\nextra = 1\n"
    );
    let errors = fx.load(&toml).unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "host.listen",
            "host.colour",
            "brand \"acme\" connector \"feed\": pol_interval",
            "brand \"acme\" connector \"feed\": enabled",
            "brand \"b2\": time_zone",
            "brand \"b2\" connector \"feed\": poll_interval",
            "brand \"b2\" connector \"feed\": extra",
        ],
        "{errors}"
    );
    assert_eq!(errors.to_string().lines().count(), 7);
}

#[test]
fn a_disabled_connector_needs_no_plugin_or_secrets_yet() {
    let fx = Fixture::new();
    let toml = format!(
        "{BRAND}{CONNECTOR}enabled = false\n[brand.connector.secrets]\napi_token = {{ env = \"ACME_UNSET\" }}\n"
    )
    .replace("plugins/feed.wasm", "plugins/later.wasm");
    let config = fx.load(&toml).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.brands[0].connectors[0].enabled);
}

#[test]
fn reading_the_queue_needs_no_secrets_but_everything_else_is_checked() {
    let fx = Fixture::new();
    let toml = format!(
        "{BRAND}{CONNECTOR}[brand.connector.secrets]\napi_token = {{ env = \"ACME_UNSET\" }}\n\
         webhook_token = {{ file = \"secrets/missing\" }}\n"
    );
    let path = fx.path("webcare.toml");
    std::fs::write(&path, &toml).unwrap();
    let errors = validate::load(&path, &env).unwrap_err().to_string();
    assert!(errors.contains("ACME_UNSET"), "{errors}");
    assert!(errors.contains("secrets/missing"), "{errors}");
    let config = validate::load_with(&path, &env, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.brands[0].connectors[0].secrets.len(), 2);

    // Not a way around the other checks.
    std::fs::write(&path, toml.replace("allow_hosts", "allow_host")).unwrap();
    assert!(validate::load_with(&path, &env, false).is_err());
}

#[test]
fn an_unreadable_file_says_so() {
    let errors = load(Path::new("/nonexistent/webcare.toml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(
        errors
            .to_string()
            .starts_with("/nonexistent/webcare.toml: cannot read the config file"),
        "{errors}"
    );
}

#[test]
fn plugin_schema_problems_are_named_as_settings_or_secrets() {
    use crate::model::{Feature, PluginInfo, SettingSpec, SettingType};
    let fx = Fixture::new();
    let toml = format!(
        "{BRAND}{CONNECTOR}[brand.connector.settings]\napi_token = \"x\"\n\
         [brand.connector.secrets]\ncolour = {{ env = \"ACME_TOKEN\" }}\n"
    );
    let config = fx.load(&toml).unwrap();
    let connector = &config.brands[0].connectors[0];
    let spec = |name: &str, secret| SettingSpec {
        name: name.into(),
        description: String::new(),
        setting_type: SettingType::Text,
        required: true,
        default_value: None,
        secret,
    };
    let info = PluginInfo {
        name: "feed".into(),
        version: "1.0.0".into(),
        channel: "feed".into(),
        description: String::new(),
        features: vec![Feature::Poll],
        settings: vec![spec("api_token", true), spec("base_url", false)],
    };
    let keys = |connector: &ConnectorConfig| {
        check::schema_problems(&info, connector)
            .into_iter()
            .map(|(key, problem)| format!("{key}: {problem}"))
            .collect::<Vec<_>>()
    };
    // Each problem is keyed where the operator wrote the key, else where
    // the plugin wants it.
    let problems = keys(connector);
    for expected in [
        "settings.api_token: is a secret",
        "secrets.api_token: required secret is missing",
        "secrets.colour: unknown secret",
        "settings.base_url: required setting is missing",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected} not in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), 4, "{problems:#?}");

    let toml = format!(
        "{BRAND}{CONNECTOR}[brand.connector.secrets]\n\
         api_token = {{ env = \"ACME_TOKEN\" }}\nbase_url = {{ env = \"ACME_TOKEN\" }}\n"
    );
    let config = fx.load(&toml).unwrap();
    assert_eq!(
        keys(&config.brands[0].connectors[0]),
        [
            "secrets.base_url: is a setting, not a secret: give it under `settings`",
            "settings.base_url: required setting is missing ()",
        ]
    );
}

/// The shipped examples load once the secrets they reference exist (the
/// files are in `examples/secrets/`; every environment variable is set
/// here). Their plugin is only there after a plugin build, so a missing
/// plugin file is the one problem tolerated.
#[test]
fn the_examples_load() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["single-brand.toml", "agency.toml"] {
        let path = examples.join(name);
        match validate::load(&path, &|_| Ok("dummy".to_string())) {
            Ok(config) => assert!(!config.brands.is_empty()),
            Err(errors) => {
                for e in &errors {
                    assert!(
                        e.key.ends_with(": plugin") && e.message.contains("does not exist"),
                        "{e}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_triage_table_sets_the_policy() {
    use crate::model::MessageKind;
    let fx = Fixture::new();
    let toml = format!(
        r#"{BRAND}{CONNECTOR}
[[brand.connector]]
id = "mail"
plugin = "plugins/feed.wasm"

[brand.triage]
urgency_keywords = ["spoed", "right away"]
high_reach_followers = 5000
ignore_proactive_below_followers = 250
default_team = "webcare"
channel_points = {{ mail = 5, feed = -3 }}

[brand.triage.weights]
crisis = 50
waiting_max = 0

[brand.triage.buckets]
urgent = 80

[[brand.triage.acknowledge]]
kinds = ["direct_message", "email"]
channels = ["mail"]
template = "ack-private"

[brand.replies]
ack-private = "Thanks {{name}}, we answer within {{sla}}."

[[brand.triage.route]]
keywords = ["factuur", "invoice"]
team = "billing"
"#
    );
    let config = fx.load(&toml).unwrap_or_else(|e| panic!("{e}"));
    let policy = &config.brands[0].triage;
    let texts = |list: &[crate::triage::policy::Keyword]| -> Vec<String> {
        list.iter().map(|k| k.text.clone()).collect()
    };
    assert_eq!(texts(&policy.urgency_keywords), ["spoed", "right away"]);
    // Crisis keywords were not given: the defaults stay.
    assert!(texts(&policy.crisis_keywords).contains(&"gevaarlijk".to_string()));
    assert_eq!(policy.high_reach_followers, 5000);
    assert_eq!(policy.ignore_proactive_below_followers, 250);
    assert_eq!(policy.default_team.as_deref(), Some("webcare"));
    assert_eq!(policy.channel_points["mail"], 5);
    assert_eq!(policy.channel_points["feed"], -3);
    assert_eq!(policy.weights.crisis, 50);
    assert_eq!(policy.weights.waiting_max, 0);
    assert_eq!(policy.weights.addressed, 20);
    assert_eq!(
        (
            policy.buckets.urgent,
            policy.buckets.high,
            policy.buckets.normal
        ),
        (80, 50, 25)
    );
    assert_eq!(
        policy.acknowledge[0].kinds,
        [MessageKind::DirectMessage, MessageKind::Email]
    );
    assert_eq!(policy.acknowledge[0].channels, ["mail"]);
    assert_eq!(policy.acknowledge[0].template, "ack-private");
    assert_eq!(policy.routes[0].team, "billing");
    assert_eq!(texts(&policy.routes[0].keywords), ["factuur", "invoice"]);

    // Without the table: the defaults.
    let config = fx.load(&format!("{BRAND}{CONNECTOR}")).unwrap();
    assert_eq!(
        config.brands[0].triage,
        crate::triage::TriagePolicy::default()
    );
}

#[test]
fn triage_mistakes_are_named_with_their_lines() {
    let fx = Fixture::new();
    let toml = format!(
        r#"{BRAND}{CONNECTOR}
[brand.triage]
crisis_keywords = ["fire", "?!"]
ignore_proactive_below = 100
channel_points = {{ fax = 5, feed = 500 }}

[brand.triage.weights]
crisis = 150

[brand.triage.buckets]
high = 90

[[brand.triage.acknowledge]]
kinds = ["dm"]
channels = ["feed"]

[[brand.triage.route]]
team = "billing"
"#
    );
    let errors = fx.load(&toml).unwrap_err();
    let acme = r#"brand "acme": "#;
    let expected = [
        (
            "triage.crisis_keywords[1]",
            "\"?!\"",
            "has no words to match",
        ),
        (
            "triage.ignore_proactive_below",
            "ignore_proactive_below ",
            "did you mean `ignore_proactive_below_followers`?",
        ),
        (
            "triage.channel_points.fax",
            "fax =",
            "\"fax\" is not a connector of this brand; channels are connector ids: use one of: feed",
        ),
        (
            "triage.channel_points.feed",
            "fax =",
            "must be from -100 to 100",
        ),
        (
            "triage.weights.crisis",
            "crisis = 150",
            "must be from 0 to 100",
        ),
        (
            "triage.buckets",
            "[brand.triage.buckets]",
            "must rise: normal < high < urgent",
        ),
        (
            "triage.acknowledge[0]",
            "[[brand.triage.acknowledge]]",
            "missing; add e.g. template",
        ),
        (
            "triage.acknowledge[0].kinds[0]",
            "\"dm\"",
            "not a message kind; use mention",
        ),
        (
            "triage.route[0]",
            "[[brand.triage.route]]",
            "a route needs keywords, channels or both",
        ),
    ];
    for (key, marker, says) in expected {
        let key = format!("{acme}{key}");
        let e = errors
            .iter()
            .find(|e| e.key == key || (e.key == format!("{key}.template")))
            .unwrap_or_else(|| panic!("no error for {key}:\n{errors}"));
        assert!(e.message.contains(says), "{e}");
        assert_eq!(e.line, Some(line_of(&toml, marker)), "{e}");
    }
    assert_eq!(errors.0.len(), expected.len(), "{errors}");

    // Unknown keys deep in the rules are named by position.
    let toml = format!(
        "{BRAND}{CONNECTOR}[[brand.triage.route]]\nkeywords = [\"x\"]\nteem = \"billing\"\n"
    );
    let errors = fx.load(&toml).unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "brand \"acme\": triage.route[0].team",
            "brand \"acme\": triage.route[0].teem"
        ],
        "{errors}"
    );
    assert!(errors.0[1].message.contains("did you mean `team`?"));
}

#[test]
fn a_brand_measures_service_levels_in_its_working_hours() {
    let fx = Fixture::new();
    // Europe/Amsterdam, "mon-fri 08:00-18:00, sat 10:00-14:00", 30m.
    let config = fx.load(&format!("{BRAND}{CONNECTOR}")).unwrap();
    let brand = &config.brands[0];
    // Saturday 2026-03-28 13:50 CET: 10 minutes on Saturday, 20 on Monday
    // 2026-03-30, after the change to summer time.
    let received: jiff::Timestamp = "2026-03-28T12:50:00Z".parse().unwrap();
    let due = brand.first_response_due(received);
    assert_eq!(due, "2026-03-30T06:20:00Z".parse().unwrap());
    assert_eq!(
        brand.working_time_between(received, due),
        Duration::from_secs(30 * 60)
    );
    assert!(!brand.is_working_time(due - jiff::SignedDuration::from_mins(21)));
}

#[test]
fn crisis_policy_is_read_and_its_mistakes_are_named() {
    let fx = Fixture::new();
    let toml = format!(
        r#"{BRAND}{CONNECTOR}
[brand.crisis]
window = "30m"
baseline = "14d"
factor = 4.5
min_messages = 25
team = "crisis"
webhook_url = "https://alerts.example.com/webcare"
"#
    );
    let config = fx.load(&toml).unwrap();
    let crisis = &config.brands[0].crisis;
    assert!(crisis.enabled);
    assert_eq!(crisis.window, Duration::from_secs(30 * 60));
    assert_eq!(crisis.baseline, Duration::from_secs(14 * 86_400));
    assert_eq!((crisis.factor, crisis.min_messages), (4.5, 25));
    assert_eq!(crisis.team.as_deref(), Some("crisis"));
    assert_eq!(
        crisis.webhook_url.as_deref(),
        Some("https://alerts.example.com/webcare")
    );
    let default = fx.load(&format!("{BRAND}{CONNECTOR}")).unwrap();
    assert_eq!(
        default.brands[0].crisis,
        crate::care::crisis::CrisisPolicy::default()
    );

    let toml = format!(
        r#"{BRAND}{CONNECTOR}
[brand.crisis]
window = "2h"
baseline = "1h"
factor = 0.5
min_messages = 0
webhook_url = "ftp://alerts.example.com"
threshold = 3
"#
    );
    let errors = fx.load(&toml).unwrap_err();
    for (key, says) in [
        ("crisis.baseline", "must be longer than the window"),
        ("crisis.factor", "at least 1.0"),
        ("crisis.min_messages", "at least 1"),
        ("crisis.webhook_url", "http(s) URL"),
        ("crisis.threshold", ""),
    ] {
        let key = format!(r#"brand "acme": {key}"#);
        let e = errors
            .iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no error for {key}:\n{errors}"));
        assert!(e.message.contains(says), "{e}");
    }
}

#[test]
fn replies_are_read_and_checked_and_templates_must_exist() {
    let fx = Fixture::new();
    let toml = format!(
        r#"{BRAND}{CONNECTOR}
[[brand.triage.acknowledge]]
template = "ack"

[brand.replies]
ack = "Thanks {{name}}, we answer within {{sla}}. {{{{ref}}}}"
"#
    );
    let config = fx.load(&toml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.brands[0].replies["ack"],
        "Thanks {name}, we answer within {sla}. {{ref}}"
    );

    let toml = format!(
        r#"{BRAND}{CONNECTOR}
[[brand.triage.acknowledge]]
template = "ack-private"

[brand.replies]
typo = "Hoi {{naam}}"
"#
    );
    let errors = fx.load(&toml).unwrap_err();
    let find = |key: &str| {
        let key = format!(r#"brand "acme": {key}"#);
        errors
            .iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no error for {key}:\n{errors}"))
            .message
            .clone()
    };
    assert!(find("replies.typo").contains("unknown placeholder {naam}"));
    assert!(find("triage.acknowledge[0].template").contains("no reply \"ack-private\""));
}

#[test]
fn a_stream_section_loads_with_defaults() {
    let fx = Fixture::new();
    let config = fx.load("").unwrap();
    assert_eq!(config.stream, None, "no [stream]: no sink");
    let config = fx
        .load("[stream]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n")
        .unwrap();
    assert_eq!(
        config.stream,
        Some(StreamConfig {
            url: SecretUrl::Plain("nats://127.0.0.1:4222".into()),
            stream: "WEBCARE".into(),
            subject_prefix: "webcare".into(),
            duplicate_window: Duration::from_secs(600),
        })
    );
    let config = fx
        .load(
            "[stream]\nkind = \"nats\"\nurl = { env = \"ACME_TOKEN\" }\nstream = \"CARE\"\n\
             subject_prefix = \"acme.care\"\nduplicate_window_seconds = 120\n",
        )
        .unwrap();
    let stream = config.stream.unwrap();
    assert_eq!(
        stream.url,
        SecretUrl::Reference(SecretRef::Env("ACME_TOKEN".into()))
    );
    assert_eq!(
        (stream.stream.as_str(), stream.subject_prefix.as_str()),
        ("CARE", "acme.care")
    );
    assert_eq!(stream.duplicate_window, Duration::from_secs(120));
}
