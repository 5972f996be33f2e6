//! Merging one request's changes onto the copy of its session that another request of the
//! same session stored meanwhile (see `Session::update` and the commit).

use crate::Result;
use crate::codec::{SessionMap, Value};

/// One [`update`](crate::Session::update) closure, over raw values.
type Update = Box<dyn FnMut(Option<&Value>) -> Result<Value> + Send>;

/// The updates a request made, in order, to re-run on a fresh copy of the session.
#[derive(Default)]
pub(crate) struct Updates(Vec<(String, Update)>);

impl Updates {
    pub(crate) fn record(
        &mut self,
        key: &str,
        update: impl FnMut(Option<&Value>) -> Result<Value> + Send + 'static,
    ) {
        self.0.push((key.to_owned(), Box::new(update)));
    }

    /// `key` was set or removed outright: its value no longer depends on the stored one.
    pub(crate) fn forget(&mut self, key: &str) {
        if !self.0.is_empty() {
            self.0.retain(|(updated, _)| updated != key);
        }
    }

    pub(crate) fn touches(&self, key: &str) -> bool {
        self.0.iter().any(|(updated, _)| updated == key)
    }
}

/// `fresh` (the session as another request stored it) with this request's changes: each key
/// whose value differs between `original` (as this request loaded it) and `mine` (as it ends)
/// takes its value in `mine`, or goes if `mine` removed it; each updated key gets its updates
/// re-run on its value in `fresh`. Keys this request did not change keep `fresh`'s values.
pub(crate) fn merge(
    original: &SessionMap,
    mine: &SessionMap,
    mut fresh: SessionMap,
    updates: &mut Updates,
) -> Result<SessionMap> {
    for (key, value) in mine {
        if !updates.touches(key) && original.get(key) != Some(value) {
            fresh.insert(key.clone(), value.clone());
        }
    }
    for key in original.keys() {
        if !mine.contains_key(key) && !updates.touches(key) {
            fresh.shift_remove(key);
        }
    }
    for (key, update) in &mut updates.0 {
        let value = update(fresh.get(key.as_str()))?;
        fresh.insert(key.clone(), value);
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, i64)]) -> SessionMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    fn add_one(old: Option<&Value>) -> Result<Value> {
        Ok(Value::from(old.and_then(Value::as_i64).unwrap_or(0) + 1))
    }

    #[test]
    fn only_the_keys_this_request_changed_are_applied() {
        let original = map(&[("a", 1), ("b", 1), ("gone", 1)]);
        let mine = map(&[("a", 2), ("b", 1), ("new", 1)]);
        let fresh = map(&[("a", 5), ("b", 7), ("gone", 1), ("theirs", 3)]);
        let merged = merge(&original, &mine, fresh, &mut Updates::default()).unwrap();
        assert_eq!(
            merged,
            map(&[("a", 2), ("b", 7), ("theirs", 3), ("new", 1)])
        );
    }

    #[test]
    fn updates_run_again_on_the_fresh_value_in_order() {
        let mut updates = Updates::default();
        updates.record("n", add_one);
        updates.record("n", add_one);
        let original = map(&[("n", 1)]);
        let mine = map(&[("n", 3)]);
        let merged = merge(&original, &mine, map(&[("n", 10)]), &mut updates).unwrap();
        assert_eq!(merged, map(&[("n", 12)]));
    }

    #[test]
    fn a_key_set_outright_forgets_its_updates() {
        let mut updates = Updates::default();
        updates.record("n", add_one);
        updates.forget("n");
        assert!(!updates.touches("n"));
        let merged = merge(
            &map(&[("n", 1)]),
            &map(&[("n", 7)]),
            map(&[("n", 10)]),
            &mut updates,
        )
        .unwrap();
        assert_eq!(merged, map(&[("n", 7)]));
    }
}
