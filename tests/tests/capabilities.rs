//! Capabilities as a real guest uses them: sockets (plain and TLS done by
//! the host), the state store, and the allocator fallback.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use webcare::capabilities::{
    AllowList, ConnectorId, Grants, IoLimits, MemoryStateStore, Secret, StateStore,
};
use webcare::runtime::{
    Allocation, AllocatorInUse, CallLimits, EngineSettings, PluginError, Runtime, RuntimeConfig,
};
use webcare_tests::plugins::plugin_path;
use webcare_tests::runtime;

/// Answers each line with `PONG <line>`; counts connections.
async fn echo_server(
    accept_tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let tls = accept_tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            pong(stream).await;
                        }
                    }
                    None => pong(tcp).await,
                }
            });
        }
    });
    (port, seen)
}

async fn pong<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: S) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_ok() {
        let answer = format!("PONG {}\r\n", line.trim_end());
        let _ = reader.get_mut().write_all(answer.as_bytes()).await;
        let _ = reader.get_mut().flush().await;
    }
}

fn echo_settings(host: &str, port: u16, tls: bool) -> Vec<(String, String)> {
    vec![
        ("target_host".into(), host.into()),
        ("target_port".into(), port.to_string()),
        ("tls".into(), tls.to_string()),
    ]
}

async fn echo(
    rt: &Runtime,
    host: &str,
    port: u16,
    tls: bool,
    allow: &[String],
) -> Result<String, PluginError> {
    let settings = echo_settings(host, port, tls);
    let extra: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut conn = hostile(rt, "socket-echo", &extra, allow, CallLimits::default()).await;
    conn.poll(None).await.map(|b| b.messages[0].text.clone())
}

#[tokio::test]
async fn plain_socket_to_an_allowed_port_and_refusal_of_others() {
    let (port, seen) = echo_server(None).await;
    let rt = runtime();
    let answer = echo(
        &rt,
        "127.0.0.1",
        port,
        false,
        &[format!("tcp://127.0.0.1:{port}")],
    )
    .await
    .unwrap();
    assert_eq!(answer, "PONG PING webcare");
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // Another port on the same host, and an HTTP-only entry: both refused.
    for allow in [
        format!("tcp://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://127.0.0.1:{port}"),
    ] {
        let err = echo(&rt, "127.0.0.1", port, false, &[allow])
            .await
            .unwrap_err();
        assert!(matches!(err, PluginError::AllowList { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("tcp://127.0.0.1:{port}")),
            "{err}"
        );
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "refused sockets never connected"
    );
}

#[tokio::test]
async fn tls_is_done_by_the_host_and_verifies_the_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = Arc::new(tokio_rustls::TlsAcceptor::from(Arc::new(server_config)));
    let (port, _) = echo_server(Some(acceptor)).await;
    let allow = [format!("tcp://localhost:{port}")];

    // Trusted through the operator's extra root: the echo comes back.
    let trusting = Runtime::new(RuntimeConfig {
        cache_dir: Some(webcare_tests::test_cache_dir()),
        extra_roots_pem: vec![cert_pem.into_bytes()],
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert_eq!(
        echo(&trusting, "localhost", port, true, &allow)
            .await
            .unwrap(),
        "PONG PING webcare"
    );

    // Not trusted: the handshake fails, reported as a transient error.
    let err = echo(&runtime(), "localhost", port, true, &allow)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "transient", "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn state_persists_per_connector_and_is_isolated_between_brands() {
    let rt = runtime();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStateStore::default());
    let plugin = rt.load_file(&plugin_path("hostile_plugin")).await.unwrap();
    let connector = |brand: &str| {
        Grants::new(
            ConnectorId {
                brand: brand.into(),
                connector: "counter".into(),
            },
            BTreeMap::from([("mode".to_string(), "state-counter".to_string())]),
            BTreeMap::<String, Secret>::new(),
            AllowList::default(),
            IoLimits::default(),
            store.clone(),
        )
    };
    let mut a = rt
        .configured_connector(plugin.clone(), connector("brand-a"), CallLimits::default())
        .await
        .unwrap();
    let mut b = rt
        .configured_connector(plugin, connector("brand-b"), CallLimits::default())
        .await
        .unwrap();
    let count = |batch: webcare::model::Batch| batch.messages[0].text.clone();
    assert_eq!(count(a.poll(None).await.unwrap()), "1");
    a.release(); // a fresh instance still sees the stored state
    assert_eq!(count(a.poll(None).await.unwrap()), "2");
    assert_eq!(
        count(b.poll(None).await.unwrap()),
        "1",
        "brand B has its own state"
    );
}

#[tokio::test]
async fn falls_back_to_on_demand_allocation_when_pooling_cannot_reserve() {
    // Far more slots than any address space holds: the pooling reservation
    // fails and the runtime must fall back, log it, and still run plugins.
    let rt = webcare_tests::runtime_with(EngineSettings {
        allocation: Allocation::Auto,
        max_instances: 50_000_000,
        ..EngineSettings::default()
    });
    assert_eq!(rt.allocator(), AllocatorInUse::OnDemand);
    let mut ok = hostile(&rt, "ok", &[], &[], CallLimits::default()).await;
    assert_eq!(ok.poll(None).await.unwrap().messages[0].external_id, "ok-1");

    assert_eq!(
        runtime().allocator(),
        AllocatorInUse::Pooling,
        "this machine supports pooling by default"
    );
}

/// The same counter with the state in PostgreSQL, on this test's
/// current-thread runtime: the plugin's synchronous state calls block the
/// runtime's only thread from inside a guest call, so the store must not
/// need this runtime to answer (it has a thread and connections of its
/// own). Skipped without a server, failed under CI.
#[tokio::test(flavor = "current_thread")]
async fn state_in_postgres_from_a_guest_call_on_a_current_thread_runtime() {
    use webcare::queue::Storage;
    use webcare::queue::postgres::{PostgresOptions, PostgresStorage};
    let Some(db) = webcare_tests::postgres_db::TestDatabase::create("state_from_guest").await
    else {
        return;
    };
    let storage = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap();
    let rt = runtime();
    let plugin = rt.load_file(&plugin_path("hostile_plugin")).await.unwrap();
    let grants = |brand: &str| {
        Grants::new(
            ConnectorId {
                brand: brand.into(),
                connector: "counter".into(),
            },
            BTreeMap::from([("mode".to_string(), "state-counter".to_string())]),
            BTreeMap::<String, Secret>::new(),
            AllowList::default(),
            IoLimits::default(),
            storage.state_store(),
        )
    };
    let mut a = rt
        .configured_connector(plugin.clone(), grants("brand-a"), CallLimits::default())
        .await
        .unwrap();
    let count = |batch: webcare::model::Batch| batch.messages[0].text.clone();
    for expected in 1..=5 {
        assert_eq!(count(a.poll(None).await.unwrap()), expected.to_string());
    }
    // A second storage (another host) sees the same state.
    let other = PostgresStorage::connect(&db.url, PostgresOptions::default())
        .await
        .unwrap();
    let mut again = rt
        .configured_connector(
            plugin,
            Grants::new(
                ConnectorId {
                    brand: "brand-a".into(),
                    connector: "counter".into(),
                },
                BTreeMap::from([("mode".to_string(), "state-counter".to_string())]),
                BTreeMap::<String, Secret>::new(),
                AllowList::default(),
                IoLimits::default(),
                other.state_store(),
            ),
            CallLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(count(again.poll(None).await.unwrap()), "6");
}
