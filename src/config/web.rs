//! `--web.config.file`, in Prometheus exporter-toolkit's format.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type`
//! `NoClientCert`/`VerifyClientCertIfGiven`/`RequireAndVerifyClientCert` with
//! `client_ca_file`, `min_version`/`max_version` `TLS12`/`TLS13`,
//! `cipher_suites` (TLS 1.2; TLS 1.3's are always on, as in Go),
//! `curve_preferences` `X25519`/`CurveP256`/`CurveP384`,
//! `prefer_server_cipher_suites`), `http_server_config.headers` (the five
//! security headers exporter-toolkit allows) and `basic_auth_users`.
//! Refused with a reason, because rustls does not offer them or the exporter
//! does not serve them: `client_auth_type` `RequestClientCert` and
//! `RequireAnyClientCert` (unverified client certificates), TLS 1.0/1.1,
//! CBC and RSA-key-exchange cipher suites, `CurveP521`,
//! `client_allowed_sans`, and `http2: true` (HTTP/1.1 only).
//!
//! Everything is checked when the file is read (certificates and keys load,
//! every hash is a bcrypt hash), so a bad file stops start-up, fails `check`
//! and is refused by a reload, with its path, line and field.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use serde::Deserialize;

/// The web config as the exporter uses it.
#[derive(Default)]
pub struct Web {
    /// The TLS acceptor for `tls_server_config`, if any.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// User name → bcrypt hash; when not empty, every request needs one of them.
    pub basic_auth_users: HashMap<String, String>,
    /// Response headers from `http_server_config.headers`, sent with every response.
    pub headers: Vec<(String, String)>,
}

/// Why a web config file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read web config: {cause}")]
    Io {
        /// The path as given.
        file: String,
        /// The underlying error, said once.
        cause: std::io::Error,
    },
    /// The file is not valid YAML or has an unknown field.
    #[error("{file}{at}: {message}")]
    Syntax {
        /// The path as given.
        file: String,
        /// `:line:column`, when known.
        at: String,
        /// The parser's message.
        message: String,
    },
    /// A field's value is unusable.
    #[error("{file}: {field}: {message}")]
    Field {
        /// The path as given.
        file: String,
        /// The field, e.g. `tls_server_config.cert_file`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsServerConfig>,
    http_server_config: Option<HttpServerConfig>,
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A field and what is wrong with it.
type Problem = (&'static str, String);

/// Reads and checks a web config file; relative paths are resolved against its directory.
pub fn load(path: &Path) -> Result<Web, Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|cause| Error::Io { file: file.clone(), cause })?;
    let parsed: File = serde_saphyr::from_str(&text).map_err(|e| Error::Syntax {
        file: file.clone(),
        at: e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default(),
        message: crate::catalogue::syntax_message(&e),
    })?;
    let field = |(field, message): Problem| Error::Field { file: file.clone(), field: field.to_owned(), message };
    for (user, hash) in &parsed.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(Error::Field {
                file: file.clone(),
                field: format!("basic_auth_users.{user}"),
                message: "not a bcrypt hash".to_owned(),
            });
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let tls = match &parsed.tls_server_config {
        Some(t) => Some(acceptor(t, base).map_err(field)?),
        None => None,
    };
    let http = parsed.http_server_config.unwrap_or_default();
    if http.http2 == Some(true) {
        return Err(field(("http_server_config.http2", "not supported: the exporter serves HTTP/1.1 only".to_owned())));
    }
    let headers = headers(http.headers).map_err(field)?;
    Ok(Web { tls, basic_auth_users: parsed.basic_auth_users, headers })
}

/// The security headers exporter-toolkit allows, each checked as it checks them.
fn headers(wanted: BTreeMap<String, String>) -> Result<Vec<(String, String)>, Problem> {
    const FIELD: &str = "http_server_config.headers";
    let mut out = Vec::new();
    for (name, value) in wanted {
        let ok = match name.to_ascii_lowercase().as_str() {
            "x-content-type-options" => value.eq_ignore_ascii_case("nosniff"),
            "x-frame-options" => ["deny", "sameorigin"].iter().any(|v| value.eq_ignore_ascii_case(v)),
            "strict-transport-security" | "x-xss-protection" | "content-security-policy" => true,
            _ => {
                return Err((
                    FIELD,
                    format!(
                        "{name}: not an allowed header (Strict-Transport-Security, X-Content-Type-Options, \
                         X-Frame-Options, X-XSS-Protection, Content-Security-Policy)"
                    ),
                ));
            }
        };
        if !ok || value.chars().any(|c| c.is_control()) {
            return Err((FIELD, format!("{name}: value {value:?} is not allowed")));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The TLS acceptor for `tls_server_config`; paths are relative to `base`.
fn acceptor(t: &TlsServerConfig, base: &Path) -> Result<tokio_rustls::TlsAcceptor, Problem> {
    let (cert_file, key_file) = (base.join(&t.cert_file), base.join(&t.key_file));
    let certs = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ("tls_server_config.cert_file", format!("{}: {e}", cert_file.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| ("tls_server_config.key_file", format!("{}: {e}", key_file.display())))?;
    if t.client_allowed_sans.is_some() {
        return Err(("tls_server_config.client_allowed_sans", "not supported".to_owned()));
    }
    let provider = Arc::new(provider(t)?);
    let versions = versions(t.min_version.as_deref(), t.max_version.as_deref())?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| ("tls_server_config", e.to_string()))?;
    let client_ca = t.client_ca_file.as_ref().map(|f| base.join(f));
    let verifier = match (t.client_auth_type.as_deref().unwrap_or("NoClientCert"), client_ca) {
        ("NoClientCert", None) => None,
        ("NoClientCert", Some(_)) => {
            return Err((
                "tls_server_config.client_ca_file",
                "needs client_auth_type VerifyClientCertIfGiven or RequireAndVerifyClientCert".to_owned(),
            ));
        }
        (kind @ ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert"), Some(ca)) => {
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(&ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ("tls_server_config.client_ca_file", format!("{}: {e}", ca.display())))?;
            for c in cas {
                roots.add(c).map_err(|e| ("tls_server_config.client_ca_file", format!("{}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if kind == "VerifyClientCertIfGiven" { verifier.allow_unauthenticated() } else { verifier };
            Some(verifier.build().map_err(|e| ("tls_server_config.client_ca_file", e.to_string()))?)
        }
        ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert", None) => {
            return Err(("tls_server_config.client_ca_file", "needed to verify client certificates".to_owned()));
        }
        ("RequestClientCert" | "RequireAnyClientCert", _) => {
            return Err((
                "tls_server_config.client_auth_type",
                "not supported: it accepts client certificates without verifying them; use VerifyClientCertIfGiven \
                 or RequireAndVerifyClientCert"
                    .to_owned(),
            ));
        }
        (other, _) => {
            return Err((
                "tls_server_config.client_auth_type",
                format!("unknown {other:?}: use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            ));
        }
    };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| ("tls_server_config", e.to_string()))?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    // HTTP/1.1 only, as the accept loop serves it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// ring's provider, narrowed to the configured TLS 1.2 cipher suites and curves.
fn provider(t: &TlsServerConfig) -> Result<CryptoProvider, Problem> {
    use ring::cipher_suite as cs;
    let mut provider = ring::default_provider();
    if let Some(names) = &t.cipher_suites {
        let mut tls12 = Vec::new();
        for name in names {
            let suite: SupportedCipherSuite = match name.trim_end_matches("_SHA256") {
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                "TLS_ECDHE_RSA_WITH_AES_128_GCM" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                _ => {
                    return Err((
                        "tls_server_config.cipher_suites",
                        format!("{name}: not supported (rustls offers the ECDHE AES-GCM and ChaCha20-Poly1305 suites)"),
                    ));
                }
            };
            tls12.push(suite);
        }
        let tls13 = provider.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS13).copied();
        provider.cipher_suites = tls12.into_iter().chain(tls13).collect();
    }
    if let Some(names) = &t.curve_preferences {
        let mut groups = Vec::new();
        for name in names {
            groups.push(match name.as_str() {
                "X25519" => ring::kx_group::X25519,
                "CurveP256" => ring::kx_group::SECP256R1,
                "CurveP384" => ring::kx_group::SECP384R1,
                _ => {
                    return Err((
                        "tls_server_config.curve_preferences",
                        format!("{name}: not supported (X25519, CurveP256, CurveP384)"),
                    ));
                }
            });
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// The protocol versions between `min` and `max` (`TLS12`, `TLS13`).
fn versions(min: Option<&str>, max: Option<&str>) -> Result<Vec<&'static SupportedProtocolVersion>, Problem> {
    let rank = |v: Option<&str>, field: &'static str, default: u8| match v {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some("TLS10" | "TLS11") => Err((field, "not supported: rustls speaks TLS 1.2 and 1.3 only".to_owned())),
        Some(other) => Err((field, format!("unknown version {other:?}: use TLS12 or TLS13"))),
    };
    let (min, max) = (rank(min, "tls_server_config.min_version", 12)?, rank(max, "tls_server_config.max_version", 13)?);
    if min > max {
        return Err(("tls_server_config.max_version", "is below min_version".to_owned()));
    }
    Ok([(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, s)| s)
        .collect())
}
