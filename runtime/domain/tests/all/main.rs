//! Integration tests of `weft-domain`, one module per topic.

mod definition_cases;
