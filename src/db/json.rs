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

/// The path (`issue.fields.labels[2]`) of the first string or key in `value` holding a NUL
/// character, which PostgreSQL's text and jsonb cannot store: such input is refused where it
/// comes in, naming the field, rather than failing in the database.
pub fn nul_path(value: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, at: &mut String) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                let found = walk(item, at);
                if !found {
                    at.truncate(len);
                }
                found
            }),
            serde_json::Value::Object(map) => map.iter().any(|(k, item)| {
                let len = at.len();
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(&k.replace('\0', "\\u0000"));
                let found = k.contains('\0') || walk(item, at);
                if !found {
                    at.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut at = String::new();
    walk(value, &mut at).then(|| if at.is_empty() { "body".into() } else { at })
}

/// Whether a time can be real event data: between 1990 and 2200. PostgreSQL refuses times
/// far outside any real range, and a year 0 or 9999 is never a real incident.
pub fn plausible_time(t: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike;
    (1990..=2200).contains(&t.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_values_compactly() {
        let v = serde_json::json!({"a": [1, 2], "b": "x"});
        assert_eq!(JsonText::of(&v).0, r#"{"a":[1,2],"b":"x"}"#);
    }

    #[test]
    fn nul_paths_name_the_field() {
        let v =
            serde_json::json!({"issue": {"key": "OPS-1", "fields": {"labels": ["a", "b\u{0}"]}}});
        assert_eq!(nul_path(&v).as_deref(), Some("issue.fields.labels[1]"));
        assert_eq!(nul_path(&serde_json::json!({"a": [1, "x"]})), None);
        assert_eq!(
            nul_path(&serde_json::json!("\u{0}")).as_deref(),
            Some("body")
        );
        let key = serde_json::json!({"ok": 1, "b\u{0}d": 2});
        assert_eq!(nul_path(&key).as_deref(), Some("b\\u0000d"));
    }

    #[test]
    fn times_outside_any_real_range_are_implausible() {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        assert!(plausible_time(at("2026-03-14T09:26:52Z")));
        assert!(
            plausible_time(at("2010-01-01T00:00:00Z")),
            "replayed history"
        );
        assert!(!plausible_time(at("9999-01-01T00:00:00Z")));
        assert!(!plausible_time(at("0001-01-01T00:00:00Z")));
    }
}
