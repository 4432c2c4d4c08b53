//! A query's metrics: types, names, labels, and the families they feed.

use super::*;

impl Validator {
    pub(super) fn metrics(&mut self, raw: Spanned<Vec<raw::Metric>>, query: &QueryContext<'_>) -> Vec<Metric> {
        if raw.value.is_empty() {
            self.report(raw.referenced, format!("{}.metrics", query.path), "a query needs at least one metric");
        }
        let mut metrics = Vec::new();
        let mut seen: HashMap<String, Location> = HashMap::new();
        for (mi, m) in raw.value.into_iter().enumerate() {
            let mpath = format!("{}.metrics[{mi}]", query.path);
            let kind = self.kind(&m.kind, &mpath);
            let family_name = m.name.value.strip_suffix("_total").filter(|_| kind == MetricKind::Counter);
            let family_name = family_name.unwrap_or(&m.name.value).to_owned();
            if let Some(first) = seen.insert(family_name.clone(), m.name.referenced) {
                let message = format!(
                    "metric {:?} is defined twice in this query (first at line {})",
                    m.name.value,
                    first.line()
                );
                self.report(m.name.referenced, format!("{mpath}.name"), message);
                continue;
            }
            let source = Source { query: query.index, metric: metrics.len() };
            metrics.push(self.metric(m, kind, family_name, source, query, &mpath));
        }
        metrics
    }

    pub(super) fn kind(&mut self, raw: &Spanned<String>, mpath: &str) -> MetricKind {
        match raw.value.as_str() {
            "gauge" => MetricKind::Gauge,
            "counter" => MetricKind::Counter,
            other => {
                let message = format!("unknown metric type {other:?}: use gauge or counter");
                self.report(raw.referenced, format!("{mpath}.type"), message);
                MetricKind::Gauge
            }
        }
    }

    pub(super) fn metric(
        &mut self,
        m: raw::Metric,
        kind: MetricKind,
        family_name: String,
        source: Source,
        query: &QueryContext<'_>,
        mpath: &str,
    ) -> Metric {
        self.metric_name(&m, kind, mpath);
        let labels = self.labels(&m, mpath);
        if query.adds_datname && labels.iter().any(|l| l == "datname") {
            self.report(
                m.name.referenced,
                format!("{mpath}.labels"),
                "label \"datname\" is added by the exporter to database-scope queries when a target watches databases",
            );
        }
        if !query.target_names.is_empty() && labels.iter().any(|l| l == "target") {
            self.report(
                m.name.referenced,
                format!("{mpath}.labels"),
                "label \"target\" is reserved when the catalogue has a targets: block",
            );
        }
        if labels.contains(&m.value.value) {
            let message = format!("column {:?} is both the value and a label", m.value.value);
            self.report(m.value.referenced, format!("{mpath}.value"), message);
        }
        if m.value.value.is_empty() {
            self.report(m.value.referenced, format!("{mpath}.value"), "value must name a column");
        }
        let help = m.help.as_ref().map_or_else(|| query.help.to_owned(), |h| collapse_whitespace(&h.value));
        let mut label_names = labels;
        label_names.sort();
        let candidate = Family { name: family_name, kind, help, label_names, sources: vec![source] };
        let family = self.family(&m, candidate, mpath);
        Metric {
            family,
            value_column: m.value.value,
            label_columns: m.labels.into_iter().map(|l| l.value).collect(),
            const_labels: m.const_labels.into_iter().map(|(k, v)| (k.value, v.value)).collect(),
        }
    }

    /// Adds `candidate`'s source to the family of the same name, or adds `candidate` as a new
    /// family; returns the family's index. Sources of one family must agree on type and labels.
    pub(super) fn family(&mut self, m: &raw::Metric, candidate: Family, mpath: &str) -> usize {
        let Some(&(fi, first)) = self.family_at.get(&candidate.name) else {
            self.family_at.insert(candidate.name.clone(), (self.families.len(), m.name.referenced));
            self.families.push(candidate);
            return self.families.len() - 1;
        };
        let existing = &self.families[fi];
        let (name, kind, labels) = (&candidate.name, candidate.kind, &candidate.label_names);
        if existing.kind != kind {
            let message = format!("metric {name:?} is a {kind} here but a {} at line {}", existing.kind, first.line());
            self.report(m.kind.referenced, format!("{mpath}.type"), message);
        } else if existing.label_names != *labels {
            let message = format!(
                "metric {name:?} has labels {labels:?} here but {:?} at line {}",
                existing.label_names,
                first.line()
            );
            self.report(m.name.referenced, format!("{mpath}.labels"), message);
        }
        self.families[fi].sources.extend(candidate.sources);
        fi
    }

    pub(super) fn metric_name(&mut self, m: &raw::Metric, kind: MetricKind, mpath: &str) {
        let name = &m.name.value;
        let message = if !is_metric_name(name) {
            format!("invalid metric name {name:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        } else if is_reserved(name) {
            format!("metric name {name:?} is reserved for the exporter's own metrics")
        } else if kind == MetricKind::Gauge && name.ends_with("_total") {
            format!("gauge {name:?} must not end in _total: the suffix is for counters")
        } else {
            return;
        };
        self.report(m.name.referenced, format!("{mpath}.name"), message);
    }

    /// Checks label names and returns them in exposition order (columns, then constants).
    pub(super) fn labels(&mut self, m: &raw::Metric, mpath: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let all = m.labels.iter().map(|l| (l, "labels")).chain(m.const_labels.keys().map(|k| (k, "const_labels")));
        for (label, field) in all {
            let path = format!("{mpath}.{field}");
            if !is_label_name(&label.value) {
                let message = format!(
                    "invalid label name {:?}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __",
                    label.value
                );
                self.report(label.referenced, path, message);
            } else if names.contains(&label.value) {
                self.report(label.referenced, path, format!("label {:?} is listed twice", label.value));
            } else {
                names.push(label.value.clone());
            }
        }
        names
    }
}
