//! [`TaskList`]: the tasks of a fanned-out step, in shared chunks, so that the state
//! machine's working copy of a large fan-out costs a pointer per chunk, and changing a task
//! copies its chunk's pointers only. A list of tasks that were each shared would still cost
//! a reference count per task with every copy: for 10,000 items, most of a step's time.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TaskRecord;

/// Tasks per chunk: copying a chunk's pointers costs about what copying the list of chunk
/// pointers does for a fan-out of 4,096 items.
const CHUNK_LEN: usize = 64;

/// One task per item of a fanned-out step, in order; serializes as a list of tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskList {
    chunks: Vec<Arc<Vec<Arc<TaskRecord>>>>,
    len: usize,
}

impl TaskList {
    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no task.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The task of item `index`.
    pub fn get(&self, index: usize) -> Option<&Arc<TaskRecord>> {
        self.chunks.get(index / CHUNK_LEN)?.get(index % CHUNK_LEN)
    }

    /// The task of item `index`, to change: copies what it shares with other lists.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut TaskRecord> {
        let chunk = Arc::make_mut(self.chunks.get_mut(index / CHUNK_LEN)?);
        chunk.get_mut(index % CHUNK_LEN).map(Arc::make_mut)
    }

    /// Every task, in item order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TaskRecord>> {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// Items whose task may differ from the same item's in `other`, in order: those of
    /// chunks the two lists do not share, and those beyond the shorter list. Costs a pointer
    /// comparison per shared chunk.
    pub fn unshared_items<'a>(&'a self, other: &'a TaskList) -> impl Iterator<Item = usize> + 'a {
        let common = self.len.min(other.len);
        self.chunks
            .iter()
            .enumerate()
            .filter(move |(index, chunk)| {
                other
                    .chunks
                    .get(*index)
                    .is_none_or(|theirs| !Arc::ptr_eq(chunk, theirs))
            })
            .flat_map(move |(index, chunk)| {
                let start = index * CHUNK_LEN;
                (start..start + chunk.len()).filter(move |&item| {
                    item >= common
                        || match (self.get(item), other.get(item)) {
                            (Some(mine), Some(theirs)) => !Arc::ptr_eq(mine, theirs),
                            _ => true,
                        }
                })
            })
    }
}

impl FromIterator<Arc<TaskRecord>> for TaskList {
    fn from_iter<I: IntoIterator<Item = Arc<TaskRecord>>>(tasks: I) -> Self {
        let mut list = TaskList::default();
        let mut tasks = tasks.into_iter().peekable();
        while tasks.peek().is_some() {
            let chunk: Vec<_> = tasks.by_ref().take(CHUNK_LEN).collect();
            list.len += chunk.len();
            list.chunks.push(Arc::new(chunk));
        }
        list
    }
}

impl Serialize for TaskList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(|task| &**task))
    }
}

impl<'de> Deserialize<'de> for TaskList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tasks = Vec::<TaskRecord>::deserialize(deserializer)?;
        Ok(tasks.into_iter().map(Arc::new).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StepState;

    fn list(count: usize) -> TaskList {
        (0..count)
            .map(|_| Arc::new(TaskRecord::new(StepState::Pending, None)))
            .collect()
    }

    #[test]
    fn tasks_keep_their_order_across_chunks() {
        let mut tasks = list(CHUNK_LEN * 2 + 5);
        assert_eq!(tasks.len(), 133);
        assert_eq!(tasks.iter().count(), 133);
        tasks.get_mut(70).unwrap().state = StepState::Ready;
        let ready: Vec<usize> = (0..tasks.len())
            .filter(|&i| tasks.get(i).unwrap().state == StepState::Ready)
            .collect();
        assert_eq!(ready, [70]);
        assert!(tasks.get(133).is_none());
        assert!(list(0).is_empty());
        let json = serde_json::to_value(&tasks).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 133);
        assert_eq!(serde_json::from_value::<TaskList>(json).unwrap(), tasks);
    }

    #[test]
    fn a_copy_shares_every_chunk_until_a_task_changes() {
        let before = list(200);
        let mut after = before.clone();
        assert_eq!(after.unshared_items(&before).count(), 0);
        after.get_mut(3).unwrap().state = StepState::Ready;
        after.get_mut(150).unwrap().state = StepState::Ready;
        let changed: Vec<usize> = after.unshared_items(&before).collect();
        assert_eq!(changed, [3, 150]);
        // The untouched chunk is still the same allocation.
        assert!(Arc::ptr_eq(&after.chunks[1], &before.chunks[1]));
        // Lists that share nothing may differ anywhere.
        assert_eq!(list(66).unshared_items(&list(64)).count(), 66);
    }
}
