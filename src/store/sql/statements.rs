//! The SQL every dialect shares: identifier validation and quoting, the statements of
//! Flask-Session's `sessions` table, and the names a store's statements are built from.
//!
//! Identifiers (table, schema, sequence) are never bound as parameters, so they are validated
//! (`[A-Za-z_][A-Za-z0-9_]{0,62}`) and then double-quoted: no SQL can come in through them.
//! Every value (key, data, expiry, the current time, a limit) is a bound parameter.

use crate::store::Replaced;
use crate::{Error, Result};

/// The longest identifier PostgreSQL keeps without truncating it (NAMEDATALEN - 1).
const MAX_IDENTIFIER_LEN: usize = 63;

/// The width of the `session_id` column, `varchar(255)`.
pub(crate) const MAX_KEY_CHARS: usize = 255;

/// Checks that `name` is a plain identifier, `[A-Za-z_][A-Za-z0-9_]{0,62}`; `what` names the
/// setting in the error message.
pub(crate) fn validate_identifier(what: &str, name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if starts_well && rest_ok && name.len() <= MAX_IDENTIFIER_LEN {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the {what} name {name:?} must match [A-Za-z_][A-Za-z0-9_]{{0,62}}"
    )))
}

/// `name` as a double-quoted SQL identifier (inner quotes doubled, although a validated name
/// has none).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A key the `session_id varchar(255)` column can hold.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(Error::InvalidKey(format!(
            "SQL session keys are at most {MAX_KEY_CHARS} characters (session_id varchar(255))"
        )));
    }
    Ok(())
}

/// The statements of one store, for one table, in the placeholder style of its database.
#[derive(Debug, Clone)]
pub struct Statements {
    /// `(key, now) -> data`
    pub(crate) load: String,
    /// `(key, data, expiry, now)`; 1 row affected when created.
    pub(crate) create: String,
    /// `(key, data, expiry, now)`; 1 row affected when saved.
    pub(crate) save: String,
    /// `(key, data, expiry, now, expected data)`; 1 row affected when replaced.
    pub(crate) replace: String,
    /// `(key, expiry, now)`; 1 row affected when touched.
    pub(crate) touch: String,
    /// `(key, expiry, now) -> data`
    pub(crate) load_and_touch: String,
    /// `(key)`
    pub(crate) delete: String,
    /// `(now, limit)`; the number of rows removed.
    pub(crate) sweep: String,
}

impl Statements {
    /// The statements for `table` (already quoted, maybe schema-qualified). `id` is the value
    /// expression for the `id` column (`Some("nextval(..)")` with a sequence), `p` turns a
    /// 1-based parameter number into a placeholder (`?1` or `$1`).
    pub(crate) fn new(table: &str, id: Option<&str>, p: fn(usize) -> String) -> Self {
        let (id_column, id_value) = match id {
            Some(value) => ("id, ", format!("{value}, ")),
            None => ("", String::new()),
        };
        let touch = format!(
            "UPDATE {table} SET expiry = {} WHERE session_id = {} AND expiry > {}",
            p(2),
            p(1),
            p(3)
        );
        Self {
            load: format!(
                "SELECT data FROM {table} WHERE session_id = {} AND expiry > {}",
                p(1),
                p(2)
            ),
            create: format!(
                "INSERT INTO {table} AS cur ({id_column}session_id, data, expiry) \
                 VALUES ({id_value}{}, {}, {}) ON CONFLICT (session_id) DO UPDATE \
                 SET data = excluded.data, expiry = excluded.expiry \
                 WHERE cur.expiry IS NULL OR cur.expiry <= {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            save: format!(
                "UPDATE {table} SET data = {}, expiry = {} WHERE session_id = {} AND expiry > {}",
                p(2),
                p(3),
                p(1),
                p(4)
            ),
            replace: format!(
                "UPDATE {table} SET data = {}, expiry = {} \
                 WHERE session_id = {} AND expiry > {} AND data = {}",
                p(2),
                p(3),
                p(1),
                p(4),
                p(5)
            ),
            load_and_touch: format!("{touch} RETURNING data"),
            touch,
            delete: format!("DELETE FROM {table} WHERE session_id = {}", p(1)),
            sweep: format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
                 WHERE expiry IS NULL OR expiry <= {} LIMIT {})",
                p(1),
                p(2)
            ),
        }
    }

    /// Every statement, to prepare them all once when the store is built (which also checks
    /// the table's columns).
    pub(crate) fn all(&self) -> [&str; 8] {
        [
            &self.load,
            &self.create,
            &self.save,
            &self.replace,
            &self.touch,
            &self.load_and_touch,
            &self.delete,
            &self.sweep,
        ]
    }
}

/// What a conditional `UPDATE` that changed no row found, from a load after it.
pub(crate) fn not_replaced(current: Option<Vec<u8>>) -> Replaced {
    match current {
        Some(current) => Replaced::Changed(current),
        None => Replaced::Gone,
    }
}

/// The validated identifiers of a store's table and the SQL names built from them.
#[derive(Debug, Clone)]
pub struct Names {
    pub(crate) table: String,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) schema: Option<String>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) sequence: Option<String>,
    /// `"schema"."table"` or `"table"`.
    pub(crate) qualified: String,
    /// The user index table beside it: `"schema"."table_users"` or `"table_users"`.
    pub(crate) users: String,
}

impl Names {
    /// Validates each name (see [`validate_identifier`]) and quotes them.
    pub(crate) fn validated(
        table: &str,
        schema: Option<&str>,
        sequence: Option<&str>,
    ) -> Result<Self> {
        validate_identifier("table", table)?;
        schema.map_or(Ok(()), |s| validate_identifier("schema", s))?;
        sequence.map_or(Ok(()), |s| validate_identifier("sequence", s))?;
        let qualify = |name: &str| match schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(name)),
            None => quote(name),
        };
        Ok(Self {
            table: table.to_owned(),
            schema: schema.map(str::to_owned),
            sequence: sequence.map(str::to_owned),
            qualified: qualify(table),
            users: qualify(&format!("{table}_users")),
        })
    }

    /// The name of the expiry index created with the table: `"<table>_expiry_idx"`, quoted.
    pub(crate) fn expiry_index(&self) -> String {
        quote(&format!("{}_expiry_idx", self.table))
    }

    /// The DDL of the user index table (see [`UserStatements`]), with `timestamp` the
    /// dialect's naive timestamp type; it creates nothing that exists.
    pub(crate) fn users_ddl(&self, timestamp: &str) -> String {
        let (users, index) = (
            &self.users,
            quote(&format!("{}_users_expiry_idx", self.table)),
        );
        format!(
            "CREATE TABLE IF NOT EXISTS {users} (\n\tuser_name VARCHAR(255) NOT NULL, \
             \n\tsession_id VARCHAR(255) NOT NULL, \n\texpiry {timestamp} NOT NULL, \
             \n\tPRIMARY KEY (user_name, session_id)\n);\n\
             CREATE INDEX IF NOT EXISTS {index} ON {users} (expiry);"
        )
    }
}

/// The statements of the user index ([`UserIndex`](crate::store::UserIndex)): a table
/// `<table>_users(user_name, session_id, expiry)` beside the session table, keyed by
/// (user, session); Flask-Session never reads it.
#[derive(Debug, Clone)]
pub struct UserStatements {
    /// `(user, key, until)`: records or moves a record.
    pub(crate) link: String,
    /// `(user, now) -> session_id` of every record not lapsed.
    pub(crate) keys: String,
    /// `(user, key)`
    pub(crate) unlink: String,
    /// `(now, limit)`: removes up to `limit` lapsed records.
    pub(crate) sweep: String,
}

impl UserStatements {
    /// Every statement, to prepare them all when the store is built.
    pub(crate) fn all(&self) -> [&str; 4] {
        [&self.link, &self.keys, &self.unlink, &self.sweep]
    }

    /// The statements on `names.users`, `p` making placeholders as in [`Statements::new`].
    pub(crate) fn new(names: &Names, p: fn(usize) -> String) -> Self {
        let users = &names.users;
        Self {
            link: format!(
                "INSERT INTO {users} (user_name, session_id, expiry) VALUES ({}, {}, {}) \
                 ON CONFLICT (user_name, session_id) DO UPDATE SET expiry = excluded.expiry",
                p(1),
                p(2),
                p(3)
            ),
            keys: format!(
                "SELECT session_id FROM {users} WHERE user_name = {} AND expiry > {}",
                p(1),
                p(2)
            ),
            unlink: format!(
                "DELETE FROM {users} WHERE user_name = {} AND session_id = {}",
                p(1),
                p(2)
            ),
            sweep: format!(
                "DELETE FROM {users} WHERE (user_name, session_id) IN (SELECT user_name, \
                 session_id FROM {users} WHERE expiry <= {} LIMIT {})",
                p(1),
                p(2)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for good in ["sessions", "_x", "S9_a", &"a".repeat(63)] {
            assert!(validate_identifier("table", good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "9a",
            "a b",
            "a;b",
            "a\"b",
            "a'b",
            "a.b",
            "sessions; DROP TABLE x",
            &long,
        ] {
            assert!(
                matches!(validate_identifier("table", bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
