//! A strict checker for the exposition text the exporter writes, written from
//! the OpenMetrics 1.0 ABNF (the parts the exporter uses: metric names, label
//! escapes, HELP escapes, values including NaN/+Inf/-Inf, `# EOF` last) and
//! the Prometheus text format 0.0.4 rules.
//!
//! It is also the tests' one reader of sample lines: [`parse_sample`] serves
//! both this checker and `support::exposition::Metrics`.
//!
//! Pure std, no dependencies: the cargo-fuzz targets under `fuzz/` include
//! this file with `#[path]`.

use std::collections::HashSet;

/// Which grammar to check against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text004,
}

/// One sample as read back: metric name, labels with their values unescaped, the value token.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: String,
}

impl Sample {
    /// The value as a number (`+Inf`, `-Inf` and `NaN` included).
    pub fn number(&self) -> f64 {
        match self.value.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("value {other:?} is not a number")),
        }
    }
}

const TYPES_OM: &[&str] =
    &["counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown"];
const TYPES_004: &[&str] = &["counter", "gauge", "histogram", "summary", "untyped"];

fn is_metricname(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_labelname(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// `number` of the OpenMetrics ABNF (ABNF strings are case-insensitive).
fn is_om_number(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if lower == "nan" {
        return true;
    }
    if let Some(rest) = lower.strip_prefix('+').or_else(|| lower.strip_prefix('-'))
        && (rest == "inf" || rest == "infinity")
    {
        return true;
    }
    is_realnumber(s)
}

/// `realnumber`: [sign] digits [. digits] [e [sign] digits], at least one digit in the mantissa.
fn is_realnumber(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// What Go's `strconv.ParseFloat` (used by Prometheus for 0.0.4) accepts, restricted to what an encoder should write.
fn is_004_number(s: &str) -> bool {
    matches!(s, "NaN" | "+Inf" | "-Inf") || is_realnumber(s)
}

/// Reads an escaped string up to (not including) `end`, returning the unescaped text and the rest after `end`.
/// `quote_escape`: whether `\"` is a legal escape. A raw LF is never legal.
fn unescape(s: &str, end: Option<char>, quote_escape: bool) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, '"')) if quote_escape => out.push('"'),
                Some((_, other)) => return Err(format!("illegal escape \\{other:?}")),
                None => return Err("backslash at end of string".into()),
            },
            '\n' => return Err("raw line feed inside a string".into()),
            c if Some(c) == end => return Ok((out, &s[i + c.len_utf8()..])),
            '"' if end.is_none() && quote_escape => return Err("unescaped double quote in HELP".into()),
            c => out.push(c),
        }
    }
    match end {
        None => Ok((out, "")),
        Some(e) => Err(format!("missing closing {e:?}")),
    }
}

/// Parses one sample line (without its LF).
pub fn parse_sample(line: &str, dialect: Dialect) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("sample without value")?;
    let name = &line[..name_end];
    if !is_metricname(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        if let Some(r) = rest.strip_prefix('}') {
            rest = r;
        } else {
            loop {
                let eq = rest.find('=').ok_or("label without =")?;
                let lname = &rest[..eq];
                if !is_labelname(lname) {
                    return Err(format!("invalid label name {lname:?}"));
                }
                let r = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
                let (value, r) = unescape(r, Some('"'), true)?;
                if labels.iter().any(|(n, _): &(String, String)| n == lname) {
                    return Err(format!("label {lname:?} twice"));
                }
                labels.push((lname.to_owned(), value));
                if let Some(r) = r.strip_prefix(',') {
                    rest = r;
                    // OpenMetrics allows no trailing comma; 0.0.4 tolerates one but an encoder should not write it.
                    continue;
                }
                rest = r.strip_prefix('}').ok_or("labels not closed by }")?;
                break;
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no single space before the value")?;
    let mut parts = rest.split(' ');
    let value = parts.next().unwrap_or_default();
    let ok = match dialect {
        Dialect::OpenMetrics => is_om_number(value),
        Dialect::Text004 => is_004_number(value),
    };
    if !ok {
        return Err(format!("invalid value {value:?}"));
    }
    if let Some(ts) = parts.next()
        && !is_realnumber(ts)
    {
        return Err(format!("invalid timestamp {ts:?}"));
    }
    if parts.next().is_some() {
        return Err("trailing fields after value and timestamp".into());
    }
    Ok(Sample { name: name.to_owned(), labels, value: value.to_owned() })
}

struct Family {
    name: String,
    kind: Option<String>,
    help: bool,
    has_samples: bool,
    series: HashSet<(String, Vec<(String, String)>)>,
}

/// Checks `text` strictly; returns every sample, labels unescaped, in order.
pub fn check(text: &str, dialect: Dialect) -> Result<Vec<Sample>, String> {
    check_with_help(text, dialect).map(|(samples, _)| samples)
}

/// Every sample and every family's (name, HELP text), as read back.
pub type Parsed = (Vec<Sample>, Vec<(String, String)>);

/// Like [`check`], and also returns each family's HELP text, unescaped.
pub fn check_with_help(text: &str, dialect: Dialect) -> Result<Parsed, String> {
    let body = match dialect {
        Dialect::OpenMetrics => {
            text.strip_suffix("# EOF\n").or_else(|| text.strip_suffix("# EOF")).ok_or("does not end with # EOF")?
        }
        Dialect::Text004 => text,
    };
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("last line has no line feed".into());
    }
    let mut samples = Vec::new();
    let mut helps = Vec::new();
    let mut seen_families: HashSet<String> = HashSet::new();
    let mut current: Option<Family> = None;
    // Split on LF only: a CR is an ordinary character in HELP text and label values.
    for (n, line) in body.split_terminator('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if dialect == Dialect::OpenMetrics && line == "# EOF" {
            return Err(at("# EOF before the end".into()));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').ok_or_else(|| at("comment without a metric name".into()))?;
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !is_metricname(name) {
                return Err(at(format!("invalid metric name {name:?}")));
            }
            let same = current.as_ref().is_some_and(|f| f.name == name && !f.has_samples);
            if !same {
                if !seen_families.insert(name.to_owned()) {
                    return Err(at(format!("family {name:?} appears twice (not contiguous)")));
                }
                current = Some(Family {
                    name: name.to_owned(),
                    kind: None,
                    help: false,
                    has_samples: false,
                    series: HashSet::new(),
                });
            }
            let f = current.as_mut().unwrap();
            match keyword {
                "HELP" => {
                    if f.help {
                        return Err(at("second HELP".into()));
                    }
                    f.help = true;
                    let (help, _) = unescape(arg, None, dialect == Dialect::OpenMetrics).map_err(at)?;
                    helps.push((name.to_owned(), help));
                }
                "TYPE" => {
                    if f.kind.is_some() {
                        return Err(at("second TYPE".into()));
                    }
                    let known = if dialect == Dialect::OpenMetrics { TYPES_OM } else { TYPES_004 };
                    if !known.contains(&arg) {
                        return Err(at(format!("unknown type {arg:?}")));
                    }
                    if dialect == Dialect::OpenMetrics && arg == "counter" && name.ends_with("_total") {
                        return Err(at("an OpenMetrics counter family name must not end in _total".into()));
                    }
                    f.kind = Some(arg.to_owned());
                }
                "UNIT" if dialect == Dialect::OpenMetrics => {}
                other if dialect == Dialect::OpenMetrics => return Err(at(format!("unknown descriptor {other:?}"))),
                _ => {} // 0.0.4: any other comment is ignored
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("comment not of the form \"# KEYWORD\"".into()));
        }
        let s = parse_sample(line, dialect).map_err(at)?;
        let fam = current.as_mut().ok_or_else(|| at("sample before any TYPE".into()))?;
        let kind = fam.kind.clone().ok_or_else(|| at("sample of a family without TYPE".into()))?;
        let belongs = match (dialect, kind.as_str()) {
            (Dialect::OpenMetrics, "counter") => {
                s.name == format!("{}_total", fam.name) || s.name == format!("{}_created", fam.name)
            }
            _ => s.name == fam.name,
        };
        if !belongs {
            return Err(at(format!("sample {:?} does not belong to family {:?} ({kind})", s.name, fam.name)));
        }
        let mut key_labels = s.labels.clone();
        key_labels.sort();
        if !fam.series.insert((s.name.clone(), key_labels)) {
            return Err(at("duplicate series".into()));
        }
        fam.has_samples = true;
        samples.push(s);
    }
    Ok((samples, helps))
}
