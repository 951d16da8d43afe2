//! Signed PagerDuty V3 `incident.triggered` deliveries built from the documented example, and
//! a closed-loop load generator: N threads, each with its own keep-alive connection, sending
//! one request at a time for a fixed duration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use super::harness::Percentiles;

/// PagerDuty's documented `incident.triggered` example (same as the test fixture).
pub const TEMPLATE: &str = include_str!("incident_triggered.json");

/// Builds distinct incidents from the template by splicing fields into pre-split text (cheap,
/// so the load generator spends its time waiting on the server, not building bodies).
#[derive(Debug, Clone)]
pub struct IncidentTemplate {
    parts: Vec<String>,
}

const SLOTS: [&str; 7] = [
    "@@EVENT_ID@@",
    "@@INCIDENT_ID@@",
    "\"@@NUMBER@@\"",
    "@@CREATED_AT@@",
    "@@TITLE@@",
    "@@SERVICE@@",
    "@@ASSIGNEE@@",
];

/// One incident to send.
#[derive(Debug, Clone)]
pub struct IncidentSpec<'a> {
    pub event_id: &'a str,
    pub incident_id: &'a str,
    pub number: u64,
    pub created_at: DateTime<Utc>,
    pub title: &'a str,
    /// PagerDuty service name (`data.service.summary`).
    pub service: &'a str,
    /// PagerDuty user id of the person paged.
    pub assignee: &'a str,
}

impl IncidentTemplate {
    pub fn new() -> IncidentTemplate {
        let mut v: serde_json::Value =
            serde_json::from_str(TEMPLATE).expect("the embedded template is JSON");
        let d = &mut v["event"]["data"];
        d["id"] = "@@INCIDENT_ID@@".into();
        d["number"] = "@@NUMBER@@".into();
        d["created_at"] = "@@CREATED_AT@@".into();
        d["title"] = "@@TITLE@@".into();
        d["service"]["summary"] = "@@SERVICE@@".into();
        d["service"]["id"] = "@@SERVICE@@".into();
        // Each service has its own on-call policy and team, as in a real PagerDuty account.
        d["escalation_policy"]["summary"] = "@@SERVICE@@ on-call".into();
        d["teams"][0]["summary"] = "@@SERVICE@@ team".into();
        d["assignees"][0]["id"] = "@@ASSIGNEE@@".into();
        v["event"]["id"] = "@@EVENT_ID@@".into();
        let text = v.to_string();
        // Split on every slot, in order of appearance.
        let mut parts = vec![];
        let mut rest = text.as_str();
        let mut order = vec![];
        loop {
            let next = SLOTS
                .iter()
                .enumerate()
                .filter_map(|(i, s)| rest.find(s).map(|at| (at, i)))
                .min();
            let Some((at, slot)) = next else { break };
            parts.push(rest[..at].to_string());
            order.push(slot);
            rest = &rest[at + SLOTS[slot].len()..];
        }
        parts.push(rest.to_string());
        // Record the slot order in the parts list: parts[2k+1] names the slot as text.
        let mut interleaved = Vec::with_capacity(parts.len() * 2);
        for (i, p) in parts.into_iter().enumerate() {
            interleaved.push(p);
            if let Some(slot) = order.get(i) {
                interleaved.push(slot.to_string());
            }
        }
        IncidentTemplate { parts: interleaved }
    }

    pub fn body(&self, spec: &IncidentSpec<'_>) -> Vec<u8> {
        let created = spec.created_at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let number = spec.number.to_string();
        let mut out = String::with_capacity(2200);
        for (i, p) in self.parts.iter().enumerate() {
            if i % 2 == 0 {
                out.push_str(p);
                continue;
            }
            out.push_str(match p.as_str() {
                "0" => spec.event_id,
                "1" => spec.incident_id,
                "2" => &number,
                "3" => &created,
                "4" => spec.title,
                "5" => spec.service,
                _ => spec.assignee,
            });
        }
        out.into_bytes()
    }
}

impl Default for IncidentTemplate {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends one delivery, signed with `secret` when given; returns the status and the body.
pub fn post_webhook(
    agent: &ureq::Agent,
    url: &str,
    secret: Option<&str>,
    delivery_id: &str,
    body: &[u8],
) -> Result<(u16, String), ureq::Error> {
    let mut req = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Webhook-Id", delivery_id);
    let sig;
    if let Some(secret) = secret {
        sig = format!("v1={}", crate::signature::sign_hex(secret, body));
        req = req.header("X-PagerDuty-Signature", &sig);
    }
    let mut resp = req.send(body)?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((status, text))
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub connections: usize,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latency of successful requests, in milliseconds.
    pub latency_ms: Percentiles,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `connections` closed-loop clients for `duration` against `url` (plain `http://`).
/// Client `c` sends its k-th request with sequence number `c + k * connections` (`seq_base`
/// added), so every request of the run is distinct.
///
/// The clients are tasks on one thread speaking HTTP/1.1 keep-alive over their own socket, as
/// lean as pgbench's client: a thread per connection spent a fifth of this machine's CPU on
/// the client side, which would measure the load generator instead of Goliath.
pub fn run_load(
    url: &str,
    secret: Option<&str>,
    connections: usize,
    duration: Duration,
    seq_base: u64,
    make: Arc<dyn Fn(u64) -> (String, Vec<u8>) + Send + Sync>,
) -> LoadResult {
    let failed = |e: String| LoadResult {
        connections,
        ok: 0,
        errors: 1,
        first_error: Some(e),
        elapsed: Duration::ZERO,
        latency_ms: Percentiles::of(&mut []),
    };
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    runtime.block_on(async move {
        // Every client connects before the clock starts, so the figures measure requests,
        // not 64 simultaneous TCP handshakes.
        let mut sockets = Vec::with_capacity(connections);
        for _ in 0..connections {
            match tokio::net::TcpStream::connect(&target.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    sockets.push(s);
                }
                Err(e) => return failed(format!("connecting to {}: {e}", target.addr)),
            }
        }
        let start = Instant::now();
        let tasks: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(c, socket)| {
                let (stop, make, target) = (stop.clone(), make.clone(), target.clone());
                let secret = secret.map(String::from);
                tokio::spawn(async move {
                    let mut client = Client::new(socket);
                    let mut lat = Vec::with_capacity(4096);
                    let (mut errors, mut first_error) = (0u64, None::<String>);
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let seq = seq_base + c as u64 + k * connections as u64;
                        k += 1;
                        let (delivery, body) = make(seq);
                        let request = target.request(secret.as_deref(), &delivery, &body);
                        let t = Instant::now();
                        match client.exchange(&request).await {
                            Ok((200, _)) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                            Ok((status, text)) => {
                                errors += 1;
                                first_error.get_or_insert_with(|| {
                                    format!(
                                        "{status}: {}",
                                        text.chars().take(200).collect::<String>()
                                    )
                                });
                            }
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert_with(|| e.to_string());
                                break;
                            }
                        }
                    }
                    (lat, errors, first_error)
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = vec![];
        let (mut errors, mut first_error) = (0, None);
        for t in tasks {
            if let Ok((lat, e, fe)) = t.await {
                all.extend(lat);
                errors += e;
                if first_error.is_none() {
                    first_error = fe;
                }
            }
        }
        LoadResult {
            connections,
            ok: all.len() as u64,
            errors,
            first_error,
            elapsed: start.elapsed(),
            latency_ms: Percentiles::of(&mut all),
        }
    })
}

/// Where requests go: `host:port` and the path of an `http://` URL.
#[derive(Debug, Clone)]
struct Target {
    addr: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("the load generator speaks plain http only, not `{url}`"))?;
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = if addr.contains(':') {
            addr.to_string()
        } else {
            format!("{addr}:80")
        };
        Ok(Target {
            addr,
            path: path.to_string(),
        })
    }

    /// The request bytes: a signed PagerDuty delivery.
    fn request(&self, secret: Option<&str>, delivery_id: &str, body: &[u8]) -> Vec<u8> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             X-Webhook-Id: {delivery_id}\r\nContent-Length: {}\r\n",
            self.path,
            self.addr,
            body.len()
        );
        if let Some(secret) = secret {
            head.push_str("X-PagerDuty-Signature: v1=");
            head.push_str(&crate::signature::sign_hex(secret, body));
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// One keep-alive HTTP/1.1 connection: writes a request, reads one response.
struct Client {
    socket: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn new(socket: tokio::net::TcpStream) -> Client {
        Client {
            socket,
            buf: Vec::with_capacity(8192),
        }
    }

    /// Sends `request`; returns the response's status and body.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        self.socket.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head =
                    std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("response head"))?;
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("status line"))?;
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .ok_or_else(|| bad("response without Content-Length"))?;
                let total = end + 4 + length;
                while self.buf.len() < total {
                    let n = self.socket.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(bad("connection closed mid-response"));
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&self.buf[end + 4..total]).into_owned();
                return Ok((status, body));
            }
            let n = self.socket.read(&mut chunk).await?;
            if n == 0 {
                return Err(bad("connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_fills_every_slot_and_stays_json() {
        let t = IncidentTemplate::new();
        let at = DateTime::parse_from_rfc3339("2026-03-14T09:26:52Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = t.body(&IncidentSpec {
            event_id: "EV1",
            incident_id: "INC1",
            number: 42,
            created_at: at,
            title: "disk full",
            service: "api",
            assignee: "PU0001",
        });
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["event"]["id"], "EV1");
        assert_eq!(v["event"]["event_type"], "incident.triggered");
        let d = &v["event"]["data"];
        assert_eq!(d["id"], "INC1");
        assert_eq!(d["number"], 42);
        assert_eq!(d["created_at"], "2026-03-14T09:26:52.000Z");
        assert_eq!(d["title"], "disk full");
        assert_eq!(d["service"]["summary"], "api");
        assert_eq!(d["assignees"][0]["id"], "PU0001");
        assert!(body.len() > 1000, "about the size of a real delivery");
    }
}
