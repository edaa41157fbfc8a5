//! A lease backend in memory, with the same conditional-write semantics as the others: for
//! unit tests on paused time and for deterministic simulations of the protocol.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::LeaseError;
use super::backend::{CasOutcome, LeaseBackend, Stored};

#[derive(Debug, Default)]
pub struct MemoryBackend {
    /// Path to (bytes, version); versions count writes, so none is ever reused.
    objects: Mutex<(BTreeMap<String, Stored>, u64)>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }
}

#[async_trait]
impl LeaseBackend for MemoryBackend {
    async fn read(&self, path: &str) -> Result<Option<Stored>, LeaseError> {
        Ok(self
            .objects
            .lock()
            .expect("memory backend")
            .0
            .get(path)
            .cloned())
    }

    async fn write(
        &self,
        path: &str,
        bytes: Vec<u8>,
        expected: Option<String>,
    ) -> Result<CasOutcome, LeaseError> {
        let mut guard = self.objects.lock().expect("memory backend");
        let (objects, writes) = &mut *guard;
        let current = objects.get(path).map(|stored| stored.version.as_str());
        if current != expected.as_deref() {
            return Ok(CasOutcome::Conflict);
        }
        *writes += 1;
        let version = format!("v{writes}");
        objects.insert(
            path.to_string(),
            Stored {
                bytes,
                version: version.clone(),
            },
        );
        Ok(CasOutcome::Written(version))
    }

    async fn list(&self, dir: &str) -> Result<Vec<(String, String)>, LeaseError> {
        let prefix = format!("{dir}/");
        Ok(self
            .objects
            .lock()
            .expect("memory backend")
            .0
            .iter()
            .filter(|(path, _)| path.starts_with(&prefix))
            .map(|(path, stored)| (path.clone(), stored.version.clone()))
            .collect())
    }
}
