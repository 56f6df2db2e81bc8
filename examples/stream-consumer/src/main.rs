//! An example consumer of webcare's NATS JetStream sink (`docs/stream.md`):
//! a durable pull consumer on the `WEBCARE` stream that prints one line per
//! event and acknowledges it.
//!
//! ```text
//! cargo run -p stream-consumer -- --url nats://127.0.0.1:4222 --durable care-printer
//! ```
//!
//! Durable: the server remembers what this consumer acknowledged, so a
//! restart resumes after the last acknowledged event. Delivery is
//! at-least-once (an event whose ack was lost comes again); a consumer that
//! must not act twice keys its work by the `Nats-Msg-Id` header, which is
//! the same for every copy of an event.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use clap::Parser;
use futures_util::StreamExt;

#[derive(Debug, Parser)]
#[command(about = "Prints webcare's events from NATS JetStream")]
struct Args {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// The stream webcare publishes to (`[stream] stream`).
    #[arg(long, default_value = "WEBCARE")]
    stream: String,
    /// The durable consumer's name: several processes with the same name
    /// share the work.
    #[arg(long, default_value = "care-printer")]
    durable: String,
    /// Only these subjects, e.g. `webcare.acme.>` or `webcare.*.*.case`.
    #[arg(long, default_value = "webcare.>")]
    subject: String,
    /// Stop after this many events (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    count: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = async_nats::connect(&args.url)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(&args.stream)
        .await
        .with_context(|| format!("stream {} (does webcare run with [stream]?)", args.stream))?;
    let consumer = stream
        .get_or_create_consumer(
            &args.durable,
            pull::Config {
                durable_name: Some(args.durable.clone()),
                filter_subject: args.subject.clone(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                // Unacknowledged this long: delivered again.
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("consumer {}", args.durable))?;
    let mut messages = consumer.messages().await.context("pulling")?;
    let mut seen = 0;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| anyhow::anyhow!("receiving: {e}"))?;
        let msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let event: serde_json::Value =
            serde_json::from_slice(&message.payload).context("an event that is not JSON")?;
        let text = |key: &str| event[key].as_str().unwrap_or("-").to_string();
        let what = match event["event"].as_str() {
            Some("case") => format!(
                "case {} {}: now {} (by {})",
                event["case_id"],
                text("change"),
                text("status"),
                text("actor")
            ),
            Some(kind @ ("message" | "edited")) => format!(
                "{kind} in case {}: {}",
                event["case_id"],
                event["message"]["text"].as_str().unwrap_or("")
            ),
            Some("deleted") => format!(
                "deleted {} in case {}",
                text("external_id"),
                event["case_id"]
            ),
            _ => event.to_string(),
        };
        println!("{} [{msg_id}] {what}", message.subject);
        message
            .ack()
            .await
            .map_err(|e| anyhow::anyhow!("acknowledging {msg_id}: {e}"))?;
        seen += 1;
        if seen == args.count {
            break;
        }
    }
    Ok(())
}
