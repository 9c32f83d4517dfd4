//! Processes started inside a test-bed namespace (and cgroup), stopped on drop.

use crate::cgroup::Cgroup;
use crate::netns::{Netns, NetnsError};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a waiting loop looks at a child again.
const POLL: Duration = Duration::from_millis(10);

/// Somewhere a process can run: a network namespace and, optionally, a cgroup.
pub trait Place {
    /// The network namespace processes run in.
    fn netns(&self) -> &Netns;
    /// The cgroup processes are moved into, if any.
    fn cgroup(&self) -> Option<&Cgroup>;
}

impl Place for Netns {
    fn netns(&self) -> &Netns {
        self
    }
    fn cgroup(&self) -> Option<&Cgroup> {
        None
    }
}

/// Errors of starting and waiting for processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The place's namespace could not be opened.
    #[error("cannot prepare to enter the namespace")]
    Netns(#[from] NetnsError),
    /// The cgroup's process list could not be opened.
    #[error("cannot open {path}")]
    Cgroup {
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("cannot wait for {program}")]
    Wait {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The program ran longer than allowed and was killed.
    #[error("{program} did not finish within {timeout:?} and was killed; stderr: {stderr}")]
    Timeout {
        /// The program.
        program: String,
        /// The time it was given.
        timeout: Duration,
        /// What it wrote to stderr.
        stderr: String,
    },
}

/// Makes `command` start inside `place`: the child enters the place's network namespace
/// and moves itself into the place's cgroup before it executes the program.
pub fn confine(command: &mut Command, place: &(impl Place + ?Sized)) -> Result<(), ProcessError> {
    let netns = place.netns().open()?;
    let procs = place
        .cgroup()
        .map(|cgroup| {
            let path = cgroup.procs_file();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| ProcessError::Cgroup { path, source })
        })
        .transpose()?;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed. It calls setns(2) and write(2) through nix's
    // thin wrappers on file descriptors opened above, allocates nothing and takes no lock.
    // Writing "0" to cgroup.procs moves the writing process itself (cgroup v2).
    unsafe {
        command.pre_exec(move || {
            setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
            if let Some(procs) = &procs {
                nix::unistd::write(procs.as_fd(), b"0")?;
            }
            Ok(())
        });
    }
    Ok(())
}

fn program_name(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

/// Starts `command` inside `place`, in a process group of its own, so a Ctrl-C at the
/// terminal reaches only the test or demo, which then stops its children in order.
pub fn spawn(mut command: Command, place: &(impl Place + ?Sized)) -> Result<Process, ProcessError> {
    confine(&mut command, place)?;
    command.process_group(0);
    let program = program_name(&command);
    let child = command.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    Ok(Process {
        program,
        child: Some(child),
    })
}

/// What a finished program printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs `command` inside `place` with `stdin` as input, and waits for it to finish
/// within `timeout` (killing it after that).
pub fn run(
    mut command: Command,
    place: &(impl Place + ?Sized),
    stdin: &[u8],
    timeout: Duration,
) -> Result<Finished, ProcessError> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = spawn(command, place)?;
    let child = process.child.as_mut().expect("a new process has its child");
    let mut input = child.stdin.take().expect("stdin is piped");
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let stdin = stdin.to_vec();
    let program = process.program.clone();
    std::thread::scope(|scope| {
        // The child may exit without reading its input: a write error is not ours to report.
        scope.spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&stdin);
        });
        let stdout = scope.spawn(move || read_all(&mut out));
        let stderr = scope.spawn(move || read_all(&mut err));
        let status = process.wait_timeout(timeout);
        if status
            .as_ref()
            .is_err_and(|e| matches!(e, ProcessError::Timeout { .. }))
        {
            process.kill();
        }
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        match status {
            Ok(status) => Ok(Finished {
                status,
                stdout,
                stderr,
            }),
            Err(ProcessError::Timeout { .. }) => Err(ProcessError::Timeout {
                program,
                timeout,
                stderr,
            }),
            Err(e) => Err(e),
        }
    })
}

fn read_all(pipe: &mut impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A running child process; killed (and reaped) on drop if still running.
#[derive(Debug)]
pub struct Process {
    program: String,
    child: Option<Child>,
}

impl Process {
    /// The process id, while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The child, for access to its pipes.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        match self.child.as_mut() {
            None => Ok(None),
            Some(child) => child.try_wait().map_err(|source| ProcessError::Wait {
                program: self.program.clone(),
                source,
            }),
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                self.child = None;
                return Ok(status);
            }
            if self.child.is_none() {
                return Err(ProcessError::Wait {
                    program: self.program.clone(),
                    source: std::io::Error::other("the process was already reaped"),
                });
            }
            if Instant::now() >= deadline {
                return Err(ProcessError::Timeout {
                    program: self.program.clone(),
                    timeout,
                    stderr: String::new(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` to the process, if it still runs.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL if it has not exited after `grace`.
    /// Returns how it ended, or `None` if it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        match self.wait_timeout(grace) {
            Ok(status) => Some(status),
            Err(_) => {
                self.kill();
                None
            }
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
