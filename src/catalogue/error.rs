//! Why a catalogue could not be loaded: I/O, syntax, or every rule it breaks.

/// One problem found in a catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// The field, as a path (`queries.connections.metrics[0].name`).
    pub field: String,
    /// What is wrong, lower-case, no trailing period.
    pub message: String,
}

/// Why a catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read catalogue: {cause}")]
    Io {
        /// The path as given.
        file: String,
        /// The underlying error (part of the message, not a separate source, so it is said once).
        cause: std::io::Error,
    },
    /// The file is larger than [`crate::defaults::MAX_CATALOGUE_BYTES`].
    #[error("{file}: catalogue is larger than {limit} bytes, refusing to parse it")]
    TooLarge {
        /// The path as given.
        file: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is not valid YAML or does not have the catalogue's shape.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The path as given.
        file: String,
        /// 1-based line, 0 when unknown.
        line: u64,
        /// 1-based column, 0 when unknown.
        column: u64,
        /// The parser's message.
        message: String,
    },
    /// The file parsed but breaks one or more rules.
    #[error("{}", render_diagnostics(file, diagnostics))]
    Invalid {
        /// The path as given.
        file: String,
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render_diagnostics(file: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = format!("{file}: {} problem(s) in catalogue", diagnostics.len());
    for d in diagnostics {
        let field = if d.field.is_empty() { String::new() } else { format!("{}: ", d.field) };
        out.push_str(&format!("\n{file}:{}:{}: {field}{}", d.line, d.column, d.message));
    }
    out
}
