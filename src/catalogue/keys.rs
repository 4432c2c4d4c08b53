//! Unknown keys, all of them at once, each with a "did you mean".
//!
//! serde's `deny_unknown_fields` stops at the first unknown key. Instead the
//! file is also read as a bare tree of keys (with their positions) and walked
//! against the fields of the `raw` structs, which are taken from serde itself
//! (the list its derive passes to `deserialize_struct`), so the two can never
//! disagree.

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::error::Diagnostic;
use super::raw;

/// A YAML document reduced to its mappings' keys, with positions.
pub(super) enum Node {
    /// A mapping: key (with its position) → value.
    Map(IndexMap<Spanned<String>, Node>),
    /// A sequence.
    Seq(Vec<Node>),
    /// Anything else.
    Leaf,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = IndexMap::new();
        // A key that is not a string (a number, a list) is left to the typed parse to complain about.
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            out.insert(Spanned { value: key.value.0, referenced: key.referenced, defined: key.defined }, value);
        }
        Ok(Node::Map(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            out.push(item);
        }
        Ok(Node::Seq(out))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
}

/// A mapping key as text, whatever scalar it was written as.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyText, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, s: &str) -> Result<KeyText, E> {
                Ok(KeyText(s.to_owned()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<KeyText, E> {
                Ok(KeyText(n.to_string()))
            }
            fn visit_bool<E>(self, b: bool) -> Result<KeyText, E> {
                Ok(KeyText(b.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every unknown key of the catalogue tree `root`.
pub(super) fn unknown(root: &Node) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Node::Map(top) = root else { return out };
    check(top, fields::<raw::File>(), "", &mut out);
    let named = |key: &str| top.iter().find(|(k, _)| k.value == key).map(|(_, v)| v);
    if let Some(Node::Map(d)) = named("defaults") {
        check(d, fields::<raw::Defaults>(), "defaults", &mut out);
    }
    for (section, keys) in [("targets", fields::<raw::Target>()), ("files", fields::<raw::FileSet>())] {
        for (name, entry) in entries(named(section)) {
            check(entry, keys, &format!("{section}.{name}"), &mut out);
        }
    }
    for (name, query) in entries(named("queries")) {
        let path = format!("queries.{name}");
        check(query, fields::<raw::Query>(), &path, &mut out);
        if let Some((_, Node::Map(r))) = query.iter().find(|(k, _)| k.value == "requires") {
            check(r, fields::<raw::Requires>(), &format!("{path}.requires"), &mut out);
        }
        if let Some((_, Node::Seq(metrics))) = query.iter().find(|(k, _)| k.value == "metrics") {
            for (i, m) in metrics.iter().enumerate() {
                if let Node::Map(m) = m {
                    check(m, fields::<raw::Metric>(), &format!("{path}.metrics[{i}]"), &mut out);
                }
            }
        }
    }
    out
}

/// The mapping entries of a `name: {...}` section.
fn entries(section: Option<&Node>) -> impl Iterator<Item = (&str, &IndexMap<Spanned<String>, Node>)> {
    let map = match section {
        Some(Node::Map(m)) => Some(m),
        _ => None,
    };
    map.into_iter().flatten().filter_map(|(k, v)| match v {
        Node::Map(m) => Some((k.value.as_str(), m)),
        _ => None,
    })
}

fn check(map: &IndexMap<Spanned<String>, Node>, known: &[&str], path: &str, out: &mut Vec<Diagnostic>) {
    for key in map.keys().filter(|k| !known.contains(&k.value.as_str())) {
        let hint = match closest(&key.value, known) {
            Some(near) => format!("; did you mean `{near}`?"),
            None => format!("; known: {}", known.join(", ")),
        };
        out.push(Diagnostic {
            line: key.referenced.line(),
            column: key.referenced.column(),
            field: match (path.is_empty(), key.value.is_empty()) {
                // An empty key still names a field: `""`, as YAML would write it.
                (true, true) => "\"\"".to_owned(),
                (true, false) => key.value.clone(),
                (false, _) => format!("{path}.{}", key.value),
            },
            message: format!("unknown field `{}`{hint}", key.value),
        });
    }
}

/// The known name nearest to `word`, if it is near enough to be a typo.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let best = known.iter().map(|k| (distance(word, k), *k)).min()?;
    (best.0 <= 2.max(word.chars().count() / 4)).then_some(best.1)
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit.
pub(super) fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The field names serde's derive gives `T` (what it passes to `deserialize_struct`).
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut spy = FieldSpy(&[]);
    let _ = T::deserialize(&mut spy);
    spy.0
}

/// A deserializer that only records the field list of the struct asked for.
struct FieldSpy(&'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fields recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Stop {
        Stop
    }
}

impl<'de> Deserializer<'de> for &mut FieldSpy {
    type Error = Stop;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.0 = fields;
        Err(Stop)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_serde() {
        assert_eq!(fields::<raw::File>(), ["defaults", "targets", "queries", "files"]);
        assert!(fields::<raw::Query>().contains(&"allow_functions"));
        assert!(fields::<raw::Metric>().contains(&"type"), "the renamed field, as written in YAML");
    }

    #[test]
    fn typos_get_the_nearest_name() {
        let known = ["timeout", "lock_timeout", "ttl", "max_series", "refresh_ahead"];
        assert_eq!(closest("tiemout", &known), Some("timeout"));
        assert_eq!(closest("max_serie", &known), Some("max_series"));
        assert_eq!(closest("refresh-ahead", &known), Some("refresh_ahead"));
        assert_eq!(closest("colour", &known), None);
    }
}
