//! Integration tests of `weft-store`, one module per topic. The conformance suite runs
//! against every backend; `sled_store` covers what only the on-disk store promises.

mod conformance;
mod fixtures;
mod sled_store;
