//! [`PutDefinition`]: what storing a workflow definition did.
//!
//! Definitions are stored as the JSON document that was submitted (after YAML, if any, was
//! read into JSON), keyed by workflow name and version. A version never changes once stored.

/// What [`crate::Store::put_definition`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutDefinition {
    /// The version was stored.
    Created,
    /// The version was already stored with an equal document; nothing changed.
    Unchanged,
    /// The version was already stored with another document; nothing changed.
    Conflict,
}
