//! Reading a catalogue file and parsing it into the raw mirror.

use std::io::Read;
use std::path::Path;

use super::error::{Diagnostic, Error};
use super::keys::{self, Node};
use super::model::Catalogue;
use super::{raw, validate};
use crate::defaults::MAX_CATALOGUE_BYTES;

/// Reads and validates the catalogue at `path`.
pub fn load(path: &Path) -> Result<Catalogue, Error> {
    let file = path.display().to_string();
    let io = |cause| Error::Io { file: file.clone(), cause };
    // Opening a FIFO or a device would block or never end: only regular files are read.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file" };
        return Err(Error::Io { file, cause: std::io::Error::other(kind) });
    }
    let handle = std::fs::File::open(path).map_err(io)?;
    // Read at most one byte past the limit so a huge file is refused without reading it whole.
    let mut bytes = Vec::new();
    handle.take(MAX_CATALOGUE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_CATALOGUE_BYTES {
        return Err(Error::TooLarge { file, limit: MAX_CATALOGUE_BYTES });
    }
    let text = String::from_utf8(bytes).map_err(|e| Error::Syntax {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("catalogue is not valid UTF-8: {e}"),
    })?;
    parse(&text, &file)
}

/// Parses and validates catalogue text; `file` is only used in messages.
pub fn parse(text: &str, file: &str) -> Result<Catalogue, Error> {
    let syntax = |e: serde_saphyr::Error| {
        let (line, column, message) = located(&e);
        Error::Syntax { file: file.to_owned(), line, column, message }
    };
    let tree: Node = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(syntax)?;
    let unknown = keys::unknown(&tree);
    let raw: raw::File = match serde_saphyr::from_str_with_options(text, yaml_options()) {
        Ok(raw) => raw,
        // A misspelt required key also makes the typed parse fail ("missing field"): name the typo too.
        Err(e) if !unknown.is_empty() => {
            let (line, column, message) = located(&e);
            // Most likely a required key was misspelt: the block holding the unknown key nearest to its name
            // (else the unknown key nearest the error) is where it is missing.
            let missing = message.strip_prefix("missing field `").and_then(|m| m.split('`').next());
            let name = |d: &Diagnostic| d.field.rsplit('.').next().unwrap_or_default().to_owned();
            let nearest = match missing {
                Some(m) => unknown.iter().min_by_key(|d| keys::distance(&name(d), m)),
                None => unknown.iter().min_by_key(|d| d.line.abs_diff(line)),
            }
            .map(|d| d.field.as_str());
            // A top-level key (no parent, or a key that itself starts with a dot) is missing from the catalogue.
            let parent = nearest.and_then(|f| f.rsplit_once('.')).map(|(p, _)| p).filter(|p| !p.is_empty());
            let field = parent.unwrap_or("catalogue").to_owned();
            let mut diagnostics = unknown;
            diagnostics.push(Diagnostic { line, column, field, message });
            return Err(invalid(file, diagnostics));
        }
        Err(e) => return Err(syntax(e)),
    };
    match validate::catalogue(raw, file) {
        Ok(catalogue) if unknown.is_empty() => Ok(catalogue),
        Ok(_) => Err(invalid(file, unknown)),
        Err(mut diagnostics) => {
            diagnostics.extend(unknown);
            Err(invalid(file, diagnostics))
        }
    }
}

/// Where a parser error is (0 when unknown) and its message.
fn located(e: &serde_saphyr::Error) -> (u64, u64, String) {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    (line, column, syntax_message(e))
}

/// Every diagnostic, in file order.
fn invalid(file: &str, mut diagnostics: Vec<Diagnostic>) -> Error {
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Error::Invalid { file: file.to_owned(), diagnostics }
}

/// Parser limits: a catalogue is small, so anything alias-heavy or huge is hostile.
pub(super) fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_events = 200_000;
    budget.max_recorded_anchor_events = 50_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// The parser's message on one line, without its source snippet.
pub(crate) fn syntax_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or_default().trim();
    // The location is already in our prefix; drop the parser's own copy of it,
    // and its advice to the programmer about parser options.
    let first = first.rfind(" at line ").map_or(first, |i| &first[..i]);
    let first = first.find(", set DuplicateKeyPolicy").map_or(first, |i| &first[..i]);
    first.to_owned()
}
