//! Group commit: one thread syncs the WAL once for every log append queued since its last sync,
//! then tells openraft each of those appends is durable.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use rocksdb::DB;

type Completion = Box<dyn FnOnce(std::io::Result<()>) + Send>;

#[derive(Clone)]
pub(crate) struct Flusher {
    tx: Sender<Completion>,
}

impl Flusher {
    pub(crate) fn start(db: Arc<DB>) -> std::io::Result<Flusher> {
        let (tx, rx) = channel::<Completion>();
        std::thread::Builder::new()
            .name("wal-flusher".to_string())
            .spawn(move || run(db, rx))?;
        Ok(Flusher { tx })
    }

    /// Calls `done` once everything written before this call is synced.
    pub(crate) fn after_sync(&self, done: Completion) {
        if let Err(returned) = self.tx.send(done) {
            (returned.0)(Err(std::io::Error::other("the WAL flusher has stopped")));
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
