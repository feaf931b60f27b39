//! Group commit: one thread syncs the WAL once for every log append queued since its last sync,
//! then tells openraft each of those appends is durable.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use rocksdb::DB;

type Completion = Box<dyn FnOnce(std::io::Result<()>) + Send>;

/// Owned by the store; dropping it stops the thread and waits for it, so the database is closed
/// when the last store handle goes away.
pub(crate) struct Flusher {
    tx_opt: Option<Sender<Completion>>,
    thread_opt: Option<JoinHandle<()>>,
}

impl Flusher {
    pub(crate) fn start(db: Arc<DB>) -> std::io::Result<Flusher> {
        let (tx, rx) = channel::<Completion>();
        let thread = std::thread::Builder::new()
            .name("wal-flusher".to_string())
            .spawn(move || run(db, rx))?;
        Ok(Flusher {
            tx_opt: Some(tx),
            thread_opt: Some(thread),
        })
    }

    /// Calls `done` once everything written before this call is synced.
    pub(crate) fn after_sync(&self, done: Completion) {
        let Some(tx) = &self.tx_opt else {
            done(Err(std::io::Error::other("the WAL flusher has stopped")));
            return;
        };
        if let Err(returned) = tx.send(done) {
            (returned.0)(Err(std::io::Error::other("the WAL flusher has stopped")));
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.tx_opt.take());
        if let Some(thread) = self.thread_opt.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: Arc<DB>, rx: Receiver<Completion>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let result = db.flush_wal(true);
        metrics::histogram!("tributary_wal_sync_batch_appends").record(waiting.len() as f64);
        for done in waiting {
            done(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
        }
    }
}
