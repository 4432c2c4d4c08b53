use super::*;

fn resolve_url(url: &str) -> Database {
    resolve(&Source { url: Some(url), origin: "test", ..Default::default() }).unwrap()
}

#[test]
fn url_password_is_masked() {
    let db = resolve_url("postgres://alice:s3cret@db.example:6432/ignition?sslmode=disable");
    assert_eq!(db.masked, "postgres://alice:****@db.example:6432/ignition?sslmode=disable");
    assert_eq!(db.config.get_password(), Some(&b"s3cret"[..]));
    assert!(!format!("{db:?}").contains("s3cret"));
}

#[test]
fn key_value_form_is_accepted() {
    let db = resolve_url("host=127.0.0.1 port=5433 user=bob password=pw dbname=x");
    assert_eq!(db.masked, "postgres://bob:****@127.0.0.1:5433/x");
}

#[test]
fn defaults_follow_psql() {
    let env = Env::from_pairs([("USER", "carol")]);
    let db = resolve(&Source { env: &env, ..Default::default() }).unwrap();
    assert_eq!(db.masked, "postgres://carol@%2Fvar%2Frun%2Fpostgresql:5432/postgres");
    assert_eq!(db.config.get_application_name(), Some("runbook-exporter"));
}

#[test]
fn password_file_fills_missing_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file\n").unwrap();
    let with_file = |url| {
        resolve(&Source { url: Some(url), origin: "test", password_file: Some(&file), ..Default::default() }).unwrap()
    };
    assert_eq!(with_file("postgres://u@h/d").config.get_password(), Some(&b"from-file"[..]));
    assert_eq!(with_file("postgres://u:inline@h/d").config.get_password(), Some(&b"inline"[..]));
}

#[test]
fn parse_error_does_not_echo_the_password() {
    let err = resolve(&Source {
        url: Some("postgres://u:hunter22@h:notaport/d"),
        origin: "DATABASE_URL",
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(!err.contains("hunter22"), "{err}");
}

#[test]
fn libpq_tls_keys_are_taken_out_of_both_forms() {
    let (rest, keys) =
        split_ssl("postgres://u@h/d?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.crt").unwrap();
    assert_eq!(rest, "postgres://u@h/d?application_name=x");
    assert_eq!((keys.mode.as_deref(), keys.root_cert.as_deref()), (Some("verify-full"), Some("/etc/ca.crt")));
    let (rest, keys) = split_ssl("host=h sslmode = require sslrootcert='/a b/c\\'d' password='p w'").unwrap();
    assert_eq!(rest, "host='h' password='p w'");
    assert_eq!((keys.mode.as_deref(), keys.root_cert.as_deref()), (Some("require"), Some("/a b/c'd")));
    assert!(split_ssl("host='unterminated").is_err());
    assert_eq!(split_ssl("host=h sslcert=c").unwrap().1.unsupported, vec!["sslcert"]);
}

#[test]
fn a_mistyped_scheme_is_named_and_a_url_like_value_is_fine() {
    let err =
        resolve(&Source { url: Some("postgress://u:pw1234@h/d"), origin: "t", ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("must start with postgres://") && !err.to_string().contains("pw1234"), "{err}");
    let db = resolve_url("host=h user=u application_name='http://x' sslmode=disable");
    assert_eq!(db.config.get_application_name(), Some("http://x"));
}

#[test]
fn tls_settings_are_checked_before_connecting() {
    let err = |url| resolve(&Source { url: Some(url), origin: "test", ..Default::default() }).unwrap_err().to_string();
    assert!(err("postgres://u@h/d?sslmode=verify-full").contains("need sslrootcert"));
    assert!(err("postgres://u@h/d?sslmode=sometimes").contains("unknown sslmode"));
    assert!(err("host=h sslkey=/k").contains("sslkey (client certificates) is not supported"));
    // The path is not repeated: in a mangled connection string it may run into the password.
    let missing = err("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt");
    assert!(missing.contains("sslrootcert (the file named in the connection string)"), "{missing}");
    assert!(!missing.contains("/nonexistent"), "{missing}");
    let db = resolve_url("postgres://u@h/d?sslmode=disable");
    assert!(db.tls.is_none() && db.masked.ends_with("?sslmode=disable"));
    assert!(resolve_url("postgres://u@h/d").tls.is_some(), "libpq's default is prefer");
}

#[test]
fn driver_messages_keep_option_names_only() {
    let input = "postgress://u:Secret-pw1@db/app port=x";
    assert_eq!(scrub("unknown option `postgress://u:Secret-pw1@db/app`", input), "unknown option `<redacted>`");
    assert_eq!(scrub("invalid value for option `port`", input), "invalid value for option `port`");
    assert_eq!(scrub("invalid connection string: Secret-pw1@db/app", input), "invalid connection string: <redacted>");
}

#[test]
fn missing_password_file_is_a_clear_error() {
    let err = resolve(&Source { password_file: Some(Path::new("/nonexistent/pw")), ..Default::default() }).unwrap_err();
    assert!(err.to_string().starts_with("cannot read password file /nonexistent/pw"), "{err}");
}

#[test]
fn libpq_variables_fill_what_the_url_leaves_out() {
    let env = Env::from_pairs([
        ("PGHOST", "db1.example,/run/pg"),
        ("PGPORT", "6432,6433"),
        ("PGDATABASE", "ignition"),
        ("PGUSER", "monitor"),
        ("PGPASSWORD", "from-env"),
        ("PGSSLMODE", "disable"),
        ("PGAPPNAME", "rbx-test"),
        ("PGCONNECT_TIMEOUT", "1"),
        ("USER", "root"),
    ]);
    let db = resolve(&Source { env: &env, ..Default::default() }).unwrap();
    assert_eq!(db.masked, "postgres://monitor:****@db1.example:6432,%2Frun%2Fpg:6433/ignition?sslmode=disable");
    assert_eq!(db.config.get_password(), Some(&b"from-env"[..]));
    assert_eq!(db.config.get_application_name(), Some("rbx-test"));
    assert_eq!(db.config.get_connect_timeout(), Some(&std::time::Duration::from_secs(2)), "libpq's minimum is 2 s");
    assert!(db.tls.is_none());

    // The connection string wins over every variable.
    let url = "postgres://alice:inline@h:5000/app?sslmode=require&application_name=mine&connect_timeout=7";
    let db = resolve(&Source { url: Some(url), origin: "t", env: &env, ..Default::default() }).unwrap();
    assert_eq!(db.masked, "postgres://alice:****@h:5000/app?sslmode=require");
    assert_eq!(db.config.get_password(), Some(&b"inline"[..]));
    assert_eq!(db.config.get_application_name(), Some("mine"));
    assert_eq!(db.config.get_connect_timeout(), Some(&std::time::Duration::from_secs(7)));

    let bad = Env::from_pairs([("PGPORT", "http")]);
    let err = resolve(&Source { env: &bad, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("PGPORT") && err.contains("not a port"), "{err}");
}

#[test]
fn the_password_comes_from_the_flag_then_pgpassword_then_the_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(&passfile, "h:5432:app:u:from-pgpass\nlocalhost:5432:*:u:socket-pw\n").unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let flag_file = dir.path().join("pw");
    std::fs::write(&flag_file, "from-flag\n").unwrap();
    let passfile_env = Env::from_pairs([("PGPASSFILE", passfile.to_str().unwrap())]);
    let both = Env::from_pairs([("PGPASSFILE", passfile.to_str().unwrap()), ("PGPASSWORD", "from-env")]);
    let password = |url: &str, env: &Env, file: Option<&std::path::Path>| {
        let db = resolve(&Source { url: Some(url), origin: "t", password_file: file, env }).unwrap();
        db.config.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
    };
    assert_eq!(password("postgres://u@h/app", &both, Some(&flag_file)).as_deref(), Some("from-flag"));
    assert_eq!(password("postgres://u@h/app", &both, None).as_deref(), Some("from-env"));
    assert_eq!(password("postgres://u@h/app", &passfile_env, None).as_deref(), Some("from-pgpass"));
    assert_eq!(password("host=/tmp user=u dbname=x", &passfile_env, None).as_deref(), Some("socket-pw"));
    assert_eq!(password("postgres://u@other/app", &passfile_env, None), None);
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(password("postgres://u@h/app", &passfile_env, None), None, "a group-readable file is ignored");
}
