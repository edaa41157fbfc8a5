//! How long the publish after a batch waits for the writers that batch answered.
//!
//! Group commit without any delay splits concurrent writers into cohorts: while one publish
//! is in flight, the writers it holds are waiting for it, and the writers the previous one
//! answered queue up for the next. Each publish then carries about half of the writers, and
//! each writer waits for two publishes. Measured on S3-like storage (publishes of about 1.1 s,
//! `bench --writes`): 64 clients made 25.7 inserts/s with 32 writes per publish; with the
//! next publish held until the answered writers were back, 46.9/s with 64.
//!
//! So after a publish of more than one write, the next one waits until the writers it
//! answered are back: until the queue holds, besides the writes that were already waiting
//! when it ended (left over, or sent while it ran and still in the mailbox), as many writes
//! as it answered. It never waits longer than half the publish's own duration, nor
//! [`MAX_GATHER`]: a lone writer never waits, and an open stream of independent writers pays
//! at most that share.

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait for writers to come back.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(50);

/// The wait a publish that ended asks of the next one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gather {
    /// Publish once this many writes are queued...
    writes: usize,
    /// ... or at this instant, whichever comes first.
    until: Instant,
    /// When the publish ended: a write sent before was waiting already.
    ended: Instant,
    /// The most one publish takes.
    max_batch: usize,
}

impl Gather {
    /// After a publish of `published` writes that took `took` and ended at `ended`, with
    /// `queued` writes left in the queue and at most `max_batch` taken by one publish.
    pub(crate) fn after_publish(
        published: usize,
        queued: usize,
        max_batch: usize,
        took: Duration,
        ended: Instant,
    ) -> Option<Gather> {
        if published < 2 {
            return None;
        }
        Some(Gather {
            writes: (published + queued).min(max_batch),
            until: ended + (took / 2).min(MAX_GATHER),
            ended,
            max_batch,
        })
    }

    /// A write sent at `sent` reached the queue: one sent before the publish ended was
    /// waiting already, and is not one of the writers coming back.
    pub(crate) fn arrived(&mut self, sent: Instant) {
        if sent <= self.ended {
            self.writes = (self.writes + 1).min(self.max_batch);
        }
    }

    /// How long a flush armed at `now` with `queued` writes waiting should wait: `None` to
    /// publish at once.
    pub(crate) fn wait(&self, queued: usize, now: Instant) -> Option<Duration> {
        (queued < self.writes && now < self.until).then(|| self.until - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_writer_never_waits() {
        let ended = Instant::now();
        assert_eq!(
            Gather::after_publish(1, 0, 256, Duration::from_secs(1), ended),
            None
        );
    }

    #[test]
    fn the_wait_is_half_the_publish_and_never_beyond_the_cap() {
        let ended = Instant::now();
        let fast = Gather::after_publish(8, 0, 256, Duration::from_millis(40), ended).unwrap();
        assert_eq!(fast.wait(0, ended), Some(Duration::from_millis(20)));
        let slow = Gather::after_publish(8, 0, 256, Duration::from_secs(1), ended).unwrap();
        assert_eq!(slow.wait(0, ended), Some(MAX_GATHER));
    }

    #[test]
    fn it_ends_when_the_answered_writers_are_back_or_the_time_is_up() {
        let ended = Instant::now();
        // 32 answered; the other 32 were sent while the publish ran (still in the mailbox).
        let mut gather = Gather::after_publish(32, 0, 256, Duration::from_secs(1), ended).unwrap();
        let during = ended - Duration::from_millis(5);
        for _ in 0..32 {
            gather.arrived(during);
        }
        assert_eq!(
            gather.writes, 64,
            "the waiting cohort does not end the wait"
        );
        assert!(gather.wait(40, ended).is_some());
        // The answered writers come back after the end: they count as the queue grows.
        gather.arrived(ended + Duration::from_millis(1));
        assert_eq!(gather.writes, 64);
        assert_eq!(gather.wait(64, ended), None);
        assert_eq!(gather.wait(40, ended + MAX_GATHER), None);
    }

    #[test]
    fn it_never_waits_for_more_than_one_publish_can_take() {
        let ended = Instant::now();
        let gather = Gather::after_publish(200, 100, 256, Duration::from_secs(1), ended).unwrap();
        assert_eq!(gather.writes, 256);
    }
}
