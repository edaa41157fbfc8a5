//! `[cache]`: the node's cache tier for object-storage reads (docs/cache.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::memory::{MemoryBudget, fit_cache};
use crate::parse::positive_size;

/// The node-wide cache of object-storage reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Cache reads at all. Default true; off, every read goes to the store.
    pub enabled: bool,
    /// Memory tier, in bytes. Default 256 MiB, or half of `node.memory_budget` if that is
    /// less; a configured tier larger than half of a configured budget is an error (a
    /// detected budget shrinks it to fit).
    pub memory_bytes: usize,
    /// Disk tier (local NVMe) directory; `None` for memory only. Default none.
    pub dir: Option<PathBuf>,
    /// Disk tier size, in bytes. Default 4 GiB.
    pub disk_bytes: usize,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    pub enabled: bool,
    /// Unset: 256 MiB, or half of `node.memory_budget` if that is less.
    pub memory_bytes: Option<u64>,
    pub dir: String,
    pub disk_bytes: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            enabled: true,
            memory_bytes: None,
            dir: String::new(),
            disk_bytes: 4 * 1024 * 1024 * 1024,
        }
    }
}

/// The memory tier when unset (less if half of the memory budget is less).
const DEFAULT_MEMORY_BYTES: usize = 256 * 1024 * 1024;
/// The smallest memory tier: below this the cache would hold less than a handful of blocks.
const MIN_MEMORY_BYTES: u64 = 16 * 1024 * 1024;
/// The smallest disk tier: foyer writes it in 16 MiB regions and needs several.
const MIN_DISK_BYTES: u64 = 256 * 1024 * 1024;

pub(crate) fn validate_cache(
    section: CacheSection,
    budget: &MemoryBudget,
) -> Result<CacheConfig, ConfigError> {
    let at_least = |key: &str, value: u64, min: u64| {
        if value < min {
            Err(ConfigError::invalid(
                key,
                &value.to_string(),
                &format!("at least {min} bytes"),
            ))
        } else {
            positive_size(key, value)
        }
    };
    let dir = section.dir.trim();
    Ok(CacheConfig {
        enabled: section.enabled,
        memory_bytes: match section.memory_bytes {
            Some(bytes) => fit_cache(
                at_least("cache.memory_bytes", bytes, MIN_MEMORY_BYTES)?,
                budget,
                MIN_MEMORY_BYTES as usize,
            )?,
            None => DEFAULT_MEMORY_BYTES
                .min(budget.bytes / 2)
                .max(MIN_MEMORY_BYTES as usize),
        },
        dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
        disk_bytes: at_least("cache.disk_bytes", section.disk_bytes, MIN_DISK_BYTES)?,
    })
}
