//! The one HTTP client of the tests (ureq): every status is a response, every request is bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long [`get`] and [`post`] wait for an answer.
const DEFAULT_BOUND: Duration = Duration::from_secs(60);

/// Outcome of one HTTP request with a client-side bound.
#[derive(Debug)]
pub enum Reply {
    /// Status and body.
    Answer(u16, String),
    /// The client gave up: the server did not answer within the bound.
    Hang,
    /// Connection refused, reset, truncated body, ...
    Broken(String),
}

/// A reusable client (keep-alive connections) whose every request is bounded by its timeout.
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new(timeout: Duration) -> Client {
        Client::configured(ureq::Agent::config_builder().timeout_global(Some(timeout)))
    }

    /// A client that trusts only the CA certificate in `ca_pem` for HTTPS.
    pub fn trusting(ca_pem: &[u8], timeout: Duration) -> Client {
        Client::tls(ca_pem, None, timeout)
    }

    /// A client that trusts only the CA certificate in `ca_pem` and presents the client certificate `cert_pem`
    /// with its key `key_pem`.
    pub fn presenting(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8], timeout: Duration) -> Client {
        let cert = ureq::tls::Certificate::from_pem(cert_pem).unwrap().to_owned();
        let key = ureq::tls::PrivateKey::from_pem(key_pem).unwrap().to_owned();
        Client::tls(ca_pem, Some(ureq::tls::ClientCert::new_with_certs(&[cert], key)), timeout)
    }

    fn tls(ca_pem: &[u8], identity: Option<ureq::tls::ClientCert>, timeout: Duration) -> Client {
        let root = ureq::tls::Certificate::from_pem(ca_pem).unwrap().to_owned();
        let roots = ureq::tls::RootCerts::Specific(Arc::new(vec![root]));
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).client_cert(identity).build();
        Client::configured(ureq::Agent::config_builder().tls_config(tls).timeout_global(Some(timeout)))
    }

    fn configured(builder: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>) -> Client {
        Client { agent: builder.http_status_as_error(false).build().into() }
    }

    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> (Reply, Duration) {
        let start = Instant::now();
        (reply(self.call(url, headers), 64 * 1024 * 1024), start.elapsed())
    }

    /// GET with the response's headers too; `Err` says why there is no answer.
    pub fn fetch(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response, Reply> {
        let result = self.call(url, headers);
        let response_headers = result.as_ref().map(|r| r.headers().clone()).unwrap_or_default();
        match reply(result, 64 * 1024 * 1024) {
            Reply::Answer(status, body) => Ok(Response { status, headers: response_headers, body }),
            other => Err(other),
        }
    }

    fn call(&self, url: &str, headers: &[(&str, &str)]) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.call()
    }

    /// POST with an empty body.
    pub fn post(&self, url: &str) -> (Reply, Duration) {
        self.post_with(url, &[])
    }

    /// POST with an empty body and `headers`.
    pub fn post_with(&self, url: &str, headers: &[(&str, &str)]) -> (Reply, Duration) {
        let start = Instant::now();
        let mut req = self.agent.post(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        // ureq's default body limit for reload answers (10 MiB).
        (reply(req.send_empty(), 10 * 1024 * 1024), start.elapsed())
    }

    /// POST of an `application/x-www-form-urlencoded` form.
    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Reply {
        reply(self.agent.post(url).send_form(form.iter().copied()), 64 * 1024 * 1024)
    }
}

/// A whole answer: status, headers and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Response {
    /// The value of header `name`, if it is there once and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response read to the end (up to `limit` bytes), a hang (client timeout) or a broken connection.
fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, limit: u64) -> Reply {
    match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            match resp.body_mut().with_config().limit(limit).read_to_string() {
                Ok(body) => Reply::Answer(status, body),
                Err(ureq::Error::Timeout(_)) => Reply::Hang,
                Err(e) => Reply::Broken(e.to_string()),
            }
        }
        Err(ureq::Error::Timeout(_)) => Reply::Hang,
        Err(e) => Reply::Broken(e.to_string()),
    }
}

/// GET bounded by `timeout`; panics unless the server answers. Returns status, body and the time taken.
pub fn get_within(url: &str, headers: &[(&str, &str)], timeout: Duration) -> (u16, String, Duration) {
    match Client::new(timeout).get(url, headers) {
        (Reply::Answer(status, body), took) => (status, body, took),
        (other, took) => panic!("GET {url}: no answer after {took:?}: {other:?}"),
    }
}

/// The `Authorization` header value of HTTP basic auth.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// GET with headers, bounded by 60 s, with the response's headers; no answer panics.
pub fn fetch(url: &str, headers: &[(&str, &str)]) -> Response {
    Client::new(DEFAULT_BOUND).fetch(url, headers).unwrap_or_else(|no| panic!("GET {url}: no answer: {no:?}"))
}

/// GET with headers, bounded by 60 s; returns (status, body). No answer panics.
pub fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (status, body, _) = get_within(url, headers, DEFAULT_BOUND);
    (status, body)
}

/// POST with an empty body, bounded by 60 s; returns (status, body). No answer panics.
pub fn post(url: &str) -> (u16, String) {
    match Client::new(DEFAULT_BOUND).post(url) {
        (Reply::Answer(status, body), _) => (status, body),
        (other, took) => panic!("POST {url}: no answer after {took:?}: {other:?}"),
    }
}
