//! The roster: people who can own incidents, with validation and upsert.

use chrono::Utc;
use diesel::prelude::*;
use serde::Deserialize;

use crate::db::schema::{humans, skill_stats};
use crate::models::Human;

/// A person as the admin API takes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanInput {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub jira_account_id: Option<String>,
    pub pagerduty_user_id: Option<String>,
    #[serde(default)]
    pub services: Vec<String>,
    pub max_active: Option<i32>,
    pub active: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("field `{field}` {problem}")]
    Invalid { field: String, problem: String },
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

fn invalid(field: &str, problem: &str) -> RosterError {
    RosterError::Invalid {
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

/// A validated person, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidHuman {
    pub id: String,
    pub display_name: String,
    pub email: String,
    pub jira_account_id: String,
    pub pagerduty_user_id: Option<String>,
    pub services: Vec<String>,
    pub max_active: Option<i32>,
    pub active: bool,
}

fn required(value: &Option<String>, field: &str) -> Result<String, RosterError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(invalid(field, "is required and must not be empty")),
    }
}

impl HumanInput {
    /// Checks every field; `id_from_path` wins over the body's id (PUT /admin/humans/{id}).
    pub fn validate(&self, id_from_path: Option<&str>) -> Result<ValidHuman, RosterError> {
        let id = match id_from_path {
            Some(path_id) => {
                if let Some(body_id) = self.id.as_deref() {
                    if body_id != path_id {
                        return Err(invalid("id", "differs from the id in the path"));
                    }
                }
                path_id.to_string()
            }
            None => required(&self.id, "id")?,
        };
        if id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return Err(invalid(
                "id",
                "may use only letters, digits and . _ - @ (at most 128)",
            ));
        }
        let display_name = required(&self.display_name, "display_name")?;
        let email = required(&self.email, "email")?;
        let valid_email = email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !email.contains(' ')
        });
        if !valid_email {
            return Err(invalid("email", "is not an e-mail address"));
        }
        let jira_account_id = required(&self.jira_account_id, "jira_account_id")?;
        let pagerduty_user_id = self
            .pagerduty_user_id
            .clone()
            .filter(|p| !p.trim().is_empty());
        // Both are looked up through an index, which cannot hold a very long entry.
        let accounts = [
            ("jira_account_id", Some(&jira_account_id)),
            ("pagerduty_user_id", pagerduty_user_id.as_ref()),
        ];
        for (field, value) in accounts {
            let len = value.map_or(0, String::len);
            if let Some(problem) = crate::db::too_long(len, crate::db::MAX_ID_BYTES) {
                return Err(invalid(field, &problem));
            }
        }
        if let Some(max) = self.max_active {
            if max < 1 {
                return Err(invalid("max_active", "must be at least 1 when given"));
            }
        }
        let mut services = Vec::with_capacity(self.services.len());
        for (i, s) in self.services.iter().enumerate() {
            // Services match case-insensitively: `Payments` is the `payments` service.
            let s = s.trim().to_lowercase();
            if s.is_empty() {
                return Err(invalid(&format!("services[{i}]"), "must not be empty"));
            }
            if !services.contains(&s) {
                services.push(s);
            }
        }
        Ok(ValidHuman {
            id,
            display_name,
            email,
            jira_account_id,
            pagerduty_user_id,
            services,
            max_active: self.max_active,
            active: self.active.unwrap_or(true),
        })
    }
}

/// Inserts or replaces a person by id.
pub fn upsert(conn: &mut PgConnection, h: &ValidHuman) -> QueryResult<Human> {
    use diesel::upsert::excluded;
    diesel::insert_into(humans::table)
        .values((
            humans::id.eq(&h.id),
            humans::display_name.eq(&h.display_name),
            humans::email.eq(&h.email),
            humans::jira_account_id.eq(&h.jira_account_id),
            humans::pagerduty_user_id.eq(&h.pagerduty_user_id),
            humans::services.eq(&h.services),
            humans::max_active.eq(h.max_active),
            humans::active.eq(h.active),
        ))
        .on_conflict(humans::id)
        .do_update()
        .set((
            humans::display_name.eq(excluded(humans::display_name)),
            humans::email.eq(excluded(humans::email)),
            humans::jira_account_id.eq(excluded(humans::jira_account_id)),
            humans::pagerduty_user_id.eq(excluded(humans::pagerduty_user_id)),
            humans::services.eq(excluded(humans::services)),
            humans::max_active.eq(excluded(humans::max_active)),
            humans::active.eq(excluded(humans::active)),
            humans::updated_at.eq(Utc::now()),
        ))
        .returning(Human::as_returning())
        .get_result(conn)
}

/// Validates all, then stores all in one transaction: a bad entry stores nothing.
pub fn import(conn: &mut PgConnection, humans: &[HumanInput]) -> Result<Vec<Human>, RosterError> {
    let mut valid = Vec::with_capacity(humans.len());
    for (i, p) in humans.iter().enumerate() {
        valid.push(p.validate(None).map_err(|e| match e {
            RosterError::Invalid { field, problem } => RosterError::Invalid {
                field: format!("[{i}].{field}"),
                problem,
            },
            other => other,
        })?);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, v) in valid.iter().enumerate() {
        if !seen.insert(v.id.as_str()) {
            return Err(invalid(&format!("[{i}].id"), "appears twice in the import"));
        }
    }
    Ok(conn.transaction(|conn| {
        valid
            .iter()
            .map(|h| upsert(conn, h))
            .collect::<QueryResult<Vec<_>>>()
    })?)
}

pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<Human>> {
    humans::table
        .select(Human::as_select())
        .order(humans::id)
        .load(conn)
}

pub fn get(conn: &mut PgConnection, id: &str) -> QueryResult<Option<Human>> {
    humans::table
        .find(id)
        .select(Human::as_select())
        .first(conn)
        .optional()
}

/// Removes a person and what was learned about them; their work items keep their history.
pub fn delete(conn: &mut PgConnection, id: &str) -> QueryResult<bool> {
    conn.transaction(|conn| {
        diesel::delete(skill_stats::table.filter(skill_stats::human_id.eq(id))).execute(conn)?;
        Ok(diesel::delete(humans::table.find(id)).execute(conn)? > 0)
    })
}

pub fn by_jira_account(conn: &mut PgConnection, account_id: &str) -> QueryResult<Option<Human>> {
    humans::table
        .filter(humans::jira_account_id.eq(account_id))
        .select(Human::as_select())
        .first(conn)
        .optional()
}

/// Matches PagerDuty users to people by e-mail (case-insensitively) and records each match's
/// PagerDuty user id. A person who already has a different id keeps it unless `overwrite`:
/// the id may have been set by hand for a reason, and each such case is reported as a
/// conflict. People with an id that no e-mail matched keep it and are not listed as without one.
pub fn sync_pagerduty_users(
    conn: &mut PgConnection,
    users: &[crate::pagerduty::PdUser],
    overwrite: bool,
) -> QueryResult<serde_json::Value> {
    conn.transaction(|conn| {
        let humans = list(conn)?;
        let mut updated = vec![];
        let mut unchanged = vec![];
        let mut conflicts = vec![];
        let mut unmatched_humans = vec![];
        let mut matched_users = std::collections::HashSet::new();
        for human in &humans {
            let email = human.email.trim().to_lowercase();
            let Some(user) = users
                .iter()
                .find(|u| !email.is_empty() && u.email.trim().to_lowercase() == email)
            else {
                if human.pagerduty_user_id.is_some() {
                    unchanged.push(human.id.clone());
                } else {
                    unmatched_humans.push(human.id.clone());
                }
                continue;
            };
            matched_users.insert(user.id.clone());
            if human.pagerduty_user_id.as_deref() == Some(user.id.as_str()) {
                unchanged.push(human.id.clone());
                continue;
            }
            if let (Some(kept), false) = (&human.pagerduty_user_id, overwrite) {
                conflicts.push(serde_json::json!({
                    "id": human.id, "kept": kept, "matched_by_email": user.id,
                }));
                continue;
            }
            diesel::update(humans::table.find(&human.id))
                .set((
                    humans::pagerduty_user_id.eq(&user.id),
                    humans::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)?;
            updated.push(serde_json::json!({
                "id": human.id, "pagerduty_user_id": user.id,
                "was": human.pagerduty_user_id,
            }));
        }
        let unmatched_users: Vec<serde_json::Value> = users
            .iter()
            .filter(|u| !matched_users.contains(&u.id))
            .map(|u| serde_json::json!({"id": u.id, "name": u.name, "email": u.email}))
            .collect();
        Ok(serde_json::json!({
            "pagerduty_users": users.len(),
            "updated": updated,
            "unchanged": unchanged,
            "conflicts": conflicts,
            "humans_without_a_pagerduty_user": unmatched_humans,
            "pagerduty_users_not_on_the_roster": unmatched_users,
        }))
    })
}

/// The person with this PagerDuty user id.
pub fn by_pagerduty_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<Option<Human>> {
    humans::table
        .filter(humans::pagerduty_user_id.eq(user_id))
        .select(Human::as_select())
        .first(conn)
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> HumanInput {
        HumanInput {
            id: Some("alice".into()),
            display_name: Some("Alice".into()),
            email: Some("alice@example.com".into()),
            jira_account_id: Some("acc-1".into()),
            pagerduty_user_id: None,
            services: vec!["api".into(), "api".into()],
            max_active: Some(3),
            active: None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        let ok = input().validate(None).unwrap();
        assert_eq!(ok.services, vec!["api"]);
        assert!(ok.active);
        let mut bad = input();
        bad.email = Some("nope".into());
        assert!(
            matches!(bad.validate(None), Err(RosterError::Invalid { field, .. }) if field == "email")
        );
        let mut bad = input();
        bad.max_active = Some(0);
        assert!(
            matches!(bad.validate(None), Err(RosterError::Invalid { field, .. }) if field == "max_active")
        );
        assert!(
            matches!(input().validate(Some("bob")), Err(RosterError::Invalid { field, .. }) if field == "id")
        );
    }
}
