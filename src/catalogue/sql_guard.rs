//! The side-effect guard: refuses SQL that calls functions with side effects.
//!
//! A read-only transaction does not stop `pg_terminate_backend()` and its
//! kind, so this check, made when the catalogue is loaded, is what stands
//! between a catalogue mistake and a terminated backend. It works on tokens,
//! as PostgreSQL's own lexer would see them, so no spelling gets a call past
//! it: comments anywhere (`/* */` nested, `--`), whitespace and newlines
//! before the parenthesis, quoted identifiers (`"pg_terminate_backend"`,
//! `U&"..."` with escapes), schema-qualified names and any letter case. Names
//! inside string literals, dollar-quoted bodies and comments are not calls.
//!
//! It protects against mistakes; least privilege (a `pg_monitor` role without
//! `pg_signal_backend`) is the security boundary.

/// Functions a monitoring query must not call unless the catalogue says so (`allow_functions`).
/// A name ending in `_` (and `dblink`) covers every function it begins.
pub const SIDE_EFFECTING_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "set_config",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
    "pg_stat_statements_reset",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_drop_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "nextval",
    "setval",
    "txid_current",
    "pg_current_xact_id",
    "lo_",
    "dblink",
    "pg_file_write",
    "pg_logical_emit_message",
];

/// A side-effecting call found in a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The function, lower case.
    pub function: String,
    /// 0-based line of the call within the SQL text.
    pub line: usize,
    /// 0-based column (in characters) of the function name within that line.
    pub column: usize,
}

/// The first side-effecting function `sql` calls that is not in `allowed` (lower-case names).
pub fn side_effecting_call(sql: &str, allowed: &[String]) -> Option<Call> {
    let tokens = Lexer::new(sql).tokens();
    tokens.windows(2).find_map(|pair| match (&pair[0].kind, &pair[1].kind) {
        (Kind::Name(name), Kind::Open) if is_denied(name) && !allowed.iter().any(|a| a == name) => {
            let before = &sql[..pair[0].start];
            let line = before.matches('\n').count();
            let column = before.rsplit('\n').next().unwrap_or_default().chars().count();
            Some(Call { function: name.clone(), line, column })
        }
        _ => None,
    })
}

/// Why `sql` is not one read-only statement, if it is not: several statements, a statement that
/// is not a read (only `SELECT`, `WITH ... SELECT`, `VALUES`, `TABLE` and `SHOW` are), a
/// data-modifying `WITH`, `SELECT ... INTO` or `FOR UPDATE`/`FOR SHARE` row locks. Such a query
/// would fail on every scrape in the read-only transaction; this says so when it is loaded.
pub fn statement_problem(sql: &str) -> Option<String> {
    let tokens = Lexer::new(sql).tokens();
    let statements: Vec<&[Token]> = tokens.split(|t| t.kind == Kind::Semicolon).filter(|s| !s.is_empty()).collect();
    let statement = match statements.as_slice() {
        [] => return Some("no statement".to_owned()),
        [one] => *one,
        several => return Some(format!("{} statements; a query is exactly one", several.len())),
    };
    let word = |i: usize| match statement.get(i).map(|t| &t.kind) {
        Some(Kind::Name(n)) => n.as_str(),
        _ => "",
    };
    if !matches!(statement[0].kind, Kind::Open) && !matches!(word(0), "select" | "with" | "values" | "table" | "show") {
        let first = match word(0) {
            "" => "it".to_owned(),
            w => w.to_uppercase(),
        };
        return Some(format!("{first} is not a read: a query is SELECT, WITH ... SELECT, VALUES, TABLE or SHOW"));
    }
    for i in 0..statement.len() {
        let writes = match (word(i), word(i + 1)) {
            ("delete", "from") => Some("DELETE"),
            ("insert" | "merge", "into") => Some(if word(i) == "insert" { "INSERT" } else { "MERGE" }),
            ("update", _) if (i + 2..i + 6).any(|j| word(j) == "set") && word(i.wrapping_sub(1)) != "for" => {
                Some("UPDATE")
            }
            _ => None,
        };
        if let Some(verb) = writes {
            return Some(format!("{verb} changes data; a query only reads"));
        }
        if word(i) == "into" {
            return Some("SELECT ... INTO creates a table; a query only reads".to_owned());
        }
        if word(i) == "for" && matches!(word(i + 1), "update" | "share" | "no" | "key") {
            return Some("FOR UPDATE/SHARE locks rows; a query only reads".to_owned());
        }
    }
    None
}

/// Whether `sql` has a top-level `ORDER BY`, the one that orders the rows a query returns: not one
/// inside parentheses (a window's `OVER (ORDER BY ...)`, an aggregate's, a sub-select's or a CTE's),
/// nor in a literal or a comment.
pub fn has_order_by(sql: &str) -> bool {
    let mut depth = 0usize;
    let mut previous_was_order = false;
    for token in Lexer::new(sql).tokens() {
        let is = |word: &str| matches!(&token.kind, Kind::Name(n) if n == word);
        if depth == 0 && previous_was_order && is("by") {
            return true;
        }
        previous_was_order = depth == 0 && is("order");
        match token.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether `function` (lower case) is on the deny list.
fn is_denied(function: &str) -> bool {
    SIDE_EFFECTING_FUNCTIONS
        .iter()
        .any(|f| if f.ends_with('_') || *f == "dblink" { function.starts_with(f) } else { function == *f })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// An identifier or keyword, quoted or not, folded to lower case (quoted names too: refusing
    /// `"PG_TERMINATE_BACKEND"()` as well costs nothing).
    Name(String),
    /// `(`
    Open,
    /// `)`
    Close,
    /// `;`
    Semicolon,
    /// Anything else that is not a comment, a literal or white space.
    Other,
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    /// Byte offset in the SQL text.
    start: usize,
}

/// Just enough of PostgreSQL's lexer to tell names, parentheses, literals and comments apart.
struct Lexer<'a> {
    sql: &'a str,
    chars: Vec<(usize, char)>,
    at: usize,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Lexer<'a> {
        Lexer { sql, chars: sql.char_indices().collect(), at: 0 }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).map(|&(_, c)| c)
    }

    fn offset(&self) -> usize {
        self.chars.get(self.at).map_or(self.sql.len(), |&(i, _)| i)
    }

    fn tokens(mut self) -> Vec<Token> {
        let mut out = Vec::new();
        while let Some(c) = self.peek(0) {
            let start = self.offset();
            let kind = match c {
                c if c.is_whitespace() => {
                    self.at += 1;
                    continue;
                }
                '-' if self.peek(1) == Some('-') => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.at += 1;
                    }
                    continue;
                }
                '/' if self.peek(1) == Some('*') => {
                    self.block_comment();
                    continue;
                }
                '\'' => {
                    self.string(false);
                    Kind::Other
                }
                '"' => Kind::Name(self.quoted_name(false)),
                '$' if self.dollar_quote() => Kind::Other,
                '(' => {
                    self.at += 1;
                    Kind::Open
                }
                ')' => {
                    self.at += 1;
                    Kind::Close
                }
                ';' => {
                    self.at += 1;
                    Kind::Semicolon
                }
                c if c == 'U' || c == 'u' => match (self.peek(1), self.peek(2)) {
                    (Some('&'), Some('"')) => {
                        self.at += 2;
                        Kind::Name(self.quoted_name(true))
                    }
                    (Some('&'), Some('\'')) => {
                        self.at += 2;
                        self.string(false);
                        Kind::Other
                    }
                    _ => self.word(),
                },
                c if is_name_start(c) => self.word(),
                _ => {
                    self.at += 1;
                    Kind::Other
                }
            };
            out.push(Token { kind, start });
        }
        out
    }

    /// An identifier or keyword; a one-letter string prefix (`E'...'`, `B'...'`, `X'...'`, `N'...'`) makes a literal.
    fn word(&mut self) -> Kind {
        let from = self.at;
        while self.peek(0).is_some_and(is_name_char) {
            self.at += 1;
        }
        let word: String = self.chars[from..self.at].iter().map(|&(_, c)| c).collect::<String>().to_lowercase();
        if self.peek(0) == Some('\'') && matches!(word.as_str(), "e" | "b" | "x" | "n") {
            self.string(word == "e");
            return Kind::Other;
        }
        Kind::Name(word)
    }

    /// Skips a `'...'` literal (`''` inside; with `backslashes`, `\'` too).
    fn string(&mut self, backslashes: bool) {
        self.at += 1;
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match c {
                '\\' if backslashes => self.at += 1,
                '\'' if self.peek(0) == Some('\'') => self.at += 1,
                '\'' => return,
                _ => {}
            }
        }
    }

    /// A `"..."` identifier (`""` inside); with `unicode`, `U&"..."` escapes (`\XXXX`, `\+XXXXXX`, and a
    /// `UESCAPE 'c'` clause choosing another escape character).
    fn quoted_name(&mut self, unicode: bool) -> String {
        self.at += 1;
        let mut raw = String::new();
        while let Some(c) = self.peek(0) {
            self.at += 1;
            if c == '"' {
                if self.peek(0) == Some('"') {
                    self.at += 1;
                } else {
                    break;
                }
            }
            raw.push(c);
        }
        if !unicode {
            return raw.to_lowercase();
        }
        let escape = self.uescape().unwrap_or('\\');
        unescape_unicode(&raw, escape).to_lowercase()
    }

    /// A `UESCAPE 'c'` clause after a `U&` literal, consumed if present.
    fn uescape(&mut self) -> Option<char> {
        let mut ahead = 0;
        while self.peek(ahead).is_some_and(char::is_whitespace) {
            ahead += 1;
        }
        let word: String = (0..7).filter_map(|i| self.peek(ahead + i)).collect();
        if !word.eq_ignore_ascii_case("uescape") {
            return None;
        }
        ahead += 7;
        while self.peek(ahead).is_some_and(char::is_whitespace) {
            ahead += 1;
        }
        match (self.peek(ahead), self.peek(ahead + 1), self.peek(ahead + 2)) {
            (Some('\''), Some(c), Some('\'')) => {
                self.at += ahead + 3;
                Some(c)
            }
            _ => None,
        }
    }

    /// Skips a dollar-quoted body (`$$...$$`, `$tag$...$tag$`); false (nothing consumed) if `$` starts none.
    fn dollar_quote(&mut self) -> bool {
        let mut end = 1;
        while self.peek(end).is_some_and(|c| is_name_char(c) && c != '$') {
            end += 1;
        }
        let tag_ok = self.peek(end) == Some('$') && !self.peek(1).is_some_and(|c| c.is_ascii_digit());
        if !tag_ok {
            return false;
        }
        let tag: String = (0..=end).filter_map(|i| self.peek(i)).collect();
        let body_from = self.offset() + tag.len();
        match self.sql[body_from..].find(&tag) {
            Some(i) => {
                let close = body_from + i + tag.len();
                self.at = self.chars.partition_point(|&(o, _)| o < close);
            }
            None => self.at = self.chars.len(),
        }
        true
    }

    fn block_comment(&mut self) {
        self.at += 2;
        let mut depth = 1;
        while depth > 0 {
            match (self.peek(0), self.peek(1)) {
                (Some('/'), Some('*')) => {
                    depth += 1;
                    self.at += 2;
                }
                (Some('*'), Some('/')) => {
                    depth -= 1;
                    self.at += 2;
                }
                (Some(_), _) => self.at += 1,
                (None, _) => return,
            }
        }
    }
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Resolves `\XXXX` and `\+XXXXXX` escapes (with `escape` for `\`); `\\` is the escape itself.
fn unescape_unicode(raw: &str, escape: char) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != escape {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let (digits, skip) = if chars.get(i + 1) == Some(&'+') { (6, 2) } else { (4, 1) };
        let hex: String = chars.iter().skip(i + skip).take(digits).collect();
        match u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == digits).and_then(char::from_u32) {
            Some(c) => {
                out.push(c);
                i += skip + digits;
            }
            None => {
                // `\\` is an escaped escape character; anything else is kept as written.
                out.push(escape);
                i += if chars.get(i + 1) == Some(&escape) { 2 } else { 1 };
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
