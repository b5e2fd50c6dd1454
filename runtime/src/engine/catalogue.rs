//! Plugins and workflow definitions as the engine sees them: uploads validated by the
//! sandbox and recorded in the store, approvals with capability grants, definitions
//! validated against the approved plugins, and caches of what was loaded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use weft_domain::{
    CatalogueEntry, PluginDigest, Problems, ResolvedPlugin, SourceFormat, StepId,
    WorkflowDefinition, WorkflowName,
};
use weft_sandbox::{Grants, HostPattern, LoadError, Plugin, Sandbox, StepLimitsOverride};
use weft_store::{
    PluginGrants, PluginRecord, PluginStatus, PutDefinition, PutPlugin, RequestedCapabilities,
    Store, StoreError,
};

use super::{StartError, clock, lock};

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component was refused.
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// Another component already has this name and version.
    #[error("plugin {name} {version} already exists with digest {existing}")]
    Conflict {
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
        /// The digest stored under that name and version.
        existing: PluginDigest,
    },
    /// No such plugin.
    #[error("no plugin {0}")]
    NotFound(String),
    /// A grant is malformed.
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The definition has problems, each with its path.
    #[error("the definition has {} problem(s)", .0.0.len())]
    Invalid(Problems),
    /// This name and version exist with another content: versions are immutable.
    #[error("workflow {name} version {version} already exists with other content")]
    Conflict {
        /// Workflow name.
        name: WorkflowName,
        /// Version.
        version: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What applying a definition did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Workflow name.
    pub name: WorkflowName,
    /// Version.
    pub version: u32,
    /// False when the same version with the same content was already there.
    pub created: bool,
}

/// Why a definition could not be found.
#[derive(Debug)]
pub(super) enum DefinitionLookup {
    Missing,
    Unreadable(String),
    Store(StoreError),
}

impl std::fmt::Display for DefinitionLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DefinitionLookup::Missing => f.write_str("definition not found"),
            DefinitionLookup::Unreadable(e) => write!(f, "definition unreadable: {e}"),
            DefinitionLookup::Store(e) => write!(f, "{e}"),
        }
    }
}

/// A loaded plugin and the grants it runs with.
#[derive(Debug)]
pub(super) struct Runnable {
    pub plugin: Plugin,
    pub grants: Grants,
}

#[derive(Debug)]
pub(super) struct Catalogue {
    store: Arc<dyn Store>,
    sandbox: Sandbox,
    definitions: Mutex<HashMap<(WorkflowName, u32), Arc<WorkflowDefinition>>>,
    /// The latest version of each workflow a job was started from; dropped when a version
    /// of that workflow is applied.
    latest: Mutex<HashMap<WorkflowName, u32>>,
    /// The approved plugins; dropped when a plugin is added, approved or disabled.
    approved: Mutex<Option<Arc<Vec<CatalogueEntry>>>>,
    /// Plugins loaded for running, by digest. Every attempt looks its plugin up here, so the
    /// lock is never held across an await: a lock that tasks wait for in turn (as an async
    /// mutex hands itself over) made every lookup wait for each task before it to be
    /// scheduled, and under load steps queued behind one another for tens of milliseconds.
    runnable: Mutex<HashMap<PluginDigest, Arc<Runnable>>>,
    /// Held while a plugin is loaded into `runnable`, or dropped from it: a plugin is loaded
    /// once however many tasks miss it, and a status change cannot be undone by a load that
    /// read the plugin before it.
    loading: tokio::sync::Mutex<()>,
}

fn digest_of(plugin: &Plugin) -> PluginDigest {
    plugin
        .digest()
        .to_string()
        .parse()
        .expect("sandbox digests are valid domain digests")
}

/// The sandbox's view of stored grants.
pub(super) fn sandbox_grants(grants: &PluginGrants) -> Result<Grants, String> {
    let http_hosts = grants
        .http_hosts
        .iter()
        .map(|h| h.parse::<HostPattern>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Grants {
        http_hosts,
        kv: grants.kv,
        limits: StepLimitsOverride {
            fuel: grants.fuel,
            deadline_ms: grants.deadline_ms,
            memory_bytes: grants
                .memory_bytes
                .map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
            ..StepLimitsOverride::default()
        },
    })
}

impl Catalogue {
    pub fn new(store: Arc<dyn Store>, sandbox: Sandbox) -> Catalogue {
        Catalogue {
            store,
            sandbox,
            definitions: Mutex::default(),
            latest: Mutex::default(),
            approved: Mutex::default(),
            runnable: Mutex::default(),
            loading: tokio::sync::Mutex::default(),
        }
    }

    /// Validates and records a component; a new plugin waits for approval.
    pub async fn add_plugin(&self, bytes: &[u8]) -> Result<(PluginRecord, bool), PluginError> {
        let plugin = self.sandbox.load(bytes).await?;
        let info = plugin.info();
        let record = PluginRecord {
            format_version: weft_store::RECORD_FORMAT_VERSION,
            digest: digest_of(&plugin),
            name: info
                .name
                .parse()
                .map_err(|e| PluginError::Invalid(LoadError::BadDescription(format!("{e}"))))?,
            version: info.version.clone(),
            description: info.description.clone(),
            input_schema: info.input_schema.clone(),
            output_schema: info.output_schema.clone(),
            requested: RequestedCapabilities {
                http_hosts: info.capabilities.http_hosts.clone(),
                kv: info.capabilities.kv,
            },
            grants: PluginGrants::default(),
            status: PluginStatus::Pending,
            size_bytes: bytes.len() as u64,
            uploaded_at: clock::now(),
            approved_at: None,
        };
        match self.store.put_plugin(&record, bytes)? {
            PutPlugin::Created => {
                *lock(&self.approved) = None;
                self.store.durable().wait().await?;
                Ok((record, true))
            }
            PutPlugin::Existing(existing) => Ok((existing, false)),
            PutPlugin::Conflict { existing } => Err(PluginError::Conflict {
                name: record.name.to_string(),
                version: record.version.to_string(),
                existing,
            }),
        }
    }

    /// Approves a plugin with exactly `grants`.
    pub async fn approve(
        &self,
        digest: &PluginDigest,
        grants: PluginGrants,
    ) -> Result<PluginRecord, PluginError> {
        sandbox_grants(&grants).map_err(PluginError::InvalidGrant)?;
        self.set_status(digest, |record| {
            record.grants = grants;
            record.status = PluginStatus::Approved;
            record.approved_at = Some(clock::now());
        })
        .await
    }

    /// Disables a plugin: its steps no longer start.
    pub async fn disable(&self, digest: &PluginDigest) -> Result<PluginRecord, PluginError> {
        self.set_status(digest, |record| record.status = PluginStatus::Disabled)
            .await
    }

    async fn set_status(
        &self,
        digest: &PluginDigest,
        change: impl FnOnce(&mut PluginRecord),
    ) -> Result<PluginRecord, PluginError> {
        let mut record = self
            .store
            .plugin(digest)?
            .ok_or_else(|| PluginError::NotFound(digest.to_string()))?;
        change(&mut record);
        self.store.update_plugin(&record)?;
        *lock(&self.approved) = None;
        self.store.durable().wait().await?;
        let _loading = self.loading.lock().await;
        lock(&self.runnable).remove(digest);
        Ok(record)
    }

    /// The approved plugins, as definitions and jobs resolve them.
    pub fn approved(&self) -> Result<Arc<Vec<CatalogueEntry>>, StoreError> {
        // Read under the lock, like `latest`: a change clears the cache after it is stored.
        let mut cached = lock(&self.approved);
        if let Some(approved) = cached.as_ref() {
            return Ok(approved.clone());
        }
        let approved: Arc<Vec<CatalogueEntry>> = Arc::new(
            self.store
                .plugins()?
                .into_iter()
                .filter(|p| p.status == PluginStatus::Approved)
                .map(|p| CatalogueEntry {
                    name: p.name,
                    version: p.version,
                    digest: p.digest,
                })
                .collect(),
        );
        *cached = Some(approved.clone());
        Ok(approved)
    }

    /// Validates a definition against the approved plugins and records it.
    pub async fn apply(&self, source: &str, format: SourceFormat) -> Result<Applied, ApplyError> {
        let catalogue = self.approved()?;
        let definition = WorkflowDefinition::validate_submission(source, format, &*catalogue)
            .map_err(ApplyError::Invalid)?;
        let document = serde_json::to_value(&definition)
            .map_err(|e| StoreError::Backend(format!("encoding definition: {e}")))?;
        let name = definition.name().clone();
        let version = definition.version();
        let created = match self.store.put_definition(&name, version, &document)? {
            PutDefinition::Created => true,
            PutDefinition::Unchanged => false,
            PutDefinition::Conflict => return Err(ApplyError::Conflict { name, version }),
        };
        lock(&self.latest).remove(&name);
        self.store.durable().wait().await?;
        lock(&self.definitions).insert((name.clone(), version), Arc::new(definition));
        Ok(Applied {
            name,
            version,
            created,
        })
    }

    /// A stored definition, by name and version.
    pub fn definition(
        &self,
        name: &WorkflowName,
        version: u32,
    ) -> Result<Arc<WorkflowDefinition>, DefinitionLookup> {
        if let Some(d) = lock(&self.definitions).get(&(name.clone(), version)) {
            return Ok(d.clone());
        }
        let document = self
            .store
            .definition(name, version)
            .map_err(DefinitionLookup::Store)?
            .ok_or(DefinitionLookup::Missing)?;
        self.cache(name, version, document)
    }

    fn cache(
        &self,
        name: &WorkflowName,
        version: u32,
        document: serde_json::Value,
    ) -> Result<Arc<WorkflowDefinition>, DefinitionLookup> {
        let definition = WorkflowDefinition::from_value(document)
            .map_err(|p| DefinitionLookup::Unreadable(format!("{p:?}")))?;
        let definition = Arc::new(definition);
        lock(&self.definitions).insert((name.clone(), version), definition.clone());
        Ok(definition)
    }

    /// A definition by name and version, or the latest version.
    pub fn resolve_definition(
        &self,
        name: &WorkflowName,
        version: Option<u32>,
    ) -> Result<Arc<WorkflowDefinition>, DefinitionLookup> {
        match version {
            Some(v) => self.definition(name, v),
            None => {
                // The store is read under the lock, so an apply that stores a newer version
                // (and then clears the entry under the same lock) cannot be overtaken by an
                // older read.
                let mut latest = lock(&self.latest);
                if let Some(&v) = latest.get(name) {
                    drop(latest);
                    return self.definition(name, v);
                }
                let (v, document) = self
                    .store
                    .latest_definition(name)
                    .map_err(DefinitionLookup::Store)?
                    .ok_or(DefinitionLookup::Missing)?;
                latest.insert(name.clone(), v);
                drop(latest);
                if let Some(d) = lock(&self.definitions).get(&(name.clone(), v)) {
                    return Ok(d.clone());
                }
                self.cache(name, v, document)
            }
        }
    }

    /// Resolves the definition's plugins among the approved ones, for a new job.
    pub fn resolve_plugins(
        &self,
        definition: &WorkflowDefinition,
    ) -> Result<BTreeMap<StepId, ResolvedPlugin>, StartError> {
        let catalogue = self.approved()?;
        definition
            .resolve_plugins(&*catalogue)
            .map_err(|p| StartError::Invalid(problems_text(&p)))
    }

    /// The plugin with `digest`, loaded, with its grants; `Ok(None)` when it is not approved.
    pub async fn runnable(&self, digest: &PluginDigest) -> Result<Option<Arc<Runnable>>, String> {
        if let Some(runnable) = lock(&self.runnable).get(digest) {
            return Ok(Some(runnable.clone()));
        }
        let _loading = self.loading.lock().await;
        // Another task may have loaded it meanwhile.
        if let Some(runnable) = lock(&self.runnable).get(digest) {
            return Ok(Some(runnable.clone()));
        }
        let record = self
            .store
            .plugin(digest)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("plugin {digest} is not in the catalogue"))?;
        if record.status != PluginStatus::Approved {
            return Ok(None);
        }
        let bytes = self
            .store
            .plugin_component(digest)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("component of plugin {digest} is missing"))?;
        let plugin = self.sandbox.load(&bytes).await.map_err(|e| e.to_string())?;
        let grants = sandbox_grants(&record.grants)?;
        let runnable = Arc::new(Runnable { plugin, grants });
        lock(&self.runnable).insert(digest.clone(), runnable.clone());
        Ok(Some(runnable))
    }
}

/// Problems as one line each, for error messages.
pub fn problems_text(problems: &Problems) -> String {
    problems
        .0
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weft_sandbox::SandboxConfig;
    use weft_store::MemoryStore;

    use super::*;
    use crate::engine::StoreKv;

    #[tokio::test]
    async fn a_loaded_plugin_is_found_while_another_load_holds_the_loading_lock() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let artifacts = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(
            SandboxConfig {
                artifact_dir: Some(artifacts.path().to_path_buf()),
                max_instances: 2,
                ..SandboxConfig::default()
            },
            Arc::new(StoreKv::new(store.clone())),
        )
        .unwrap();
        let catalogue = Catalogue::new(store, sandbox);
        let (record, _) = catalogue
            .add_plugin(&crate::api::tests::plugin("echo"))
            .await
            .unwrap();
        catalogue
            .approve(&record.digest, PluginGrants::default())
            .await
            .unwrap();
        let loaded = catalogue.runnable(&record.digest).await.unwrap();
        assert!(loaded.is_some(), "an approved plugin is runnable");
        // A load of another plugin under way (as long as a large component compiles) must
        // not hold up the attempts of plugins already loaded.
        let _loading = catalogue.loading.lock().await;
        let found =
            tokio::time::timeout(Duration::from_secs(30), catalogue.runnable(&record.digest))
                .await
                .expect("a loaded plugin does not wait for another one's load");
        assert!(
            found
                .unwrap()
                .is_some_and(|r| Arc::ptr_eq(&r, &loaded.unwrap()))
        );
    }
}
