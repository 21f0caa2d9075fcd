//! Progress bars (indicatif) for hashing, uploading and soak waits, on a terminal only; in CI
//! the log lines say the same thing plainly.

use std::collections::HashMap;
use std::sync::Mutex;

use ferry_core::hooks::Announce;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), bars: Mutex::default() }
    }

    pub fn update(&self, a: &Announce<'_>) {
        let Ok(mut bars) = self.bars.lock() else { return };
        match a {
            Announce::Progress { task, done, total, bytes } => {
                let bar = bars.entry((*task).to_owned()).or_insert_with(|| {
                    let template = if *bytes {
                        "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
                    } else {
                        "{msg:30!} [{bar:30}] {elapsed_precise}"
                    };
                    let style =
                        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
                    let bar = self.multi.add(ProgressBar::new(*total).with_style(style));
                    bar.set_message((*task).to_owned());
                    bar
                });
                bar.set_length(*total);
                bar.set_position(*done);
            }
            Announce::ProgressDone { task } => {
                if let Some(bar) = bars.remove(*task) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}
