//! Progress bars and human/JSON output.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use conservator_backup::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A bar that follows a [`Progress`] until dropped.
pub struct Bar {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    /// Show a byte bar for `p` unless disabled or stderr is not a terminal.
    pub fn bytes(p: &Arc<Progress>, label: &str, enabled: bool) -> Bar {
        if !enabled || !std::io::stderr().is_terminal() {
            return Bar { bar: None, task: None };
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>9} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        let (b, p) = (bar.clone(), p.clone());
        let task = tokio::spawn(async move {
            loop {
                b.set_length(Progress::get(&p.bytes_total).max(Progress::get(&p.bytes_done)));
                b.set_position(Progress::get(&p.bytes_done));
                let items = Progress::get(&p.items_done);
                let stored = Progress::get(&p.bytes_stored);
                b.set_message(format!("{items} files, {} stored", indicatif::HumanBytes(stored)));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Bar { bar: Some(bar), task: Some(task) }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Human byte size.
pub fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
