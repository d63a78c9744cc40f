//! Reading several runs as one: a merge in id order in which each id
//! appears once, with its entry from the newest run that holds it.

use super::block::Entry;
use crate::error::Result;

/// Entries of one run, in id order.
pub(crate) type RunIter<'a> = Box<dyn Iterator<Item = Result<Entry>> + 'a>;

/// The merge of runs given newest first.
pub(crate) struct Merged<'a> {
    runs: Vec<RunIter<'a>>,
    /// The next entry of each run (`None` once it is done).
    heads: Vec<Option<Entry>>,
    /// An error met while reading ahead, returned next.
    error: Option<crate::error::Error>,
    failed: bool,
}

impl<'a> Merged<'a> {
    pub fn new(newest_first: Vec<RunIter<'a>>) -> Merged<'a> {
        let heads = (0..newest_first.len()).map(|_| None).collect();
        let mut merged = Merged { runs: newest_first, heads, error: None, failed: false };
        for i in 0..merged.runs.len() {
            merged.advance(i);
        }
        merged
    }

    /// Reads run `i`'s next entry into its head.
    fn advance(&mut self, i: usize) {
        self.heads[i] = match self.runs[i].next() {
            Some(Ok(entry)) => Some(entry),
            Some(Err(e)) => {
                self.error.get_or_insert(e);
                None
            }
            None => None,
        };
    }

    /// The newest run whose head has the smallest id.
    fn pick(&self) -> Option<usize> {
        let mut best: Option<(usize, &str)> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some(entry) = head
                && best.is_none_or(|(_, id)| entry.id.as_str() < id)
            {
                best = Some((i, entry.id.as_str()));
            }
        }
        best.map(|(i, _)| i)
    }
}

impl Iterator for Merged<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.error.take() {
            self.failed = true;
            return Some(Err(e));
        }
        let winner = self.pick()?;
        let entry = self.heads[winner].take()?;
        self.advance(winner);
        // Older versions of the same session in older runs are skipped.
        for i in winner + 1..self.heads.len() {
            if self.heads[i].as_ref().is_some_and(|e| e.id == entry.id) {
                self.advance(i);
            }
        }
        Some(Ok(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(items: &[(&str, u8)]) -> RunIter<'static> {
        let entries: Vec<Result<Entry>> =
            items.iter().map(|(id, v)| Ok(Entry { id: id.to_string(), rest: vec![*v] })).collect();
        Box::new(entries.into_iter())
    }

    /// Each id once, in id order, from the newest run that has it.
    #[test]
    fn the_newest_version_of_each_id_wins() {
        let newest = run(&[("b", 3), ("d", 3)]);
        let middle = run(&[("a", 2), ("b", 2), ("c", 2)]);
        let oldest = run(&[("a", 1), ("b", 1), ("e", 1)]);
        let merged: Vec<(String, u8)> = Merged::new(vec![newest, middle, oldest])
            .map(|e| e.map(|e| (e.id, e.rest[0])).unwrap())
            .collect();
        let expected = [("a", 2), ("b", 3), ("c", 2), ("d", 3), ("e", 1)];
        assert_eq!(merged, expected.map(|(id, v)| (id.to_string(), v)));
    }

    /// An error in any run ends the merge with that error.
    #[test]
    fn an_error_ends_the_merge() {
        let broken: RunIter<'static> = Box::new(
            vec![
                Ok(Entry { id: "a".into(), rest: vec![] }),
                Err(crate::error::Error::Store { path: "p".into(), reason: "bad".into() }),
            ]
            .into_iter(),
        );
        let items: Vec<Result<Entry>> = Merged::new(vec![run(&[("c", 1)]), broken]).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok() && items[1].is_err());
    }
}
