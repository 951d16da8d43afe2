//! Test helpers: a tiny blocking HTTP server that records requests.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Captured> {
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Captured {
        method,
        path,
        headers,
        body,
    })
}

/// Serves connection `n` with `respond(n)` (a raw HTTP response; `None` stops the server) and
/// reports every request on the channel. Returns the base URL.
pub(crate) fn serve(
    mut respond: impl FnMut(usize) -> Option<String> + Send + 'static,
) -> (String, mpsc::Receiver<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for n in 0.. {
            let Some(response) = respond(n) else {
                return;
            };
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if let Some(req) = read_request(&mut reader) {
                let _ = tx.send(req);
            }
            let mut stream = stream;
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.flush();
        }
    });
    (format!("http://{addr}"), rx)
}

/// A raw HTTP/1.1 response that closes the connection.
pub(crate) fn response(status: &str, extra_headers: &[&str], body: &str) -> String {
    let mut r = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for h in extra_headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if !body.is_empty() && !extra_headers.iter().any(|h| h.starts_with("Content-Type")) {
        r.push_str("Content-Type: application/json\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    r
}
