//! The inventory of a repo's tables as stored: fragments, versions, files and bytes (the
//! admin view and the maintenance benchmark).

use omnigraph::db::{Omnigraph, ReadTarget};

use super::{RepoMaintenance, TableInventory};
use crate::RepoError;

impl RepoMaintenance {
    /// The repo's tables as stored: fragments, versions, files, bytes (admin view, benchmark).
    pub(crate) async fn inventory(
        &self,
        engine: &Omnigraph,
    ) -> Result<Vec<TableInventory>, RepoError> {
        Ok(self.inventory_with_files(engine).await?.0)
    }

    /// [`Self::inventory`], plus the count and bytes of every object of the graph.
    pub(crate) async fn inventory_with_files(
        &self,
        engine: &Omnigraph,
    ) -> Result<(Vec<TableInventory>, u64, u64), RepoError> {
        let snapshot = engine.snapshot_of(ReadTarget::branch("main")).await?;
        let files = self.store.graph_files(&self.key).await?;
        let mut tables = Vec::new();
        for entry in snapshot.entries() {
            let uri = format!("{}/{}", self.uri, entry.table_path);
            let fragments = match lance::Dataset::open(&uri).await {
                Ok(dataset) => dataset.count_fragments() as u64,
                Err(err) => {
                    return Err(RepoError::Internal {
                        message: format!("opening table {}: {err}", entry.table_key),
                    });
                }
            };
            let prefix = format!("{}/", entry.table_path.trim_end_matches('/'));
            let (mut versions, mut data_files, mut bytes) = (0u64, 0u64, 0u64);
            for (path, size) in files.iter().filter(|(path, _)| path.starts_with(&prefix)) {
                let rest = &path[prefix.len()..];
                if rest.starts_with("_versions/") && rest.ends_with(".manifest") {
                    versions += 1;
                }
                if rest.starts_with("data/") {
                    data_files += 1;
                }
                bytes += size;
            }
            tables.push(TableInventory {
                table_key: entry.table_key.clone(),
                table_version: entry.table_version,
                rows: entry.row_count,
                fragments,
                versions,
                data_files,
                bytes,
            });
        }
        tables.sort_by(|a, b| a.table_key.cmp(&b.table_key));
        let bytes = files.iter().map(|(_, size)| size).sum();
        Ok((tables, files.len() as u64, bytes))
    }
}
