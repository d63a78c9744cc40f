//! Appending what the rules decided: events encoded and submitted as one
//! atomic batch (or, for a drain larger than one frame, consecutive
//! batches), then folded into the state.

use bookend_journal::{AppendTicket, Batch, Durability, Journal};

use crate::error::Result;
use crate::event::{Event, EventBody, StoredEvent};
use crate::event_codec::encode_event_into;
use crate::rules::Lifecycle;

/// The most a batch buffer reserves up front: a drain larger than this
/// grows its buffers as it fills them.
const BATCH_BUFFER_MAX_BYTES: usize = 1 << 20;
/// Room given to each event of a batch at first: a start with a key, a
/// platform and a user id takes 100-150 bytes, and 64 made nearly every
/// batch grow once.
const EVENT_BYTES_TYPICAL: usize = 192;
/// The most room the encoding buffer keeps between commands.
const SCRATCH_KEPT_MAX_BYTES: usize = 64 * 1024;

/// How a command's batches reach the journal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Submit {
    /// Written (buffered) or handed to the writer thread (durable) at once.
    Now,
    /// Left staged for `Journal::commit_staged`, with the rest of a batch.
    Staged,
}

/// Events appended for one command, in the order they were submitted.
/// Nothing here allocates for a command whose events fit one frame.
pub(super) struct Submitted {
    /// The last batch's ticket; tickets complete in LSN order, so this one
    /// completing means every batch is acknowledged.
    pub last: AppendTicket,
    /// The first LSN and the number of events of each batch before the
    /// last (a drain larger than one frame), then of the last.
    earlier: Vec<(u64, usize)>,
    last_batch: (u64, usize),
}

impl Submitted {
    /// The LSNs of the events, in order.
    fn lsns(&self) -> impl Iterator<Item = u64> + '_ {
        let batches = self.earlier.iter().chain(std::iter::once(&self.last_batch));
        batches.flat_map(|&(first, count)| first..first + count as u64)
    }
}

/// Encodes `bodies` (all at time `at`) and submits them: as one atomic batch
/// when they fit in one frame, else as consecutive batches that each fit.
/// Every event is encoded into its batch and checked before anything is
/// submitted, so a command is never half appended because one of its events
/// is too large; the frames are the only copy of the encoded events.
pub(super) fn submit(
    journal: &Journal,
    bodies: &[EventBody],
    at: u64,
    durability: Durability,
    record_max: usize,
    how: Submit,
) -> Result<Submitted> {
    thread_local! {
        /// One event's bytes, kept by the thread between commands.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // Full frames of a drain larger than one; empty (no allocation) for
    // every other command.
    let mut full = Vec::new();
    let mut batch = Batch::with_capacity((bodies.len() * EVENT_BYTES_TYPICAL).min(BATCH_BUFFER_MAX_BYTES));
    SCRATCH.with_borrow_mut(|scratch| {
        let encoded = encode_all(bodies, at, record_max, scratch, &mut batch, &mut full);
        // One large event does not keep its room for the thread's life.
        if scratch.capacity() > SCRATCH_KEPT_MAX_BYTES {
            *scratch = Vec::new();
        }
        encoded
    })?;
    let mut earlier = Vec::new();
    for batch in full {
        // Only the last ticket is kept: tickets complete in LSN order.
        earlier.push(submit_one(journal, batch, durability, how)?.0);
    }
    let (last_batch, last) = submit_one(journal, batch, durability, how)?;
    Ok(Submitted { last, earlier, last_batch })
}

/// Encodes `bodies` into `batch`, moving each full frame to `full`.
fn encode_all(
    bodies: &[EventBody],
    at: u64,
    record_max: usize,
    scratch: &mut Vec<u8>,
    batch: &mut Batch,
    full: &mut Vec<Batch>,
) -> Result<()> {
    for body in bodies {
        encode_event_into(at, body, scratch)?;
        Batch::check_alone(scratch.len(), record_max)?;
        if !batch.is_empty() && !batch.fits(scratch.len(), record_max) {
            full.push(std::mem::replace(batch, Batch::with_capacity(BATCH_BUFFER_MAX_BYTES)));
        }
        batch.push_encoded(scratch)?;
    }
    Ok(())
}

/// Submits `batch`; returns its first LSN and event count, and its ticket.
fn submit_one(
    journal: &Journal,
    batch: Batch,
    durability: Durability,
    how: Submit,
) -> Result<((u64, usize), AppendTicket)> {
    let count = batch.len();
    let ticket = match how {
        Submit::Now => journal.submit(batch, durability)?,
        Submit::Staged => journal.submit_staged(batch, durability)?,
    };
    Ok(((ticket.lsns().first_lsn, count), ticket))
}

/// Folds a batch this process just appended. `decide` produced it, so it
/// breaks no rule; a violation here is a bug in the rules.
pub(super) fn apply_appended(
    life: &mut Lifecycle,
    submitted: &Submitted,
    bodies: Vec<EventBody>,
    at: u64,
) -> Result<Vec<Event>> {
    let lsns = submitted.lsns();
    let mut events = Vec::with_capacity(bodies.len());
    for (lsn, body) in lsns.zip(bodies) {
        let stored = StoredEvent { at, body };
        let violations = life.apply_decided(lsn, &stored)?;
        assert!(violations.is_empty(), "an accepted command broke a lifecycle rule: {violations:?}");
        events.push(Event { lsn, at, body: stored.body });
    }
    Ok(events)
}
