//! Generated documentation and golden outputs (`tests/golden/`) checked against what the code says now: a whole
//! file, or a marked section of one. With `UPDATE_DOCS` set in the environment the file is rewritten instead, so
//! one variable rewrites every expected output. A mismatch panics with a diff of the lines that differ.

use std::path::Path;
use std::sync::Mutex;

fn updating() -> bool {
    std::env::var_os("UPDATE_DOCS").is_some()
}

/// Checks the whole of `file` against `generated`.
pub fn check_file(file: &Path, generated: &str) {
    let current = std::fs::read_to_string(file).unwrap_or_default();
    if current == generated {
        return;
    }
    if updating() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, generated).unwrap();
        return;
    }
    panic!(
        "{} is out of date; if the change is intended, run `UPDATE_DOCS=1 cargo test --test it` and commit the result\n{}",
        file.display(),
        diff(&current, generated)
    );
}

/// The lines that differ between `committed` and `generated` as a unified diff (longest common
/// subsequence of lines), with three lines of context: `-` committed, `+` generated, with line numbers.
pub fn diff(committed: &str, generated: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (committed.lines().collect(), generated.lines().collect());
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    // Each line: ' ', '-' or '+', its line number on its side, the text.
    let mut ops: Vec<(char, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', j + 1, b[j]));
            (i, j) = (i + 1, j + 1);
        } else if j == b.len() || (i < a.len() && lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, a[i]));
            i += 1;
        } else {
            ops.push(('+', j + 1, b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    const SHOWN: usize = 80;
    let near_change =
        |k: usize| ops[k.saturating_sub(CONTEXT)..(k + CONTEXT + 1).min(ops.len())].iter().any(|o| o.0 != ' ');
    let mut out = String::from("--- committed\n+++ generated\n");
    let (mut shown, mut gap) = (0, false);
    for (k, (op, line, text)) in ops.iter().enumerate() {
        if !near_change(k) {
            gap = true;
            continue;
        }
        if gap {
            out.push_str("  ...\n");
            gap = false;
        }
        if shown == SHOWN {
            out.push_str("  (more differences not shown)\n");
            break;
        }
        out.push_str(&format!("{op} {line:>5} {text}\n"));
        shown += 1;
    }
    out
}

/// Checks the text between `<!-- NAME:start ... -->` and `<!-- NAME:end -->` in `file` against `generated`.
pub fn check_section(file: &Path, name: &str, generated: &str) {
    // Tests that rewrite sections of the same file (README.md) must not interleave.
    static REWRITE: Mutex<()> = Mutex::new(());
    let _one = REWRITE.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(file).unwrap();
    let start_marker = format!("<!-- {name}:start");
    let end_marker = format!("<!-- {name}:end -->");
    let start = text.find(&start_marker).unwrap_or_else(|| panic!("{file:?} has no {start_marker}"));
    let body_start = start + text[start..].find("-->").unwrap() + 3;
    let end = text.find(&end_marker).unwrap_or_else(|| panic!("{file:?} has no {end_marker}"));
    let wanted = format!("\n{}\n", generated.trim_end());
    if text[body_start..end] == wanted {
        return;
    }
    if updating() {
        std::fs::write(file, format!("{}{}{}", &text[..body_start], wanted, &text[end..])).unwrap();
        return;
    }
    panic!(
        "{file:?} section {name} is out of date; run `UPDATE_DOCS=1 cargo test --test it` and commit the result\n{}",
        diff(&text[body_start..end], &wanted)
    );
}
