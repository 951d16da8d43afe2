//! Issue descriptions: Atlassian Document Format for Jira Cloud (REST v3) and wiki markup for
//! Jira Data Center (REST v2).
//!
//! ADF rules observed here: text nodes must not be empty, marks are `strong` and
//! `link{href}`, a `bulletList` needs at least one `listItem`, and each `listItem` holds a
//! paragraph.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What Goliath tells the assignee about a work item. Rendered by [`to_adf`] or [`to_wiki`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IssueDescription {
    /// Incident title, as PagerDuty has it.
    pub title: String,
    /// Service name (display form).
    pub service: String,
    /// Severity, e.g. `SEV2` or `high`.
    pub severity: String,
    /// Link to the PagerDuty incident, when known.
    pub pagerduty_url: Option<String>,
    /// Why this owner was chosen (the decision explanation).
    pub explanation: String,
    /// Display names of the backups, in order.
    pub backups: Vec<String>,
    /// Goliath's work item id.
    pub work_item_id: String,
}

fn text(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

fn strong(s: &str) -> Value {
    json!({"type": "text", "text": s, "marks": [{"type": "strong"}]})
}

fn link(s: &str, href: &str) -> Value {
    json!({"type": "text", "text": s, "marks": [{"type": "link", "attrs": {"href": href}}]})
}

fn paragraph(content: Vec<Value>) -> Value {
    json!({"type": "paragraph", "content": content})
}

fn heading(level: u8, s: &str) -> Value {
    json!({"type": "heading", "attrs": {"level": level}, "content": [text(s)]})
}

/// `Label: value` as a paragraph with a bold label; `None` when the value is empty (ADF rejects
/// empty text nodes).
fn labelled(label: &str, value: &str) -> Option<Value> {
    let value = value.trim();
    (!value.is_empty()).then(|| paragraph(vec![strong(&format!("{label}: ")), text(value)]))
}

/// Renders the description as an ADF document (`{"type":"doc","version":1,...}`).
pub fn to_adf(d: &IssueDescription) -> Value {
    let mut content = Vec::new();
    if !d.title.trim().is_empty() {
        content.push(heading(2, d.title.trim()));
    }
    content.extend(labelled("Service", &d.service));
    content.extend(labelled("Severity", &d.severity));
    if let Some(url) = d.pagerduty_url.as_deref().filter(|u| !u.trim().is_empty()) {
        content.push(paragraph(vec![
            strong("PagerDuty: "),
            link("open the incident", url.trim()),
        ]));
    }
    if !d.explanation.trim().is_empty() {
        content.push(heading(3, "Why you"));
        for para in d.explanation.split("\n\n").map(str::trim) {
            if !para.is_empty() {
                content.push(paragraph(vec![text(para)]));
            }
        }
    }
    let backups: Vec<&str> = d
        .backups
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
        .collect();
    if !backups.is_empty() {
        content.push(heading(3, "Backups"));
        let items: Vec<Value> = backups
            .iter()
            .map(|b| json!({"type": "listItem", "content": [paragraph(vec![text(b)])]}))
            .collect();
        content.push(json!({"type": "bulletList", "content": items}));
    }
    content.extend(labelled("Goliath work item", &d.work_item_id));
    if content.is_empty() {
        // An empty doc is valid ADF, but an empty paragraph is clearer in the Jira editor.
        content.push(json!({"type": "paragraph", "content": []}));
    }
    json!({"type": "doc", "version": 1, "content": content})
}

/// Escapes the wiki-markup characters that would otherwise start a macro, link or table cell.
fn wiki_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '{' | '}' | '[' | ']' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Renders the description as Jira wiki markup (Data Center, REST v2).
pub fn to_wiki(d: &IssueDescription) -> String {
    let mut lines: Vec<String> = Vec::new();
    if !d.title.trim().is_empty() {
        lines.push(format!("h2. {}", wiki_escape(d.title.trim())));
    }
    for (label, value) in [("Service", &d.service), ("Severity", &d.severity)] {
        if !value.trim().is_empty() {
            lines.push(format!("*{label}:* {}", wiki_escape(value.trim())));
        }
    }
    if let Some(url) = d.pagerduty_url.as_deref().filter(|u| !u.trim().is_empty()) {
        lines.push(format!("*PagerDuty:* [open the incident|{}]", url.trim()));
    }
    if !d.explanation.trim().is_empty() {
        lines.push(String::new());
        lines.push("h3. Why you".to_owned());
        lines.push(wiki_escape(d.explanation.trim()));
    }
    let backups: Vec<&str> = d
        .backups
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
        .collect();
    if !backups.is_empty() {
        lines.push(String::new());
        lines.push("h3. Backups".to_owned());
        lines.extend(backups.iter().map(|b| format!("* {}", wiki_escape(b))));
    }
    if !d.work_item_id.trim().is_empty() {
        lines.push(String::new());
        lines.push(format!(
            "*Goliath work item:* {}",
            wiki_escape(d.work_item_id.trim())
        ));
    }
    lines.join("\n")
}

/// Flattens an ADF document to plain text (one line per block, `* ` before list items, link
/// targets in parentheses). A JSON string is returned as is; anything else gives "".
pub fn adf_to_plain_text(doc: &Value) -> String {
    fn inline(node: &Value, out: &mut String) {
        match node.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = node.get("text").and_then(Value::as_str).unwrap_or("");
                out.push_str(t);
                let href = node
                    .get("marks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|m| m.get("type").and_then(Value::as_str) == Some("link"))
                    .and_then(|m| m.pointer("/attrs/href"))
                    .and_then(Value::as_str);
                if let Some(href) = href.filter(|h| *h != t) {
                    out.push_str(&format!(" ({href})"));
                }
            }
            Some("hardBreak") => out.push('\n'),
            _ => children(node).iter().for_each(|c| inline(c, out)),
        }
    }
    fn children(node: &Value) -> &[Value] {
        node.get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    fn block(node: &Value, prefix: &str, lines: &mut Vec<String>) {
        match node.get("type").and_then(Value::as_str) {
            Some("doc") | Some("listItem") => {
                for c in children(node) {
                    block(c, prefix, lines);
                }
            }
            Some("bulletList") | Some("orderedList") => {
                for c in children(node) {
                    block(c, "* ", lines);
                }
            }
            _ => {
                let mut s = String::from(prefix);
                inline(node, &mut s);
                lines.push(s);
            }
        }
    }
    match doc {
        Value::String(s) => s.clone(),
        Value::Object(_) => {
            let mut lines = Vec::new();
            block(doc, "", &mut lines);
            lines.join("\n")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IssueDescription {
        IssueDescription {
            title: "CRITICAL: checkout-api p99 latency > 2s".into(),
            service: "Checkout API".into(),
            severity: "SEV1".into(),
            pagerduty_url: Some("https://acme.pagerduty.com/incidents/Q2F8K1ZQ0MJ5XJ".into()),
            explanation: "Alice resolved 9 of the last 10 checkout-api incidents.".into(),
            backups: vec!["Bob Okafor".into(), "Carol Diaz".into()],
            work_item_id: "42".into(),
        }
    }

    fn all_text_nodes(v: &Value, out: &mut Vec<Value>) {
        if v.get("type").and_then(Value::as_str) == Some("text") {
            out.push(v.clone());
        }
        if let Some(children) = v.get("content").and_then(Value::as_array) {
            for c in children {
                all_text_nodes(c, out);
            }
        }
    }

    #[test]
    fn adf_has_heading_bold_labels_link_and_backup_list() {
        let doc = to_adf(&sample());
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        let content = doc["content"].as_array().unwrap();
        assert_eq!(content[0]["type"], "heading");
        assert_eq!(content[0]["attrs"]["level"], 2);
        assert_eq!(
            content[0]["content"][0]["text"],
            "CRITICAL: checkout-api p99 latency > 2s"
        );
        assert_eq!(content[1]["content"][0]["marks"][0]["type"], "strong");
        assert_eq!(content[1]["content"][1]["text"], "Checkout API");
        let link = &content[3]["content"][1];
        assert_eq!(link["marks"][0]["type"], "link");
        assert_eq!(
            link["marks"][0]["attrs"]["href"],
            "https://acme.pagerduty.com/incidents/Q2F8K1ZQ0MJ5XJ"
        );
        let list = content
            .iter()
            .find(|n| n["type"] == "bulletList")
            .expect("backup list");
        assert_eq!(list["content"].as_array().unwrap().len(), 2);
        assert_eq!(list["content"][1]["type"], "listItem");
        assert_eq!(
            list["content"][1]["content"][0]["content"][0]["text"],
            "Carol Diaz"
        );

        let mut texts = Vec::new();
        all_text_nodes(&doc, &mut texts);
        assert!(texts
            .iter()
            .all(|t| !t["text"].as_str().unwrap().is_empty()));
    }

    #[test]
    fn adf_omits_empty_parts_and_never_emits_empty_text() {
        let d = IssueDescription {
            title: "t".into(),
            ..Default::default()
        };
        let doc = to_adf(&d);
        assert_eq!(doc["content"].as_array().unwrap().len(), 1);
        let empty = to_adf(&IssueDescription::default());
        assert_eq!(empty["content"][0]["type"], "paragraph");
        let mut texts = Vec::new();
        all_text_nodes(&empty, &mut texts);
        assert!(texts.is_empty());
    }

    #[test]
    fn wiki_uses_headings_bold_link_syntax_and_bullets() {
        let w = to_wiki(&sample());
        assert!(w.starts_with("h2. CRITICAL: checkout-api p99 latency > 2s\n"));
        assert!(w.contains("*Service:* Checkout API"));
        assert!(w.contains(
            "*PagerDuty:* [open the incident|https://acme.pagerduty.com/incidents/Q2F8K1ZQ0MJ5XJ]"
        ));
        assert!(w.contains("h3. Backups\n* Bob Okafor\n* Carol Diaz"));
        assert!(w.ends_with("*Goliath work item:* 42"));
        let escaped = to_wiki(&IssueDescription {
            title: "a [b|c] {code}".into(),
            ..Default::default()
        });
        assert_eq!(escaped, "h2. a \\[b\\|c\\] \\{code\\}");
    }

    #[test]
    fn plain_text_flattens_adf_and_passes_strings_through() {
        let txt = adf_to_plain_text(&to_adf(&sample()));
        assert!(txt.contains("Service: Checkout API"));
        assert!(txt.contains(
            "PagerDuty: open the incident (https://acme.pagerduty.com/incidents/Q2F8K1ZQ0MJ5XJ)"
        ));
        assert!(txt.contains("* Bob Okafor\n* Carol Diaz"));
        assert_eq!(adf_to_plain_text(&json!("wiki")), "wiki");
        assert_eq!(adf_to_plain_text(&Value::Null), "");
    }
}
