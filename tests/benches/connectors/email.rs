//! E-mail: mails normalised per second, a batch of 100 real-shaped mails
//! (the test fixtures: multipart with attachments, ISO-8859-1, windows-1252,
//! ISO-2022-JP, HTML-only, threaded replies), through the `.wasm` in the
//! host (one webhook delivery per mail, as inbound-mail services post them)
//! and through `email_connector::normalize_mails` natively.
//!
//! ```text
//! RUST_BACKTRACE=0 cargo bench -p webcare-tests --bench connectors -- email
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use webcare::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore};
use webcare::model::WebhookRequest;
use webcare::runtime::{Call, CallLimits, EngineSettings, Interruption, Runtime, RuntimeConfig};
use webcare_tests::plugins::plugin_path;

const BRAND: &str = "care@acme.test";

/// The fixtures the batch cycles through.
const FIXTURES: [&[u8]; 9] = [
    include_bytes!("../../fixtures/email/multipart_attachment.eml"),
    include_bytes!("../../fixtures/email/latin1_dutch.eml"),
    include_bytes!("../../fixtures/email/windows1252_dutch.eml"),
    include_bytes!("../../fixtures/email/iso2022jp.eml"),
    include_bytes!("../../fixtures/email/html_only.eml"),
    include_bytes!("../../fixtures/email/from_brand.eml"),
    include_bytes!("../../fixtures/email/chatwoot_references.eml"),
    include_bytes!("../../fixtures/email/mailparser_rfc_005_multipart_mixed.eml"),
    include_bytes!("../../fixtures/email/mailparser_thirdparty_010_rfc2047_utf8_b.eml"),
];

/// 100 mails; each copy of a fixture with a Message-ID gets its own id,
/// as in a real mailbox.
fn batch_100() -> Vec<Vec<u8>> {
    const MARK: &[u8] = b"message-id: <";
    (0..100)
        .map(|i| {
            let raw = FIXTURES[i % FIXTURES.len()];
            let found = raw
                .windows(MARK.len())
                .position(|w| w.eq_ignore_ascii_case(MARK));
            match found {
                Some(at) => {
                    let id_start = at + MARK.len();
                    [
                        &raw[..id_start],
                        format!("{i}.").as_bytes(),
                        &raw[id_start..],
                    ]
                    .concat()
                }
                None => raw.to_vec(),
            }
        })
        .collect()
}

pub fn bench(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mails = batch_100();
    let brand = email_connector::Brand::new(BRAND, &[]);
    let requests: Vec<WebhookRequest> = mails
        .iter()
        .map(|raw| WebhookRequest {
            method: "POST".into(),
            headers: vec![("content-type".into(), "message/rfc822".into())],
            body: raw.clone(),
            ..WebhookRequest::default()
        })
        .collect();

    let mut group = c.benchmark_group("email_normalise_100_mails");
    group.throughput(Throughput::Elements(mails.len() as u64));
    group.bench_function("native", |b| {
        b.iter(|| {
            black_box(
                email_connector::normalize_mails(black_box(&mails), &brand, 0)
                    .expect("the batch normalises"),
            )
        })
    });

    let rt = Runtime::new(RuntimeConfig {
        engine: EngineSettings {
            interruption: Interruption::Epoch,
            ..EngineSettings::default()
        },
        cache_dir: Some(webcare_tests::test_cache_dir()),
        extra_roots_pem: vec![],
    })
    .expect("runtime");
    let plugin = tokio
        .block_on(rt.load_file(&plugin_path("email_connector")))
        .expect("load the e-mail connector");
    let grants = Grants::new(
        ConnectorId {
            brand: "bench".into(),
            connector: "email".into(),
        },
        BTreeMap::from([("brand_address".to_string(), BRAND.to_string())]),
        BTreeMap::new(),
        AllowList::default(),
        IoLimits::default(),
        Arc::new(MemoryStateStore::default()),
    );
    let mut inst = rt.connector(plugin, grants, CallLimits::default());
    for request in &requests {
        let outcome = tokio
            .block_on(inst.handle_webhook(request.clone()))
            .expect("the webhook accepts the mail");
        assert_eq!(outcome.messages.len(), 1);
    }
    group.bench_function("wasm_epoch_webhook_per_mail", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    // Copies of the requests are made outside the timed region.
                    let calls: Vec<_> = requests.iter().cloned().map(Call::Webhook).collect();
                    let start = Instant::now();
                    for call in calls {
                        black_box(inst.invoke(call).await.expect("webhook"));
                    }
                    elapsed += start.elapsed();
                }
                elapsed
            })
        })
    });
    group.finish();
}
