//! What a shipper holds between two sends: log batches in arrival order and metric samples folded
//! per (key, minute), bounded, with the oldest dropped first. Pure data: the shipper locks it.

use std::collections::{BTreeMap, VecDeque};

use lamina_common::telemetry::{LogBatch, MetricKey, MetricSample, MetricStat};

use crate::Ingest;

/// Bytes a pending log event is counted for beyond its message (timestamp, vector slot), so that
/// a flood of empty lines is bounded too.
const EVENT_OVERHEAD: usize = 32;

/// A batch that has grown this large takes no more merges: dropping the oldest events of a
/// batch shifts the rest, which must stay cheap.
const MERGE_UP_TO_EVENTS: usize = 1_000;

/// How much may be pending; beyond it the oldest goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub events: usize,
    pub bytes: usize,
    pub stats: usize,
}

/// How much one send carries at most (one gRPC message must hold it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendCap {
    pub events: usize,
    pub bytes: usize,
    pub stats: usize,
}

/// What was dropped to stay within [`Bounds`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub events: usize,
    pub stats: usize,
}

/// A statistic without its key (the key is the map's).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Folded {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Folded {
    fn add(&mut self, other: Folded) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Oldest first.
    logs: VecDeque<LogBatch>,
    events: usize,
    bytes: usize,
    /// Ordered by minute first, so the oldest minutes are sent (and dropped) first.
    stats: BTreeMap<(i64, MetricKey), Folded>,
}

fn event_bytes(message: &str) -> usize {
    message.len() + EVENT_OVERHEAD
}

fn batch_bytes(batch: &LogBatch) -> usize {
    batch.events.iter().map(|e| event_bytes(&e.message)).sum()
}

fn same_stream(a: &LogBatch, b: &LogBatch) -> bool {
    a.log_stream == b.log_stream && a.log_group == b.log_group && a.account_id == b.account_id
}

impl Pending {
    /// Log events pending.
    pub(crate) fn events(&self) -> usize {
        self.events
    }

    /// (key, minute) statistics pending.
    pub(crate) fn stats(&self) -> usize {
        self.stats.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.logs.is_empty() && self.stats.is_empty()
    }

    /// Appends `batch` after everything pending (merged into the last batch when of the same stream).
    pub(crate) fn push_logs(&mut self, mut batch: LogBatch, bounds: Bounds) -> Dropped {
        if batch.events.is_empty() {
            return Dropped::default();
        }
        self.events += batch.events.len();
        self.bytes += batch_bytes(&batch);
        match self.logs.back_mut() {
            Some(last) if same_stream(last, &batch) && last.events.len() < MERGE_UP_TO_EVENTS => {
                last.events.append(&mut batch.events);
            }
            _ => self.logs.push_back(batch),
        }
        self.trim(bounds)
    }

    /// Folds `sample` into its (key, minute) statistic.
    pub(crate) fn push_metric(&mut self, sample: MetricSample, bounds: Bounds) -> Dropped {
        let minute = sample.timestamp_ms.div_euclid(60_000) * 60;
        let value = sample.value;
        let folded = Folded { count: 1, sum: value, min: value, max: value };
        self.fold(minute, sample.key, folded);
        self.trim(bounds)
    }

    fn fold(&mut self, minute: i64, key: MetricKey, folded: Folded) {
        self.stats.entry((minute, key)).and_modify(|s| s.add(folded)).or_insert(folded);
    }

    /// Takes the oldest of what is pending, at most `cap` of it (a single event larger than the
    /// byte cap goes alone).
    pub(crate) fn take(&mut self, cap: SendCap) -> Ingest {
        let mut logs: Vec<LogBatch> = Vec::new();
        let (mut events, mut bytes) = (0usize, 0usize);
        while let Some(front) = self.logs.front_mut() {
            let mut fit = 0;
            let mut fit_bytes = 0;
            for e in &front.events {
                let b = event_bytes(&e.message);
                let first = events == 0 && fit == 0;
                if !first && (events + fit >= cap.events || bytes + fit_bytes + b > cap.bytes) {
                    break;
                }
                fit += 1;
                fit_bytes += b;
            }
            if fit == 0 {
                break;
            }
            let whole = fit == front.events.len();
            let batch = if whole {
                match self.logs.pop_front() {
                    Some(b) => b,
                    None => break,
                }
            } else {
                let rest = front.events.split_off(fit);
                LogBatch {
                    account_id: front.account_id.clone(),
                    log_group: front.log_group.clone(),
                    log_stream: front.log_stream.clone(),
                    events: std::mem::replace(&mut front.events, rest),
                }
            };
            events += fit;
            bytes += fit_bytes;
            logs.push(batch);
            if !whole {
                break;
            }
        }
        self.events -= events;
        self.bytes -= bytes;
        let mut metrics = Vec::with_capacity(self.stats.len().min(cap.stats));
        while metrics.len() < cap.stats {
            let Some(((minute, key), s)) = self.stats.pop_first() else { break };
            metrics.push(MetricStat { key, minute, sample_count: s.count, sum: s.sum, min: s.min, max: s.max });
        }
        Ingest { logs, metrics }
    }

    /// Puts back what a failed send carried, ahead of what arrived since (statistics are folded
    /// in again), then drops the oldest beyond `bounds`.
    pub(crate) fn requeue(&mut self, ingest: Ingest, bounds: Bounds) -> Dropped {
        for batch in ingest.logs.into_iter().rev() {
            if batch.events.is_empty() {
                continue;
            }
            self.events += batch.events.len();
            self.bytes += batch_bytes(&batch);
            self.logs.push_front(batch);
        }
        for s in ingest.metrics {
            let folded = Folded { count: s.sample_count, sum: s.sum, min: s.min, max: s.max };
            self.fold(s.minute, s.key, folded);
        }
        self.trim(bounds)
    }

    /// Drops the oldest log events and the oldest minutes' statistics beyond `bounds`.
    fn trim(&mut self, bounds: Bounds) -> Dropped {
        let mut dropped = Dropped::default();
        while self.events > bounds.events || self.bytes > bounds.bytes {
            let Some(front) = self.logs.front_mut() else { break };
            // Whole events over the count bound go in one cut; over the byte bound, one at a time.
            let over = self.events.saturating_sub(bounds.events).max(1).min(front.events.len());
            let mut cut = 0;
            let mut cut_bytes = 0;
            for e in &front.events[..over] {
                cut += 1;
                cut_bytes += event_bytes(&e.message);
                if self.events - cut <= bounds.events && self.bytes - cut_bytes <= bounds.bytes {
                    break;
                }
            }
            if cut == front.events.len() {
                self.logs.pop_front();
            } else {
                front.events.drain(..cut);
            }
            self.events -= cut;
            self.bytes -= cut_bytes;
            dropped.events += cut;
        }
        while self.stats.len() > bounds.stats {
            self.stats.pop_first();
            dropped.stats += 1;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use lamina_common::telemetry::{Metric, ShippedEvent};

    use super::*;

    const ROOMY: Bounds = Bounds { events: 1_000_000, bytes: usize::MAX, stats: 1_000_000 };
    const ALL: SendCap = SendCap { events: usize::MAX, bytes: usize::MAX, stats: usize::MAX };

    fn batch(stream: &str, messages: &[&str]) -> LogBatch {
        LogBatch {
            account_id: "111111111111".into(),
            log_group: "/aws/lambda/f".into(),
            log_stream: stream.into(),
            events: messages
                .iter()
                .enumerate()
                .map(|(i, m)| ShippedEvent { timestamp_ms: i as i64, message: (*m).to_owned() })
                .collect(),
        }
    }

    fn messages(ingest: &Ingest) -> Vec<(String, String)> {
        ingest.logs.iter().flat_map(|b| b.events.iter().map(|e| (b.log_stream.clone(), e.message.clone()))).collect()
    }

    fn sample(function: &str, metric: Metric, timestamp_ms: i64, value: f64) -> MetricSample {
        MetricSample {
            key: MetricKey {
                account_id: "111111111111".into(),
                function_name: function.into(),
                resource: function.into(),
                executed_version: "$LATEST".into(),
                metric,
            },
            timestamp_ms,
            value,
        }
    }

    #[test]
    fn consecutive_batches_of_a_stream_merge_and_keep_their_order() {
        let mut p = Pending::default();
        p.push_logs(batch("a", &["1", "2"]), ROOMY);
        p.push_logs(batch("a", &["3"]), ROOMY);
        p.push_logs(batch("b", &["4"]), ROOMY);
        p.push_logs(batch("a", &["5"]), ROOMY);
        p.push_logs(batch("a", &[]), ROOMY);
        assert_eq!(p.events(), 5);
        let sent = p.take(ALL);
        assert_eq!(sent.logs.len(), 3, "a, b, a: only neighbours merge");
        let want: Vec<(String, String)> =
            [("a", "1"), ("a", "2"), ("a", "3"), ("b", "4"), ("a", "5")].map(|(s, m)| (s.into(), m.into())).into();
        assert_eq!(messages(&sent), want);
        assert!(p.is_empty());
        assert_eq!((p.events, p.bytes), (0, 0));
    }

    #[test]
    fn samples_fold_per_key_and_minute() {
        let mut p = Pending::default();
        p.push_metric(sample("f", Metric::Duration, 60_000, 5.0), ROOMY);
        p.push_metric(sample("f", Metric::Duration, 119_999, 1.0), ROOMY);
        p.push_metric(sample("f", Metric::Duration, 120_000, 7.0), ROOMY);
        p.push_metric(sample("f", Metric::Invocations, 60_001, 1.0), ROOMY);
        p.push_metric(sample("g", Metric::Duration, 60_001, 2.0), ROOMY);
        assert_eq!(p.stats(), 4);
        let sent = p.take(ALL).metrics;
        let first = sent
            .iter()
            .find(|s| s.minute == 60 && s.key.function_name == "f" && s.key.metric == Metric::Duration)
            .cloned();
        let mut want = MetricStat::of(&sample("f", Metric::Duration, 60_000, 5.0));
        want.merge(&MetricStat::of(&sample("f", Metric::Duration, 119_999, 1.0)));
        assert_eq!(first, Some(want));
        assert_eq!(sent.iter().map(|s| s.sample_count).sum::<u64>(), 5);
        assert_eq!(sent.last().map(|s| s.minute), Some(120), "oldest minutes first");
    }

    #[test]
    fn a_flood_drops_the_oldest_events_and_counts_them() {
        let bounds = Bounds { events: 3, ..ROOMY };
        let mut p = Pending::default();
        let mut dropped = 0;
        for i in 0..5 {
            let stream = if i % 2 == 0 { "a" } else { "b" };
            dropped += p.push_logs(batch(stream, &[&format!("{i}-x"), &format!("{i}-y")]), bounds).events;
        }
        assert_eq!(dropped, 7);
        assert_eq!(p.events(), 3);
        let kept: Vec<String> = messages(&p.take(ALL)).into_iter().map(|(_, m)| m).collect();
        assert_eq!(kept, ["3-y", "4-x", "4-y"]);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_too() {
        let big = "x".repeat(1000);
        let bounds = Bounds { bytes: 2 * (1000 + EVENT_OVERHEAD), ..ROOMY };
        let mut p = Pending::default();
        let dropped: usize = (0..4).map(|i| p.push_logs(batch(&i.to_string(), &[big.as_str()]), bounds).events).sum();
        assert_eq!((dropped, p.events()), (2, 2));
        let streams: Vec<String> = p.take(ALL).logs.into_iter().map(|b| b.log_stream).collect();
        assert_eq!(streams, ["2", "3"]);
    }

    #[test]
    fn statistics_beyond_their_bound_lose_the_oldest_minutes() {
        let bounds = Bounds { stats: 2, ..ROOMY };
        let mut p = Pending::default();
        let dropped: usize =
            (0..4).map(|m| p.push_metric(sample("f", Metric::Invocations, m * 60_000, 1.0), bounds).stats).sum();
        assert_eq!(dropped, 2);
        let minutes: Vec<i64> = p.take(ALL).metrics.iter().map(|s| s.minute).collect();
        assert_eq!(minutes, [120, 180]);
    }

    #[test]
    fn sends_are_capped_and_split_batches_keep_their_order() {
        let mut p = Pending::default();
        p.push_logs(batch("a", &["1", "2", "3"]), ROOMY);
        p.push_logs(batch("b", &["4", "5"]), ROOMY);
        for m in 0..3 {
            p.push_metric(sample("f", Metric::Invocations, m * 60_000, 1.0), ROOMY);
        }
        let cap = SendCap { events: 2, bytes: usize::MAX, stats: 2 };
        let first = p.take(cap);
        assert_eq!(messages(&first), [("a".into(), "1".into()), ("a".into(), "2".into())]);
        assert_eq!(first.metrics.len(), 2);
        let second = p.take(cap);
        assert_eq!(messages(&second), [("a".into(), "3".into()), ("b".into(), "4".into())]);
        assert_eq!(second.metrics.len(), 1);
        let third = p.take(cap);
        assert_eq!(messages(&third), [("b".into(), "5".into())]);
        assert!(p.is_empty());
        // One event larger than the byte cap still goes (alone).
        p.push_logs(batch("c", &["long line", "next"]), ROOMY);
        let alone = p.take(SendCap { bytes: 1, ..cap });
        assert_eq!(messages(&alone), [("c".into(), "long line".into())]);
        assert_eq!(p.events(), 1);
    }

    #[test]
    fn a_failed_send_goes_back_ahead_of_newer_telemetry() {
        let mut p = Pending::default();
        p.push_logs(batch("a", &["1", "2"]), ROOMY);
        p.push_metric(sample("f", Metric::Duration, 0, 4.0), ROOMY);
        let failed = p.take(ALL);
        p.push_logs(batch("a", &["3"]), ROOMY);
        p.push_metric(sample("f", Metric::Duration, 1, 2.0), ROOMY);
        assert_eq!(p.requeue(failed, ROOMY), Dropped::default());
        let sent = p.take(ALL);
        let order: Vec<String> = messages(&sent).into_iter().map(|(_, m)| m).collect();
        assert_eq!(order, ["1", "2", "3"]);
        let stat = &sent.metrics[0];
        assert_eq!((sent.metrics.len(), stat.sample_count, stat.sum, stat.min, stat.max), (1, 2, 6.0, 2.0, 4.0));
    }

    #[test]
    fn requeued_telemetry_is_still_bounded_oldest_first() {
        let bounds = Bounds { events: 2, ..ROOMY };
        let mut p = Pending::default();
        p.push_logs(batch("a", &["1", "2"]), bounds);
        let failed = p.take(ALL);
        p.push_logs(batch("b", &["3"]), bounds);
        assert_eq!(p.requeue(failed, bounds).events, 1);
        let order: Vec<String> = messages(&p.take(ALL)).into_iter().map(|(_, m)| m).collect();
        assert_eq!(order, ["2", "3"]);
    }
}
