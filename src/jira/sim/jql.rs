//! The little JQL the simulator understands: `AND`-joined clauses `field = value`,
//! `field != value` and `field in (a, b)` over `labels`, `project`, `key`/`issuekey`, `id`,
//! `assignee`, `status` and `resolution` (`Unresolved`), then an optional
//! `ORDER BY created|updated|key [ASC|DESC]`.

use super::state::SimIssue;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Eq,
    NotEq,
    LParen,
    RParen,
    Comma,
}

fn tokenize(jql: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = jql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                out.push(Token::Eq);
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err("Error in the JQL Query: expecting '=' after '!'.".into());
                }
                out.push(Token::NotEq);
            }
            '(' => {
                chars.next();
                out.push(Token::LParen);
            }
            ')' => {
                chars.next();
                out.push(Token::RParen);
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '"' | '\'' => {
                let quote = c;
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("Error in the JQL Query: unterminated string.".into()),
                        Some('\\') => s.extend(chars.next()),
                        Some(ch) if ch == quote => break,
                        Some(ch) => s.push(ch),
                    }
                }
                out.push(Token::Str(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, '=' | '!' | '(' | ')' | ',' | '"' | '\'')
                    {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    field: String,
    negate: bool,
    values: Vec<String>,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    clauses: Vec<Clause>,
    order_field: String,
    descending: bool,
}

const FIELDS: &[&str] = &[
    "labels",
    "project",
    "key",
    "issuekey",
    "id",
    "assignee",
    "status",
    "resolution",
];

fn is_word(t: Option<&Token>, w: &str) -> bool {
    matches!(t, Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
}

fn value(t: Option<Token>) -> Result<String, String> {
    match t {
        Some(Token::Word(s)) | Some(Token::Str(s)) => Ok(s),
        _ => Err("Error in the JQL Query: expecting a value.".into()),
    }
}

impl Query {
    pub fn parse(jql: &str) -> Result<Query, String> {
        let mut tokens = tokenize(jql)?.into_iter().peekable();
        let mut clauses = Vec::new();
        let (mut order_field, mut descending) = ("created".to_owned(), false);
        while let Some(tok) = tokens.next() {
            let Token::Word(word) = tok else {
                return Err("Error in the JQL Query: expecting a field name.".into());
            };
            if word.eq_ignore_ascii_case("order") {
                if !is_word(tokens.next().as_ref(), "by") {
                    return Err("Error in the JQL Query: expecting 'by' after 'order'.".into());
                }
                order_field = value(tokens.next())?.to_ascii_lowercase();
                descending = is_word(tokens.peek(), "desc");
                break;
            }
            if word.eq_ignore_ascii_case("and") && !clauses.is_empty() {
                continue;
            }
            let field = word.to_ascii_lowercase();
            if !FIELDS.contains(&field.as_str()) {
                return Err(format!(
                    "Field '{word}' does not exist or you do not have permission to view it."
                ));
            }
            let clause = match tokens.next() {
                Some(Token::Eq) => Clause {
                    field,
                    negate: false,
                    values: vec![value(tokens.next())?],
                },
                Some(Token::NotEq) => Clause {
                    field,
                    negate: true,
                    values: vec![value(tokens.next())?],
                },
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => {
                    if tokens.next() != Some(Token::LParen) {
                        return Err("Error in the JQL Query: expecting '(' after 'in'.".into());
                    }
                    let mut values = Vec::new();
                    loop {
                        values.push(value(tokens.next())?);
                        match tokens.next() {
                            Some(Token::Comma) => continue,
                            Some(Token::RParen) => break,
                            _ => return Err("Error in the JQL Query: expecting ')'.".into()),
                        }
                    }
                    Clause {
                        field,
                        negate: false,
                        values,
                    }
                }
                _ => {
                    return Err(format!(
                        "Error in the JQL Query: expecting an operator after '{word}'."
                    ))
                }
            };
            clauses.push(clause);
        }
        Ok(Query {
            clauses,
            order_field,
            descending,
        })
    }

    /// A query with no restriction (only an ORDER BY) is unbounded.
    pub fn is_bounded(&self) -> bool {
        !self.clauses.is_empty()
    }

    pub fn matches(&self, issue: &SimIssue) -> bool {
        self.clauses.iter().all(|c| {
            let hit = c.values.iter().any(|v| clause_matches(&c.field, v, issue));
            hit != c.negate
        })
    }

    /// Sorts matching issues (creation order in the input) as the ORDER BY asks.
    pub fn sort(&self, issues: &mut [&SimIssue]) {
        match self.order_field.as_str() {
            "updated" => issues.sort_by_key(|i| i.updated_ms),
            "key" | "issuekey" | "id" => issues.sort_by_key(|i| i.id.parse::<u64>().unwrap_or(0)),
            _ => issues.sort_by_key(|i| (i.created_ms, i.id.parse::<u64>().unwrap_or(0))),
        }
        if self.descending {
            issues.reverse();
        }
    }
}

fn clause_matches(field: &str, v: &str, issue: &SimIssue) -> bool {
    let empty = v.eq_ignore_ascii_case("empty") || v.eq_ignore_ascii_case("null");
    match field {
        "labels" => issue.labels.iter().any(|l| l.eq_ignore_ascii_case(v)),
        "project" => issue.project_key.eq_ignore_ascii_case(v),
        "key" | "issuekey" => issue.key.eq_ignore_ascii_case(v) || issue.id == v,
        "id" => issue.id == v,
        "assignee" => match &issue.assignee {
            None => empty,
            Some(a) => a == v,
        },
        "status" => {
            let status = if issue.resolution.is_some() {
                "Done"
            } else {
                "To Do"
            };
            status.eq_ignore_ascii_case(v)
        }
        "resolution" => match &issue.resolution {
            None => v.eq_ignore_ascii_case("unresolved") || empty,
            Some(r) => r.eq_ignore_ascii_case(v),
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_label_queries_with_and_and_order_by() {
        let q = Query::parse(r#"project = OPS AND labels = "goliath-42" ORDER BY created DESC"#)
            .unwrap();
        assert_eq!(q.clauses.len(), 2);
        assert_eq!(q.clauses[1].values, ["goliath-42"]);
        assert!(q.descending);
        let q = Query::parse("labels = goliath-7").unwrap();
        assert_eq!(q.clauses[0].values, ["goliath-7"]);
        let q = Query::parse(r#"labels in ("a", b) and status != Done"#).unwrap();
        assert_eq!(q.clauses[0].values, ["a", "b"]);
        assert!(q.clauses[1].negate);
        let q = Query::parse(r#"labels = "x \"y\"""#).unwrap();
        assert_eq!(q.clauses[0].values, [r#"x "y""#]);
    }

    #[test]
    fn rejects_unknown_fields_bad_syntax_and_flags_unbounded_queries() {
        assert!(Query::parse("colour = red")
            .unwrap_err()
            .contains("Field 'colour' does not exist"));
        assert!(Query::parse("labels").is_err());
        assert!(Query::parse("labels = \"open").is_err());
        assert!(!Query::parse("order by key desc").unwrap().is_bounded());
    }
}
