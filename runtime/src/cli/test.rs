//! `kefu test DIR`: runs the bot's conversation tests (`DIR/tests/*.yaml`) through the
//! production engine, without a server. Exit codes: 0 all passed, 1 a test failed or the bot
//! or a test file has errors (printed as `file:line:col: message` with a hint).

use std::path::Path;
use std::process::ExitCode;

use kefu_runtime::flowtest::{self, FlowTestError, RunOptions};

/// Runs the tests and prints the report (stdout) or the errors (stderr).
pub(crate) fn run(dir: &Path, name: Option<String>) -> ExitCode {
    let options = RunOptions { name_filter: name };
    match flowtest::run_dir(dir, &options) {
        Ok(summary) => {
            print!("{}", summary.render());
            if summary.failed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e @ FlowTestError::Bot(_)) => {
            eprintln!("the bot in {} does not load:\n{e}", dir.display());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
