//! Which segments one compaction merges together: windows that grow as data ages.
//!
//! The smallest window (a day by default) is merged once it is over, as every flush adds to
//! the current one. Each larger window (8 and 32 days by default, each a whole number of
//! the one before) is merged once it is over too, so a finished month is one segment: a
//! panel over it reads each series once instead of once a day. A segment goes to the
//! largest window that holds it whole and is over, so windows nest and every sample is
//! rewritten once per window size, as Prometheus' block ranges do.
//!
//! Late data (a department's backfill into last month) lands in a small flushed segment
//! beside the month's. Merging it in would rewrite the month for a handful of samples, so
//! while what lies beside a merged window is under an eighth of it, it is merged at the
//! next smaller window instead (with the other late data of the same days); once it
//! outgrows that, the whole window is merged again.

use std::collections::BTreeMap;

/// What planning needs to know of one live segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts {
    /// Its first and last times, ms.
    pub(super) min_t: i64,
    pub(super) max_t: i64,
    /// Flush or compaction sequence: later ones win over earlier ones.
    pub(super) seq: u64,
    /// File size.
    pub(super) bytes: u64,
    /// Whether it is as a compaction would write it (alone, it needs no rewrite).
    pub(super) settled: bool,
}

/// Segments to merge into one: indexes into the planned slice, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Merge {
    /// The start of the window they lie in, ms (the new segment's name says it).
    pub(super) start: i64,
    pub(super) members: Vec<usize>,
}

/// What lies beside a merged window is merged into it only once it is at least this
/// fraction (1/N) of the window's bytes.
const LATE_SHARE: u64 = 8;

/// The merges of `segments` (in sequence order) for windows of `widths` ms (ascending,
/// each a multiple of the one before) that end at or before `end` (ms). A segment that no
/// window holds whole stays as it is.
pub(super) fn plan(segments: &[Facts], widths: &[i64], end: i64) -> Vec<Merge> {
    let levels = Levels { widths, end };
    // Per level, from the largest: window index → members.
    let mut groups: Vec<BTreeMap<i128, Vec<usize>>> = vec![BTreeMap::new(); widths.len()];
    for (i, f) in segments.iter().enumerate() {
        let Some(holding) = levels.holding(f) else {
            continue;
        };
        let level = (holding..widths.len())
            .rev()
            .find(|&k| levels.over(k, levels.window(k, f.min_t)))
            .unwrap_or(holding);
        if let Some(g) = groups.get_mut(level) {
            g.entry(levels.window(level, f.min_t)).or_default().push(i);
        }
    }
    let mut merges = Vec::new();
    for level in (0..widths.len()).rev() {
        let Some(windows) = groups.get_mut(level).map(std::mem::take) else {
            continue;
        };
        for (w, mut members) in windows {
            if !levels.over(level, w) {
                continue;
            }
            if level > 0
                && let Some(late) = late_beside_merged(segments, &levels, level, &members)
            {
                // Merged at the next window down instead, with the late data of the same days.
                members.retain(|i| !late.contains(i));
                let below = level - 1;
                for i in late {
                    if let (Some(f), Some(g)) = (segments.get(i), groups.get_mut(below)) {
                        g.entry(levels.window(below, f.min_t)).or_default().push(i);
                    }
                }
            }
            members.sort_unstable();
            let settled = |i: &usize| segments.get(*i).is_some_and(|f| f.settled);
            if members.len() < 2 && members.iter().all(settled) {
                continue;
            }
            // Named after the smallest window holding what it merges (a lone late day is
            // written as that day's segment).
            let facts = || members.iter().filter_map(|i| segments.get(*i));
            let span = facts()
                .map(|f| f.min_t)
                .min()
                .zip(facts().map(|f| f.max_t).max());
            let start = span
                .and_then(|(min_t, max_t)| {
                    let f = Facts {
                        min_t,
                        max_t,
                        seq: 0,
                        bytes: 0,
                        settled: false,
                    };
                    let k = levels.holding(&f)?;
                    Some(levels.start(k, levels.window(k, min_t)))
                })
                .unwrap_or_else(|| levels.start(level, w));
            merges.push(Merge { start, members });
        }
    }
    merges
}

/// When a window's members are one segment merged at that window's size and, beside it,
/// newer segments under a [`LATE_SHARE`] of its bytes: those newer ones.
fn late_beside_merged(
    segments: &[Facts],
    levels: &Levels<'_>,
    level: usize,
    members: &[usize],
) -> Option<Vec<usize>> {
    let fact = |i: &usize| segments.get(*i).copied();
    let mut merged = members
        .iter()
        .copied()
        .filter(|i| fact(i).is_some_and(|f| levels.holding(&f) == Some(level)));
    let at = merged.next()?;
    let whole = fact(&at)?;
    if merged.next().is_some() || !whole.settled {
        return None;
    }
    let late: Vec<usize> = members.iter().copied().filter(|&i| i != at).collect();
    let late_bytes: u64 = late.iter().filter_map(fact).map(|f| f.bytes).sum();
    let all_newer = late.iter().filter_map(fact).all(|f| f.seq > whole.seq);
    (!late.is_empty() && all_newer && late_bytes.saturating_mul(LATE_SHARE) < whole.bytes)
        .then_some(late)
}

/// The compaction windows and the time before which they count as over.
struct Levels<'a> {
    widths: &'a [i64],
    end: i64,
}

impl Levels<'_> {
    fn width(&self, level: usize) -> i128 {
        i128::from(self.widths.get(level).copied().unwrap_or(1).max(1))
    }

    /// The index of the window of `level` that holds time `t`.
    fn window(&self, level: usize, t: i64) -> i128 {
        i128::from(t).div_euclid(self.width(level))
    }

    fn start(&self, level: usize, w: i128) -> i64 {
        (w * self.width(level)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Whether window `w` of `level` has ended by the planned end.
    fn over(&self, level: usize, w: i128) -> bool {
        (w + 1) * self.width(level) <= i128::from(self.end)
    }

    /// The smallest level whose window holds the segment whole.
    fn holding(&self, f: &Facts) -> Option<usize> {
        (0..self.widths.len()).find(|&k| self.window(k, f.min_t) == self.window(k, f.max_t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const WIDTHS: [i64; 3] = [DAY, 8 * DAY, 32 * DAY];

    fn day(d: i64, seq: u64) -> Facts {
        Facts {
            min_t: d * DAY,
            max_t: d * DAY + DAY - 1,
            seq,
            bytes: 100,
            settled: false,
        }
    }

    fn merged(from_day: i64, days: i64, seq: u64, bytes: u64) -> Facts {
        Facts {
            min_t: from_day * DAY,
            max_t: (from_day + days) * DAY - 1,
            seq,
            bytes,
            settled: true,
        }
    }

    #[test]
    fn finished_days_merge_into_days_until_their_larger_window_is_over() {
        // Days 32..=36 flushed (two flushes of day 33); today is day 37.
        let segs = [day(32, 1), day(33, 2), day(33, 3), day(34, 4), day(36, 5)];
        let merges = plan(&segs, &WIDTHS, 37 * DAY);
        let starts: Vec<i64> = merges.iter().map(|m| m.start / DAY).collect();
        assert_eq!(starts, [32, 33, 34, 36]);
        assert_eq!(merges.get(1).map(|m| m.members.clone()), Some(vec![1, 2]));
        // Day 37 itself is not over: nothing of it is merged.
        let merges = plan(&[day(37, 1), day(37, 2)], &WIDTHS, 37 * DAY + DAY / 2);
        assert!(merges.is_empty(), "{merges:?}");
    }

    #[test]
    fn a_finished_larger_window_merges_whole() {
        // Days 32..=39 are the window of 8 days starting at 32; day 40 has begun.
        let mut segs: Vec<Facts> = (32..40).map(|d| merged(d, 1, d as u64, 100)).collect();
        segs.push(day(39, 50));
        let merges = plan(&segs, &WIDTHS, 40 * DAY);
        assert_eq!(merges.len(), 1, "{merges:?}");
        assert_eq!(merges.first().map(|m| m.start), Some(32 * DAY));
        assert_eq!(merges.first().map(|m| m.members.len()), Some(9));
        // A month of four 8-day segments, once the month is over.
        let segs: Vec<Facts> = (0..4)
            .map(|i| merged(32 + 8 * i, 8, i as u64, 800))
            .collect();
        assert!(plan(&segs, &WIDTHS, 63 * DAY).is_empty());
        let merges = plan(&segs, &WIDTHS, 64 * DAY);
        assert_eq!(
            merges,
            vec![Merge {
                start: 32 * DAY,
                members: vec![0, 1, 2, 3]
            }]
        );
    }

    #[test]
    fn late_data_beside_a_merged_window_is_merged_by_day_until_it_grows() {
        let month = merged(32, 32, 10, 32_000);
        // Two late flushes of day 40 and one of day 50: merged per day, the month untouched.
        let segs = [month, day(40, 11), day(40, 12), day(50, 13)];
        let merges = plan(&segs, &WIDTHS, 100 * DAY);
        let got: Vec<(i64, Vec<usize>)> = merges
            .iter()
            .map(|m| (m.start / DAY, m.members.clone()))
            .collect();
        assert_eq!(got, [(40, vec![1, 2]), (50, vec![3])]);
        // Settled late days beside it stay as they are.
        let quiet = [month, merged(40, 1, 14, 300)];
        assert!(plan(&quiet, &WIDTHS, 100 * DAY).is_empty());
        // Late data of an eighth of the month or more: the month is merged again.
        let grown = [month, merged(40, 1, 14, 4_000)];
        assert_eq!(
            plan(&grown, &WIDTHS, 100 * DAY),
            vec![Merge {
                start: 32 * DAY,
                members: vec![0, 1]
            }]
        );
        // The merged window waiting on a deletion (not settled): merged whole.
        let unsettled = [
            Facts {
                settled: false,
                ..month
            },
            day(40, 11),
        ];
        assert_eq!(plan(&unsettled, &WIDTHS, 100 * DAY).len(), 1);
        // Something beside it older than it: merged whole, so that the newer write wins.
        let older = [day(40, 9), month];
        assert_eq!(
            plan(&older, &WIDTHS, 100 * DAY)
                .first()
                .map(|m| m.members.clone()),
            Some(vec![0, 1])
        );
    }

    #[test]
    fn a_segment_no_window_holds_whole_stays_alone() {
        // Across two months (written with a wider window once).
        let across = Facts {
            settled: false,
            ..merged(60, 8, 1, 100)
        };
        assert!(plan(&[across, day(70, 2)], &WIDTHS, 200 * DAY).len() == 1);
        assert!(plan(&[across], &WIDTHS, 200 * DAY).is_empty());
    }

    #[test]
    fn with_one_window_size_it_is_a_window_per_day() {
        let segs = [day(1, 1), day(1, 2), day(2, 3), merged(3, 1, 4, 100)];
        let merges = plan(&segs, &[DAY], i64::MAX);
        let got: Vec<(i64, Vec<usize>)> = merges
            .iter()
            .map(|m| (m.start / DAY, m.members.clone()))
            .collect();
        assert_eq!(got, [(1, vec![0, 1]), (2, vec![2])]);
    }
}
