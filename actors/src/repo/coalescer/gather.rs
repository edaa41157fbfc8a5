//! How long the publish after a batch waits for the writers that batch answered.
//!
//! Group commit without any delay splits concurrent writers into cohorts: while one publish
//! is in flight, the writers it holds are waiting for it, and the writers the previous one
//! answered queue up for the next. Each publish then carries about half of the writers, and
//! each writer waits for two publishes. Measured on S3-like storage (publishes of about 1.1 s,
//! `bench --writes`): 64 clients made 25.7 inserts/s with 32 writes per publish; with the
//! next publish held until the answered writers were back, 46.9/s with 64.
//!
//! So after a publish of more than one write, the next one waits until as many writes are
//! queued as were queued or answered when it ended (the answered writers are back), but never
//! longer than half the publish's own duration, nor [`MAX_GATHER`]: a lone writer
//! never waits, and an open stream of independent writers pays at most that share.

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait for writers to come back.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(50);

/// The wait armed by a publish that ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gather {
    /// Publish once this many writes are queued.
    pub(crate) writes: usize,
    /// ... or at this instant, whichever comes first.
    pub(crate) until: Instant,
}

impl Gather {
    /// After a publish of `published` writes that took `took` and ended at `ended`, with
    /// `queued` writes waiting and at most `max_batch` taken by one publish.
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
        })
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
        // 32 answered, 32 already queued (the other cohort): wait for all 64.
        let gather = Gather::after_publish(32, 32, 256, Duration::from_secs(1), ended).unwrap();
        assert_eq!(gather.writes, 64);
        assert!(gather.wait(40, ended).is_some());
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
