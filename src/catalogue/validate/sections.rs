//! The `targets:` block (with `databases:`) and the `files:` block.

use super::*;

impl Validator {
    pub(super) fn targets(&mut self, raw: Spanned<IndexMap<Spanned<String>, raw::Target>>) -> Vec<TargetSpec> {
        if raw.value.is_empty() {
            self.report(raw.referenced, "targets", "targets: is empty; leave it out to use DATABASE_URL");
        }
        let mut out = Vec::new();
        for (name, t) in raw.value {
            let path = format!("targets.{}", name.value);
            if !is_target_name(&name.value) {
                let message = format!("invalid target name {:?}: use letters, digits, - and _", name.value);
                self.report(name.referenced, &path, message);
            }
            let max_connections = t.max_connections.as_ref().map(|m| {
                if m.value == 0 || m.value > 100 {
                    self.report(m.referenced, format!("{path}.max_connections"), "must be between 1 and 100");
                }
                usize::from(m.value.clamp(1, 100))
            });
            let databases = t.databases.map(|d| self.databases(d, max_connections, &path));
            out.push(TargetSpec {
                name: name.value,
                url: t.url.map(|u| u.value),
                password_file: t.password_file.map(|p| std::path::PathBuf::from(p.value)),
                max_connections,
                databases,
            });
        }
        out
    }

    pub(super) fn databases(
        &mut self,
        d: Spanned<raw::Databases>,
        max_connections: Option<usize>,
        path: &str,
    ) -> DatabaseDiscovery {
        if max_connections.is_some_and(|m| m < 2) {
            let message = "watching databases needs max_connections of at least 2 (one for server-wide queries, one for databases)";
            self.report(d.referenced, format!("{path}.max_connections"), message);
        }
        let globs = |list: &[Spanned<String>]| list.iter().map(|g| g.value.clone()).collect::<Vec<_>>();
        let include = if d.value.include.is_empty() { vec!["*".to_owned()] } else { globs(&d.value.include) };
        DatabaseDiscovery {
            include,
            exclude: globs(&d.value.exclude),
            refresh: self.positive(
                d.value.refresh.as_ref(),
                &format!("{path}.databases.refresh"),
                defaults::DISCOVERY_REFRESH,
            ),
        }
    }

    pub(super) fn file_sets(
        &mut self,
        raw: Spanned<IndexMap<Spanned<String>, raw::FileSet>>,
        file: &str,
    ) -> Vec<FileSet> {
        if raw.value.is_empty() {
            self.report(raw.referenced, "files", "files: is empty; leave it out if no files are watched");
        }
        let base = std::path::Path::new(file).parent().unwrap_or(std::path::Path::new("."));
        // Metric names are unique across queries and file sets.
        let mut taken: HashMap<String, Location> = self.family_at.iter().map(|(n, (_, at))| (n.clone(), *at)).collect();
        raw.value.into_iter().map(|(name, f)| self.file_set(name, f, base, &mut taken)).collect()
    }

    pub(super) fn file_set(
        &mut self,
        name: Spanned<String>,
        f: raw::FileSet,
        base: &std::path::Path,
        taken: &mut HashMap<String, Location>,
    ) -> FileSet {
        let path = format!("files.{}", name.value);
        let set = FileSet {
            name: name.value.clone(),
            help: collapse_whitespace(&f.help.value),
            directory: base.join(f.directory.value.trim()),
            pattern: f.pattern.value.clone(),
            header: f.header.as_ref().map(|h| h.value.as_bytes().to_vec()),
            ttl: self.duration(f.ttl.as_ref(), &format!("{path}.ttl"), defaults::FILE_SET_TTL),
            max_entries: match &f.max_entries {
                Some(m) if m.value == 0 || m.value > defaults::FILE_SET_MAX_ENTRIES_LIMIT as u64 => {
                    let message = format!("max_entries must be between 1 and {}", defaults::FILE_SET_MAX_ENTRIES_LIMIT);
                    self.report(m.referenced, format!("{path}.max_entries"), message);
                    defaults::FILE_SET_MAX_ENTRIES
                }
                Some(m) => m.value as usize,
                None => defaults::FILE_SET_MAX_ENTRIES,
            },
        };
        let empty = [
            (&f.help, "help", set.help.is_empty()),
            (&f.directory, "directory", f.directory.value.trim().is_empty()),
            (&f.pattern, "pattern", f.pattern.value.is_empty()),
        ];
        for (at, field, is_empty) in empty {
            if is_empty {
                self.report(at.referenced, format!("{path}.{field}"), format!("{field} must not be empty"));
            }
        }
        if f.pattern.value.contains('/') {
            self.report(f.pattern.referenced, format!("{path}.pattern"), "pattern matches file names: no / in it");
        }
        if let Some(h) = f.header.as_ref().filter(|h| h.value.is_empty()) {
            self.report(h.referenced, format!("{path}.header"), "header must not be empty; leave it out instead");
        }
        if !is_metric_name(&name.value) || is_reserved(&name.value) || name.value.contains(':') {
            let message = format!(
                "invalid file set name {:?}: it prefixes metric names, use [a-zA-Z_][a-zA-Z0-9_]* outside runbook_exporter_",
                name.value
            );
            self.report(name.referenced, &path, message);
        }
        for metric in FileMetric::ALL {
            let metric_name = set.metric_name(metric);
            if let Some(first) = taken.insert(metric_name.clone(), name.referenced) {
                let message =
                    format!("metric {metric_name:?} of this file set is also defined at line {}", first.line());
                self.report(name.referenced, &path, message);
            }
        }
        set
    }
}
