//! The progress bar of the transfer commands (`-put`, `-get`, `-cp`, `-appendToFile`). It is
//! drawn on stderr only when stderr is a terminal, and only once a transfer has lasted more
//! than a moment, so quick copies and piped or scripted runs print nothing extra.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a transfer runs before its bar appears.
const SHOW_AFTER: Duration = Duration::from_millis(700);

/// One transfer's bar (hidden until it has run for a moment).
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    shown: bool,
}

impl Progress {
    /// A bar for `total` bytes (unknown for stdin) labelled `name`.
    pub fn new(name: &str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::hidden()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
            };
            let template = if total.is_some() {
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{msg} {bytes} {bytes_per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(name.to_string());
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            shown: false,
        }
    }

    /// `n` more bytes moved.
    pub fn advance(&mut self, n: u64) {
        let Some(bar) = &self.bar else {
            return;
        };
        bar.inc(n);
        if !self.shown && self.started.elapsed() >= SHOW_AFTER {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
