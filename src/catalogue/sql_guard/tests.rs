use proptest::prelude::*;

use super::*;

fn refused(sql: &str) -> Option<String> {
    side_effecting_call(sql, &[]).map(|c| c.function)
}

/// Spellings that got past the text-based guard (issue #16), and their kin.
#[test]
fn known_bypass_spellings_are_refused() {
    for sql in [
        "SELECT pg_terminate_backend/**/(pid) FROM pg_stat_activity",
        "SELECT \"pg_terminate_backend\"(pid) FROM pg_stat_activity",
        "SELECT pg_terminate_backend\n  (pid) FROM pg_stat_activity",
        "SELECT pg_terminate_backend -- a comment\n(pid) FROM pg_stat_activity",
        "SELECT pg_terminate_backend /* nested /* comment */ still */ (pid) FROM pg_stat_activity",
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity",
        "SELECT \"pg_catalog\".\"pg_terminate_backend\"(pid) FROM pg_stat_activity",
        "SELECT pg_catalog . /* x */ pg_terminate_backend (pid) FROM pg_stat_activity",
        "SELECT PG_TERMINATE_BACKEND(pid) FROM pg_stat_activity",
        "SELECT U&\"pg_terminate\\005fbackend\"(pid) FROM pg_stat_activity",
        "SELECT U&\"pg_terminate!005fbackend\" UESCAPE '!' (pid) FROM pg_stat_activity",
        "SELECT U&\"pg\\+00005Fterminate_backend\"(pid) FROM pg_stat_activity",
        "SELECT * FROM pg_stat_activity a, LATERAL pg_terminate_backend(a.pid) AS t",
        "WITH k AS (SELECT pg_terminate_backend(pid) FROM pg_stat_activity) SELECT count(*) FROM k",
        "SELECT (SELECT pg_terminate_backend(pid)) FROM pg_stat_activity",
        "SELECT * FROM pg_terminate_backend(42)",
        "TABLE pg_terminate_backend(42)",
    ] {
        assert_eq!(refused(sql).as_deref(), Some("pg_terminate_backend"), "{sql}");
    }
    assert_eq!(refused("SELECT lo_import('/etc/passwd')").as_deref(), Some("lo_import"));
    assert_eq!(refused("SELECT * FROM dblink_exec('x', 'y')").as_deref(), Some("dblink_exec"));
}

#[test]
fn names_that_are_only_mentioned_are_not_calls() {
    for sql in [
        "SELECT 'pg_terminate_backend(pid)' AS v",
        "SELECT E'it''s pg_terminate_backend(1) \\' here' AS v",
        "SELECT $$pg_terminate_backend(1)$$ AS v",
        "SELECT $body$ pg_terminate_backend(1) $body$ AS v",
        "SELECT 1 AS v -- pg_terminate_backend(1)",
        "SELECT /* pg_terminate_backend(1) */ 1 AS v",
        "SELECT 1 AS pg_terminate_backend",
        "SELECT query FROM pg_stat_activity WHERE query LIKE '%pg_terminate_backend(%'",
        "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
        "SELECT $1::int AS v",
        "SELECT U&'pg_terminate_backend(1)' AS v",
    ] {
        assert_eq!(refused(sql), None, "{sql}");
    }
}

#[test]
fn allowed_functions_pass_and_the_call_is_located() {
    let allowed = vec!["pg_cancel_backend".to_owned()];
    assert_eq!(side_effecting_call("SELECT pg_cancel_backend(1)", &allowed), None);
    let call = side_effecting_call("SELECT 1,\n  x,\n    pg_reload_conf() AS v", &allowed).unwrap();
    assert_eq!(call, Call { function: "pg_reload_conf".into(), line: 2, column: 4 });
}

/// A way to write `function` as PostgreSQL would still call it.
fn spelling() -> impl Strategy<Value = (usize, String)> {
    let names = SIDE_EFFECTING_FUNCTIONS.len();
    (0..names, any::<u64>(), 0..4usize, 0..4usize, 0..6usize).prop_map(|(i, seed, quoting, schema, context)| {
        let mut name = SIDE_EFFECTING_FUNCTIONS[i].to_owned();
        if name.ends_with('_') || name == "dblink" {
            name.push_str("export");
        }
        let cased: String = name
            .chars()
            .enumerate()
            .map(|(k, c)| if seed >> (k % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        let gaps = ["", " ", "\n  ", "/**/", "/* a /* nested */ one */", "-- note\n", "\t"];
        let gap = |k: u64| gaps[((seed >> (k * 3)) % gaps.len() as u64) as usize];
        let written = match quoting {
            0 => cased,
            1 => format!("\"{name}\""),
            2 => format!("U&\"{}\"", name.replace('_', "\\005F")),
            _ => format!("U&\"{}\" UESCAPE '#'", name.replace('_', "#005f")),
        };
        let qualified = match schema {
            0 => written,
            1 => format!("pg_catalog{}.{}{written}", gap(1), gap(2)),
            2 => format!("\"pg_catalog\".{written}"),
            _ => format!("PUBLIC{}.{written}", gap(3)),
        };
        let call = format!("{qualified}{}({}1)", gap(4), gap(5));
        let sql = match context {
            0 => format!("SELECT {call} AS v"),
            1 => format!("SELECT * FROM {call}"),
            2 => format!("SELECT * FROM pg_stat_activity a,{}LATERAL {call} AS t", gap(6)),
            3 => format!("WITH w AS (SELECT {call}) SELECT * FROM w"),
            4 => format!("SELECT (SELECT {call}) AS v"),
            _ => format!("TABLE {call}"),
        };
        (i, sql)
    })
}

proptest! {
    #[test]
    fn every_denied_function_is_refused_however_it_is_spelled((i, sql) in spelling()) {
        let denied = SIDE_EFFECTING_FUNCTIONS[i];
        let function = refused(&sql);
        prop_assert!(function.as_deref().is_some_and(|f| f.starts_with(denied)), "{sql:?} gave {function:?}");
    }

    #[test]
    fn literals_and_comments_never_count_as_calls((i, _) in spelling(), tag in "[a-z]{0,4}") {
        let name = SIDE_EFFECTING_FUNCTIONS[i];
        let sql = format!(
            "SELECT '{name}(1)' AS a, ${tag}${name}(2)${tag}$ AS b /* {name}(3) */ -- {name}(4)\n, E'\\'{name}(5)' AS c"
        );
        prop_assert_eq!(refused(&sql), None, "{}", sql);
    }
}

#[test]
fn a_query_is_one_read_only_statement() {
    for sql in [
        "SELECT 1 AS v",
        "select 1 as v;",
        "  -- comment\n  WITH a AS (SELECT 1 AS v) SELECT v FROM a",
        "VALUES (1)",
        "TABLE pg_stat_activity",
        "SHOW max_connections",
        "(SELECT 1 AS v) UNION ALL (SELECT 2)",
        "SELECT substring('x' FOR 1) AS v, 'DELETE FROM t; UPDATE t SET a = 1' AS q",
        "SELECT count(*) AS n FROM t WHERE \"update\" > 0 -- ; DELETE FROM t",
        "SELECT $$ ; INSERT INTO t VALUES (1) $$ AS v",
    ] {
        assert_eq!(statement_problem(sql), None, "{sql}");
    }
    for (sql, problem) in [
        ("DELETE FROM t RETURNING id", "DELETE is not a read"),
        ("UPDATE t SET id = id + 100 RETURNING id AS n", "UPDATE is not a read"),
        ("WITH d AS (DELETE FROM t RETURNING id) SELECT count(*) AS n FROM d", "DELETE changes data"),
        ("WITH u AS (UPDATE public.t SET a = 1 RETURNING a) SELECT * FROM u", "UPDATE changes data"),
        ("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1", "INSERT changes data"),
        ("SELECT 1 AS v; SELECT 2 AS v", "2 statements"),
        ("SELECT 1; DROP TABLE t", "2 statements"),
        ("SELECT * INTO backup FROM t", "SELECT ... INTO creates a table"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE/SHARE locks rows"),
        ("SELECT * FROM t FOR NO KEY UPDATE", "FOR UPDATE/SHARE locks rows"),
        ("VACUUM t", "VACUUM is not a read"),
        ("", "no statement"),
    ] {
        let got = statement_problem(sql);
        assert!(got.as_deref().is_some_and(|g| g.starts_with(problem)), "{sql}: {got:?}");
    }
}

#[test]
fn only_a_top_level_order_by_orders_the_rows() {
    for sql in [
        "SELECT relname FROM pg_class ORDER BY relpages DESC",
        "WITH t AS (SELECT 1 AS n) SELECT n FROM t ORDER BY n",
        "SELECT a FROM (SELECT 1 AS a ORDER BY 1) s ORDER /* c */ BY a",
        "SELECT 1 AS a UNION ALL SELECT 2 order\n by 1",
    ] {
        assert!(has_order_by(sql), "{sql}");
    }
    for sql in [
        "SELECT row_number() OVER (ORDER BY relpages) FROM pg_class",
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class",
        "SELECT a FROM (SELECT 1 AS a ORDER BY 1) s",
        "WITH t AS (SELECT 1 AS n ORDER BY n) SELECT n FROM t",
        "SELECT 'ORDER BY n' AS s -- ORDER BY s",
        "SELECT 1 AS \"order\", 2 AS by_",
    ] {
        assert!(!has_order_by(sql), "{sql}");
    }
}
