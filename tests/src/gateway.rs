//! A real gateway process to kill: `session-gateway-child` (see its
//! source), which prints `started <id>` once each start is durable.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running gateway child and the lines it has not reported yet.
pub struct Gateway {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Gateway {
    /// Starts the child at `exe` (the test's
    /// `env!("CARGO_BIN_EXE_session-gateway-child")`) on the journal in
    /// `dir`, checkpointing every `checkpoint_every` events if given.
    pub fn spawn(exe: &str, dir: &Path, checkpoint_every: Option<u64>) -> Gateway {
        let mut command = Command::new(exe);
        command.arg(dir).stdout(Stdio::piped());
        if let Some(every) = checkpoint_every {
            command.env("BOOKEND_CHILD_CHECKPOINT_EVERY", every.to_string());
        }
        let mut child = command.spawn().expect("spawn the gateway child");
        let lines = BufReader::new(child.stdout.take().expect("the child's stdout")).lines();
        Gateway { child, lines }
    }

    /// Waits until it has reported `n` more durable starts; their ids.
    pub fn started(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let line = self.lines.next().expect("the gateway stopped early").expect("read a line");
                id_of(&line)
            })
            .collect()
    }

    /// Kills it with SIGKILL; the ids of the starts it reported before it
    /// died and that were not read yet.
    pub fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("kill the gateway child");
        self.child.wait().expect("wait for the gateway child");
        self.lines.map_while(Result::ok).map(|line| id_of(&line)).collect()
    }
}

fn id_of(line: &str) -> String {
    line.trim_start_matches("started ").to_string()
}
