//! JSON that is already text, bound as `json` or `jsonb` as is. Writing a `serde_json::Value`
//! builds a tree only to print it again; for large documents written on the hot path (the raw
//! webhook body, a decision's audit) that is most of the cost.

use std::io::Write;

use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Json, Jsonb};

/// A JSON document as text. The caller guarantees it is valid JSON (it was parsed or printed
/// by serde_json); PostgreSQL checks it again on input.
#[derive(Debug, Clone, AsExpression)]
#[diesel(sql_type = Json)]
#[diesel(sql_type = Jsonb)]
pub struct JsonText(pub String);

impl JsonText {
    /// Prints a serializable value.
    pub fn of<T: serde::Serialize + ?Sized>(value: &T) -> JsonText {
        // Serializing our own types to a string cannot fail (no non-string map keys).
        JsonText(serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
    }
}

impl ToSql<Json, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.0.as_bytes())?;
        Ok(serialize::IsNull::No)
    }
}

impl ToSql<Jsonb, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb's binary input format: a version byte, then the text.
        out.write_all(&[1])?;
        out.write_all(self.0.as_bytes())?;
        Ok(serialize::IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_values_compactly() {
        let v = serde_json::json!({"a": [1, 2], "b": "x"});
        assert_eq!(JsonText::of(&v).0, r#"{"a":[1,2],"b":"x"}"#);
    }
}
