//! Progress display for long runs: an indicatif bar on stderr when stderr
//! is a terminal, nothing otherwise (logs and pipes stay clean).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A progress bar that turns itself off when nobody can see it.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// The lines it is drawn with, when it is one of several.
    _group: Option<MultiProgress>,
}

impl Progress {
    /// No display at all.
    pub fn hidden() -> Self {
        Self { bar: None, _group: None }
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
        Self { bar: Some(bar), _group: None }
    }

    /// A counter of items (records, pages) with a rate, for unknown totals.
    pub fn items(enabled: bool, total: Option<u64>, what: &str) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(4));
        Self { bar: Some(items_bar(bar, what)), _group: None }
    }

    /// One item counter per name, drawn on lines of their own (a
    /// backfill's record types): each becomes a bar once its own total is
    /// known. All hidden when nobody can see them.
    pub fn items_per_kind(enabled: bool, names: &[&str]) -> Vec<Self> {
        if !enabled || !std::io::stderr().is_terminal() {
            return names.iter().map(|_| Self::hidden()).collect();
        }
        let group = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        names
            .iter()
            .map(|name| {
                let bar = group.add(ProgressBar::no_length());
                Self { bar: Some(items_bar(bar, name)), _group: Some(group.clone()) }
            })
            .collect()
    }

    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    pub fn set_position(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    /// Back to a counter: the total is not known (any more).
    pub fn unset_length(&self) {
        if let Some(bar) = &self.bar {
            bar.unset_length();
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

    /// Leaves the bar as it is, stopped (its work is done; others go on).
    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `bar` as an item counter: `{msg} {spinner} 1,234/5,678 910/s ETA 1m 2s`,
/// the total and ETA only while known (the total may become known, or
/// unknown, mid-run), the ETA after 10 s of its own.
fn items_bar(bar: ProgressBar, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg} {spinner} {wide_count} {rate} {eta_if_known}")
        .expect("valid template")
        .with_key("wide_count", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = match state.len() {
                Some(len) => write!(w, "{}/{}", thousands(state.pos()), thousands(len)),
                None => write!(w, "{}", thousands(state.pos())),
            };
        })
        // Whole items a second, not "61,744.8179/s".
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/s", thousands(state.per_sec().round() as u64));
        })
        .with_key("eta_if_known", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            if state.len().is_some_and(|len| len > state.pos()) && state.elapsed() >= Duration::from_secs(10) {
                let _ = write!(w, "ETA {}", crate::time::format_duration_ms(state.eta().as_millis() as i64));
            }
        });
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        for (n, text) in [(0, "0"), (999, "999"), (1000, "1,000"), (61_744, "61,744"), (1_234_567, "1,234,567")] {
            assert_eq!(super::thousands(n), text);
        }
    }
}
