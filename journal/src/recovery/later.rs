//! Evidence the caller is still gathering while recovery reads the
//! segments: the session journal opens its projection store (whose
//! checkpoint is evidence) on another thread beside recovery.

use super::{Broken, Evidence};
use crate::error::Result;

/// The caller's evidence, asked for once: before recovery decides what
/// damage at the end of the last segment is, or before it checks that
/// nothing durable is missing. Nothing recovery does because of evidence
/// happens before the evidence is in; what it does before (reading and
/// checking segments, removing the temporary segments of an interrupted
/// creation) does not depend on it.
pub struct LaterEvidence<'a> {
    ask: Option<Box<dyn FnOnce() -> Result<Evidence> + 'a>>,
}

impl std::fmt::Debug for LaterEvidence<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaterEvidence").field("asked", &self.ask.is_none()).finish()
    }
}

impl<'a> LaterEvidence<'a> {
    /// Evidence `ask` returns when recovery needs it. An error from `ask`
    /// stops the open before it changes anything because of evidence.
    pub fn new(ask: impl FnOnce() -> Result<Evidence> + 'a) -> LaterEvidence<'a> {
        LaterEvidence { ask: Some(Box::new(ask)) }
    }

    /// No evidence beyond what the caller gave up front.
    pub(crate) fn none() -> LaterEvidence<'a> {
        LaterEvidence { ask: None }
    }

    /// Raises `evidence` to the caller's (asking for it the first time).
    /// On a tie the caller's source is kept, as if it had been given first.
    pub(crate) fn settle(&mut self, evidence: &mut Evidence) -> Result<(), Broken> {
        let Some(ask) = self.ask.take() else { return Ok(()) };
        let mut theirs = ask().map_err(Broken::Other)?;
        theirs.raise(evidence.lsn, || evidence.source.clone());
        *evidence = theirs;
        Ok(())
    }
}
