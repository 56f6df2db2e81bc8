//! The PostgreSQL queue over TLS, against a real TLS-enabled server of its
//! own (`webcare_tests::postgres_tls_server`): every connection webcare
//! opens (the pool, the state store's pool, the outbox publisher's lock
//! session) is encrypted when the URL says `sslmode=require`, and the
//! server's certificate is verified — a certificate from another CA, or
//! one for another host name, is refused with an error that says so.

use std::path::Path;

use tokio_postgres::NoTls;
use webcare::queue::Storage;
use webcare::queue::postgres::{PostgresOptions, PostgresStorage};
use webcare_tests::postgres_tls_server::PgTlsServer;
use webcare_tests::test_pki::TestPki;

fn options(ca_file: Option<&Path>) -> PostgresOptions {
    PostgresOptions {
        pool_size: 2,
        outbox: true,
        ca_file: ca_file.map(Path::to_path_buf),
    }
}

/// webcare's sessions on `port`, as (encrypted, plain), seen by the server.
async fn sessions(port: u16) -> (i64, i64) {
    let (admin, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable"),
        NoTls,
    )
    .await
    .expect("plain admin connection");
    tokio::spawn(connection);
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_activity AS a JOIN pg_stat_ssl AS s USING (pid)
             WHERE a.application_name = 'webcare'",
            &[],
        )
        .await
        .expect("reading pg_stat_ssl");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn the_queue_speaks_verified_tls_to_postgresql() {
    let pki = TestPki::generate();
    let Some(server) = PgTlsServer::start("the_queue_speaks_verified_tls_to_postgresql", &pki)
    else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let ca = files.path().join("db-ca.pem");
    let other_ca = files.path().join("other-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::write(&other_ca, TestPki::generate().ca_pem).unwrap();
    let port = server.port;
    let url = format!("postgres://postgres@localhost:{port}/postgres?sslmode=require");

    // The right CA: connected, migrated, and every session encrypted.
    let storage = PostgresStorage::connect(&url, options(Some(&ca)))
        .await
        .unwrap_or_else(|e| panic!("connecting over TLS: {e}\n{}", server.log()));
    storage.counts().await.expect("a query over TLS");
    let outbox = storage.outbox().expect("opened with the outbox");
    let lease = outbox.lead().await.expect("the publisher's lock session");
    assert!(lease.is_held());
    let (encrypted, plain) = sessions(port).await;
    assert_eq!(plain, 0, "no session of webcare is in plain text");
    assert!(
        encrypted >= 2,
        "the pool's and the publisher's sessions are encrypted, saw {encrypted}"
    );
    drop(lease);
    drop(storage);

    // Another CA's certificate is refused.
    let error = PostgresStorage::connect(&url, options(Some(&other_ca)))
        .await
        .expect_err("a server certificate from another CA must be refused")
        .to_string();
    assert!(
        error.contains("invalid peer certificate") && error.contains("storage.ca_file"),
        "the error names the certificate problem: {error}"
    );

    // The public roots do not know the test CA either.
    let error = PostgresStorage::connect(&url, options(None))
        .await
        .expect_err("a private CA is not among the public roots")
        .to_string();
    assert!(error.contains("invalid peer certificate"), "{error}");

    // The right CA, but the certificate names another host.
    let wrong_host = format!(
        "postgres://postgres@db.example:{port}/postgres?sslmode=require&hostaddr=127.0.0.1"
    );
    let error = PostgresStorage::connect(&wrong_host, options(Some(&ca)))
        .await
        .expect_err("a certificate for another host name must be refused")
        .to_string();
    assert!(
        error.contains("not valid for name \"db.example\""),
        "the error names the host name mismatch: {error}"
    );

    // A CA file without sslmode=require is a mistake, not silently plain.
    let plain_url = format!("postgres://postgres@localhost:{port}/postgres");
    let error = PostgresStorage::connect(&plain_url, options(Some(&ca)))
        .await
        .expect_err("ca_file without sslmode=require")
        .to_string();
    assert!(error.contains("add ?sslmode=require"), "{error}");
}
