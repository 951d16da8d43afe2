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

/// Why a body is not JSON Goliath takes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyJsonError {
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    /// The path of a key an object names twice (`event.data.id`).
    #[error("key `{0}` appears twice in its object; each key may appear only once")]
    DuplicateKey(String),
}

/// Parses a request body as JSON, refusing any object that names a key twice, at any depth.
///
/// serde_json keeps the last of a repeated key's values without a word, while the text (stored
/// as the raw payload) still holds the others: a check made on the parsed value, such as
/// [`nul_path`] or a length limit, would pass a value it never saw. Refusing repeats makes
/// the parsed value all there is to check.
pub fn parse_unique(body: &[u8]) -> Result<serde_json::Value, BodyJsonError> {
    use serde::de::DeserializeSeed;
    let repeated = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Unique {
        at: At::Root,
        repeated: &repeated,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    parsed.map_err(|e| match repeated.into_inner() {
        Some(path) => BodyJsonError::DuplicateKey(path),
        None => BodyJsonError::Malformed(e.to_string()),
    })
}

/// Where a value sits in the document, written out only when a repeat is found.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    /// The path as [`nul_path`] writes it: `issue.fields.labels[2]`.
    fn write(&self, out: &mut String) {
        match self {
            At::Root => {}
            At::Key(parent, key) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key.replace('\0', "\\u0000"));
            }
            At::Index(parent, i) => {
                parent.write(out);
                out.push_str(&format!("[{i}]"));
            }
        }
    }
}

/// Builds a [`serde_json::Value`] as serde_json does, but stops at a repeated key and records
/// its path in `repeated`.
struct Unique<'a> {
    at: At<'a>,
    repeated: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let at = self.at;
        while let Some(item) = seq.next_element_seed(Unique {
            at: At::Index(&at, items.len()),
            repeated: self.repeated,
        })? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        let at = self.at;
        while let Some(key) = map.next_key::<String>()? {
            let here = At::Key(&at, &key);
            if object.contains_key(&key) {
                let mut path = String::new();
                here.write(&mut path);
                *self.repeated.borrow_mut() = Some(path);
                return Err(serde::de::Error::custom("a key appears twice"));
            }
            let value = map.next_value_seed(Unique {
                at: here,
                repeated: self.repeated,
            })?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
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
    fn a_repeated_key_is_refused_naming_its_path() {
        let parse = |s: &str| parse_unique(s.as_bytes());
        let doc = r#"{"a":[1,{"b":null,"c":[true,-2,3.5,"x"]}],"d":{}}"#;
        assert_eq!(
            parse(doc),
            Ok(serde_json::from_str::<serde_json::Value>(doc).unwrap())
        );
        assert_eq!(
            parse(r#"{"x":"\u0000","x":1}"#),
            Err(BodyJsonError::DuplicateKey("x".into()))
        );
        assert_eq!(
            parse(r#"{"e":{"d":[{"k":1},{"k":1,"\u006b":2}]}}"#),
            Err(BodyJsonError::DuplicateKey("e.d[1].k".into()))
        );
        assert!(matches!(parse("{"), Err(BodyJsonError::Malformed(_))));
        assert!(matches!(parse("{} {}"), Err(BodyJsonError::Malformed(_))));
        assert!(matches!(
            parse(&"[".repeat(200)),
            Err(BodyJsonError::Malformed(_))
        ));
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
