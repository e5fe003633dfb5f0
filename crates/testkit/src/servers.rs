//! The servers that `scripts/servers.sh` starts, found through the environment variables it
//! exports, and their control commands.

/// The value of environment variable `name` (a server URL or a control command that
/// `scripts/servers.sh` exports). Without it the test is skipped with a printed reason, except
/// under CI (`CI` set), where a missing server is a failure.
///
/// # Panics
/// Under CI, when the variable is missing.
pub fn require_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "{name} is not set: CI must run the tests through scripts/test.sh, which starts the servers"
            )
        }
        _ => {
            eprintln!("skipped: {name} is not set (run through scripts/servers.sh to start the servers)");
            None
        }
    }
}

/// Runs a server control command exported by `scripts/servers.sh` (stop or start a server) and
/// checks that it succeeded.
///
/// # Panics
/// If the command cannot run or fails.
pub fn run_control(command: &str) {
    let status = std::process::Command::new(command).status().expect("running a server control command");
    assert!(status.success(), "{command} failed: {status}");
}

/// Runs a server control command exported by `scripts/servers.sh` with one argument (a port, for
/// the cluster node starter) and checks that it succeeded.
///
/// # Panics
/// If the command cannot run or fails.
pub fn run_control_with(command: &str, arg: &str) {
    let status =
        std::process::Command::new(command).arg(arg).status().expect("running a server control command");
    assert!(status.success(), "{command} {arg} failed: {status}");
}
