//! Raw SQL that each connection prepares once. diesel never prepares `sql_query` (it cannot
//! know the text is fixed), so the server parses, analyzes and plans it on every call; for the
//! statements the intake runs on every batch that was a large part of their cost. A
//! [`Statement`] is a fixed text with its own type, which is the key diesel caches the
//! prepared statement under.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Double, Json, Jsonb, Nullable, Text, Timestamptz, Untyped};
use diesel::{QueryResult, RunQueryDsl};

use super::json::JsonText;

/// A fixed SQL text whose placeholders are `$1`, `$2`, ... in order, each used once.
pub trait Statement: 'static {
    const SQL: &'static str;
}

/// A value bound to the next placeholder.
pub enum Bind<'a> {
    Texts(&'a [String]),
    Strs(&'a [&'a str]),
    NullableTexts(&'a [Option<String>]),
    Jsons(&'a [JsonText]),
    Jsonbs(&'a [JsonText]),
    Times(&'a [DateTime<Utc>]),
    NullableTimes(&'a [Option<DateTime<Utc>>]),
    Doubles(&'a [f64]),
    BigInts(&'a [i64]),
    Text(&'a str),
    NullableText(Option<&'a str>),
    BigInt(&'a i64),
    Bool(&'a bool),
}

impl Bind<'_> {
    /// The PostgreSQL type the value is sent as, spelled as a cast in the SQL would spell it.
    pub fn sql_type(&self) -> &'static str {
        match self {
            Bind::Texts(_) | Bind::Strs(_) | Bind::NullableTexts(_) => "text[]",
            Bind::Jsons(_) => "json[]",
            Bind::Jsonbs(_) => "jsonb[]",
            Bind::Times(_) | Bind::NullableTimes(_) => "timestamptz[]",
            Bind::Doubles(_) => "float8[]",
            Bind::BigInts(_) => "bigint[]",
            Bind::Text(_) | Bind::NullableText(_) => "text",
            Bind::BigInt(_) => "bigint",
            Bind::Bool(_) => "boolean",
        }
    }
}

/// `S` with its binds, run with diesel's `execute` or `load` (rows by name).
pub struct Prepared<'a, S> {
    binds: Vec<Bind<'a>>,
    statement: PhantomData<S>,
}

impl<'a, S: Statement> Prepared<'a, S> {
    pub fn new() -> Self {
        Prepared {
            binds: vec![],
            statement: PhantomData,
        }
    }

    pub fn bind(mut self, value: Bind<'a>) -> Self {
        self.binds.push(value);
        self
    }

    /// Checks the binds against the statement: one per placeholder, and each of the type the
    /// SQL casts its placeholder to (placeholders without a cast are only counted).
    #[cfg(test)]
    pub fn check_binds(&self) -> Result<(), String> {
        let casts = placeholder_casts(S::SQL);
        if casts.len() != self.binds.len() {
            return Err(format!(
                "{} placeholders, {} binds",
                casts.len(),
                self.binds.len()
            ));
        }
        for (n, (cast, bind)) in casts.iter().zip(&self.binds).enumerate() {
            if let Some(cast) = cast {
                // Text sent for the SQL to read as JSON is the one conversion the statements make.
                let converted = bind.sql_type() == "text" && (cast == "json" || cast == "jsonb");
                if cast != bind.sql_type() && !converted {
                    return Err(format!(
                        "${} is cast to {cast} but bound as {}",
                        n + 1,
                        bind.sql_type()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The cast of each placeholder (`$5::text[]` gives `text[]`), in order; `None` where a
/// placeholder has none.
#[cfg(test)]
pub fn placeholder_casts(sql: &str) -> Vec<Option<String>> {
    let mut out = vec![];
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let tail = &after[digits..];
        let cast = tail.strip_prefix("::").map(|t| {
            t.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '[' || *c == ']')
                .collect::<String>()
        });
        out.push(cast);
        rest = tail;
    }
    out
}

impl<S: Statement> Default for Prepared<'_, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Statement> QueryId for Prepared<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S> Query for Prepared<'_, S> {
    type SqlType = Untyped;
}

impl<S, Conn> RunQueryDsl<Conn> for Prepared<'_, S> {}

impl<S: Statement> QueryFragment<Pg> for Prepared<'_, S> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Each bind writes the next `$n`, so the text between placeholders goes around them.
        let parts = sql_between_placeholders(S::SQL);
        if parts.len() != self.binds.len() + 1 {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "statement has {} placeholders, {} values bound",
                    parts.len() - 1,
                    self.binds.len()
                )
                .into(),
            ));
        }
        out.push_sql(parts[0]);
        for (value, sql) in self.binds.iter().zip(&parts[1..]) {
            match value {
                Bind::Texts(v) => out.push_bind_param::<Array<Text>, _>(*v)?,
                Bind::Strs(v) => out.push_bind_param::<Array<Text>, _>(*v)?,
                Bind::NullableTexts(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(*v)?,
                Bind::Jsons(v) => out.push_bind_param::<Array<Json>, _>(*v)?,
                Bind::Jsonbs(v) => out.push_bind_param::<Array<Jsonb>, _>(*v)?,
                Bind::Times(v) => out.push_bind_param::<Array<Timestamptz>, _>(*v)?,
                Bind::NullableTimes(v) => {
                    out.push_bind_param::<Array<Nullable<Timestamptz>>, _>(*v)?
                }
                Bind::Doubles(v) => out.push_bind_param::<Array<Double>, _>(*v)?,
                Bind::BigInts(v) => out.push_bind_param::<Array<BigInt>, _>(*v)?,
                Bind::Text(v) => out.push_bind_param::<Text, _>(*v)?,
                Bind::NullableText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Bind::BigInt(v) => out.push_bind_param::<BigInt, _>(*v)?,
                Bind::Bool(v) => out.push_bind_param::<diesel::sql_types::Bool, _>(*v)?,
            }
            out.push_sql(sql);
        }
        Ok(())
    }
}

/// The text around each `$n` placeholder of `sql`.
fn sql_between_placeholders(sql: &str) -> Vec<&str> {
    let mut parts = vec![];
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        parts.push(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        rest = &rest[at + 1 + digits..];
    }
    parts.push(rest);
    parts
}

/// Whether `sql` numbers its placeholders 1, 2, 3... in order, each once (what
/// [`Prepared`] assumes); for tests of each statement.
#[cfg(test)]
pub fn placeholders_in_order(sql: &str) -> Result<usize, String> {
    let mut expected = 1;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if digits != expected.to_string() {
            return Err(format!(
                "placeholder ${digits} where ${expected} was expected"
            ));
        }
        expected += 1;
        rest = &rest[at + 1 + digits.len()..];
    }
    Ok(expected - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_split_around_placeholders() {
        assert_eq!(sql_between_placeholders("a $1 b $2"), vec!["a ", " b ", ""]);
        assert_eq!(
            sql_between_placeholders("x = $12::text[]"),
            vec!["x = ", "::text[]"]
        );
        assert_eq!(sql_between_placeholders("none"), vec!["none"]);
    }

    struct Pair;
    impl Statement for Pair {
        const SQL: &'static str = "SELECT $1::text[], $2::bigint, $3";
    }

    #[test]
    fn binds_are_checked_against_the_casts_in_order() {
        let (texts, n) = (vec!["a".to_string()], 7i64);
        let right = Prepared::<Pair>::new()
            .bind(Bind::Texts(&texts))
            .bind(Bind::BigInt(&n))
            .bind(Bind::Bool(&true));
        assert_eq!(right.check_binds(), Ok(()));
        let swapped = Prepared::<Pair>::new()
            .bind(Bind::BigInt(&n))
            .bind(Bind::Texts(&texts))
            .bind(Bind::Bool(&true));
        assert!(swapped.check_binds().is_err());
        let short = Prepared::<Pair>::new().bind(Bind::Texts(&texts));
        assert!(short.check_binds().is_err());
    }

    #[test]
    fn casts_are_read_per_placeholder() {
        assert_eq!(
            placeholder_casts("f($1, $2::text[], $3::float8[]) AND x = $4::timestamptz"),
            vec![
                None,
                Some("text[]".to_string()),
                Some("float8[]".to_string()),
                Some("timestamptz".to_string())
            ]
        );
    }

    #[test]
    fn placeholders_must_run_in_order() {
        assert_eq!(placeholders_in_order("$1, $2, $3"), Ok(3));
        assert!(placeholders_in_order("$1, $3").is_err());
        assert!(placeholders_in_order("$2, $1").is_err());
        assert_eq!(placeholders_in_order("no binds"), Ok(0));
    }
}
