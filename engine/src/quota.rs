//! Quotas as ZooKeeper keeps them: `/zookeeper/quota/<path>/zookeeper_limits` holds the limits a
//! client set, `/zookeeper/quota/<path>/zookeeper_stats` the count of nodes and bytes of data in
//! `<path>`'s subtree, which the tree updates on every change below it.

use std::collections::BTreeMap;

use crate::tree::QUOTA_PATH;

/// Name of the node holding a quota's limits.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// Name of the node holding a quota's usage.
pub const STAT_NODE: &str = "zookeeper_stats";

/// `StatsTrack`: `count=..,bytes=..` plus any other `key=value` pairs (the hard limits).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses what ZooKeeper's `StatsTrack` reads: pairs split on `,` or `;`, each `key=value`
    /// with anything after a second `=` ignored (zkCli 3.8 writes `bytes=-1=;countHardLimit=2`);
    /// unparsable parts are skipped.
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let values = text
            .split([',', ';'])
            .filter_map(|kv| {
                let mut parts = kv.split('=');
                let (k, v) = (parts.next()?.trim(), parts.next()?.trim());
                v.parse::<i64>().ok().map(|v| (k.to_string(), v))
            })
            .filter(|(k, _)| !k.is_empty())
            .collect();
        StatsTrack { values }
    }

    /// A value, or -1 (no limit) when absent.
    pub fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, v: i64) {
        self.values.insert(key.to_string(), v);
    }

    /// ZooKeeper's text: count and bytes first, then the rest.
    pub fn to_text(&self) -> String {
        let mut parts = Vec::new();
        for k in ["count", "bytes"] {
            if let Some(v) = self.values.get(k) {
                parts.push(format!("{k}={v}"));
            }
        }
        for (k, v) in &self.values {
            if k != "count" && k != "bytes" {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join(",")
    }
}

/// The quota path a node under `/zookeeper/quota` belongs to, if `name` is one of the quota nodes.
pub fn quota_target(parent: &str, name: &str) -> Option<(String, bool)> {
    let target = parent.strip_prefix(QUOTA_PATH)?;
    if !target.starts_with('/') {
        return None;
    }
    match name {
        LIMIT_NODE => Some((target.to_string(), true)),
        STAT_NODE => Some((target.to_string(), false)),
        _ => None,
    }
}

/// The stats node path of a quota path.
pub fn stat_path(quota: &str) -> String {
    format!("{QUOTA_PATH}{quota}/{STAT_NODE}")
}

/// The limits node path of a quota path.
pub fn limit_path(quota: &str) -> String {
    format!("{QUOTA_PATH}{quota}/{LIMIT_NODE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_text_round_trips_in_zookeepers_order() {
        let s = StatsTrack::parse(b"bytes=10,count=3,countHardLimit=5");
        assert_eq!(s.to_text(), "count=3,bytes=10,countHardLimit=5");
        assert_eq!(s.get("byteHardLimit"), -1);
    }

    #[test]
    fn limits_as_zkcli_writes_them_parse() {
        let s = StatsTrack::parse(b"count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=2");
        assert_eq!((s.get("count"), s.get("bytes"), s.get("countHardLimit")), (5, -1, 2));
    }

    #[test]
    fn quota_nodes_are_recognised() {
        assert_eq!(quota_target("/zookeeper/quota/a/b", LIMIT_NODE), Some(("/a/b".into(), true)));
        assert_eq!(quota_target("/zookeeper/quota", LIMIT_NODE), None);
        assert_eq!(quota_target("/x", STAT_NODE), None);
    }
}
