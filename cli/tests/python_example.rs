//! The Python integration example works against a real `bookend serve`:
//! the standard-library client, a resuming SSE consumer, and the hermes-style
//! hook adapter (examples/python/test_example.py, run with the machine's
//! python3). It is what a Python gateway would actually run.

use std::process::Command;

#[test]
fn the_python_example_passes_against_a_real_server() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python/test_example.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--bookend", env!("CARGO_BIN_EXE_bookend")])
        .output()
        .expect("python3 must be installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
