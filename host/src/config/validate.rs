//! From the file as written ([`super::raw`]) to a [`Config`]: required keys,
//! defaults, and a check of every value. Problems are collected, not
//! returned at the first, and each names its line and key.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::DeTable;

use super::error::Lines;
use super::raw::{
    self, RawBrand, RawConfig, RawConnector, RawCrisis, RawHost, RawLimits, RawStorage, RawStream,
    RawTriage, Seg,
};
use super::secrets::EnvLookup;
use super::{
    BrandConfig, Config, ConfigError, ConfigErrors, ConnectorConfig, DatabaseUrl, HostConfig,
    SecretRef, SecretUrl, StorageConfig, StreamConfig, WorkingHours,
};
use crate::capabilities::AllowList;
use crate::care::crisis::CrisisPolicy;
use crate::model::MessageKind;
use crate::runtime::CallLimits;
use crate::triage::policy::{AcknowledgeRule, Keyword, RouteRule, TriagePolicy};

const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(15);
/// Renewals go out every third of the lease time; below a second, a busy
/// database or a GC-less hiccup would cost the lease.
const MIN_LEASE_TIME: Duration = Duration::from_secs(1);

/// The machine's host name, the default `[host] id`.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "webcare".to_string())
}
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Channels rate-limit; polling faster than this only burns quota.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// More connections than this is a typo, not a plan (PostgreSQL's own
/// default limit is 100 for all clients together).
const MAX_POOL_SIZE: u64 = 1000;

/// Longest `[stream] duplicate_window_seconds`: a week (JetStream keeps
/// every id of the window in memory).
const MAX_DUPLICATE_WINDOW_SECONDS: u64 = 7 * 24 * 3600;
const DEFAULT_FIRST_RESPONSE_TARGET: Duration = Duration::from_secs(3600);
const ID_RULE: &str =
    "use 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit";

/// [`super::load`] with the environment given (tests pass a table).
pub(super) fn load(path: &Path, env: &EnvLookup) -> Result<Config, ConfigErrors> {
    load_with(path, env, true)
}

/// [`load`], with `resolve_secrets = false` leaving secret references
/// unchecked (for commands that never start a connector).
pub(super) fn load_with(
    path: &Path,
    env: &EnvLookup,
    resolve_secrets: bool,
) -> Result<Config, ConfigErrors> {
    let whole_file = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message,
        }])
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        whole_file(format!(
            "cannot read the config file: {e}; check the path given with --config"
        ))
    })?;
    let dir = std::path::absolute(path)
        .map_err(|e| whole_file(format!("cannot resolve the config file's path: {e}")))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let lines = Lines::new(&text);
    let (doc, syntax_errors) = DeTable::parse_recoverable(&text);
    if !syntax_errors.is_empty() {
        return Err(ConfigErrors::sorted(
            syntax_errors
                .iter()
                .map(|e| ConfigError {
                    file: path.to_path_buf(),
                    line: e.span().map(|span| lines.line(span.start)),
                    key: String::new(),
                    message: format!("invalid TOML: {}", e.message()),
                })
                .collect(),
        ));
    }
    let (raw, schema_errors) = raw::deserialize(doc);
    let mut v = Validator {
        file: path,
        dir,
        lines,
        names: Names::new(raw.as_ref()),
        env,
        resolve_secrets,
        errors: Vec::new(),
    };
    for e in schema_errors {
        let key = v.names.key(&e.path);
        v.error(key, e.span, e.message);
    }
    let config = raw.map(|raw| v.config(raw));
    match config {
        Some(config) if v.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors::sorted(v.errors)),
    }
}

fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=63).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

/// How keys are named in messages: by id where the id is valid and unique
/// (`brand "acme" connector "feed": poll_interval`), by position otherwise
/// (`brand[1].connector[0].poll_interval`).
struct Names {
    /// Per brand: its id and its connectors' ids, where valid.
    brands: Vec<(Option<String>, Vec<Option<String>>)>,
}

impl Names {
    fn new(raw: Option<&RawConfig>) -> Self {
        let id = |id: &Option<Spanned<String>>| {
            id.as_ref()
                .map(|id| id.get_ref().clone())
                .filter(|id| valid_id(id))
        };
        let brands: Vec<_> = raw
            .map(|raw| {
                raw.brand
                    .iter()
                    .map(|b| {
                        let b = b.get_ref();
                        let connectors: Vec<_> =
                            b.connector.iter().map(|c| id(&c.get_ref().id)).collect();
                        (id(&b.id), only_unique(connectors))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ids = only_unique(brands.iter().map(|(id, _)| id.clone()).collect());
        let brands = ids
            .into_iter()
            .zip(brands)
            .map(|(id, (_, connectors))| (id, connectors))
            .collect();
        Names { brands }
    }

    fn brand(&self, b: usize) -> String {
        match self.brands.get(b).and_then(|(id, _)| id.as_ref()) {
            Some(id) => format!("brand {id:?}"),
            None => format!("brand[{b}]"),
        }
    }

    fn connector(&self, b: usize, c: usize) -> String {
        match self
            .brands
            .get(b)
            .and_then(|(_, connectors)| connectors.get(c)?.as_ref())
        {
            Some(id) => format!("{} connector {id:?}", self.brand(b)),
            None => self.connector_at(b, c),
        }
    }

    /// By position even when the id is known: for duplicate ids.
    fn connector_at(&self, b: usize, c: usize) -> String {
        let brand = self.brand(b);
        if brand.ends_with('"') {
            format!("{brand} connector[{c}]")
        } else {
            format!("{brand}.connector[{c}]")
        }
    }

    fn key(&self, path: &[Seg]) -> String {
        match path {
            [
                Seg::Key(brand),
                Seg::Index(b),
                Seg::Key(connector),
                Seg::Index(c),
                rest @ ..,
            ] if brand == "brand" && connector == "connector" => {
                join(self.connector(*b, *c), &dotted(rest))
            }
            [Seg::Key(brand), Seg::Index(b), rest @ ..] if brand == "brand" => {
                join(self.brand(*b), &dotted(rest))
            }
            _ => dotted(path),
        }
    }
}

/// Forgets ids that occur more than once: such entries are named by
/// position, so that each name points at one entry.
fn only_unique(ids: Vec<Option<String>>) -> Vec<Option<String>> {
    ids.iter()
        .map(|id| {
            id.clone()
                .filter(|id| ids.iter().flatten().filter(|x| *x == id).count() == 1)
        })
        .collect()
}

/// `brand "acme"` + `time_zone` → `brand "acme": time_zone`;
/// `brand[1]` + `time_zone` → `brand[1].time_zone`.
fn join(scope: String, rest: &str) -> String {
    if rest.is_empty() {
        scope
    } else if scope.ends_with('"') {
        format!("{scope}: {rest}")
    } else {
        format!("{scope}.{rest}")
    }
}

fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) if out.is_empty() => out.push_str(key),
            Seg::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

struct Validator<'a> {
    file: &'a Path,
    /// Absolute directory of the config file: relative paths start here.
    dir: PathBuf,
    lines: Lines,
    names: Names,
    env: &'a EnvLookup,
    /// Whether secret references must resolve (env set, file readable).
    resolve_secrets: bool,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    /// Records a problem; only the first one of each key, since a later
    /// one (a key reported missing after its wrong-typed value was
    /// dropped) would only repeat it.
    fn error(&mut self, key: String, span: Option<Range<usize>>, message: impl Into<String>) {
        if self.errors.iter().any(|e| e.key == key) {
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|span| self.lines.line(span.start)),
            key,
            message: message.into(),
        });
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let host = self.host(raw.host.unwrap_or_default());
        let storage = self.storage(raw.storage, &host.data_dir);
        let stream = raw.stream.map(|raw| self.stream(raw));
        let mut brands = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (b, brand) in raw.brand.into_iter().enumerate() {
            let span = brand.span();
            let id = brand.get_ref().id.clone();
            let brand = self.brand(b, span, brand.into_inner());
            self.unique(
                &mut ids,
                id.as_ref(),
                format!("brand[{b}].id"),
                "each brand its own id",
            );
            brands.push(brand);
        }
        Config {
            path: self.file.to_path_buf(),
            host,
            storage,
            stream,
            brands,
        }
    }

    /// Reports `id` when an earlier entry in `seen` has it; remembers it
    /// otherwise. `key` names the entry by position, as its id is ambiguous.
    fn unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        id: Option<&Spanned<String>>,
        key: String,
        advice: &str,
    ) {
        let Some(id) = id else {
            return;
        };
        match seen.get(id.get_ref()) {
            Some(first) => {
                let line = self.lines.line(*first);
                self.error(
                    key,
                    Some(id.span()),
                    format!(
                        "duplicate id {:?} (also used at line {line}); give {advice}",
                        id.get_ref()
                    ),
                );
            }
            None => {
                seen.insert(id.get_ref().clone(), id.span().start);
            }
        }
    }

    /// `value` as a path relative to `base`, made absolute.
    fn path(&mut self, key: String, value: &Spanned<String>, base: &Path) -> PathBuf {
        if value.get_ref().is_empty() {
            self.error(
                key,
                Some(value.span()),
                "empty path; give a file or directory",
            );
        }
        let joined = base.join(value.get_ref());
        std::path::absolute(&joined).unwrap_or(joined)
    }

    fn duration(&mut self, key: String, value: &Spanned<String>) -> Option<Duration> {
        humantime::parse_duration(value.get_ref())
            .map_err(|_| {
                self.error(
                    key,
                    Some(value.span()),
                    format!("{:?} is not a duration (use e.g. 30s, 5m)", value.get_ref()),
                )
            })
            .ok()
    }

    fn host(&mut self, raw: RawHost) -> HostConfig {
        let dir = self.dir.clone();
        let data_dir = match &raw.data_dir {
            Some(d) => self.path("host.data_dir".into(), d, &dir),
            None => dir.join("webcare-data"),
        };
        let component_cache = match &raw.component_cache {
            Some(d) => self.path("host.component_cache".into(), d, &dir),
            None => data_dir.join("components"),
        };
        let listen = match &raw.listen {
            Some(addr) => addr.get_ref().parse().unwrap_or_else(|_| {
                self.error(
                    "host.listen".into(),
                    Some(addr.span()),
                    format!(
                        "{:?} is not an address; write an IP address and port, e.g. {DEFAULT_LISTEN} or [::]:8080",
                        addr.get_ref()
                    ),
                );
                DEFAULT_LISTEN
            }),
            None => DEFAULT_LISTEN,
        };
        let shutdown_grace = raw
            .shutdown_grace
            .as_ref()
            .and_then(|d| self.duration("host.shutdown_grace".into(), d))
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
        let id = match &raw.id {
            Some(id) if id.get_ref().trim().is_empty() => {
                self.error(
                    "host.id".into(),
                    Some(id.span()),
                    "is empty; name this host (hosts on one database need distinct ids)",
                );
                machine_name()
            }
            Some(id) => id.get_ref().trim().to_string(),
            None => machine_name(),
        };
        let lease_time = match &raw.lease_time {
            Some(d) => match self.duration("host.lease_time".into(), d) {
                Some(time) if time < MIN_LEASE_TIME => {
                    self.error(
                        "host.lease_time".into(),
                        Some(d.span()),
                        format!("{:?} is too short: at least 1s", d.get_ref()),
                    );
                    DEFAULT_LEASE_TIME
                }
                Some(time) => time,
                None => DEFAULT_LEASE_TIME,
            },
            None => DEFAULT_LEASE_TIME,
        };
        HostConfig {
            data_dir,
            listen,
            component_cache,
            shutdown_grace,
            id,
            lease_time,
        }
    }

    fn storage(&mut self, raw: Option<RawStorage>, data_dir: &Path) -> StorageConfig {
        let raw = raw.unwrap_or_default();
        let postgres = match &raw.kind {
            Some(kind) => match kind.get_ref().as_str() {
                "sqlite" => false,
                "postgres" | "postgresql" => true,
                other => {
                    self.error(
                        "storage.kind".into(),
                        Some(kind.span()),
                        format!("unknown storage kind {other:?}; use \"sqlite\" or \"postgres\""),
                    );
                    false
                }
            },
            None => false,
        };
        if !postgres {
            for (key, span) in [
                ("storage.url", raw.url.as_ref().map(Spanned::span)),
                (
                    "storage.pool_size",
                    raw.pool_size.as_ref().map(Spanned::span),
                ),
                ("storage.ca_file", raw.ca_file.as_ref().map(Spanned::span)),
            ] {
                if span.is_some() {
                    self.error(
                        key.into(),
                        span,
                        "only for kind = \"postgres\"; add that to [storage] or remove this key",
                    );
                }
            }
            let path = match &raw.path {
                Some(p) => self.path("storage.path".into(), p, data_dir),
                None => data_dir.join("webcare.db"),
            };
            return StorageConfig::Sqlite { path };
        }
        if let Some(path) = &raw.path {
            self.error(
                "storage.path".into(),
                Some(path.span()),
                "only for kind = \"sqlite\"; a PostgreSQL queue is given by url",
            );
        }
        let pool_size = match &raw.pool_size {
            Some(n) if !(1..=MAX_POOL_SIZE).contains(n.get_ref()) => {
                self.error(
                    "storage.pool_size".into(),
                    Some(n.span()),
                    format!("must be 1 to {MAX_POOL_SIZE} connections, e.g. 8"),
                );
                crate::queue::postgres::DEFAULT_POOL_SIZE
            }
            Some(n) => usize::try_from(*n.get_ref()).unwrap_or(usize::MAX),
            None => crate::queue::postgres::DEFAULT_POOL_SIZE,
        };
        let url = match &raw.url {
            Some(value) => self.database_url(value),
            None => {
                self.error(
                    "storage.url".into(),
                    raw.kind.as_ref().map(Spanned::span),
                    "missing; add e.g. url = { env = \"WEBCARE_DATABASE_URL\" }",
                );
                None
            }
        };
        // Relative to the config file, like secret files.
        let dir = self.dir.clone();
        let ca_file = raw.ca_file.as_ref().map(|p| {
            let path = self.path("storage.ca_file".into(), p, &dir);
            if !p.get_ref().is_empty() && !path.is_file() {
                self.error(
                    "storage.ca_file".into(),
                    Some(p.span()),
                    format!(
                        "{} does not exist; give the PEM file of the CA that signed the \
                         database's certificate",
                        path.display()
                    ),
                );
            }
            path
        });
        StorageConfig::Postgres {
            url: url.unwrap_or_else(|| DatabaseUrl::Plain(String::new())),
            pool_size,
            ca_file,
        }
    }

    /// `[stream]`: the NATS JetStream sink.
    fn stream(&mut self, raw: Spanned<RawStream>) -> StreamConfig {
        let header = raw.span();
        let raw = raw.into_inner();
        match &raw.kind {
            Some(kind) if kind.get_ref() == "nats" => {}
            Some(kind) => self.error(
                "stream.kind".into(),
                Some(kind.span()),
                format!("unknown stream kind {:?}; use \"nats\"", kind.get_ref()),
            ),
            None => self.error(
                "stream.kind".into(),
                Some(header.clone()),
                "missing; add kind = \"nats\"",
            ),
        }
        let url = match &raw.url {
            Some(value) => self.nats_url(value),
            None => {
                self.error(
                    "stream.url".into(),
                    Some(header),
                    "missing; add e.g. url = \"nats://127.0.0.1:4222\"",
                );
                None
            }
        };
        let stream = match &raw.stream {
            Some(name) => {
                let text = name.get_ref();
                if text.is_empty()
                    || text.len() > 255
                    || !text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    self.error(
                        "stream.stream".into(),
                        Some(name.span()),
                        "a JetStream stream name is 1 to 255 letters, digits, `_` or `-`, \
                         e.g. \"WEBCARE\"",
                    );
                }
                text.clone()
            }
            None => crate::stream::DEFAULT_STREAM.to_string(),
        };
        let subject_prefix = match &raw.subject_prefix {
            Some(prefix) => {
                let text = prefix.get_ref();
                if !crate::stream::is_subject_prefix(text) {
                    self.error(
                        "stream.subject_prefix".into(),
                        Some(prefix.span()),
                        "dot-separated subject tokens without wildcards or whitespace, \
                         e.g. \"webcare\" or \"acme.care\"",
                    );
                }
                text.clone()
            }
            None => crate::stream::DEFAULT_SUBJECT_PREFIX.to_string(),
        };
        let duplicate_window = match &raw.duplicate_window_seconds {
            Some(n) if !(1..=MAX_DUPLICATE_WINDOW_SECONDS).contains(n.get_ref()) => {
                self.error(
                    "stream.duplicate_window_seconds".into(),
                    Some(n.span()),
                    format!("must be 1 to {MAX_DUPLICATE_WINDOW_SECONDS} seconds, e.g. 600"),
                );
                crate::stream::DEFAULT_DUPLICATE_WINDOW
            }
            Some(n) => Duration::from_secs(*n.get_ref()),
            None => crate::stream::DEFAULT_DUPLICATE_WINDOW,
        };
        StreamConfig {
            url: url.unwrap_or_else(|| SecretUrl::Plain(String::new())),
            stream,
            subject_prefix,
            duplicate_window,
        }
    }

    /// `[stream] url`: like `[storage] url`, plain only without a password.
    fn nats_url(&mut self, value: &Spanned<toml::Value>) -> Option<SecretUrl> {
        const KEY: &str = "stream.url";
        let url = match value.get_ref() {
            toml::Value::String(text) => {
                match crate::stream::url_problem(text) {
                    Some(problem) => {
                        self.error(KEY.into(), Some(value.span()), problem);
                        return None;
                    }
                    None if crate::stream::url_has_credentials(text) => {
                        self.error(
                            KEY.into(),
                            Some(value.span()),
                            "credentials (user, password or token) may not be written into the \
                             config file; put the URL in an environment variable or a file and write \
                             url = { env = \"WEBCARE_NATS_URL\" } or { file = \"path/to/file\" }",
                        );
                        return None;
                    }
                    None => {}
                }
                SecretUrl::Plain(text.clone())
            }
            _ => {
                let dir = self.dir.clone();
                SecretUrl::Reference(self.secret_ref(KEY.into(), value, &dir)?)
            }
        };
        if let SecretUrl::Reference(reference) = &url {
            match reference.resolve_with(self.env) {
                Err(e) => self.error(KEY.into(), Some(value.span()), e.to_string()),
                Ok(text) => {
                    if let Some(problem) = crate::stream::url_problem(text.expose()) {
                        let source = match reference {
                            SecretRef::Env(name) => format!("environment variable {name}"),
                            SecretRef::File(path) => format!("file {}", path.display()),
                        };
                        self.error(
                            KEY.into(),
                            Some(value.span()),
                            format!("the URL in {source}: {problem}"),
                        );
                    }
                }
            }
        }
        Some(url)
    }

    /// `[storage] url`: a reference like a connector secret, or a plain URL
    /// without a password. The URL is read now, whatever the command: every
    /// command that opens the queue needs it. Messages never show it.
    fn database_url(&mut self, value: &Spanned<toml::Value>) -> Option<DatabaseUrl> {
        const KEY: &str = "storage.url";
        const HOW: &str = "put the URL in an environment variable or a file and write \
                           url = { env = \"WEBCARE_DATABASE_URL\" } or { file = \"path/to/file\" }";
        let url = match value.get_ref() {
            toml::Value::String(text) => {
                match text.parse::<tokio_postgres::Config>() {
                    Ok(config) if config.get_password().is_some() => {
                        self.error(
                            KEY.into(),
                            Some(value.span()),
                            format!("a password may not be written into the config file; {HOW}"),
                        );
                        return None;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.error(
                            KEY.into(),
                            Some(value.span()),
                            "not a PostgreSQL URL; write postgres://USER@HOST:PORT/DATABASE \
                             (or refer to one with { env = \"NAME\" })",
                        );
                        return None;
                    }
                }
                DatabaseUrl::Plain(text.clone())
            }
            _ => {
                let dir = self.dir.clone();
                DatabaseUrl::Reference(self.secret_ref(KEY.into(), value, &dir)?)
            }
        };
        if let DatabaseUrl::Reference(reference) = &url {
            match reference.resolve_with(self.env) {
                Err(e) => self.error(KEY.into(), Some(value.span()), e.to_string()),
                Ok(text) => {
                    if let Some(problem) = crate::queue::postgres::url_problem(text.expose()) {
                        let source = match reference {
                            SecretRef::Env(name) => format!("environment variable {name}"),
                            SecretRef::File(path) => format!("file {}", path.display()),
                        };
                        self.error(
                            KEY.into(),
                            Some(value.span()),
                            format!("the URL in {source}: {problem}"),
                        );
                    }
                }
            }
        }
        Some(url)
    }

    /// A required string key: reports it missing at the table's header.
    fn required<'r>(
        &mut self,
        value: &'r Option<Spanned<String>>,
        key: String,
        table: &Range<usize>,
        example: &str,
    ) -> Option<&'r Spanned<String>> {
        if value.is_none() {
            self.error(
                key,
                Some(table.clone()),
                format!("missing; add e.g. {example}"),
            );
        }
        value.as_ref()
    }

    /// Checks an id's form; `scope` is the brand or connector by position.
    fn id(&mut self, value: Option<&Spanned<String>>, scope: String) -> String {
        let Some(id) = value else {
            return String::new();
        };
        if !valid_id(id.get_ref()) {
            self.error(
                join(scope, "id"),
                Some(id.span()),
                format!("{:?} is not a valid id: {ID_RULE}", id.get_ref()),
            );
        }
        id.get_ref().clone()
    }

    fn brand(&mut self, b: usize, span: Range<usize>, mut raw: RawBrand) -> BrandConfig {
        let scope = self.names.brand(b);
        let at = |rest: &str| join(scope.clone(), rest);
        let id = self.required(&raw.id, at("id"), &span, "id = \"acme\"");
        let id = self.id(id, format!("brand[{b}]"));
        let name = raw
            .name
            .as_ref()
            .map_or_else(|| id.clone(), |n| n.get_ref().clone());
        let time_zone = match &raw.time_zone {
            Some(tz) => jiff::tz::db().get(tz.get_ref()).unwrap_or_else(|_| {
                self.error(
                    at("time_zone"),
                    Some(tz.span()),
                    format!(
                        "{:?} is not a time zone of the IANA database; use a name such as \
                         \"Europe/Amsterdam\", \"America/New_York\" or \"UTC\"",
                        tz.get_ref()
                    ),
                );
                jiff::tz::TimeZone::UTC
            }),
            None => jiff::tz::TimeZone::UTC,
        };
        let working_hours = match &raw.working_hours {
            Some(text) => text.get_ref().parse().unwrap_or_else(|problem| {
                self.error(
                    at("working_hours"),
                    Some(text.span()),
                    format!(
                        "not valid working hours: {problem}; \
                         write e.g. \"mon-fri 09:00-17:00, sat 10:00-14:00\""
                    ),
                );
                WorkingHours::always()
            }),
            None => WorkingHours::always(),
        };
        let first_response_target = match &raw.first_response_target {
            Some(d) => match self.duration(at("first_response_target"), d) {
                Some(Duration::ZERO) => {
                    self.error(
                        at("first_response_target"),
                        Some(d.span()),
                        "must be longer than 0s, e.g. \"1h\"",
                    );
                    DEFAULT_FIRST_RESPONSE_TARGET
                }
                other => other.unwrap_or(DEFAULT_FIRST_RESPONSE_TARGET),
            },
            None => DEFAULT_FIRST_RESPONSE_TARGET,
        };
        let mut connectors: Vec<ConnectorConfig> = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (c, connector) in std::mem::take(&mut raw.connector).into_iter().enumerate() {
            let span = connector.span();
            let id = connector.get_ref().id.clone();
            let connector = self.connector(b, c, span, connector.into_inner());
            self.unique(
                &mut ids,
                id.as_ref(),
                join(self.names.connector_at(b, c), "id"),
                "each connector of a brand its own id (other brands may use the same ids)",
            );
            connectors.push(connector);
        }
        let connector_ids: Vec<String> = connectors.iter().map(|c| c.id.clone()).collect();
        let mut replies = BTreeMap::new();
        for (name, text) in &raw.replies {
            let key = at(&format!("replies.{name}"));
            if name.trim().is_empty() {
                self.error(key, Some(text.span()), "a reply needs a name");
                continue;
            }
            match crate::care::replies::check(text.get_ref()) {
                Ok(()) => {
                    replies.insert(name.clone(), text.get_ref().clone());
                }
                Err(problem) => self.error(key, Some(text.span()), problem),
            }
        }
        let triage = match &raw.triage {
            Some(t) => self.triage(t.get_ref(), &at, &connector_ids, &raw.replies),
            None => TriagePolicy::default(),
        };
        let crisis = match &raw.crisis {
            Some(c) => self.crisis(c.get_ref(), &at),
            None => CrisisPolicy::default(),
        };
        BrandConfig {
            id,
            name,
            time_zone,
            working_hours,
            first_response_target,
            triage,
            crisis,
            replies,
            connectors,
        }
    }

    fn connector(
        &mut self,
        b: usize,
        c: usize,
        span: Range<usize>,
        raw: RawConnector,
    ) -> ConnectorConfig {
        let scope = self.names.connector(b, c);
        let at = |rest: &str| join(scope.clone(), rest);
        let mut key_lines = BTreeMap::new();
        let id = self.required(&raw.id, at("id"), &span, "id = \"feed\"");
        let id = self.id(id, self.names.connector_at(b, c));
        let enabled = raw.enabled.unwrap_or(true);

        let dir = self.dir.clone();
        let plugin = match self.required(
            &raw.plugin,
            at("plugin"),
            &span,
            "plugin = \"plugins/my_connector.wasm\"",
        ) {
            Some(p) => {
                key_lines.insert("plugin".to_string(), self.lines.line(p.span().start));
                let path = self.path(at("plugin"), p, &dir);
                if enabled && !p.get_ref().is_empty() && !path.is_file() {
                    let problem = if path.exists() {
                        "is not a file"
                    } else {
                        "does not exist"
                    };
                    self.error(
                        at("plugin"),
                        Some(p.span()),
                        format!(
                            "plugin file {} {problem}; build the plugin or fix the path \
                             (a relative path starts at the config file's directory)",
                            path.display()
                        ),
                    );
                }
                path
            }
            None => PathBuf::new(),
        };

        let poll_interval = match &raw.poll_interval {
            Some(d) => match self.duration(at("poll_interval"), d) {
                Some(interval) if interval < MIN_POLL_INTERVAL => {
                    self.error(
                        at("poll_interval"),
                        Some(d.span()),
                        format!(
                            "{:?} is below the minimum of 1s; channels rate-limit, \
                             so poll at most once a second",
                            d.get_ref()
                        ),
                    );
                    DEFAULT_POLL_INTERVAL
                }
                other => other.unwrap_or(DEFAULT_POLL_INTERVAL),
            },
            None => DEFAULT_POLL_INTERVAL,
        };

        let mut allow_hosts = AllowList::default();
        for (i, entry) in raw.allow_hosts.iter().enumerate() {
            match AllowList::parse(&[entry.get_ref()]) {
                Ok(list) => allow_hosts.extend(list),
                Err(e) => self.error(
                    at(&format!("allow_hosts[{i}]")),
                    Some(entry.span()),
                    format!(
                        "{:?} is not a valid entry: {}; write a host (api.example.com), \
                         host:port, *.example.com, http://host:port or tcp://host:port",
                        e.entry, e.reason
                    ),
                ),
            }
        }

        let limits = self.limits(&raw.limits, &at);

        let mut settings = BTreeMap::new();
        for (name, value) in &raw.settings {
            key_lines.insert(
                format!("settings.{name}"),
                self.lines.line(value.span().start),
            );
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    self.error(
                        at(&format!("settings.{name}")),
                        Some(value.span()),
                        format!(
                            "settings are text, whole numbers or true/false, not {}s; \
                             quote the value to pass it as text",
                            other.type_str()
                        ),
                    );
                    continue;
                }
            };
            settings.insert(name.clone(), text);
        }

        let mut secrets = BTreeMap::new();
        for (name, value) in &raw.secrets {
            let key = at(&format!("secrets.{name}"));
            key_lines.insert(
                format!("secrets.{name}"),
                self.lines.line(value.span().start),
            );
            let Some(reference) = self.secret_ref(key.clone(), value, &dir) else {
                continue;
            };
            if enabled
                && self.resolve_secrets
                && let Err(e) = reference.resolve_with(self.env)
            {
                self.error(key, Some(value.span()), e.to_string());
            }
            secrets.insert(name.clone(), reference);
        }

        ConnectorConfig {
            id,
            plugin,
            enabled,
            poll: raw.poll.unwrap_or(true),
            poll_interval,
            allow_hosts,
            limits,
            settings,
            secrets,
            line: self.lines.line(span.start),
            key_lines,
        }
    }

    /// `[brand.crisis]`.
    fn crisis(&mut self, raw: &RawCrisis, at: &dyn Fn(&str) -> String) -> CrisisPolicy {
        let mut policy = CrisisPolicy::default();
        if let Some(enabled) = &raw.enabled {
            policy.enabled = *enabled.get_ref();
        }
        for (name, value, field) in [
            ("window", &raw.window, &mut policy.window),
            ("baseline", &raw.baseline, &mut policy.baseline),
        ] {
            if let Some(text) = value {
                let key = at(&format!("crisis.{name}"));
                match self.duration(key.clone(), text) {
                    Some(d) if d >= Duration::from_secs(60) => *field = d,
                    Some(_) => self.error(key, Some(text.span()), "must be at least 1m"),
                    None => {}
                }
            }
        }
        if policy.baseline <= policy.window {
            self.error(
                at("crisis.baseline"),
                raw.baseline.as_ref().map(|b| b.span()),
                format!(
                    "must be longer than the window ({}), e.g. \"7d\"",
                    humantime::format_duration(policy.window)
                ),
            );
        }
        if let Some(factor) = &raw.factor {
            let f = *factor.get_ref();
            if f.is_finite() && f >= 1.0 {
                policy.factor = f;
            } else {
                self.error(
                    at("crisis.factor"),
                    Some(factor.span()),
                    "must be a number of at least 1.0, e.g. 3.0",
                );
            }
        }
        if let Some(n) = &raw.min_messages {
            if *n.get_ref() == 0 {
                self.error(
                    at("crisis.min_messages"),
                    Some(n.span()),
                    "must be at least 1",
                );
            } else {
                policy.min_messages = *n.get_ref();
            }
        }
        if let Some(team) = &raw.team {
            policy.team = Some(self.team(team, at("crisis.team")));
        }
        if let Some(url) = &raw.webhook_url {
            match url::Url::parse(url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
                    policy.webhook_url = Some(url.get_ref().clone());
                }
                _ => self.error(
                    at("crisis.webhook_url"),
                    Some(url.span()),
                    "must be an http(s) URL, e.g. \"https://alerts.example.com/webcare\"",
                ),
            }
        }
        policy
    }

    /// `[brand.triage]`; `connectors` are the brand's connector ids, which
    /// channel names must be.
    fn triage(
        &mut self,
        raw: &RawTriage,
        at: &dyn Fn(&str) -> String,
        connectors: &[String],
        replies: &BTreeMap<String, Spanned<String>>,
    ) -> TriagePolicy {
        let mut policy = TriagePolicy::default();
        if let Some(list) = &raw.urgency_keywords {
            policy.urgency_keywords = self.keywords(list, &at("triage.urgency_keywords"));
        }
        if let Some(list) = &raw.crisis_keywords {
            policy.crisis_keywords = self.keywords(list, &at("triage.crisis_keywords"));
        }
        if let Some(n) = &raw.high_reach_followers {
            policy.high_reach_followers = *n.get_ref();
        }
        if let Some(n) = &raw.ignore_proactive_below_followers {
            policy.ignore_proactive_below_followers = *n.get_ref();
        }
        if let Some(team) = &raw.default_team {
            policy.default_team = Some(self.team(team, at("triage.default_team")));
        }

        let w = &raw.weights;
        let weights = &mut policy.weights;
        for (name, value, field) in [
            ("base", &w.base, &mut weights.base),
            ("addressed", &w.addressed, &mut weights.addressed),
            ("reach", &w.reach, &mut weights.reach),
            ("verified", &w.verified, &mut weights.verified),
            ("urgency", &w.urgency, &mut weights.urgency),
            ("crisis", &w.crisis, &mut weights.crisis),
            ("negative", &w.negative, &mut weights.negative),
            ("private", &w.private, &mut weights.private),
            (
                "waiting_per_hour",
                &w.waiting_per_hour,
                &mut weights.waiting_per_hour,
            ),
            ("waiting_max", &w.waiting_max, &mut weights.waiting_max),
        ] {
            if let Some(points) = value {
                match u32::try_from(*points.get_ref()) {
                    Ok(p) if p <= 100 => *field = p,
                    _ => self.error(
                        at(&format!("triage.weights.{name}")),
                        Some(points.span()),
                        "must be from 0 to 100: points of a priority score of at most 100",
                    ),
                }
            }
        }

        if let Some(buckets) = &raw.buckets {
            let key = at("triage.buckets");
            let b = &mut policy.buckets;
            let mut ok = true;
            for (name, value, field) in [
                ("urgent", &buckets.get_ref().urgent, &mut b.urgent),
                ("high", &buckets.get_ref().high, &mut b.high),
                ("normal", &buckets.get_ref().normal, &mut b.normal),
            ] {
                if let Some(score) = value {
                    match u32::try_from(*score.get_ref()) {
                        Ok(s) if (1..=100).contains(&s) => *field = s,
                        _ => {
                            ok = false;
                            self.error(
                                format!("{key}.{name}"),
                                Some(score.span()),
                                "must be a score from 1 to 100",
                            );
                        }
                    }
                }
            }
            if ok && !(b.normal < b.high && b.high < b.urgent) {
                self.error(
                    key,
                    Some(buckets.span()),
                    format!(
                        "the buckets must rise: normal < high < urgent (now normal = {}, \
                         high = {}, urgent = {}; left-out keys keep their defaults 25, 50, 75)",
                        b.normal, b.high, b.urgent
                    ),
                );
            }
        }

        for (channel, points) in &raw.channel_points {
            let key = at(&format!("triage.channel_points.{channel}"));
            if !self.channel(channel, points.span(), key.clone(), connectors) {
                continue;
            }
            match i32::try_from(*points.get_ref()) {
                Ok(p) if (-100..=100).contains(&p) => {
                    policy.channel_points.insert(channel.clone(), p);
                }
                _ => self.error(key, Some(points.span()), "must be from -100 to 100"),
            }
        }

        for (i, rule) in raw.acknowledge.iter().enumerate() {
            let span = rule.span();
            let rule = rule.get_ref();
            let key = at(&format!("triage.acknowledge[{i}]"));
            let kinds = rule
                .kinds
                .iter()
                .enumerate()
                .filter_map(|(k, kind)| self.kind(kind, format!("{key}.kinds[{k}]")))
                .collect();
            let channels = self.channels(&rule.channels, &format!("{key}.channels"), connectors);
            let template = match self.required(
                &rule.template,
                format!("{key}.template"),
                &span,
                "template = \"ack-private\"",
            ) {
                Some(t) if t.get_ref().trim().is_empty() => {
                    self.error(
                        format!("{key}.template"),
                        Some(t.span()),
                        "empty; name the acknowledgement template",
                    );
                    continue;
                }
                Some(t) if !replies.contains_key(t.get_ref()) => {
                    self.error(
                        format!("{key}.template"),
                        Some(t.span()),
                        format!(
                            "no reply {:?} in [brand.replies]; define its text there, \
                             e.g. {} = \"Thanks {{name}}, we answer within {{sla}}.\"",
                            t.get_ref(),
                            t.get_ref()
                        ),
                    );
                    continue;
                }
                Some(t) => t.get_ref().clone(),
                None => continue,
            };
            policy.acknowledge.push(AcknowledgeRule {
                kinds,
                channels,
                template,
            });
        }

        for (i, rule) in raw.route.iter().enumerate() {
            let span = rule.span();
            let rule = rule.get_ref();
            let key = at(&format!("triage.route[{i}]"));
            let keywords = self.keywords(&rule.keywords, &format!("{key}.keywords"));
            let channels = self.channels(&rule.channels, &format!("{key}.channels"), connectors);
            if rule.keywords.is_empty() && rule.channels.is_empty() {
                self.error(
                    key.clone(),
                    Some(span.clone()),
                    "a route needs keywords, channels or both; \
                     for a team that gets everything else use default_team",
                );
            }
            let team = match self.required(
                &rule.team,
                format!("{key}.team"),
                &span,
                "team = \"billing\"",
            ) {
                Some(t) => self.team(t, format!("{key}.team")),
                None => continue,
            };
            policy.routes.push(RouteRule {
                keywords,
                channels,
                team,
            });
        }
        policy
    }

    fn keywords(&mut self, list: &[Spanned<String>], key: &str) -> Vec<Keyword> {
        list.iter()
            .enumerate()
            .filter_map(|(i, word)| {
                let keyword = Keyword::new(word.get_ref());
                if keyword.is_none() {
                    self.error(
                        format!("{key}[{i}]"),
                        Some(word.span()),
                        format!(
                            "{:?} has no words to match; write a word or phrase, e.g. \"refund\"",
                            word.get_ref()
                        ),
                    );
                }
                keyword
            })
            .collect()
    }

    fn team(&mut self, team: &Spanned<String>, key: String) -> String {
        let name = team.get_ref().trim();
        if name.is_empty() {
            self.error(
                key,
                Some(team.span()),
                "empty; name the team, e.g. \"billing\"",
            );
        }
        name.to_string()
    }

    /// Is `channel` one of the brand's connector ids? Reports it if not.
    fn channel(
        &mut self,
        channel: &str,
        span: Range<usize>,
        key: String,
        connectors: &[String],
    ) -> bool {
        if connectors.iter().any(|c| c == channel) {
            return true;
        }
        let known = if connectors.is_empty() {
            "this brand has no connectors yet".to_string()
        } else {
            format!("use one of: {}", connectors.join(", "))
        };
        self.error(
            key,
            Some(span),
            format!(
                "{channel:?} is not a connector of this brand; channels are connector ids: {known}"
            ),
        );
        false
    }

    fn channels(
        &mut self,
        list: &[Spanned<String>],
        key: &str,
        connectors: &[String],
    ) -> Vec<String> {
        list.iter()
            .enumerate()
            .filter(|(i, c)| self.channel(c.get_ref(), c.span(), format!("{key}[{i}]"), connectors))
            .map(|(_, c)| c.get_ref().clone())
            .collect()
    }

    fn kind(&mut self, kind: &Spanned<String>, key: String) -> Option<MessageKind> {
        use serde::Deserialize;
        use serde::de::IntoDeserializer;
        let text: &str = kind.get_ref();
        let parsed: Result<MessageKind, serde::de::value::Error> =
            MessageKind::deserialize(text.into_deserializer());
        parsed
            .map_err(|_| {
                self.error(
                    key,
                    Some(kind.span()),
                    format!(
                        "{text:?} is not a message kind; use mention, comment, reply, \
                         direct_message, post, email or review"
                    ),
                )
            })
            .ok()
    }

    fn limits(&mut self, raw: &RawLimits, at: &dyn Fn(&str) -> String) -> CallLimits {
        let mut limits = CallLimits::default();
        let mut positive = |name: &str, value: &Option<Spanned<u64>>| {
            let value = value.as_ref()?;
            if *value.get_ref() == 0 {
                self.error(
                    at(&format!("limits.{name}")),
                    Some(value.span()),
                    "must be at least 1; leave the key out for the default",
                );
                return None;
            }
            Some(*value.get_ref())
        };
        if let Some(mib) = positive("memory_mib", &raw.memory_mib) {
            limits.memory_bytes = mib.saturating_mul(1024 * 1024);
        }
        if let Some(ms) = positive("cpu_ms", &raw.cpu_ms) {
            limits.cpu_budget = Duration::from_millis(ms);
        }
        if let Some(ms) = positive("timeout_ms", &raw.timeout_ms) {
            limits.call_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = positive("max_messages", &raw.max_messages) {
            limits.max_messages = usize::try_from(n).unwrap_or(usize::MAX);
        }
        limits
    }

    /// `{ env = "NAME" }` or `{ file = "path" }`; anything else, an inline
    /// value above all, is refused with what to write instead.
    fn secret_ref(
        &mut self,
        key: String,
        value: &Spanned<toml::Value>,
        dir: &Path,
    ) -> Option<SecretRef> {
        const HOW: &str = "write { env = \"NAME_OF_VARIABLE\" } or { file = \"path/to/file\" }";
        let table = match value.get_ref() {
            toml::Value::Table(table) => table,
            toml::Value::String(_) => {
                self.error(
                    key,
                    Some(value.span()),
                    format!(
                        "secrets may not be written into the config file; put the value in an \
                         environment variable or a file and {HOW}"
                    ),
                );
                return None;
            }
            other => {
                self.error(
                    key,
                    Some(value.span()),
                    format!("{HOW} (found {})", other.type_str()),
                );
                return None;
            }
        };
        let mut entries = table.iter();
        let reference = match (entries.next(), entries.next()) {
            (Some((kind, toml::Value::String(name))), None) if kind == "env" => {
                if name.is_empty() || name.contains(['=', '\0']) {
                    None
                } else {
                    Some(SecretRef::Env(name.clone()))
                }
            }
            (Some((kind, toml::Value::String(path))), None) if kind == "file" => {
                if path.is_empty() {
                    None
                } else {
                    let joined = dir.join(path);
                    Some(SecretRef::File(
                        std::path::absolute(&joined).unwrap_or(joined),
                    ))
                }
            }
            _ => None,
        };
        if reference.is_none() {
            self.error(
                key,
                Some(value.span()),
                format!("give exactly one of env or file, naming a variable or a path: {HOW}"),
            );
        }
        reference
    }
}
