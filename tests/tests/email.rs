//! The e-mail connector's `.wasm` in the real host against real mail
//! servers on loopback: Dovecot for IMAP (implicit TLS, STARTTLS and plain
//! text on loopback) and OpenSMTPD for replies, started and stopped per
//! test by `webcare_tests::mail_servers`. OpenSMTPD cannot do TLS on this
//! Debian (see `mail_servers`), so SMTP STARTTLS and `AUTH PLAIN` through
//! the host are checked against a scripted submission server instead.

mod common;

use std::time::Duration;

use common::grants;
use webcare::model::{
    Action, ActionKind, ActionTarget, AttachmentKind, Direction, Message, MessageKind, Outgoing,
    Visibility, WebhookRequest,
};
use webcare::runtime::{
    CallLimits, ConnectorInstance, EngineSettings, PluginError, Runtime, RuntimeConfig,
};
use webcare_tests::mail_servers::{Dovecot, Smtpd, TestPki};
use webcare_tests::plugins::plugin_path;
use webcare_tests::test_cache_dir;

const BRAND: &str = "care@acme.test";
const PASSWORD: &str = "imap-s3cret";
const CUSTOMER: &str = "jan@example.test";
const CUSTOMER_PASSWORD: &str = "jan-s3cret";
const WEBHOOK_TOKEN: &str = "whk-0123456789abcdef";

/// A fixture from `tests/fixtures/email`.
fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/email")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The mails every poll test delivers, in this order.
const MAILS: [&str; 9] = [
    "multipart_attachment.eml",
    "latin1_dutch.eml",
    "windows1252_dutch.eml",
    "iso2022jp.eml",
    "html_only.eml",
    "from_brand.eml",
    "chatwoot_references.eml",
    "mailparser_rfc_005_multipart_mixed.eml",
    "mailparser_thirdparty_010_rfc2047_utf8_b.eml",
];

/// A Dovecot with the brand's and a customer's mailbox, a runtime that
/// trusts its test CA, and the connector's plugin loaded.
struct Setup {
    dovecot: Dovecot,
    runtime: Runtime,
}

impl Setup {
    fn start() -> Setup {
        let pki = TestPki::generate();
        let dovecot = Dovecot::start(&[(BRAND, PASSWORD), (CUSTOMER, CUSTOMER_PASSWORD)], &pki);
        let runtime = Runtime::new(RuntimeConfig {
            engine: EngineSettings::default(),
            cache_dir: Some(test_cache_dir()),
            extra_roots_pem: vec![pki.ca_pem.clone().into_bytes()],
        })
        .expect("runtime");
        Setup { dovecot, runtime }
    }

    /// Settings for polling over `security` (`tls`, `starttls`, `none`).
    fn imap_settings(&self, security: &str) -> Vec<(String, String)> {
        let port = match security {
            "tls" => self.dovecot.imaps_port,
            _ => self.dovecot.imap_port,
        };
        vec![
            ("brand_address".into(), BRAND.into()),
            ("brand_name".into(), "Acme Klantenservice".into()),
            (
                "brand_aliases".into(),
                "support@acme.test, info@acme.test".into(),
            ),
            ("imap_host".into(), "127.0.0.1".into()),
            ("imap_port".into(), port.to_string()),
            ("imap_security".into(), security.into()),
        ]
    }

    /// A configured connector with `settings`, the brand's password (unless
    /// overridden), the webhook token, and `allow` as its allow-list.
    async fn connector(
        &self,
        settings: &[(String, String)],
        password: &str,
        allow: &[String],
    ) -> ConnectorInstance {
        let plugin = self
            .runtime
            .load_file(&plugin_path("email_connector"))
            .await
            .expect("load the e-mail connector");
        let settings: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.runtime
            .configured_connector(
                plugin,
                grants(
                    "acme",
                    &settings,
                    &[("password", password), ("webhook_token", WEBHOOK_TOKEN)],
                    allow,
                ),
                CallLimits::default(),
            )
            .await
            .expect("the settings fit the connector's declaration")
    }

    /// A connector polling over `security`, allowed to reach Dovecot.
    async fn poller(&self, security: &str, extra: &[(&str, &str)]) -> ConnectorInstance {
        let mut settings = self.imap_settings(security);
        for (key, value) in extra {
            settings.push((key.to_string(), value.to_string()));
        }
        let allow = vec![
            format!("tcp://127.0.0.1:{}", self.dovecot.imap_port),
            format!("tcp://127.0.0.1:{}", self.dovecot.imaps_port),
        ];
        self.connector(&settings, PASSWORD, &allow).await
    }

    fn deliver(&self, mailbox: &str, names: &[&str]) {
        for name in names {
            self.dovecot.append(BRAND, mailbox, &fixture(name));
        }
    }
}

fn find<'a>(messages: &'a [Message], external_id: &str) -> &'a Message {
    messages
        .iter()
        .find(|m| m.external_id == external_id)
        .unwrap_or_else(|| {
            let ids: Vec<_> = messages.iter().map(|m| &m.external_id).collect();
            panic!("no message {external_id} among {ids:?}")
        })
}

fn property<'a>(message: &'a Message, key: &str) -> Option<&'a str> {
    message
        .properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn poll_over_implicit_tls_normalises_real_mail() {
    let setup = Setup::start();
    setup.deliver("INBOX", &MAILS);
    let mut email = setup.poller("tls", &[]).await;

    let batch = email.poll(None).await.expect("poll Dovecot over TLS");
    assert_eq!(batch.messages.len(), MAILS.len(), "{}", setup.dovecot.log());
    assert!(!batch.has_more);
    assert!(batch.updates.is_empty());
    for message in &batch.messages {
        assert_eq!(message.kind, MessageKind::Email);
        assert_eq!(message.visibility, Visibility::Private);
        assert_eq!(message.permalink, None);
    }

    // Multipart: the text part, Reply-To, both attachments as metadata.
    let jan = find(&batch.messages, "a1042.1@example.test");
    assert_eq!(jan.thread_id, "a1042.1@example.test");
    assert_eq!(jan.in_reply_to, None);
    assert_eq!(jan.direction, Direction::Inbound);
    assert!(jan.addressed_to_brand);
    assert_eq!(jan.author.handle, CUSTOMER);
    assert_eq!(jan.author.id, CUSTOMER);
    assert_eq!(jan.author.display_name, "Jan de Vries");
    assert_eq!(jan.subject.as_deref(), Some("Bestelling A-1042 kwijt 😡"));
    assert_eq!(
        jan.text,
        "Hallo, mijn bestelling A-1042 is nog steeds niet bezorgd 📦.\nMijn buurman Yosef schreef: שלום, ההזמנה שלי לא הגיעה\nGroet, Jan"
    );
    assert!(jan.html.as_deref().unwrap().contains("<b>A-1042</b>"));
    assert_eq!(jan.created_at, 1_795_510_800_000);
    let attachments: Vec<_> = jan
        .attachments
        .iter()
        .map(|a| {
            (
                a.kind,
                a.name.as_deref().unwrap(),
                a.mime_type.as_deref().unwrap(),
                a.url.is_none(),
            )
        })
        .collect();
    assert_eq!(
        attachments,
        [
            (
                AttachmentKind::File,
                "factuur-A-1042.pdf",
                "application/pdf",
                true
            ),
            (AttachmentKind::Image, "pakket.png", "image/png", true),
        ]
    );
    assert_eq!(jan.attachments[0].size_bytes, Some(68));
    assert_eq!(jan.attachments[1].size_bytes, Some(70));
    assert_eq!(property(jan, "message_id"), Some("a1042.1@example.test"));
    assert_eq!(property(jan, "reply_to"), Some("jan.private@example.test"));
    assert_eq!(property(jan, "from"), Some(CUSTOMER));
    assert_eq!(property(jan, "references"), None);

    // Legacy charsets decoded; the brand only in Cc still counts.
    let renee = find(&batch.messages, "latin1.renee@example.test");
    assert!(renee.addressed_to_brand, "brand in Cc");
    assert_eq!(renee.author.display_name, "Renée Dijkstörm");
    assert_eq!(
        renee.subject.as_deref(),
        Some("Klacht over de café-machine")
    );
    assert!(
        renee
            .text
            .contains("de crème is op en de reïntegratie van mijn account duurt al twee weëken."),
        "{:?}",
        renee.text
    );
    let sanne = find(&batch.messages, "cp1252.sanne@example.test");
    assert!(
        sanne
            .text
            .contains("De levering was “binnen 24 uur” beloofd – nu al 3 dagen. Kosten: € 12,50."),
        "{:?}",
        sanne.text
    );
    let taro = find(&batch.messages, "jis.taro@example.test");
    assert_eq!(taro.subject.as_deref(), Some("注文"));
    assert_eq!(taro.text, "注文した商品が届きません。");

    // HTML only: readable text, no markup or CSS, RTL intact.
    let layla = find(&batch.messages, "html.layla@example.test");
    assert!(
        layla.text.contains("مرحبا، طلبي لم يصل بعد 😔"),
        "{:?}",
        layla.text
    );
    assert!(
        layla.text.contains("Order A-2001 & A-2002 — track"),
        "{:?}",
        layla.text
    );
    assert!(!layla.text.contains('<') && !layla.text.contains("color"));
    assert_eq!(layla.subject.as_deref(), Some("طلبي لم يتم توصيله"));
    assert!(layla.html.as_deref().unwrap().contains("<b>A-2001</b>"));

    // The brand's own earlier reply: outbound, linked into the thread.
    let ours = find(&batch.messages, "reply.1@acme.test");
    assert_eq!(ours.direction, Direction::Outbound);
    assert!(!ours.addressed_to_brand);
    assert_eq!(ours.in_reply_to.as_deref(), Some("a1042.1@example.test"));
    assert_eq!(ours.thread_id, "a1042.1@example.test");

    // Chatwoot's sample: thread root is the first References id.
    let chatwoot = find(
        &batch.messages,
        "0CB459E0-0336-41DA-BC88-E6E28C697DDBF@chatwoot.com",
    );
    assert_eq!(
        chatwoot.thread_id,
        "4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"
    );
    assert_eq!(
        chatwoot.in_reply_to.as_deref(),
        Some("4e6e35f5a38b4_479f13bb90078178@small-app-01.mail")
    );
    assert_eq!(
        property(chatwoot, "references"),
        Some("<4e6e35f5a38b4_479f13bb90078178@small-app-01.mail> <test-in-reply-to>")
    );
    assert!(!chatwoot.addressed_to_brand, "no To or Cc at all");

    // mail-parser's samples: no Message-ID, so stable hash ids.
    let hashed: Vec<_> = batch
        .messages
        .iter()
        .filter(|m| m.external_id.starts_with("nomsgid-"))
        .collect();
    assert_eq!(hashed.len(), 2);
    assert!(
        hashed
            .iter()
            .any(|m| m.subject.as_deref() == Some("こんにちは")
                && m.language.as_deref() == Some("ja"))
    );
    assert!(hashed.iter().any(|m| {
        m.text
            .contains("This is explicitly typed plain US-ASCII text.")
    }));

    // Polling read the mails without marking them seen.
    let flags = setup.dovecot.flags(BRAND, "INBOX");
    assert_eq!(flags.len(), MAILS.len());
    assert!(flags.iter().all(|f| !f.contains("\\Seen")), "{flags:?}");
}

#[tokio::test]
async fn pages_resume_over_starttls_and_new_mail_arrives_once() {
    let setup = Setup::start();
    setup.deliver("INBOX", &MAILS[..5]);
    let mut email = setup.poller("starttls", &[("page_size", "2")]).await;

    let first = email.poll(None).await.expect("first page");
    let second = email
        .poll(first.next_cursor.as_deref())
        .await
        .expect("second page");
    let third = email
        .poll(second.next_cursor.as_deref())
        .await
        .expect("third page");
    assert_eq!(
        [
            first.messages.len(),
            second.messages.len(),
            third.messages.len()
        ],
        [2, 2, 1]
    );
    assert_eq!(
        [first.has_more, second.has_more, third.has_more],
        [true, true, false]
    );
    let ids: Vec<&str> = [&first, &second, &third]
        .iter()
        .flat_map(|b| b.messages.iter().map(|m| m.external_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            "a1042.1@example.test",
            "latin1.renee@example.test",
            "cp1252.sanne@example.test",
            "jis.taro@example.test",
            "html.layla@example.test"
        ],
        "oldest first, each once"
    );
    for batch in [&first, &second, &third] {
        let cursor = batch.next_cursor.as_deref().expect("a cursor");
        assert!(cursor.len() < 4096);
    }

    let idle = email
        .poll(third.next_cursor.as_deref())
        .await
        .expect("nothing new");
    assert!(idle.messages.is_empty() && !idle.has_more);

    setup.deliver("INBOX", &["from_brand.eml"]);
    let fresh = email
        .poll(idle.next_cursor.as_deref())
        .await
        .expect("new mail");
    assert_eq!(fresh.messages.len(), 1);
    assert_eq!(fresh.messages[0].external_id, "reply.1@acme.test");
    let after = email
        .poll(fresh.next_cursor.as_deref())
        .await
        .expect("again");
    assert!(after.messages.is_empty(), "the new mail came exactly once");
}

#[tokio::test]
async fn a_new_uidvalidity_resyncs_with_the_same_ids_over_plain_loopback() {
    let setup = Setup::start();
    setup.dovecot.create_mailbox(BRAND, "Support");
    setup.deliver("Support", &MAILS[..3]);
    let mut email = setup.poller("none", &[("mailbox", "Support")]).await;

    let before = email.poll(None).await.expect("poll the old mailbox");
    assert_eq!(before.messages.len(), 3);

    // The mailbox is re-created (a restore, a migration): new UIDVALIDITY,
    // the same mails plus one new one.
    setup.dovecot.recreate_mailbox(BRAND, "Support");
    setup.deliver("Support", &MAILS[..4]);
    let after = email
        .poll(before.next_cursor.as_deref())
        .await
        .expect("poll the re-created mailbox");
    assert_ne!(after.next_cursor, before.next_cursor);
    assert_eq!(after.messages.len(), 4, "a full re-sync");
    for (old, new) in before.messages.iter().zip(&after.messages) {
        assert_eq!(old, new, "the host deduplicates the re-sync on these ids");
    }
    assert_eq!(after.messages[3].external_id, "jis.taro@example.test");
    let quiet = email
        .poll(after.next_cursor.as_deref())
        .await
        .expect("settled");
    assert!(quiet.messages.is_empty());
}

#[tokio::test]
async fn oversized_mail_becomes_a_note_not_a_failure() {
    let setup = Setup::start();
    let mut big = b"From: scanner@example.test\r\nTo: care@acme.test\r\nSubject: scan\r\nMessage-ID: <big.scan@example.test>\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    for _ in 0..(40 * 1024) {
        big.extend_from_slice(&[b'x'; 62]);
        big.extend_from_slice(b"\r\n");
    }
    setup.dovecot.append(BRAND, "INBOX", &big);
    setup.deliver("INBOX", &["latin1_dutch.eml"]);
    let mut email = setup.poller("tls", &[]).await;
    let batch = email.poll(None).await.expect("poll");
    assert_eq!(batch.messages.len(), 2);
    let scan = &batch.messages[0];
    assert_eq!(scan.external_id, "big.scan@example.test");
    assert_eq!(scan.subject.as_deref(), Some("scan"));
    assert!(scan.text.contains("2561 KiB"), "{}", scan.text);
    assert!(!scan.text.contains("xxxx"));
    assert_eq!(property(scan, "truncated"), Some("true"));
    assert_eq!(batch.messages[1].external_id, "latin1.renee@example.test");
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized() {
    let setup = Setup::start();
    let settings = setup.imap_settings("tls");
    let allow = vec![format!("tcp://127.0.0.1:{}", setup.dovecot.imaps_port)];
    let mut email = setup.connector(&settings, "not-the-password", &allow).await;
    let error = email.poll(None).await.unwrap_err();
    assert_eq!(error.kind(), "unauthorized", "{error}");
    assert!(
        error.to_string().contains("AUTHENTICATIONFAILED"),
        "{error}"
    );
    assert!(
        matches!(
            &error,
            PluginError::Connector(webcare::model::ConnectorError::Unauthorized {
                expired: false,
                ..
            })
        ),
        "wrong, not expired: {error:?}"
    );
    // Dovecot logs the failed login when the connection closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !setup.dovecot.log().contains("auth failed") {
        assert!(
            std::time::Instant::now() < deadline,
            "Dovecot saw no failed login:\n{}",
            setup.dovecot.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hosts_off_the_allow_list_are_denied_and_plain_text_stays_on_loopback() {
    let setup = Setup::start();
    let settings = setup.imap_settings("tls");
    // Only the plain port is granted; the connector asks for the TLS one.
    let allow = vec![format!("tcp://127.0.0.1:{}", setup.dovecot.imap_port)];
    let mut email = setup.connector(&settings, PASSWORD, &allow).await;
    let error = email.poll(None).await.unwrap_err();
    assert_eq!(error.kind(), "allow-list", "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("127.0.0.1:{}", setup.dovecot.imaps_port)),
        "{error}"
    );
    assert!(
        !setup.dovecot.log().contains("Login:"),
        "nothing reached Dovecot"
    );

    let mut settings = setup.imap_settings("none");
    settings.retain(|(k, _)| k != "imap_host");
    settings.push(("imap_host".into(), "imap.example.com".into()));
    let mut email = setup
        .connector(&settings, PASSWORD, &["tcp://imap.example.com:143".into()])
        .await;
    let error = email.poll(None).await.unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");
    assert!(error.to_string().contains("loopback"), "{error}");
}

/// The target the host would hand back for `message`.
fn target_of(message: &Message) -> ActionTarget {
    ActionTarget::of_message(message, Some(message.created_at))
}

#[tokio::test]
async fn a_reply_goes_out_through_opensmtpd_with_threading_headers() {
    let setup = Setup::start();
    // A mail deep in a thread: it has References of its own.
    setup.deliver(
        "INBOX",
        &["chatwoot_references.eml", "multipart_attachment.eml"],
    );
    let smtpd = Smtpd::start();
    let mut email = setup.poller("tls", &[]).await;
    let batch = email.poll(None).await.expect("poll");
    let chatwoot = find(
        &batch.messages,
        "0CB459E0-0336-41DA-BC88-E6E28C697DDBF@chatwoot.com",
    );
    let jan = find(&batch.messages, "a1042.1@example.test");

    let mut settings = setup.imap_settings("tls");
    settings.extend([
        ("smtp_host".to_string(), "127.0.0.1".to_string()),
        ("smtp_port".to_string(), smtpd.port.to_string()),
        ("smtp_security".to_string(), "none".to_string()),
    ]);
    let allow = vec![format!("tcp://127.0.0.1:{}", smtpd.port)];
    let mut sender = setup.connector(&settings, PASSWORD, &allow).await;

    let reply = |key: &str, text: &str, private: bool| Action {
        idempotency_key: key.into(),
        kind: if private {
            ActionKind::PrivateReply(Outgoing {
                text: text.into(),
                attachments: vec![],
            })
        } else {
            ActionKind::Reply(Outgoing {
                text: text.into(),
                attachments: vec![],
            })
        },
    };
    let first = sender
        .perform(
            reply(
                "case-7-reply-1",
                "Dag Sony,\n.\nWe kijken ernaar 🙏 — שלום",
                false,
            ),
            target_of(chatwoot),
        )
        .await
        .expect("reply through OpenSMTPD");
    let first_id = first.external_id.expect("the new Message-ID");
    assert!(first_id.ends_with("@acme.test"), "{first_id}");
    let second = sender
        .perform(
            reply("case-8-reply-1", "Hoi Jan, we zoeken het uit.", true),
            target_of(jan),
        )
        .await
        .expect("private reply through OpenSMTPD");
    let second_id = second.external_id.expect("the new Message-ID");
    // A retry of the same action gives the same Message-ID and sends nothing.
    let retry = sender
        .perform(
            reply("case-8-reply-1", "Hoi Jan, we zoeken het uit.", true),
            target_of(jan),
        )
        .await
        .expect("retry");
    assert_eq!(retry.external_id.as_deref(), Some(second_id.as_str()));

    let delivered = smtpd.wait_for_mail(2, Duration::from_secs(20));
    // Read the delivered mails back through the connector itself (its
    // webhook takes raw MIME), as the brand's mailbox would see them.
    let mut parsed = Vec::new();
    for raw in &delivered {
        parsed.push(read_back(&mut sender, raw).await);
    }
    // The maildir stores lines with LF endings.
    let text = |raw: &[u8]| String::from_utf8_lossy(raw).replace("\r\n", "\n");

    let to_sony = parsed
        .iter()
        .position(|m| m.external_id == first_id)
        .unwrap_or_else(|| panic!("{first_id} not delivered:\n{}", smtpd.log()));
    let raw = text(&delivered[to_sony]);
    assert!(raw.contains("Delivered-To: sony@chatwoot.com"), "{raw}");
    assert!(
        raw.contains("From: \"Acme Klantenservice\" <care@acme.test>\n"),
        "{raw}"
    );
    assert!(raw.contains("To: <sony@chatwoot.com>\n"), "{raw}");
    assert!(
        raw.contains("Subject: Re: Discussion: Let's debate these attachments\n"),
        "{raw}"
    );
    assert!(
        raw.contains("In-Reply-To: <0CB459E0-0336-41DA-BC88-E6E28C697DDBF@chatwoot.com>\n"),
        "{raw}"
    );
    assert!(
        raw.contains("References: <4e6e35f5a38b4_479f13bb90078178@small-app-01.mail>\n <test-in-reply-to> <0CB459E0-0336-41DA-BC88-E6E28C697DDBF@chatwoot.com>\n"),
        "{raw}"
    );
    assert!(raw.contains("MIME-Version: 1.0\n"));
    assert!(raw.contains("Content-Type: text/plain; charset=utf-8\n"));
    assert!(
        raw.contains(&format!("Message-ID: <{first_id}>\n")),
        "{raw}"
    );
    let sent = &parsed[to_sony];
    assert_eq!(
        sent.text, "Dag Sony,\n.\nWe kijken ernaar 🙏 — שלום",
        "dot-stuffing undone"
    );
    // Read back as the brand's own mail, it links to what it answers.
    assert_eq!(sent.direction, Direction::Outbound);
    assert_eq!(
        sent.in_reply_to.as_deref(),
        Some(chatwoot.external_id.as_str())
    );
    assert_eq!(sent.thread_id, chatwoot.thread_id);

    // To = Reply-To, and a subject that is not doubled on a second round.
    let to_jan: Vec<_> = delivered
        .iter()
        .zip(&parsed)
        .filter(|(_, m)| m.external_id == second_id)
        .collect();
    assert_eq!(to_jan.len(), 1, "the retry was not sent again");
    let raw = text(to_jan[0].0);
    assert!(raw.contains("To: <jan.private@example.test>\n"), "{raw}");
    assert_eq!(
        to_jan[0].1.subject.as_deref(),
        Some("Re: Bestelling A-1042 kwijt 😡")
    );
    assert!(
        raw.contains("References: <a1042.1@example.test>\n"),
        "{raw}"
    );

    let mut again = target_of(jan);
    again.subject = to_jan[0].1.subject.clone();
    sender
        .perform(reply("case-8-reply-2", "Nog één vraag.", true), again)
        .await
        .expect("second round");
    let delivered = smtpd.wait_for_mail(3, Duration::from_secs(20));
    assert_eq!(delivered.len(), 3, "one mail per distinct action");
    let mut found = false;
    for raw in &delivered {
        let message = read_back(&mut sender, raw).await;
        found |= message.subject.as_deref() == Some("Re: Bestelling A-1042 kwijt 😡")
            && message.text == "Nog één vraag.";
    }
    assert!(found, "Re: not doubled");
}

/// A delivered mail as the connector normalises it (through its webhook).
async fn read_back(connector: &mut ConnectorInstance, raw: &[u8]) -> Message {
    let outcome = connector
        .handle_webhook(webhook(raw.to_vec(), Some(WEBHOOK_TOKEN), false))
        .await
        .expect("the delivered mail parses");
    outcome.messages.into_iter().next().expect("one message")
}

#[tokio::test]
async fn replies_refused_by_the_server_and_bad_actions_are_typed() {
    let setup = Setup::start();
    setup.deliver("INBOX", &["multipart_attachment.eml"]);
    let mut email = setup.poller("tls", &[]).await;
    let batch = email.poll(None).await.expect("poll");
    let jan = batch.messages[0].clone();

    // No SMTP server configured: a clear setting error.
    let action = Action {
        idempotency_key: "k".into(),
        kind: ActionKind::Reply(Outgoing {
            text: "hi".into(),
            attachments: vec![],
        }),
    };
    let error = email
        .perform(action.clone(), target_of(&jan))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "invalid-input", "{error}");
    assert!(error.to_string().contains("smtp_host"), "{error}");

    // Hide is not an e-mail action.
    let hide = Action {
        idempotency_key: "k".into(),
        kind: ActionKind::Hide,
    };
    let error = email.perform(hide, target_of(&jan)).await.unwrap_err();
    assert_eq!(error.kind(), "unsupported", "{error}");

    // Nothing listens on the SMTP port: transient, retried by the host.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = setup.imap_settings("tls");
    settings.extend([
        ("smtp_host".to_string(), "127.0.0.1".to_string()),
        ("smtp_port".to_string(), closed.to_string()),
        ("smtp_security".to_string(), "none".to_string()),
    ]);
    let mut sender = setup
        .connector(&settings, PASSWORD, &[format!("tcp://127.0.0.1:{closed}")])
        .await;
    let error = sender.perform(action, target_of(&jan)).await.unwrap_err();
    assert_eq!(error.kind(), "transient", "{error}");
}

fn webhook(body: Vec<u8>, token: Option<&str>, in_query: bool) -> WebhookRequest {
    let mut headers = vec![("content-type".to_string(), "message/rfc822".to_string())];
    let mut query = Vec::new();
    match (token, in_query) {
        (Some(token), false) => headers.push(("x-webhook-token".into(), token.into())),
        (Some(token), true) => query.push(("token".to_string(), token.to_string())),
        (None, _) => {}
    }
    WebhookRequest {
        method: "POST".into(),
        path: String::new(),
        query,
        headers,
        body,
    }
}

#[tokio::test]
async fn webhook_mime_gives_the_same_message_as_imap() {
    let setup = Setup::start();
    setup.deliver("INBOX", &MAILS);
    let mut email = setup.poller("tls", &[]).await;
    let polled = email.poll(None).await.expect("poll");

    for (index, name) in MAILS.iter().enumerate() {
        let outcome = email
            .handle_webhook(webhook(fixture(name), Some(WEBHOOK_TOKEN), index % 2 == 1))
            .await
            .expect("webhook");
        assert_eq!(outcome.response.status, 200, "{name}");
        assert_eq!(outcome.messages.len(), 1, "{name}");
        let pushed = &outcome.messages[0];
        let pulled = &polled.messages[index];
        if pulled.external_id.starts_with("nomsgid-") && name.starts_with("mailparser_thirdparty") {
            // No Date header: IMAP gives the server's arrival time,
            // a webhook the time it came in; everything else matches.
            assert_eq!(
                Message {
                    created_at: 0,
                    external_id: String::new(),
                    thread_id: String::new(),
                    ..pushed.clone()
                },
                Message {
                    created_at: 0,
                    external_id: String::new(),
                    thread_id: String::new(),
                    ..pulled.clone()
                },
                "{name}"
            );
        } else {
            assert_eq!(pushed, pulled, "{name}");
        }
    }

    // A duplicate delivery is the same message again: the host dedups it.
    let once = email
        .handle_webhook(webhook(fixture(MAILS[0]), Some(WEBHOOK_TOKEN), false))
        .await
        .unwrap();
    let twice = email
        .handle_webhook(webhook(fixture(MAILS[0]), Some(WEBHOOK_TOKEN), false))
        .await
        .unwrap();
    assert_eq!(once.messages, twice.messages);
}

#[tokio::test]
async fn bad_webhook_tokens_get_401_and_malformed_mail_is_refused() {
    let setup = Setup::start();
    let mut email = setup.poller("tls", &[]).await;
    for token in [None, Some("wrong"), Some("whk-0123456789abcdeF")] {
        let outcome = email
            .handle_webhook(webhook(fixture(MAILS[0]), token, false))
            .await
            .expect("a 401 answer, not an error");
        assert_eq!(outcome.response.status, 401, "{token:?}");
        assert!(outcome.messages.is_empty() && outcome.updates.is_empty());
    }
    let outcome = email
        .handle_webhook(webhook(fixture(MAILS[0]), Some("wrong"), true))
        .await
        .unwrap();
    assert_eq!(outcome.response.status, 401);
    assert!(outcome.messages.is_empty());

    for body in [
        b"{\"event\": \"inbound\"}".to_vec(),
        Vec::new(),
        b"<html>not a mail</html>".to_vec(),
    ] {
        let error = email
            .handle_webhook(webhook(body, Some(WEBHOOK_TOKEN), false))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, PluginError::Connector(_)) && error.kind() == "invalid-input",
            "{error}"
        );
    }

    let mut get = webhook(Vec::new(), Some(WEBHOOK_TOKEN), false);
    get.method = "GET".into();
    let outcome = email.handle_webhook(get).await.unwrap();
    assert_eq!(outcome.response.status, 405);
}

/// What the scripted submission server saw.
#[derive(Debug, Default)]
struct Submission {
    /// Commands after the TLS upgrade, in order (AUTH with its argument).
    commands: Vec<String>,
    /// Commands sent before STARTTLS.
    plain_commands: Vec<String>,
    /// The DATA payload, dot-stuffed as sent.
    data: Vec<u8>,
}

/// A scripted SMTP submission server on loopback that requires STARTTLS
/// and `AUTH PLAIN` for `user`/`password`, as Gmail's or Microsoft's port
/// 587 does. (The real OpenSMTPD above cannot do TLS on this system; this
/// covers the connector's STARTTLS and AUTH through the host.)
async fn submission_server(
    user: &'static str,
    password: &'static str,
) -> (u16, String, std::sync::Arc<std::sync::Mutex<Submission>>) {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca_pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Submission::default()));
    let record = seen.clone();
    let expected = base64_plain(user, password);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (acceptor, record, expected) = (acceptor.clone(), record.clone(), expected.clone());
            tokio::spawn(async move {
                tcp.write_all(b"220 smtp.acme.test ESMTP ready\r\n").await?;
                let mut plain = BufReader::new(tcp);
                loop {
                    let mut line = String::new();
                    if plain.read_line(&mut line).await? == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    let line = line.trim_end().to_string();
                    record.lock().unwrap().plain_commands.push(line.clone());
                    let tcp = plain.get_mut();
                    if line.starts_with("EHLO") {
                        tcp.write_all(b"250-smtp.acme.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
                            .await?;
                    } else if line == "STARTTLS" {
                        tcp.write_all(b"220 2.0.0 go ahead\r\n").await?;
                        break;
                    } else {
                        tcp.write_all(b"530 5.7.0 Must issue a STARTTLS command first\r\n")
                            .await?;
                    }
                }
                let tls = acceptor.accept(plain.into_inner()).await?;
                let mut tls = BufReader::new(tls);
                loop {
                    let mut line = String::new();
                    if tls.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    let line = line.trim_end().to_string();
                    record.lock().unwrap().commands.push(line.clone());
                    let reply: &[u8] = if line.starts_with("EHLO") {
                        b"250-smtp.acme.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
                    } else if let Some(token) = line.strip_prefix("AUTH PLAIN ") {
                        if token == expected {
                            b"235 2.7.0 Authentication successful\r\n"
                        } else {
                            b"535 5.7.8 Username and Password not accepted\r\n"
                        }
                    } else if line == "DATA" {
                        tls.get_mut().write_all(b"354 go ahead\r\n").await?;
                        let mut data = Vec::new();
                        while !data.ends_with(b"\r\n.\r\n") {
                            let mut byte = [0_u8; 1];
                            if tls.read(&mut byte).await? == 0 {
                                return Ok(());
                            }
                            data.push(byte[0]);
                        }
                        record.lock().unwrap().data = data;
                        b"250 2.0.0 OK queued\r\n"
                    } else if line == "QUIT" {
                        tls.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                        return Ok(());
                    } else {
                        b"250 2.1.0 OK\r\n"
                    };
                    tls.get_mut().write_all(reply).await?;
                }
            });
        }
    });
    (port, ca_pem, seen)
}

/// The `AUTH PLAIN` argument for `user`/`password`, written out by hand:
/// base64 of `\0user\0password`.
fn base64_plain(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("\0{user}\0{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn smtp_starttls_and_auth_plain_go_through_the_host() {
    let (port, ca_pem, seen) = submission_server(BRAND, "smtp-s3cret").await;
    let runtime = Runtime::new(RuntimeConfig {
        engine: EngineSettings::default(),
        cache_dir: Some(test_cache_dir()),
        extra_roots_pem: vec![ca_pem.into_bytes()],
    })
    .expect("runtime");
    let plugin = runtime
        .load_file(&plugin_path("email_connector"))
        .await
        .expect("load");
    let port_text = port.to_string();
    let settings = [
        ("brand_address", BRAND),
        ("smtp_host", "localhost"),
        ("smtp_port", port_text.as_str()),
        ("smtp_security", "starttls"),
    ];
    let allow = [format!("tcp://localhost:{port}")];
    let target = || ActionTarget {
        external_id: "a1042.1@example.test".into(),
        thread_id: "a1042.1@example.test".into(),
        kind: MessageKind::Email,
        visibility: Visibility::Private,
        author: webcare::model::Author {
            id: CUSTOMER.into(),
            handle: CUSTOMER.into(),
            display_name: "Jan".into(),
            followers: None,
            verified: false,
            profile_url: None,
            email: None,
        },
        created_at: 0,
        last_inbound_at: None,
        subject: Some("Bestelling".into()),
        properties: vec![
            ("message_id".into(), "a1042.1@example.test".into()),
            ("from".into(), CUSTOMER.into()),
        ],
    };
    let action = |key: &str| Action {
        idempotency_key: key.into(),
        kind: ActionKind::PrivateReply(Outgoing {
            text: "Dag Jan".into(),
            attachments: vec![],
        }),
    };

    // The SMTP password (not the IMAP one) is used.
    let mut sender = runtime
        .configured_connector(
            plugin.clone(),
            grants(
                "acme",
                &settings,
                &[("password", PASSWORD), ("smtp_password", "smtp-s3cret")],
                &allow,
            ),
            CallLimits::default(),
        )
        .await
        .unwrap();
    let result = sender
        .perform(action("k-1"), target())
        .await
        .expect("sent over STARTTLS");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.plain_commands,
            ["EHLO acme.test", "STARTTLS"],
            "nothing secret before TLS"
        );
        assert_eq!(
            seen.commands,
            [
                "EHLO acme.test".to_string(),
                format!("AUTH PLAIN {}", base64_plain(BRAND, "smtp-s3cret")),
                format!("MAIL FROM:<{BRAND}>"),
                format!("RCPT TO:<{CUSTOMER}>"),
                "DATA".to_string(),
                "QUIT".to_string(),
            ]
        );
        let data = String::from_utf8_lossy(&seen.data);
        assert!(
            data.contains(&format!(
                "Message-ID: <{}>\r\n",
                result.external_id.as_deref().unwrap()
            )),
            "{data}"
        );
        assert!(data.contains("Subject: Re: Bestelling\r\n"), "{data}");
        assert!(data.ends_with("Dag Jan\r\n.\r\n"), "{data}");
    }

    // A wrong password: 535 is unauthorized, and nothing is sent.
    let mut wrong = runtime
        .configured_connector(
            plugin,
            grants("acme", &settings, &[("password", "nope")], &allow),
            CallLimits::default(),
        )
        .await
        .unwrap();
    *seen.lock().unwrap() = Submission::default();
    let error = wrong.perform(action("k-2"), target()).await.unwrap_err();
    assert_eq!(error.kind(), "unauthorized", "{error}");
    assert!(error.to_string().contains("535"), "{error}");
    let seen = seen.lock().unwrap();
    assert!(seen.data.is_empty());
    assert!(!seen.commands.iter().any(|c| c.starts_with("MAIL")));
}
