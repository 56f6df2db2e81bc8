//! Case-workflow benchmarks on SQLite (a bench binary: figures, not
//! assertions).
//!
//! ```text
//! RUST_BACKTRACE=0 cargo bench -p webcare --bench care
//! ```
//! Builds (once; kept in `target/bench-care/`, rebuilt with
//! `WEBCARE_BENCH_REBUILD=1`) a queue of 1,000,000 messages in 100,000 cases
//! across 50 brands, through the real commit path with triage, then
//! measures, on a warm database:
//! 1. the first page (50 cases) of a brand's queue, p50/p99;
//! 2. a full-text search in a brand (one or two words), p50/p99;
//! 3. claims per second, one agent after another and 8 at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use webcare::capabilities::ConnectorId;
use webcare::care::desk::Channels;
use webcare::care::workflow::Op;
use webcare::care::{Actor, CareDesk, CaseQuery, Role};
use webcare::model::{
    Action, ActionResult, ActionTarget, Author, Direction, Engagement, Message, MessageKind,
    Visibility,
};
use webcare::queue::sqlite::SqliteStorage;
use webcare::queue::{IngestBatch, MessageTriage, Storage};
use webcare::triage::Bucket;

const BRANDS: usize = 50;
const CASES: usize = 100_000;
const MESSAGES: usize = 1_000_000;
const BATCH: usize = 1_000;

/// Words customers write (Dutch and English), for text and searches.
const WORDS: &[&str] = &[
    "pakket",
    "bestelling",
    "levering",
    "factuur",
    "retour",
    "terugbetaling",
    "klantenservice",
    "wachten",
    "kapot",
    "beschadigd",
    "vertraging",
    "bezorger",
    "adres",
    "account",
    "wachtwoord",
    "inloggen",
    "storing",
    "internet",
    "abonnement",
    "opzeggen",
    "korting",
    "actie",
    "prijs",
    "betaling",
    "ideal",
    "creditcard",
    "app",
    "website",
    "foutmelding",
    "winkel",
    "filiaal",
    "medewerker",
    "vriendelijk",
    "slecht",
    "geweldig",
    "teleurgesteld",
    "boos",
    "snel",
    "traag",
    "nooit",
    "altijd",
    "vandaag",
    "gisteren",
    "morgen",
    "week",
    "maand",
    "order",
    "delivery",
    "invoice",
    "refund",
    "broken",
    "damaged",
    "late",
    "waiting",
    "support",
    "password",
    "login",
    "outage",
    "subscription",
    "cancel",
    "discount",
    "price",
    "payment",
    "card",
    "error",
    "store",
    "staff",
    "friendly",
    "terrible",
    "great",
    "disappointed",
    "angry",
    "fast",
    "slow",
    "never",
    "always",
    "today",
    "yesterday",
    "tomorrow",
    "phone",
    "laptop",
    "tv",
    "koelkast",
    "wasmachine",
    "garantie",
    "reparatie",
    "monteur",
    "afspraak",
    "chat",
    "mail",
    "telefoon",
    "nummer",
    "code",
    "voucher",
    "cadeaubon",
    "verzending",
    "track",
    "trace",
    "status",
    "update",
    "antwoord",
    "reactie",
    "hulp",
    "help",
    "vraag",
];

fn text(rng: &mut fastrand::Rng, n: usize) -> String {
    let count = 10 + rng.usize(..10);
    let mut words: Vec<&str> = (0..count)
        .map(|_| WORDS[rng.usize(..WORDS.len())])
        .collect();
    // A few rare words make selective searches possible.
    if n.is_multiple_of(97) {
        words.push("zeldzaamwoord");
    }
    words.join(" ")
}

fn brand(b: usize) -> String {
    format!("brand{b:02}")
}

fn message(n: usize, case: usize, rng: &mut fastrand::Rng) -> Message {
    let handle = format!("klant{}", case % 50_000);
    Message {
        external_id: format!("m{n}"),
        thread_id: format!("t{case}"),
        in_reply_to: None,
        kind: MessageKind::Mention,
        visibility: Visibility::Public,
        direction: if n % 10 == 9 {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        addressed_to_brand: true,
        author: Author {
            id: handle.clone(),
            handle,
            display_name: "Klant".into(),
            followers: Some(rng.u64(..20_000)),
            verified: false,
            profile_url: None,
            email: None,
        },
        text: text(rng, n),
        html: None,
        subject: None,
        language: Some("nl".into()),
        created_at: 1_795_000_000_000 + n as i64 * 1_000,
        permalink: None,
        attachments: Vec::new(),
        metrics: Engagement::default(),
        properties: Vec::new(),
    }
}

fn db_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-care")
        .join("care.db")
}

async fn build(storage: &SqliteStorage) {
    let mut rng = fastrand::Rng::with_seed(7);
    let started = Instant::now();
    // Messages are spread so every case gets 10; each brand owns a slice
    // of the cases, each batch serves one brand.
    let per_brand_cases = CASES / BRANDS;
    let per_brand_messages = MESSAGES / BRANDS;
    for b in 0..BRANDS {
        let owner = ConnectorId {
            brand: brand(b),
            connector: "x".into(),
        };
        let mut n = b * per_brand_messages;
        let end = n + per_brand_messages;
        while n < end {
            let messages: Vec<Message> = (n..(n + BATCH).min(end))
                .map(|i| {
                    let local = i - b * per_brand_messages;
                    let case = b * per_brand_cases + local % per_brand_cases;
                    message(i, case, &mut rng)
                })
                .collect();
            let triage: Vec<MessageTriage> = messages
                .iter()
                .map(|_| {
                    let score = rng.u8(..=100);
                    MessageTriage {
                        ignore: false,
                        score,
                        bucket: match score {
                            75.. => Bucket::Urgent,
                            50.. => Bucket::High,
                            25.. => Bucket::Normal,
                            _ => Bucket::Low,
                        },
                        reasons: Vec::new(),
                        team: None,
                        sentiment: rng.f64() * 2.0 - 1.0,
                    }
                })
                .collect();
            storage
                .commit(
                    &owner,
                    IngestBatch {
                        channel: "twitter",
                        messages: &messages,
                        triage: &triage,
                        updates: &[],
                        next_cursor: None,
                    },
                )
                .await
                .expect("commit");
            n += BATCH;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "built: {MESSAGES} messages, {CASES} cases, {BRANDS} brands in {secs:.1} s ({:.0} msg/s with triage and the search index)",
        MESSAGES as f64 / secs
    );
}

/// Claims never reach a channel.
struct NoChannels;

#[async_trait::async_trait]
impl Channels for NoChannels {
    async fn perform(
        &self,
        _: &str,
        _: &str,
        _: Action,
        _: ActionTarget,
    ) -> Result<ActionResult, String> {
        Err("benchmarks send nothing".into())
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |p: usize| samples[((p * samples.len()).div_ceil(100)).max(1) - 1];
    (at(50), at(99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let path = db_path();
        let rebuild = std::env::var_os("WEBCARE_BENCH_REBUILD").is_some();
        if rebuild && path.exists() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        let storage = Arc::new(SqliteStorage::open(&path).expect("open"));
        let counts = storage.counts().await.unwrap();
        let have: u64 = counts.iter().map(|c| c.messages).sum();
        if have != MESSAGES as u64 {
            assert_eq!(
                have,
                0,
                "{} holds a partial build; run with WEBCARE_BENCH_REBUILD=1",
                path.display()
            );
            build(&storage).await;
        } else {
            println!("reusing {} ({have} messages)", path.display());
        }
        let desk = CareDesk::new(storage.clone(), Arc::new(NoChannels));
        let mut rng = fastrand::Rng::with_seed(11);

        // 1. First page of a brand's queue.
        let mut samples = Vec::new();
        for i in 0..2_000 {
            let query = CaseQuery {
                brand: brand(rng.usize(..BRANDS)),
                limit: 50,
                ..Default::default()
            };
            let t = Instant::now();
            let page = desk.list(&query).await.unwrap();
            let took = t.elapsed();
            assert_eq!(page.len(), 50);
            if i >= 100 {
                samples.push(took);
            }
        }
        let (p50, p99) = percentiles(samples);
        println!(
            "queue first page (50 of 2,000 cases): p50 {}  p99 {}",
            ms(p50),
            ms(p99)
        );

        // The same with a status filter (the "new" tab).
        let mut samples = Vec::new();
        for _ in 0..1_000 {
            let query = CaseQuery {
                brand: brand(rng.usize(..BRANDS)),
                status: Some(webcare::queue::CaseStatus::New),
                limit: 50,
                ..Default::default()
            };
            let t = Instant::now();
            desk.list(&query).await.unwrap();
            samples.push(t.elapsed());
        }
        let (p50, p99) = percentiles(samples);
        println!(
            "queue first page, status=new:        p50 {}  p99 {}",
            ms(p50),
            ms(p99)
        );

        // 2. Full-text search.
        for (label, query) in [
            ("one common word", None),
            ("two common words", Some(2)),
            ("a rare word", Some(0)),
        ] {
            let mut samples = Vec::new();
            let mut hits = 0;
            for _ in 0..500 {
                let q = match query {
                    None => WORDS[rng.usize(..WORDS.len())].to_string(),
                    Some(2) => format!(
                        "{} {}",
                        WORDS[rng.usize(..WORDS.len())],
                        WORDS[rng.usize(..WORDS.len())]
                    ),
                    Some(_) => "zeldzaamwoord".to_string(),
                };
                let t = Instant::now();
                hits += desk
                    .search(&brand(rng.usize(..BRANDS)), &q, 20)
                    .await
                    .unwrap()
                    .len();
                samples.push(t.elapsed());
            }
            let (p50, p99) = percentiles(samples);
            println!(
                "search, {label:<17} (top 20 cases; {:.1} hits/query): p50 {}  p99 {}",
                hits as f64 / 500.0,
                ms(p50),
                ms(p99)
            );
        }

        // 3. Claims per second (each claim reads the case, checks, and
        // compare-and-swaps the case with its audit event). Released again
        // afterwards so a rerun finds the same state.
        let ids: Vec<(String, i64)> = {
            let mut ids = Vec::new();
            for b in 0..BRANDS {
                let page = desk
                    .list(&CaseQuery {
                        brand: brand(b),
                        unassigned: true,
                        limit: 100,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                ids.extend(page.into_iter().map(|c| (c.brand, c.id)));
            }
            ids
        };
        let agent = Actor::new("bench-agent", Role::Agent);
        let t = Instant::now();
        for (brand, id) in &ids[..2_000] {
            desk.transition(brand, *id, &agent, Op::Claim)
                .await
                .unwrap();
        }
        let one = 2_000.0 / t.elapsed().as_secs_f64();
        let desk = Arc::new(desk);
        let t = Instant::now();
        let mut tasks = Vec::new();
        for chunk in ids[2_000..4_000].chunks(250) {
            let chunk = chunk.to_vec();
            let desk = desk.clone();
            tasks.push(tokio::spawn(async move {
                let agent = Actor::new("bench-agent", Role::Agent);
                for (brand, id) in chunk {
                    desk.transition(&brand, id, &agent, Op::Claim)
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let eight = 2_000.0 / t.elapsed().as_secs_f64();
        println!("claims: {one:.0}/s one after another, {eight:.0}/s with 8 agents at once");
        for (brand, id) in &ids[..4_000] {
            desk.transition(brand, *id, &agent, Op::Release)
                .await
                .unwrap();
        }
    });
}
