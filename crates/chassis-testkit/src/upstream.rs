//! [`FakeUpstream`]: a scripted HTTP/1.1 server on loopback.
//!
//! It reads requests itself (with `httparse`) rather than through axum,
//! because it must do what a well-behaved server never does: reset a
//! connection, or stop half-way through a body.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chassis_tasks::CancellationToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most bytes a request head may take.
const MAX_HEAD: usize = 64 * 1024;

/// One scripted answer of a [`FakeUpstream`].
///
/// ```
/// use std::time::Duration;
/// use chassis_testkit::Reply;
///
/// let ok = Reply::json(200, &serde_json::json!({"cents": 120}));
/// let slow = Reply::status(200).body("late").delay(Duration::from_secs(2));
/// let stalled = Reply::status(200).body("0123456789").stall_after(4); // head and 4 bytes, then nothing
/// let reset = Reply::reset();                                        // the connection is reset (RST)
/// # let _ = (ok, slow, stalled, reset);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Answer,
    StallAfter(usize),
    Reset,
}

impl Reply {
    /// An empty answer with `status` (`200`, `503`).
    pub fn status(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Vec::new(), delay: Duration::ZERO, action: Action::Answer }
    }

    /// `status` with `value` as a JSON body (`content-type: application/json`).
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::status(status).header("content-type", "application/json").body(value.to_string())
    }

    /// No answer: the connection is reset (TCP RST) once the request is read.
    pub fn reset() -> Self {
        Self { action: Action::Reset, ..Self::status(0) }
    }

    /// The body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits this long before answering (on tokio's clock: a paused clock
    /// makes it instant).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends the head (with the full `content-length`) and the first `bytes`
    /// of the body, then nothing more, holding the connection open until the
    /// upstream is dropped: a server that hangs mid-body.
    #[must_use]
    pub fn stall_after(mut self, bytes: usize) -> Self {
        self.action = Action::StallAfter(bytes);
        self
    }
}

/// A request a [`FakeUpstream`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// The method (`GET`).
    pub method: String,
    /// The path without the query (`/quote/7`).
    pub path: String,
    /// The query, without `?` (empty when none).
    pub query: String,
    /// The headers, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Scripts = HashMap<(String, String), VecDeque<Reply>>;

#[derive(Debug, Default)]
struct State {
    scripts: Scripts,
    received: Vec<Received>,
}

/// A scripted HTTP/1.1 server on a free loopback port, for the tests of a
/// client, a breaker or discovery: each route answers its script in turn (the
/// last reply repeats), an unscripted route answers 404, and every request is
/// recorded. Keep-alive is supported. Stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use chassis_testkit::{FakeUpstream, Reply};
///
/// let upstream = FakeUpstream::start().await?;
/// upstream.route("GET", "/quote", [Reply::status(503), Reply::status(200).body("120")]);
/// let client = reqwest::Client::new();
/// assert_eq!(client.get(upstream.url("/quote")).send().await?.status(), 503);
/// assert_eq!(client.get(upstream.url("/quote")).send().await?.text().await?, "120");
/// assert_eq!(client.get(upstream.url("/quote?again=1")).send().await?.status(), 200); // the last repeats
/// assert_eq!(upstream.hits("/quote"), 3);
/// assert_eq!(upstream.received()[2].query, "again=1");
///
/// upstream.route("POST", "/fail", [Reply::reset()]);
/// assert!(client.post(upstream.url("/fail")).body("x").send().await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl FakeUpstream {
    /// Starts it on a free loopback port, with no route.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = CancellationToken::new();
        let (shared, stopped) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve(stream, shared.clone(), stopped.clone()));
                    },
                }
            }
        });
        Ok(Self { addr, state, stop })
    }

    /// Scripts `method` (`"GET"`, or `"*"` for any) on `path` (without query):
    /// the replies in turn, the last one repeating. Replaces an earlier script.
    pub fn route(&self, method: &str, path: &str, replies: impl IntoIterator<Item = Reply>) -> &Self {
        let replies: VecDeque<Reply> = replies.into_iter().collect();
        self.lock().scripts.insert((method.to_ascii_uppercase(), path.to_owned()), replies);
        self
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// How many requests reached `path` (any method, any query).
    pub fn hits(&self, path: &str) -> usize {
        self.lock().received.iter().filter(|r| r.path == path).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves one connection until it closes, a reply resets or stalls it, or the upstream stops.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, stop: CancellationToken) {
    let mut buffer = Vec::new();
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => return,
            request = read_request(&mut stream, &mut buffer) => request,
        };
        let Some((received, close)) = request else { return };
        let reply = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            let reply = next_reply(&mut state.scripts, &received.method, &received.path);
            state.received.push(received);
            reply
        };
        if !reply.delay.is_zero() {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(reply.delay) => {}
            }
        }
        let head = head(&reply, close);
        match reply.action {
            Action::Reset => {
                // A zero linger resets at once on close: it never blocks.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
            Action::StallAfter(bytes) => {
                let part = &reply.body[..bytes.min(reply.body.len())];
                if stream.write_all(&head).await.is_ok() && stream.write_all(part).await.is_ok() {
                    let _ = stream.flush().await;
                    stop.cancelled().await;
                }
                return;
            }
            Action::Answer => {
                if stream.write_all(&head).await.is_err() || stream.write_all(&reply.body).await.is_err() || close {
                    return;
                }
            }
        }
    }
}

fn next_reply(scripts: &mut Scripts, method: &str, path: &str) -> Reply {
    let key = (method.to_owned(), path.to_owned());
    let key = if scripts.contains_key(&key) { key } else { ("*".to_owned(), path.to_owned()) };
    let script = scripts.get_mut(&key);
    match script {
        Some(script) if script.len() > 1 => script.pop_front().unwrap_or_else(|| Reply::status(500)),
        Some(script) => script.front().cloned().unwrap_or_else(|| Reply::status(404)),
        None => Reply::status(404).body(format!("no script for {method} {path}")),
    }
}

fn head(reply: &Reply, close: bool) -> Vec<u8> {
    let mut head =
        format!("HTTP/1.1 {} {}\r\ncontent-length: {}\r\n", reply.status, reason(reply.status), reply.body.len());
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Reads one request (head and `content-length` body); `None` at the end of
/// the connection or on a malformed request. The flag: the client asked to close.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(Received, bool)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(buffer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let (method, target) = (request.method?.to_owned(), request.path?.to_owned());
                let headers: Vec<(String, String)> = request
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                let length: usize = find("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                let close = find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                while buffer.len() < head_len + length {
                    read_more(stream, buffer).await?;
                }
                let body = buffer[head_len..head_len + length].to_vec();
                buffer.drain(..head_len + length);
                let (path, query) = match target.split_once('?') {
                    Some((path, query)) => (path.to_owned(), query.to_owned()),
                    None => (target, String::new()),
                };
                return Some((Received { method, path, query, headers, body }, close));
            }
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => read_more(stream, buffer).await?,
            _ => return None,
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
