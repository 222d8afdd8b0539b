//! A real headless browser for pages the cluster serves: Debian's Chromium (installed by
//! `scripts/setup.sh`), run once per page load with a throwaway profile.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one page load may take, Chromium's start included.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("Chromium is not installed: run scripts/setup.sh");
}

async fn run(extra: &[String], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().expect("a profile directory");
    let out = tokio::time::timeout(
        LOAD_TIMEOUT,
        tokio::process::Command::new(chromium())
            .args([
                "--headless",
                // Tests run as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("Chromium did not load {url} within {LOAD_TIMEOUT:?}"))
    .expect("run Chromium");
    assert!(out.status.success(), "Chromium on {url}: {out:?}");
    out
}

/// The document at `url` as the browser rendered it.
pub async fn rendered(url: &str) -> String {
    let out = run(&["--dump-dom".to_string()], url).await;
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A PNG screenshot of `url` at `path`.
pub async fn screenshot(url: &str, path: &Path) {
    run(
        &[
            "--window-size=1280,1400".to_string(),
            format!("--screenshot={}", path.display()),
        ],
        url,
    )
    .await;
    let png = std::fs::read(path).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot at {path:?}");
}

/// Where tests keep what people may want to look at afterwards (under target/, never
/// committed).
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifact directory");
    dir
}
