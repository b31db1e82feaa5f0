//! Runs one file of the SDK compatibility suites (`tests/python`) against the binary this
//! `cargo test` just built.
//!
//! Python comes from `SWITCHYARD_PYTHON` when set; otherwise from the virtualenv at
//! `target/sdk-venv`, which is created (and given `tests/python/requirements.txt`) when it is
//! missing or its requirements changed, so a bare `cargo test` on a fresh machine runs the suites.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const REQUIREMENTS: &str = "tests/python/requirements.txt";
/// Written into the venv after a successful install: the requirements it was installed from.
const STAMP: &str = ".switchyard-requirements";

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `target/sdk-venv/bin/python`, creating the venv and installing the requirements if needed.
/// Two suites may ask at once (they are separate test binaries): the install is idempotent, and
/// the stamp is written only after it succeeded.
fn venv_python(root: &Path) -> PathBuf {
    let venv = root.join("target").join("sdk-venv");
    let python = venv.join("bin").join("python");
    let wanted = std::fs::read_to_string(root.join(REQUIREMENTS))
        .unwrap_or_else(|e| panic!("cannot read {REQUIREMENTS}: {e}"));
    let stamp = venv.join(STAMP);
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&*wanted) {
        return python;
    }
    if !python.exists() {
        eprintln!("creating {} for the SDK tests", venv.display());
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        );
    }
    eprintln!("installing {REQUIREMENTS} into {}", venv.display());
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                REQUIREMENTS,
            ])
            .current_dir(root),
        "pip install",
    );
    std::fs::write(&stamp, wanted).unwrap();
    python
}

/// `pytest tests/python/<file>`; `suite` names it in the log and the failure.
pub fn pytest(file: &str, suite: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = match std::env::var_os("SWITCHYARD_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => venv_python(root),
    };
    let path = format!("tests/python/{file}");
    let out = Command::new(&python)
        .args(["-m", "pytest", &path, "-q", "-p", "no:cacheprovider"])
        .current_dir(root)
        .env("SWITCHYARD_BIN", env!("CARGO_BIN_EXE_switchyard"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));

    // Written past the test harness's capture so that the Python results show in every run's log.
    let mut err = std::io::stderr().lock();
    err.write_all(format!("\n---- pytest {path} ----\n").as_bytes())
        .unwrap();
    err.write_all(&out.stdout).unwrap();
    err.write_all(&out.stderr).unwrap();
    err.flush().unwrap();
    drop(err);

    // Any non-zero status fails, including pytest's 5 ("no tests collected").
    assert!(
        out.status.success(),
        "the {suite} suite failed ({}); its output is above",
        out.status
    );
}
