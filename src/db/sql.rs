//! One query set for both stores. A query in [`super::queries`] is written once, generic over
//! [`Sql`], and runs on a SQLite connection (the embedded store) or a PostgreSQL one (cluster
//! mode). Generic code is compiled once per store, so the SQLite path calls rusqlite directly
//! with nothing in between but the argument slice.
//!
//! The SQL itself is written in the subset both engines read alike: numbered parameters
//! (`?1`, rewritten to `$1` for PostgreSQL), `TRUE`/`FALSE` for flags, `RETURNING` instead of
//! `last_insert_rowid()`, `ON CONFLICT` instead of `INSERT OR …`. Where the engines differ
//! (string aggregation, full-text search), a query picks its text with [`Sql::dialect`].

use std::cell::RefCell;
use std::collections::HashMap;

/// A query argument: any value both drivers can bind. Arguments go to PostgreSQL with their
/// Rust type, so integers are `i64` (a `bigint` column refuses an `i32`, and a `u32` would be
/// sent as an OID).
pub trait Arg {
    /// The value as rusqlite binds it.
    fn lite(&self) -> &dyn rusqlite::ToSql;
    /// The value as the PostgreSQL client binds it.
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Arg for T {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync) {
        self
    }
}

/// The argument list of a query: `args![a, b]` is `&[&a, &b]` as `&[&dyn Arg]`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_args {
    () => { &[] as &[&dyn $crate::db::sql::Arg] };
    ($($a:expr),+ $(,)?) => { &[$(&$a as &dyn $crate::db::sql::Arg),+] as &[&dyn $crate::db::sql::Arg] };
}
pub use sql_args as args;

/// A column value a query reads: the types Hearth's rows are made of.
pub trait Value: Sized {
    /// Read column `i` of a SQLite row.
    fn lite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self>;
    /// Read column `i` of a PostgreSQL row.
    fn pg(row: &postgres::Row, i: usize) -> Result<Self, PgError>;
}

/// Types both drivers convert the same way.
macro_rules! plain_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn lite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
                row.get(i)
            }
            fn pg(row: &postgres::Row, i: usize) -> Result<Self, PgError> {
                Ok(row.try_get(i)?)
            }
        }
    )*};
}
plain_value!(
    String,
    Option<String>,
    bool,
    Option<bool>,
    Vec<u8>,
    Option<Vec<u8>>,
    f64
);

/// A digest or key of a fixed length (a `BLOB`, a `bytea`).
impl<const N: usize> Value for [u8; N] {
    fn lite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        row.get(i)
    }
    fn pg(row: &postgres::Row, i: usize) -> Result<Self, PgError> {
        let bytes: Vec<u8> = row.try_get(i)?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| PgError::Decode(format!("column {i} holds {len} bytes, not {N}")))
    }
}

/// What a query on PostgreSQL can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server or the connection failed, or a value had another type.
    #[error(transparent)]
    Db(#[from] postgres::Error),
    /// A value of the expected type but not a possible one (a digest of the wrong length).
    #[error("unexpected value: {0}")]
    Decode(String),
    /// A row the schema guarantees is not there.
    #[error("missing: {0}")]
    Missing(&'static str),
}

impl PgError {
    /// The SQLSTATE of a server error (`23505` a unique violation, …).
    pub fn code(&self) -> Option<&postgres::error::SqlState> {
        match self {
            PgError::Db(e) => e.code(),
            PgError::Decode(_) | PgError::Missing(_) => None,
        }
    }
}

/// An integer column of any width: PostgreSQL types a literal or a `smallint` expression
/// narrower than the `bigint` columns, where SQLite has one integer type.
fn pg_int(row: &postgres::Row, i: usize) -> Result<Option<i64>, PgError> {
    use postgres::types::Type;
    let ty = row.columns()[i].type_();
    Ok(if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?.map(i64::from)
    } else if *ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(i)?.map(i64::from)
    } else if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)?.map(i64::from)
    } else {
        row.try_get::<_, Option<i64>>(i)?
    })
}

impl Value for Option<i64> {
    fn lite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        row.get(i)
    }
    fn pg(row: &postgres::Row, i: usize) -> Result<Self, PgError> {
        pg_int(row, i)
    }
}

impl Value for i64 {
    fn lite(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        row.get(i)
    }
    fn pg(row: &postgres::Row, i: usize) -> Result<Self, PgError> {
        match pg_int(row, i)? {
            Some(v) => Ok(v),
            // The same error a NULL read as a plain integer gives.
            None => Ok(row.try_get::<_, i64>(i)?),
        }
    }
}

/// One row of a result, whichever store it came from.
pub trait Row {
    /// The driver's error.
    type Error;
    /// Column `i` (from 0) as a `T`.
    fn get<T: Value>(&self, i: usize) -> Result<T, Self::Error>;
    /// Text column `i` as the bytes the row holds, without copying them; `None` for NULL.
    /// SQLite does not check that they are UTF-8: the caller does, where it reads them.
    fn text(&self, i: usize) -> Result<Option<&[u8]>, Self::Error>;
}

impl Row for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn get<T: Value>(&self, i: usize) -> rusqlite::Result<T> {
        T::lite(self, i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<Option<&[u8]>> {
        match self.get_ref(i)? {
            rusqlite::types::ValueRef::Text(t) => Ok(Some(t)),
            rusqlite::types::ValueRef::Null => Ok(None),
            other => Err(rusqlite::Error::InvalidColumnType(
                i,
                self.as_ref().column_name(i).unwrap_or("?").to_string(),
                other.data_type(),
            )),
        }
    }
}

impl Row for postgres::Row {
    type Error = PgError;
    fn get<T: Value>(&self, i: usize) -> Result<T, PgError> {
        T::pg(self, i)
    }
    fn text(&self, i: usize) -> Result<Option<&[u8]>, PgError> {
        Ok(self.try_get::<_, Option<&str>>(i)?.map(str::as_bytes))
    }
}

/// A connection a query runs on. Statements are prepared once per connection and kept.
pub trait Sql {
    /// The driver's error, which queries return unchanged.
    type Error: std::error::Error + Send + Sync + 'static;
    /// A row of a result.
    type Row<'r>: Row<Error = Self::Error>;
    /// Whether this is PostgreSQL.
    fn is_postgres(&self) -> bool;

    /// Every row `sql` returns for `args`, each read by `f`.
    fn rows<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnMut(&Self::Row<'_>) -> Result<T, Self::Error>,
    ) -> Result<Vec<T>, Self::Error>;

    /// The first row `sql` returns for `args`, read by `f`, if there is one.
    fn row<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&Self::Row<'_>) -> Result<T, Self::Error>,
    ) -> Result<Option<T>, Self::Error>;

    /// Run `sql` for `args`; how many rows it changed.
    fn exec(&self, sql: &str, args: &[&dyn Arg]) -> Result<usize, Self::Error>;

    /// Run statements without arguments or results (`BEGIN`, `COMMIT`, `SAVEPOINT x`, …).
    fn batch(&self, sql: &str) -> Result<(), Self::Error>;

    /// The error for a row the schema guarantees (the log head) that is not there.
    fn missing(what: &'static str) -> Self::Error;

    /// `lite` on SQLite, `pg` on PostgreSQL: for the few statements the engines spell
    /// differently.
    fn dialect<'a>(&self, lite: &'a str, pg: &'a str) -> &'a str {
        if self.is_postgres() {
            pg
        } else {
            lite
        }
    }
}

impl Sql for rusqlite::Connection {
    type Error = rusqlite::Error;
    type Row<'r> = rusqlite::Row<'r>;
    fn is_postgres(&self) -> bool {
        false
    }

    fn rows<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        lite_rows(self, sql, args, f)
    }

    fn row<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        lite_row(self, sql, args, f)
    }

    fn exec(&self, sql: &str, args: &[&dyn Arg]) -> rusqlite::Result<usize> {
        let mut stmt = self.prepare_cached(sql)?;
        bind(&mut stmt, args)?;
        stmt.raw_execute()
    }

    fn batch(&self, sql: &str) -> rusqlite::Result<()> {
        self.execute_batch(sql)
    }

    fn missing(_: &'static str) -> rusqlite::Error {
        rusqlite::Error::QueryReturnedNoRows
    }
}

/// Every row of the cached statement `sql` for `args`, each read by `f`.
fn lite_rows<T, E: From<rusqlite::Error>>(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn Arg],
    mut f: impl FnMut(&rusqlite::Row<'_>) -> Result<T, E>,
) -> Result<Vec<T>, E> {
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(row)?);
    }
    Ok(out)
}

/// The first row of the cached statement `sql` for `args`, read by `f`.
fn lite_row<T, E: From<rusqlite::Error>>(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn Arg],
    f: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, E>,
) -> Result<Option<T>, E> {
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    // A write (`INSERT … RETURNING`) runs to its end, so that an error after the first row
    // (or an implicit commit's) is reported, not lost with the statement.
    let writes = !stmt.readonly();
    let mut rows = stmt.raw_query();
    let first = match rows.next()? {
        Some(row) => Some(f(row)?),
        None => None,
    };
    if writes {
        while rows.next()?.is_some() {}
    }
    Ok(first)
}

/// Bind `args` to `stmt`'s parameters 1, 2, …
fn bind(stmt: &mut rusqlite::Statement<'_>, args: &[&dyn Arg]) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if expected != args.len() {
        return Err(rusqlite::Error::InvalidParameterCount(args.len(), expected));
    }
    for (i, a) in args.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, a.lite())?;
    }
    Ok(())
}

/// A PostgreSQL connection as queries use it: statements prepared once (under their rewritten
/// text) and kept for the life of the connection.
pub struct PgConn {
    client: RefCell<postgres::Client>,
    /// How to connect again once the connection is lost (a PostgreSQL restart), and the
    /// settings to apply to each new session; `None`: never.
    reconnect: Option<Box<(postgres::Config, &'static str)>>,
    prepared: RefCell<HashMap<String, postgres::Statement>>,
    /// Whether a transaction this connection began is still open.
    open: std::cell::Cell<bool>,
    /// Whether a statement failed inside it: PostgreSQL then refuses everything but a
    /// rollback (to a savepoint, which clears this, or of the whole transaction).
    failed: std::cell::Cell<bool>,
    /// Whether a call found the connection gone (the server restarted or cut it): the
    /// driver's own flag is not always set then.
    broken: std::cell::Cell<bool>,
}

impl PgConn {
    /// Wrap a connected client.
    pub fn new(client: postgres::Client) -> PgConn {
        PgConn {
            client: RefCell::new(client),
            reconnect: None,
            prepared: RefCell::new(HashMap::new()),
            open: std::cell::Cell::new(false),
            failed: std::cell::Cell::new(false),
            broken: std::cell::Cell::new(false),
        }
    }

    /// Connect with `config` and run `setup` (session settings) on the new session, and
    /// again on each new session should the connection be lost: the next statement outside
    /// a transaction connects again (a transaction the loss cut short fails as a whole).
    pub fn connect(config: postgres::Config, setup: &'static str) -> Result<PgConn, PgError> {
        let mut client = config.connect(postgres::NoTls)?;
        client.batch_execute(setup)?;
        Ok(PgConn {
            reconnect: Some(Box::new((config, setup))),
            ..PgConn::new(client)
        })
    }

    /// The client itself, for what queries do not cover (`COPY`, notifications).
    pub fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        self.client.borrow_mut()
    }

    /// Run `f` on the client, for what the shared interface cannot say (array parameters),
    /// with the connection's state kept as for any statement (a failure inside a
    /// transaction leaves it failed; a lost connection is opened again next time).
    pub fn run<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, PgError> {
        let mut client = self.noted(self.ready())?;
        let out = f(&mut client);
        drop(client);
        Ok(self.noted(out)?)
    }

    /// [`PgConn::run`] with `sql`'s statement, prepared on first use and kept like every
    /// query's (on the same client: a connection opened again comes with its own).
    pub fn run_prepared<T>(
        &self,
        sql: &str,
        f: impl FnOnce(&mut postgres::Client, &postgres::Statement) -> Result<T, postgres::Error>,
    ) -> Result<T, PgError> {
        let mut client = self.noted(self.ready())?;
        let statement = self.noted(self.prepared_on(&mut client, sql))?;
        let out = f(&mut client, &statement);
        drop(client);
        Ok(self.noted(out)?)
    }

    /// `BEGIN`, then `sql` (a query of one value), in one round trip: the value as text.
    pub fn begin_with(&self, sql: &str) -> Result<Option<String>, PgError> {
        let mut client = self.noted(self.ready())?;
        self.note_transaction("BEGIN");
        let out = client.simple_query(&format!("BEGIN; {sql}"));
        drop(client);
        self.ended_on_error("BEGIN", out)
    }

    /// `sql` (a query of one value, or none), then `COMMIT`, in one round trip: the value as
    /// text. On any error the transaction is over (rolled back).
    pub fn commit_with(&self, sql: &str) -> Result<Option<String>, PgError> {
        let mut client = self.noted(self.ready())?;
        let out = client.simple_query(&format!("{sql}; COMMIT"));
        drop(client);
        self.note_transaction("COMMIT");
        self.ended_on_error("COMMIT", out)
    }

    /// The first value of `out`; on an error, roll back what may be left open (a statement
    /// after `BEGIN` failed, or the one before `COMMIT`).
    fn ended_on_error(
        &self,
        what: &str,
        out: Result<Vec<postgres::SimpleQueryMessage>, postgres::Error>,
    ) -> Result<Option<String>, PgError> {
        match out {
            Ok(messages) => Ok(messages.iter().find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })),
            Err(e) => {
                if !e.is_closed() {
                    let _ = self.client.borrow_mut().batch_execute("ROLLBACK");
                }
                self.open.set(false);
                self.failed.set(false);
                tracing::debug!("{what} with a statement failed: {e}");
                Ok(self.noted(Err(e))?)
            }
        }
    }

    /// The client, connected again first if the connection was lost outside a transaction.
    fn ready(&self) -> Result<std::cell::RefMut<'_, postgres::Client>, postgres::Error> {
        let mut client = self.client.borrow_mut();
        let gone = client.is_closed() || self.broken.get();
        if let (true, false, Some((config, setup))) =
            (gone, self.open.get(), self.reconnect.as_deref())
        {
            let mut fresh = config.connect(postgres::NoTls)?;
            fresh.batch_execute(setup)?;
            *client = fresh;
            self.prepared.borrow_mut().clear();
            self.failed.set(false);
            self.broken.set(false);
        }
        Ok(client)
    }

    /// Whether a transaction is open on this connection (one begun through [`Sql::exec`] or
    /// [`Sql::batch`]), so a reader thread can end what a failed job left open.
    pub fn in_transaction(&self) -> bool {
        self.open.get()
    }

    /// Whether the open transaction can still do work: no statement failed in it since its
    /// start or the last rollback to a savepoint.
    pub fn usable(&self) -> bool {
        self.open.get() && !self.failed.get()
    }

    /// Follow `BEGIN`, `COMMIT` and `ROLLBACK` (a failed `COMMIT` ends the transaction too),
    /// and `ROLLBACK TO`, which makes a failed transaction usable again.
    fn note_transaction(&self, sql: &str) {
        let first = sql
            .split(|c: char| c.is_whitespace() || c == ';')
            .find(|w| !w.is_empty())
            .unwrap_or("");
        let to_savepoint = || sql.to_ascii_uppercase().contains(" TO ");
        if first.eq_ignore_ascii_case("BEGIN") || first.eq_ignore_ascii_case("START") {
            self.open.set(true);
            self.failed.set(false);
        } else if ["COMMIT", "ROLLBACK", "END"]
            .iter()
            .any(|w| first.eq_ignore_ascii_case(w))
        {
            if !to_savepoint() {
                self.open.set(false);
            }
            self.failed.set(false);
        }
    }

    /// A `BEGIN` that failed began nothing (a batch must put nothing after its `BEGIN`).
    fn began<T>(
        &self,
        sql: &str,
        result: Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let first = sql
            .split(|c: char| c.is_whitespace() || c == ';')
            .find(|w| !w.is_empty());
        if result.is_err() && first.is_some_and(|w| w.eq_ignore_ascii_case("BEGIN")) {
            self.open.set(false);
            self.failed.set(false);
        }
        result
    }

    /// Note a statement's failure: inside a transaction, it leaves the transaction failed.
    fn noted<T>(&self, result: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if let Err(e) = &result {
            if self.open.get() {
                self.failed.set(true);
            }
            // The connection is gone, or the server ends it (a shutdown, an administrator,
            // an idle transaction's timeout): connect again for the next transaction.
            let ended = e
                .as_db_error()
                .is_some_and(|db| db.severity() == "FATAL" || db.code().code().starts_with("57P"));
            if e.is_closed() || ended {
                self.broken.set(true);
            }
        }
        result
    }

    /// `sql`'s prepared statement, preparing it on first use.
    fn statement(&self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        let mut client = self.ready()?;
        self.prepared_on(&mut client, sql)
    }

    /// `sql`'s prepared statement on `client` (this connection's, as [`PgConn::ready`] gave
    /// it), preparing it on first use (`sql` with `?1` or `$1` parameters).
    fn prepared_on(
        &self,
        client: &mut postgres::Client,
        sql: &str,
    ) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.prepared.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = client.prepare(&to_postgres(sql))?;
        self.prepared
            .borrow_mut()
            .insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    fn query(&self, sql: &str, args: &[&dyn Arg]) -> Result<Vec<postgres::Row>, postgres::Error> {
        let first = self.query_once(sql, args);
        // A read outside a transaction on a connection found lost (PostgreSQL restarted, or
        // failed over): connect again and read once more, so the first request after a
        // restart does not fail. (A plain `SELECT` changes nothing, so running it twice is
        // harmless; writes are never repeated.)
        let is_read = sql
            .trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"));
        if first.is_err()
            && is_read
            && !self.open.get()
            && self.broken.get()
            && self.reconnect.is_some()
        {
            return self.query_once(sql, args);
        }
        first
    }

    /// After `sql` failed: whether it was a `BEGIN` on a connection found lost, which never
    /// ran and may be sent again on a new connection.
    fn lost_before(&self, sql: &str) -> bool {
        let begins = sql
            .split(|c: char| c.is_whitespace() || c == ';')
            .find(|w| !w.is_empty())
            .is_some_and(|w| w.eq_ignore_ascii_case("BEGIN"));
        begins && self.broken.get() && self.reconnect.is_some()
    }

    fn exec_once(&self, sql: &str, args: &[&dyn Arg]) -> Result<usize, PgError> {
        // Connected (again) before `BEGIN` counts; `COMMIT` and `ROLLBACK` end the
        // transaction even when they cannot be sent.
        let stmt = self.statement(sql);
        self.note_transaction(sql);
        let stmt = self.noted(self.began(sql, stmt))?;
        let args: Vec<_> = args.iter().map(|a| a.pg()).collect();
        let n = self.client.borrow_mut().execute(&stmt, &args);
        let n = self.noted(self.began(sql, n))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn batch_once(&self, sql: &str) -> Result<(), PgError> {
        let mut client = self.noted(self.ready())?;
        self.note_transaction(sql);
        let done = client.batch_execute(sql);
        drop(client);
        Ok(self.noted(self.began(sql, done))?)
    }

    fn query_once(
        &self,
        sql: &str,
        args: &[&dyn Arg],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let stmt = self.noted(self.statement(sql))?;
        let args: Vec<_> = args.iter().map(|a| a.pg()).collect();
        let rows = self.client.borrow_mut().query(&stmt, &args);
        self.noted(rows)
    }
}

impl Sql for PgConn {
    type Error = PgError;
    type Row<'r> = postgres::Row;
    fn is_postgres(&self) -> bool {
        true
    }

    fn rows<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnMut(&postgres::Row) -> Result<T, PgError>,
    ) -> Result<Vec<T>, PgError> {
        self.query(sql, args)?.iter().map(f).collect()
    }

    fn row<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&postgres::Row) -> Result<T, PgError>,
    ) -> Result<Option<T>, PgError> {
        self.query(sql, args)?.first().map(f).transpose()
    }

    fn exec(&self, sql: &str, args: &[&dyn Arg]) -> Result<usize, PgError> {
        let done = self.exec_once(sql, args);
        if done.is_err() && self.lost_before(sql) {
            return self.exec_once(sql, args);
        }
        done
    }

    fn batch(&self, sql: &str) -> Result<(), PgError> {
        let done = self.batch_once(sql);
        if done.is_err() && self.lost_before(sql) {
            return self.batch_once(sql);
        }
        done
    }

    fn missing(what: &'static str) -> PgError {
        PgError::Missing(what)
    }
}

/// A connection to either store, for code that serves both: the store's reader threads and
/// writer hold one, and its jobs run the generic queries on it. Each query costs one branch
/// more than on the driver's own connection.
pub enum Conn {
    /// The embedded SQLite database.
    Lite(rusqlite::Connection),
    /// PostgreSQL (cluster mode).
    Pg(PgConn),
}

/// What a query on either store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Lite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error (or sent an impossible value).
    #[error("postgresql: {0}")]
    Pg(#[from] PgError),
    /// A row the same transaction wrote or checked was not there.
    #[error("missing: {0}")]
    Missing(&'static str),
    /// A file beside the database (an upload, an avatar) could not be written or removed.
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<postgres::Error> for SqlError {
    fn from(e: postgres::Error) -> SqlError {
        SqlError::Pg(PgError::Db(e))
    }
}

/// A row of either store.
pub enum AnyRow<'r> {
    /// From SQLite.
    Lite(&'r rusqlite::Row<'r>),
    /// From PostgreSQL.
    Pg(&'r postgres::Row),
}

impl Row for AnyRow<'_> {
    type Error = SqlError;
    fn get<T: Value>(&self, i: usize) -> Result<T, SqlError> {
        match self {
            AnyRow::Lite(r) => Ok(T::lite(r, i)?),
            AnyRow::Pg(r) => Ok(T::pg(r, i)?),
        }
    }
    fn text(&self, i: usize) -> Result<Option<&[u8]>, SqlError> {
        match self {
            AnyRow::Lite(r) => Ok(r.text(i)?),
            AnyRow::Pg(r) => Ok(r.text(i)?),
        }
    }
}

impl Conn {
    /// The SQLite connection, for what only SQLite has (its writer, the progress handler).
    pub fn lite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Lite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }

    /// Whether a transaction is open, to be rolled back before the connection's next job.
    pub fn in_transaction(&self) -> bool {
        match self {
            Conn::Lite(c) => !c.is_autocommit(),
            Conn::Pg(c) => c.in_transaction(),
        }
    }

    /// Whether a transaction is open and can still do work. SQLite ends the whole
    /// transaction on some failures (disk full, I/O); PostgreSQL keeps it open but refuses
    /// everything in it after any failure, until a rollback to a savepoint.
    pub fn usable_transaction(&self) -> bool {
        match self {
            Conn::Lite(c) => !c.is_autocommit(),
            Conn::Pg(c) => c.usable(),
        }
    }
}

impl Sql for Conn {
    type Error = SqlError;
    type Row<'r> = AnyRow<'r>;

    fn is_postgres(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    fn rows<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        mut f: impl FnMut(&AnyRow<'_>) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        match self {
            Conn::Lite(c) => lite_rows(c, sql, args, |r| f(&AnyRow::Lite(r))),
            Conn::Pg(c) => c
                .query(sql, args)?
                .iter()
                .map(|r| f(&AnyRow::Pg(r)))
                .collect(),
        }
    }

    fn row<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&AnyRow<'_>) -> Result<T, SqlError>,
    ) -> Result<Option<T>, SqlError> {
        match self {
            Conn::Lite(c) => lite_row(c, sql, args, |r| f(&AnyRow::Lite(r))),
            Conn::Pg(c) => c
                .query(sql, args)?
                .first()
                .map(|r| f(&AnyRow::Pg(r)))
                .transpose(),
        }
    }

    fn exec(&self, sql: &str, args: &[&dyn Arg]) -> Result<usize, SqlError> {
        match self {
            Conn::Lite(c) => Ok(Sql::exec(c, sql, args)?),
            Conn::Pg(c) => Ok(Sql::exec(c, sql, args)?),
        }
    }

    fn batch(&self, sql: &str) -> Result<(), SqlError> {
        match self {
            Conn::Lite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(c) => Ok(Sql::batch(c, sql)?),
        }
    }

    fn missing(what: &'static str) -> SqlError {
        SqlError::Missing(what)
    }
}

/// Rewrite SQLite's parameters for PostgreSQL: `?N` becomes `$N` and a bare `?` the next
/// number, outside string literals, quoted names and comments.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next = 0u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                // Copy through the closing quote (a doubled quote is an escaped one and
                // simply opens the literal again).
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&next.to_string());
                } else {
                    out.push_str(&digits);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_outside_literals_and_comments() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?3' -- ?4\n AND e = ?2"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?3' -- ?4\n AND e = $2"
        );
        assert_eq!(
            to_postgres("INSERT INTO \"t?\" VALUES (?, ?, 'it''s ?')"),
            "INSERT INTO \"t?\" VALUES ($1, $2, 'it''s ?')"
        );
    }

    type Script = (usize, Vec<(i64, Option<String>, bool)>, Option<i64>);

    /// The same statements on any connection.
    fn script<C: Sql>(c: &C) -> Result<Script, C::Error> {
        let n = c.exec(
            "INSERT INTO t (name, flag) VALUES (?1, ?2), (NULL, ?3)",
            args!["a", true, false],
        )?;
        let rows = c.rows(
            "SELECT id, name, flag FROM t WHERE id > ?1 ORDER BY id",
            args![0i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let none = c.row("SELECT id FROM t WHERE id = ?1", args![9i64], |r| r.get(0))?;
        Ok((n, rows, none))
    }

    #[test]
    fn sqlite_rows_read_through_the_shared_interface() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, flag INTEGER NOT NULL)")
            .unwrap();
        let (n, rows, none) = script(&c).unwrap();
        assert_eq!(n, 2);
        assert_eq!(rows, vec![(1, Some("a".into()), true), (2, None, false)]);
        assert_eq!(none, None);
        let wrong = c.exec("SELECT ?1, ?2", args![1i64]);
        assert!(matches!(
            wrong,
            Err(rusqlite::Error::InvalidParameterCount(1, 2))
        ));
    }
}
