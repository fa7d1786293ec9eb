//! What `apply` shows while it runs. On a terminal: one live line per
//! resource in flight with its elapsed time, under a bar of the whole apply
//! (indicatif), with each finished line printed above them. Without a
//! terminal (CI, a pipe): a plain line per start and end, and a "still
//! creating" line every 10 s for slow ones, which a log keeps readable.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fastcart_engine::apply::EventSink;
use fastcart_engine::render::human_duration;
use fastcart_engine::{ApplyEvent, Operation};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

type Key = (String, &'static str);

pub struct Progress {
    shown: Shown,
}

enum Shown {
    Plain {
        running: Arc<Mutex<HashMap<Key, Instant>>>,
        ticker: tokio::task::JoinHandle<()>,
    },
    Live {
        multi: MultiProgress,
        total: ProgressBar,
        bars: Arc<Mutex<HashMap<Key, ProgressBar>>>,
    },
}

impl Progress {
    /// For an apply of `operations` changes: live on a terminal, plain
    /// lines otherwise.
    pub fn start(operations: usize) -> Self {
        let shown = if std::io::stdout().is_terminal() {
            Self::live(operations, ProgressDrawTarget::stdout())
        } else {
            Self::plain()
        };
        Progress { shown }
    }

    fn live(operations: usize, target: ProgressDrawTarget) -> Shown {
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(operations as u64));
        total.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} changes, {elapsed}")
                .expect("a valid template"),
        );
        total.enable_steady_tick(Duration::from_millis(500));
        Shown::Live {
            multi,
            total,
            bars: Arc::default(),
        }
    }

    fn plain() -> Shown {
        let running: Arc<Mutex<HashMap<Key, Instant>>> = Arc::default();
        let r = running.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            every.tick().await;
            loop {
                every.tick().await;
                let mut slow: Vec<_> = r
                    .lock()
                    .expect("progress lock")
                    .iter()
                    .map(|((id, verb), t)| (id.clone(), *verb, t.elapsed()))
                    .collect();
                slow.sort();
                for (id, verb, elapsed) in slow {
                    println!("{id}: still {verb} ({})", human_duration(elapsed.as_secs()));
                }
            }
        });
        Shown::Plain { running, ticker }
    }

    pub fn sink(&self) -> EventSink {
        match &self.shown {
            Shown::Plain { running, .. } => {
                let running = running.clone();
                Arc::new(move |e: &ApplyEvent| {
                    let mut r = running.lock().expect("progress lock");
                    match e {
                        ApplyEvent::Started {
                            logical_id,
                            operation,
                            ..
                        } => {
                            r.insert((logical_id.clone(), operation.verb()), Instant::now());
                        }
                        ApplyEvent::Finished {
                            logical_id,
                            operation,
                            ..
                        } => {
                            r.remove(&(logical_id.clone(), operation.verb()));
                        }
                    }
                    println!("{}", line(e));
                })
            }
            Shown::Live { multi, total, bars } => {
                let (multi, total, bars) = (multi.clone(), total.clone(), bars.clone());
                Arc::new(move |e: &ApplyEvent| {
                    let mut b = bars.lock().expect("progress lock");
                    match e {
                        ApplyEvent::Started {
                            logical_id,
                            operation,
                            ..
                        } => {
                            let bar = multi.insert_before(&total, ProgressBar::new_spinner());
                            bar.set_style(
                                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                                    .expect("a valid template"),
                            );
                            bar.set_message(line(e));
                            bar.enable_steady_tick(Duration::from_millis(200));
                            b.insert((logical_id.clone(), operation.verb()), bar);
                            // A replacement is two operations, counted as
                            // they come.
                            if total.position() + b.len() as u64 > total.length().unwrap_or(0) {
                                total.inc_length(1);
                            }
                        }
                        ApplyEvent::Finished {
                            logical_id,
                            operation,
                            ..
                        } => {
                            if let Some(bar) = b.remove(&(logical_id.clone(), operation.verb())) {
                                bar.finish_and_clear();
                                multi.remove(&bar);
                            }
                            let _ = multi.println(line(e));
                            total.inc(1);
                        }
                    }
                })
            }
        }
    }

    pub fn stop(self) {
        match self.shown {
            Shown::Plain { ticker, .. } => ticker.abort(),
            Shown::Live { total, bars, .. } => {
                for (_, bar) in bars.lock().expect("progress lock").drain() {
                    bar.finish_and_clear();
                }
                // Left as it stands (a failed apply does not reach the end).
                total.abandon();
            }
        }
    }
}

/// The line an event prints, on a terminal and off it alike.
fn line(e: &ApplyEvent) -> String {
    match e {
        ApplyEvent::Started {
            logical_id,
            type_name,
            operation,
        } => format!("{logical_id}: {}... ({type_name})", operation.verb()),
        ApplyEvent::Finished {
            logical_id,
            operation,
            physical_id,
            result,
            elapsed,
            ..
        } => {
            let took = human_duration(elapsed.as_secs());
            match result {
                Ok(()) => format!(
                    "{logical_id}: {} {}[{took}]",
                    done_verb(*operation),
                    physical_id
                        .as_ref()
                        .map(|p| format!("({p}) "))
                        .unwrap_or_default()
                ),
                Err(e) => format!(
                    "{logical_id}: FAILED {} after {took}: {e}",
                    operation.verb()
                ),
            }
        }
    }
}

fn done_verb(op: Operation) -> &'static str {
    match op {
        Operation::Create | Operation::CreateReplacement => "created",
        Operation::Update => "updated",
        Operation::Delete | Operation::DeleteReplaced => "deleted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live display counts the apply and clears its bars at the end;
    /// drawn to nowhere, as a terminal's would be, it keeps the same
    /// counts.
    #[tokio::test]
    async fn the_live_bar_counts_every_operation_even_a_replacements_two() {
        let p = Progress {
            shown: Progress::live(1, ProgressDrawTarget::hidden()),
        };
        let sink = p.sink();
        let started = |op| ApplyEvent::Started {
            logical_id: "Db".into(),
            type_name: "AWS::RDS::DBInstance".into(),
            operation: op,
        };
        let finished = |op| ApplyEvent::Finished {
            logical_id: "Db".into(),
            type_name: "AWS::RDS::DBInstance".into(),
            operation: op,
            physical_id: Some("orders".into()),
            result: Ok(()),
            elapsed: Duration::from_secs(61),
        };
        sink(&started(Operation::CreateReplacement));
        sink(&finished(Operation::CreateReplacement));
        sink(&started(Operation::DeleteReplaced));
        let Shown::Live { total, bars, .. } = &p.shown else {
            panic!("live")
        };
        assert_eq!(total.position(), 1);
        assert_eq!(total.length(), Some(2));
        assert_eq!(bars.lock().unwrap().len(), 1);
        sink(&finished(Operation::DeleteReplaced));
        assert_eq!(total.position(), 2);
        assert!(bars.lock().unwrap().is_empty());
        assert_eq!(
            line(&finished(Operation::DeleteReplaced)),
            "Db: deleted (orders) [1m01s]"
        );
        p.stop();
    }
}
