//! A connector that misbehaves on purpose, for the host's tests.
//!
//! One component, many misbehaviours: the setting `mode` picks one, and both
//! `poll` and `handle-webhook` act it out (a webhook call answers 200 with
//! whatever `poll` would have reported).
//!
//! | `mode` | what the call does |
//! |---|---|
//! | `ok` | behaves: one message with external id `ok-1` |
//! | `loop` | spins the CPU forever |
//! | `memory-bomb` | allocates and touches 1 MiB blocks forever |
//! | `forbidden-host` | GETs `target_url` (off the allow-list) and returns the error |
//! | `panic` | panics a few named calls deep |
//! | `huge-output` | returns `count` messages (default 200 000) of 1 KiB text each |
//! | `log-flood` | prints 1 000 000 lines to stdout and logs 100 000, then returns an empty batch |
//! | `sleep-host` | GETs `target_url` (a slow server) and returns what it got |
//! | `secret-leak` | logs, prints and returns in its error the secret `token` |
//! | `socket-echo` | connects to `target_host`:`target_port` (TLS if `tls` is true), sends `PING webcare`, returns the line it reads back |
//! | `state-counter` | increments a counter in the state store and returns its value |
//!
//! Where a GET unexpectedly succeeds the call returns a message carrying the
//! response body, so a test notices that a guard let it through.

#![warn(missing_docs)]

use std::hint::black_box;

use webcare_plugin::http::Request;
use webcare_plugin::socket::{Connection, TlsMode};
use webcare_plugin::{
    Author, Batch, Connector, Error, Feature, Message, MessageKind, PluginInfo, Result,
    SettingSpec, WebhookOutcome, WebhookRequest, WebhookResponse, log, secrets, settings, state,
};

/// A fixed creation time for the messages this plugin makes up.
const CREATED_AT_MS: i64 = 1_700_000_000_000;
/// Size of one block in `memory-bomb` mode and of one text in `huge-output`.
const MIB: usize = 1024 * 1024;
/// Text length of each message in `huge-output` mode.
const HUGE_TEXT_BYTES: usize = 1024;
/// Lines printed to stdout in `log-flood` mode.
const FLOOD_PRINTED_LINES: u32 = 1_000_000;
/// Lines sent through the log import in `log-flood` mode.
const FLOOD_LOGGED_LINES: u32 = 100_000;

/// The misbehaving connector.
pub struct Hostile;

impl Connector for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            "test",
            "Misbehaves on purpose, as chosen by `mode`; for tests of the host's guards.",
        )
        .feature(Feature::Poll)
        .feature(Feature::Webhook)
        .setting(SettingSpec::text("mode", "Which misbehaviour to act out.").default_value("ok"))
        .setting(SettingSpec::url(
            "target_url",
            "URL fetched by `forbidden-host` and `sleep-host`.",
        ))
        .setting(
            SettingSpec::integer("count", "Messages returned by `huge-output`.")
                .default_value("200000"),
        )
        .setting(SettingSpec::text("token", "Secret leaked by `secret-leak`.").secret())
        .setting(SettingSpec::text(
            "target_host",
            "Host `socket-echo` connects to.",
        ))
        .setting(SettingSpec::integer(
            "target_port",
            "Port `socket-echo` connects to.",
        ))
        .setting(
            SettingSpec::boolean("tls", "Whether `socket-echo` uses implicit TLS.")
                .default_value("false"),
        )
    }

    fn poll(_cursor: Option<String>) -> Result<Batch> {
        misbehave()
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome> {
        let batch = misbehave()?;
        Ok(WebhookOutcome {
            messages: batch.messages,
            updates: batch.updates,
            ..WebhookOutcome::new(WebhookResponse::ok())
        })
    }
}

webcare_plugin::export!(Hostile);

/// Acts out the misbehaviour named by the setting `mode`.
fn misbehave() -> Result<Batch> {
    let mode = settings::get("mode").unwrap_or_default();
    match mode.as_str() {
        "ok" => Ok(Batch::new(vec![message("ok-1", "a well-behaved message")])),
        "loop" => spin(),
        "memory-bomb" => hoard_memory(),
        "forbidden-host" | "sleep-host" => fetch_target(),
        "panic" => descend_and_panic(),
        "huge-output" => huge_output(),
        "log-flood" => flood_logs(),
        "secret-leak" => leak_secret(),
        "socket-echo" => socket_echo(),
        "state-counter" => state_counter(),
        other => Err(Error::invalid_input(format!("unknown mode `{other}`"))),
    }
}

/// A made-up post with external id `id`.
fn message(id: &str, text: impl Into<String>) -> Message {
    Message::new(
        id,
        id,
        MessageKind::Post,
        Author::new("hostile", "hostile"),
        text,
        CREATED_AT_MS,
    )
}

/// Counts forever; `black_box` keeps the optimiser from removing the loop.
fn spin() -> ! {
    let mut counter = 0_u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks forever, writing to every 4 KiB page of each so
/// the memory is really used, and keeps them all.
fn hoard_memory() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0_u8; MIB];
        for page in block.chunks_mut(4096) {
            page[0] = 0xA5;
        }
        blocks.push(black_box(block));
    }
}

/// GETs the setting `target_url`: the host must refuse it (`forbidden-host`)
/// or time it out (`sleep-host`). Returns the error, or a message with the
/// body if the request got through.
fn fetch_target() -> Result<Batch> {
    let url = settings::require("target_url")?;
    let response = Request::get(url).send()?;
    Ok(Batch::new(vec![message(
        "fetched",
        format!("HTTP {}: {}", response.status, response.text()),
    )]))
}

/// Panics three named calls deep, so the trap's backtrace shows names.
#[inline(never)]
fn descend_and_panic() -> ! {
    first_level()
}

/// First step down.
#[inline(never)]
fn first_level() -> ! {
    second_level()
}

/// Second step down.
#[inline(never)]
fn second_level() -> ! {
    panic_on_purpose()
}

/// The panic itself.
#[inline(never)]
fn panic_on_purpose() -> ! {
    panic!("hostile plugin panicked on purpose")
}

/// Returns `count` messages of 1 KiB text each.
fn huge_output() -> Result<Batch> {
    let count: usize = settings::parse("count")?;
    let text = "x".repeat(HUGE_TEXT_BYTES);
    let messages = (0..count)
        .map(|index| message(&format!("huge-{index}"), text.clone()))
        .collect();
    Ok(Batch::new(messages))
}

/// Floods stdout and the log import, then behaves.
fn flood_logs() -> Result<Batch> {
    for line in 0..FLOOD_PRINTED_LINES {
        println!("flood line {line} on stdout");
    }
    for line in 0..FLOOD_LOGGED_LINES {
        log::info(format!("flood line {line} through the log import"));
    }
    Ok(Batch::empty())
}

/// Leaks the secret `token` through every channel a plugin has: the log,
/// stderr and the error it returns.
fn leak_secret() -> Result<Batch> {
    let token = secrets::require("token")?;
    log::warn(format!("leaking the token {token}"));
    eprintln!("leaking the token {token}");
    Err(Error::transient(format!("failed with {token}")))
}

/// Sends one line over the socket capability and returns the answer.
fn socket_echo() -> Result<Batch> {
    let host = settings::require("target_host")?;
    let port: u16 = settings::parse("target_port")?;
    let tls = if settings::parse::<bool>("tls")? {
        TlsMode::Implicit
    } else {
        TlsMode::None
    };
    let mut conn = Connection::connect(&host, port, tls, Some(5_000))?;
    conn.write_all(b"PING webcare\r\n")?;
    let line = conn
        .read_line()?
        .ok_or_else(|| Error::transient("the peer closed the connection"))?;
    Ok(Batch::new(vec![message("echo", line)]))
}

/// Increments `counter` in the connector's state store.
fn state_counter() -> Result<Batch> {
    let current: u64 = state::get_json("counter")?.unwrap_or(0);
    let next = current + 1;
    state::set_json("counter", &next)?;
    Ok(Batch::new(vec![message(
        &format!("count-{next}"),
        next.to_string(),
    )]))
}
