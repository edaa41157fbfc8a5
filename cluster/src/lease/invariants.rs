//! The protocol's invariants, checked on every record before it is written. A violation is a
//! defect in this crate, so the write is refused instead of sent.
//!
//! - An acquisition starts epoch 1 over nothing, or the next epoch over the record it read:
//!   epochs only grow, and never repeat (a repeated epoch would let two holders fence alike).
//! - A renewal or release keeps the holder and the epoch it holds, and never shortens the
//!   lease's start; a renewal moves the expiry forward, a release ends it now.
//! - A live record expires after it was last written; its start is not after its last write.

use super::record::LeaseRecord;

/// Which write of the protocol a record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    Acquire,
    Renew,
    Release,
}

/// Checks `next` against the record it replaces (`None`: it creates the object).
pub(super) fn check(
    transition: Transition,
    previous: Option<&LeaseRecord>,
    next: &LeaseRecord,
) -> Result<(), &'static str> {
    if next.acquired_at_ms > next.renewed_at_ms {
        return Err("a lease cannot start after it was last written");
    }
    if !next.released && next.expires_at_ms <= next.renewed_at_ms {
        return Err("a live lease must expire after it was written");
    }
    match (transition, previous) {
        (Transition::Acquire, None) if next.epoch != 1 => Err("a new lease starts at epoch 1"),
        (Transition::Acquire, Some(previous)) if next.epoch != previous.epoch + 1 => {
            Err("a takeover moves the epoch on by exactly one")
        }
        (Transition::Acquire, _) if next.released => Err("an acquisition is not a release"),
        (Transition::Acquire, _) => Ok(()),
        (_, None) => Err("only an acquisition creates a lease"),
        (_, Some(previous)) if previous.holder != next.holder || previous.epoch != next.epoch => {
            Err("only the holder renews or releases, in the epoch it holds")
        }
        (_, Some(previous)) if next.acquired_at_ms != previous.acquired_at_ms => {
            Err("a renewal or release keeps the epoch's start")
        }
        (Transition::Renew, Some(previous)) if next.expires_at_ms < previous.expires_at_ms => {
            Err("a renewal never moves the expiry back")
        }
        (Transition::Renew, _) if next.released => Err("a renewal is not a release"),
        (Transition::Release, _) if !next.released => Err("a release marks the lease released"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, epoch: u64, renewed: u64, expires: u64) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            epoch,
            expires_at_ms: expires,
            acquired_at_ms: 100,
            renewed_at_ms: renewed,
            released: false,
            nonce: "n".into(),
            process: None,
            address: None,
            node: None,
        }
    }

    #[test]
    fn the_protocol_writes_pass() {
        let first = record("a", 1, 100, 200);
        assert_eq!(check(Transition::Acquire, None, &first), Ok(()));
        let renewed = record("a", 1, 150, 250);
        assert_eq!(check(Transition::Renew, Some(&first), &renewed), Ok(()));
        let released = LeaseRecord {
            released: true,
            expires_at_ms: 160,
            renewed_at_ms: 160,
            ..renewed.clone()
        };
        assert_eq!(
            check(Transition::Release, Some(&renewed), &released),
            Ok(())
        );
        let taken = LeaseRecord {
            acquired_at_ms: 170,
            ..record("b", 2, 170, 270)
        };
        assert_eq!(check(Transition::Acquire, Some(&released), &taken), Ok(()));
    }

    #[test]
    fn every_broken_write_is_refused() {
        let held = record("a", 3, 150, 250);
        let refused = [
            (Transition::Acquire, None, record("a", 2, 100, 200)),
            (Transition::Acquire, Some(&held), record("b", 3, 160, 260)),
            (Transition::Acquire, Some(&held), record("b", 5, 160, 260)),
            (Transition::Renew, None, record("a", 1, 100, 200)),
            (Transition::Renew, Some(&held), record("b", 3, 160, 260)),
            (Transition::Renew, Some(&held), record("a", 4, 160, 260)),
            (Transition::Renew, Some(&held), record("a", 3, 160, 240)),
            (Transition::Renew, Some(&held), record("a", 3, 160, 160)),
            (Transition::Release, Some(&held), record("a", 3, 160, 260)),
            (
                Transition::Renew,
                Some(&held),
                LeaseRecord {
                    acquired_at_ms: 120,
                    ..record("a", 3, 160, 260)
                },
            ),
        ];
        for (transition, previous, next) in refused {
            assert!(
                check(transition, previous, &next).is_err(),
                "{transition:?} over {previous:?} to {next:?}"
            );
        }
    }
}
