//! Progress display for long runs: an indicatif bar on stderr when stderr
//! is a terminal, nothing otherwise (logs and pipes stay clean).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A progress bar that turns itself off when nobody can see it.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// No display at all.
    pub fn hidden() -> Self {
        Self { bar: None }
    }

    /// A byte-count bar (with ETA when `total` is known), shown only when
    /// `enabled` and stderr is a terminal.
    pub fn bytes(enabled: bool, total: Option<u64>, what: &str) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = match total {
            Some(total) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
                bar.set_style(
                    ProgressStyle::with_template("{msg} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}")
                        .expect("valid template"),
                );
                bar
            }
        };
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        Self { bar: Some(bar) }
    }

    /// A counter of items (records, pages) with a rate, for unknown totals.
    pub fn items(enabled: bool, total: Option<u64>, what: &str) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(4));
        let template = if total.is_some() {
            "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}"
        } else {
            "{msg} {spinner} {human_pos} {per_sec} {elapsed}"
        };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        Self { bar: Some(bar) }
    }

    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    pub fn set_position(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    /// Changes the total (it may become known, or grow, during a run).
    pub fn set_length(&self, length: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(length);
        }
    }

    pub fn set_message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_owned());
        }
    }

    /// Prints a line above the bar (or plainly when there is no bar).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
