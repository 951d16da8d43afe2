//! A local server speaking PagerDuty's REST API (v2) for the calls Goliath makes: users and
//! on-calls with classic pagination, incident notes, incident reassignment. It checks the
//! `Token token=` auth and the `From` header on writes, and can answer 429 with
//! `ratelimit-reset` or be down.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

pub const TOKEN: &str = "pd-test-token";
pub const FROM: &str = "goliath@example.com";

#[derive(Default)]
pub struct PdState {
    pub users: Vec<Value>,
    /// policy id -> (user id, escalation level)
    pub oncalls: HashMap<String, Vec<(String, u32)>>,
    pub notes: HashMap<String, Vec<String>>,
    pub assignments: HashMap<String, Vec<String>>,
    /// Statuses to answer next, whatever the call (429 carries `ratelimit-reset: 1`).
    pub faults: VecDeque<u16>,
    /// Every call answered 503 while set.
    pub down: bool,
    /// (method, path) of every call received.
    pub calls: Vec<(String, String)>,
}

pub struct FakePagerDuty {
    pub url: String,
    pub state: Arc<Mutex<PdState>>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Shared = web::Data<Arc<Mutex<PdState>>>;

fn error(status: u16, message: &str, code: u32) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": {"message": message, "code": code}}))
}

/// Auth, faults and the call log; `Some` is the answer to send instead.
fn gate(req: &HttpRequest, st: &Shared, write: bool) -> Option<HttpResponse> {
    let mut s = st.lock().unwrap();
    s.calls
        .push((req.method().to_string(), req.path().to_string()));
    if s.down {
        return Some(error(503, "Service Unavailable", 0));
    }
    if let Some(status) = s.faults.pop_front() {
        return Some(match status {
            429 => HttpResponse::TooManyRequests()
                .insert_header(("ratelimit-limit", "960"))
                .insert_header(("ratelimit-remaining", "0"))
                .insert_header(("ratelimit-reset", "1"))
                .json(json!({"error": {"message": "Rate Limit Exceeded", "code": 2020}})),
            s => error(s, "Injected fault", 0),
        });
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Token token={TOKEN}")) {
        return Some(error(401, "Authentication failed", 2006));
    }
    let accept = req.headers().get("accept").and_then(|v| v.to_str().ok());
    if accept != Some("application/vnd.pagerduty+json;version=2") {
        return Some(error(400, "Invalid Accept header", 2001));
    }
    if write && req.headers().get("from").is_none() {
        return Some(error(
            400,
            "Invalid Input Provided: a From header is required",
            2001,
        ));
    }
    None
}

/// `limit` and `offset` of a list call (PagerDuty's defaults and caps).
fn page(req: &HttpRequest) -> (usize, usize) {
    let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25usize)
        .min(100);
    let offset = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    (limit, offset)
}

fn paged(key: &str, all: Vec<Value>, limit: usize, offset: usize) -> HttpResponse {
    let items: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let more = offset + items.len() < all.len();
    HttpResponse::Ok().json(json!({
        key: items, "limit": limit, "offset": offset, "more": more, "total": null
    }))
}

async fn list_users(req: HttpRequest, st: Shared) -> HttpResponse {
    if let Some(r) = gate(&req, &st, false) {
        return r;
    }
    let (limit, offset) = page(&req);
    let all = st.lock().unwrap().users.clone();
    paged("users", all, limit, offset)
}

async fn oncalls(req: HttpRequest, st: Shared) -> HttpResponse {
    if let Some(r) = gate(&req, &st, false) {
        return r;
    }
    let policies: Vec<String> = req
        .query_string()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "escalation_policy_ids%5B%5D" || *k == "escalation_policy_ids[]")
        .map(|(_, v)| v.to_string())
        .collect();
    if policies.is_empty() {
        return error(400, "Escalation Policy Ids must be an array", 2001);
    }
    let (limit, offset) = page(&req);
    let s = st.lock().unwrap();
    let all: Vec<Value> = policies
        .iter()
        .flat_map(|p| {
            s.oncalls
                .get(p)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |(user, level)| {
                    json!({
                        "user": {"id": user, "type": "user_reference", "summary": user},
                        "schedule": null,
                        "escalation_policy": {"id": p, "type": "escalation_policy_reference"},
                        "escalation_level": level, "start": null, "end": null
                    })
                })
        })
        .collect();
    drop(s);
    paged("oncalls", all, limit, offset)
}

async fn list_notes(req: HttpRequest, path: web::Path<String>, st: Shared) -> HttpResponse {
    if let Some(r) = gate(&req, &st, false) {
        return r;
    }
    let notes = st
        .lock()
        .unwrap()
        .notes
        .get(path.as_str())
        .cloned()
        .unwrap_or_default();
    let notes: Vec<Value> = notes
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"id": format!("PN{i}"), "content": c}))
        .collect();
    HttpResponse::Ok().json(json!({"notes": notes}))
}

async fn add_note(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    st: Shared,
) -> HttpResponse {
    if let Some(r) = gate(&req, &st, true) {
        return r;
    }
    let Some(content) = body["note"]["content"].as_str() else {
        return error(400, "Invalid Input Provided: note.content", 2001);
    };
    st.lock()
        .unwrap()
        .notes
        .entry(path.into_inner())
        .or_default()
        .push(content.to_string());
    HttpResponse::Created().json(json!({"note": {"id": "PNEW", "content": content}}))
}

async fn update_incident(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    st: Shared,
) -> HttpResponse {
    if let Some(r) = gate(&req, &st, true) {
        return r;
    }
    let Some(list) = body["incident"]["assignments"].as_array() else {
        return error(400, "Invalid Input Provided: incident.assignments", 2001);
    };
    let users: Vec<String> = list
        .iter()
        .filter_map(|a| a["assignee"]["id"].as_str().map(String::from))
        .collect();
    let id = path.into_inner();
    st.lock()
        .unwrap()
        .assignments
        .insert(id.clone(), users.clone());
    HttpResponse::Ok().json(json!({"incident": {"id": id, "type": "incident",
        "assignments": users.iter().map(|u| json!({"assignee": {"id": u}})).collect::<Vec<_>>()}}))
}

impl FakePagerDuty {
    pub fn start(state: PdState) -> FakePagerDuty {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(state));
        let shared = web::Data::new(state.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .route("/users", web::get().to(list_users))
                        .route("/oncalls", web::get().to(oncalls))
                        .route("/incidents/{id}/notes", web::get().to(list_notes))
                        .route("/incidents/{id}/notes", web::post().to(add_note))
                        .route("/incidents/{id}", web::put().to(update_incident))
                })
                .workers(1)
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().unwrap();
        FakePagerDuty {
            url,
            state,
            handle,
            thread: Some(thread),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut PdState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

impl Drop for FakePagerDuty {
    fn drop(&mut self) {
        super::stop_server(&self.handle, self.thread.take());
    }
}

/// `n` PagerDuty users `PU0..`, e-mails `user0@example.com`...
pub fn users(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": format!("PU{i}"), "type": "user", "name": format!("User {i}"),
                   "summary": format!("User {i}"), "email": format!("User{i}@Example.com")})
        })
        .collect()
}
