//! Migrations from earlier store formats. Each moves every job to the next layout in place,
//! in an order that a crash may cut anywhere: opening the store again runs it again.

use weft_domain::Job;

use super::codec::decode;
use super::fan_outs;
use super::journal::read_record;
use super::keys::{self, tag};
use super::records::{EMPTY_ARRAY, describe_head, encode_head, split_commit};
use crate::error::StoreError;

/// Moves every job of a database of store format 3 to the layout of format 4, which
/// [`migrate_from_4`] then moves on. There, the latest of a job's commit records (keyed like
/// chunks) held the job and that commit's events: a copy of it becomes the head. The record itself
/// stays, a chunk whose events the head repeats, which readers take once; a crash during the migration leaves it to be run again.
pub(super) fn migrate_from_3(tree: &sled::Tree) -> Result<(), StoreError> {
    let mut migrated = 0_u64;
    for key in tree.scan_prefix([tag::META]).keys() {
        let id = keys::trailing_job_id(&key?)?;
        let records = keys::commit(id, 0)..=keys::head(id);
        let Some((key, latest)) = tree.range(records).next_back().transpose()? else {
            continue;
        };
        if key.as_ref() != keys::head(id).as_slice() {
            tree.insert(keys::head(id), latest)?;
            migrated += 1;
        }
    }
    tree.flush()?;
    tracing::info!(jobs = migrated, "moved jobs to store format 4");
    Ok(())
}

/// Moves every job of a database of store format 4 to this layout. There, a head held the
/// whole job where it now holds its outline: each fan-out's list and its tasks that are not
/// pending are written to their own records, then the head is rewritten with no tasks of its own. A head that starts
/// its job with `{` is of format 4 (in this layout the tasks' length comes first, and this
/// migration writes that length as 2), so a crash during the migration leaves it to be run
/// again.
pub(super) fn migrate_from_4(tree: &sled::Tree) -> Result<(), StoreError> {
    let mut migrated = 0_u64;
    for key in tree.scan_prefix([tag::META]).keys() {
        let id = keys::trailing_job_id(&key?)?;
        let Some(head) = tree.get(keys::head(id))? else {
            continue;
        };
        let (events_json, job_json) = split_commit(&head, || describe_head(id))?;
        if job_json.first() != Some(&b'{') {
            continue;
        }
        let job: Job = decode(job_json, || format!("job {id}"))?;
        for parts in job.fan_outs() {
            fan_outs::write_fan_out_records(tree, id, &parts)?;
        }
        let record = encode_head(events_json, EMPTY_ARRAY, job.outline(), || {
            describe_head(id)
        })?;
        tree.insert(keys::head(id), record)?;
        migrated += 1;
    }
    tree.flush()?;
    tracing::info!(jobs = migrated, "moved jobs to store format 5");
    Ok(())
}

/// Moves the journal of a database of store format 6, which kept its records in a tree of
/// their own, into the jobs tree: each record's writes, in order, then the journal tree goes.
/// A crash before the tree is dropped replays the same writes again, which leaves the same
/// records. Databases of earlier formats have no such tree, and lose nothing.
pub(super) fn migrate_from_6(db: &sled::Db, jobs: &sled::Tree) -> Result<(), StoreError> {
    const JOURNAL_TREE: &[u8] = b"job_journal";
    if !db.tree_names().iter().any(|name| name == JOURNAL_TREE) {
        return Ok(());
    }
    let journal = db.open_tree(JOURNAL_TREE)?;
    let mut writes = 0_u64;
    for record in journal.iter() {
        let (key, record) = record?;
        let mut applied = Ok(());
        read_record(&record, |key, value| {
            if applied.is_ok() {
                applied = match value {
                    Some(value) => jobs.insert(key, value).map(drop),
                    None => jobs.remove(key).map(drop),
                };
                writes += 1;
            }
        })
        .map_err(|detail| {
            let number = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes);
            StoreError::corrupt(format!("journal record {number:?}"), detail)
        })?;
        applied?;
    }
    // The writes are durable before the journal that held them goes.
    db.flush()?;
    db.drop_tree(JOURNAL_TREE)?;
    tracing::info!(
        writes,
        "moved the journal of store format 6 into the jobs tree"
    );
    Ok(())
}
