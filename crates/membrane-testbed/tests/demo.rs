//! `membrane-demo` (what `cargo xtask demo` runs) to completion with `--duration`: two
//! nodes on etcd running examples/, the allowed paths answered and the refused ones
//! refused, status, Services, connectivity and live flows shown, and afterwards nothing
//! it created left: namespaces, cgroups, pin directories, state directories, processes.
//!
//! Needs root, bpffs, cgroup v2 and Debian's etcd-server (`cargo xtask test` provides them).

use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's own steps are bounded; this bounds the whole run.
const RUN_LIMIT: Duration = Duration::from_secs(400);

/// Every process command line on the machine.
fn command_lines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .collect()
}

#[test]
fn the_demo_runs_two_nodes_to_completion_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_membrane-demo"))
        .args(["--duration", "3", "--inventory"])
        .arg(&inventory)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not end within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{stdout}\n{stderr}");

    for expected in [
        "[8/8]",
        "bring up 2 node(s)",
        "etcd at http://",
        "frontend -> api Service (HTTP)",
        "$ membrane status",
        "KVStore:               Ok etcd at http://",
        "$ membrane get services",
        "[pass] pod-to-pod/cross-node",
        "[pass] policy/refuse",
        "FORWARDED",
        "done: nothing the demo created is left",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    assert_eq!(
        stdout.matches("connects, as it should").count(),
        4,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("refused, as it should").count(),
        2,
        "{stdout}"
    );
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    assert!(!stdout.contains("[FAIL]"), "{stdout}");

    let created: Value = serde_json::from_slice(&std::fs::read(&inventory).unwrap()).unwrap();
    let paths: Vec<&str> = ["netns", "cgroups", "pin_dirs", "state_dirs"]
        .iter()
        .flat_map(|kind| created[kind].as_array().unwrap())
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        paths.len() >= 2 + 2 + 2 + 8,
        "namespaces of the outside, two nodes and eight pods: {created:#}"
    );
    for path in &paths {
        assert!(!Path::new(path).exists(), "{path} is left after the demo");
    }
    let state_dirs: Vec<&str> = created["state_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let survivors: Vec<String> = command_lines()
        .into_iter()
        .filter(|line| state_dirs.iter().any(|dir| line.contains(dir)))
        .collect();
    assert!(survivors.is_empty(), "processes left: {survivors:?}");
}
