//! Folding usage records into totals: a pure function of the set of records. Records are
//! taken once per id, so a record listed twice, or written by a retried flush, counts once;
//! the order they come in changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Counts, UsageRecord};

/// Which usage to fold: a span of Unix seconds (`from` inclusive, `to` exclusive) and,
/// optionally, one tenant or one graph of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQuery {
    pub from_s: Option<u64>,
    pub to_s: Option<u64>,
    pub tenant: Option<String>,
    pub graph: Option<String>,
}

impl UsageQuery {
    fn takes_second(&self, second: u64) -> bool {
        self.from_s.is_none_or(|from| second >= from) && self.to_s.is_none_or(|to| second < to)
    }

    fn takes_graph(&self, tenant: &str, graph: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
            && self.graph.as_deref().is_none_or(|g| g == graph)
    }
}

/// What one graph of one tenant used (`graph` empty: outside any graph).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub tenant: String,
    pub graph: String,
    /// Seconds the graph was warm, summed over nodes (warm on two nodes at once counts twice).
    pub active_seconds: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The totals of every tenant and graph `query` takes, sorted by tenant and graph.
pub fn fold(records: &[UsageRecord], query: &UsageQuery) -> Vec<Totals> {
    let mut totals: BTreeMap<(String, String), Totals> = BTreeMap::new();
    let active = visit(records, query, |usage, _, counts| {
        let key = (usage.tenant.clone(), usage.graph.clone());
        let entry = totals.entry(key).or_insert_with(|| Totals {
            tenant: usage.tenant.clone(),
            graph: usage.graph.clone(),
            ..Totals::default()
        });
        if let Some(counts) = counts {
            entry.counts.add(counts);
        }
    });
    for ((_, tenant, graph), ranges) in active {
        let seconds = covered_seconds(ranges, query);
        if let Some(entry) = totals.get_mut(&(tenant, graph)) {
            entry.active_seconds += seconds;
        }
    }
    totals
        .into_values()
        .filter(|total| total.active_seconds > 0 || !total.counts.is_empty())
        .collect()
}

/// One tenant's (or one graph's) usage second by second: every second `query` takes that
/// has any count, with the number of its graphs warm then (per node).
pub fn series(records: &[UsageRecord], query: &UsageQuery) -> BTreeMap<u64, (u64, Counts)> {
    let mut points: BTreeMap<u64, (u64, Counts)> = BTreeMap::new();
    let active = visit(records, query, |_, second, counts| {
        if let (Some(second), Some(counts)) = (second, counts) {
            points.entry(second).or_default().1.add(counts);
        }
    });
    for ranges in active.into_values() {
        for [first, last] in merged(ranges) {
            for second in first..=last {
                if query.takes_second(second) {
                    points.entry(second).or_default().0 += 1;
                }
            }
        }
    }
    points
}

/// Warm ranges by node, tenant and graph.
type ActiveRanges = BTreeMap<(String, String, String), Vec<[u64; 2]>>;

/// Calls `each` once per graph usage `query` takes (second and counts `None`), then once per
/// second of it the query takes, each record once; returns the graphs' warm ranges by node.
fn visit(
    records: &[UsageRecord],
    query: &UsageQuery,
    mut each: impl FnMut(&super::GraphUsage, Option<u64>, Option<&Counts>),
) -> ActiveRanges {
    let mut active = ActiveRanges::new();
    for record in unique(records) {
        for usage in &record.graphs {
            if !query.takes_graph(&usage.tenant, &usage.graph) {
                continue;
            }
            each(usage, None, None);
            for (second, counts) in &usage.seconds {
                if query.takes_second(*second) {
                    each(usage, Some(*second), Some(counts));
                }
            }
            active
                .entry((
                    record.node.clone(),
                    usage.tenant.clone(),
                    usage.graph.clone(),
                ))
                .or_default()
                .extend(usage.active.iter().copied());
        }
    }
    active
}

/// Each record once, by id.
fn unique(records: &[UsageRecord]) -> impl Iterator<Item = &UsageRecord> {
    let by_id: BTreeMap<&str, &UsageRecord> = records
        .iter()
        .map(|record| (record.id.as_str(), record))
        .collect();
    by_id.into_values()
}

/// Inclusive ranges sorted and joined where they touch or overlap.
fn merged(mut ranges: Vec<[u64; 2]>) -> Vec<[u64; 2]> {
    ranges.sort_unstable();
    let mut out: Vec<[u64; 2]> = Vec::with_capacity(ranges.len());
    for [first, last] in ranges {
        match out.last_mut() {
            Some(previous) if first <= previous[1].saturating_add(1) => {
                previous[1] = previous[1].max(last);
            }
            _ => out.push([first, last]),
        }
    }
    out
}

/// How many seconds of `ranges` the query's span takes, each counted once.
fn covered_seconds(ranges: Vec<[u64; 2]>, query: &UsageQuery) -> u64 {
    merged(ranges)
        .into_iter()
        .map(|[first, last]| {
            let first = query.from_s.map_or(first, |from| first.max(from));
            let end = query.to_s.map_or(last + 1, |to| (last + 1).min(to));
            end.saturating_sub(first)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{GraphUsage, USAGE_FORMAT};

    fn record(id: &str, node: &str, active: Vec<[u64; 2]>, reads: &[(u64, u64)]) -> UsageRecord {
        let seconds = reads
            .iter()
            .map(|(second, count)| {
                let mut counts = Counts::default();
                counts.requests.insert("read".into(), *count);
                (*second, counts)
            })
            .collect();
        UsageRecord {
            format: USAGE_FORMAT.into(),
            id: id.into(),
            node: node.into(),
            from_ms: 0,
            to_ms: 0,
            graphs: vec![GraphUsage {
                tenant: "acme".into(),
                graph: "g".into(),
                active,
                seconds,
            }],
        }
    }

    #[test]
    fn a_record_counts_once_whatever_the_order_or_repetition() {
        let a = record("n1-1-1", "n1", vec![[100, 109]], &[(100, 2), (105, 1)]);
        let b = record("n1-1-2", "n1", vec![[110, 119]], &[(112, 4)]);
        let all = fold(&[a.clone(), b.clone()], &UsageQuery::default());
        let again = fold(
            &[b.clone(), a.clone(), a.clone(), b],
            &UsageQuery::default(),
        );
        assert_eq!(all, again);
        assert_eq!(all[0].active_seconds, 20);
        assert_eq!(all[0].counts.requests["read"], 7);
    }

    #[test]
    fn a_span_takes_its_seconds_and_overlapping_warm_time_counts_once_per_node() {
        let a = record(
            "n1-1-1",
            "n1",
            vec![[100, 109], [105, 114]],
            &[(100, 2), (120, 5)],
        );
        let b = record("n2-1-1", "n2", vec![[100, 104]], &[]);
        let query = UsageQuery {
            from_s: Some(102),
            to_s: Some(120),
            ..UsageQuery::default()
        };
        let totals = fold(&[a.clone(), b.clone()], &query);
        // n1: 102..=114 (13 s); n2: 102..=104 (3 s).
        assert_eq!(totals[0].active_seconds, 16);
        assert!(
            totals[0].counts.requests.is_empty(),
            "both reads are outside"
        );
        let points = series(&[a, b], &query);
        assert_eq!(points[&103].0, 2, "warm on both nodes");
        assert_eq!(points[&110].0, 1);
        assert!(!points.contains_key(&115));
    }
}
