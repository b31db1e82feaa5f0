//! What the commands print. A closed pipe (`switchyard check | head -1`) is a normal end, not a
//! panic: the reader has what it wanted.
//!
//! Must not import anything of switchyard's: every command's output goes through it.

use std::io::Write;
use std::process::ExitCode;

/// `error: …` on stderr. A closed stderr is ignored: there is nowhere left to say it.
pub fn error(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "error: {message}");
}

/// Runs a command's printing to stdout and turns the outcome into its exit code: success, also
/// when the reader closed the pipe; failure, with a message, for any other write error.
pub fn print_to_stdout(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match f(&mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            error(format_args!("cannot write the output: {e}"));
            ExitCode::FAILURE
        }
    }
}
