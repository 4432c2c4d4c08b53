//! Secure endpoints (issues 5 and 17): `--web.config.file` in exporter-toolkit's format: TLS with client
//! certificates, protocol versions, cipher suites and curves, response headers, basic auth; what rustls cannot
//! do refused with a reason; the file re-read on reload and validated by `check`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::data::template;
use crate::support::exporter::run;
use crate::support::http::{Client, Reply, basic_auth, fetch, get};
use crate::support::pki::{client_cert, test_pki};
use crate::support::process::signal;
use crate::support::{Db, Exporter, Metrics, eventually};

/// One query, one value: `one_value 1`.
fn catalogue() -> String {
    template("catalogues/one.yaml", &[("METRIC", "one_value")])
}

#[test]
fn basic_auth_refuses_missing_and_wrong_credentials() {
    let db = Db::new("basicauth");
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right-password", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let exporter = Exporter::with(&catalogue()).db(&db.url).args(&["--web.config.file", web.to_str().unwrap()]).start();
    let url = exporter.url("/metrics");
    assert_eq!(get(&url, &[]).0, 401);
    assert_eq!(get(&url, &[("Authorization", &basic_auth("prometheus", "wrong"))]).0, 401);
    assert_eq!(get(&url, &[("Authorization", &basic_auth("intruder", "right-password"))]).0, 401);
    assert_eq!(get(&exporter.url("/"), &[]).0, 401, "the landing page is protected too");
    let (status, body) = get(&url, &[("Authorization", &basic_auth("prometheus", "right-password"))]);
    assert_eq!(status, 200);
    assert!(body.contains("one_value 1"));
    assert!(!exporter.logs().contains("right-password"));
}

#[test]
fn a_bad_web_config_stops_start_up_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  a: not-a-hash\n").unwrap();
    let catalogue_file = dir.path().join("q.yaml");
    std::fs::write(&catalogue_file, catalogue()).unwrap();
    let args = ["--config.file", catalogue_file.to_str().unwrap(), "--web.config.file", web.to_str().unwrap()];
    let refused = run(&args, &[]);
    assert_ne!(refused.code, 0);
    assert!(refused.output().contains("web.yml: basic_auth_users.a: not a bcrypt hash"), "{}", refused.output());
    std::fs::write(&web, "tls_server_config:\n  cert_file: a\n  kye_file: b\n").unwrap();
    let refused = run(&args, &[]);
    assert_ne!(refused.code, 0);
    assert!(refused.output().contains("web.yml:3:3: unknown field `kye_file`"), "{}", refused.output());
}

#[test]
fn tls_is_served_with_the_configured_certificate() {
    let db = Db::new("webtls");
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = test_pki(dir.path(), "DNS:localhost,IP:127.0.0.1");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n").unwrap();
    let exporter = Exporter::with(&catalogue()).db(&db.url).args(&["--web.config.file", web.to_str().unwrap()]).start();
    assert!(
        exporter.logs().contains("scheme=\"https\"") || exporter.logs().contains("scheme=https"),
        "{}",
        exporter.logs()
    );
    let port = exporter.address.rsplit(':').next().unwrap().to_owned();

    let client = Client::trusting(&std::fs::read(&ca).unwrap(), Duration::from_secs(20));
    let (reply, _) = client.get(&format!("https://localhost:{port}/metrics"), &[]);
    let Reply::Answer(status, body) = reply else { panic!("HTTPS scrape: {reply:?}") };
    assert_eq!(status, 200);
    assert!(body.contains("one_value 1"));

    // Plain HTTP to the TLS port gets no metrics (an error status counts as none).
    let (reply, _) = Client::new(Duration::from_secs(5)).get(&format!("http://127.0.0.1:{port}/metrics"), &[]);
    let body = match reply {
        Reply::Answer(status, body) if status < 400 => body,
        _ => String::new(),
    };
    assert!(body.is_empty());
}

/// The port the exporter listens on.
fn port(exporter: &Exporter) -> String {
    exporter.address.rsplit(':').next().unwrap().to_owned()
}

/// Writes `text` as `web.yml` in `dir` and returns its path as a flag value.
fn write_web(dir: &Path, text: &str) -> String {
    let web = dir.join("web.yml");
    std::fs::write(&web, text).unwrap();
    web.to_str().unwrap().to_owned()
}

/// The reply to an HTTPS GET of `/metrics` with `client`.
fn https_scrape(client: &Client, exporter: &Exporter) -> Reply {
    client.get(&format!("https://localhost:{}/metrics", port(exporter)), &[]).0
}

fn is_scrape(reply: &Reply) -> bool {
    matches!(reply, Reply::Answer(200, body) if body.contains("one_value 1"))
}

#[test]
fn client_certificates_are_required_verified_and_reloaded() {
    let db = Db::new("mtls");
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = test_pki(dir.path(), "DNS:localhost,IP:127.0.0.1");
    let (cert, key) = client_cert(dir.path(), "prometheus");
    let foreign = tempfile::tempdir().unwrap();
    test_pki(foreign.path(), "DNS:localhost,IP:127.0.0.1");
    let (foreign_cert, foreign_key) = client_cert(foreign.path(), "intruder");
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n";
    let web = write_web(dir.path(), &format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"));
    let exporter = Exporter::with(&catalogue()).db(&db.url).args(&["--web.config.file", &web]).start();

    let [ca, cert, key, foreign_cert, foreign_key] =
        [&ca, &cert, &key, &foreign_cert, &foreign_key].map(|f| std::fs::read(f).unwrap());
    let bound = Duration::from_secs(20);
    let (anonymous, good, intruder) = (
        Client::trusting(&ca, bound),
        Client::presenting(&ca, &cert, &key, bound),
        Client::presenting(&ca, &foreign_cert, &foreign_key, bound),
    );
    let reply = https_scrape(&anonymous, &exporter);
    assert!(matches!(reply, Reply::Broken(_)), "no client certificate: {reply:?}");
    let reply = https_scrape(&good, &exporter);
    assert!(is_scrape(&reply), "a certificate of the configured CA: {reply:?}");
    let reply = https_scrape(&intruder, &exporter);
    assert!(matches!(reply, Reply::Broken(_)), "a certificate of another CA: {reply:?}");

    // On reload the optional mode takes effect: no certificate is fine, a foreign one still is not.
    std::fs::write(&web, format!("{tls}  client_auth_type: VerifyClientCertIfGiven\n")).unwrap();
    let (reply, _) = good.post(&format!("https://localhost:{}/-/reload", port(&exporter)));
    assert!(matches!(reply, Reply::Answer(200, _)), "{reply:?}");
    let reply = https_scrape(&anonymous, &exporter);
    assert!(is_scrape(&reply), "no client certificate after the reload: {reply:?}");
    let reply = https_scrape(&intruder, &exporter);
    assert!(matches!(reply, Reply::Broken(_)), "a certificate of another CA after the reload: {reply:?}");
}

#[test]
fn a_new_server_certificate_is_served_after_sighup() {
    let db = Db::new("certreload");
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca1, _, _) = test_pki(first.path(), "DNS:localhost,IP:127.0.0.1");
    let (ca2, cert2, key2) = test_pki(second.path(), "DNS:localhost,IP:127.0.0.1");
    let web = write_web(first.path(), "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let exporter = Exporter::with(&catalogue()).db(&db.url).args(&["--web.config.file", &web]).start();
    let bound = Duration::from_secs(20);
    let (trusts_first, trusts_second) = (
        Client::trusting(&std::fs::read(&ca1).unwrap(), bound),
        Client::trusting(&std::fs::read(&ca2).unwrap(), bound),
    );
    assert!(is_scrape(&https_scrape(&trusts_first, &exporter)));
    std::fs::write(
        &web,
        format!("tls_server_config:\n  cert_file: {}\n  key_file: {}\n", cert2.display(), key2.display()),
    )
    .unwrap();
    signal(exporter.pid(), "HUP");
    assert!(
        eventually(Duration::from_secs(10), || is_scrape(&https_scrape(&trusts_second, &exporter))),
        "the new certificate was not served: {}",
        exporter.logs()
    );
    // A new connection: the client's kept-alive one still has the old session, as it should.
    let trusts_first = Client::trusting(&std::fs::read(&ca1).unwrap(), bound);
    assert!(matches!(https_scrape(&trusts_first, &exporter), Reply::Broken(_)), "the old certificate is still served");
}

/// The protocol `openssl s_client` negotiates with the exporter with `flags` (e.g. `-tls1_2`), or `None` when
/// the handshake fails.
fn handshake(exporter: &Exporter, ca: &Path, flags: &[&str]) -> Option<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-brief", "-connect", &format!("127.0.0.1:{}", port(exporter)), "-CAfile"])
        .arg(ca)
        .args(flags)
        .stdin(Stdio::null())
        .output()
        .expect("openssl not found: apt-get install -y openssl");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let protocol = text.lines().find_map(|l| l.strip_prefix("Protocol version: ")).map(str::to_owned);
    if out.status.success() { protocol } else { None }
}

#[test]
fn tls_versions_cipher_suites_and_curves_are_enforced() {
    let db = Db::new("tlsversions");
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = test_pki(dir.path(), "DNS:localhost,IP:127.0.0.1");
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let start = |extra: &str| {
        let web = write_web(dir.path(), &format!("{tls}{extra}"));
        Exporter::with(&catalogue()).db(&db.url).args(&["--web.config.file", &web]).start()
    };

    let tls13_only = start("  min_version: TLS13\n");
    assert_eq!(handshake(&tls13_only, &ca, &["-tls1_2"]), None, "min_version TLS13 let TLS 1.2 in");
    assert_eq!(handshake(&tls13_only, &ca, &["-tls1_3"]).as_deref(), Some("TLSv1.3"));

    let tls12_only = start("  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n");
    assert_eq!(handshake(&tls12_only, &ca, &["-tls1_3"]), None, "max_version TLS12 let TLS 1.3 in");
    assert_eq!(handshake(&tls12_only, &ca, &["-tls1_2"]).as_deref(), Some("TLSv1.2"));
    let suite = |name: &str| handshake(&tls12_only, &ca, &["-tls1_2", "-cipher", name]);
    assert_eq!(suite("ECDHE-RSA-AES256-GCM-SHA384").as_deref(), Some("TLSv1.2"));
    assert_eq!(suite("ECDHE-RSA-AES128-GCM-SHA256"), None, "a cipher suite that is not configured was used");

    let p384 = start("  curve_preferences: [CurveP384]\n");
    assert_eq!(handshake(&p384, &ca, &["-groups", "P-384"]).as_deref(), Some("TLSv1.3"));
    assert_eq!(handshake(&p384, &ca, &["-groups", "X25519"]), None, "a curve that is not configured was used");
}

#[test]
fn response_headers_from_the_web_config_are_on_every_response() {
    let db = Db::new("headers");
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let headers = [
        ("Strict-Transport-Security", "max-age=31536000"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "deny"),
        ("X-XSS-Protection", "1; mode=block"),
        ("Content-Security-Policy", "default-src 'self'"),
    ];
    let mut text = format!("basic_auth_users:\n  prom: '{hash}'\nhttp_server_config:\n  headers:\n");
    for (name, value) in headers {
        text.push_str(&format!("    {name}: \"{value}\"\n"));
    }
    let web = write_web(dir.path(), &text);
    let exporter = Exporter::with(&catalogue()).db(&db.url).args(&["--web.config.file", &web]).start();
    let auth = basic_auth("prom", "pw");
    for (path, credentials, status) in [
        ("/metrics", Some(&auth), 200),
        ("/", Some(&auth), 200),
        ("/nowhere", Some(&auth), 404),
        ("/metrics", None, 401),
    ] {
        let sent: Vec<(&str, &str)> = credentials.iter().map(|c| ("Authorization", c.as_str())).collect();
        let answer = fetch(&exporter.url(path), &sent);
        assert_eq!(answer.status, status, "{path}");
        for (name, value) in headers {
            assert_eq!(answer.header(name), Some(value), "{path} ({status}) lacks {name}");
        }
    }
}

#[test]
fn options_rustls_cannot_honour_are_refused_with_a_reason_at_start_and_by_check() {
    let dir = tempfile::tempdir().unwrap();
    test_pki(dir.path(), "DNS:localhost");
    let catalogue_file = dir.path().join("q.yaml");
    std::fs::write(&catalogue_file, catalogue()).unwrap();
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let unverified = "tls_server_config.client_auth_type: not supported: it accepts client certificates without \
                      verifying them; use VerifyClientCertIfGiven or RequireAndVerifyClientCert";
    let cases = [
        (format!("{tls}  client_auth_type: RequestClientCert\n"), unverified.to_owned()),
        (format!("{tls}  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n"), unverified.to_owned()),
        (
            format!("{tls}  min_version: TLS10\n"),
            "tls_server_config.min_version: not supported: rustls speaks TLS 1.2 and 1.3 only".to_owned(),
        ),
        (
            format!("{tls}  max_version: TLS11\n"),
            "tls_server_config.max_version: not supported: rustls speaks TLS 1.2 and 1.3 only".to_owned(),
        ),
        (
            format!("{tls}  curve_preferences: [X25519, CurveP521]\n"),
            "tls_server_config.curve_preferences: CurveP521: not supported (X25519, CurveP256, CurveP384)".to_owned(),
        ),
        (
            format!("{tls}  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n"),
            "tls_server_config.cipher_suites: TLS_RSA_WITH_AES_128_CBC_SHA: not supported".to_owned(),
        ),
        (
            format!(
                "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [prometheus]\n"
            ),
            "tls_server_config.client_allowed_sans: not supported".to_owned(),
        ),
        (
            "http_server_config:\n  http2: true\n".to_owned(),
            "http_server_config.http2: not supported: the exporter serves HTTP/1.1 only".to_owned(),
        ),
        (
            "http_server_config:\n  headers:\n    X-Powered-By: runbook\n".to_owned(),
            "http_server_config.headers: X-Powered-By: not an allowed header".to_owned(),
        ),
    ];
    let config = catalogue_file.to_str().unwrap();
    for (text, reason) in cases {
        let web = write_web(dir.path(), &text);
        let expected = format!("{web}: {reason}");
        let started =
            run(&["--config.file", config, "--web.config.file", &web, "--web.listen-address", "127.0.0.1:0"], &[]);
        assert_eq!(started.code, 1, "{text}: {}", started.output());
        assert!(started.output().contains(&expected), "{text}: expected {expected:?} in {}", started.output());
        assert!(!started.output().contains("listening"), "{}", started.output());
        let checked = run(&["check", "--offline", "--config.file", config, "--web.config.file", &web], &[]);
        assert_eq!(checked.code, 1, "check accepted {text}: {}", checked.output());
        assert!(checked.output().contains(&expected), "check: expected {expected:?} in {}", checked.output());
    }
}

#[test]
fn a_reload_rereads_the_web_config_and_keeps_it_when_the_new_one_is_bad() {
    let db = Db::new("webreload");
    let dir = tempfile::tempdir().unwrap();
    test_pki(dir.path(), "DNS:localhost");
    let users = |pairs: &[(&str, &str)]| {
        let mut text = String::from("basic_auth_users:\n");
        for (user, password) in pairs {
            text.push_str(&format!("  {user}: '{}'\n", bcrypt::hash(password, 4).unwrap()));
        }
        text
    };
    let web = write_web(dir.path(), &users(&[("alice", "old")]));
    let exporter = Exporter::with(&catalogue()).db(&db.url).args(&["--web.config.file", &web]).start();
    let status = |user: &str, password: &str| {
        get(&exporter.url("/metrics"), &[("Authorization", &basic_auth(user, password))]).0
    };
    assert_eq!(status("alice", "old"), 200);

    // A new hash, a new user and a response header, picked up on SIGHUP.
    let new = format!(
        "{}  bob: '{}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        users(&[("alice", "new")]),
        bcrypt::hash("bobs", 4).unwrap()
    );
    std::fs::write(&web, &new).unwrap();
    signal(exporter.pid(), "HUP");
    assert!(eventually(Duration::from_secs(10), || status("alice", "new") == 200), "{}", exporter.logs());
    assert_eq!(status("alice", "old"), 401, "the old password still works after the reload");
    assert_eq!(status("bob", "bobs"), 200);
    let answer = fetch(&exporter.url("/healthz"), &[("Authorization", &basic_auth("bob", "bobs"))]);
    assert_eq!(answer.header("x-frame-options"), Some("deny"));

    let reload = || {
        let (reply, _) = Client::new(Duration::from_secs(30))
            .post_with(&exporter.url("/-/reload"), &[("Authorization", &basic_auth("bob", "bobs"))]);
        match reply {
            Reply::Answer(status, body) => (status, body),
            other => panic!("POST /-/reload: {other:?}"),
        }
    };
    let last_reload_ok = || {
        let (code, body) = get(&exporter.url("/metrics"), &[("Authorization", &basic_auth("alice", "new"))]);
        assert_eq!(code, 200, "{body}");
        Metrics::parse(&body).get("runbook_exporter_config_last_reload_successful", &[])
    };

    std::fs::write(&web, "basic_auth_users:\n  alice: not-a-hash\n").unwrap();
    let (code, body) = reload();
    assert_eq!(code, 500, "{body}");
    assert!(body.contains(&format!("{web}: basic_auth_users.alice: not a bcrypt hash")), "{body}");
    assert_eq!(last_reload_ok(), 0.0);
    assert_eq!(status("bob", "bobs"), 200, "a bad file must change nothing");

    std::fs::write(&web, format!("{new}tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"))
        .unwrap();
    let (code, body) = reload();
    assert_eq!(code, 500, "{body}");
    assert!(
        body.contains("tls_server_config was added or removed; switching between HTTP and HTTPS needs a restart"),
        "{body}"
    );
    assert_eq!(last_reload_ok(), 0.0);
    assert_eq!(status("bob", "bobs"), 200, "still served over plain HTTP");

    std::fs::write(&web, &new).unwrap();
    assert_eq!(reload().0, 200);
    assert_eq!(last_reload_ok(), 1.0);
}
