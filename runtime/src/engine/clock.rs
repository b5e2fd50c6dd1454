//! The engine's clock: wall-clock milliseconds, as the domain records time.

use weft_domain::Timestamp;

/// The current time.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_ms(ms)
}

/// A sample in `[0, 1)` for retry jitter.
pub fn jitter_sample() -> f64 {
    let mut bytes = [0u8; 8];
    // Without randomness the retry simply gets no jitter.
    _ = getrandom::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Ten random bytes for a job id.
pub fn id_randomness() -> [u8; 10] {
    let mut bytes = [0u8; 10];
    _ = getrandom::fill(&mut bytes);
    bytes
}
