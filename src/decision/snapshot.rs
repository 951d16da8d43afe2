//! What a decision reads: the roster, open loads and learned state, in one round trip. The
//! roster and learned state change rarely (an admin edit, an outcome), while loads change with
//! every batch, so [`SnapshotCache`] keeps the former between batches and the database's change
//! counter (`decision_inputs_version`, bumped at the commit of any change to `humans`,
//! `skill_stats` or `human_states`) says when to read them again. Loads are kept too, for the
//! intake: it only ever adds to them, each of its batch statements returns the totals of the
//! people it assigned, and a second counter (`loads_n`) moves when anything else changes a
//! load. A batch decided on kept inputs names their counters, and its statement is refused if
//! either moved (then [`SnapshotCache::forget_loads`] and decide again).

use std::collections::HashMap;
use std::sync::Mutex;

use diesel::prelude::*;

use crate::db::prepared::{Bind, Prepared, Statement};
use crate::models::{RoutingMode, WorkItem};
use crate::routing::{
    CandidateInput, ContextRecord, DecisionInput, Severity, SkillRecord, SkillState, TermWeights,
};

/// A person as the model needs them.
#[derive(serde::Deserialize, Clone)]
struct Human {
    id: String,
    active: bool,
    services: Vec<String>,
    max_active: Option<i32>,
    pagerduty_user_id: Option<String>,
}

#[derive(QueryableByName)]
struct SnapshotRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    body: String,
}

/// What the model needs for a set of work items, read once.
#[derive(Default)]
pub(super) struct Snapshot {
    humans: Vec<Human>,
    pub(super) loads: HashMap<String, u32>,
    /// service -> person -> records
    skills: HashMap<String, HashMap<String, Vec<SkillRecord>>>,
    overall: HashMap<String, SkillState>,
    /// person -> records for every tag of any of the items
    tags: HashMap<String, Vec<ContextRecord>>,
    /// The term weights as last fitted.
    weights: TermWeights,
}

impl Snapshot {
    /// Reads everything afresh (see [`SnapshotCache::read`] for the cached read).
    pub(super) fn read<'a>(
        conn: &mut PgConnection,
        items: impl Iterator<Item = &'a WorkItem> + Clone,
    ) -> QueryResult<Snapshot> {
        let (services, tags) = needs(items);
        let mut read = Parsed::query(conn, "", [&services, &services], [&tags, &tags])?;
        let loads = std::mem::take(&mut read.snap.loads);
        Ok(read
            .into_cached(String::new(), &services, &tags)
            .snapshot(&services, &tags, loads))
    }

    /// Whether `id` is on the roster and active.
    pub(super) fn is_active(&self, id: &str) -> bool {
        self.humans.iter().any(|p| p.id == id && p.active)
    }

    pub(super) fn input_for(&self, item: &WorkItem, pd_assignees: &[String]) -> DecisionInput {
        let skills = self.skills.get(&item.service);
        let candidates = self
            .humans
            .iter()
            .map(|h| CandidateInput {
                human_id: h.id.clone(),
                active: h.active,
                services: h.services.clone(),
                max_active: h.max_active.and_then(|m| u32::try_from(m).ok()),
                open_items: self.loads.get(&h.id).copied().unwrap_or(0),
                on_call: h
                    .pagerduty_user_id
                    .as_ref()
                    .is_some_and(|pd| pd_assignees.iter().any(|a| a == pd)),
                skill: skills
                    .and_then(|s| s.get(&h.id))
                    .cloned()
                    .unwrap_or_default(),
                context_skill: self
                    .tags
                    .get(&h.id)
                    .map(|records| {
                        records
                            .iter()
                            .filter(|r| {
                                item.context.contains(&r.tag)
                                    && r.service.as_ref().is_none_or(|s| *s == item.service)
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
                overall: self.overall.get(&h.id).cloned(),
            })
            .collect();
        DecisionInput {
            work_item_id: item.id.clone(),
            service: item.service.clone(),
            severity: item.severity,
            at: item.created_at,
            candidates,
            context: item.context.clone(),
            on_call_required: false,
            recommend_only: item.routing_mode == RoutingMode::Shadow,
            weights: self.weights.clone(),
        }
    }
}

/// Everything a decision reads, in one round trip: the change counters and the loads always;
/// the roster, pooled states, learned skill for $2 services and states for $4 tags when the
/// counter is not $1 (the cached read's, or none), else only skill for $3 services and states
/// for $5 tags (what the cache lacks). Without a counter row everything is read. Prepared: it
/// reads small tables, mostly whole, so one generic plan serves.
struct SnapshotSql;

impl Statement for SnapshotSql {
    const SQL: &'static str = "\
    WITH v AS MATERIALIZED ( \
        SELECT d.token || ':' || d.n AS version, (d.token || ':' || d.n) IS DISTINCT FROM $1 AS stale \
          FROM (SELECT 1) one LEFT JOIN decision_inputs_version d ON true \
    ), want AS MATERIALIZED ( \
        SELECT v.stale, CASE WHEN v.stale THEN $2::text[] ELSE $3::text[] END AS want_services, \
               CASE WHEN v.stale THEN $4::text[] ELSE $5::text[] END AS want_tags FROM v \
    ) \
    SELECT 'version' AS kind, version AS body FROM v WHERE version IS NOT NULL \
    UNION ALL SELECT 'loads_version', loads_n::text FROM decision_inputs_version \
    UNION ALL SELECT 'load', json_build_array(human_id, sum(open_items))::text \
      FROM open_loads GROUP BY human_id HAVING sum(open_items) > 0 \
    UNION ALL SELECT 'human', json_build_object('id', h.id, 'active', h.active, 'services', h.services, \
           'max_active', h.max_active, 'pagerduty_user_id', h.pagerduty_user_id)::text \
      FROM humans h, want WHERE want.stale \
    UNION ALL SELECT 'skill', json_build_array(service, human_id, severity, state)::text \
      FROM skill_stats, want WHERE service = ANY(want.want_services) \
    UNION ALL SELECT 'overall', json_build_array(human_id, state)::text \
      FROM human_states, want WHERE want.stale AND scope = 'overall' \
    UNION ALL SELECT 'weights', weights::text FROM term_weights, want WHERE want.stale \
    UNION ALL SELECT 'tag', json_build_array(human_id, key, state)::text \
      FROM human_states, want WHERE scope IN ('tag', 'tag_in_service') AND key = ANY(want.want_tags)";
}

/// Services and tags kept at most; past that the cache starts again from what a batch needs.
const MAX_CACHED_KEYS: usize = 10_000;

/// The roster and learned state as of one value of the change counter.
#[derive(Default)]
struct Cached {
    /// `token:n` of `decision_inputs_version` when read (the token tells databases apart).
    version: String,
    humans: Vec<Human>,
    overall: HashMap<String, SkillState>,
    /// service -> person -> records, for every service read (empty when nothing is learned).
    skills: HashMap<String, HashMap<String, Vec<SkillRecord>>>,
    /// tag -> (person, state), for every tag read.
    tags: HashMap<String, Vec<(String, SkillState)>>,
    /// Loads as of `token:n:loads_n`, with what intake batches added since.
    loads: Option<(String, HashMap<String, u32>)>,
    weights: TermWeights,
}

impl Cached {
    fn snapshot(
        &self,
        services: &[String],
        tags: &[String],
        loads: HashMap<String, u32>,
    ) -> Snapshot {
        let mut by_human: HashMap<String, Vec<ContextRecord>> = HashMap::new();
        for key in tags {
            let (service, tag) = match super::parse_tag_in_service_key(key) {
                Some((service, tag)) => (Some(service), tag),
                None => (None, key.clone()),
            };
            for (human, state) in self.tags.get(key).into_iter().flatten() {
                by_human
                    .entry(human.clone())
                    .or_default()
                    .push(ContextRecord {
                        tag: tag.clone(),
                        service: service.clone(),
                        state: state.clone(),
                    });
            }
        }
        Snapshot {
            humans: self.humans.clone(),
            loads,
            skills: services
                .iter()
                .filter_map(|s| self.skills.get(s).map(|m| (s.clone(), m.clone())))
                .collect(),
            overall: self.overall.clone(),
            // `tags` is sorted, so each person's records are in tag order.
            tags: by_human,
            weights: self.weights.clone(),
        }
    }
}

/// Shared by the intake's writers; see the module comment.
#[derive(Default)]
pub(super) struct SnapshotCache {
    cached: Mutex<Option<Cached>>,
}

impl SnapshotCache {
    /// The snapshot for `items`, reading the roster and learned state again only if they
    /// changed since the cached read, and what the cache lacks for these items. With
    /// `keep_loads` (the intake), kept loads are used too, and nothing is read when nothing
    /// is lacking. Also returns the counters (`token:n:loads_n`) the snapshot is as of, which
    /// the intake's batch statement checks.
    pub(super) fn read<'a>(
        &self,
        conn: &mut PgConnection,
        items: impl Iterator<Item = &'a WorkItem> + Clone,
        keep_loads: bool,
    ) -> QueryResult<(Snapshot, Option<String>)> {
        let (services, tags) = needs(items.clone());
        let (version, missing_services, missing_tags) = match &*self.lock() {
            Some(c) => {
                let (missing_services, missing_tags) = (
                    missing(&services, |s| c.skills.contains_key(s)),
                    missing(&tags, |t| c.tags.contains_key(t)),
                );
                if let Some((as_of, loads)) = c.loads.as_ref().filter(|_| keep_loads) {
                    if missing_services.is_empty() && missing_tags.is_empty() {
                        let snap = c.snapshot(&services, &tags, loads.clone());
                        return Ok((snap, Some(as_of.clone())));
                    }
                }
                (c.version.clone(), missing_services, missing_tags)
            }
            None => (String::new(), services.clone(), tags.clone()),
        };
        let mut read = Parsed::query(
            conn,
            &version,
            [&services, &missing_services],
            [&tags, &missing_tags],
        )?;
        let loads = std::mem::take(&mut read.snap.loads);
        let Some(now) = read.version.take() else {
            // No counter row: a full read, and nothing to cache it against.
            *self.lock() = None;
            return Ok((
                read.into_cached(String::new(), &services, &tags)
                    .snapshot(&services, &tags, loads),
                None,
            ));
        };
        let as_of = read.loads_version.take().map(|n| format!("{now}:{n}"));
        let kept = as_of.clone().map(|v| (v, loads.clone()));
        let mut guard = self.lock();
        if now != version {
            // A full read at `now`.
            let mut fresh = read.into_cached(now, &services, &tags);
            let snap = fresh.snapshot(&services, &tags, loads);
            fresh.loads = kept;
            *guard = Some(fresh);
            return Ok((snap, as_of));
        }
        match guard.as_mut().filter(|c| c.version == now) {
            Some(cached) => {
                let add = read.into_cached(now, &missing_services, &missing_tags);
                cached.skills.extend(add.skills);
                cached.tags.extend(add.tags);
                cached.loads = kept;
                let snap = cached.snapshot(&services, &tags, loads);
                if cached.skills.len() + cached.tags.len() > MAX_CACHED_KEYS {
                    *guard = None;
                }
                Ok((snap, as_of))
            }
            // Another writer replaced the cache meanwhile: read this batch's in full.
            None => {
                drop(guard);
                Ok((Snapshot::read(conn, items)?, None))
            }
        }
    }

    /// Adds what an intake batch statement found, the totals of the people it assigned, to
    /// the kept loads, if they are still as of the counters `as_of` it checked. Between moves
    /// of the counter loads only grow, so the larger of two counts is the later.
    pub(super) fn merge_loads(&self, as_of: &str, totals: &[(String, i64)]) {
        let mut guard = self.lock();
        let Some((_, loads)) = guard
            .as_mut()
            .and_then(|c| c.loads.as_mut())
            .filter(|(v, _)| v == as_of)
        else {
            return;
        };
        for (human, total) in totals {
            let total = u32::try_from(*total).unwrap_or(0);
            let kept = loads.entry(human.clone()).or_default();
            *kept = (*kept).max(total);
        }
    }

    /// Drops the kept loads (a batch statement found a counter moved): the next batch reads.
    pub(super) fn forget_loads(&self) {
        if let Some(c) = self.lock().as_mut() {
            c.loads = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The services and context tags of `items`, sorted, without repeats.
fn needs<'a>(items: impl Iterator<Item = &'a WorkItem> + Clone) -> (Vec<String>, Vec<String>) {
    let mut services: Vec<String> = items.clone().map(|i| i.service.clone()).collect();
    services.sort();
    services.dedup();
    // Each tag, and the part of it on the item's service.
    let mut tags: Vec<String> = items
        .flat_map(|i| {
            i.context
                .iter()
                .flat_map(|t| [t.clone(), super::tag_in_service_key(&i.service, t)])
        })
        .collect();
    tags.sort();
    tags.dedup();
    (services, tags)
}

fn missing(keys: &[String], has: impl Fn(&str) -> bool) -> Vec<String> {
    keys.iter().filter(|k| !has(k)).cloned().collect()
}

/// Rows of the snapshot query, parsed.
#[derive(Default)]
struct Parsed {
    version: Option<String>,
    loads_version: Option<String>,
    snap: Snapshot,
    tag_rows: Vec<TagRow>,
}

// The snapshot's JSON arrays, field by field in the order the query builds them (serde reads
// a struct from an array in field order).

/// `load`: a person's open items.
#[derive(serde::Deserialize)]
struct LoadRow {
    human: String,
    open_items: i64,
}

/// `skill`: what a person has shown on a service at a severity.
#[derive(serde::Deserialize)]
struct SkillRow {
    service: String,
    human: String,
    severity: String,
    state: SkillState,
}

/// `overall`: a person's record across everything.
#[derive(serde::Deserialize)]
struct OverallRow {
    human: String,
    state: SkillState,
}

/// `tag`: a person's record on one context tag.
#[derive(serde::Deserialize)]
struct TagRow {
    human: String,
    tag: String,
    state: SkillState,
}

impl Parsed {
    /// Runs [`SnapshotSql`]: `services` and `tags` each hold what to read if the counter moved,
    /// then what to read if not.
    fn query(
        conn: &mut PgConnection,
        version: &str,
        services: [&[String]; 2],
        tags: [&[String]; 2],
    ) -> QueryResult<Parsed> {
        let rows: Vec<SnapshotRow> = Prepared::<SnapshotSql>::new()
            .bind(Bind::Text(version))
            .bind(Bind::Texts(services[0]))
            .bind(Bind::Texts(services[1]))
            .bind(Bind::Texts(tags[0]))
            .bind(Bind::Texts(tags[1]))
            .load(conn)?;
        let mut read = Parsed::default();
        for row in rows {
            read.add(row);
        }
        Ok(read)
    }

    fn add(&mut self, row: SnapshotRow) {
        let snap = &mut self.snap;
        let parsed = match row.kind.as_str() {
            "version" => {
                self.version = Some(row.body);
                Ok(())
            }
            "loads_version" => {
                self.loads_version = Some(row.body);
                Ok(())
            }
            "human" => serde_json::from_str(&row.body).map(|p| snap.humans.push(p)),
            "load" => serde_json::from_str::<LoadRow>(&row.body).map(|l| {
                snap.loads
                    .insert(l.human, u32::try_from(l.open_items).unwrap_or(0));
            }),
            "skill" => serde_json::from_str::<SkillRow>(&row.body).map(|r| {
                match r.severity.parse::<Severity>() {
                    Ok(severity) => snap
                        .skills
                        .entry(r.service.clone())
                        .or_default()
                        .entry(r.human)
                        .or_default()
                        .push(SkillRecord {
                            service: r.service,
                            severity,
                            state: r.state,
                        }),
                    Err(_) => log::warn!("skipping a skill record with severity {}", r.severity),
                }
            }),
            "overall" => serde_json::from_str::<OverallRow>(&row.body).map(|r| {
                snap.overall.insert(r.human, r.state);
            }),
            "weights" => serde_json::from_str::<TermWeights>(&row.body).map(|w| snap.weights = w),
            "tag" => serde_json::from_str::<TagRow>(&row.body).map(|r| self.tag_rows.push(r)),
            other => {
                log::warn!("skipping a snapshot row of unknown kind {other}");
                Ok(())
            }
        };
        if let Err(e) = parsed {
            log::warn!("skipping an unreadable learned record ({}): {e}", row.kind);
        }
    }

    /// Stable orders, so the same data always gives the same input.
    fn sort(&mut self) {
        self.snap.humans.sort_by(|a, b| a.id.cmp(&b.id));
        for by_human in self.snap.skills.values_mut() {
            for records in by_human.values_mut() {
                records.sort_by_key(|r| r.severity);
            }
        }
        self.tag_rows
            .sort_by(|a, b| (&a.tag, &a.human).cmp(&(&b.tag, &b.human)));
    }

    /// What was read, as the cache keeps it, with an entry for every service and tag asked
    /// for (empty where nothing is learned).
    fn into_cached(mut self, version: String, services: &[String], tags: &[String]) -> Cached {
        self.sort();
        let mut cached = Cached {
            version,
            humans: self.snap.humans,
            overall: self.snap.overall,
            skills: services
                .iter()
                .map(|s| (s.clone(), HashMap::new()))
                .collect(),
            tags: tags.iter().map(|t| (t.clone(), vec![])).collect(),
            loads: None,
            weights: self.snap.weights,
        };
        cached.skills.extend(self.snap.skills);
        for row in self.tag_rows {
            cached
                .tags
                .entry(row.tag)
                .or_default()
                .push((row.human, row.state));
        }
        cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(cache: &SnapshotCache) -> Option<HashMap<String, u32>> {
        cache
            .lock()
            .as_ref()
            .and_then(|c| c.loads.as_ref().map(|(_, l)| l.clone()))
    }

    #[test]
    fn kept_loads_take_the_larger_count_and_only_at_their_counters() {
        let cache = SnapshotCache::default();
        *cache.lock() = Some(Cached {
            loads: Some(("t:1:0".into(), HashMap::from([("ana".to_string(), 1)]))),
            ..Cached::default()
        });
        cache.merge_loads("t:1:0", &[("ana".into(), 3), ("ben".into(), 1)]);
        // A batch that started before the one above returns less: the count stays.
        cache.merge_loads("t:1:0", &[("ana".into(), 2)]);
        let loads = kept(&cache).unwrap();
        assert_eq!((loads["ana"], loads["ben"]), (3, 1));
        // Totals found at other counters are not added.
        cache.merge_loads("t:1:1", &[("cy".into(), 5)]);
        assert!(!kept(&cache).unwrap().contains_key("cy"));
        cache.forget_loads();
        assert_eq!(kept(&cache), None);
    }
}
