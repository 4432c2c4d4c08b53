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
    // Runs of characters that need no escape are copied whole.
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_both_text_formats_and_pairs_joined_by_commas() {
        assert_eq!(render_label("a", "plain ünïcode"), "a=\"plain ünïcode\"");
        assert_eq!(render_label("a", "x\\y\"z\nw"), "a=\"x\\\\y\\\"z\\nw\"");
        assert_eq!(render_label("a", "\\\\\"\"\n\n"), "a=\"\\\\\\\\\\\"\\\"\\n\\n\"");
        assert_eq!(render_label("a", ""), "a=\"\"");
        let mut out = render_label("target", "t");
        push_label(&mut out, "datname", "d\"b");
        assert_eq!(out, "target=\"t\",datname=\"d\\\"b\"");
        assert_eq!(join(["", "a=\"1\"", "", "b=\"2\""]), "a=\"1\",b=\"2\"");
    }
}
