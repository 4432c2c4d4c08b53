//! TLS to PostgreSQL (issue 5): libpq sslmodes against a server with a certificate
//! made in the test (CA-signed, valid for DNS:localhost only).

use std::time::Duration;

use crate::support::cluster::{TlsServer, tls_server};
use crate::support::data::catalogue;
use crate::support::pki::test_pki;
use crate::support::{Exporter, PASSWORD, eventually};

fn url(server: &TlsServer, host: &str, params: &str) -> String {
    format!("postgres://postgres:{PASSWORD}@{host}:{}/{}?{params}", server.db.port(), server.db.name)
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
        let exporter = Exporter::with(&catalogue("ssl")).db(&url).start();
        let m = exporter.metrics();
        match expected {
            Some(ssl) => {
                assert_eq!(m.get("pg_up", &[]), 1.0, "{case}: {}", exporter.logs());
                assert_eq!(m.get("connection_ssl", &[]), ssl, "{case}");
            }
            None => {
                assert_eq!(m.get("pg_up", &[]), 0.0, "{case}: must refuse the certificate");
                let logged = eventually(Duration::from_secs(5), || exporter.logs().contains("database unreachable"));
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
    let (foreign_ca, _, _) = test_pki(other.path(), "DNS:localhost");
    let url = url(&server, "localhost", &format!("sslmode=verify-full&sslrootcert={}", foreign_ca.display()));
    let exporter = Exporter::with(&catalogue("ssl")).db(&url).start();
    assert_eq!(exporter.metrics().get("pg_up", &[]), 0.0);
}
