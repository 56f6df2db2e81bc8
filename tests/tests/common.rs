//! Helpers shared by the end-to-end test files.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use webcare::capabilities::{AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore, Secret};
use webcare::runtime::{CallLimits, ConnectorInstance, Runtime};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::plugins::plugin_path;

#[allow(unused_imports)] // not every test file uses every helper
pub use webcare_tests::fake_feed::{TOKEN, feed_items, feed_router};

/// Grants for a connector of `brand` with string settings and secrets.
pub fn grants(
    brand: &str,
    settings: &[(&str, &str)],
    secrets: &[(&str, &str)],
    allow: &[String],
) -> Grants {
    Grants::new(
        ConnectorId {
            brand: brand.into(),
            connector: "feed".into(),
        },
        settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        secrets
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(*v)))
            .collect(),
        AllowList::parse(allow).expect("allow-list"),
        IoLimits::default(),
        Arc::new(MemoryStateStore::default()),
    )
}

/// A template connector against `api`.
pub async fn template(runtime: &Runtime, brand: &str, api: &FakeApi) -> ConnectorInstance {
    let plugin = runtime
        .load_file(&plugin_path("template_connector"))
        .await
        .expect("load template");
    let base = api.base_url();
    runtime
        .configured_connector(
            plugin,
            grants(
                brand,
                &[
                    ("base_url", &base),
                    ("brand_handle", "acme_care"),
                    ("page_size", "2"),
                ],
                &[("api_token", TOKEN)],
                &[api.allow_entry()],
            ),
            CallLimits::default(),
        )
        .await
        .expect("template settings fit")
}

/// A hostile connector in `mode` with extra settings.
pub async fn hostile(
    runtime: &Runtime,
    mode: &str,
    extra: &[(&str, &str)],
    allow: &[String],
    limits: CallLimits,
) -> ConnectorInstance {
    let plugin = runtime
        .load_file(&plugin_path("hostile_plugin"))
        .await
        .expect("load hostile");
    let mut settings = vec![("mode", mode)];
    settings.extend_from_slice(extra);
    runtime
        .configured_connector(
            plugin,
            grants("hostile-brand", &settings, &[("token", TOKEN)], allow),
            limits,
        )
        .await
        .expect("hostile settings fit")
}
