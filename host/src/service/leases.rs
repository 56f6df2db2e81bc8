//! Poll leases: with several hosts on one database, each connector is
//! polled by exactly one host at a time.
//!
//! Every host runs one keeper task. At start and then every third of the
//! lease time it says it is alive (a row in `hosts`), renews the leases it
//! holds and takes free or expired ones — up to its fair share: the
//! connectors divided by the hosts alive, rounded up. A host above its
//! share (another host joined) gives the surplus up, so the connectors
//! spread over the hosts within a few rounds. The connectors it holds are published on a
//! watch channel; a connector's scheduler polls only while its id is in
//! that set and reads the committed cursor each time it (re)gains the
//! lease, so a connector moved from a dead host resumes where the last
//! commit left it.
//!
//! A host that cannot renew (database unreachable) stops polling once its
//! leases would have expired, because by then another host may have taken
//! them. Exactly-once storage does not depend on leases — messages are
//! deduplicated on their external id and the cursor is committed with
//! them — so the rare overlap (a host paused past its lease, then
//! committing one more page) costs a duplicate fetch, never a duplicate
//! message. Webhooks are not leased: any host takes them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::capabilities::ConnectorId;
use crate::queue::Storage;

/// Who this host is among the hosts on one queue, and how long its leases
/// last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Distinct per host on one database (`[host] id`).
    pub host_id: String,
    /// A lease not renewed within this time is free for another host.
    pub lease_time: Duration,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            host_id: "local".to_string(),
            lease_time: Duration::from_secs(15),
        }
    }
}

/// The connectors this host may poll now.
pub type Held = watch::Receiver<HashSet<ConnectorId>>;

/// Claims the leases once, so polling starts without waiting a renewal
/// period, and returns the keeper's state.
pub async fn first_claim(
    storage: &Arc<dyn Storage>,
    spec: &ClusterSpec,
    wanted: &[ConnectorId],
) -> (watch::Sender<HashSet<ConnectorId>>, Held) {
    let held = claim(storage, spec, wanted).await.unwrap_or_default();
    watch::channel(held)
}

async fn claim(
    storage: &Arc<dyn Storage>,
    spec: &ClusterSpec,
    wanted: &[ConnectorId],
) -> Option<HashSet<ConnectorId>> {
    match share_out(storage, spec, wanted).await {
        Ok(held) => Some(held),
        Err(e) => {
            tracing::error!(host = %spec.host_id, "cannot claim or renew the poll leases: {e}");
            None
        }
    }
}

/// One round: says this host is alive, keeps its fair share of the
/// connectors (`wanted` divided by the hosts alive, rounded up), gives up
/// the rest of what it holds (a host joined), and takes free or expired
/// leases up to that share (a host left or died). Every host runs the same
/// round, so the connectors spread out within a few rounds. Which leases
/// look free is judged here, but taking one is the storage's conditional
/// claim, so two hosts never both get it.
async fn share_out(
    storage: &Arc<dyn Storage>,
    spec: &ClusterSpec,
    wanted: &[ConnectorId],
) -> Result<HashSet<ConnectorId>, crate::queue::StorageError> {
    let host = &spec.host_id;
    let alive = storage.heartbeat(host, spec.lease_time).await?;
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let share = wanted.len().div_ceil(alive);
    let leases = storage.leases().await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let lease_of = |id: &ConnectorId| {
        leases
            .iter()
            .find(|l| l.brand == id.brand && l.connector == id.connector)
    };
    let mut mine: Vec<ConnectorId> = Vec::new();
    let mut free: Vec<ConnectorId> = Vec::new();
    for id in wanted {
        match lease_of(id) {
            Some(lease) if &lease.holder == host => mine.push(id.clone()),
            Some(lease) if lease.expires_at > now => {}
            _ => free.push(id.clone()),
        }
    }
    if mine.len() > share {
        let surplus = mine.split_off(share);
        tracing::info!(%host, alive, share, "giving up {} poll leases to the other hosts", surplus.len());
        storage.give_up_leases(host, &surplus).await?;
    }
    let room = share - mine.len();
    mine.extend(free.into_iter().take(room));
    Ok(storage
        .claim_leases(host, &mine, spec.lease_time)
        .await?
        .into_iter()
        .collect())
}

/// Renews and takes leases until `stop`; the leases are released by
/// [`release`] once the schedulers have finished their last commit.
pub async fn keep(
    storage: Arc<dyn Storage>,
    spec: ClusterSpec,
    wanted: Vec<ConnectorId>,
    held: watch::Sender<HashSet<ConnectorId>>,
    mut stop: watch::Receiver<bool>,
) {
    let every = spec.lease_time / 3;
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let started = Instant::now();
        match claim(&storage, &spec, &wanted).await {
            Some(now_held) => {
                renewed = started;
                held.send_if_modified(|current| {
                    if *current == now_held {
                        return false;
                    }
                    for id in now_held.difference(current) {
                        tracing::info!(host = %spec.host_id, brand = %id.brand, connector = %id.connector, "took the poll lease");
                    }
                    for id in current.difference(&now_held) {
                        tracing::warn!(host = %spec.host_id, brand = %id.brand, connector = %id.connector, "lost the poll lease");
                    }
                    *current = now_held;
                    true
                });
            }
            // Not renewed: the leases run out at the last renewal plus the
            // lease time; stop polling a little before.
            None if renewed.elapsed() + every >= spec.lease_time => {
                held.send_if_modified(|current| {
                    let had = !current.is_empty();
                    current.clear();
                    had
                });
            }
            None => {}
        }
    }
}

/// Gives this host's leases up, so other hosts take over at once.
pub async fn release(storage: &Arc<dyn Storage>, spec: &ClusterSpec) {
    if let Err(e) = storage.release_leases(&spec.host_id).await {
        tracing::warn!(host = %spec.host_id, "cannot release the poll leases (they expire on their own): {e}");
    }
}
