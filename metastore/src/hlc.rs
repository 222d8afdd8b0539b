//! A hybrid logical clock: wall-clock milliseconds in the high 48 bits, a logical counter in the
//! low 16. Every log record is stamped with one; stamps never go backwards on a shard, across
//! restarts too (the clock is seeded from the last stamp in the log), even if the wall clock
//! does.

use std::time::{SystemTime, UNIX_EPOCH};

const LOGICAL_BITS: u32 = 16;

/// The clock of one shard. Owned by the thread that stamps records, so it needs no locking.
#[derive(Debug)]
pub struct Hlc {
    last: u64,
}

impl Hlc {
    /// A clock whose next stamp is greater than `floor`.
    pub fn new(floor: u64) -> Self {
        Self { last: floor }
    }

    /// A stamp greater than every stamp this clock returned before.
    pub fn now(&mut self) -> u64 {
        let physical = wall_ms() << LOGICAL_BITS;
        self.last = physical.max(self.last + 1);
        self.last
    }

    /// Moves the clock past a stamp seen elsewhere.
    pub fn observe(&mut self, stamp: u64) {
        self.last = self.last.max(stamp);
    }

    /// The wall-clock milliseconds of a stamp.
    pub fn physical_ms(stamp: u64) -> u64 {
        stamp >> LOGICAL_BITS
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_increase_and_track_the_wall_clock() {
        let mut clock = Hlc::new(0);
        let a = clock.now();
        let b = clock.now();
        assert!(b > a);
        let ms = Hlc::physical_ms(b);
        assert!(ms.abs_diff(wall_ms()) < 5_000);
    }

    #[test]
    fn a_floor_from_the_future_keeps_stamps_monotonic() {
        let future = (wall_ms() + 60_000) << LOGICAL_BITS;
        let mut clock = Hlc::new(future);
        assert_eq!(clock.now(), future + 1);
        clock.observe(future + 100);
        assert_eq!(clock.now(), future + 101);
    }
}
