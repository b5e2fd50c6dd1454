//! [`KvScope`]: where a plugin's key-value data lives.
//!
//! Each plugin sees its own key-value store, split into namespaces the plugin names. Scopes
//! never overlap: a key stored under one (plugin, namespace) pair cannot be read, listed or
//! overwritten through another, whatever characters the names contain.

/// One plugin's namespace in the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KvScope {
    /// The plugin's name.
    pub plugin: String,
    /// The namespace the plugin chose.
    pub namespace: String,
}

impl KvScope {
    /// The scope of `namespace` in `plugin`'s store.
    pub fn new(plugin: impl Into<String>, namespace: impl Into<String>) -> Self {
        KvScope {
            plugin: plugin.into(),
            namespace: namespace.into(),
        }
    }
}
