//! Listing sessions a page at a time, in start order (the LSN of each
//! session's first start), so a listing of a long history is bounded in
//! memory and in the size of each answer. Start order is stable while
//! commands run: a session's start LSN never changes and new sessions get
//! higher ones, so paging with `after = next` visits every session exactly
//! once.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::session::SessionState;

/// Sessions a page holds unless asked for fewer or more.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// The most sessions one page holds.
pub const PAGE_LIMIT_MAX: usize = 1000;

/// One page of sessions in start order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionPage {
    pub sessions: Vec<SessionState>,
    /// The `after` of the next page: the start LSN of this page's last
    /// session, when more sessions follow it.
    pub next: Option<u64>,
}

/// The first `limit` sessions that `keep` accepts with a start LSN above
/// `after`, from `stored` sessions not `in_memory` and the `memory` ones.
/// Holds at most `limit + 1` sessions decoded at any time.
pub(crate) fn select<'a>(
    stored: impl Iterator<Item = Result<SessionState>>,
    memory: impl Iterator<Item = &'a SessionState>,
    in_memory: impl Fn(&str) -> bool,
    after: u64,
    limit: usize,
    keep: impl Fn(&SessionState) -> bool,
) -> Result<SessionPage> {
    let mut best: BTreeMap<u64, SessionState> = BTreeMap::new();
    let mut offer = |s: SessionState| {
        let wanted = s.start_lsn > after && keep(&s);
        let beats_last =
            best.len() <= limit || best.last_key_value().is_some_and(|(lsn, _)| s.start_lsn < *lsn);
        if wanted && beats_last {
            best.insert(s.start_lsn, s);
            if best.len() > limit + 1 {
                best.pop_last();
            }
        }
    };
    for s in stored {
        let s = s?;
        if !in_memory(s.id()) {
            offer(s);
        }
    }
    for s in memory {
        offer(s.clone());
    }
    let more = best.len() > limit;
    let mut sessions: Vec<SessionState> = best.into_values().take(limit).collect();
    sessions.shrink_to_fit();
    let next = if more { sessions.last().map(|s| s.start_lsn) } else { None };
    Ok(SessionPage { sessions, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StartFields;

    fn session(id: &str, lsn: u64, active: bool) -> SessionState {
        let fields = StartFields { session_id: id.into(), ..StartFields::default() };
        SessionState { active, ..SessionState::started(fields.into(), lsn, lsn) }
    }

    #[test]
    fn pages_visit_every_match_once_in_start_order() {
        let stored: Vec<SessionState> =
            (1..=25).map(|i| session(&format!("s{i}"), i * 2, i % 3 != 0)).collect();
        // s4 is in memory too, newer: the memory copy wins.
        let memory = [session("s4", 8, false), session("m1", 100, true)];
        let in_memory = |id: &str| id == "s4" || id == "m1";
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let stored = stored.iter().cloned().map(Ok);
            let page =
                select(stored, memory.iter(), in_memory, after, 4, |s| s.active || s.id() == "s4").unwrap();
            assert!(page.sessions.len() <= 4);
            seen.extend(page.sessions.iter().map(|s| (s.start_lsn, s.id().to_string())));
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
        let lsns: Vec<u64> = seen.iter().map(|(l, _)| *l).collect();
        assert!(lsns.windows(2).all(|w| w[0] < w[1]), "start order, no repeats: {lsns:?}");
        let expected = (1..=25).filter(|i| i % 3 != 0 || *i == 4).count() + 1;
        assert_eq!(seen.len(), expected);
        assert!(seen.contains(&(8, "s4".into())) && seen.contains(&(100, "m1".into())));
    }
}
