//! TLS to PostgreSQL (issue 5): libpq sslmodes against a server with a certificate
//! made in the test (CA-signed, valid for DNS:localhost only).

mod support;

use support::{Cluster, Db, Exporter, PASSWORD};

/// Reports whether the exporter's own connection is encrypted.
const SSL_CATALOGUE: &str = r#"
queries:
  ssl:
    help: Whether this connection uses TLS.
    sql: SELECT ssl AS on FROM pg_stat_ssl WHERE pid = pg_backend_pid()
    metrics: [{name: connection_ssl, type: gauge, value: on}]
"#;

struct TlsServer {
    db: Db,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn tls_server(test: &str) -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::test_pki(dir.path(), "DNS:localhost");
    // The server must own its key with 0600.
    for f in [&cert, &key] {
        std::process::Command::new("chown").arg("postgres:postgres").arg(f).status().unwrap();
    }
    std::process::Command::new("chmod").arg("600").arg(&key).status().unwrap();
    std::process::Command::new("chmod").arg("755").arg(dir.path()).status().unwrap();
    let cluster = Cluster::start_with(&[
        "ssl=on",
        &format!("ssl_cert_file={}", cert.display()),
        &format!("ssl_key_file={}", key.display()),
    ]);
    TlsServer { db: Db::on(cluster, test), ca, _dir: dir }
}

fn url(server: &TlsServer, host: &str, params: &str) -> String {
    let port = server.db.cluster.as_ref().unwrap().port;
    format!("postgres://postgres:{PASSWORD}@{host}:{port}/{}?{params}", server.db.name)
}

#[test]
fn require_encrypts_and_verify_full_checks_the_host_name() {
    let server = tls_server("pgtls");
    let ca = server.ca.display().to_string();
    let cases = [
        ("require, no root cert", url(&server, "127.0.0.1", "sslmode=require"), Some(1.0)),
        ("prefer", url(&server, "127.0.0.1", "sslmode=prefer"), Some(1.0)),
        ("disable", url(&server, "127.0.0.1", "sslmode=disable"), Some(0.0)),
        (
            "verify-full, right name",
            url(&server, "localhost", &format!("sslmode=verify-full&sslrootcert={ca}")),
            Some(1.0),
        ),
        (
            "verify-ca, name not checked",
            url(&server, "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
            Some(1.0),
        ),
        ("verify-full, wrong name", url(&server, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")), None),
    ];
    for (case, url, expected) in cases {
        let exporter = Exporter::start(SSL_CATALOGUE, &url, &[]);
        let m = exporter.metrics();
        match expected {
            Some(ssl) => {
                assert_eq!(m.get("pg_up", &[]), 1.0, "{case}: {}", exporter.logs());
                assert_eq!(m.get("connection_ssl", &[]), ssl, "{case}");
            }
            None => {
                assert_eq!(m.get("pg_up", &[]), 0.0, "{case}: must refuse the certificate");
                let logged = support::eventually(std::time::Duration::from_secs(5), || {
                    exporter.logs().contains("database unreachable")
                });
                assert!(logged, "{case}: {}", exporter.logs());
            }
        }
        assert!(!exporter.logs().contains(PASSWORD));
    }
}

#[test]
fn verify_full_with_a_foreign_ca_is_refused() {
    let server = tls_server("pgtlsca");
    let other = tempfile::tempdir().unwrap();
    let (foreign_ca, _, _) = support::test_pki(other.path(), "DNS:localhost");
    let url = url(&server, "localhost", &format!("sslmode=verify-full&sslrootcert={}", foreign_ca.display()));
    let exporter = Exporter::start(SSL_CATALOGUE, &url, &[]);
    assert_eq!(exporter.metrics().get("pg_up", &[]), 0.0);
}
