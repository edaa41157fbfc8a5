//! `RepoActor`: owns the warm engine handle of one repo and its write coalescer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use omnigraph::db::Omnigraph;
use omnigraph::storage::storage_for_uri;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, info, warn};

use super::coalescer::{self, Coalescer};
use super::messages::RepoMsg;
use super::{Incarnation, Life, RepoShared};
use crate::RepoError;
use crate::cache::{CachingStorage, prefetch};
use crate::maintenance::{ForWrite, Held};

pub(crate) struct RepoActor;

/// The first wait before trying again to claim the cache authority, and the longest.
const CLAIM_RETRY_FIRST: Duration = Duration::from_secs(5);
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(60);

pub(crate) struct RepoActorState {
    shared: Arc<RepoShared>,
    engine: Arc<Omnigraph>,
    /// The engine was opened as the repo's cache authority; else, the wait before the next
    /// claim.
    authority: Result<(), Duration>,
    coalescer: Coalescer,
    /// A `Flush` is armed (in the mailbox or on a timer); only the last one armed counts.
    flush_scheduled: bool,
    /// The number of the flush armed last; a `Flush` with another is stale.
    flush_number: u64,
    /// What the last publish of several writes asked of the next (see `coalescer::gather`),
    /// until the next flush runs.
    gather: Option<coalescer::Gather>,
    /// The armed flush is the gather's timer: a write that ends the wait publishes at once.
    gathering: bool,
}

impl Actor for RepoActor {
    type Msg = RepoMsg;
    type State = RepoActorState;
    type Arguments = Arc<RepoShared>;

    /// Opens the engine (see [`open_engine`]) and publishes the warm handle to callers.
    async fn pre_start(
        &self,
        myself: ActorRef<RepoMsg>,
        shared: Arc<RepoShared>,
    ) -> Result<RepoActorState, ActorProcessingErr> {
        let (engine, authority) = match open_as_authority(&shared).await {
            Some(engine) => (engine, Ok(())),
            None => {
                let engine = shared
                    .maintenance
                    .cache
                    .scope(Omnigraph::open_read_only(&shared.uri));
                myself.send_after(CLAIM_RETRY_FIRST, || RepoMsg::ClaimAuthority);
                (engine.await?, Err(CLAIM_RETRY_FIRST))
            }
        };
        let engine = Arc::new(engine);
        shared.life.send_replace(Life::Ready(Arc::new(Incarnation {
            engine: Arc::clone(&engine),
            mailbox: myself,
        })));
        debug!(repo = %shared.key, "repo actor started");
        let coalescer = Coalescer::new(shared.writes.clone(), shared.coalescer_metrics.clone());
        Ok(RepoActorState {
            shared,
            engine,
            authority,
            coalescer,
            flush_scheduled: false,
            flush_number: 0,
            gather: None,
            gathering: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RepoMsg>,
        message: RepoMsg,
        state: &mut RepoActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RepoMsg::Write(op, reply, sent, forwarded) => {
                let catalog = state.engine.catalog();
                state.coalescer.push_from(op, reply, &catalog, forwarded);
                state.count_queued();
                if let Some(gather) = state.gather.as_mut() {
                    gather.arrived(sent);
                }
                schedule_flush(&myself, state);
            }
            RepoMsg::Flush(number) => {
                if !state.flush_scheduled || number != state.flush_number {
                    return Ok(()); // superseded by an earlier flush
                }
                state.flush_scheduled = false;
                state.gathering = false;
                state.gather = None;
                if let Some(unit) = state.coalescer.next_unit() {
                    state.count_queued();
                    let (writes, started) = (unit.len(), tokio::time::Instant::now());
                    let maintenance = Arc::clone(&state.shared.maintenance);
                    // A graph another node writes, or that placement gives to another node,
                    // is refused before any recovery check here: that node checks it.
                    let forwarded = unit.forwarded();
                    if let Ok(Some(elsewhere)) = maintenance.placed_elsewhere(forwarded).await {
                        unit.refuse(|| maintenance.refusal_for(&elsewhere).expect("elsewhere"));
                        schedule_flush(&myself, state);
                        return Ok(());
                    }
                    // Taking the writer lease over: first sweep what a dead writer left, so
                    // that no write lands on top of residue the sweep would roll back.
                    let check = maintenance.must_check_before_writing();
                    let clean = if check {
                        match maintenance.recover_before_writing(&state.engine).await {
                            Ok(clean) => clean,
                            Err(err) => {
                                unit.refuse(|| RepoError::unavailable(err.clone()));
                                schedule_flush(&myself, state);
                                return Ok(());
                            }
                        }
                    } else {
                        true
                    };
                    // Shared with other publishes; a recovery sweep holds it exclusively.
                    let _gate = maintenance.sweep_exclusion.read().await;
                    // Placement was asked above: only the lease itself now.
                    match maintenance.writer.ensure().await {
                        Ok(Held::Ours(_)) if !clean => {
                            // The other writer's lease lapsed between the check and now: check
                            // again (next time, under our lease) before writing anything.
                            unit.refuse(|| {
                                RepoError::unavailable(
                                    "the graph's previous writer just let its lease lapse; nothing was written, retry",
                                )
                            });
                        }
                        Ok(Held::Ours(epoch)) => {
                            if check {
                                maintenance.checked_before_writing(epoch);
                            }
                            let bytes = unit.bytes() as u64;
                            let _exclusive = match unit {
                                coalescer::Unit::Alone(_) => {
                                    Some(maintenance.optimize_exclusion.lock().await)
                                }
                                coalescer::Unit::Batch(_) => None,
                            };
                            // Every publish stops at the lease's self-fencing deadline.
                            let mut fence = maintenance.writer.fence(epoch);
                            let cache = &maintenance.cache;
                            let seen = unit.seen_by_the_cache();
                            let publish = coalescer::execute(
                                &state.engine,
                                unit,
                                &state.shared.coalescer_metrics,
                                &mut fence,
                            );
                            let schema_changed = if seen {
                                cache.scope(publish).await
                            } else {
                                cache.mutation(publish).await
                            };
                            maintenance.published(bytes);
                            if schema_changed {
                                let _ = myself.cast(RepoMsg::BuildIndexes);
                            }
                            state.gather = coalescer::Gather::after_publish(
                                writes,
                                state.coalescer.len(),
                                state.shared.writes.max_batch_writes,
                                started.elapsed(),
                                tokio::time::Instant::now(),
                            );
                        }
                        Ok(other) => {
                            let elsewhere = ForWrite::Held(other);
                            unit.refuse(|| maintenance.refusal_for(&elsewhere).expect("elsewhere"));
                        }
                        Err(err) => {
                            unit.refuse(|| {
                                RepoError::unavailable(format!(
                                    "the graph's writer lease could not be checked ({err}); nothing was written, retry"
                                ))
                            });
                        }
                    }
                }
                schedule_flush(&myself, state);
            }
            RepoMsg::BuildIndexes => {
                let Some(_in_use) = state.shared.activity.enter() else {
                    return Ok(()); // the repo is closing: the next compaction builds these indexes
                };
                // Index builds write recovery sidecars: no sweep may run meanwhile. They commit,
                // so they run under the writer lease and stop at its deadline.
                let maintenance = &state.shared.maintenance;
                let _gate = maintenance.sweep_exclusion.read().await;
                let Ok(Held::Ours(epoch)) = maintenance.writer.ensure().await else {
                    return Ok(()); // another node writes the graph: its compaction builds them
                };
                let built = maintenance
                    .writer
                    .fence(epoch)
                    .run(maintenance.cache.mutation(state.engine.ensure_indices()))
                    .await;
                match built {
                    Some(Ok(built)) => {
                        info!(repo = %state.shared.key, indexes = built.len(), "built indexes after schema apply")
                    }
                    Some(Err(err)) => {
                        warn!(repo = %state.shared.key, error = %err, "index build after schema apply failed")
                    }
                    None => {
                        warn!(repo = %state.shared.key, "index build after schema apply outlived the writer lease and was stopped")
                    }
                }
            }
            RepoMsg::ClaimAuthority => {
                let Err(waited) = state.authority else {
                    return Ok(());
                };
                let Some(_in_use) = state.shared.activity.enter() else {
                    return Ok(()); // the repo is closing
                };
                match open_as_authority(&state.shared).await {
                    Some(engine) => {
                        info!(repo = %state.shared.key, "reopened as the cache authority");
                        state.engine = Arc::new(engine);
                        state.authority = Ok(());
                        state
                            .shared
                            .life
                            .send_replace(Life::Ready(Arc::new(Incarnation {
                                engine: Arc::clone(&state.engine),
                                mailbox: myself,
                            })));
                    }
                    None => {
                        let wait = (waited * 2).min(CLAIM_RETRY_MAX);
                        state.authority = Err(wait);
                        myself.send_after(wait, || RepoMsg::ClaimAuthority);
                    }
                }
            }
            #[cfg(feature = "test-seams")]
            RepoMsg::Crash => panic!(
                "fault injected: repo actor for {} crashed",
                state.shared.key
            ),
        }
        Ok(())
    }
}

/// Opens the repo's engine handle as its cache authority, if this node can claim it (see
/// `maintenance::authority`); `None` otherwise, and the caller opens it read-only.
///
/// The authority's handle comes from the engine's read-write open, the only one that takes
/// the caching storage adapter; its recovery sweep has nothing to do, since the claim found no
/// sidecar and holds the leases every writer needs. A read-only handle is opened without the
/// engine's open-time sweep: several nodes may open one repo, and only the holder of its
/// recovery lease sweeps (the repo's `RecoveryActor`). Either handle writes, under the writer
/// lease, and reads immutable objects through the cache.
async fn open_as_authority(shared: &RepoShared) -> Option<Omnigraph> {
    let maintenance = &shared.maintenance;
    let cache = &maintenance.cache;
    // Only while nothing of this process writes the repo: no publish, compaction, index build
    // or sweep may run between the sidecar check and the open's own sweep (a retried claim
    // meets them; at activation nothing runs yet). Busy: the claim is tried again later.
    let Ok(_quiet) = maintenance.sweep_exclusion.try_write() else {
        debug!(repo = %shared.key, "repo busy: the cache authority is claimed later");
        return None;
    };
    cache.set_authority(None);
    let started = tokio::time::Instant::now();
    let authority = maintenance.claim_authority().await?;
    let claimed = started.elapsed();
    let storage = match storage_for_uri(&shared.uri) {
        Ok(storage) => CachingStorage::new(storage, Arc::clone(cache)),
        Err(err) => {
            warn!(repo = %shared.key, error = %err, "no storage adapter for the cache authority");
            maintenance.give_up_authority().await;
            return None;
        }
    };
    // The open's own reads are kept (and prefetched, all at once, with the check for
    // sidecars that completes the claim): the leases are held. Whatever was kept is dropped
    // if the check says no.
    cache.set_authority(Some(authority));
    let (clear, ()) = tokio::join!(
        maintenance.no_recovery_pending(),
        prefetch::before_open(&storage, cache, &shared.uri)
    );
    if !clear {
        debug!(repo = %shared.key, "recovery pending: not the cache authority");
        cache.set_authority(None);
        maintenance.give_up_authority().await;
        return None;
    }
    let prefetched = started.elapsed();
    match cache
        .scope(Omnigraph::open_with_storage(&shared.uri, Arc::new(storage)))
        .await
    {
        Ok(engine) => {
            debug!(
                repo = %shared.key,
                claim_ms = claimed.as_millis() as u64,
                prefetch_ms = (prefetched - claimed).as_millis() as u64,
                open_ms = (started.elapsed() - prefetched).as_millis() as u64,
                "opened as the cache authority"
            );
            Some(engine)
        }
        Err(err) => {
            warn!(repo = %shared.key, error = %err, "opening as the cache authority failed; opening read-only");
            cache.set_authority(None);
            maintenance.give_up_authority().await;
            None
        }
    }
}

impl RepoActorState {
    /// Publishes the queue length, so maintenance defers while writes wait.
    fn count_queued(&self) {
        self.shared
            .maintenance
            .queued_writes
            .store(self.coalescer.len(), Ordering::Relaxed);
    }
}

/// Arms one `Flush` if writes are waiting and none is armed. With `max_wait` it waits that
/// long first, to gather more writes; without, it lands behind the writes already queued,
/// unless the last publish asked the next to wait for the writers it answered. While that
/// wait is armed, a write that ends it publishes at once.
fn schedule_flush(myself: &ActorRef<RepoMsg>, state: &mut RepoActorState) {
    if state.coalescer.is_empty() {
        return;
    }
    let now = tokio::time::Instant::now();
    let gather = state
        .gather
        .and_then(|gather| gather.wait(state.coalescer.len(), now));
    if state.flush_scheduled {
        if state.gathering && gather.is_none() {
            // The writers the last publish answered are back: publish now.
            flush_now(myself, state);
        }
        return;
    }
    let configured = state.shared.writes.max_wait;
    match (configured.is_zero(), gather) {
        (false, _) => {
            let number = arm(state);
            myself.send_after(configured, move || RepoMsg::Flush(number));
        }
        (true, Some(wait)) => {
            let number = arm(state);
            state.gathering = true;
            myself.send_after(wait, move || RepoMsg::Flush(number));
        }
        (true, None) => flush_now(myself, state),
    }
}

/// Sends a `Flush` that lands behind the writes already queued; any armed one is stale.
fn flush_now(myself: &ActorRef<RepoMsg>, state: &mut RepoActorState) {
    let number = arm(state);
    let _ = myself.cast(RepoMsg::Flush(number));
}

/// Marks a new flush armed, and returns its number.
fn arm(state: &mut RepoActorState) -> u64 {
    state.flush_scheduled = true;
    state.gathering = false;
    state.flush_number += 1;
    state.flush_number
}
