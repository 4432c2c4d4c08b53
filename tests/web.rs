//! Secure endpoints (issue 5): TLS and basic auth from an exporter-toolkit web config.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Db, Exporter, get};

const CATALOGUE: &str = "queries:\n  one:\n    help: One.\n    sql: SELECT 1 AS v\n    metrics: [{name: one_value, type: gauge, value: v}]\n";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[test]
fn basic_auth_refuses_missing_and_wrong_credentials() {
    let db = Db::new("basicauth");
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right-password", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let exporter = Exporter::start(CATALOGUE, &db.url, &["--web.config.file", web.to_str().unwrap()]);
    let url = exporter.url("/metrics");
    assert_eq!(get(&url, &[]).0, 401);
    assert_eq!(get(&url, &[("Authorization", &basic("prometheus", "wrong"))]).0, 401);
    assert_eq!(get(&url, &[("Authorization", &basic("intruder", "right-password"))]).0, 401);
    assert_eq!(get(&exporter.url("/"), &[]).0, 401, "the landing page is protected too");
    let (status, body) = get(&url, &[("Authorization", &basic("prometheus", "right-password"))]);
    assert_eq!(status, 200);
    assert!(body.contains("one_value 1"));
    assert!(!exporter.logs().contains("right-password"));
}

#[test]
fn a_bad_web_config_stops_start_up_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  a: not-a-hash\n").unwrap();
    let catalogue = dir.path().join("q.yaml");
    std::fs::write(&catalogue, CATALOGUE).unwrap();
    let args = ["--config.file", catalogue.to_str().unwrap(), "--web.config.file", web.to_str().unwrap()];
    let (code, out) = support::run_exporter(&args, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("web.yml: basic_auth_users.a: not a bcrypt hash"), "{out}");
    std::fs::write(&web, "tls_server_config:\n  cert_file: a\n  kye_file: b\n").unwrap();
    let (code, out) = support::run_exporter(&args, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("web.yml:3:3: unknown field `kye_file`"), "{out}");
}

#[test]
fn tls_is_served_with_the_configured_certificate() {
    let db = Db::new("webtls");
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = support::test_pki(dir.path(), "DNS:localhost,IP:127.0.0.1");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n").unwrap();
    let exporter = Exporter::start(CATALOGUE, &db.url, &["--web.config.file", web.to_str().unwrap()]);
    assert!(
        exporter.logs().contains("scheme=\"https\"") || exporter.logs().contains("scheme=https"),
        "{}",
        exporter.logs()
    );
    let port = exporter.address.rsplit(':').next().unwrap().to_owned();

    let pem = std::fs::read(&ca).unwrap();
    let root = ureq::tls::Certificate::from_pem(&pem).unwrap();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root]))).build();
    let agent: ureq::Agent =
        ureq::Agent::config_builder().tls_config(tls).timeout_global(Some(Duration::from_secs(20))).build().into();
    let mut resp = agent.get(&format!("https://localhost:{port}/metrics")).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.body_mut().read_to_string().unwrap().contains("one_value 1"));

    // Plain HTTP to the TLS port gets no metrics.
    let plain: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    let r = plain.get(&format!("http://127.0.0.1:{port}/metrics")).call();
    assert!(r.map(|mut r| r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default().is_empty());
}
