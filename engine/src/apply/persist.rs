//! Saving the state on a background thread while the steps run.

use super::*;

impl Drop for Persister {
    fn drop(&mut self) {
        // Closing the channel without `Finish` abandons unsaved changes.
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Persister {
    pub(super) fn start(store: Arc<dyn StateBackend>, fence: Fence, mut state: State) -> Self {
        let (tx, rx) = mpsc::channel::<Persist>();
        let thread = std::thread::spawn(move || -> Result<State> {
            let mut dirty = false;
            loop {
                // Wait for one message, then take all that are queued.
                let Ok(first) = rx.recv() else {
                    return Ok(state);
                };
                let mut finish = false;
                for msg in std::iter::once(first).chain(rx.try_iter()) {
                    match msg {
                        Persist::Entry(e) => state.record(&e),
                        Persist::Outputs(o) => state.outputs = o,
                        Persist::Finish => finish = true,
                    }
                    dirty = true;
                }
                if dirty {
                    state.serial += 1;
                    store.save(fence, &state)?;
                    dirty = false;
                }
                if finish {
                    return Ok(state);
                }
            }
        });
        Persister {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub(super) fn send(&self, msg: Persist) {
        if let Some(tx) = &self.tx {
            // A closed channel means the thread stopped on an error, which
            // `finish` reports.
            let _ = tx.send(msg);
        }
    }

    /// Saves what is pending and returns the state as saved.
    pub(super) fn finish(mut self) -> Result<State> {
        self.send(Persist::Finish);
        self.tx.take();
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("persister does not panic")
    }
}
