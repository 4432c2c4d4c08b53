//! `EXPLAIN` of a catalogue query, for `check --explain`: its cost and the
//! sequential scans over large tables it would make.

use deadpool_postgres::Pool;

use super::decode::Label;
use super::error::{ErrorKind, QueryError, classify};
use super::execute::begin;
use super::pool::{checkout, discard};
use crate::catalogue::Query;
use crate::defaults::CLIENT_MARGIN;

/// What `EXPLAIN` says about a query: total cost and sequential scans over large tables.
#[derive(Debug, Clone, Default)]
pub struct Explain {
    /// Planner's total cost of the top node.
    pub total_cost: f64,
    /// `(relation, estimated rows)` of every sequential scan over a table with more than `large` rows.
    pub large_seq_scans: Vec<(String, f64)>,
}

/// Runs `EXPLAIN (FORMAT JSON)` for `query` in a read-only transaction; seq scans over tables above `large` rows are reported.
pub async fn explain(pool: &Pool, query: &Query, large: f64) -> Result<Explain, QueryError> {
    let client = checkout(pool).await?;
    let work = async {
        client.batch_execute(&begin(query, false)).await.map_err(|e| classify(&e))?;
        let row =
            client.query_one(&format!("EXPLAIN (FORMAT JSON) {}", query.sql), &[]).await.map_err(|e| classify(&e));
        let mut seq = Vec::new();
        let plan: Result<serde_json::Value, QueryError> = row.and_then(|r| {
            let Label(text) = r.try_get::<_, Label>(0).map_err(|e| classify(&e))?;
            serde_json::from_str(&text)
                .map_err(|e| QueryError::new(ErrorKind::Conversion, format!("EXPLAIN output: {e}")))
        });
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        let top = &plan[0]["Plan"];
        collect_seq_scans(top, &mut seq);
        let mut out = Explain { total_cost: top["Total Cost"].as_f64().unwrap_or(0.0), large_seq_scans: Vec::new() };
        for rel in seq {
            let rows: f32 = client
                .query_one("SELECT coalesce(max(reltuples), 0)::float4 FROM pg_class WHERE relname = $1", &[&rel])
                .await
                .map(|r| r.get(0))
                .unwrap_or(0.0);
            if f64::from(rows) > large {
                out.large_seq_scans.push((rel, f64::from(rows)));
            }
        }
        client.batch_execute("ROLLBACK").await.map_err(|e| classify(&e))?;
        Ok(out)
    };
    match tokio::time::timeout(query.timeout + CLIENT_MARGIN, work).await {
        Ok(r) => r,
        Err(_) => {
            discard(client);
            Err(QueryError::new(ErrorKind::Timeout, "EXPLAIN did not answer in time"))
        }
    }
}

fn collect_seq_scans(node: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(rel) = node["Relation Name"].as_str().filter(|_| node["Node Type"] == "Seq Scan") {
        out.push(rel.to_owned());
    }
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            collect_seq_scans(child, out);
        }
    }
}
