//! Per-resource calls where an API cannot batch: a few in flight at once,
//! answers kept in order.

use std::future::Future;

use fastcart_engine::DriverError;
use futures::{StreamExt, TryStreamExt};

/// Runs `calls` with at most `limit` in flight; the first error wins.
pub async fn in_order<T, Fut>(calls: Vec<Fut>, limit: usize) -> Result<Vec<T>, DriverError>
where
    Fut: Future<Output = Result<T, DriverError>>,
{
    futures::stream::iter(calls)
        .buffered(limit.max(1))
        .try_collect()
        .await
}
