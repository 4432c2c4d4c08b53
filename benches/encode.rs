//! Rows → exposition text for 1k, 10k and 100k series (issue 6).
//! `cargo bench --bench encode` prints criterion's timings; divide by the
//! series count (criterion's "thrpt" line does it: elements/s).

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use runbook_exporter::catalogue;
use runbook_exporter::db::{PoolStats, QueryResult, Series};
use runbook_exporter::engine::{QuerySnapshot, QueryStats, Snapshot, Status, TargetSnapshot, UnitSnapshot};
use runbook_exporter::exposition::labels::render_label;
use runbook_exporter::exposition::{Endpoint, Format, Process, encode};

const CATALOGUE: &str = r#"
queries:
  tables:
    help: "Table statistics (runbook: Table Statistics)."
    sql: SELECT 1
    metrics:
      - {name: pg_table_live_rows, type: gauge, value: live, labels: [schemaname, relname]}
      - {name: pg_table_vacuum_total, type: counter, value: vac, labels: [schemaname, relname]}
"#;

/// A snapshot whose one query served `series` series split over two families, as a cached result would be.
fn snapshot(series: usize) -> Snapshot {
    let catalogue = Arc::new(catalogue::parse(CATALOGUE, "bench.yaml").expect("bench catalogue"));
    let half = series / 2;
    let family = |scale: f64| -> Vec<Series> {
        (0..half)
            .map(|i| {
                let mut labels = render_label("schemaname", "public");
                labels.push(',');
                labels.push_str(&render_label("relname", &format!("activity_events_{i:06}")));
                Series { labels: labels.into_boxed_str(), value: i as f64 * scale }
            })
            .collect()
    };
    let result =
        Arc::new(QueryResult { series: vec![family(1.5), family(3.0)], rows: half, null_values: 0, truncated_rows: 0 });
    let status = Status::Served { result, age: Duration::from_secs(3), cached: true };
    let target = TargetSnapshot {
        label: None,
        up: true,
        facts: None,
        down_because: None,
        units: vec![UnitSnapshot {
            datname: None,
            label: None,
            queries: vec![QuerySnapshot { status, stats: QueryStats::default() }],
        }],
        pool: PoolStats { max: 2, open: 1, idle: 1, waiting: 0 },
        probe_errors: Default::default(),
    };
    Snapshot { catalogue, targets: vec![target], files: Vec::new(), duration: Duration::from_millis(2) }
}

fn bench_encode(c: &mut Criterion) {
    let process = Process {
        version: "bench",
        revision: "bench",
        last_reload_ok: true,
        last_reload_success: 0.0,
        started_at: 0.0,
        resources: None,
        http: Default::default(),
    };
    let mut group = c.benchmark_group("encode");
    for series in [1_000usize, 10_000, 100_000] {
        let snap = snapshot(series);
        group.throughput(Throughput::Elements(series as u64));
        for (name, format) in [("openmetrics", Format::OpenMetrics), ("text-0.0.4", Format::PrometheusText)] {
            group.bench_with_input(BenchmarkId::new(name, series), &snap, |b, snap| {
                b.iter(|| encode(snap, &process, format, Endpoint::Metrics))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench_encode
}
criterion_main!(benches);
