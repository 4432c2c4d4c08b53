//! The architecture invariants of ARCHITECTURE.md, checked on the source text: arrows between modules
//! point one way (no import cycle between source files), only `db` sends SQL, `http` knows nothing of SQL,
//! `exposition` does no I/O, and runtime code has no `unwrap`, `expect` or panics. Unit-test code (a file's
//! `#[cfg(test)]` part and `tests.rs` files) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::data::root;

/// Every source file's module path (`engine::unit`, `engine` for `engine/mod.rs`) and its runtime code.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
                let rel = path.strip_prefix(root().join("src")).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let runtime = text.split("#[cfg(test)]").next().unwrap_or_default();
                // Comments (and doc links in them) are not code.
                let runtime: Vec<&str> = runtime.lines().map(|l| l.split("//").next().unwrap_or_default()).collect();
                let runtime = runtime.join("\n");
                out.insert(parts.join("::"), runtime);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root().join("src"), &mut out);
    out
}

/// The paths `code` names after `start` (`crate::`, `super::`), with `use` groups (`a::{b, c::D}`) expanded.
fn paths(code: &str, start: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(start) {
        rest = &rest[i + start.len()..];
        let head: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let after = &rest[head.len()..];
        match after.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(group.split(',').map(|item| format!("{head}{}", item.trim())));
            }
            None => out.push(head),
        }
    }
    out
}

/// What each module re-exports from its children (`pub use child::{A, B}`): item name → child module.
fn reexports(sources: &BTreeMap<String, String>) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for (module, code) in sources {
        for path in paths(code, "pub use ") {
            let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            if let (Some(child), Some(item)) = (parts.first(), parts.last()) {
                let child_module = if module.is_empty() { (*child).to_owned() } else { format!("{module}::{child}") };
                if sources.contains_key(&child_module) {
                    out.insert((module.clone(), (*item).to_owned()), child_module);
                }
            }
        }
    }
    out
}

/// The source files `module`'s code uses through `crate::` and `super::` paths: each path resolved to the
/// longest module path that is a file, and an item a module re-exports to the child that defines it.
/// Paths between a module and its own ancestors or descendants do not count (`mod.rs` declares its children).
fn imports(
    module: &str,
    code: &str,
    sources: &BTreeMap<String, String>,
    reexports: &BTreeMap<(String, String), String>,
) -> BTreeSet<String> {
    let parent = |m: &str| m.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_owned());
    let mut out = BTreeSet::new();
    for (start, base) in [("crate::", String::new()), ("super::", parent(module))] {
        for path in paths(code, start) {
            let mut segments: Vec<&str> = if base.is_empty() { Vec::new() } else { base.split("::").collect() };
            segments.extend(path.split("::").filter(|p| !p.is_empty() && *p != "self"));
            let mut n = segments.len();
            while n > 0 && !sources.contains_key(&segments[..n].join("::")) {
                n -= 1;
            }
            let mut target = segments[..n].join("::");
            if let Some(item) = segments.get(n)
                && let Some(child) = reexports.get(&(target.clone(), (*item).to_owned()))
            {
                target = child.clone();
            }
            let related = target.is_empty()
                || target == module
                || module.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{module}::"));
            if !related {
                out.insert(target);
            }
        }
    }
    out
}

#[test]
fn no_import_cycle_between_source_files() {
    let sources = sources();
    let reexports = reexports(&sources);
    let graph: BTreeMap<&str, BTreeSet<String>> =
        sources.iter().map(|(m, code)| (m.as_str(), imports(m, code, &sources, &reexports))).collect();
    // The reader sees through re-exports: exposition's encoder reads the engine's snapshot types.
    assert!(graph["exposition::encode"].contains("engine::snapshot"), "{:?}", graph["exposition::encode"]);
    // Depth-first search; a module met again while it is still on the stack closes a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<&'a str, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| *s == m) {
            panic!("import cycle: {} -> {m}", stack[i..].join(" -> "));
        }
        stack.push(m);
        for next in graph.get(m).into_iter().flatten() {
            if let Some((key, _)) = graph.get_key_value(next.as_str()) {
                visit(key, graph, stack, done);
            }
        }
        stack.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn only_db_sends_sql_and_http_knows_no_sql_and_exposition_does_no_io() {
    for (module, code) in sources() {
        let sends_sql = ["batch_execute(", "client.query(", "query_one(", "query_typed", ".prepare("];
        if !module.starts_with("db") {
            for call in sends_sql {
                assert!(!code.contains(call), "{module} sends SQL ({call}); only db may");
            }
        }
        if module.starts_with("http") {
            assert!(!code.contains("tokio_postgres") && !code.contains("crate::db"), "{module} knows about SQL");
        }
        if module.starts_with("exposition") {
            for io in ["std::fs", "std::net", "tokio::net", "tokio::fs", "std::io::Read"] {
                assert!(!code.contains(io), "{module} does I/O ({io})");
            }
        }
    }
}

#[test]
fn runtime_code_has_no_unwrap_expect_or_panic() {
    for (module, code) in sources() {
        for call in [".unwrap()", ".expect(", "panic!(", "unreachable!(", "todo!(", "unimplemented!("] {
            assert!(!code.contains(call), "{module} calls {call} outside its tests");
        }
    }
}

/// `ONCE_TESTS` in `scripts/pg-versions.conf` names tests of this suite (as name prefixes), so a renamed test is
/// not silently run on every major again, and the catalogue, diagnostics and replication tests are never among
/// them.
#[test]
fn the_tests_run_on_one_major_only_are_tests_of_the_suite() {
    let main = crate::support::data::read("tests/it/main.rs");
    let modules: BTreeSet<&str> = main.lines().filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';')).collect();
    let once = crate::support::versions::words("ONCE_TESTS");
    assert!(!once.is_empty(), "ONCE_TESTS is empty");
    for prefix in &once {
        let (module, test) = prefix.split_once("::").unwrap_or_else(|| panic!("ONCE_TESTS: {prefix} is not module::"));
        assert!(modules.contains(module), "ONCE_TESTS names {prefix}, but {module} is no module of tests/it/main.rs");
        if !test.is_empty() {
            let text = crate::support::data::read(&format!("tests/it/{module}.rs"));
            assert!(
                text.contains(&format!("fn {test}")),
                "ONCE_TESTS names {prefix}, which starts no test of {module}"
            );
        }
        assert!(!["catalogue", "diagnostics", "replication"].contains(&module), "{prefix} depends on the major");
    }
}
