//! Where a stack's state, journal and lock live, behind one trait: the local
//! directory today ([`crate::StateStore`]), a shared store (S3) next. The
//! engine keeps no SDK: a backend that talks to a cloud lives outside it.
//!
//! What every backend guarantees the engine:
//! - `acquire` takes the lock for one run or fails naming its holder; the
//!   `Fence` it returns goes with every write of that run, and a backend
//!   refuses a write whose fence is not the lock's current one (a lock taken
//!   over since);
//! - `save` replaces the whole state at once: a reader sees the old state
//!   or the new, never a mix;
//! - a journal entry is durable when `append` returns, before the request
//!   it records is sent;
//! - `load` is the saved state with the journal entries written after it
//!   folded in ([`fold`]).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::journal::Entry;
use crate::state::State;

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub holder: String,
    pub pid: u32,
    pub command: String,
    pub since: String,
    /// The fence of the run holding it (0 in locks older than fences).
    #[serde(default)]
    pub token: u64,
}

/// Proof of holding a lock, carried by every write of the run that took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence(pub u64);

/// Appends journal entries; an entry is durable when `append` returns.
pub trait JournalSink: Send {
    fn append(&mut self, entry: &Entry) -> Result<()>;
}

pub trait StateBackend: Send + Sync + fmt::Debug {
    fn stack(&self) -> &str;
    fn env(&self) -> &str;
    /// Where the state lives, for people: a directory, an `s3://` URL.
    fn location(&self) -> String;
    /// Takes the lock for `command`, or fails naming its holder.
    fn acquire(&self, command: &str) -> Result<(LockInfo, Fence)>;
    /// Gives the lock back, if `fence` still holds it.
    fn release(&self, fence: Fence) -> Result<()>;
    /// Removes a lock left behind by a run that died; says whose it was.
    fn force_unlock(&self) -> Result<Option<LockInfo>>;
    /// The saved state alone, without the journal; `None` when there is none.
    fn load_saved(&self) -> Result<Option<State>>;
    /// The journal's entries, in order.
    fn read_journal(&self) -> Result<Vec<Entry>>;
    /// Writes the whole state at once.
    fn save(&self, fence: Fence, state: &State) -> Result<()>;
    /// Opens the journal for appending.
    fn journal(&self, fence: Fence) -> Result<Box<dyn JournalSink>>;

    /// The state as of the last journal entry. `None`: nothing was applied.
    fn load(&self) -> Result<Option<State>> {
        Ok(fold(
            self.stack(),
            self.env(),
            self.load_saved()?,
            &self.read_journal()?,
        ))
    }

    /// The local store, when the state is in a local directory.
    fn local(&self) -> Option<&crate::StateStore> {
        None
    }

    /// The lock of a run that died, which `acquire` took over once its
    /// lease ran out (backends with leases).
    fn taken_over(&self) -> Option<LockInfo> {
        None
    }
}

/// `saved` with the entries written after it (of its lineage) folded in;
/// without a saved state, a new one of the journal's lineage.
pub fn fold(stack: &str, env: &str, saved: Option<State>, entries: &[Entry]) -> Option<State> {
    let mut state = match saved {
        Some(s) => s,
        None => {
            let last = entries.last()?;
            let mut s = State::new(stack, env);
            s.lineage = last.lineage.clone();
            s
        }
    };
    let (from, lineage) = (state.journal_seq, state.lineage.clone());
    for e in entries
        .iter()
        .filter(|e| e.seq > from && e.lineage == lineage)
    {
        state.record(e);
    }
    Some(state)
}

/// A lock held for one run; given back when dropped.
#[derive(Debug)]
pub struct Lock {
    backend: Arc<dyn StateBackend>,
    pub info: LockInfo,
    pub fence: Fence,
}

impl Lock {
    /// Takes `backend`'s lock for `command`.
    pub fn take(backend: Arc<dyn StateBackend>, command: &str) -> Result<Lock> {
        let (info, fence) = backend.acquire(command)?;
        Ok(Lock {
            backend,
            info,
            fence,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.backend.release(self.fence);
    }
}
