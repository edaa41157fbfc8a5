//! The typed client of one repo. Reads run here, in the caller's task, on the warm engine
//! handle; writes are sent to the repo's actor. Every wait is bounded by `call_timeout`, and a
//! dead or restarting actor answers `Unavailable` (or `OutcomeUnknown` for a write it may
//! have applied), never a hang.

use std::ops::Deref;
use std::sync::Arc;

use omnigraph::db::{GraphCommit, ReadTarget};
use omnigraph::db::{MergeOutcome, SchemaApplyResult};
use omnigraph::loader::{LoadMode, LoadResult};
use omnigraph_cloud_config::{BranchName, CommitId};
use omnigraph_compiler::{MutationResult, ParamMap, QueryResult};
use ractor::rpc::CallResult;
use ractor::{ActorRef, MessagingErr};

use super::activity::ActivityGuard;
use super::branches;
use super::export::{self, ExportStream};
use super::messages::{RepoMsg, WriteOp, WriteOutcome};
use super::supervisor::SupervisorMsg;
use super::{Incarnation, Life, RepoShared};
use crate::{ErrorKind, RepoError, RepoKey};

/// A repo on this node. Cheap to clone.
#[derive(Clone)]
pub struct RepoHandle {
    pub(crate) shared: Arc<RepoShared>,
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
}

/// A repo in use by one request: the handle plus the activity guard that keeps the repo from
/// being evicted until the request is over.
pub struct ActiveRepo {
    handle: RepoHandle,
    _guard: ActivityGuard,
}

/// The state of a branch as `GET /snapshot` reports it.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub manifest_version: u64,
    pub internal_schema_version: u32,
    pub tables: Vec<TableInfo>,
}

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub table_key: String,
    pub table_path: String,
    pub table_version: u64,
    pub table_branch: Option<String>,
    pub row_count: u64,
}

impl ActiveRepo {
    pub(crate) fn new(handle: RepoHandle, guard: ActivityGuard) -> ActiveRepo {
        ActiveRepo {
            handle,
            _guard: guard,
        }
    }

    /// Streams the branch as NDJSON. Fails before the first byte for a bad request (unknown
    /// branch or table); the stream keeps the repo in use until it ends.
    pub async fn export(
        self,
        branch: BranchName,
        type_names: Vec<String>,
        table_keys: Vec<String>,
    ) -> Result<ExportStream, RepoError> {
        let engine = self.handle.incarnation().await?.engine.clone();
        let cache = Arc::clone(&self.handle.shared.maintenance.cache);
        let target = ReadTarget::branch(branch.as_str());
        crate::stamp::read(&cache, &engine, &target).await;
        let stream = export::start(
            Arc::clone(&engine),
            Arc::clone(&cache),
            branch.into_string(),
            type_names,
            table_keys,
            Box::new(self),
        )
        .await?;
        crate::stamp::stale_read(&cache, &engine, &target).await;
        Ok(stream)
    }
}

impl Deref for ActiveRepo {
    type Target = RepoHandle;

    fn deref(&self) -> &RepoHandle {
        &self.handle
    }
}

impl RepoHandle {
    pub fn key(&self) -> &RepoKey {
        &self.shared.key
    }

    /// `err`, the failure of a read, unless the graph is gone: deleted through another node
    /// while warm here, its files no longer exist. Then the graph is not found, and this
    /// node's actor for it stops once its requests are over (the next request activates
    /// afresh and finds nothing, or the graph created again).
    async fn unless_gone(&self, err: RepoError) -> RepoError {
        if err.kind() != ErrorKind::Internal {
            return err;
        }
        match self
            .shared
            .maintenance
            .store
            .graph_exists(&self.shared.key)
            .await
        {
            Ok(false) => {
                let handle = self.clone();
                tokio::spawn(async move {
                    handle.shared.activity.close_and_drain().await;
                    let _ = handle
                        .supervisor
                        .stop_and_wait(Some("deleted through another node".into()), None)
                        .await;
                });
                RepoError::GraphNotFound {
                    graph: self.shared.key.graph.clone(),
                }
            }
            _ => err,
        }
    }

    pub async fn snapshot(&self, branch: &BranchName) -> Result<SnapshotInfo, RepoError> {
        let branch = branch.as_str();
        let engine = self.incarnation().await?.engine.clone();
        let explained = async |err| {
            let err = branches::explain_error(&engine, branch, err).await;
            self.unless_gone(err).await
        };
        let cache = &self.shared.maintenance.cache;
        let snapshot = match cache
            .scope(engine.snapshot_of(ReadTarget::branch(branch)))
            .await
        {
            Ok(snapshot) => snapshot,
            Err(err) => return Err(explained(err).await),
        };
        let internal_schema_version = match cache
            .scope(engine.internal_schema_version_of(ReadTarget::branch(branch)))
            .await
        {
            Ok(version) => version,
            Err(err) => return Err(explained(err).await),
        };
        let mut tables: Vec<TableInfo> = snapshot
            .entries()
            .map(|entry| TableInfo {
                table_key: entry.table_key.clone(),
                table_path: entry.table_path.clone(),
                table_version: entry.table_version,
                table_branch: entry.table_branch.clone(),
                row_count: entry.row_count,
            })
            .collect();
        tables.sort_by(|a, b| a.table_key.cmp(&b.table_key));
        crate::stamp::record_read(snapshot.version());
        Ok(SnapshotInfo {
            manifest_version: snapshot.version(),
            internal_schema_version,
            tables,
        })
    }

    /// Opens every table of `main`, and keeps them open in the engine's handle cache, so that
    /// the first query finds them open: the second half of pre-warming (the first is the
    /// activation). How many tables were opened.
    pub async fn open_tables(&self) -> Result<usize, RepoError> {
        let engine = self.incarnation().await?.engine.clone();
        let cache = &self.shared.maintenance.cache;
        cache
            .scope(async {
                let snapshot = engine.snapshot_of(ReadTarget::branch("main")).await?;
                let opens = snapshot
                    .entries()
                    .map(|entry| snapshot.open(&entry.table_key));
                futures::future::try_join_all(opens)
                    .await
                    .map(|tables| tables.len())
            })
            .await
            .map_err(RepoError::from)
    }

    pub async fn query(
        &self,
        target: ReadTarget,
        source: &str,
        name: &str,
        params: &ParamMap,
    ) -> Result<QueryResult, RepoError> {
        let engine = self.incarnation().await?.engine.clone();
        let cache = &self.shared.maintenance.cache;
        crate::stamp::read(cache, &engine, &target).await;
        match cache
            .scope(engine.query(target.clone(), source, name, params))
            .await
        {
            Ok(result) => {
                crate::stamp::stale_read(cache, &engine, &target).await;
                Ok(result)
            }
            Err(err) => {
                let err = match target {
                    ReadTarget::Branch(branch) => {
                        branches::explain_error(&engine, &branch, err).await
                    }
                    ReadTarget::Snapshot(_) => err.into(),
                };
                Err(self.unless_gone(err).await)
            }
        }
    }

    pub async fn schema_source(&self) -> Result<String, RepoError> {
        let engine = self.incarnation().await?.engine.clone();
        Ok(engine.schema_source().as_str().to_string())
    }

    /// Every branch, `main` included, sorted.
    pub async fn branches(&self) -> Result<Vec<String>, RepoError> {
        let engine = self.incarnation().await?.engine.clone();
        let mut branches = match self
            .shared
            .maintenance
            .cache
            .scope(engine.branch_list())
            .await
        {
            Ok(branches) => branches,
            Err(err) => return Err(self.unless_gone(err.into()).await),
        };
        branches.sort();
        Ok(branches)
    }

    /// Commits of a branch (main when `None`), oldest first as upstream 0.8 lists them.
    pub async fn commits(
        &self,
        branch: Option<&BranchName>,
    ) -> Result<Vec<GraphCommit>, RepoError> {
        let branch = branch.map(BranchName::as_str);
        let engine = self.incarnation().await?.engine.clone();
        match self
            .shared
            .maintenance
            .cache
            .scope(engine.list_commits(branch))
            .await
        {
            Ok(commits) => {
                // The head, the last, is the version the listing read.
                if let Some(head) = commits.last() {
                    crate::stamp::record_read(head.manifest_version);
                }
                Ok(commits)
            }
            Err(err) => {
                let err =
                    branches::explain_error(&engine, branch.unwrap_or(branches::MAIN), err).await;
                Err(self.unless_gone(err).await)
            }
        }
    }

    pub async fn commit(&self, commit_id: &CommitId) -> Result<GraphCommit, RepoError> {
        let engine = self.incarnation().await?.engine.clone();
        let cache = &self.shared.maintenance.cache;
        let commit = cache.scope(engine.get_commit(commit_id.as_str())).await?;
        crate::stamp::record_read(commit.manifest_version);
        Ok(commit)
    }

    pub async fn mutate(
        &self,
        branch: BranchName,
        source: String,
        name: String,
        params: ParamMap,
        actor: Option<String>,
    ) -> Result<MutationResult, RepoError> {
        match self
            .write(WriteOp::Mutate {
                branch: branch.into_string(),
                source,
                name,
                params,
                actor,
            })
            .await?
        {
            WriteOutcome::Mutated(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn load(
        &self,
        branch: BranchName,
        from: Option<BranchName>,
        data: String,
        mode: LoadMode,
        actor: Option<String>,
    ) -> Result<LoadResult, RepoError> {
        match self
            .write(WriteOp::Load {
                branch: branch.into_string(),
                from: from.map(BranchName::into_string),
                data,
                mode,
                actor,
            })
            .await?
        {
            WriteOutcome::Loaded(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn apply_schema(
        &self,
        source: String,
        allow_data_loss: bool,
        actor: Option<String>,
    ) -> Result<SchemaApplyResult, RepoError> {
        match self
            .write(WriteOp::ApplySchema {
                source,
                allow_data_loss,
                actor,
            })
            .await?
        {
            WriteOutcome::SchemaApplied(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn create_branch(
        &self,
        from: BranchName,
        name: BranchName,
        actor: Option<String>,
    ) -> Result<(), RepoError> {
        let (from, name) = (from.into_string(), name.into_string());
        match self
            .write(WriteOp::CreateBranch { from, name, actor })
            .await?
        {
            WriteOutcome::BranchCreated => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_branch(
        &self,
        name: BranchName,
        actor: Option<String>,
    ) -> Result<(), RepoError> {
        let name = name.into_string();
        match self.write(WriteOp::DeleteBranch { name, actor }).await? {
            WriteOutcome::BranchDeleted => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn merge(
        &self,
        source: BranchName,
        target: BranchName,
        actor: Option<String>,
    ) -> Result<MergeOutcome, RepoError> {
        match self
            .write(WriteOp::Merge {
                source: source.into_string(),
                target: target.into_string(),
                actor,
            })
            .await?
        {
            WriteOutcome::Merged(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Fault injection for tests: makes the repo's current actor panic. Its supervisor
    /// restarts it. Only with the `test-seams` feature.
    #[cfg(feature = "test-seams")]
    pub fn inject_crash(&self) {
        let _ = self.supervisor.cast(SupervisorMsg::CrashChild);
    }

    /// Sends a write to the actor and waits for its answer.
    ///
    /// A write that never reached a mailbox (the actor died first) is sent once more to the
    /// restarted actor; a write whose actor died after receiving it is answered
    /// `OutcomeUnknown`, because whether it was applied is unknown.
    async fn write(&self, mut op: WriteOp) -> Result<WriteOutcome, RepoError> {
        let forwarded = crate::origin::is_forwarded();
        let kind = op.kind();
        let graph = &self.shared.key.graph;
        for _ in 0..2 {
            let incarnation = self.incarnation().await?;
            let call = incarnation
                .mailbox
                .call(
                    |reply| RepoMsg::Write(op, reply, tokio::time::Instant::now(), forwarded),
                    Some(self.shared.call_timeout),
                )
                .await;
            match call {
                Ok(CallResult::Success(result)) => {
                    return result.map(|written| {
                        crate::stamp::record(written.stamp);
                        written.outcome
                    });
                }
                Ok(CallResult::Timeout) => {
                    return Err(RepoError::DeadlineExceeded {
                        message: format!(
                            "graph '{graph}' did not finish the {kind} within its deadline of \
                             {} ms (actors.call_timeout); it may still be applied: check its \
                             effect before retrying",
                            self.shared.call_timeout.as_millis()
                        ),
                    });
                }
                Ok(CallResult::SenderError) => {
                    return Err(RepoError::OutcomeUnknown {
                        message: format!(
                            "graph '{graph}' failed while handling this {kind} and is restarting; \
                             the {kind} was not acknowledged, check its effect before retrying"
                        ),
                    });
                }
                Err(MessagingErr::SendErr(RepoMsg::Write(returned, _, _, _))) => op = returned,
                Err(_) => break,
            }
        }
        Err(RepoError::unavailable(format!(
            "graph '{graph}' is restarting; retry the {kind}"
        )))
    }

    /// The serving incarnation, waiting (bounded) through a restart.
    pub(crate) async fn incarnation(&self) -> Result<Arc<Incarnation>, RepoError> {
        let mut life = self.shared.life.subscribe();
        let settled = tokio::time::timeout(
            self.shared.call_timeout,
            life.wait_for(|life| !matches!(life, Life::Restarting)),
        )
        .await;
        let graph = &self.shared.key.graph;
        let current = match settled {
            Ok(Ok(current)) => current.clone(),
            Ok(Err(_)) => Life::Stopped(format!("graph '{graph}' was unloaded")),
            Err(_) => {
                return Err(RepoError::unavailable(format!(
                    "graph '{graph}' is restarting and did not come back within {:?}",
                    self.shared.call_timeout
                )));
            }
        };
        match current {
            Life::Ready(incarnation) => Ok(incarnation),
            Life::Stopped(reason) => Err(RepoError::unavailable(reason)),
            Life::Restarting => unreachable!("waited until not restarting"),
        }
    }
}

fn unexpected(outcome: WriteOutcome) -> RepoError {
    RepoError::Internal {
        message: format!("unexpected write outcome {outcome:?}"),
    }
}
