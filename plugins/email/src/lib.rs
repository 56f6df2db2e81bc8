//! # E-mail connector
//!
//! Brings a brand's support mailbox into webcare and sends agents' answers
//! back by mail, over the host's socket capability (TLS by the host):
//!
//! - `poll` reads new mail from an IMAP mailbox by UID ([`imap`]), with the
//!   mailbox's `UIDVALIDITY` in the cursor, never setting `\Seen`
//!   (`EXAMINE`, `BODY.PEEK`).
//! - `handle_webhook` accepts one raw MIME mail per POST, as hosted
//!   inbound-mail services deliver it, guarded by an optional shared token.
//! - `perform` answers a mail (`reply` and `private-reply` alike) through
//!   SMTP submission ([`smtp`]).
//!
//! Both ways in go through [`normalize_mail`], so a mail gets the same
//! message (and the same `external_id`: its Message-ID) whichever way it
//! arrives; the host's de-duplication then makes a re-delivery or an
//! IMAP re-sync harmless. See the crate's `README.md` for the mapping.

#![warn(missing_docs)]

pub mod imap;
pub mod mail;
pub mod smtp;
pub mod transport;

use serde::{Deserialize, Serialize};
use webcare_plugin::{
    Action, ActionKind, ActionResult, ActionTarget, Batch, Connector, Error, Feature, MessageKind,
    PluginInfo, Result, SettingSpec, WebhookOutcome, WebhookRequest, WebhookResponse, clock,
    cursor, log, secrets, security, settings, state,
};

use mail::MAX_MESSAGE_BYTES;
pub use mail::{Brand, ReplySpec, compose_reply, normalize_mail, normalize_mails};
use transport::Security;

/// Raw bytes one poll fetches at most (besides the per-mail cap): keeps a
/// page of large mails well inside the plugin's memory limit.
const MAX_PAGE_BYTES: u64 = 8 * 1024 * 1024;

/// State key of the Message-IDs of the latest replies sent.
const SENT_KEY: &str = "sent_replies";

/// How many sent replies are remembered for retries (≈70 bytes each).
const MAX_REMEMBERED_REPLIES: usize = 256;

/// The connector.
pub struct EmailConnector;

/// The poll cursor: where in which mailbox incarnation we are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    /// `UIDVALIDITY` of the mailbox the UIDs belong to.
    uid_validity: u32,
    /// The next UID to fetch (last delivered + 1).
    next_uid: u32,
}

impl Connector for EmailConnector {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "email",
            env!("CARGO_PKG_VERSION"),
            "email",
            "E-mail: polls an IMAP mailbox, accepts raw MIME webhooks, replies by SMTP",
        )
        .feature(Feature::Poll)
        .feature(Feature::Webhook)
        .feature(Feature::Reply)
        .feature(Feature::PrivateReply)
        .setting(SettingSpec::text("brand_address", "The brand's support address; mails from it are outbound, replies are sent from it.").required())
        .setting(SettingSpec::text("brand_name", "Display name on replies (`Acme Care`)."))
        .setting(SettingSpec::text_list("brand_aliases", "Further addresses that are the brand (for direction and addressed-to-brand)."))
        .setting(SettingSpec::text("imap_host", "IMAP server host name; polling needs it."))
        .setting(SettingSpec::integer("imap_port", "IMAP server port.").default_value("993"))
        .setting(SettingSpec::text("imap_security", "`tls` (implicit TLS), `starttls`, or `none` (loopback only).").default_value("tls"))
        .setting(SettingSpec::text("mailbox", "The IMAP mailbox to poll.").default_value("INBOX"))
        .setting(SettingSpec::text("username", "IMAP/SMTP login; defaults to brand_address."))
        .setting(SettingSpec::text("smtp_host", "SMTP submission server host name; replies need it."))
        .setting(SettingSpec::integer("smtp_port", "SMTP submission port.").default_value("465"))
        .setting(SettingSpec::text("smtp_security", "`tls` (implicit TLS), `starttls`, or `none` (loopback only).").default_value("tls"))
        .setting(SettingSpec::integer("page_size", "Mails per poll at most.").default_value("50"))
        .setting(SettingSpec::text("password", "IMAP password (and SMTP password unless smtp_password is set).").secret())
        .setting(SettingSpec::text("smtp_password", "SMTP password; defaults to password.").secret())
        .setting(SettingSpec::text("webhook_token", "Shared token webhook callers send in `x-webhook-token` or `?token=`.").secret())
    }

    fn poll(cursor: Option<String>) -> Result<Batch> {
        let config = Config::load()?;
        let position: Option<Position> = cursor::decode(cursor)?;
        poll_mailbox(&config, position)
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        if let Some(expected) = secrets::get("webhook_token") {
            let given = request
                .header("x-webhook-token")
                .or_else(|| request.query_param("token"))
                .unwrap_or("");
            if !security::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                log::warn("webhook refused: missing or wrong token");
                return Ok(WebhookOutcome::new(WebhookResponse::text(
                    401,
                    "missing or wrong webhook token",
                )));
            }
        }
        if request.method != "POST" {
            return Ok(WebhookOutcome::new(
                WebhookResponse::text(405, "POST one raw MIME mail (message/rfc822)")
                    .header("allow", "POST"),
            ));
        }
        let brand = brand()?;
        let message = normalize_mail(&request.body, &brand, clock::now_ms(), None)?;
        let mut outcome = WebhookOutcome::new(WebhookResponse::text(200, "accepted"));
        outcome.messages.push(message);
        Ok(outcome)
    }

    fn perform(action: Action, target: ActionTarget) -> Result<ActionResult> {
        let outgoing = match action.kind {
            ActionKind::Reply(outgoing) | ActionKind::PrivateReply(outgoing) => outgoing,
            other => {
                return Err(Error::unsupported(format!(
                    "e-mail has no `{}` action",
                    other.name()
                )));
            }
        };
        if target.kind != MessageKind::Email {
            return Err(Error::invalid_input(
                "the e-mail connector can only answer e-mails",
            ));
        }
        if outgoing.text.trim().is_empty() {
            return Err(Error::invalid_input("the reply text is empty"));
        }
        let config = Config::load()?;
        let to = target
            .property("reply_to")
            .or_else(|| target.property("from"))
            .unwrap_or(&target.author.handle)
            .to_owned();
        if !to.contains('@') || to.contains(['<', '>', '\r', '\n', ' ']) {
            return Err(Error::invalid_input(format!(
                "the target has no usable reply address (`{to}`)"
            )));
        }
        let composed = compose_reply(&ReplySpec {
            from_address: &config.brand_address,
            from_name: config.brand_name.as_deref(),
            to: &to,
            subject: target.subject.as_deref(),
            in_reply_to: target.property("message_id"),
            references: target.property("references"),
            idempotency_key: &action.idempotency_key,
            now_ms: clock::now_ms(),
            text: &outgoing.text,
        });
        // SMTP has no idempotency: remember what was sent, so a retry of an
        // action that went through (a timeout after DATA) is not sent twice.
        let mut sent: Vec<String> = state::get_json(SENT_KEY)?.unwrap_or_default();
        if sent.contains(&composed.message_id) {
            log::info(format!(
                "reply {} was already sent; not sending it again",
                composed.message_id
            ));
            return Ok(ActionResult::created(composed.message_id, None));
        }
        send_mail(&config, &to, &composed.bytes)?;
        log::info(format!("reply {} sent", composed.message_id));
        sent.push(composed.message_id.clone());
        let keep_from = sent.len().saturating_sub(MAX_REMEMBERED_REPLIES);
        if let Err(error) = state::set_json(SENT_KEY, &sent[keep_from..]) {
            // The mail is out; failing now would make the host retry it.
            log::warn(format!("could not remember the sent reply: {error}"));
        }
        Ok(ActionResult::created(composed.message_id, None))
    }
}

/// The settings and secrets, read and checked once per call.
struct Config {
    brand_address: String,
    brand_name: Option<String>,
    aliases: Vec<String>,
    username: String,
    password: Option<String>,
    smtp_password: Option<String>,
    mailbox: String,
    page_size: usize,
}

impl Config {
    fn load() -> Result<Self> {
        let brand_address = settings::require("brand_address")?.trim().to_owned();
        if !brand_address.contains('@') || brand_address.contains(['<', '>', ' ']) {
            return Err(Error::invalid_input(format!(
                "setting `brand_address` = `{brand_address}` is not a plain e-mail address"
            )));
        }
        let page_size: usize = settings::parse("page_size")?;
        if page_size == 0 {
            return Err(Error::invalid_input(
                "setting `page_size` must be at least 1",
            ));
        }
        let password = secrets::get("password");
        Ok(Self {
            username: settings::get("username")
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| brand_address.clone()),
            brand_name: settings::get("brand_name").filter(|n| !n.trim().is_empty()),
            aliases: settings::list("brand_aliases"),
            smtp_password: secrets::get("smtp_password").or_else(|| password.clone()),
            password,
            mailbox: settings::get("mailbox").unwrap_or_else(|| "INBOX".to_owned()),
            page_size,
            brand_address,
        })
    }

    fn brand(&self) -> Brand {
        Brand::new(&self.brand_address, &self.aliases)
    }
}

/// The brand from the settings alone (for webhooks, which need no servers).
fn brand() -> Result<Brand> {
    let address = settings::require("brand_address")?;
    Ok(Brand::new(&address, &settings::list("brand_aliases")))
}

/// Host, port and security of `prefix` (`imap`, `smtp`) from the settings.
fn endpoint(prefix: &str, needed_for: &str) -> Result<(String, u16, Security)> {
    let host = settings::get(&format!("{prefix}_host"))
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "setting `{prefix}_host` is needed for {needed_for}"
            ))
        })?;
    let port: u16 = settings::parse(&format!("{prefix}_port"))?;
    let security_key = format!("{prefix}_security");
    let security = Security::parse(
        &security_key,
        &settings::get(&security_key).unwrap_or_else(|| "tls".to_owned()),
    )?;
    security.check_host(&security_key, &host)?;
    Ok((host, port, security))
}

/// One poll: log in, `EXAMINE`, find UIDs from the cursor on, fetch one
/// page (sizes first, so oversized mails are fetched as header only).
fn poll_mailbox(config: &Config, position: Option<Position>) -> Result<Batch> {
    let (host, port, security) = endpoint("imap", "polling")?;
    let password = config
        .password
        .as_deref()
        .ok_or_else(|| Error::invalid_input("secret `password` is needed for polling"))?;
    let connection = transport::connect(&host, port, security)?;
    let mut client = imap::Client::start(connection)?;
    if security == Security::StartTls {
        client.start_tls()?;
    }
    client.login(&config.username, password)?;
    let status = client.examine(&config.mailbox)?;

    // A new UIDVALIDITY means the old UIDs mean nothing: start over. The
    // messages' ids are their Message-IDs, so what was delivered before
    // is recognised by the host and not stored twice.
    let from = match &position {
        Some(p) if p.uid_validity == status.uid_validity => p.next_uid.max(1),
        Some(p) => {
            log::warn(format!(
                "mailbox `{}` UIDVALIDITY changed from {} to {}: re-syncing from the start",
                config.mailbox, p.uid_validity, status.uid_validity
            ));
            1
        }
        None => 1,
    };
    let uids = if status.exists == 0 {
        Vec::new()
    } else {
        client.uids_from(from)?
    };

    // Sizes first: choose which mails fit the page and which are too big.
    let candidates: Vec<u32> = uids.iter().copied().take(config.page_size).collect();
    let mut sizes = Vec::with_capacity(candidates.len());
    client.fetch(
        &candidates,
        "UID RFC822.SIZE INTERNALDATE",
        &mut |fetched| {
            sizes.push((
                fetched.uid,
                fetched.size.unwrap_or(0),
                fetched.internal_date,
            ));
            Ok(())
        },
    )?;
    sizes.sort_unstable_by_key(|(uid, _, _)| *uid);
    let mut page = Vec::new();
    let mut budget = 0_u64;
    for (uid, size, date) in sizes {
        let fetched_size = size.min(MAX_MESSAGE_BYTES);
        if !page.is_empty() && budget + fetched_size > MAX_PAGE_BYTES {
            break;
        }
        budget += fetched_size;
        page.push((uid, size, date));
    }

    let brand = config.brand();
    let now = clock::now_ms();
    let whole: Vec<u32> = page
        .iter()
        .filter(|(_, size, _)| *size <= MAX_MESSAGE_BYTES)
        .map(|(uid, _, _)| *uid)
        .collect();
    let header_only: Vec<u32> = page
        .iter()
        .filter(|(_, size, _)| *size > MAX_MESSAGE_BYTES)
        .map(|(uid, _, _)| *uid)
        .collect();
    let mut normalized = Vec::with_capacity(page.len());
    for (uids, items) in [
        (&whole, "UID BODY.PEEK[]"),
        (&header_only, "UID BODY.PEEK[HEADER]"),
    ] {
        client.fetch(uids, items, &mut |fetched| {
            let Some((_, size, date)) = page.iter().find(|(uid, _, _)| *uid == fetched.uid) else {
                return Ok(());
            };
            let body = fetched.body.unwrap_or_default();
            let received_at = date.as_deref().and_then(internal_date_ms).unwrap_or(now);
            let full_size = (*size > MAX_MESSAGE_BYTES).then_some(*size);
            // A stored mail that does not parse must not block the mailbox
            // for good (every poll would fail on it): it becomes a note.
            let message =
                normalize_mail(&body, &brand, received_at, full_size).unwrap_or_else(|error| {
                    log::warn(format!(
                        "mail UID {} in `{}` is unreadable: {}",
                        fetched.uid,
                        config.mailbox,
                        error.detail()
                    ));
                    mail::unreadable_mail(
                        status.uid_validity,
                        fetched.uid,
                        &config.mailbox,
                        received_at,
                    )
                });
            normalized.push((fetched.uid, message));
            Ok(())
        })?;
    }
    client.logout();

    normalized.sort_by_key(|(uid, _)| *uid);
    let last_uid = page.last().map(|(uid, _, _)| *uid);
    let mut seen = Vec::with_capacity(normalized.len());
    let mut messages = Vec::with_capacity(normalized.len());
    for (uid, message) in normalized {
        seen.push(uid);
        messages.push(message);
    }
    if let Some(missing) = page.iter().find(|(uid, _, _)| !seen.contains(uid)) {
        // Expunged between the two FETCHes: nothing to deliver for it.
        log::debug(format!("mail UID {} vanished during the poll", missing.0));
    }

    let next_uid = match last_uid {
        Some(uid) => uid.saturating_add(1),
        None => from,
    };
    let mut batch = Batch::new(messages);
    batch.has_more = uids.iter().any(|&uid| uid >= next_uid);
    batch.next_cursor = Some(cursor::encode(&Position {
        uid_validity: status.uid_validity,
        next_uid,
    })?);
    Ok(batch)
}

/// Sends `message` to `to` through the configured SMTP server.
fn send_mail(config: &Config, to: &str, message: &[u8]) -> Result<()> {
    let (host, port, security) = endpoint("smtp", "replies")?;
    let connection = transport::connect(&host, port, security)?;
    let brand = config.brand();
    let mut client = smtp::Client::start(connection, brand.domain())?;
    if security == Security::StartTls {
        client.start_tls()?;
    }
    match &config.smtp_password {
        Some(password) => {
            if !client.authenticate(&config.username, password)? {
                log::warn(format!(
                    "SMTP server {host}:{port} offers no AUTH; sending without logging in"
                ));
            }
        }
        None => log::debug("no SMTP password configured; sending without logging in"),
    }
    client.send(&config.brand_address, &[to.to_owned()], message)?;
    client.quit();
    Ok(())
}

/// Parses an IMAP `INTERNALDATE` (`24-Nov-2026 15:26:59 +0000`) into ms.
fn internal_date_ms(text: &str) -> Option<i64> {
    // Reuse mail-parser's RFC 5322 date parser: reorder into that form.
    let text = text.trim();
    let (date, rest) = text.split_once(' ')?;
    let mut fields = date.split('-');
    let (day, month, year) = (fields.next()?, fields.next()?, fields.next()?);
    let header = format!("Date: {} {month} {year} {rest}\r\n\r\n", day.trim());
    let parsed = mail_parser::MessageParser::default().parse(header.as_bytes())?;
    let ms = parsed.date()?.to_timestamp().checked_mul(1000)?;
    (ms > 0).then_some(ms)
}

webcare_plugin::export!(EmailConnector);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_declares_the_agreed_settings() {
        let info = EmailConnector::describe();
        let names: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "brand_address",
                "brand_name",
                "brand_aliases",
                "imap_host",
                "imap_port",
                "imap_security",
                "mailbox",
                "username",
                "smtp_host",
                "smtp_port",
                "smtp_security",
                "page_size",
                "password",
                "smtp_password",
                "webhook_token"
            ]
        );
        let secrets: Vec<&str> = info
            .settings
            .iter()
            .filter(|s| s.secret)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(secrets, ["password", "smtp_password", "webhook_token"]);
        assert!(info.settings[0].required);
        assert!(info.settings[1..].iter().all(|s| !s.required));
    }

    #[test]
    fn internal_dates_parse() {
        assert_eq!(
            internal_date_ms("24-Nov-2026 15:27:48 +0000"),
            Some(1_795_534_068_000)
        );
        assert_eq!(
            internal_date_ms(" 4-Nov-2026 16:27:48 +0100"),
            Some(1_795_534_068_000 - 20 * 86_400_000)
        );
        assert_eq!(internal_date_ms("yesterday"), None);
    }

    #[test]
    fn cursors_are_small() {
        let text = cursor::encode(&Position {
            uid_validity: u32::MAX,
            next_uid: u32::MAX,
        })
        .unwrap();
        assert!(text.len() < 64, "{text}");
    }
}
