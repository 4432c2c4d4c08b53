//! Single values: durations, budgets, scope, role, over_budget, requires, a query's targets.

use super::*;

impl Validator {
    pub(super) fn refresh_ahead(
        &mut self,
        raw: Option<&Spanned<bool>>,
        ttl: Duration,
        defaults: &Inherited,
        path: &str,
    ) -> bool {
        match raw {
            Some(r) if r.value && ttl.is_zero() => {
                self.report(r.referenced, format!("{path}.refresh_ahead"), "refresh_ahead needs a ttl above 0s");
                false
            }
            Some(r) => r.value,
            // Inherited from defaults: only meaningful where there is a ttl.
            None => defaults.refresh_ahead && !ttl.is_zero(),
        }
    }

    pub(super) fn query_targets(&mut self, targets: &[Spanned<String>], target_names: &[String], path: &str) {
        for t in targets {
            if !target_names.contains(&t.value) {
                let known = if target_names.is_empty() {
                    "the catalogue has no targets: block".to_owned()
                } else {
                    format!("known: {}", target_names.join(", "))
                };
                self.report(t.referenced, format!("{path}.targets"), format!("unknown target {:?} ({known})", t.value));
            }
        }
    }

    pub(super) fn over_budget(
        &mut self,
        raw: Option<&Spanned<String>>,
        sql: &Spanned<String>,
        path: &str,
    ) -> OverBudget {
        let Some(r) = raw else { return OverBudget::Fail };
        match r.value.as_str() {
            "fail" => OverBudget::Fail,
            "truncate" if !has_order_by(&sql.value) => {
                let message =
                    "truncate keeps the first rows: give the query an ORDER BY that puts the rows to keep first";
                self.report(r.referenced, format!("{path}.over_budget"), message);
                OverBudget::Truncate
            }
            "truncate" => OverBudget::Truncate,
            other => {
                let message = format!("unknown {other:?}: use fail or truncate");
                self.report(r.referenced, format!("{path}.over_budget"), message);
                OverBudget::Fail
            }
        }
    }

    pub(super) fn scope(&mut self, raw: Option<&Spanned<String>>, path: &str) -> Scope {
        let Some(r) = raw else { return Scope::Database };
        match r.value.as_str() {
            "database" => Scope::Database,
            "server" => Scope::Server,
            other => {
                let message = format!("unknown scope {other:?}: use server or database");
                self.report(r.referenced, format!("{path}.scope"), message);
                Scope::Database
            }
        }
    }

    pub(super) fn role(&mut self, raw: Option<&Spanned<String>>, path: &str) -> Option<Role> {
        let r = raw?;
        match r.value.as_str() {
            "primary" => Some(Role::Primary),
            "replica" => Some(Role::Replica),
            other => {
                let message = format!("unknown role {other:?}: use primary or replica");
                self.report(r.referenced, format!("{path}.role"), message);
                None
            }
        }
    }

    pub(super) fn duration(&mut self, raw: Option<&Spanned<String>>, field: &str, fallback: Duration) -> Duration {
        let Some(raw) = raw else { return fallback };
        match humantime::parse_duration(raw.value.trim()) {
            Ok(d) => d,
            Err(e) => {
                let message = format!("invalid duration {:?}: {e} (use e.g. 500ms, 5s, 2m)", raw.value);
                self.report(raw.referenced, field, message);
                fallback
            }
        }
    }

    pub(super) fn positive(&mut self, raw: Option<&Spanned<String>>, field: &str, fallback: Duration) -> Duration {
        let d = self.duration(raw, field, fallback);
        match raw {
            Some(r) if d.is_zero() => {
                self.report(r.referenced, field, "must be longer than 0s");
                fallback
            }
            _ => d,
        }
    }

    pub(super) fn budget(&mut self, raw: Option<&Spanned<u64>>, field: &str, fallback: usize) -> usize {
        match raw {
            None => fallback,
            Some(r) if r.value == 0 || r.value > defaults::MAX_SERIES_LIMIT as u64 => {
                let message = format!("max_series must be between 1 and {}", defaults::MAX_SERIES_LIMIT);
                self.report(r.referenced, field, message);
                fallback
            }
            Some(r) => r.value as usize,
        }
    }

    pub(super) fn requires(&mut self, r: &raw::Requires, path: &str) -> Requires {
        if let (Some(min), Some(max)) = (&r.min_version, &r.max_version)
            && min.value > max.value
        {
            let message = format!("max_version {} is below min_version {}", max.value, min.value);
            self.report(max.referenced, format!("{path}.requires.max_version"), message);
        }
        let mut extensions = Vec::new();
        for e in &r.extensions {
            match ExtensionRequirement::parse(&e.value) {
                Ok(req) => extensions.push(req),
                Err(message) => self.report(e.referenced, format!("{path}.requires.extensions"), message),
            }
        }
        for (field, names) in [("tables", &r.tables), ("libraries", &r.libraries)] {
            for n in names.iter().filter(|n| n.value.trim().is_empty()) {
                self.report(n.referenced, format!("{path}.requires.{field}"), "name must not be empty");
            }
        }
        Requires {
            min_version: r.min_version.as_ref().map(|v| v.value),
            max_version: r.max_version.as_ref().map(|v| v.value),
            extensions,
            tables: r.tables.iter().map(|t| t.value.clone()).collect(),
            libraries: r.libraries.iter().map(|l| l.value.clone()).collect(),
        }
    }
}
