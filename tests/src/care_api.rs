//! What the care-workflow tests share: a Facebook page connector against the
//! fake Graph API, API tokens made straight in the store, and a client for
//! the agent API that returns status and JSON body.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use webcare::capabilities::{AllowList, ConnectorId, Secret};
use webcare::care::store::NewToken;
use webcare::care::{Role, tokens};
use webcare::queue::Storage;
use webcare::runtime::CallLimits;
use webcare::service::ConnectorSpec;
use webcare::triage::TriagePolicy;

use crate::fake_api::FakeApi;
use crate::fake_facebook::{APP_SECRET, PAGE_ID, TOKEN, VERIFY_TOKEN};
use crate::plugins::plugin_path;

/// Brand `brand`'s connector `facebook`: the real plugin, webhook-only,
/// against the fake Graph API at `api`.
pub fn facebook_spec(brand: &str, api: &FakeApi) -> ConnectorSpec {
    ConnectorSpec {
        id: ConnectorId {
            brand: brand.into(),
            connector: "facebook".into(),
        },
        plugin: plugin_path("facebook_connector"),
        poll: false,
        poll_interval: Duration::from_secs(3600),
        allow_list: AllowList::parse(&[api.allow_entry()]).unwrap(),
        limits: CallLimits::default(),
        settings: BTreeMap::from([
            ("graph_base_url".to_string(), api.base_url()),
            ("page_id".to_string(), PAGE_ID.to_string()),
        ]),
        secrets: BTreeMap::from([
            ("page_access_token".to_string(), Secret::new(TOKEN)),
            ("app_secret".to_string(), Secret::new(APP_SECRET)),
            ("verify_token".to_string(), Secret::new(VERIFY_TOKEN)),
        ]),
        triage: TriagePolicy::default(),
    }
}

/// A new API token for `name` with `role` in `brand` (`None`: an agency
/// token), stored hashed as `webcare token create` stores it; returns the
/// secret.
pub async fn create_token(
    storage: &Arc<dyn Storage>,
    name: &str,
    brand: Option<&str>,
    role: Role,
) -> String {
    let secret = tokens::generate();
    storage
        .care()
        .unwrap()
        .create_token(&NewToken {
            name: name.into(),
            brand: brand.map(str::to_string),
            role,
            hash: tokens::hash(&secret),
            at: 0,
        })
        .await
        .unwrap();
    secret
}

/// The agent API of a host at `base` (`http://127.0.0.1:PORT`).
#[derive(Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    pub base: String,
}

impl ApiClient {
    pub fn new(addr: std::net::SocketAddr) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with `token`: the status and the JSON body (`null` when
    /// the body is not JSON).
    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POST `body` as JSON to `path` with `token`, like [`ApiClient::get`].
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
