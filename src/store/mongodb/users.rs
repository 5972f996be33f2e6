//! The [`UserIndex`] of the [`MongoStore`]: a side collection, `<collection>_users`, of one
//! document `{user, key, until}` per record, which Flask-Session never reads.
//!
//! A unique index on `(user, key)` makes `link_user` one upsert that moves `until`, and a TTL
//! index on `until` (expireAfterSeconds 0) lets the server remove lapsed records itself; until
//! its monitor passes (about once a minute) `user_keys` filters on `until > now`.

use super::*;
use crate::store::UserIndex;

/// The side collection's name next to the sessions' `collection`.
pub(super) fn users_collection(collection: &str) -> String {
    format!("{collection}_users")
}

/// The unique index on `(user, key)` and the TTL index on `until`.
pub(super) fn user_index_models() -> [IndexModel; 2] {
    unique_and_ttl(doc! { "user": 1, "key": 1 }, "until")
}

/// One `update_one` with upsert, one `find` (projected on `key`), one `delete_many`.
impl UserIndex for MongoStore {
    fn link_user(&self, user: &str, key: &str, until: SystemTime) -> Result<()> {
        let update = doc! { "$set": { "until": DateTime::from_system_time(until) } };
        let op = self
            .users
            .update_one(doc! { "user": user, "key": key }, update);
        self.run(op.upsert(true))?;
        Ok(())
    }

    fn user_keys(&self, user: &str) -> Result<Vec<String>> {
        let filter = doc! { "user": user, "until": { "$gt": now() } };
        let find = self
            .users
            .find(filter)
            .projection(doc! { "key": 1, "_id": 0 });
        let documents = self.run(async move {
            let mut cursor = find.await?;
            let mut documents = Vec::new();
            while cursor.advance().await? {
                documents.push(cursor.deserialize_current()?);
            }
            Ok(documents)
        })?;
        documents.iter().map(key_of).collect()
    }

    fn unlink_user(&self, user: &str, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let filter = doc! { "user": user, "key": { "$in": keys } };
        self.run(self.users.delete_many(filter))?;
        Ok(())
    }
}

/// The `key` of a record; [`Error::Decode`] when it is not a string.
fn key_of(document: &Document) -> Result<String> {
    let key = document
        .get_str("key")
        .map_err(|e| Error::Decode(Box::new(e)))?;
    Ok(key.to_owned())
}
