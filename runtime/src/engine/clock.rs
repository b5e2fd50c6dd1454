//! The engine's clock: wall-clock milliseconds, as the domain records time.

use std::cell::Cell;

use weft_domain::Timestamp;

/// The current time.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_ms(ms)
}

/// A sample in `[0, 1)` for retry jitter, drawn for every result recorded.
///
/// Jitter needs spread, not secrecy: the samples come from a generator per thread (SplitMix64)
/// that the OS's randomness seeds once. Asking the OS for every sample took a system call per
/// result, about 2% of the engine's CPU under load.
pub fn jitter_sample() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(u64::from_le_bytes(random_bytes()));
    }
    let bits = STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        mix(next)
    });
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's output function: spreads each bit of `z` over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Ten random bytes for a job id.
pub fn id_randomness() -> [u8; 10] {
    random_bytes()
}

/// `N` bytes of the OS's randomness; zeros when it has none (a job id then rests on its time
/// and sequence, and retries get the same jitter).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    _ = getrandom::fill(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_samples_spread_over_the_unit_interval() {
        let samples: Vec<f64> = (0..10_000).map(|_| jitter_sample()).collect();
        assert!(samples.iter().all(|s| (0.0..1.0).contains(s)));
        // Ten equal bins each get close to a tenth: a stuck or badly mixed generator does not.
        let mut bins = [0usize; 10];
        for s in &samples {
            bins[(s * 10.0) as usize] += 1;
        }
        for (bin, count) in bins.iter().enumerate() {
            assert!(
                (800..1200).contains(count),
                "bin {bin} holds {count} of 10,000 samples"
            );
        }
    }

    #[test]
    fn threads_draw_different_jitter() {
        let here: Vec<f64> = (0..4).map(|_| jitter_sample()).collect();
        let there = std::thread::spawn(|| (0..4).map(|_| jitter_sample()).collect::<Vec<f64>>())
            .join()
            .unwrap();
        assert_ne!(here, there, "each thread's generator has its own seed");
    }
}
