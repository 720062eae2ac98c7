//! A tiny HTTP/1.1 server for the client's tests: canned answers per path, a log of what
//! was asked. Bound to 127.0.0.1:0; stopped when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One canned answer.
#[derive(Debug, Clone)]
pub(crate) struct Canned {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn json(value: &serde_json::Value) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap(),
        }
    }

    pub fn bytes(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            content_type: "application/octet-stream",
            body,
        }
    }

    pub fn problem(status: u16, name: &str, detail: &str) -> Self {
        Self {
            status,
            content_type: "application/problem+json",
            body: serde_json::to_vec(&serde_json::json!({
                "type": format!("urn:encore:problem:{name}"),
                "title": name,
                "status": status,
                "detail": detail,
            }))
            .unwrap(),
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Logged {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// The k-th request to a path gets `answers[min(k, len - 1)]`.
    answers: HashMap<String, Vec<Canned>>,
    hits: HashMap<String, usize>,
    log: Vec<Logged>,
}

pub(crate) struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { base, state, task }
    }

    /// Answers for `path`: the k-th request gets `answers[k]`, the last one repeats.
    pub fn route(&self, path: &str, answers: Vec<Canned>) {
        assert!(!answers.is_empty());
        let mut state = self.state.lock().unwrap();
        state.answers.insert(path.to_owned(), answers);
        state.hits.remove(path);
    }

    pub fn hits(&self, path: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.hits.get(path).copied().unwrap_or(0)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let canned = {
        let mut state = state.lock().unwrap();
        state.log.push(Logged {
            method,
            path: path.clone(),
            authorization,
            body,
        });
        let hit = state.hits.entry(path.clone()).or_default();
        let k = *hit;
        *hit += 1;
        match state.answers.get(&path) {
            Some(answers) => answers[k.min(answers.len() - 1)].clone(),
            None => Canned::problem(404, "not-found", "no such route in the test server"),
        }
    };
    Ok(Response::builder()
        .status(canned.status)
        .header("content-type", canned.content_type)
        .body(Full::new(Bytes::from(canned.body)))
        .unwrap())
}
