//! What jobs are made of, in sled: the plugin catalogue (records, component bytes and the
//! name and version index) and workflow definitions.

use serde_json::Value;
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;
use weft_domain::{PluginDigest, WorkflowName};

use super::codec::{StoredDefinition, decode, decode_versioned, encode};
use super::{SledStore, keys, transaction_result};
use crate::definition::PutDefinition;
use crate::error::StoreError;
use crate::format::check_written;
use crate::plugin::{PluginRecord, PutPlugin, renamed_plugin, sort_plugins};

fn describe_plugin(digest: &PluginDigest) -> impl Fn() -> String + '_ {
    move || format!("plugin {digest}")
}

fn describe_definition(name: &WorkflowName, version: u32) -> impl Fn() -> String + '_ {
    move || format!("definition {name} version {version}")
}

impl SledStore {
    pub(super) fn put_plugin_record(
        &self,
        record: &PluginRecord,
        component: &[u8],
    ) -> Result<PutPlugin, StoreError> {
        check_written("plugin record", record.format_version)?;
        let describe = describe_plugin(&record.digest);
        let encoded = encode(record, &describe)?;
        let digest_json = encode(&record.digest, &describe)?;
        let version_key = keys::plugin_version(&record.name, &record.version);
        let trees = &self.trees;
        let result = (&trees.plugins, &trees.components, &trees.plugin_versions).transaction(
            |(plugins, components, versions)| {
                if let Some(existing) = plugins.get(record.digest.as_str())? {
                    let existing = decode_versioned(&existing, &describe)
                        .map_err(ConflictableTransactionError::Abort)?;
                    return Ok(PutPlugin::Existing(existing));
                }
                if let Some(existing) = versions.get(&version_key)? {
                    let existing = decode(&existing, || {
                        format!("digest of plugin {}@{}", record.name, record.version)
                    })
                    .map_err(ConflictableTransactionError::Abort)?;
                    return Ok(PutPlugin::Conflict { existing });
                }
                plugins.insert(record.digest.as_str(), encoded.as_slice())?;
                components.insert(record.digest.as_str(), component)?;
                versions.insert(version_key.as_slice(), digest_json.as_slice())?;
                Ok(PutPlugin::Created)
            },
        );
        self.wrote_to_sled();
        transaction_result(result)
    }

    pub(super) fn plugin_record(
        &self,
        digest: &PluginDigest,
    ) -> Result<Option<PluginRecord>, StoreError> {
        self.trees
            .plugins
            .get(digest.as_str())?
            .map(|bytes| decode_versioned(&bytes, describe_plugin(digest)))
            .transpose()
    }

    pub(super) fn plugin_records(&self) -> Result<Vec<PluginRecord>, StoreError> {
        let mut records = self
            .trees
            .plugins
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                decode_versioned(&bytes, || {
                    format!("plugin {}", String::from_utf8_lossy(&key))
                })
            })
            .collect::<Result<Vec<PluginRecord>, StoreError>>()?;
        sort_plugins(&mut records);
        Ok(records)
    }

    pub(super) fn update_plugin_record(&self, record: &PluginRecord) -> Result<(), StoreError> {
        check_written("plugin record", record.format_version)?;
        let describe = describe_plugin(&record.digest);
        let encoded = encode(record, &describe)?;
        let result = self.trees.plugins.transaction(|plugins| {
            let Some(stored) = plugins.get(record.digest.as_str())? else {
                return Err(ConflictableTransactionError::Abort(StoreError::NotFound));
            };
            let stored: PluginRecord = decode_versioned(&stored, &describe)
                .map_err(ConflictableTransactionError::Abort)?;
            if stored.name != record.name || stored.version != record.version {
                return Err(ConflictableTransactionError::Abort(renamed_plugin(record)));
            }
            plugins.insert(record.digest.as_str(), encoded.as_slice())?;
            Ok(())
        });
        self.wrote_to_sled();
        transaction_result(result)
    }

    pub(super) fn put_definition_document(
        &self,
        name: &WorkflowName,
        version: u32,
        document: &Value,
    ) -> Result<PutDefinition, StoreError> {
        let describe = describe_definition(name, version);
        let encoded = encode(&StoredDefinition::new(document), &describe)?;
        let swapped = self.trees.definitions.compare_and_swap(
            keys::definition(name, version),
            None::<&[u8]>,
            Some(encoded),
        )?;
        self.wrote_to_sled();
        let Err(existing) = swapped else {
            return Ok(PutDefinition::Created);
        };
        let stored: StoredDefinition =
            decode_versioned(existing.current.as_deref().unwrap_or_default(), describe)?;
        Ok(if stored.document == *document {
            PutDefinition::Unchanged
        } else {
            PutDefinition::Conflict
        })
    }

    pub(super) fn definition_document(
        &self,
        name: &WorkflowName,
        version: u32,
    ) -> Result<Option<Value>, StoreError> {
        let Some(bytes) = self
            .trees
            .definitions
            .get(keys::definition(name, version))?
        else {
            return Ok(None);
        };
        let stored: StoredDefinition =
            decode_versioned(&bytes, describe_definition(name, version))?;
        Ok(Some(stored.document))
    }

    pub(super) fn latest_definition_document(
        &self,
        name: &WorkflowName,
    ) -> Result<Option<(u32, Value)>, StoreError> {
        let latest = self
            .trees
            .definitions
            .scan_prefix(keys::name_prefix(name.as_str()))
            .next_back()
            .transpose()?;
        let Some((key, bytes)) = latest else {
            return Ok(None);
        };
        let (_, version) = keys::parse_definition(&key)?;
        let stored: StoredDefinition =
            decode_versioned(&bytes, describe_definition(name, version))?;
        Ok(Some((version, stored.document)))
    }

    pub(super) fn definition_versions(&self) -> Result<Vec<(WorkflowName, u32)>, StoreError> {
        self.trees
            .definitions
            .iter()
            .keys()
            .map(|key| keys::parse_definition(&key?))
            .collect()
    }
}
