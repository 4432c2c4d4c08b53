//! Catalogues read by the library's own loader (`runbook_exporter::catalogue`), handed to the tests as plain
//! data. With `fuzz_checks.rs` (shared with `fuzz/`) the only test code that calls the library: when its
//! module paths or types change, this file is what to fix.

use std::path::Path;
use std::time::Duration;

use runbook_exporter::catalogue::{self, MetricKind};

use super::data::root;

/// A validated catalogue.
pub struct Catalogue {
    pub queries: Vec<Query>,
    pub families: Vec<Family>,
}

pub struct Query {
    pub name: String,
    pub help: String,
    pub sql: String,
    pub ttl: Duration,
    pub timeout: Duration,
    pub requires: Requires,
    /// The server role the query is limited to, if any.
    pub role: Option<Role>,
    pub metrics: Vec<Metric>,
}

/// What a query needs of the server; `extensions` as written (`pg_stat_statements >= 1.8`).
pub struct Requires {
    pub min_version: Option<u32>,
    pub max_version: Option<u32>,
    pub extensions: Vec<String>,
    pub tables: Vec<String>,
    /// Libraries that must be in `shared_preload_libraries`.
    pub libraries: Vec<String>,
}

/// A query's `role:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// How one metric is read from a query's rows.
pub struct Metric {
    /// Index into [`Catalogue::families`].
    pub family: usize,
    pub value_column: String,
    pub label_columns: Vec<String>,
    pub const_label_names: Vec<String>,
}

/// One exposed metric family (name without the `_total` of counters).
pub struct Family {
    pub name: String,
    pub counter: bool,
    pub help: String,
    /// `(query index, metric index)` of every metric feeding it.
    pub sources: Vec<(usize, usize)>,
}

impl Catalogue {
    /// The query named `name`; panics if there is none.
    pub fn query(&self, name: &str) -> &Query {
        self.queries.iter().find(|q| q.name == name).unwrap_or_else(|| panic!("no query {name}"))
    }
}

/// The catalogue at `path`; panics with the loader's error.
pub fn load(path: &Path) -> Catalogue {
    let cat = catalogue::load(path).unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    let queries = cat
        .queries
        .into_iter()
        .map(|q| Query {
            name: q.name,
            help: q.help,
            sql: q.sql,
            ttl: q.ttl,
            timeout: q.timeout,
            requires: Requires {
                min_version: q.requires.min_version,
                max_version: q.requires.max_version,
                extensions: q.requires.extensions.iter().map(ToString::to_string).collect(),
                tables: q.requires.tables,
                libraries: q.requires.libraries,
            },
            role: q.role.map(|r| match r {
                catalogue::Role::Primary => Role::Primary,
                catalogue::Role::Replica => Role::Replica,
            }),
            metrics: q
                .metrics
                .into_iter()
                .map(|m| Metric {
                    family: m.family,
                    value_column: m.value_column,
                    label_columns: m.label_columns,
                    const_label_names: m.const_labels.into_iter().map(|(k, _)| k).collect(),
                })
                .collect(),
        })
        .collect();
    let families = cat
        .families
        .into_iter()
        .map(|f| Family {
            name: f.name,
            counter: f.kind == MetricKind::Counter,
            help: f.help,
            sources: f.sources.iter().map(|s| (s.query, s.metric)).collect(),
        })
        .collect();
    Catalogue { queries, families }
}

/// The shipped `queries.yaml`.
pub fn shipped() -> Catalogue {
    load(&root().join("queries.yaml"))
}

/// A fixed scrape of `tests/data/catalogues/golden.yaml`: two targets (one watching a database), served,
/// cached, truncated, failed, skipped and not-run queries, a family fed by two queries, file sets scanned and
/// failed, and the process facts every self-metric reads.
fn golden_scrape() -> (runbook_exporter::engine::Snapshot, runbook_exporter::exposition::Process) {
    use std::sync::Arc;

    use runbook_exporter::db::{ErrorKind, PoolStats, QueryResult, Series, ServerFacts};
    use runbook_exporter::engine::{
        FileSetSnapshot, QuerySnapshot, QueryStats, Snapshot, Status, TargetSnapshot, UnitSnapshot,
    };
    use runbook_exporter::exposition::{Process, labels::render_label};
    use runbook_exporter::files::{FileInfo, Scan};
    use runbook_exporter::http::stats::HttpCounts;
    use runbook_exporter::procfs::Resources;

    let path = root().join("tests/data/catalogues/golden.yaml");
    let cat = Arc::new(catalogue::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let series = |labels: &[(&str, &str)], value: f64| Series {
        labels: labels.iter().map(|(k, v)| render_label(k, v)).collect::<Vec<_>>().join(",").into_boxed_str(),
        value,
    };
    let served = |series: Vec<Vec<Series>>, age: u64, cached: bool, truncated_rows: u64| {
        let result =
            Arc::new(QueryResult { rows: series.iter().map(Vec::len).sum(), series, null_values: 1, truncated_rows });
        let stats = QueryStats {
            executions: 3,
            cache_hits: u64::from(cached) * 2,
            last_duration: Some(Duration::from_millis(12)),
            ..QueryStats::default()
        };
        QuerySnapshot { status: Status::Served { result, age: Duration::from_secs(age), cached }, stats }
    };
    let status = |status: Status| QuerySnapshot { status, stats: QueryStats::default() };
    let failed = || {
        let mut stats = QueryStats { executions: 4, ..QueryStats::default() };
        stats.errors.insert(ErrorKind::Timeout, 3);
        stats.errors.insert(ErrorKind::Sql, 1);
        QuerySnapshot { status: Status::Failed(ErrorKind::Timeout), stats }
    };
    let primary = render_label("target", "primary");
    let replica = render_label("target", "replica");
    let app = format!("{replica},{}", render_label("datname", "app1"));
    let primary_unit = UnitSnapshot {
        datname: None,
        label: Some(primary.clone()),
        queries: vec![
            served(
                vec![
                    vec![
                        series(&[("state", "active"), ("target", "primary")], 3.0),
                        series(&[("state", "idle"), ("target", "primary")], 1.5),
                    ],
                    vec![series(&[("target", "primary")], 7.0)],
                ],
                0,
                false,
                0,
            ),
            served(vec![vec![series(&[("target", "primary")], 42.0)]], 0, false, 0),
            status(Status::Skipped("server version 16 < 17".into())),
            served(vec![vec![series(&[("relname", "big"), ("target", "primary")], 1e9)]], 12, true, 5),
            failed(),
        ],
    };
    let replica_unit = UnitSnapshot {
        datname: None,
        label: Some(replica.clone()),
        queries: vec![
            status(Status::NotRun),
            status(Status::NotRun),
            status(Status::NotRun),
            status(Status::NotApplicable),
            status(Status::NotRun),
        ],
    };
    let app_unit = UnitSnapshot {
        datname: Some("app1".into()),
        label: Some(app.clone()),
        queries: vec![
            status(Status::NotApplicable),
            status(Status::NotApplicable),
            status(Status::NotApplicable),
            served(
                vec![vec![series(&[("relname", "t\"x\n"), ("target", "replica"), ("datname", "app1")], f64::INFINITY)]],
                0,
                false,
                0,
            ),
            status(Status::NotApplicable),
        ],
    };
    let target = |label: String, up: bool, units: Vec<UnitSnapshot>| TargetSnapshot {
        label: Some(label),
        up,
        facts: up.then(|| {
            Arc::new(ServerFacts {
                major_version: 17,
                version: "17.2".into(),
                in_recovery: false,
                started_at: 1_795_000_000.0,
                extensions: Default::default(),
                tables: Default::default(),
                readable_tables: Default::default(),
                libraries: Default::default(),
                role: "monitor".into(),
                sees_all_sessions: false,
            })
        }),
        down_because: (!up).then(|| "timeout: connecting took longer than the 5s connect timeout".to_owned()),
        units,
        pool: PoolStats { max: 4, open: if up { 2 } else { 0 }, idle: 1, waiting: 0 },
        probe_errors: if up { Default::default() } else { [(ErrorKind::Timeout, 2)].into() },
    };
    let scan = Scan {
        files: 3,
        newest: Some(FileInfo { modified: 1_796_000_000.0, size: 1024 }),
        previous: Some(FileInfo { modified: 1_795_913_600.0, size: 4096 }),
        header_match: Some(false),
    };
    let snapshot = Snapshot {
        catalogue: cat,
        targets: vec![target(primary, true, vec![primary_unit]), target(replica, false, vec![replica_unit, app_unit])],
        files: vec![
            FileSetSnapshot { name: "pg_backup".into(), outcome: Ok(Arc::new(scan)), age: Duration::from_secs(20) },
            FileSetSnapshot {
                name: "logs".into(),
                outcome: Err("directory /var/log/x does not exist".into()),
                age: Duration::ZERO,
            },
        ],
        duration: Duration::from_millis(250),
    };
    let process = Process {
        version: "1.2.3",
        revision: "abc1234",
        last_reload_ok: true,
        last_reload_success: 1_796_000_100.5,
        started_at: 1_796_000_000.25,
        resources: Some(Resources {
            cpu_seconds: 1.5,
            resident_bytes: 10_485_760.0,
            virtual_bytes: 104_857_600.0,
            open_fds: 12.0,
            max_fds: 1024.0,
        }),
        http: HttpCounts {
            connections_refused: 0,
            connections_evicted: 1,
            connections_idle_closed: 5,
            bcrypt_user: 2,
            bcrypt_dummy: 1,
        },
    };
    (snapshot, process)
}

/// The exposition of the fixed scrape in both formats (text 0.0.4, then OpenMetrics).
pub fn golden_exposition() -> [String; 2] {
    use runbook_exporter::exposition::{Endpoint, Format, encode};
    let (snapshot, process) = golden_scrape();
    [Format::PrometheusText, Format::OpenMetrics].map(|format| encode(&snapshot, &process, format, Endpoint::Metrics))
}

/// The landing page of the fixed scrape, rendered for the configuration of the golden catalogue.
pub fn golden_landing() -> String {
    use runbook_exporter::config::{PoolSettings, Sources, libpq::Env};
    use runbook_exporter::engine::Running;
    let (snapshot, process) = golden_scrape();
    let sources = Sources {
        // Relative, as an operator would give it: the page shows the path (tests run in the package root).
        config_file: "tests/data/catalogues/golden.yaml".into(),
        database_url: None,
        password_file: None,
        env: Env::from_pairs([("USER", "monitor")]),
        pool: PoolSettings {
            max_size: 4,
            wait_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        },
    };
    // Building pools opens no connection: the page is rendered from the fixed snapshot alone.
    let running = Running::load(&sources, None).unwrap_or_else(|e| panic!("{e}"));
    let names = ["primary", "replica"].map(str::to_owned);
    let last = names.into_iter().zip(snapshot.targets).collect();
    runbook_exporter::http::landing::render(&running, &process, &last, "/metrics")
}

/// The names the exporter's own metrics have on a scrape (`_total` on counters), from its self-metrics table.
pub fn self_metric_names() -> Vec<String> {
    runbook_exporter::exposition::self_metrics::exposed_names()
}

/// The README's table of the exporter's own metrics, from the self-metrics table.
pub fn self_metrics_table() -> String {
    runbook_exporter::exposition::self_metrics::reference_table()
}

/// One metric of a `files:` set, as `docs/metrics.md` lists it.
pub struct FileSetMetric {
    pub name: String,
    pub help: String,
    /// The set it belongs to.
    pub set: String,
    pub ttl: Duration,
}

/// Every metric of every `files:` set of the catalogue at `path`, set by set.
pub fn file_set_metrics(path: &Path) -> Vec<FileSetMetric> {
    let cat = catalogue::load(path).unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    cat.files
        .iter()
        .flat_map(|set| {
            catalogue::FileMetric::ALL.map(|m| FileSetMetric {
                name: set.metric_name(m),
                help: set.metric_help(m),
                set: set.name.clone(),
                ttl: set.ttl,
            })
        })
        .collect()
}

/// The metric names of every `files:` set of the catalogue at `path`.
pub fn file_set_metric_names(path: &Path) -> Vec<String> {
    file_set_metrics(path).into_iter().map(|m| m.name).collect()
}
