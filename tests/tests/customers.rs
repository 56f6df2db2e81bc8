//! One customer across channels, end to end over HTTP: the real host polls
//! the fake X API with the real Twitter plugin, and a webshop pushes
//! contact-form messages (with the address it verified) through the real
//! template plugin. The shop's verified address links automatically; the
//! tweet is linked by hand, audited, and unlinked again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use webcare::capabilities::{AllowList, ConnectorId, Secret};
use webcare::care::Role;
use webcare::queue::Storage;
use webcare::queue::sqlite::SqliteStorage;
use webcare::runtime::CallLimits;
use webcare::service::{ConnectorSpec, RunningService, ServiceSpec};
use webcare::triage::TriagePolicy;
use webcare_tests::care_api::{ApiClient, create_token};
use webcare_tests::fake_api::FakeApi;
use webcare_tests::fake_twitter::{BRAND_ID, BRAND_USERNAME, FakeX, SEARCH_QUERY, TOKEN};
use webcare_tests::plugins::plugin_path;

/// The token mail senders give the e-mail connector's webhook.
const MAIL_TOKEN: &str = "mail-hook-token-7d2";

/// The author of the Dutch complaint in `mentions_page1.json`.
const TWEETER: &str = "1100000000000000011";

struct Host {
    service: RunningService,
    storage: Arc<dyn Storage>,
    api: ApiClient,
    _x: FakeApi,
    _dir: tempfile::TempDir,
}

fn spec(brand: &str, connector: &str, plugin: &str, poll: bool) -> ConnectorSpec {
    ConnectorSpec {
        id: ConnectorId {
            brand: brand.into(),
            connector: connector.into(),
        },
        plugin: plugin_path(plugin),
        poll,
        poll_interval: Duration::from_secs(3600),
        allow_list: AllowList::parse::<String>(&[]).unwrap(),
        limits: CallLimits::default(),
        settings: BTreeMap::new(),
        secrets: BTreeMap::new(),
        triage: TriagePolicy::default(),
    }
}

fn shop(brand: &str) -> ConnectorSpec {
    let mut s = spec(brand, "shop", "template_connector", false);
    s.settings = BTreeMap::from([
        ("base_url".into(), "http://127.0.0.1:9".into()),
        ("brand_handle".into(), "acme_shop".into()),
    ]);
    s.secrets = BTreeMap::from([("api_token".into(), Secret::new("unused"))]);
    s
}

async fn start() -> Host {
    let fake = FakeX::new();
    let x = FakeApi::start(fake.router()).await;
    let mut twitter = spec("acme", "x", "twitter_connector", true);
    twitter.allow_list = AllowList::parse(&[x.allow_entry()]).unwrap();
    twitter.settings = BTreeMap::from([
        ("api_base_url".into(), x.base_url()),
        ("brand_user_id".into(), BRAND_ID.into()),
        ("brand_username".into(), BRAND_USERNAME.into()),
        ("search_query".into(), SEARCH_QUERY.into()),
        ("direct_messages".into(), "false".into()),
    ]);
    twitter.secrets = BTreeMap::from([("bearer_token".into(), Secret::new(TOKEN))]);
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open(&dir.path().join("queue.db")).unwrap());
    // Mail comes in through the e-mail connector's webhook (raw MIME).
    let mut mail = spec("acme", "mail", "email_connector", false);
    mail.settings = BTreeMap::from([("brand_address".into(), "care@acme.example".into())]);
    mail.secrets = BTreeMap::from([("webhook_token".into(), Secret::new(MAIL_TOKEN))]);
    let spec = ServiceSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        max_webhook_body: 1 << 20,
        connectors: vec![twitter, shop("acme"), shop("globex"), mail],
        service_levels: Default::default(),
        crisis: Default::default(),
        replies: Default::default(),
        cluster: Default::default(),
        stream: None,
    };
    let service = RunningService::start(&spec, &webcare_tests::runtime(), storage.clone())
        .await
        .expect("the host starts");
    Host {
        api: ApiClient::new(service.addr),
        service,
        storage,
        _x: x,
        _dir: dir,
    }
}

impl Host {
    fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    async fn token(&self, brand: &str, role: Role) -> String {
        let name = format!("{brand}-{}", role.as_str());
        create_token(&self.storage, &name, Some(brand), role).await
    }

    /// A contact-form message from a logged-in shop customer.
    async fn shop_message(&self, brand: &str, id: &str, email: &str, text: &str) {
        let body = json!({"data": [{
            "id": id, "type": "direct_message", "to_brand": true,
            "author": {"id": format!("shop-{email}"), "username": email, "name": "Sanne de Vries",
                       "email": email},
            "text": text, "created_at": "2026-11-24T10:00:00Z"
        }], "next": null, "has_more": false});
        let r = self
            .api
            .http
            .post(self.url(&format!("/webhooks/{brand}/shop")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    /// A mail to the brand, as a mail server hands it to the webhook.
    async fn mail(&self, from: &str, subject: &str, text: &str) {
        let raw = format!(
            "From: Sanne de Vries <{from}>\r\nTo: care@acme.example\r\nSubject: {subject}\r\n\
             Message-ID: <{}@mail.example.nl>\r\nDate: Tue, 24 Nov 2026 09:00:00 +0100\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
            subject.len()
        );
        let r = self
            .api
            .http
            .post(self.url("/webhooks/acme/mail"))
            .header("x-webhook-token", MAIL_TOKEN)
            .header("content-type", "message/rfc822")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.api.get(token, path).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.api.post(token, path, body).await
    }

    /// The case whose first message came from `author_id` on `connector`.
    async fn case_of(&self, token: &str, connector: &str, author_id: &str) -> i64 {
        let (_, list) = self.get(token, "/api/v1/brands/acme/cases?limit=500").await;
        for case in list["cases"].as_array().unwrap() {
            if case["connector"] != connector {
                continue;
            }
            let id = case["id"].as_i64().unwrap();
            let (_, customer) = self
                .get(token, &format!("/api/v1/brands/acme/cases/{id}/customer"))
                .await;
            if customer["identities"][0]["author_id"] == author_id {
                return id;
            }
        }
        panic!("no case of {author_id} on {connector}: {list:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tweet_a_shop_message_and_an_email_of_one_customer_under_one_profile() {
    let host = start().await;
    let agent = host.token("acme", Role::Agent).await;

    // The first poll brings the mentions in.
    for _ in 0..200 {
        let (_, list) = host.get(&agent, "/api/v1/brands/acme/cases").await;
        if list["cases"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    host.shop_message(
        "acme",
        "form-1",
        "Sanne@Example.NL",
        "Factuur 2026-118 klopt niet, ik betaalde al via iDEAL",
    )
    .await;

    let tweet_case = host.case_of(&agent, "x", TWEETER).await;
    let shop_identity = "shop-Sanne@Example.NL";
    let shop_case = host.case_of(&agent, "shop", shop_identity).await;

    // The shop verified the address: a profile exists at once, linked by
    // webcare; the tweeter has none yet (a profile of one identity).
    let (status, from_shop) = host
        .get(
            &agent,
            &format!("/api/v1/brands/acme/cases/{shop_case}/customer"),
        )
        .await;
    assert_eq!(status, 200, "{from_shop}");
    let profile = from_shop["id"].as_i64().expect("a stored profile");
    assert_eq!(
        from_shop["email"], "sanne@example.nl",
        "addresses are kept lower-case"
    );
    assert_eq!(from_shop["identities"][0]["linked_by"], "webcare (e-mail)");
    assert_eq!(from_shop["events"][0]["kind"], "linked");
    let (_, from_tweet) = host
        .get(
            &agent,
            &format!("/api/v1/brands/acme/cases/{tweet_case}/customer"),
        )
        .await;
    assert!(from_tweet["id"].is_null(), "{from_tweet:#}");
    assert_eq!(from_tweet["cases"].as_array().unwrap().len(), 1);

    // A second verified message with the same address joins the profile
    // without a new link; the same address in another brand is another
    // customer.
    host.shop_message("globex", "form-9", "sanne@example.nl", "Andere winkel")
        .await;

    // The agent links the tweeter to the profile.
    let (status, linked) = host
        .post(
            &agent,
            "/api/v1/brands/acme/customers/link",
            json!({"identities": [
                {"connector": "x", "author_id": TWEETER},
                {"connector": "shop", "author_id": shop_identity}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(linked["id"], profile, "linked into the existing profile");
    let identities: Vec<&str> = linked["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["connector"].as_str().unwrap())
        .collect();
    assert_eq!(identities.len(), 2, "{linked:#}");
    assert!(identities.contains(&"x") && identities.contains(&"shop"));
    let cases: Vec<i64> = linked["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert!(
        cases.contains(&tweet_case) && cases.contains(&shop_case),
        "{cases:?}"
    );
    assert_eq!(cases.len(), 2, "both conversations side by side");
    let last = linked["events"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["kind"], &last["actor"]),
        (&json!("linked"), &json!("acme-agent"))
    );

    // From the tweet's case, the agent now sees the same profile.
    let (_, via_tweet) = host
        .get(
            &agent,
            &format!("/api/v1/brands/acme/cases/{tweet_case}/customer"),
        )
        .await;
    assert_eq!(via_tweet["id"], profile);
    assert_eq!(via_tweet["email"], "sanne@example.nl");

    // Unlinking is audited on both profiles and splits the cases again.
    let (status, alone) = host
        .post(
            &agent,
            "/api/v1/brands/acme/customers/unlink",
            json!({"connector": "x", "author_id": TWEETER}),
        )
        .await;
    assert_eq!(status, 200, "{alone}");
    assert_ne!(alone["id"], profile);
    assert_eq!(alone["cases"].as_array().unwrap().len(), 1);
    assert_eq!(alone["events"][0]["kind"], "unlinked");
    let (_, after) = host
        .get(&agent, &format!("/api/v1/brands/acme/customers/{profile}"))
        .await;
    assert_eq!(after["identities"].as_array().unwrap().len(), 1);
    assert_eq!(
        after["events"].as_array().unwrap().last().unwrap()["kind"],
        "unlinked"
    );
    // A message after the unlink does not undo it.
    host.shop_message("acme", "form-2", "Sanne@Example.NL", "Nog iets")
        .await;
    let (_, again) = host
        .get(&agent, &format!("/api/v1/brands/acme/customers/{profile}"))
        .await;
    assert_eq!(again["identities"].as_array().unwrap().len(), 1);

    // Refusals: one identity, an identity the brand never saw, a
    // second-line role, another brand's token.
    let (status, body) = host
        .post(
            &agent,
            "/api/v1/brands/acme/customers/link",
            json!({"identities": [{"connector": "x", "author_id": TWEETER}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = host
        .post(
            &agent,
            "/api/v1/brands/acme/customers/link",
            json!({"identities": [{"connector": "x", "author_id": TWEETER},
                                  {"connector": "x", "author_id": "never-seen"}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("never-seen"));
    let second = host.token("acme", Role::SecondLine).await;
    let (status, _) = host
        .post(
            &second,
            "/api/v1/brands/acme/customers/unlink",
            json!({"connector": "shop", "author_id": shop_identity}),
        )
        .await;
    assert_eq!(status, 403);
    let globex = host.token("globex", Role::Admin).await;
    let (status, _) = host
        .get(&globex, &format!("/api/v1/brands/acme/customers/{profile}"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = host
        .get(
            &globex,
            &format!("/api/v1/brands/globex/customers/{profile}"),
        )
        .await;
    assert_eq!(status, 404, "a profile id of acme is not globex's");

    // A tweet and an e-mail of the same customer: the From address is not
    // verified, so nothing links by itself; linked by hand, both cases show
    // under one profile.
    host.mail(
        "sanne@example.nl",
        "Factuur 2026-118",
        "Zie mijn tweet: de factuur klopt niet.",
    )
    .await;
    let mail_case = host.case_of(&agent, "mail", "sanne@example.nl").await;
    let (_, by_mail) = host
        .get(
            &agent,
            &format!("/api/v1/brands/acme/cases/{mail_case}/customer"),
        )
        .await;
    assert!(
        by_mail["id"].is_null(),
        "no automatic link by a From header: {by_mail:#}"
    );
    let (status, both) = host
        .post(
            &agent,
            "/api/v1/brands/acme/customers/link",
            json!({"identities": [
                {"connector": "x", "author_id": TWEETER},
                {"connector": "mail", "author_id": "sanne@example.nl"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{both}");
    let cases: Vec<i64> = both["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert!(
        cases.contains(&tweet_case) && cases.contains(&mail_case),
        "{both:#}"
    );
    let (_, via_mail) = host
        .get(
            &agent,
            &format!("/api/v1/brands/acme/cases/{mail_case}/customer"),
        )
        .await;
    assert_eq!(via_mail["id"], both["id"]);
    assert!(host.service.stop().await);
}
