//! Batched describes shared across resource types: when several drivers
//! read through the same AWS call at once (route tables, routes and
//! route-table associations all read `DescribeRouteTables`), a [`Loader`]
//! gathers the ids they ask for during a short window and sends one call
//! for all of them. Nothing is kept after the answer: a read that starts
//! later (after a mutation, say) gets a call of its own, so a loader never
//! answers from a stale copy.
//!
//! A [`Kept`] answer is the other way to share a call: what one call saw
//! (the stack-wide tag search, every Elastic IP), kept for later readers
//! until fastcart sends its next mutation.

use std::collections::{BTreeSet, HashMap};
use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fastcart_engine::DriverError;

use crate::error::SdkResultExt;
use futures::future::{BoxFuture, FutureExt, Shared};

/// How long a batch stays open for more ids. The engine starts the reads of
/// every type at once, so a few milliseconds gather them all; a caller that
/// misses the window only costs one more call.
const WINDOW: Duration = Duration::from_millis(15);

type Answer<V> = Result<Arc<HashMap<String, V>>, DriverError>;

/// A paginated describe of `ids`: one call per chunk of `per_call` ids (the
/// most its filter takes) and page, `send` starting the pages of one chunk,
/// `items` the objects a page lists and `key` the id each is kept by. Ids
/// that no longer exist are simply missing from the answer.
pub async fn describe<I, O, T, E>(
    ids: &[I],
    per_call: usize,
    send: impl Fn(&[I]) -> PaginationStream<Result<O, SdkError<E, HttpResponse>>>,
    items: impl Fn(&O) -> &[T],
    key: impl Fn(&T) -> Option<&str>,
) -> Result<HashMap<String, T>, DriverError>
where
    I: AsRef<str>,
    T: Clone,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let mut found = HashMap::new();
    for chunk in ids.chunks(per_call.max(1)) {
        let target = chunk
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(",");
        let mut pages = send(chunk);
        while let Some(page) = pages.next().await {
            for item in items(&page.op(&target)?) {
                if let Some(id) = key(item) {
                    found.insert(id.to_string(), item.clone());
                }
            }
        }
    }
    Ok(found)
}

/// What a call sent at some mutation count saw, good until the next
/// mutation (`Clients::mutations`): a later call would see the same, unless
/// something outside fastcart changed it in the meantime, which a read
/// taken a moment earlier would not have seen either.
pub struct Kept<T>(Mutex<Option<(u64, Arc<T>)>>);

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept(Mutex::new(None))
    }
}

impl<T> Kept<T> {
    /// Keeps what a call sent when the mutation count was `generation` saw.
    pub fn keep(&self, generation: u64, seen: T) {
        *self.0.lock().expect("kept lock") = Some((generation, Arc::new(seen)));
    }

    /// What was kept, if no mutation was sent since (`now` is the count).
    pub fn get(&self, now: u64) -> Option<Arc<T>> {
        let kept = self.0.lock().expect("kept lock");
        kept.as_ref()
            .filter(|(generation, _)| *generation == now)
            .map(|(_, seen)| seen.clone())
    }
}

struct Batch {
    ids: BTreeSet<String>,
    /// Set when the call is sent: later ids go into a new batch.
    sent: bool,
}

struct Open<V> {
    batch: Arc<Mutex<Batch>>,
    answer: Shared<BoxFuture<'static, Answer<V>>>,
}

/// One shared, batching caller of a describe API keyed by id.
pub struct Loader<V> {
    open: Mutex<Option<Open<V>>>,
}

impl<V> Default for Loader<V> {
    fn default() -> Self {
        Loader {
            open: Mutex::new(None),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Loader<V> {
    /// What `fetch` answers for `ids`, sent together with the ids other
    /// callers ask for within the window. `fetch` gets every id of the
    /// batch and returns what exists, by id (absent: gone).
    pub async fn load<F, Fut>(
        &self,
        ids: &[&str],
        fetch: F,
    ) -> Result<HashMap<String, V>, DriverError>
    where
        F: FnOnce(Vec<String>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<HashMap<String, V>, DriverError>> + Send + 'static,
    {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let answer = {
            let mut open = self.open.lock().expect("loader lock");
            let joined = open.as_ref().and_then(|o| {
                let mut b = o.batch.lock().expect("batch lock");
                (!b.sent).then(|| {
                    b.ids.extend(ids.iter().map(|s| s.to_string()));
                    o.answer.clone()
                })
            });
            match joined {
                Some(answer) => answer,
                None => {
                    let batch = Arc::new(Mutex::new(Batch {
                        ids: ids.iter().map(|s| s.to_string()).collect(),
                        sent: false,
                    }));
                    let b = batch.clone();
                    let answer = async move {
                        tokio::time::sleep(WINDOW).await;
                        let ids: Vec<String> = {
                            let mut b = b.lock().expect("batch lock");
                            b.sent = true;
                            b.ids.iter().cloned().collect()
                        };
                        fetch(ids).await.map(Arc::new)
                    }
                    .boxed()
                    .shared();
                    *open = Some(Open {
                        batch,
                        answer: answer.clone(),
                    });
                    answer
                }
            }
        };
        let all = answer.await?;
        Ok(ids
            .iter()
            .filter_map(|id| all.get(*id).map(|v| (id.to_string(), v.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn callers_at_once_share_one_call_and_later_ones_get_their_own() {
        let loader: Loader<u32> = Loader::default();
        let calls = Arc::new(AtomicU32::new(0));
        let fetch = |calls: Arc<AtomicU32>| {
            move |ids: Vec<String>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(ids
                    .into_iter()
                    .filter(|i| i != "gone")
                    .map(|i| (i.clone(), i.len() as u32))
                    .collect())
            }
        };
        let (a, b) = tokio::join!(
            loader.load(&["a", "bb"], fetch(calls.clone())),
            loader.load(&["ccc", "gone"], fetch(calls.clone())),
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for both");
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len(), 2, "each caller gets only its own ids: {a:?}");
        assert_eq!(a["bb"], 2);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b["ccc"], 3);
        loader.load(&["a"], fetch(calls.clone())).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "nothing is kept");
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_caller_of_its_batch() {
        let loader: Loader<u32> = Loader::default();
        let fail = |_ids: Vec<String>| async {
            Err(DriverError::new(
                fastcart_engine::ErrorKind::Other,
                "ec2:DescribeRouteTables",
                "boom",
            ))
        };
        let (a, b) = tokio::join!(loader.load(&["a"], fail), loader.load(&["b"], fail));
        assert!(a.is_err() && b.is_err());
    }
}
