//! The simulator's HTTP surface: Jira REST v3 and v2 (the endpoints Goliath uses) and the
//! `/_sim` admin routes.

// Helpers return the early response as `Err(HttpResponse)`; it is built once per request, so
// its size does not matter.
#![allow(clippy::result_large_err)]

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::jql::Query;
use super::state::{Op, SimFaults, SIM_API_ACCOUNT_ID, STATUS_DONE_ID, STATUS_TODO_ID};
use super::Shared;

type Sim = web::Data<Shared>;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/rest/api/{v}/issue", web::post().to(create_issue))
        .route("/rest/api/{v}/issue/{key}", web::get().to(get_issue))
        .route("/rest/api/{v}/issue/{key}", web::put().to(edit_issue))
        .route("/rest/api/{v}/myself", web::get().to(myself))
        .route("/rest/api/{v}/issue/{key}/assignee", web::put().to(assign))
        .route(
            "/rest/api/{v}/issue/{key}/transitions",
            web::get().to(list_transitions),
        )
        .route(
            "/rest/api/{v}/issue/{key}/transitions",
            web::post().to(do_transition),
        )
        .route(
            "/rest/api/{v}/issue/{key}/comment",
            web::post().to(add_comment),
        )
        .route("/rest/api/3/search/jql", web::post().to(search_v3))
        .route("/rest/api/3/search", web::route().to(search_v3_removed))
        .route("/rest/api/2/search", web::post().to(search_v2))
        .route("/_sim/faults", web::post().to(set_faults))
        .route("/_sim/issues", web::get().to(list_issues))
        .route("/_sim/deliveries", web::get().to(list_deliveries))
        .route("/_sim/reset", web::post().to(reset))
        .route("/_sim/issues/{key}/{action}", web::post().to(act));
}

// ---------------------------------------------------------------------------------------------
// Responses

fn jira_error(status: u16, messages: &[&str], errors: Value) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(json!({"errorMessages": messages, "errors": errors}))
}

fn not_found() -> HttpResponse {
    jira_error(
        404,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", "Basic realm=\"protected-area\""))
        .content_type("text/plain; charset=utf-8")
        .body("Client must be authenticated to access this resource.")
}

/// The error Jira (or the proxy in front of it) gives for `status`.
fn fault_response(op: Op, status: u16, retry_after_secs: u64) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        400 if op == Op::CreateIssue => jira_error(
            400,
            &[],
            json!({"summary": "You must specify a summary of the issue.", "issuetype": "Specify an issue type"}),
        ),
        400 => jira_error(400, &["The request is invalid."], json!({})),
        401 => unauthorized(),
        403 => jira_error(
            403,
            &["You do not have permission to perform this operation."],
            json!({}),
        ),
        404 => not_found(),
        409 => jira_error(409, &["Conflicting update, please try again."], json!({})),
        429 => HttpResponse::build(code)
            .insert_header(("Retry-After", retry_after_secs.to_string()))
            .insert_header(("X-RateLimit-Limit", "100"))
            .insert_header(("X-RateLimit-Remaining", "0"))
            .insert_header(("RateLimit-Reason", "jira-burst-based"))
            .json(json!({"errorMessages": ["Rate limit exceeded."], "errors": {}})),
        503 => HttpResponse::build(code)
            .insert_header(("Retry-After", retry_after_secs.to_string()))
            .json(json!({"errorMessages": ["Service unavailable. Please try again later."], "errors": {}})),
        502 | 504 => HttpResponse::build(code)
            .content_type("text/html")
            .body(format!(
                "<html><body><h1>{status} {}</h1></body></html>",
                code.canonical_reason().unwrap_or("")
            )),
        s if s >= 500 => jira_error(s, &["Internal server error"], json!({})),
        s => jira_error(s, &[&format!("HTTP {s}")], json!({})),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn api_version(v: &str) -> Option<u8> {
    match v {
        "2" => Some(2),
        "3" => Some(3),
        _ => None,
    }
}

fn authorized(sim: &Shared, req: &HttpRequest) -> bool {
    let Some(expected) = &sim.auth_header else {
        return true;
    };
    let got = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    got == Some(expected.as_str())
}

/// Counts the call, checks auth and takes the next fault for `op` (waiting its delay).
/// `Err` is the response to send now.
async fn gate(
    sim: &Shared,
    req: &HttpRequest,
    op: Op,
) -> Result<Option<super::state::Fault>, HttpResponse> {
    let fault = {
        let mut st = sim.lock();
        match op {
            Op::CreateIssue => st.counters.create_issue += 1,
            Op::Assign => st.counters.assign += 1,
            Op::Search => st.counters.search += 1,
            Op::GetIssue => st.counters.get_issue += 1,
            Op::Transition => st.counters.transition += 1,
            Op::Comment => st.counters.comment += 1,
            Op::EditIssue => st.counters.edit_issue += 1,
        }
        if !authorized(sim, req) {
            st.counters.unauthorized += 1;
            return Err(unauthorized());
        }
        let fault = st.faults.take(op);
        if fault.is_some() {
            st.counters.faults_injected += 1;
        }
        fault
    };
    if let Some(f) = &fault {
        if f.delay_ms > 0 {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(f.delay_ms)).await;
        }
    }
    match fault {
        Some(f) if !(200..300).contains(&f.status) && !f.commit => {
            let retry_after = sim.lock().faults.retry_after_secs;
            Err(fault_response(op, f.status, retry_after))
        }
        Some(f) if !(200..300).contains(&f.status) || f.hold_ms > 0 => Ok(Some(f)),
        _ => Ok(None),
    }
}

/// After a committed fault, the error replaces the success response.
fn finish(
    sim: &Shared,
    op: Op,
    fault: Option<super::state::Fault>,
    ok: HttpResponse,
) -> HttpResponse {
    match fault {
        Some(f) if !(200..300).contains(&f.status) => {
            fault_response(op, f.status, sim.lock().faults.retry_after_secs)
        }
        _ => ok,
    }
}

fn parse_json(body: &[u8]) -> Result<Value, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| {
        jira_error(
            400,
            &[&format!("Unexpected character in the request body: {e}")],
            json!({}),
        )
    })
}

fn name_or_id(v: &Value) -> Option<String> {
    ["key", "name", "id"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// REST

async fn create_issue(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    sim: Sim,
) -> HttpResponse {
    let Some(api) = api_version(&path) else {
        return HttpResponse::NotFound().finish();
    };
    let fault = match gate(&sim, &req, Op::CreateIssue).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let body = match parse_json(&body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let empty = json!({});
    let fields = body
        .get("fields")
        .filter(|f| f.is_object())
        .unwrap_or(&empty);
    let mut errors = serde_json::Map::new();

    let project = fields.get("project").and_then(name_or_id);
    if project.is_none() {
        errors.insert("project".into(), json!("Specify a valid project ID or key"));
    }
    let issue_type = fields.get("issuetype").and_then(name_or_id);
    if issue_type.is_none() {
        errors.insert("issuetype".into(), json!("Specify an issue type"));
    }
    let summary = fields
        .get("summary")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match summary {
        None => {
            errors.insert(
                "summary".into(),
                json!("You must specify a summary of the issue."),
            );
        }
        Some(s) if s.chars().count() > 255 || s.contains('\n') => {
            errors.insert(
                "summary".into(),
                json!("Summary must be less than 255 characters and a single line."),
            );
        }
        Some(_) => {}
    }
    let description = fields.get("description").cloned().unwrap_or(Value::Null);
    match (&description, api) {
        (Value::Null, _) => {}
        (Value::Object(o), 3) if o.get("type").and_then(Value::as_str) == Some("doc") => {}
        (_, 3) => {
            errors.insert(
                "description".into(),
                json!("Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
            );
        }
        (Value::String(_), _) => {}
        (_, _) => {
            errors.insert(
                "description".into(),
                json!("Operation value must be a string"),
            );
        }
    }
    let mut labels = Vec::new();
    match fields.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for l in items {
                match l.as_str() {
                    Some(s) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                        if !labels.iter().any(|x: &String| x == s) {
                            labels.push(s.to_owned());
                        }
                    }
                    _ => {
                        errors.insert(
                            "labels".into(),
                            json!(format!(
                                "The label '{}' contains spaces which is invalid.",
                                l.as_str().unwrap_or_default()
                            )),
                        );
                    }
                }
            }
        }
        Some(_) => {
            errors.insert("labels".into(), json!("data was not an array"));
        }
    }
    let assignee = match fields.get("assignee") {
        None | Some(Value::Null) => None,
        Some(a) => {
            let id = if api == 3 {
                a.get("accountId").and_then(Value::as_str)
            } else {
                a.get("name")
                    .or_else(|| a.get("key"))
                    .and_then(Value::as_str)
            };
            match id {
                Some(id) if !id.is_empty() && id != "-1" => Some(id.to_owned()),
                Some(_) => None,
                None => {
                    errors.insert(
                        "assignee".into(),
                        json!(
                            "Specified user does not exist or you do not have required permissions"
                        ),
                    );
                    None
                }
            }
        }
    };
    let priority = fields.get("priority").and_then(name_or_id);
    if !errors.is_empty() {
        return jira_error(400, &[], Value::Object(errors));
    }

    let ctx = &sim.ctx;
    // The lock is released before any wait below.
    let ok = {
        let mut st = sim.lock();
        let idx = st.create(
            ctx,
            project.as_deref().unwrap_or_default(),
            issue_type.as_deref().unwrap_or_default(),
            summary.unwrap_or_default(),
            description,
            priority,
            labels,
            assignee,
        );
        if ctx.config.echo_api_changes {
            let hook = st.created_webhook(ctx, idx);
            st.push_delivery(ctx, hook);
        }
        let issue = &st.issues[idx];
        log::info!(
            "jira-sim: created {} for {} ({})",
            issue.key,
            issue.assignee.as_deref().unwrap_or("nobody"),
            issue.labels.join(",")
        );
        HttpResponse::Created().json(json!({
            "id": issue.id,
            "key": issue.key,
            "self": format!("{}/rest/api/{api}/issue/{}", ctx.base_url, issue.id),
        }))
    };
    sim.wake.notify_all();
    if let Some(f) = fault.filter(|f| f.hold_ms > 0) {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(f.hold_ms)).await;
    }
    finish(&sim, Op::CreateIssue, fault, ok)
}

/// `GET /rest/api/{2|3}/myself`: the API account the credentials belong to.
async fn myself(req: HttpRequest, path: web::Path<String>, sim: Sim) -> HttpResponse {
    let Some(api) = api_version(&path) else {
        return HttpResponse::NotFound().finish();
    };
    if !authorized(&sim, &req) {
        sim.lock().counters.unauthorized += 1;
        return unauthorized();
    }
    HttpResponse::Ok().json(super::state::user_json(&sim.ctx, SIM_API_ACCOUNT_ID, api))
}

async fn get_issue(req: HttpRequest, path: web::Path<(String, String)>, sim: Sim) -> HttpResponse {
    let (v, key) = path.into_inner();
    let Some(api) = api_version(&v) else {
        return HttpResponse::NotFound().finish();
    };
    let fault = match gate(&sim, &req, Op::GetIssue).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let st = sim.lock();
    let ok = match st.find(&key) {
        Some(idx) => HttpResponse::Ok().json(super::state::issue_json(
            &sim.ctx,
            &st.issues[idx],
            api,
            None,
        )),
        None => not_found(),
    };
    drop(st);
    finish(&sim, Op::GetIssue, fault, ok)
}

async fn assign(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: Sim,
) -> HttpResponse {
    let (v, key) = path.into_inner();
    let (api, fault, body) = match begin_write(&sim, &req, &v, Op::Assign, &body).await {
        Ok(start) => start,
        Err(resp) => return resp,
    };
    let field = if api == 3 { "accountId" } else { "name" };
    let to = match body.get(field) {
        Some(Value::Null) => None,
        Some(Value::String(s)) if s == "-1" || s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        _ => {
            return jira_error(
                400,
                &[],
                json!({ field: format!("Specify {field} (a string, or null to unassign)") }),
            )
        }
    };
    let ctx = &sim.ctx;
    let mut st = sim.lock();
    let Some(idx) = st.find(&key) else {
        return not_found();
    };
    let now = ctx.clock.now_ms();
    if let Some(hook) = st.set_assignee(ctx, idx, to, now, Some(SIM_API_ACCOUNT_ID)) {
        if ctx.config.echo_api_changes {
            st.push_delivery(ctx, hook);
        }
    }
    drop(st);
    sim.wake.notify_all();
    finish(&sim, Op::Assign, fault, HttpResponse::NoContent().finish())
}

/// The simulated workflow: To Do (category `new`), In Progress (`indeterminate`) and Done
/// (`done`), every transition global, as a default Jira Software project has them.
const TRANSITIONS: [(&str, &str, &str, &str, u8); 3] = [
    (TRANSITION_TODO_ID, "To Do", STATUS_TODO_ID, "new", 2),
    ("21", "In Progress", "3", "indeterminate", 4),
    (TRANSITION_DONE_ID, "Done", STATUS_DONE_ID, "done", 3),
];
const TRANSITION_TODO_ID: &str = "11";
const TRANSITION_DONE_ID: &str = "31";

/// `GET /rest/api/{2|3}/issue/{key}/transitions`.
async fn list_transitions(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    sim: Sim,
) -> HttpResponse {
    let (v, key) = path.into_inner();
    let Some(api) = api_version(&v) else {
        return HttpResponse::NotFound().finish();
    };
    let fault = match gate(&sim, &req, Op::Transition).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if sim.lock().find(&key).is_none() {
        return not_found();
    }
    let base = &sim.ctx.base_url;
    let transitions: Vec<Value> = TRANSITIONS
        .iter()
        .map(|(id, name, status, category, category_id)| {
            json!({
                "id": id, "name": name, "hasScreen": false, "isGlobal": true,
                "isInitial": false, "isAvailable": true, "isConditional": false, "isLooped": false,
                "to": {
                    "self": format!("{base}/rest/api/{api}/status/{status}"),
                    "name": name, "id": status,
                    "statusCategory": {"id": category_id, "key": category, "name": name}
                }
            })
        })
        .collect();
    let ok = HttpResponse::Ok().json(json!({"expand": "transitions", "transitions": transitions}));
    finish(&sim, Op::Transition, fault, ok)
}

/// What a write to an issue starts with: the API version, the auth and fault gate, and the
/// JSON body. `Err` is the response to send instead.
async fn begin_write(
    sim: &Shared,
    req: &HttpRequest,
    v: &str,
    op: Op,
    body: &[u8],
) -> Result<(u8, Option<super::state::Fault>, Value), HttpResponse> {
    let api = api_version(v).ok_or_else(|| HttpResponse::NotFound().finish())?;
    let fault = gate(sim, req, op).await?;
    let body = parse_json(body)?;
    Ok((api, fault, body))
}

/// `POST /rest/api/{2|3}/issue/{key}/transitions` with `{"transition":{"id":"31"}}`: Done sets
/// the resolution, To Do clears it; each sends the webhook real Jira sends when echoes are on.
async fn do_transition(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: Sim,
) -> HttpResponse {
    let (v, key) = path.into_inner();
    let (_, fault, body) = match begin_write(&sim, &req, &v, Op::Transition, &body).await {
        Ok(start) => start,
        Err(resp) => return resp,
    };
    let Some(id) = body["transition"]["id"].as_str().map(str::to_owned) else {
        return jira_error(400, &["Missing 'transition' identifier"], json!({}));
    };
    if !TRANSITIONS.iter().any(|t| t.0 == id) {
        return jira_error(
            400,
            &[&format!(
                "Transition id '{id}' is not valid for this issue."
            )],
            json!({}),
        );
    }
    let ctx = &sim.ctx;
    let mut st = sim.lock();
    let Some(idx) = st.find(&key) else {
        return not_found();
    };
    let now = ctx.clock.now_ms();
    let hook = match id.as_str() {
        TRANSITION_DONE_ID => st.resolve(ctx, idx, now, Some(SIM_API_ACCOUNT_ID)),
        TRANSITION_TODO_ID => st.reopen(ctx, idx, now, Some(SIM_API_ACCOUNT_ID)),
        _ => None,
    };
    if let Some(hook) = hook {
        if ctx.config.echo_api_changes {
            st.push_delivery(ctx, hook);
        }
    }
    drop(st);
    sim.wake.notify_all();
    finish(
        &sim,
        Op::Transition,
        fault,
        HttpResponse::NoContent().finish(),
    )
}

/// `POST /rest/api/{2|3}/issue/{key}/comment`: `body` is ADF (v3) or a string (v2).
async fn add_comment(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: Sim,
) -> HttpResponse {
    let (v, key) = path.into_inner();
    let (api, fault, body) = match begin_write(&sim, &req, &v, Op::Comment, &body).await {
        Ok(start) => start,
        Err(resp) => return resp,
    };
    let text = match (&body["body"], api) {
        (Value::String(s), 2) => s.clone(),
        (doc @ Value::Object(_), 3) if doc["type"] == "doc" => {
            crate::jira::adf::adf_to_plain_text(doc)
        }
        _ => {
            let want = if api == 3 {
                "an ADF document"
            } else {
                "a string"
            };
            return jira_error(
                400,
                &[],
                json!({"comment": format!("Comment body must be {want}.")}),
            );
        }
    };
    if text.trim().is_empty() {
        return jira_error(
            400,
            &[],
            json!({"comment": "Comment body can not be empty!"}),
        );
    }
    let ctx = &sim.ctx;
    let mut st = sim.lock();
    let Some(idx) = st.find(&key) else {
        return not_found();
    };
    let now = ctx.clock.now_ms();
    let issue = &mut st.issues[idx];
    issue.comments.push(text);
    issue.updated_ms = now;
    let id = format!("{}", 30_000 + issue.comments.len());
    let url = format!(
        "{}/rest/api/{api}/issue/{}/comment/{id}",
        ctx.base_url, issue.id
    );
    drop(st);
    let ok = HttpResponse::Created().json(json!({"id": id, "self": url, "body": body["body"]}));
    finish(&sim, Op::Comment, fault, ok)
}

/// `PUT /rest/api/{2|3}/issue/{key}`: edits fields; the simulator keeps `priority`.
async fn edit_issue(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: Sim,
) -> HttpResponse {
    let (v, key) = path.into_inner();
    let (_, fault, body) = match begin_write(&sim, &req, &v, Op::EditIssue, &body).await {
        Ok(start) => start,
        Err(resp) => return resp,
    };
    let empty = serde_json::Map::new();
    let fields = body
        .get("fields")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    // `update.labels`: `[{"add": l} | {"remove": l} | {"set": [..]}]`, applied in order.
    let label_ops = body
        .pointer("/update/labels")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if fields.is_empty() && label_ops.is_empty() {
        return jira_error(400, &["No fields to update."], json!({}));
    }
    let priority = match fields.get("priority") {
        None => None,
        Some(p) => match name_or_id(p) {
            Some(name) => Some(name),
            None => return jira_error(400, &[], json!({"priority": "Specify a priority name"})),
        },
    };
    let summary = match fields.get("summary") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => Some(s.clone()),
        Some(_) => {
            return jira_error(
                400,
                &[],
                json!({"summary": "The summary must be a single line of text."}),
            )
        }
    };
    fn label(v: &Value) -> Option<&str> {
        v.as_str().filter(|l| !l.is_empty() && !l.contains(' '))
    }
    for op in &label_ops {
        let ok = match (op.get("add"), op.get("remove"), op.get("set")) {
            (Some(l), None, None) | (None, Some(l), None) => label(l).is_some(),
            (None, None, Some(Value::Array(ls))) => ls.iter().all(|l| label(l).is_some()),
            _ => false,
        };
        if !ok {
            return jira_error(
                400,
                &[],
                json!({"labels": "Labels may not contain spaces."}),
            );
        }
    }
    let ctx = &sim.ctx;
    let mut st = sim.lock();
    let Some(idx) = st.find(&key) else {
        return not_found();
    };
    let now = ctx.clock.now_ms();
    let issue = &mut st.issues[idx];
    if let Some(p) = priority {
        issue.priority = Some(p);
    }
    if let Some(s) = summary {
        issue.summary = s;
    }
    for op in &label_ops {
        if let Some(l) = op.get("add").and_then(label) {
            if !issue.labels.iter().any(|x| x == l) {
                issue.labels.push(l.to_string());
            }
        } else if let Some(l) = op.get("remove").and_then(label) {
            issue.labels.retain(|x| x != l);
        } else if let Some(Value::Array(ls)) = op.get("set") {
            issue.labels = ls.iter().filter_map(label).map(str::to_string).collect();
        }
    }
    issue.updated_ms = now;
    drop(st);
    finish(
        &sim,
        Op::EditIssue,
        fault,
        HttpResponse::NoContent().finish(),
    )
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FieldList {
    List(Vec<String>),
    Csv(String),
}

#[derive(Deserialize)]
struct SearchRequest {
    #[serde(default)]
    jql: String,
    fields: Option<FieldList>,
    #[serde(rename = "maxResults")]
    max_results: Option<usize>,
    #[serde(rename = "nextPageToken")]
    next_page_token: Option<String>,
    #[serde(rename = "startAt")]
    start_at: Option<usize>,
}

struct SearchPage {
    issues: Vec<Value>,
    offset: usize,
    max: usize,
    total: usize,
}

impl SearchPage {
    fn is_last(&self) -> bool {
        self.offset + self.issues.len() >= self.total
    }
}

/// Runs a search; returns one page or the error response.
fn run_search(sim: &Shared, api: u8, body: &[u8]) -> Result<SearchPage, HttpResponse> {
    let req: SearchRequest = serde_json::from_slice(body)
        .map_err(|e| jira_error(400, &[&format!("Invalid request payload: {e}")], json!({})))?;
    let query = Query::parse(&req.jql).map_err(|m| jira_error(400, &[&m], json!({})))?;
    if api == 3 && !query.is_bounded() {
        return Err(jira_error(
            400,
            &["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."],
            json!({}),
        ));
    }
    let wanted: Option<Vec<String>> = match req.fields {
        None if api == 3 => Some(Vec::new()),
        None => None,
        Some(FieldList::List(l)) => Some(l),
        Some(FieldList::Csv(s)) => Some(s.split(',').map(|f| f.trim().to_owned()).collect()),
    };
    let wanted = wanted.filter(|w| !w.iter().any(|f| f == "*all" || f == "*navigable"));
    let offset = match api {
        3 => req
            .next_page_token
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        _ => req.start_at.unwrap_or(0),
    };
    let max = req.max_results.unwrap_or(50).clamp(1, 5000);
    let st = sim.lock();
    let now = std::time::Instant::now();
    let mut hits: Vec<_> = st
        .issues
        .iter()
        .filter(|i| i.visible_at <= now && query.matches(i))
        .collect();
    query.sort(&mut hits);
    let total = hits.len();
    let issues = hits
        .iter()
        .skip(offset)
        .take(max)
        .map(|i| super::state::issue_json(&sim.ctx, i, api, wanted.as_deref()))
        .collect();
    Ok(SearchPage {
        issues,
        offset,
        max,
        total,
    })
}

async fn search_v3(req: HttpRequest, body: web::Bytes, sim: Sim) -> HttpResponse {
    let fault = match gate(&sim, &req, Op::Search).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let ok = match run_search(&sim, 3, &body) {
        Ok(page) => {
            let is_last = page.is_last();
            let next = page.offset + page.issues.len();
            let mut out = json!({"issues": page.issues, "isLast": is_last});
            if !is_last {
                out["nextPageToken"] = json!(next.to_string());
            }
            HttpResponse::Ok().json(out)
        }
        Err(resp) => resp,
    };
    finish(&sim, Op::Search, fault, ok)
}

async fn search_v3_removed() -> HttpResponse {
    jira_error(
        410,
        &["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."],
        json!({}),
    )
}

async fn search_v2(req: HttpRequest, body: web::Bytes, sim: Sim) -> HttpResponse {
    let fault = match gate(&sim, &req, Op::Search).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let ok = match run_search(&sim, 2, &body) {
        Ok(page) => HttpResponse::Ok().json(json!({
            "expand": "schema,names",
            "startAt": page.offset,
            "maxResults": page.max,
            "total": page.total,
            "issues": page.issues,
        })),
        Err(resp) => resp,
    };
    finish(&sim, Op::Search, fault, ok)
}

// ---------------------------------------------------------------------------------------------
// Admin

async fn set_faults(body: web::Bytes, sim: Sim) -> HttpResponse {
    match serde_json::from_slice::<SimFaults>(&body) {
        Ok(f) => {
            sim.lock().faults.set(f);
            HttpResponse::NoContent().finish()
        }
        Err(e) => jira_error(400, &[&format!("bad faults: {e}")], json!({})),
    }
}

async fn list_issues(sim: Sim) -> HttpResponse {
    let st = sim.lock();
    let issues: Vec<_> = st.issues.iter().map(|i| i.view()).collect();
    HttpResponse::Ok().json(json!({"issues": issues, "counters": st.counters}))
}

async fn list_deliveries(sim: Sim) -> HttpResponse {
    HttpResponse::Ok().json(&sim.lock().deliveries)
}

async fn reset(sim: Sim) -> HttpResponse {
    sim.lock().reset();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize, Default)]
struct ActBody {
    /// Reassign target (`null` or absent = pick someone, like a person would).
    to: Option<String>,
}

/// `POST /_sim/issues/{key}/{resolve|reassign|reopen}`: act now as the assignee and send the
/// webhook.
async fn act(path: web::Path<(String, String)>, body: web::Bytes, sim: Sim) -> HttpResponse {
    let (key, action) = path.into_inner();
    let to = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<ActBody>(&body) {
            Ok(b) => b.to,
            Err(e) => return jira_error(400, &[&format!("bad body: {e}")], json!({})),
        }
    };
    match super::act(&sim, &key, &action, to) {
        Ok(view) => HttpResponse::Ok().json(view),
        Err(super::ActError::NotFound) => not_found(),
        Err(e) => jira_error(400, &[&e.to_string()], json!({})),
    }
}
