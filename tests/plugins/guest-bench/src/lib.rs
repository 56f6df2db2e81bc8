//! Times the guest alone: `handle-webhook` normalises its body with the
//! template connector's `normalize_page` as many times as the query's
//! `rounds` says, drops every result inside the guest, and returns nothing
//! but the number of messages of the last round. Divided by `rounds`, a
//! call's time is the Wasm code's own (parsing, building, allocating and
//! freeing in linear memory) without the host's lowering and lifting, which
//! happen once per call. `runtime` bench, group `normalise_guest_only`.
//!
//! The template's `feed` module is compiled in by path (a `cdylib` crate
//! cannot be linked as a dependency under the plugin profile's LTO), so the
//! code is the very source the template connector and the native benchmark
//! run.

#[allow(dead_code)]
#[path = "../../../../examples/template-connector/src/feed.rs"]
mod feed;

use webcare_plugin::{
    Connector, Feature, PluginInfo, Result, WebhookOutcome, WebhookRequest, WebhookResponse,
};

/// The benchmark fixture.
pub struct GuestBench;

impl Connector for GuestBench {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "guest-bench",
            env!("CARGO_PKG_VERSION"),
            "test",
            "Normalises a template feed page many times per call.",
        )
        .feature(Feature::Webhook)
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome> {
        let rounds: usize = request
            .query_param("rounds")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let mut last = 0;
        for _ in 0..rounds {
            let page = feed::normalize_page(std::hint::black_box(&request.body), "acme_care")?;
            last = std::hint::black_box(page).messages.len();
        }
        Ok(WebhookOutcome::new(WebhookResponse::text(
            200,
            last.to_string(),
        )))
    }
}

webcare_plugin::export!(GuestBench);
