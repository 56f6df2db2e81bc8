//! Notes between the hosts of one PostgreSQL queue ([`PeerSignal`]), over
//! `LISTEN`/`NOTIFY` on the channel `webcare_peers`: no extra service, and
//! the database already connects every host.
//!
//! Each listening host keeps one connection of its own (outside the pool)
//! for as long as it listens. Notes are sent through the pool with
//! `pg_notify`, outside any transaction: they report a change already
//! committed.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::postgres::OrStorage;
use super::postgres_tls::PgTls;
use super::{PEER_PAYLOAD_MAX, PeerSignal, StorageError};

/// The notification channel.
const CHANNEL: &str = "webcare_peers";

#[derive(Debug)]
pub(super) struct PostgresPeers {
    pub(super) pool: deadpool_postgres::Pool,
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: PgTls,
    pub(super) location: Arc<str>,
}

#[async_trait::async_trait]
impl PeerSignal for PostgresPeers {
    async fn signal(&self, payload: &str) -> Result<(), StorageError> {
        if payload.len() > PEER_PAYLOAD_MAX {
            return Err(StorageError::Query(format!(
                "a note to the other hosts is {} bytes, more than {PEER_PAYLOAD_MAX}",
                payload.len()
            )));
        }
        let what = "notifying the other hosts";
        let client = super::postgres::get(&self.pool, &self.location).await?;
        let statement = client
            .prepare_cached("SELECT pg_notify($1, $2)")
            .await
            .or_storage(what)?;
        client
            .execute(&statement, &[&CHANNEL, &payload])
            .await
            .or_storage(what)?;
        Ok(())
    }

    async fn listen(&self) -> Result<mpsc::Receiver<String>, StorageError> {
        self.tls
            .connect_listening(
                &self.config,
                &format!("LISTEN {CHANNEL}"),
                "the session listening to the other hosts",
            )
            .await
            .or_storage("listening to the other hosts")
    }
}
