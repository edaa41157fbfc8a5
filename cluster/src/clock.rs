//! The one place that reads the time. Everything that decides by the clock (lease expiry and
//! deadlines, maintenance schedules, token lifetimes) asks a [`Clock`], so a test can run it on
//! tokio's paused time instead of waiting; `clippy.toml` refuses direct reads elsewhere.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Monotonic instants (tokio's, which paused-time tests move) and wall-clock milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// `None`: the system's wall clock. `Some`: wall time that advances with tokio's clock from
    /// this anchor, so that pausing or advancing tokio's time moves it too.
    anchor: Option<(u64, Instant)>,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl Clock {
    /// The real clocks.
    pub fn system() -> Clock {
        Clock { anchor: None }
    }

    /// A clock whose wall time is tokio's clock offset to the current wall time: under
    /// `tokio::time::pause` both move only when the test advances them.
    pub fn following_tokio() -> Clock {
        Clock {
            anchor: Some((system_ms(), Instant::now())),
        }
    }

    /// A clock whose wall time starts at `wall_ms` and advances with tokio's clock: a
    /// simulation's nodes each get one, with their own skew, so that a seed replays exactly.
    pub fn following_tokio_from(wall_ms: u64) -> Clock {
        Clock {
            anchor: Some((wall_ms, Instant::now())),
        }
    }

    /// Now, on the monotonic clock.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Now, in wall-clock milliseconds since the Unix epoch (what lease records hold, since
    /// other machines must read them).
    pub fn wall_ms(&self) -> u64 {
        match self.anchor {
            None => system_ms(),
            Some((anchor_ms, anchor)) => {
                anchor_ms + Instant::now().saturating_duration_since(anchor).as_millis() as u64
            }
        }
    }
}

#[allow(clippy::disallowed_methods)] // the one read of the system's wall clock
fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_clock_following_tokio_moves_only_with_tokio_time() {
        let clock = Clock::following_tokio();
        let (wall, now) = (clock.wall_ms(), clock.now());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(clock.wall_ms() - wall, 30_000);
        assert_eq!(clock.now() - now, Duration::from_secs(30));
    }
}
