//! The two exposition formats and how a request picks one.
//!
//! `Accept` is read with its weights: the highest-weighted format we support
//! wins (OpenMetrics 1.0.0 or 0.0.1; the classic text format 0.0.4 or 1.0.0),
//! a wildcard or nothing we support gets the classic text format, which
//! every scraper and every human reads. Our metric names are all valid
//! legacy names, so OpenMetrics is labelled `escaping=underscores`, as
//! Prometheus 3 expects of text formats from version 1.0.0 on.

/// Content type of OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";
/// Content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`# EOF`-terminated).
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    PrometheusText,
}

impl Format {
    /// The format `accept` (an HTTP `Accept` header) prefers among those we serve.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best: Option<(f32, Format)> = None;
        for range in accept.unwrap_or_default().split(',') {
            let Some((format, q)) = media_range(range) else { continue };
            // Strictly greater: among equal weights the first listed wins, as the client wrote them.
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::PrometheusText, |(_, f)| f)
    }

    /// The `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// The format one media range of an `Accept` header asks for, with its weight; `None` if we do not serve it.
fn media_range(range: &str) -> Option<(Format, f32)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    let (mut q, mut version) = (1.0f32, None);
    for param in parts {
        let Some((key, value)) = param.split_once('=') else { continue };
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "q" => q = value.parse().ok().filter(|q: &f32| (0.0..=1.0).contains(q))?,
            "version" => version = Some(value.to_owned()),
            _ => {}
        }
    }
    let format = match (media.as_str(), version.as_deref()) {
        ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => Format::OpenMetrics,
        ("text/plain", None | Some("0.0.4" | "1.0.0")) | ("text/*" | "*/*", _) => Format::PrometheusText,
        _ => return None,
    };
    Some((format, q))
}
