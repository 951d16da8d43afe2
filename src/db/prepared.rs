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

    #[test]
    fn placeholders_must_run_in_order() {
        assert_eq!(placeholders_in_order("$1, $2, $3"), Ok(3));
        assert!(placeholders_in_order("$1, $3").is_err());
        assert!(placeholders_in_order("$2, $1").is_err());
        assert_eq!(placeholders_in_order("no binds"), Ok(0));
    }
}
