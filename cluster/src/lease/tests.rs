//! The protocol end to end: on the local backend (real files and locks) and on the memory
//! backend under tokio's paused clock, where expiry and self-fencing are exact.

use std::sync::Arc;
use std::time::Duration;

use omnigraph_cloud_config::{GraphId, TenantId};

use super::*;
use crate::{Clock, RepoKey};

pub(crate) fn key() -> RepoKey {
    RepoKey::new(TenantId::new("acme").unwrap(), GraphId::new("g").unwrap())
}

pub(crate) fn timing(ttl_ms: u64) -> LeaseTiming {
    LeaseTiming {
        ttl: Duration::from_millis(ttl_ms),
        safety_margin: Duration::from_millis(ttl_ms / 5),
    }
}

fn local(dir: &std::path::Path, ttl_ms: u64) -> LeaseStore {
    LeaseStore::new(
        Arc::new(LocalBackend::new(dir.to_path_buf())),
        Arc::new(()),
        timing(ttl_ms),
    )
}

/// A store in memory on a clock that follows tokio's (paused) time.
fn in_memory(ttl_ms: u64) -> LeaseStore {
    LeaseStore::new(Arc::new(MemoryBackend::new()), Arc::new(()), timing(ttl_ms))
        .with_clock(Clock::following_tokio())
}

pub(crate) async fn acquired(store: &LeaseStore, kind: LeaseKind, holder: &str) -> Lease {
    match store.acquire(&key(), kind, holder).await.unwrap() {
        Acquired::Acquired(lease) => lease,
        Acquired::Held(record) => panic!("{holder} must win; held by {record:?}"),
    }
}

#[tokio::test]
async fn acquire_is_exclusive_until_release_then_the_epoch_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path(), 60_000);
    let mut lease = acquired(&store, LeaseKind::Writer, "a").await;
    assert_eq!(lease.epoch(), 1);
    let Acquired::Held(held) = store.acquire(&key(), LeaseKind::Writer, "b").await.unwrap() else {
        panic!("a live lease must not be taken over");
    };
    assert_eq!((held.holder.as_str(), held.epoch), ("a", 1));
    store.renew(&mut lease).await.unwrap();
    store.validate(&lease).await.unwrap();
    let stale = lease.clone();
    store.release(lease).await.unwrap();
    let taken = acquired(&store, LeaseKind::Writer, "b").await;
    assert_eq!(taken.epoch(), 2);
    assert!(matches!(
        store.validate(&stale).await,
        Err(LeaseError::Lost(LeaseLost::TakenOver { ref holder, epoch: 2 })) if holder == "b"
    ));
    let mut stale = stale;
    assert!(matches!(
        store.renew(&mut stale).await,
        Err(LeaseError::Lost(LeaseLost::TakenOver { .. }))
    ));
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0].key, listed[0].kind),
        (&key(), LeaseKind::Writer)
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_holder_knows() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path(), 50);
    let mut lease = acquired(&store, LeaseKind::Compaction, "a").await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(!lease.is_live(), "the holder fences itself");
    let taken = acquired(&store, LeaseKind::Compaction, "b").await;
    assert_eq!(taken.epoch(), 2);
    assert!(matches!(
        store.renew(&mut lease).await,
        Err(LeaseError::Lost(LeaseLost::Expired))
    ));
}

/// Self-fencing on exact time: the holder stops acting `safety_margin` before the expiry it
/// wrote, and nobody else may take over before that expiry.
#[tokio::test(start_paused = true)]
async fn the_holder_stops_before_anyone_else_may_start() {
    let store = in_memory(10_000); // acts for 8 s, expires at 10 s
    let lease = acquired(&store, LeaseKind::Writer, "a").await;
    tokio::time::advance(Duration::from_millis(7_999)).await;
    assert!(lease.is_live());
    store.validate(&lease).await.unwrap();
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!lease.is_live(), "past its deadline the holder may not act");
    assert!(matches!(
        store.validate(&lease).await,
        Err(LeaseError::Lost(LeaseLost::Expired))
    ));
    // Between the holder's deadline and the recorded expiry, nobody may start.
    let Acquired::Held(record) = store.acquire(&key(), LeaseKind::Writer, "b").await.unwrap()
    else {
        panic!("taken over before the recorded expiry");
    };
    assert_eq!(record.holder, "a");
    tokio::time::advance(Duration::from_millis(2_001)).await;
    assert_eq!(acquired(&store, LeaseKind::Writer, "b").await.epoch(), 2);
}

/// Renewing every `renew_every` keeps a lease forever; each renewal moves both the recorded
/// expiry and the holder's deadline.
#[tokio::test(start_paused = true)]
async fn renewals_keep_the_lease_and_its_epoch() {
    let store = in_memory(9_000);
    let mut lease = acquired(&store, LeaseKind::Recovery, "a").await;
    let every = store.timing().renew_every();
    for _ in 0..20 {
        tokio::time::advance(every).await;
        let before = lease.record.expires_at_ms;
        store.renew(&mut lease).await.unwrap();
        assert!(lease.record.expires_at_ms > before);
        assert!(lease.is_live());
    }
    assert_eq!(lease.epoch(), 1);
    let Acquired::Held(record) = store
        .acquire(&key(), LeaseKind::Recovery, "b")
        .await
        .unwrap()
    else {
        panic!("a renewed lease is never free");
    };
    assert_eq!(record.epoch, 1);
}

/// Of many racers for one free lease exactly one wins, and every loser is told who did.
#[tokio::test(start_paused = true)]
async fn one_of_many_racers_wins() {
    let store = in_memory(10_000);
    let racers = (0..16).map(|i| {
        let store = store.clone();
        async move {
            store
                .acquire(&key(), LeaseKind::Writer, &format!("n{i}"))
                .await
                .unwrap()
        }
    });
    let outcomes = futures::future::join_all(racers).await;
    let winners: Vec<&Lease> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Acquired::Acquired(lease) => Some(lease),
            Acquired::Held(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1);
    for outcome in &outcomes {
        if let Acquired::Held(record) = outcome {
            assert_eq!(record.holder, winners[0].record.holder);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_holder_takes_back_only_the_epoch_it_lost_itself() {
    let store = in_memory(10_000);
    // A renewal that landed although its answer was lost leaves a live record of "a" at
    // epoch 1, which "a" itself no longer acts under.
    let _orphan = acquired(&store, LeaseKind::Writer, "a").await;
    let held = |acquired: Acquired| matches!(acquired, Acquired::Held(_));
    assert!(held(
        store.acquire(&key(), LeaseKind::Writer, "a").await.unwrap()
    ));
    let writer = LeaseKind::Writer;
    assert!(held(
        store.reacquire(&key(), writer, "b", Some(1)).await.unwrap()
    ));
    assert!(held(
        store.reacquire(&key(), writer, "a", Some(0)).await.unwrap()
    ));
    let Acquired::Acquired(taken) = store.reacquire(&key(), writer, "a", Some(1)).await.unwrap()
    else {
        panic!("the holder that lost epoch 1 takes its own record back");
    };
    assert_eq!(taken.epoch(), 2);
}

/// The holder's address is what other nodes forward writes to: it is written with the lease,
/// kept by renewals and replaced by the next holder's.
#[tokio::test]
async fn the_lease_names_its_holders_address() {
    let dir = tempfile::tempdir().unwrap();
    let a = local(dir.path(), 60_000).with_address("10.0.0.1:8080");
    let b = local(dir.path(), 60_000).with_address("10.0.0.2:8080");
    let mut lease = acquired(&a, LeaseKind::Writer, "a").await;
    a.renew(&mut lease).await.unwrap();
    let Acquired::Held(held) = b.acquire(&key(), LeaseKind::Writer, "b").await.unwrap() else {
        panic!("a live lease must not be taken over");
    };
    assert_eq!(held.address.as_deref(), Some("10.0.0.1:8080"));
    a.release(lease).await.unwrap();
    acquired(&b, LeaseKind::Writer, "b").await;
    let record = a.get(&key(), LeaseKind::Writer).await.unwrap().unwrap();
    assert_eq!(record.address.as_deref(), Some("10.0.0.2:8080"));
    // A store without an address writes none (and old records without one still parse).
    let plain = local(tempfile::tempdir().unwrap().path(), 60_000);
    assert_eq!(plain.address(), None);
}
