//! Whether a query runs on a server: `requires:` and `role:` against the probe's facts.

use crate::catalogue::{Query, Requires, Role};
use crate::db::ServerFacts;

/// Why `query` does not run on a server with `facts`, or `None` when it does.
pub fn skip_reason(query: &Query, facts: &ServerFacts) -> Option<String> {
    unmet(&query.requires, facts).or_else(|| wrong_role(query.role, facts))
}

/// Why `requires` is not met by `facts`, or `None` when the query may run.
pub fn unmet(requires: &Requires, facts: &ServerFacts) -> Option<String> {
    if let Some(min) = requires.min_version
        && facts.major_version < min
    {
        return Some(format!("server version {} < {min}", facts.major_version));
    }
    if let Some(max) = requires.max_version
        && facts.major_version > max
    {
        return Some(format!("server version {} > {max}", facts.major_version));
    }
    for e in &requires.extensions {
        match facts.extensions.get(&e.name) {
            None => return Some(format!("extension {} not installed", e.name)),
            Some(v) if !e.accepts(v) => return Some(format!("extension {} {v} installed, {e} needed", e.name)),
            Some(_) => {}
        }
    }
    if let Some(t) = requires.tables.iter().find(|t| !facts.tables.contains(*t)) {
        return Some(format!("table {t} not found"));
    }
    if let Some(t) = requires.tables.iter().find(|t| !facts.readable_tables.contains(*t)) {
        return Some(format!("no SELECT privilege on table {t}"));
    }
    if let Some(l) = requires.libraries.iter().find(|l| !facts.libraries.contains(*l)) {
        return Some(format!("library {l} not loaded (add it to shared_preload_libraries)"));
    }
    None
}

/// Why a query limited to one role does not run on this server.
fn wrong_role(role: Option<Role>, facts: &ServerFacts) -> Option<String> {
    match role? {
        Role::Primary if facts.in_recovery => Some("server is a replica".to_owned()),
        Role::Replica if !facts.in_recovery => Some("server is a primary".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::ExtensionRequirement;

    fn facts() -> ServerFacts {
        ServerFacts {
            major_version: 16,
            version: "16.4".into(),
            in_recovery: false,
            started_at: 0.0,
            extensions: [("pg_stat_statements".to_owned(), "1.10".to_owned())].into(),
            tables: ["t".to_owned(), "hidden".to_owned()].into(),
            readable_tables: ["t".to_owned()].into(),
            libraries: ["pg_stat_statements".to_owned()].into(),
            role: "monitor".into(),
            sees_all_sessions: true,
        }
    }

    #[test]
    fn each_requirement_gives_its_own_reason() {
        let r = |f: fn(&mut Requires)| {
            let mut r = Requires::default();
            f(&mut r);
            unmet(&r, &facts())
        };
        assert_eq!(r(|_| {}), None);
        assert_eq!(r(|r| r.min_version = Some(17)).as_deref(), Some("server version 16 < 17"));
        assert_eq!(r(|r| r.max_version = Some(15)).as_deref(), Some("server version 16 > 15"));
        assert_eq!(
            r(|r| r.extensions = vec![ExtensionRequirement::parse("pg_stat_statements >= 1.11").unwrap()]).as_deref(),
            Some("extension pg_stat_statements 1.10 installed, pg_stat_statements >= 1.11 needed")
        );
        assert_eq!(r(|r| r.tables = vec!["gone".into()]).as_deref(), Some("table gone not found"));
        assert_eq!(r(|r| r.tables = vec!["hidden".into()]).as_deref(), Some("no SELECT privilege on table hidden"));
        assert_eq!(r(|r| r.libraries = vec!["pg_stat_statements".into()]), None);
        assert_eq!(
            r(|r| r.libraries = vec!["auto_explain".into()]).as_deref(),
            Some("library auto_explain not loaded (add it to shared_preload_libraries)")
        );
    }

    #[test]
    fn a_role_limit_skips_the_other_role() {
        let query = |role| Query {
            name: "q".into(),
            help: String::new(),
            sql: String::new(),
            timeout: crate::defaults::QUERY_TIMEOUT,
            lock_timeout: crate::defaults::LOCK_TIMEOUT,
            ttl: crate::defaults::TTL,
            max_series: crate::defaults::MAX_SERIES,
            over_budget: Default::default(),
            scope: Default::default(),
            refresh_ahead: false,
            requires: Requires::default(),
            targets: Vec::new(),
            role,
            metrics: Vec::new(),
        };
        let primary = facts();
        let replica = ServerFacts { in_recovery: true, ..facts() };
        assert_eq!(skip_reason(&query(Some(Role::Replica)), &primary).as_deref(), Some("server is a primary"));
        assert_eq!(skip_reason(&query(Some(Role::Primary)), &replica).as_deref(), Some("server is a replica"));
        assert_eq!(skip_reason(&query(None), &replica), None);
    }
}
