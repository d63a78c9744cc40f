//! Many commands under one hold of the core lock: decided in order (each
//! sees the state the earlier ones left), each appended as its own atomic
//! frame, and all of them written with one `write`, synced by one fsync and
//! announced to the writer thread with one wake-up.

use crate::command::{Ack, Command, CommandLine};
use crate::error::{Error, LifecycleError, Result};

use super::append::Submit;
use super::{Pending, SessionJournal, lock};

/// The most commands one batch may hold: the core lock is held for the
/// whole batch, so a larger one would stall every other caller.
pub const BATCH_COMMANDS_MAX: usize = 100_000;

impl SessionJournal {
    /// Executes `lines` in order as one group and returns one answer per
    /// command, in the same order: a refusal (an unknown session, a busy
    /// key) answers that command and the rest go on. Every command is
    /// atomic on its own; the batch is not one transaction: a crash keeps
    /// a prefix of it (never a later command without an earlier one), and
    /// each answer completes once its command is durable, all of them with
    /// the same fsync when the batch is durable.
    ///
    /// `close` cannot be part of a batch (use [`SessionJournal::close`]);
    /// a batch over [`BATCH_COMMANDS_MAX`] commands is refused whole.
    pub fn execute_batch(&self, lines: Vec<CommandLine>) -> Result<Vec<Result<Pending<Ack>>>> {
        if lines.len() > BATCH_COMMANDS_MAX {
            let reason =
                format!("a batch of {} commands is over the limit of {BATCH_COMMANDS_MAX}", lines.len());
            return Err(LifecycleError::Invalid { reason }.into());
        }
        self.check_poison()?;
        let mut answers = Vec::with_capacity(lines.len());
        let mut core = lock(&self.inner.core);
        let turn = self.turn(&mut core)?;
        for line in lines {
            answers.push(match line.command {
                Command::Close { .. } => Err(Error::from(LifecycleError::Invalid {
                    reason: "close cannot be part of a batch: call close() on its own".into(),
                })),
                command => self
                    .prepare(command, line.at)
                    .and_then(|(command, at)| self.execute_in(&mut core, command, at, Submit::Staged)),
            });
        }
        // Always, even if a command failed: earlier ones are staged. In the
        // turn, with several writers: every frame is written inside one.
        self.inner.journal.commit_staged();
        drop(turn);
        drop(core);
        // A checkpoint due waits for the batch's fsync, so it comes after
        // the whole batch is staged, never in the middle of it.
        self.maybe_checkpoint(&mut lock(&self.inner.core));
        Ok(answers)
    }

    /// [`SessionJournal::execute_batch`] for a list in which some commands
    /// were already refused before they got here (malformed JSON, a
    /// command the caller does not allow): those keep their refusal, the
    /// others run as one batch, and the answers come back in the list's
    /// order, with the journal's refusal of the command at `i` made into
    /// an `E` by `refuse(i, error)`. The server's arrays and Python's
    /// `batch` both go through here.
    pub fn execute_batch_among<E>(
        &self,
        items: Vec<std::result::Result<CommandLine, E>>,
        refuse: impl Fn(usize, Error) -> E,
    ) -> Result<Vec<std::result::Result<Pending<Ack>, E>>> {
        let mut lines = Vec::with_capacity(items.len());
        let mut positions = Vec::with_capacity(items.len());
        let mut out: Vec<Option<std::result::Result<Pending<Ack>, E>>> = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Ok(line) => {
                    lines.push(line);
                    positions.push(i);
                    out.push(None);
                }
                Err(refused) => out.push(Some(Err(refused))),
            }
        }
        let answers = self.execute_batch(lines)?;
        assert_eq!(answers.len(), positions.len(), "execute_batch answers every command");
        for (i, answer) in positions.into_iter().zip(answers) {
            out[i] = Some(answer.map_err(|e| refuse(i, e)));
        }
        Ok(out.into_iter().flatten().collect())
    }
}
