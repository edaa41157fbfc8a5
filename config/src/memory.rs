//! The node's memory budget (`node.memory_budget`): what the whole process may use. The cache
//! tier's memory counts toward it (at most half), the rest is for the engine's sessions,
//! queries and queued writes. Unset, it is 80 % of the container's memory limit (cgroup v2 or
//! v1), or of the machine's memory, so that a pod sized by its limit needs no setting.

use crate::ConfigError;

/// The smallest budget accepted: below it a node cannot hold one warm graph and its cache.
const MIN_BUDGET: u64 = 128 * 1024 * 1024;
/// Without any limit to read (not Linux): 2 GiB.
const FALLBACK: u64 = 2 * 1024 * 1024 * 1024;
/// Limits at least this large mean "no limit" (cgroup v1 reports about 2^63).
const UNLIMITED: u64 = 1 << 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub bytes: usize,
    pub source: BudgetSource,
}

/// Where the budget came from, for the node's start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetSource {
    Configured,
    /// 80 % of the container's (cgroup's) memory limit.
    ContainerLimit,
    /// 80 % of the machine's memory.
    MachineMemory,
    /// Nothing to read: 2 GiB.
    Fallback,
}

impl BudgetSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetSource::Configured => "node.memory_budget",
            BudgetSource::ContainerLimit => "80% of the container's memory limit",
            BudgetSource::MachineMemory => "80% of the machine's memory",
            BudgetSource::Fallback => "fallback (no memory limit found)",
        }
    }
}

pub(crate) fn memory_budget(configured: Option<u64>) -> Result<MemoryBudget, ConfigError> {
    let (bytes, source) = match configured {
        Some(bytes) if bytes < MIN_BUDGET => {
            return Err(ConfigError::invalid(
                "node.memory_budget",
                &bytes.to_string(),
                &format!("at least {MIN_BUDGET} bytes"),
            ));
        }
        Some(bytes) => (bytes, BudgetSource::Configured),
        None => match detected_limit() {
            Some((limit, source)) => ((limit / 5 * 4).max(MIN_BUDGET), source),
            None => (FALLBACK, BudgetSource::Fallback),
        },
    };
    let bytes = usize::try_from(bytes).map_err(|_| {
        ConfigError::invalid(
            "node.memory_budget",
            &bytes.to_string(),
            "a size this machine can address",
        )
    })?;
    Ok(MemoryBudget { bytes, source })
}

/// The cgroup's memory limit (read at the cgroup root, which is the container's own under a
/// cgroup namespace, as in Kubernetes and Docker), or the machine's memory if less.
fn detected_limit() -> Option<(u64, BudgetSource)> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|&limit| limit < UNLIMITED);
    let machine = read("/proc/meminfo").as_deref().and_then(mem_total);
    match (cgroup, machine) {
        // A limit above the machine's memory (a pod limit larger than its node) is no limit.
        (Some(limit), Some(machine)) if limit >= machine => {
            Some((machine, BudgetSource::MachineMemory))
        }
        (Some(limit), _) => Some((limit, BudgetSource::ContainerLimit)),
        (None, machine) => machine.map(|bytes| (bytes, BudgetSource::MachineMemory)),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The cache's memory tier must leave half of the budget to everything else. A configured
/// budget makes a larger tier an error; a detected one shrinks the tier to fit.
pub(crate) fn fit_cache(
    memory_bytes: usize,
    budget: &MemoryBudget,
    minimum: usize,
) -> Result<usize, ConfigError> {
    let most = budget.bytes / 2;
    if memory_bytes <= most {
        return Ok(memory_bytes);
    }
    if budget.source == BudgetSource::Configured {
        return Err(ConfigError::invalid(
            "cache.memory_bytes",
            &memory_bytes.to_string(),
            &format!(
                "at most half of node.memory_budget ({most} of {} bytes)",
                budget.bytes
            ),
        ));
    }
    Ok(most.max(minimum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total_in_bytes() {
        let meminfo = "MemTotal:        8039140 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total(meminfo), Some(8_039_140 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn a_configured_budget_bounds_the_cache_and_a_detected_one_shrinks_it() {
        let configured = MemoryBudget {
            bytes: 512 << 20,
            source: BudgetSource::Configured,
        };
        assert_eq!(
            fit_cache(256 << 20, &configured, 16 << 20).unwrap(),
            256 << 20
        );
        let err = fit_cache(300 << 20, &configured, 16 << 20).unwrap_err();
        assert!(err.to_string().contains("cache.memory_bytes"), "{err}");
        let detected = MemoryBudget {
            bytes: 200 << 20,
            source: BudgetSource::ContainerLimit,
        };
        assert_eq!(
            fit_cache(256 << 20, &detected, 16 << 20).unwrap(),
            100 << 20
        );
    }

    #[test]
    fn a_budget_below_the_minimum_is_refused() {
        assert!(memory_budget(Some(1 << 20)).is_err());
        assert_eq!(
            memory_budget(Some(1 << 30)).unwrap(),
            MemoryBudget {
                bytes: 1 << 30,
                source: BudgetSource::Configured
            }
        );
    }
}
