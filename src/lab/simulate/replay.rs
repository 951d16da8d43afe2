//! Replay of a real incident log (BPI Challenge 2013, Volvo IT) through the routing model.
//!
//! Each service request becomes a [`DecisionInput`] at its first event time:
//! * service = `first_team`, the team that took the request in. That is what a router knows at
//!   intake; `final_team` is part of the answer, so it is never used as input.
//! * severity from `impact` (Major -> sev1, High -> sev2, Medium -> sev3, Low -> sev4).
//! * context tags (known at intake): `product:<code>` by default, optionally `country:<cc>`.
//! * candidates: every person seen so far (in any resource path, or as first resource). A
//!   person's services are the intake teams of the requests they worked on, so a person is
//!   eligible for the teams whose work they have been seen doing. The request's
//!   `first_resource` is the person paged at intake: `on_call = true`, and the intake team is
//!   added to their services before the decision (it is known at intake). People not covering
//!   the team are left out of the input up front (they would be excluded as "not in service"
//!   anyway); this keeps the replay fast. Open-item loads are not reconstructed (all zero).
//! * system accounts (`xx-Siebel`, empty names) are not people and are dropped everywhere.
//!
//! The prediction is made before the outcome is fed back. Then, through [`apply_outcome`], each
//! person learns what the setting says (see [`ReplayArgs`]): in shadow mode, the real path, each
//! holder taking the request over and, unless they kept it to the end, handing it on; in assign
//! mode, Goliath's pick, who resolves it or hands it to the real resolver. With feedback at
//! resolve time, take-overs and hand-ons arrive when the event log has them
//! ([`load_holds`]) and the resolve when the request closed. Each outcome goes to the (person,
//! intake team, severity) state, the person's per-tag states and the person's overall state.
//! People routed the real history, so in shadow mode resolves carry `goliath_assigned: false`,
//! and every resolved request with an intake person feeds
//! [`crate::routing::apply_on_call_outcome`] (kept = the intake person resolved it) into the
//! intake person's same three states. Requests without a resolver (mostly `Completed-In Call`)
//! are not scored; `--in-call-resolved` credits the last person on their path with the resolve.
//!
//! The baseline is an online frequency lookup in the same run: the most frequent resolver so
//! far for the same (team, product), falling back to the team alone (ties by id).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use crate::routing::{
    apply_on_call_outcome, apply_outcome, decide, picks_of, CandidateInput, ContextRecord,
    DecisionInput, ModelParams, OutcomeKind, ScoreComponents, Severity, SkillRecord, SkillState,
    TermWeights,
};

/// Options of `goliath replay-bpic`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    /// incidents_summary.csv (plain, or gzip-compressed when the name ends in .gz).
    #[arg(long, default_value = "../shared/data/bpic2013/incidents_summary.csv")]
    pub path: PathBuf,
    /// The event log (`VINST-new.csv.gz`), for when each person took each request over: with
    /// feedback at resolve time, hand-offs reach the model then, as Jira reports them.
    #[arg(long, default_value = "../shared/data/bpic2013/VINST-new.csv.gz")]
    pub events: PathBuf,
    /// Do not read the event log: every hand-off reaches the model when the request closed.
    #[arg(long)]
    pub no_events: bool,
    /// A setting like an ITSM log that says less: service = the first team, no context tags
    /// (the lookups then key by team alone), and every hand-off, a wrong pick's included,
    /// reaches the model just before the resolve (as `--no-events`). With `--through-http`,
    /// incidents carry no PagerDuty team.
    #[arg(long)]
    pub stand_in: bool,
    /// Context tags to supply: comma-separated subset of product,country,title (the title's
    /// words; empty = none).
    #[arg(long, default_value = "product")]
    pub context: String,
    /// When outcomes reach the model: `immediate` (right after each prediction, a kind
    /// setting) or `at-resolve` (when the request really closed, in event-time order).
    #[arg(long, value_enum, default_value_t = Feedback::Immediate)]
    pub feedback: Feedback,
    /// Do not tell the model who was paged (`first_resource`), nor add them to the candidates.
    #[arg(long)]
    pub no_on_call: bool,
    /// Who may be picked: `seen` (people already seen working on the team) or `open`
    /// (everyone in the log, eligible everywhere, from the start).
    #[arg(long, value_enum, default_value_t = RosterKind::Seen)]
    pub roster: RosterKind,
    /// `shadow`: the model only recommends and learns the real resource path; `assign`: its
    /// pick gets the request and, when wrong, hands it to the real resolver.
    #[arg(long, value_enum, default_value_t = Mode::Shadow)]
    pub mode: Mode,
    /// Run every combination of feedback, on-call, roster and mode, and print them side by side.
    #[arg(long)]
    pub all: bool,
    /// Drive the real server instead of the model alone: signed PagerDuty webhooks at each
    /// request's start, signed Jira webhooks for each take-over when it happened and for the
    /// resolve when it closed (open roster, no on-call; `--mode` applies); several minutes.
    #[arg(long)]
    pub through_http: bool,
    /// Share of the log (in time order) used to judge changes; the rest is held out and
    /// reported apart.
    #[arg(long, default_value_t = 0.6)]
    pub tuning_share: f64,
    /// Credit the last person on the path of requests closed "In Call" without a resolver.
    #[arg(long)]
    pub in_call_resolved: bool,
    /// Feed the resolver's time: from when they got the request to its close, less its time in
    /// waiting statuses, as the product measures it with `GOLIATH_JIRA_WAITING_STATUSES`
    /// (without the event log, `hours_to_resolve`, the age of the whole request).
    #[arg(long)]
    pub feed_times: bool,
    /// Count each person's open items as the product does (whoever holds each request, from
    /// when they got it until they hand it on or it closes), so the load term weighs in.
    #[arg(long)]
    pub open_loads: bool,
    /// Model parameters as JSON (fields not given keep their defaults).
    #[arg(long)]
    pub params: Option<String>,
    /// Print a progress line every this many scored requests (0 = none).
    #[arg(long, default_value_t = 1000)]
    pub every: usize,
}

impl Default for ReplayArgs {
    fn default() -> Self {
        Self {
            path: PathBuf::from("../shared/data/bpic2013/incidents_summary.csv"),
            events: PathBuf::from("../shared/data/bpic2013/VINST-new.csv.gz"),
            no_events: false,
            stand_in: false,
            context: "product".to_string(),
            feedback: Feedback::Immediate,
            no_on_call: false,
            roster: RosterKind::Seen,
            mode: Mode::Shadow,
            all: false,
            through_http: false,
            tuning_share: 0.6,
            in_call_resolved: false,
            feed_times: false,
            open_loads: false,
            params: None,
            every: 1000,
        }
    }
}

/// When outcomes reach the model in a replay.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    Immediate,
    AtResolve,
}

/// Who may be picked in a replay.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterKind {
    /// People already seen working on the request's team.
    Seen,
    /// Everyone in the log, eligible for every team, from the first request.
    Open,
}

/// Whether the replayed router assigns or only recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Shadow,
    Assign,
}

impl Mode {
    /// The flag's value, as the tables print it.
    fn name(self) -> &'static str {
        match self {
            Mode::Shadow => "shadow",
            Mode::Assign => "assign",
        }
    }
}

/// One service request from the summary file.
#[derive(Debug, Clone)]
pub struct Request {
    pub sr_number: String,
    pub first_event_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub last_event_at: DateTime<Utc>,
    pub hours_to_resolve: Option<f64>,
    pub severity: Severity,
    pub product: String,
    pub country: String,
    pub first_team: String,
    pub first_resource: String,
    pub resolver: String,
    pub resource_path: Vec<String>,
    /// Who held the request and from when, in order (from the event log; empty when the log
    /// was not read): each start is when Jira would report that person taking it over.
    pub holds: Vec<Hold>,
    /// The request's status from each change on, in order (from the event log): the log's
    /// sub-status (`In Progress`, `Wait - User`, `Awaiting Assignment`, ...).
    pub statuses: Vec<(DateTime<Utc>, String)>,
    /// The incident's title, where the history has one.
    pub title: String,
}

/// The statuses in which a BPIC request waits on someone other than its holder: the time in
/// them is not work.
pub const WAITING_STATUSES: [&str; 6] = [
    "Wait",
    "Wait - User",
    "Wait - Vendor",
    "Wait - Customer",
    "Wait - Implementation",
    "Awaiting Assignment",
];

impl Request {
    /// When `who` first took the request, if the event log says they held it.
    pub fn taken_by(&self, who: &str) -> Option<DateTime<Utc>> {
        self.holds.iter().find(|h| h.human == who).map(|h| h.from)
    }

    /// Seconds from `since` to `until` not spent in a [`WAITING_STATUSES`] status.
    pub fn working_seconds(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> f64 {
        let changes: Vec<(DateTime<Utc>, bool)> = self
            .statuses
            .iter()
            .map(|(at, status)| (*at, WAITING_STATUSES.contains(&status.as_str())))
            .collect();
        let held = (until - since).num_milliseconds() as f64 / 1000.0;
        held - crate::learner::seconds_waiting(&changes, since, until)
    }
}

/// A person holding a request from `from` until the next hold starts (or it closes).
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub human: String,
    pub from: DateTime<Utc>,
}

/// True for accounts that are systems, not people (`se-Siebel`, `in--`, empty).
pub fn is_system_account(id: &str) -> bool {
    let name = id.split_once('-').map(|(_, n)| n).unwrap_or(id).trim();
    let name = name.trim_matches('-').trim();
    name.is_empty() || name.eq_ignore_ascii_case("siebel") || name.eq_ignore_ascii_case("system")
}

fn severity_of(impact: &str) -> Severity {
    match impact.trim().to_ascii_lowercase().as_str() {
        "major" => Severity::Sev1,
        "high" => Severity::Sev2,
        "medium" => Severity::Sev3,
        _ => Severity::Sev4,
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads a CSV file (gzip if the name ends in `.gz`; a leading byte-order mark is dropped):
/// its header and its rows.
fn read_csv(path: &std::path::Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)?;
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut rows = super::csv::parse(text.trim_start_matches('\u{feff}')).into_iter();
    let Some(header) = rows.next() else {
        bail!("{} is empty", path.display());
    };
    Ok((header, rows.collect()))
}

/// The index of the column `name` in `header`.
fn column(path: &std::path::Path, header: &[String], name: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h.trim() == name)
        .with_context(|| format!("{}: column {name} missing", path.display()))
}

/// Reads and parses the summary CSV (gzip if the file name ends in `.gz`).
pub fn load_requests(path: &std::path::Path) -> Result<Vec<Request>> {
    let (header, body) = read_csv(path)?;
    let col = |name: &str| column(path, &header, name);
    let c_sr = col("sr_number")?;
    let c_first = col("first_event_at")?;
    let c_res_at = col("resolved_at")?;
    let c_last = col("last_event_at")?;
    let c_hours = col("hours_to_resolve")?;
    let c_impact = col("impact")?;
    let c_product = col("product")?;
    let c_country = col("country")?;
    let c_team = col("first_team")?;
    let c_first_res = col("first_resource")?;
    let c_resolver = col("resolver")?;
    let c_path = col("resource_path")?;
    let mut out = Vec::with_capacity(body.len());
    for (i, r) in body.iter().enumerate() {
        if r.len() < header.len() {
            if r.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            bail!(
                "row {} has {} fields, expected {}",
                i + 2,
                r.len(),
                header.len()
            );
        }
        let first =
            parse_time(&r[c_first]).with_context(|| format!("row {}: first_event_at", i + 2))?;
        let last = parse_time(&r[c_last]).unwrap_or(first);
        out.push(Request {
            sr_number: r[c_sr].clone(),
            first_event_at: first,
            resolved_at: parse_time(&r[c_res_at]),
            last_event_at: last,
            hours_to_resolve: r[c_hours].trim().parse::<f64>().ok(),
            severity: severity_of(&r[c_impact]),
            product: r[c_product].trim().to_string(),
            country: r[c_country].trim().to_string(),
            first_team: r[c_team].trim().to_string(),
            first_resource: r[c_first_res].trim().to_string(),
            resolver: r[c_resolver].trim().to_string(),
            resource_path: r[c_path]
                .split('|')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            holds: Vec::new(),
            statuses: Vec::new(),
            title: String::new(),
        });
    }
    out.sort_by(|a, b| {
        a.first_event_at
            .cmp(&b.first_event_at)
            .then_with(|| a.sr_number.cmp(&b.sr_number))
    });
    Ok(out)
}

/// Reads the event log (`VINST-new.csv.gz`: one row per status change) and gives each request
/// its holds (the runs of events by one person, system accounts left out, each starting at its
/// first event) and its status changes. Requests missing from the log keep neither.
pub fn load_holds(path: &std::path::Path, requests: &mut [Request]) -> Result<()> {
    let (header, body) = read_csv(path)?;
    let col = |name: &str| column(path, &header, name);
    let (c_sr, c_at, c_res) = (
        col("SR Number")?,
        col("Change Date+Time")?,
        col("Resource")?,
    );
    let c_status = col("Sub Status")?;
    // Per request: (time, resource, sub-status) of each event.
    type Row<'a> = (DateTime<Utc>, &'a str, &'a str);
    let mut events: HashMap<&str, Vec<Row>> = HashMap::new();
    for (i, r) in body.iter().enumerate() {
        if r.len() <= c_sr.max(c_at).max(c_res).max(c_status) {
            continue;
        }
        let at = parse_time(&r[c_at])
            .with_context(|| format!("{}: row {}: bad time", path.display(), i + 2))?;
        events
            .entry(r[c_sr].trim())
            .or_default()
            .push((at, r[c_res].trim(), r[c_status].trim()));
    }
    for req in requests.iter_mut() {
        let Some(list) = events.get_mut(req.sr_number.as_str()) else {
            continue;
        };
        // Stable: events at the same instant keep the log's order.
        list.sort_by_key(|(at, _, _)| *at);
        let mut holds: Vec<Hold> = Vec::new();
        let mut statuses: Vec<(DateTime<Utc>, String)> = Vec::new();
        for &(at, who, status) in list.iter() {
            if statuses.last().is_none_or(|(_, s)| s != status) {
                statuses.push((at, status.to_string()));
            }
            if is_system_account(who) || holds.last().is_some_and(|h| h.human == who) {
                continue;
            }
            holds.push(Hold {
                human: who.to_string(),
                from: at,
            });
        }
        req.holds = holds;
        req.statuses = statuses;
    }
    Ok(())
}

#[derive(Default)]
struct Human {
    id: String,
    services: Vec<String>,
    skill: HashMap<(String, Severity), SkillState>,
    context: HashMap<String, SkillState>,
    /// The part of each tag's state on one team's requests: (team, tag).
    context_here: HashMap<(String, String), SkillState>,
    overall: SkillState,
    /// Requests given to them (assign mode) and not yet closed.
    open_items: u32,
}

impl Human {
    /// Applies `change` to every state kept for the person on `r`: (intake team, severity),
    /// each of `tags`, and overall.
    fn update(&mut self, r: &Request, tags: &[String], change: &dyn Fn(&mut SkillState)) {
        change(
            self.skill
                .entry((r.first_team.clone(), r.severity))
                .or_default(),
        );
        for t in tags {
            change(self.context.entry(t.clone()).or_default());
            change(
                self.context_here
                    .entry((r.first_team.clone(), t.clone()))
                    .or_default(),
            );
        }
        change(&mut self.overall);
    }
}

/// Accuracy counters of one replay (or one part of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayResult {
    pub requests: usize,
    pub scored: usize,
    pub goliath_top1: usize,
    pub goliath_top3: usize,
    pub lookup_top1: usize,
    pub lookup_top3: usize,
    /// The same lookup fed the Jira events Goliath learns ownership from, when they happen: one
    /// for each take-over (withdrawn when the person passes the request on) and one for each
    /// resolve by someone who had not taken it over. In assign mode it routes by itself: its
    /// own right pick is counted at the resolve, a wrong one at the resolver's take-over.
    pub events_lookup_top1: usize,
    pub events_lookup_top3: usize,
    pub undecided: usize,
    pub resolver_eligible: usize,
    pub humans: usize,
    pub mean_decide_micros: f64,
    /// Scored requests whose resolver was the intake (on-call) person.
    pub resolver_on_call: usize,
    /// Scored requests where Goliath picked the on-call person.
    pub picked_on_call: usize,
    /// Correct picks of the on-call person.
    pub picked_on_call_correct: usize,
    /// The term weights at the end of the replay.
    pub weights: TermWeights,
    /// Stated confidence against hits, in deciles.
    pub calibration: Calibration,
}

/// Stated confidence against how often the pick was right, in ten bins of confidence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    /// Per decile: (sum of stated confidence, right picks, picks).
    pub bins: [(f64, usize, usize); 10],
}

impl Calibration {
    /// One pick, stated at `confidence`, and whether it was right.
    pub fn add(&mut self, confidence: f64, right: bool) {
        let b = ((confidence * 10.0).floor().max(0.0) as usize).min(9);
        let bin = &mut self.bins[b];
        bin.0 += confidence;
        bin.1 += usize::from(right);
        bin.2 += 1;
    }

    /// Expected calibration error: the pick-weighted mean gap between stated confidence and
    /// hit rate over the bins.
    pub fn ece(&self) -> f64 {
        let n: usize = self.bins.iter().map(|b| b.2).sum();
        if n == 0 {
            return 0.0;
        }
        self.bins
            .iter()
            .filter(|b| b.2 > 0)
            .map(|&(conf, hits, _)| (conf - hits as f64).abs() / n as f64)
            .sum()
    }

    /// The table, one line per non-empty bin, and the error.
    pub fn table(&self) -> String {
        let mut out = String::from("confidence  picks  stated  right\n");
        for (i, &(conf, hits, k)) in self.bins.iter().enumerate() {
            if k > 0 {
                out.push_str(&format!(
                    "{:.1}-{:.1}  {:>6}  {:>6.3}  {:>5.3}\n",
                    i as f64 / 10.0,
                    (i + 1) as f64 / 10.0,
                    k,
                    conf / k as f64,
                    hits as f64 / k as f64
                ));
            }
        }
        out.push_str(&format!("expected calibration error {:.3}", self.ece()));
        out
    }
}

impl ReplayResult {
    pub fn rate(&self, n: usize) -> f64 {
        if self.scored == 0 {
            0.0
        } else {
            n as f64 / self.scored as f64
        }
    }

    /// Goliath's top-1 hits over the lookup's.
    pub fn top1_ratio(&self) -> f64 {
        self.goliath_top1 as f64 / self.lookup_top1.max(1) as f64
    }

    /// Goliath's top-3 hits over the lookup's.
    pub fn top3_ratio(&self) -> f64 {
        self.goliath_top3 as f64 / self.lookup_top3.max(1) as f64
    }

    /// Goliath's top-1 hits over the events-fed lookup's.
    pub fn events_top1_ratio(&self) -> f64 {
        self.goliath_top1 as f64 / self.events_lookup_top1.max(1) as f64
    }

    /// Goliath's top-3 hits over the events-fed lookup's.
    pub fn events_top3_ratio(&self) -> f64 {
        self.goliath_top3 as f64 / self.events_lookup_top3.max(1) as f64
    }
}

/// A replay's figures: all of it, the tuning part and the held-out part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySplit {
    pub all: ReplayResult,
    pub tuning: ReplayResult,
    pub held_out: ReplayResult,
}

/// The frequency lookup Goliath is measured against: the most frequent resolver so far for the
/// same team and product, else for the team. It reads the product only where Goliath is given
/// it as a context tag: a baseline sees what the model sees.
pub struct FrequencyLookup {
    by_team_product: HashMap<(String, String), BTreeMap<String, i64>>,
    by_team: HashMap<String, BTreeMap<String, i64>>,
    use_product: bool,
}

impl Default for FrequencyLookup {
    fn default() -> Self {
        Self::new(true)
    }
}

impl FrequencyLookup {
    /// A lookup by team and, when `use_product`, by product within the team.
    pub fn new(use_product: bool) -> Self {
        Self {
            by_team_product: HashMap::new(),
            by_team: HashMap::new(),
            use_product,
        }
    }

    /// `r`'s resolver resolved it.
    pub fn learn(&mut self, r: &Request) {
        self.add(r, &r.resolver, 1);
    }

    /// Counts `delta` for `who` on `r`'s team and product.
    pub fn add(&mut self, r: &Request, who: &str, delta: i64) {
        if self.use_product {
            *self
                .by_team_product
                .entry((r.first_team.clone(), r.product.clone()))
                .or_default()
                .entry(who.to_string())
                .or_default() += delta;
        }
        *self
            .by_team
            .entry(r.first_team.clone())
            .or_default()
            .entry(who.to_string())
            .or_default() += delta;
    }

    /// Resolvers for `r`, most frequent first (ties by name); empty before any is known.
    pub fn ranked(&self, r: &Request) -> Vec<&String> {
        let known = |m: &&BTreeMap<String, i64>| m.values().any(|&n| n > 0);
        let table = self
            .by_team_product
            .get(&(r.first_team.clone(), r.product.clone()))
            .filter(|m| self.use_product && known(m))
            .or_else(|| self.by_team.get(&r.first_team));
        let mut top: Vec<(&String, &i64)> = table
            .map(|m| m.iter().filter(|(_, &n)| n > 0).collect())
            .unwrap_or_default();
        top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        top.into_iter().map(|(who, _)| who).collect()
    }
}

/// Open items as the product counts them: each request counts for whoever holds it, except
/// while it is in a waiting status.
#[derive(Default)]
struct Loads {
    /// Each open request's holders, and whether it is waiting.
    by_request: HashMap<usize, (Vec<usize>, bool)>,
}

impl Loads {
    fn hold(&mut self, humans: &mut [Human], req: usize, i: usize) {
        let (holders, waiting) = self.by_request.entry(req).or_default();
        holders.push(i);
        if !*waiting {
            humans[i].open_items += 1;
        }
    }

    fn release(&mut self, humans: &mut [Human], req: usize, i: usize) {
        let Some((holders, waiting)) = self.by_request.get_mut(&req) else {
            return;
        };
        let Some(k) = holders.iter().position(|&h| h == i) else {
            return;
        };
        holders.swap_remove(k);
        if !*waiting {
            humans[i].open_items = humans[i].open_items.saturating_sub(1);
        }
        // The entry stays: a request handed on keeps its status for the next holder.
    }

    fn waiting(&mut self, humans: &mut [Human], req: usize, now: bool) {
        let (holders, waiting) = self.by_request.entry(req).or_default();
        if *waiting == now {
            return;
        }
        *waiting = now;
        for &i in holders.iter() {
            let o = &mut humans[i].open_items;
            *o = if now { o.saturating_sub(1) } else { *o + 1 };
        }
    }
}

/// The term weights of a replay, and each decided request's pick until its resolver is known.
#[derive(Default)]
struct Fits {
    weights: TermWeights,
    decisions: HashMap<usize, Picked>,
}

/// A decided request as the learner reads it back: the pick, its components with the weights
/// it used, and the model's and the count's picks.
struct Picked {
    pick: String,
    components: ScoreComponents,
    used: TermWeights,
    model: Option<String>,
    count: Option<String>,
}

/// What one request teaches, and when it reaches the learner and the lookup.
struct Lesson {
    at: DateTime<Utc>,
    req: usize,
    /// Order among one request's lessons at the same time.
    step: usize,
    what: Teach,
}

enum Teach {
    /// An outcome for a person.
    Outcome(String, OutcomeKind),
    /// The person takes the request over (an outcome that needs their load at the time).
    TakeOver(String),
    /// The paged person kept the request (resolved it) or not.
    OnCall(String, bool),
    /// The person holds the request from now (the open-load count).
    Hold(String),
    /// The person no longer holds the request.
    Release(String),
    /// The request enters (true) or leaves (false) a waiting status.
    Waiting(bool),
    /// The lookup learns the resolver.
    Lookup,
    /// The events-fed lookup counts a person (+1) or withdraws them (-1).
    EventsLookup(String, i64),
    /// The term weights learn whether the request's pick was right (took and resolved it),
    /// and which of the model and the count picked the resolver.
    Fit(String),
}

/// Replays `requests` online and returns the accuracy counters, overall and split at
/// `args.tuning_share` of the requests (in time order).
pub fn replay(
    requests: &[Request],
    params: &ModelParams,
    args: &ReplayArgs,
    mut progress: impl FnMut(&ReplayResult),
) -> ReplaySplit {
    let use_product = args.context.split(',').any(|t| t.trim() == "product");
    let use_country = args.context.split(',').any(|t| t.trim() == "country");
    let use_title = args.context.split(',').any(|t| t.trim() == "title");
    let assign = args.mode == Mode::Assign;
    let open = args.roster == RosterKind::Open;
    let use_on_call = !args.no_on_call;
    let mut humans: Vec<Human> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut by_team: HashMap<String, Vec<usize>> = HashMap::new();
    let mut lookup = FrequencyLookup::new(use_product);
    let mut events_lookup = FrequencyLookup::new(use_product);
    let split_at = (requests.len() as f64 * args.tuning_share.clamp(0.0, 1.0)).round() as usize;
    let mut parts = [ReplayResult::default(), ReplayResult::default()];
    let mut res = ReplayResult {
        requests: requests.len(),
        ..ReplayResult::default()
    };
    let mut micros = 0.0;

    fn human(humans: &mut Vec<Human>, index: &mut HashMap<String, usize>, id: &str) -> usize {
        if let Some(&i) = index.get(id) {
            return i;
        }
        humans.push(Human {
            id: id.to_string(),
            ..Human::default()
        });
        index.insert(id.to_string(), humans.len() - 1);
        humans.len() - 1
    }
    fn cover(
        humans: &mut [Human],
        by_team: &mut HashMap<String, Vec<usize>>,
        i: usize,
        team: &str,
    ) {
        if !humans[i].services.iter().any(|s| s == team) {
            humans[i].services.push(team.to_string());
            by_team.entry(team.to_string()).or_default().push(i);
        }
    }
    // The open roster: everyone in the log, known from the start, eligible everywhere.
    if open {
        for r in requests {
            let ids = r
                .resource_path
                .iter()
                .chain([&r.resolver, &r.first_resource])
                .chain(r.holds.iter().map(|h| &h.human));
            for id in ids {
                if !id.is_empty() && !is_system_account(id) {
                    human(&mut humans, &mut index, id);
                }
            }
        }
    }
    let tags_of = |r: &Request| -> Vec<String> {
        let mut t = Vec::new();
        if use_product && !r.product.is_empty() {
            t.push(format!("product:{}", r.product));
        }
        if use_country && !r.country.is_empty() {
            t.push(format!("country:{}", r.country));
        }
        if use_title {
            t.extend(
                title_tokens(&r.title)
                    .into_iter()
                    .map(|w| format!("word:{w}")),
            );
        }
        t
    };
    let resolver_of = |r: &Request| -> String {
        if !r.resolver.is_empty() && !is_system_account(&r.resolver) {
            return r.resolver.clone();
        }
        if args.in_call_resolved {
            return r
                .resource_path
                .iter()
                .rev()
                .find(|p| !is_system_account(p))
                .cloned()
                .unwrap_or_default();
        }
        String::new()
    };

    // What request `ri` teaches and when: with feedback at resolve time, hand-offs and
    // take-overs when the event log says they happened (their Jira webhooks), the resolve and
    // everything else when the request closed; with immediate feedback, all of it at once.
    let lessons_of = |ri: usize, pick: Option<&str>, lookup_pick: Option<&str>| -> Vec<Lesson> {
        let r = &requests[ri];
        let closed = r
            .resolved_at
            .unwrap_or(r.last_event_at)
            .max(r.first_event_at);
        let when = |t: DateTime<Utc>| match args.feedback {
            Feedback::Immediate => r.first_event_at,
            Feedback::AtResolve => t.clamp(r.first_event_at, closed),
        };
        let end = when(closed);
        let resolver = resolver_of(r);
        // The resolver's time, as the product measures it: from when they got the request
        // (`since`) to the close; without the event log, the request's whole age.
        let resolved = |goliath_assigned: bool, took_over: bool, since: DateTime<Utc>| {
            let seconds = if !args.feed_times {
                f64::NAN
            } else if r.holds.is_empty() {
                r.hours_to_resolve.unwrap_or(f64::NAN) * 3600.0
            } else {
                r.working_seconds(since, closed)
            };
            OutcomeKind::Resolved {
                seconds_to_resolve: seconds,
                goliath_assigned,
                took_over,
            }
        };
        let mut out: Vec<Lesson> = Vec::new();
        let mut teach = |at: DateTime<Utc>, what: Teach| {
            let step = out.len();
            out.push(Lesson {
                at,
                req: ri,
                step,
                what,
            })
        };
        if assign {
            // The pick gets the request and, when wrong, hands it to the real resolver when
            // the resolver first took it in reality.
            let taken = r.taken_by(&resolver).map_or(end, when);
            let mut released = false;
            if resolver.is_empty() {
                // Closed without a resolver: nothing says whether the pick was right.
            } else if pick == Some(resolver.as_str()) {
                let kind = resolved(true, false, r.first_event_at);
                teach(end, Teach::Outcome(resolver.clone(), kind));
            } else {
                if let Some(p) = pick {
                    teach(
                        taken,
                        Teach::Outcome(p.to_string(), OutcomeKind::HANDED_OFF),
                    );
                    teach(taken, Teach::Release(p.to_string()));
                    released = true;
                }
                teach(taken, Teach::TakeOver(resolver.clone()));
                teach(taken, Teach::Hold(resolver.clone()));
                let kind = resolved(false, true, taken);
                teach(end, Teach::Outcome(resolver.clone(), kind));
                teach(end, Teach::Release(resolver.clone()));
            }
            if let (Some(p), false) = (pick, released) {
                teach(end, Teach::Release(p.to_string()));
            }
            // The events-fed lookup routes by itself: its own pick, right, is counted at the
            // resolve; wrong, the resolver's take-over is counted when it happens.
            if !resolver.is_empty() {
                let at = if lookup_pick == Some(resolver.as_str()) {
                    end
                } else {
                    taken
                };
                teach(at, Teach::EventsLookup(resolver.clone(), 1));
            }
        } else {
            // Shadow: the real path. Each holder took the request over and, unless they kept
            // it to the end, handed it on when the next one took it.
            let holds: Vec<Hold> = if r.holds.is_empty() {
                // No event log: the path from the summary, every step at close.
                r.resource_path
                    .iter()
                    .filter(|p| !is_system_account(p))
                    .map(|p| Hold {
                        human: p.clone(),
                        from: closed,
                    })
                    .collect()
            } else {
                r.holds.clone()
            };
            let mut held_by_resolver = false;
            let mut resolver_since = closed;
            for (k, h) in holds.iter().enumerate() {
                let from = when(h.from);
                teach(from, Teach::TakeOver(h.human.clone()));
                teach(from, Teach::EventsLookup(h.human.clone(), 1));
                teach(from, Teach::Hold(h.human.clone()));
                let last = k + 1 == holds.len();
                if last && h.human == resolver {
                    held_by_resolver = true;
                    resolver_since = h.from;
                    teach(end, Teach::Release(h.human.clone()));
                } else {
                    let until = holds.get(k + 1).map_or(end, |n| when(n.from));
                    teach(until, Teach::Release(h.human.clone()));
                    let kind = OutcomeKind::HandedOff {
                        taken_over_at: Some(from),
                    };
                    teach(until, Teach::Outcome(h.human.clone(), kind));
                    teach(until, Teach::EventsLookup(h.human.clone(), -1));
                }
            }
            if !resolver.is_empty() {
                let kind = resolved(false, held_by_resolver, resolver_since);
                teach(end, Teach::Outcome(resolver.clone(), kind));
                if !held_by_resolver {
                    teach(end, Teach::EventsLookup(resolver.clone(), 1));
                }
            }
        }
        // The intake person was paged and Goliath did not give them the request: did they
        // keep it and resolve it themselves?
        let paged =
            use_on_call && !r.first_resource.is_empty() && !is_system_account(&r.first_resource);
        if !resolver.is_empty() && paged && pick != Some(r.first_resource.as_str()) {
            let kept = resolver == r.first_resource;
            teach(end, Teach::OnCall(r.first_resource.clone(), kept));
        }
        if !r.resolver.is_empty() && !is_system_account(&r.resolver) {
            teach(end, Teach::Lookup);
        }
        if !resolver.is_empty() && pick.is_some() {
            teach(end, Teach::Fit(resolver.clone()));
        }
        let mut waiting = false;
        for (t, status) in &r.statuses {
            let now_waiting = WAITING_STATUSES.contains(&status.as_str());
            if now_waiting != waiting && *t < closed {
                waiting = now_waiting;
                teach(when(*t), Teach::Waiting(waiting));
            }
        }
        out
    };
    let learn = |humans: &mut Vec<Human>,
                 index: &mut HashMap<String, usize>,
                 by_team: &mut HashMap<String, Vec<usize>>,
                 lookup: &mut FrequencyLookup,
                 events_lookup: &mut FrequencyLookup,
                 loads: &mut Loads,
                 fits: &mut Fits,
                 lesson: &Lesson| {
        let r = &requests[lesson.req];
        let tags = tags_of(r);
        let at = lesson.at;
        match &lesson.what {
            Teach::TakeOver(p) => {
                let i = human(humans, index, p);
                cover(humans, by_team, i, &r.first_team);
                // The load they already hold as they take it.
                let holding = Some(humans[i].open_items);
                let kind = OutcomeKind::TookOver { holding };
                humans[i].update(r, &tags, &|st| apply_outcome(st, &kind, at, params));
            }
            Teach::Outcome(p, kind) => {
                let i = human(humans, index, p);
                cover(humans, by_team, i, &r.first_team);
                humans[i].update(r, &tags, &|st| apply_outcome(st, kind, at, params));
            }
            Teach::OnCall(p, kept) => {
                let i = human(humans, index, p);
                cover(humans, by_team, i, &r.first_team);
                humans[i].update(r, &tags, &|st| apply_on_call_outcome(st, *kept, at, params));
            }
            Teach::Hold(p) => {
                let i = human(humans, index, p);
                loads.hold(humans, lesson.req, i);
            }
            Teach::Release(p) => {
                if let Some(&i) = index.get(p) {
                    loads.release(humans, lesson.req, i);
                }
            }
            Teach::Waiting(w) => loads.waiting(humans, lesson.req, *w),
            Teach::Lookup => lookup.learn(r),
            Teach::EventsLookup(p, delta) => events_lookup.add(r, p, *delta),
            Teach::Fit(resolver) => {
                if let Some(p) = fits.decisions.remove(&lesson.req) {
                    let right = p.pick == *resolver;
                    fits.weights.fit(&p.components, &p.used, right);
                    let (model, count) = (p.model.as_deref(), p.count.as_deref());
                    let half_life = params.half_life_days;
                    fits.weights
                        .tally(model, count, Some(resolver), at, half_life);
                }
            }
        }
    };
    // Lessons waiting for their time, latest first (so the next one is popped from the end).
    let mut pending: Vec<Lesson> = Vec::new();
    let mut loads = Loads::default();
    let mut fits = Fits::default();

    let everyone: Vec<usize> = (0..humans.len()).collect();
    for (ri, r) in requests.iter().enumerate() {
        // Everything learned by now (with immediate feedback: every earlier request's lessons).
        pending.sort_by_key(|l| std::cmp::Reverse((l.at, l.req, l.step)));
        while pending.last().is_some_and(|p| p.at <= r.first_event_at) {
            let lesson = pending.pop().expect("checked");
            learn(
                &mut humans,
                &mut index,
                &mut by_team,
                &mut lookup,
                &mut events_lookup,
                &mut loads,
                &mut fits,
                &lesson,
            );
        }
        let paged =
            use_on_call && !r.first_resource.is_empty() && !is_system_account(&r.first_resource);
        let on_call = if paged {
            let i = human(&mut humans, &mut index, &r.first_resource);
            if !open {
                cover(&mut humans, &mut by_team, i, &r.first_team);
            }
            Some(i)
        } else {
            None
        };
        let scored = !r.resolver.is_empty() && !is_system_account(&r.resolver);
        let mut pick: Option<String> = None;
        // Assign mode decides every request (the pick gets it either way); shadow mode only
        // where there is an answer to score.
        if scored || assign {
            let tags = tags_of(r);
            let team_humans = if open {
                everyone.clone()
            } else {
                by_team.get(&r.first_team).cloned().unwrap_or_default()
            };
            let candidates: Vec<CandidateInput> = team_humans
                .iter()
                .map(|&i| {
                    let p = &humans[i];
                    CandidateInput {
                        human_id: p.id.clone(),
                        active: true,
                        services: if open { Vec::new() } else { p.services.clone() },
                        max_active: None,
                        open_items: if args.open_loads { p.open_items } else { 0 },
                        on_call: Some(i) == on_call,
                        skill: Severity::ALL
                            .iter()
                            .filter_map(|&s| {
                                p.skill
                                    .get(&(r.first_team.clone(), s))
                                    .map(|st| SkillRecord {
                                        service: r.first_team.clone(),
                                        severity: s,
                                        state: st.clone(),
                                    })
                            })
                            .collect(),
                        context_skill: tags
                            .iter()
                            .flat_map(|t| {
                                let all = p.context.get(t).map(|st| ContextRecord {
                                    tag: t.clone(),
                                    service: None,
                                    state: st.clone(),
                                });
                                let here = p
                                    .context_here
                                    .get(&(r.first_team.clone(), t.clone()))
                                    .map(|st| ContextRecord {
                                        tag: t.clone(),
                                        service: Some(r.first_team.clone()),
                                        state: st.clone(),
                                    });
                                all.into_iter().chain(here)
                            })
                            .collect(),
                        overall: Some(p.overall.clone()),
                    }
                })
                .collect();
            let input = DecisionInput {
                work_item_id: r.sr_number.clone(),
                service: r.first_team.clone(),
                severity: r.severity,
                at: r.first_event_at,
                candidates,
                context: tags,
                on_call_required: false,
                recommend_only: !assign,
                weights: fits.weights.clone(),
            };
            let t = std::time::Instant::now();
            let d = decide(&input, params);
            micros += t.elapsed().as_secs_f64() * 1e6;
            if let Some(first) = d.ranking.first() {
                let (model, count) = picks_of(&d.ranking);
                let picked = Picked {
                    pick: first.human_id.clone(),
                    components: first.components.clone(),
                    used: fits.weights.clone(),
                    model: model.map(str::to_string),
                    count: count.map(str::to_string),
                };
                fits.decisions.insert(ri, picked);
            }
            pick = d.primary.clone();
            if scored {
                let part = &mut parts[usize::from(ri >= split_at)];
                for res in [&mut res, part] {
                    res.scored += 1;
                    if team_humans.iter().any(|&i| humans[i].id == r.resolver) {
                        res.resolver_eligible += 1;
                    }
                    if d.primary.is_none() {
                        res.undecided += 1;
                    }
                    let correct = d.primary.as_deref() == Some(r.resolver.as_str());
                    if correct {
                        res.goliath_top1 += 1;
                    }
                    if d.primary.is_some() {
                        res.calibration.add(d.confidence, correct);
                    }
                    if r.resolver == r.first_resource {
                        res.resolver_on_call += 1;
                    }
                    if d.primary.is_some()
                        && d.primary.as_deref() == Some(r.first_resource.as_str())
                    {
                        res.picked_on_call += 1;
                        if correct {
                            res.picked_on_call_correct += 1;
                        }
                    }
                    if d.ranking.iter().take(3).any(|c| c.human_id == r.resolver) {
                        res.goliath_top3 += 1;
                    }
                }
                let by_events = events_lookup.ranked(r);
                let part = &mut parts[usize::from(ri >= split_at)];
                for res in [&mut res, part] {
                    res.events_lookup_top1 += usize::from(by_events.first() == Some(&&r.resolver));
                    res.events_lookup_top3 +=
                        usize::from(by_events.iter().take(3).any(|t| **t == r.resolver));
                }
                let top = lookup.ranked(r);
                if !top.is_empty() {
                    let top1 = top.first().is_some_and(|t| **t == r.resolver);
                    let top3 = top.iter().take(3).any(|t| **t == r.resolver);
                    let part = &mut parts[usize::from(ri >= split_at)];
                    for res in [&mut res, part] {
                        res.lookup_top1 += usize::from(top1);
                        res.lookup_top3 += usize::from(top3);
                    }
                }
                if args.every > 0 && res.scored.is_multiple_of(args.every) {
                    res.humans = humans.len();
                    progress(&res);
                }
            }
        }
        if assign {
            if let Some(&i) = pick.as_ref().and_then(|p| index.get(p)) {
                loads.hold(&mut humans, ri, i);
            }
        }
        let lookup_pick = events_lookup.ranked(r).first().map(|p| p.to_string());
        let lessons = lessons_of(ri, pick.as_deref(), lookup_pick.as_deref());
        pending.extend(lessons);
    }
    res.humans = humans.len();
    res.weights = fits.weights.clone();
    res.mean_decide_micros = if res.scored > 0 {
        micros / res.scored as f64
    } else {
        0.0
    };
    let [tuning, held_out] = parts;
    ReplaySplit {
        all: res,
        tuning,
        held_out,
    }
}

/// The words of a title that can say who owns the work: lowercase, letters and digits, at
/// least four characters, each once, in order of appearance.
pub fn title_tokens(title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in title
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 4)
    {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Parses `--params` JSON over the defaults.
pub fn params_from_json(json: Option<&str>) -> Result<ModelParams> {
    match json {
        None => Ok(ModelParams::default()),
        Some(s) => serde_json::from_str(s).context("--params is not valid ModelParams JSON"),
    }
}

/// A setting's name as the README quotes it.
fn setting_name(args: &ReplayArgs) -> String {
    format!(
        "{:<6} {:<4} {:<10} {:<7}",
        args.mode.name(),
        match args.roster {
            RosterKind::Seen => "seen",
            RosterKind::Open => "open",
        },
        match args.feedback {
            Feedback::Immediate => "immediate",
            Feedback::AtResolve => "at-resolve",
        },
        if args.no_on_call { "none" } else { "paged" },
    )
}

/// `goliath replay-bpic`: replays the log and prints online accuracy against the lookup.
pub fn run_replay(args: &ReplayArgs) -> Result<()> {
    let mut args = args.clone();
    if args.stand_in {
        args.context = String::new();
        args.no_events = true;
    }
    let args = &args;
    let params = params_from_json(args.params.as_deref())?;
    let mut requests = load_requests(&args.path)?;
    if !args.no_events {
        load_holds(&args.events, &mut requests)?;
    }
    println!(
        "replay {}: {} requests; service = first_team, context = [{}]; first {:.0}% tunes, the rest is held out",
        args.path.display(),
        requests.len(),
        args.context,
        args.tuning_share * 100.0
    );
    if args.through_http {
        if args.stand_in {
            // No product: no PagerDuty team on the incident, and the lookups key by team.
            for r in &mut requests {
                r.product.clear();
            }
        }
        let r = super::replay_http::replay_through_http(&requests, args.tuning_share, args.mode)?;
        let (t, h, a) = (&r.tuning, &r.held_out, &r.all);
        println!(
            "through HTTP ({}, open roster, at-resolve, no on-call), {} people: tuning top-1 {:.3}/{:.3} held-out {:.3}/{:.3} | top-1 {:.2}x/{:.2}x top-3 {:.2}x/{:.2}x | vs events lookup top-1 {:.2}x/{:.2}x top-3 {:.2}x/{:.2}x | ECE {:.3}/{:.3} | overall top-1 {:.2}x top-3 {:.2}x | {:.1} ms per webhook",
            args.mode.name(),
            a.humans,
            t.rate(t.goliath_top1),
            t.rate(t.lookup_top1),
            h.rate(h.goliath_top1),
            h.rate(h.lookup_top1),
            t.top1_ratio(),
            h.top1_ratio(),
            t.top3_ratio(),
            h.top3_ratio(),
            t.events_top1_ratio(),
            h.events_top1_ratio(),
            t.events_top3_ratio(),
            h.events_top3_ratio(),
            t.calibration.ece(),
            h.calibration.ece(),
            a.top1_ratio(),
            a.top3_ratio(),
            a.mean_decide_micros / 1000.0
        );
        println!("calibration, held-out part:\n{}", h.calibration.table());
        return Ok(());
    }
    print_table(&requests, &params, settings(args));
    Ok(())
}

/// The settings `args` asks for: every combination with `--all`, else `args` alone.
fn settings(args: &ReplayArgs) -> Vec<ReplayArgs> {
    if args.all {
        let mut all = Vec::new();
        for mode in [Mode::Shadow, Mode::Assign] {
            for roster in [RosterKind::Seen, RosterKind::Open] {
                for feedback in [Feedback::Immediate, Feedback::AtResolve] {
                    for no_on_call in [false, true] {
                        all.push(ReplayArgs {
                            mode,
                            roster,
                            feedback,
                            no_on_call,
                            every: 0,
                            ..args.clone()
                        });
                    }
                }
            }
        }
        all
    } else {
        vec![args.clone()]
    }
}

/// Replays `requests` under each of `settings` and prints a line per setting (and, for a
/// single setting, the overall figures, the term weights and the calibration table).
pub fn print_table(requests: &[Request], params: &ModelParams, settings: Vec<ReplayArgs>) {
    println!(
        "{:<6} {:<4} {:<10} {:<7} | {:>21} | {:>21} | {:>13} | {:>13} | {:>13} | {:>13} | {:>11}",
        "mode",
        "ros.",
        "feedback",
        "on-call",
        "tuning g/lk top-1",
        "held-out g/lk top-1",
        "top-1 x t/h",
        "top-3 x t/h",
        "ev.lk 1 x t/h",
        "ev.lk 3 x t/h",
        "ECE t/h"
    );
    let one = settings.len() == 1;
    for s in &settings {
        let r = replay(requests, params, s, |_| {});
        let (t, h) = (&r.tuning, &r.held_out);
        println!(
            "{} | {:>10.3}/{:<10.3} | {:>10.3}/{:<10.3} | {:>5.2}x {:>5.2}x | {:>5.2}x {:>5.2}x | {:>5.2}x {:>5.2}x | {:>5.2}x {:>5.2}x | {:.3} {:.3}",
            setting_name(s),
            t.rate(t.goliath_top1),
            t.rate(t.lookup_top1),
            h.rate(h.goliath_top1),
            h.rate(h.lookup_top1),
            t.top1_ratio(),
            h.top1_ratio(),
            t.top3_ratio(),
            h.top3_ratio(),
            t.events_top1_ratio(),
            h.events_top1_ratio(),
            t.events_top3_ratio(),
            h.events_top3_ratio(),
            t.calibration.ece(),
            h.calibration.ece(),
        );
        if one {
            let a = &r.all;
            println!(
                "overall: scored {} of {} requests; resolver eligible {:.1}%; goliath top-1 {:.3} top-3 {:.3} | lookup top-1 {:.3} top-3 {:.3} | top-1 {:.2}x top-3 {:.2}x | undecided {} | mean decide {:.0} us",
                a.scored,
                a.requests,
                100.0 * a.rate(a.resolver_eligible),
                a.rate(a.goliath_top1),
                a.rate(a.goliath_top3),
                a.rate(a.lookup_top1),
                a.rate(a.lookup_top3),
                a.top1_ratio(),
                a.top3_ratio(),
                a.undecided,
                a.mean_decide_micros
            );
            println!(
                "lookup fed the Jira events Goliath learns ownership from (take-overs as they happen): top-1 {:.3} top-3 {:.3} | Goliath top-1 {:.2}x",
                a.rate(a.events_lookup_top1),
                a.rate(a.events_lookup_top3),
                a.events_top1_ratio(),
            );
            println!("term weights at the end: {}", a.weights.named());
            println!(
                "calibration, held-out part (the pick is the real resolver):\n{}",
                r.held_out.calibration.table()
            );
            println!(
                "on-call (intake) person: resolved {:.3} of scored requests; goliath picked them {:.3} of the time, correctly {:.3}",
                a.rate(a.resolver_on_call),
                a.rate(a.picked_on_call),
                a.rate(a.picked_on_call_correct),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// `n` requests an hour apart on team T, product P, each resolved by `se-Ann` a day after
    /// it starts; the last one passes through `se-Bob` first.
    fn log(n: usize) -> Vec<Request> {
        let t0 = Utc.with_ymd_and_hms(2012, 4, 1, 8, 0, 0).unwrap();
        (0..n)
            .map(|i| {
                let at = t0 + chrono::Duration::hours(i as i64);
                let mut path = vec!["se-Ann".to_string()];
                if i == n - 1 {
                    path.insert(0, "se-Bob".to_string());
                }
                Request {
                    sr_number: format!("1-{i}"),
                    first_event_at: at,
                    resolved_at: Some(at + chrono::Duration::days(1)),
                    last_event_at: at + chrono::Duration::days(1),
                    hours_to_resolve: Some(24.0),
                    severity: Severity::Sev3,
                    product: "P".into(),
                    country: "se".into(),
                    first_team: "T".into(),
                    first_resource: "se-Ann".into(),
                    resolver: "se-Ann".into(),
                    resource_path: path,
                    holds: Vec::new(),
                    statuses: Vec::new(),
                    title: String::new(),
                }
            })
            .collect()
    }

    fn run(args: ReplayArgs) -> ReplaySplit {
        let args = ReplayArgs { every: 0, ..args };
        replay(&log(10), &ModelParams::default(), &args, |_| {})
    }

    #[test]
    fn outcomes_arrive_when_the_setting_says_for_the_model_and_the_lookup_alike() {
        let immediate = run(ReplayArgs {
            no_on_call: true,
            ..ReplayArgs::default()
        });
        assert_eq!(immediate.all.scored, 10);
        assert_eq!(immediate.all.lookup_top1, 9, "learned from the first on");
        assert!(immediate.all.goliath_top1 >= 9, "{immediate:?}");
        // Every request starts before the first one closes: nothing is known in time.
        let at_resolve = run(ReplayArgs {
            no_on_call: true,
            feedback: Feedback::AtResolve,
            ..ReplayArgs::default()
        });
        assert_eq!(at_resolve.all.lookup_top1, 0);
        assert_eq!(at_resolve.all.goliath_top1, 0, "{at_resolve:?}");
    }

    #[test]
    fn take_overs_reach_the_model_when_they_happened_and_the_lookup_learns_only_resolves() {
        // Bob takes each request in; Zoe takes it over ten minutes later and resolves it a day
        // after it started, long after the next requests came in.
        let mut requests = log(10);
        for r in &mut requests {
            r.resolver = "se-Zoe".into();
            r.first_resource = "se-Bob".into();
            r.resource_path = vec!["se-Bob".into(), "se-Zoe".into()];
            r.holds = vec![
                Hold {
                    human: "se-Bob".into(),
                    from: r.first_event_at,
                },
                Hold {
                    human: "se-Zoe".into(),
                    from: r.first_event_at + chrono::Duration::minutes(10),
                },
            ];
        }
        for mode in [Mode::Shadow, Mode::Assign] {
            let args = ReplayArgs {
                roster: RosterKind::Open,
                no_on_call: true,
                feedback: Feedback::AtResolve,
                mode,
                every: 0,
                ..ReplayArgs::default()
            };
            let with_holds = replay(&requests, &ModelParams::default(), &args, |_| {});
            assert_eq!(with_holds.all.lookup_top1, 0, "no request closed in time");
            assert!(
                with_holds.all.events_lookup_top1 >= 8,
                "{mode:?}: the lookup fed take-overs sees them too: {with_holds:?}"
            );
            // (The first is a guess.)
            assert!(
                with_holds.all.goliath_top1 >= 9,
                "{mode:?}: Zoe's take-over of each request is known when the next comes in: {with_holds:?}"
            );
            // Without the event log every hand-off waits for the close, as the resolve does:
            // nothing is known in time, and Zoe or Bob is a guess (in shadow
            // mode, with no exploration, the first by name: Bob).
            let mut no_log = requests.clone();
            no_log.iter_mut().for_each(|r| r.holds.clear());
            let without = replay(&no_log, &ModelParams::default(), &args, |_| {});
            assert!(without.all.goliath_top1 <= 7, "{mode:?}: {without:?}");
        }
    }

    #[test]
    fn the_event_log_gives_each_request_its_holds_in_order_without_system_accounts() {
        let dir = std::env::temp_dir().join(format!("goliath-holds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.csv");
        std::fs::write(
            &path,
            "\u{feff}SR Number,Change Date+Time,Status,Sub Status,Resource\n\
             1-0,2012-04-01T09:00:00+01:00,Accepted,In Progress,se-Bob\n\
             1-0,2012-04-01T08:00:00+01:00,Queued,Awaiting Assignment,se-Bob\n\
             1-0,2012-04-01T10:00:00+01:00,Accepted,Wait - User,se-Siebel\n\
             1-0,2012-04-01T11:00:00+01:00,Accepted,In Progress,se-Ann\n\
             1-0,2012-04-01T12:00:00+01:00,Completed,Resolved,se-Ann\n\
             9-9,2012-04-01T12:00:00+01:00,Completed,Resolved,se-Cy\n",
        )
        .unwrap();
        let mut requests = log(2);
        load_holds(&path, &mut requests).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let at = |h: u32| Utc.with_ymd_and_hms(2012, 4, 1, h - 1, 0, 0).unwrap();
        assert_eq!(
            requests[0].holds,
            vec![
                Hold {
                    human: "se-Bob".into(),
                    from: at(8)
                },
                Hold {
                    human: "se-Ann".into(),
                    from: at(11)
                },
            ]
        );
        assert!(requests[1].holds.is_empty(), "not in the log");
        let names: Vec<&str> = requests[0]
            .statuses
            .iter()
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Awaiting Assignment",
                "In Progress",
                "Wait - User",
                "In Progress",
                "Resolved"
            ]
        );
        // 8:00-12:00 less an hour awaiting assignment and an hour waiting on the user.
        assert_eq!(requests[0].working_seconds(at(8), at(12)), 2.0 * 3600.0);
        assert_eq!(requests[0].working_seconds(at(11), at(12)), 3600.0);
    }

    #[test]
    fn the_parts_add_up_and_the_open_roster_knows_everyone_from_the_start() {
        let seen = run(ReplayArgs::default());
        assert_eq!(seen.tuning.scored, 6);
        assert_eq!(seen.held_out.scored, 4);
        assert_eq!(
            seen.tuning.goliath_top1 + seen.held_out.goliath_top1,
            seen.all.goliath_top1
        );
        let open = run(ReplayArgs {
            roster: RosterKind::Open,
            no_on_call: true,
            feedback: Feedback::AtResolve,
            ..ReplayArgs::default()
        });
        assert_eq!(open.all.humans, 2, "Ann and Bob");
        assert_eq!(
            open.all.resolver_eligible, 10,
            "Ann is eligible from the first request"
        );
        assert_eq!(open.all.undecided, 0);
    }

    #[test]
    fn in_assign_mode_a_wrong_pick_hands_on_to_the_real_resolver() {
        let assign = run(ReplayArgs {
            roster: RosterKind::Open,
            mode: Mode::Assign,
            no_on_call: true,
            ..ReplayArgs::default()
        });
        // Bob, as likely as Ann at first, learns from each wrong pick; Ann from each resolve.
        assert!(assign.all.goliath_top1 >= 8, "{assign:?}");
    }

    #[test]
    fn a_waiting_request_counts_for_none_of_its_holders() {
        let mut humans: Vec<Human> = (0..2).map(|_| Human::default()).collect();
        let mut loads = Loads::default();
        loads.hold(&mut humans, 7, 0);
        loads.hold(&mut humans, 8, 0);
        assert_eq!(humans[0].open_items, 2);
        loads.waiting(&mut humans, 7, true);
        assert_eq!(humans[0].open_items, 1, "request 7 waits");
        // Taken over while waiting: still no load until the wait ends, then for the new holder.
        loads.release(&mut humans, 7, 0);
        loads.hold(&mut humans, 7, 1);
        assert_eq!((humans[0].open_items, humans[1].open_items), (1, 0));
        loads.waiting(&mut humans, 7, false);
        assert_eq!((humans[0].open_items, humans[1].open_items), (1, 1));
        loads.release(&mut humans, 7, 1);
        loads.release(&mut humans, 8, 0);
        assert_eq!((humans[0].open_items, humans[1].open_items), (0, 0));
    }
}
