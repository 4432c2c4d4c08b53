//! A test PKI made with openssl: a CA, a server certificate and client certificates signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Makes a CA and a server certificate for `sans` (e.g. `DNS:localhost`) in `dir`; returns (ca.crt, server.crt,
/// server.key). The CA's key stays in `dir` for [`client_cert`].
pub fn test_pki(dir: &Path, sans: &str) -> (PathBuf, PathBuf, PathBuf) {
    let [ca_key, ca] = ["ca.key", "ca.crt"].map(|f| dir.join(f));
    let subject = "/CN=runbook-exporter test CA";
    openssl(
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject, "-keyout"],
        &[&ca_key, Path::new("-out"), &ca],
    );
    let (cert, key) = signed(dir, "server", &format!("subjectAltName={sans}\nextendedKeyUsage=serverAuth"));
    (ca, cert, key)
}

/// A client certificate for `name` signed by the CA [`test_pki`] made in `dir`; returns (NAME.crt, NAME.key).
pub fn client_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    signed(dir, name, "extendedKeyUsage=clientAuth")
}

/// A key and a certificate for `/CN=name` with the extensions `ext`, signed by the CA in `dir`.
fn signed(dir: &Path, name: &str, ext: &str) -> (PathBuf, PathBuf) {
    let [key, csr, cert, extfile] = ["key", "csr", "crt", "ext"].map(|suffix| dir.join(format!("{name}.{suffix}")));
    let (ca, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    std::fs::write(&extfile, format!("{ext}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"))
        .unwrap();
    let subject = format!("/CN={name}");
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout"], &[&key, Path::new("-out"), &csr]);
    openssl(
        &["x509", "-req", "-days", "2", "-CAcreateserial", "-in"],
        &[
            &csr,
            Path::new("-CA"),
            &ca,
            Path::new("-CAkey"),
            &ca_key,
            Path::new("-extfile"),
            &extfile,
            Path::new("-out"),
            &cert,
        ],
    );
    (cert, key)
}

/// Runs openssl with `args` followed by `paths`; panics with its output unless it succeeds.
fn openssl(args: &[&str], paths: &[&Path]) {
    let out =
        Command::new("openssl").args(args).args(paths).output().expect("openssl not found: apt-get install -y openssl");
    assert!(out.status.success(), "openssl {args:?} {paths:?}: {}", String::from_utf8_lossy(&out.stderr));
}
