//! `webcare status --config F`: which host polls which connector, until
//! when its lease runs, and where each connector's cursor stands — read
//! from the queue, so it shows every host on a shared database.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::capabilities::ConnectorId;
use crate::queue::Lease;

/// One configured connector as `webcare status` shows it.
#[derive(Debug, Serialize)]
struct Row {
    brand: String,
    connector: String,
    /// `false` for webhook-only connectors (never leased).
    polls: bool,
    /// The host polling it now; `None` when nobody holds a live lease.
    holder: Option<String>,
    /// Milliseconds the lease still runs (negative: expired that long ago).
    lease_left_ms: Option<i64>,
    cursor: Option<String>,
}

pub async fn run(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = super::service::load_for_queue(path)?;
    let storage = super::service::open_storage(&config).await?;
    let leases = storage.leases().await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let mut rows = Vec::new();
    for (brand, connector) in config.connectors() {
        let id = ConnectorId {
            brand: brand.id.clone(),
            connector: connector.id.clone(),
        };
        let lease: Option<&Lease> = leases
            .iter()
            .find(|l| l.brand == id.brand && l.connector == id.connector);
        rows.push(Row {
            polls: connector.enabled && connector.poll,
            holder: lease
                .filter(|l| l.expires_at > now)
                .map(|l| l.holder.clone()),
            lease_left_ms: lease.map(|l| l.expires_at - now),
            cursor: storage.cursor(&id).await?,
            brand: id.brand,
            connector: id.connector,
        });
    }
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<20} {:<20} {:>10}  CURSOR",
        "BRAND", "CONNECTOR", "POLLED BY", "LEASE"
    );
    for row in &rows {
        let holder = match (&row.holder, row.polls) {
            (Some(holder), _) => holder.clone(),
            (None, true) => "(nobody)".to_string(),
            (None, false) => "(webhooks only)".to_string(),
        };
        let lease = match row.lease_left_ms {
            Some(left) if left > 0 => format!("{:.1}s", left as f64 / 1000.0),
            Some(_) => "expired".to_string(),
            None => "-".to_string(),
        };
        println!(
            "{:<16} {:<20} {:<20} {:>10}  {}",
            row.brand,
            row.connector,
            holder,
            lease,
            row.cursor.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}
