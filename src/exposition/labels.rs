//! Label pairs rendered once, escaped for both text formats.
//!
//! A leaf module: `db` calls it while rows stream in, so every label set is
//! rendered once per execution and a cached result costs one copy per series
//! when it is encoded again.

/// Appends `name="value"` (escaped for both text formats) to `out`, after a comma if `out` is not empty.
pub fn push_label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Renders one label pair as `name="value"`.
pub fn render_label(name: &str, value: &str) -> String {
    let mut s = String::new();
    push_label(&mut s, name, value);
    s
}

/// Joins rendered label sets (`a="1"`, an optional `target="x"`, ...) with commas, skipping empty ones.
pub fn join<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(p);
    }
    out
}
