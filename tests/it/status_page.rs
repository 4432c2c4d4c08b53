//! The status page `/` in a real browser: headless Chromium renders it at a phone's size, the test reads
//! the DOM Chromium built and keeps a screenshot for people to look at
//! (`target/tmp/status-page/status-page.png`).

use crate::support::cluster::Db;
use crate::support::data::catalogue;
use crate::support::exporter::Exporter;
use crate::support::tools::{chromium, output};

#[test]
fn the_status_page_shows_the_failing_and_the_skipped_query_in_a_browser() {
    let db = Db::new("status_page");
    db.client().batch_execute("CREATE TABLE items (name text, qty int); INSERT INTO items VALUES ('x', 1)").unwrap();
    let exporter = Exporter::with(&catalogue("status_page")).db(&db.url).start();
    exporter.scrape();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&out).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = exporter.url("/");

    let dom = output(chromium(profile.path()).args(["--window-size=412,915", "--dump-dom", &url]));
    let dom = String::from_utf8_lossy(&dom.stdout);
    let row = |query: &str| {
        dom.split("<tr ")
            .find(|r| r.contains(&format!("<b>{query}</b>")))
            .unwrap_or_else(|| panic!("no row for {query}:\n{dom}"))
    };
    let broken = row("broken");
    assert!(broken.starts_with("class=\"failed\"") && broken.contains("failed: sql"), "{broken}");
    assert!(broken.contains("relation \"no_such_table\" does not exist"), "the error message is shown: {broken}");
    let skipped = row("needs_ext");
    assert!(
        skipped.starts_with("class=\"skipped\"") && skipped.contains("extension postgis not installed"),
        "{skipped}"
    );
    let fine = row("items");
    assert!(fine.starts_with("class=\"ok\""), "{fine}");
    assert!(dom.contains("1 of 1 target(s) up") && dom.contains("1 failed, 1 skipped"), "{dom}");

    let shot = out.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let taken = output(chromium(profile.path()).args([
        "--window-size=412,915",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]));
    assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (width, height) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((width, height), (412, 915), "the phone-sized screenshot");
    println!("screenshot: {}", shot.display());
}
