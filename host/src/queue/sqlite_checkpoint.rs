//! WAL checkpoints on their own thread and connection.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past
//! 1,000 pages: that commit copies the WAL's pages into the database file
//! and fsyncs both, while the ingest waits. The queue's writer is the
//! bottleneck of ingest (about one core busy, the second mostly idle), so
//! the writer's connection turns automatic checkpoints off and this thread
//! does them instead, with a connection of its own, on the other core:
//!
//! * after writes, at most every [`PERIOD`], a `PASSIVE` checkpoint: it
//!   copies what is committed without ever blocking the writer;
//! * whenever a checkpoint leaves the WAL longer than [`RESTART_PAGES`]
//!   (the writer never paused long enough for the WAL to start over), a
//!   `RESTART` checkpoint: the writer waits while the rest is copied, and
//!   the next commit starts the WAL from the beginning. That bounds the
//!   WAL at a few tens of MiB under any load; when it starts over, SQLite
//!   truncates the file to `journal_size_limit` (set to the same bound on
//!   the writer's connection), so a burst does not keep its disk space.
//!
//! Durability is unchanged: a commit is in the WAL when it returns, as
//! before; the checkpoint only moves pages into the main file. A failed
//! checkpoint is logged and tried again later; until then the WAL grows.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Shortest time between two checkpoints while writes keep coming.
pub(super) const PERIOD: Duration = Duration::from_millis(100);

/// A WAL still longer than this after a checkpoint (pages of 4 KiB, so
/// 64 MiB) is checkpointed with `RESTART`.
pub(super) const RESTART_PAGES: i64 = 16_384;

/// How long a `RESTART` checkpoint waits for other connections (a reader
/// in another process, say `webcare queue list`). While it waits it holds
/// the write lock, so this is how long it may stall ingest; short, because
/// when it gives up the next period simply tries again. (`PASSIVE` never
/// waits.)
const BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// The running checkpointer; stops (and closes its connection) when
/// dropped.
pub(super) struct Checkpointer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Signal {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Something was written since the last checkpoint began.
    written: bool,
    stop: bool,
}

impl Checkpointer {
    /// Opens a second connection to `path` and starts the thread. The
    /// caller turns automatic checkpoints off on its own connection only
    /// once this succeeded.
    pub(super) fn start(path: &Path, location: &str) -> std::io::Result<Self> {
        Self::start_with(path, location, RESTART_PAGES)
    }

    /// [`Checkpointer::start`] with another `RESTART` threshold (tests).
    fn start_with(path: &Path, location: &str, restart_pages: i64) -> std::io::Result<Self> {
        let conn = Connection::open(path).map_err(std::io::Error::other)?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(std::io::Error::other)?;
        let signal = Arc::new(Signal::default());
        let thread = std::thread::Builder::new()
            .name("webcare-checkpoint".into())
            .spawn({
                let signal = Arc::clone(&signal);
                let location = location.to_string();
                move || run(conn, &signal, &location, restart_pages)
            })?;
        Ok(Checkpointer {
            signal,
            thread: Some(thread),
        })
    }

    /// Tells the thread that the writer committed (or may have).
    pub(super) fn written(&self) {
        let mut state = self
            .signal
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !state.written {
            state.written = true;
            self.signal.wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.signal
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.signal.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // Joined so that its connection is closed when the storage is
            // gone (the last connection to close removes the WAL file).
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, signal: &Signal, location: &str, restart_pages: i64) {
    let mut last: Option<Instant> = None;
    loop {
        {
            let mut state = signal.state.lock().unwrap_or_else(PoisonError::into_inner);
            while !state.written && !state.stop {
                state = signal
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            // Batch the writes of one period into one checkpoint.
            if let Some(until) = last.map(|last| last + PERIOD) {
                while !state.stop && Instant::now() < until {
                    let rest = until.saturating_duration_since(Instant::now());
                    state = signal
                        .wake
                        .wait_timeout(state, rest)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
            if state.stop {
                // The last connection to close checkpoints what is left.
                return;
            }
            state.written = false;
        }
        last = Some(Instant::now());
        match checkpoint(&conn, "PASSIVE") {
            Ok(pages) if pages > restart_pages => {
                if let Err(e) = checkpoint(&conn, "RESTART") {
                    tracing::warn!(%location, "WAL checkpoint (RESTART) failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%location, "WAL checkpoint failed: {e}"),
        }
    }
}

/// Runs one checkpoint; returns the WAL's length in pages when it ended.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    // (busy, pages in the WAL, pages copied to the database)
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer connection in WAL mode on `queue.db` in `dir`, with table
    /// `t`, and a checkpointer (`RESTART` past `restart_pages`) that has
    /// taken the checkpoints over from it.
    fn writer_with_checkpointer(dir: &Path, restart_pages: i64) -> (Connection, Checkpointer) {
        let path = dir.join("queue.db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        writer.busy_timeout(Duration::from_secs(5)).unwrap();
        let checkpointer = Checkpointer::start_with(&path, "queue.db", restart_pages).unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        (writer, checkpointer)
    }

    fn wal_pages(conn: &Connection) -> (i64, i64) {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })
        .unwrap()
    }

    /// The writer's connection never checkpoints; the thread copies what
    /// was written, and stopping it leaves a database that reopens whole.
    #[test]
    fn the_thread_checkpoints_what_the_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let (mut writer, checkpointer) = writer_with_checkpointer(dir.path(), RESTART_PAGES);
        let tx = writer.transaction().unwrap();
        for _ in 0..2000 {
            tx.execute("INSERT INTO t VALUES (randomblob(1000))", [])
                .unwrap();
        }
        tx.commit().unwrap();
        checkpointer.written();
        // The thread's checkpoint copies every page the writer committed.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let size = std::fs::metadata(&path).unwrap().len();
            if size > 1_000_000 {
                break;
            }
            assert!(Instant::now() < deadline, "no checkpoint copied the pages");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpointer);
        let (log, copied) = wal_pages(&writer);
        assert_eq!(log, copied, "everything in the WAL is in the database");
        drop(writer);
        let reopened = Connection::open(&path).unwrap();
        let rows: i64 = reopened
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 2000);
    }

    /// A writer that never pauses never lets a `PASSIVE` checkpoint catch
    /// up, so the WAL would only grow; the `RESTART` threshold keeps it
    /// within a bound all the same.
    #[test]
    fn a_writer_that_never_pauses_keeps_a_bounded_wal() {
        const PAGE: usize = 4096;
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("queue.db-wal");
        // 256 pages (1 MiB) instead of 64 MiB, to keep the test small.
        let (mut writer, checkpointer) = writer_with_checkpointer(dir.path(), 256);
        // 16 MiB in transactions of 20 KiB, with a breath between them
        // (a real writer triages and builds its next batch meanwhile).
        let mut written = 0;
        let mut largest = 0;
        while written < 16 << 20 {
            let tx = writer.transaction().unwrap();
            for _ in 0..5 {
                tx.execute("INSERT INTO t VALUES (randomblob(4000))", [])
                    .unwrap();
            }
            tx.commit().unwrap();
            checkpointer.written();
            written += 5 * PAGE;
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            largest < 8 << 20,
            "the WAL grew to {largest} bytes of {written} written"
        );
    }
}
