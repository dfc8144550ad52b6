//! A segment's label index (format version 4): its series' labels and postings, laid out to
//! be read in place from the mapped file — binary searches over fixed-width tables, no
//! decompression, nothing kept in memory — so that the engine can let series that stopped
//! writing leave its in-memory index and still find them here.
//!
//! ```text
//! body (offsets relative to its start, integers little-endian):
//!   u32 name count N | u32 pair count P | u32 series count S | u32 namespace count K
//!   names       N × (u32 text at | u32 first pair | u32 pair count)   sorted by name
//!   pairs       P × u32 entry at      sorted by (name, value): a name's pairs are contiguous
//!   series      S × u32 entry at      by local id
//!   namespaces  K × (u32 text at | u32 postings at)                    sorted by name
//!   entries:
//!     text     varint length | UTF-8 bytes
//!     pair     text (the value) | postings
//!     postings varint 0 | varint local id            (exactly one series)
//!            | varint n | n bytes of a roaring bitmap (portable format)
//!     series   varint namespace index | varint label count | that many varint pair
//!              indexes, in label order
//! ```
//! Every offset and index is checked when read; a bad one is an error with its offset.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::DecodeError;
use crate::codec::bytes::{ByteReader, MAX_STR};
use crate::codec::varint::{put_str, put_u64};
use crate::index::{MatchOp, Matcher};

const HEADER: usize = 16;
const NAME_ROW: usize = 12;
const PAIR_ROW: usize = 4;
const SERIES_ROW: usize = 4;
const NAMESPACE_ROW: usize = 8;

/// What a segment builder collects for the index as series are added.
#[derive(Debug, Default)]
pub(super) struct IndexBuilder {
    /// Pair → its id in the order first seen, and its postings.
    pairs: std::collections::HashMap<(String, String), u32>,
    postings: Vec<RoaringBitmap>,
    namespaces: Vec<String>,
    /// Per series: its namespace, where its pair ids end in `series_pairs`.
    series: Vec<(u32, u32)>,
    series_pairs: Vec<u32>,
}

impl IndexBuilder {
    /// Adds the next series (local id = the number added before).
    pub(super) fn add<'a>(
        &mut self,
        namespace: &str,
        labels: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        let local = self.series.len() as u32;
        let ns = match self.namespaces.iter().position(|n| n == namespace) {
            Some(i) => i,
            None => {
                self.namespaces.push(namespace.to_owned());
                self.namespaces.len() - 1
            }
        } as u32;
        for (name, value) in labels {
            let next = self.postings.len() as u32;
            let id = *self
                .pairs
                .entry((name.to_owned(), value.to_owned()))
                .or_insert(next);
            if id == next {
                self.postings.push(RoaringBitmap::new());
            }
            if let Some(p) = self.postings.get_mut(id as usize) {
                p.insert(local);
            }
            self.series_pairs.push(id);
        }
        self.series.push((ns, self.series_pairs.len() as u32));
    }

    /// The index body.
    pub(super) fn finish(self) -> Vec<u8> {
        let IndexBuilder {
            pairs,
            postings,
            namespaces,
            series,
            series_pairs,
        } = self;
        // Pairs sorted by (name, value); `rank[first-seen id]` is the sorted index.
        let mut sorted: Vec<((String, String), u32)> = pairs.into_iter().collect();
        sorted.sort_unstable();
        let mut rank = vec![0u32; sorted.len()];
        for (i, (_, id)) in sorted.iter().enumerate() {
            if let Some(r) = rank.get_mut(*id as usize) {
                *r = i as u32;
            }
        }
        let mut names: Vec<(&str, u32, u32)> = Vec::new();
        for (i, ((name, _), _)) in sorted.iter().enumerate() {
            match names.last_mut() {
                Some((last, _, count)) if *last == name.as_str() => *count += 1,
                _ => names.push((name, i as u32, 1)),
            }
        }
        let mut ns_order: Vec<u32> = (0..namespaces.len() as u32).collect();
        ns_order.sort_by(|&a, &b| namespaces.get(a as usize).cmp(&namespaces.get(b as usize)));
        let mut ns_rank = vec![0u32; namespaces.len()];
        for (i, &ns) in ns_order.iter().enumerate() {
            if let Some(r) = ns_rank.get_mut(ns as usize) {
                *r = i as u32;
            }
        }

        let tables = HEADER
            + NAME_ROW * names.len()
            + PAIR_ROW * sorted.len()
            + SERIES_ROW * series.len()
            + NAMESPACE_ROW * namespaces.len();
        let mut heap: Vec<u8> = Vec::new();
        let at = |heap: &Vec<u8>| (tables + heap.len()) as u32;
        let mut out = Vec::with_capacity(tables);
        for n in [names.len(), sorted.len(), series.len(), namespaces.len()] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for (name, first, count) in &names {
            out.extend_from_slice(&at(&heap).to_le_bytes());
            put_str(&mut heap, name);
            out.extend_from_slice(&first.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        let mut bitmap = Vec::new();
        let mut put_postings = |heap: &mut Vec<u8>, p: &RoaringBitmap| {
            if p.len() == 1 {
                put_u64(heap, 0);
                put_u64(heap, u64::from(p.min().unwrap_or(0)));
            } else {
                bitmap.clear();
                // Writing into a Vec cannot fail.
                let _ = p.serialize_into(&mut bitmap);
                put_u64(heap, bitmap.len() as u64);
                heap.extend_from_slice(&bitmap);
            }
        };
        let empty = RoaringBitmap::new();
        for ((_, value), id) in &sorted {
            out.extend_from_slice(&at(&heap).to_le_bytes());
            put_str(&mut heap, value);
            put_postings(&mut heap, postings.get(*id as usize).unwrap_or(&empty));
        }
        let mut from = 0usize;
        for &(ns, end) in &series {
            out.extend_from_slice(&at(&heap).to_le_bytes());
            put_u64(
                &mut heap,
                u64::from(ns_rank.get(ns as usize).copied().unwrap_or(0)),
            );
            let ids = series_pairs.get(from..end as usize).unwrap_or_default();
            put_u64(&mut heap, ids.len() as u64);
            for id in ids {
                put_u64(
                    &mut heap,
                    u64::from(rank.get(*id as usize).copied().unwrap_or(0)),
                );
            }
            from = end as usize;
        }
        for &ns in &ns_order {
            let mut members = RoaringBitmap::new();
            for (local, &(n, _)) in series.iter().enumerate() {
                if n == ns {
                    members.insert(local as u32);
                }
            }
            out.extend_from_slice(&at(&heap).to_le_bytes());
            put_str(
                &mut heap,
                namespaces.get(ns as usize).map_or("", String::as_str),
            );
            out.extend_from_slice(&at(&heap).to_le_bytes());
            put_postings(&mut heap, &members);
        }
        debug_assert_eq!(out.len(), tables);
        out.extend_from_slice(&heap);
        out
    }
}

/// A segment's label index, read in place.
#[derive(Debug, Clone, Copy)]
pub struct LabelIndex<'a> {
    body: &'a [u8],
    names: usize,
    pairs: usize,
    series: usize,
    namespaces: usize,
}

/// One series' namespace and labels, borrowed from the index.
pub type IndexedLabels<'a> = (&'a str, Vec<(&'a str, &'a str)>);

impl<'a> LabelIndex<'a> {
    /// Checks that the tables the header announces fit in `body`.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = ByteReader::new(body);
        let mut count = || r.u32_le().map(|n| n as usize);
        let (names, pairs, series, namespaces) = (count()?, count()?, count()?, count()?);
        let tables = HEADER as u64
            + (NAME_ROW * names) as u64
            + (PAIR_ROW * pairs) as u64
            + (SERIES_ROW * series) as u64
            + (NAMESPACE_ROW * namespaces) as u64;
        if tables > body.len() as u64 {
            return Err(DecodeError::new(
                0,
                format!(
                    "label index tables of {tables} bytes ({names} names, {pairs} pairs, \
                     {series} series, {namespaces} namespaces) exceed its {} bytes",
                    body.len()
                ),
            ));
        }
        Ok(LabelIndex {
            body,
            names,
            pairs,
            series,
            namespaces,
        })
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series
    }

    fn u32_at(&self, at: usize) -> Result<u32, DecodeError> {
        ByteReader::at(self.body, at as u64)?.u32_le()
    }

    fn text(&self, at: u32) -> Result<&'a str, DecodeError> {
        ByteReader::at(self.body, u64::from(at))?.str(MAX_STR, "label index text")
    }

    /// Where row `row` of a table of `len` rows `width` bytes wide starting at `table` is.
    fn row(
        table: usize,
        width: usize,
        row: usize,
        len: usize,
        what: &str,
    ) -> Result<usize, DecodeError> {
        if row >= len {
            return Err(DecodeError::new(
                0,
                format!("{what} {row} of the label index is past its {len}"),
            ));
        }
        Ok(table + row * width)
    }

    fn names_at(&self) -> usize {
        HEADER
    }
    fn pairs_at(&self) -> usize {
        self.names_at() + NAME_ROW * self.names
    }
    fn series_at(&self) -> usize {
        self.pairs_at() + PAIR_ROW * self.pairs
    }
    fn namespaces_at(&self) -> usize {
        self.series_at() + SERIES_ROW * self.series
    }

    /// Name `i`: its text and its pairs' range.
    fn name(&self, i: usize) -> Result<(&'a str, std::ops::Range<usize>), DecodeError> {
        let at = Self::row(self.names_at(), NAME_ROW, i, self.names, "name")?;
        let text = self.text(self.u32_at(at)?)?;
        let first = self.u32_at(at + 4)? as usize;
        let count = self.u32_at(at + 8)? as usize;
        if first.saturating_add(count) > self.pairs {
            return Err(DecodeError::new(
                at as u64,
                format!(
                    "label {text:?}'s pairs {first}+{count} are past the index's {}",
                    self.pairs
                ),
            ));
        }
        Ok((text, first..first + count))
    }

    /// The pairs' range of label `name`, if a series carries it.
    fn find_name(&self, name: &str) -> Result<Option<std::ops::Range<usize>>, DecodeError> {
        search(0..self.names, name, |i| self.name(i))
    }

    /// Pair `j`'s value and where its postings start.
    fn pair(&self, j: usize) -> Result<(&'a str, usize), DecodeError> {
        let at = self.u32_at(Self::row(self.pairs_at(), PAIR_ROW, j, self.pairs, "pair")?)?;
        let mut r = ByteReader::at(self.body, u64::from(at))?;
        let value = r.str(MAX_STR, "label value")?;
        Ok((value, r.position()))
    }

    fn postings(&self, at: usize) -> Result<RoaringBitmap, DecodeError> {
        let mut r = ByteReader::at(self.body, at as u64)?;
        let n = r.len(r.remaining(), "postings length")?;
        if n == 0 {
            let local = r.varint_u32("local id")?;
            return Ok(RoaringBitmap::from_iter([local]));
        }
        let start = r.position();
        RoaringBitmap::deserialize_from(r.bytes(n)?)
            .map_err(|e| DecodeError::new(start as u64, format!("bad roaring bitmap: {e}")))
    }

    /// The local ids of `namespace`'s series.
    fn namespace(&self, namespace: &str) -> Result<RoaringBitmap, DecodeError> {
        let found = search(0..self.namespaces, namespace, |i| {
            let at = Self::row(
                self.namespaces_at(),
                NAMESPACE_ROW,
                i,
                self.namespaces,
                "namespace",
            )?;
            Ok((self.text(self.u32_at(at)?)?, at))
        })?;
        match found {
            Some(at) => self.postings(self.u32_at(at + 4)? as usize),
            None => Ok(RoaringBitmap::new()),
        }
    }

    /// Every value of label `name` with where its postings start.
    fn values(&self, name: &str) -> Result<Vec<(&'a str, usize)>, DecodeError> {
        match self.find_name(name)? {
            Some(range) => range.map(|j| self.pair(j)).collect(),
            None => Ok(Vec::new()),
        }
    }

    /// The local ids of `namespace`'s series matching every matcher, with PromQL's meaning
    /// of a matcher that matches the empty string (it also matches series without the
    /// label), as the engine's in-memory index answers.
    pub fn select(
        &self,
        namespace: &str,
        matchers: &[Matcher],
    ) -> Result<RoaringBitmap, DecodeError> {
        // The equality matchers that need the label first: their postings are usually
        // the smallest, so the namespace's (often every series) is intersected last.
        let mut result: Option<RoaringBitmap> = None;
        for m in matchers
            .iter()
            .filter(|m| m.op == MatchOp::Equal && !m.matches(""))
        {
            let Some(range) = self.find_name(&m.name)? else {
                return Ok(RoaringBitmap::new());
            };
            let Some(at) = self.find_value(range, &m.value)? else {
                return Ok(RoaringBitmap::new());
            };
            let postings = self.postings(at)?;
            result = Some(match result {
                Some(r) => r & postings,
                None => postings,
            });
        }
        let mut result = match result {
            Some(r) => r & self.namespace(namespace)?,
            None => self.namespace(namespace)?,
        };
        for m in matchers {
            if result.is_empty() {
                break;
            }
            if m.op == MatchOp::Equal && !m.matches("") {
                continue;
            }
            if m.matches("") {
                for (value, at) in self.values(&m.name)? {
                    if !m.matches(value) {
                        result -= self.postings(at)?;
                    }
                }
            } else {
                let mut included = RoaringBitmap::new();
                for (value, at) in self.values(&m.name)? {
                    if m.matches(value) {
                        included |= self.postings(at)?;
                    }
                }
                result &= included;
            }
        }
        Ok(result)
    }

    /// Where the postings of `value` start among the pairs `range` (one name's, sorted).
    fn find_value(
        &self,
        range: std::ops::Range<usize>,
        value: &str,
    ) -> Result<Option<usize>, DecodeError> {
        search(range, value, |j| self.pair(j))
    }

    /// The name of the label that pair `j` belongs to (the name whose range holds it).
    fn name_of_pair(&self, j: usize) -> Result<&'a str, DecodeError> {
        let (mut lo, mut hi) = (0, self.names);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (text, range) = self.name(mid)?;
            if j < range.start {
                hi = mid;
            } else if j >= range.end {
                lo = mid + 1;
            } else {
                return Ok(text);
            }
        }
        Err(DecodeError::new(
            0,
            format!("pair {j} belongs to no label name"),
        ))
    }

    /// Series `local`'s namespace and labels (in label order).
    pub fn labels(&self, local: u32) -> Result<IndexedLabels<'a>, DecodeError> {
        self.labels_by(local, |j| self.name_of_pair(j))
    }

    /// The label names decoded once, for reading many series' labels
    /// ([`NameTable::labels`]).
    pub fn name_table(&self) -> Result<NameTable<'a>, DecodeError> {
        let mut ends = Vec::with_capacity(self.names.min(1 << 16));
        let mut next = 0;
        for i in 0..self.names {
            let (text, range) = self.name(i)?;
            if range.start != next {
                return Err(DecodeError::new(
                    0,
                    format!(
                        "label {text:?}'s pairs start at {}, not {next}",
                        range.start
                    ),
                ));
            }
            next = range.end;
            ends.push((text, range.end));
        }
        Ok(NameTable { index: *self, ends })
    }

    fn labels_by(
        &self,
        local: u32,
        name_of: impl Fn(usize) -> Result<&'a str, DecodeError>,
    ) -> Result<IndexedLabels<'a>, DecodeError> {
        let at = self.u32_at(Self::row(
            self.series_at(),
            SERIES_ROW,
            local as usize,
            self.series,
            "series",
        )?)?;
        let mut r = ByteReader::at(self.body, u64::from(at))?;
        let ns = r.len(self.namespaces.saturating_sub(1), "namespace index")?;
        let ns_row = Self::row(
            self.namespaces_at(),
            NAMESPACE_ROW,
            ns,
            self.namespaces,
            "namespace",
        )?;
        let namespace = self.text(self.u32_at(ns_row)?)?;
        let count = r.len(r.remaining(), "label count")?;
        let mut labels = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let j = r.len(self.pairs.saturating_sub(1), "pair index")?;
            labels.push((name_of(j)?, self.pair(j)?.0));
        }
        Ok((namespace, labels))
    }

    /// The local id of the series of `namespace` whose labels are exactly `labels` (in
    /// label order, as a label set keeps them), if the index holds it: the postings of its
    /// pairs, smallest first, narrow the candidates (a pair only one series carries, as a
    /// camera's own name, is one already), whose own labels are then compared. How a write
    /// finds a series that left the head without the head keeping anything of its labels.
    pub fn find(
        &self,
        namespace: &str,
        labels: &[(&str, &str)],
    ) -> Result<Option<u32>, DecodeError> {
        /// Candidates few enough to compare one by one rather than narrow further.
        const FEW: u64 = 8;
        let mut postings = Vec::with_capacity(labels.len());
        for &(name, value) in labels {
            let Some(range) = self.find_name(name)? else {
                return Ok(None);
            };
            let Some(at) = self.find_value(range, value)? else {
                return Ok(None);
            };
            postings.push((self.postings_bytes(at)?, at));
        }
        postings.sort_unstable();
        let mut candidates: Option<RoaringBitmap> = None;
        for &(_, at) in &postings {
            if candidates.as_ref().is_some_and(|c| c.len() <= FEW) {
                break;
            }
            let p = self.postings(at)?;
            candidates = Some(match candidates {
                Some(c) => c & p,
                None => p,
            });
        }
        let candidates = match candidates {
            Some(c) => c,
            None => self.namespace(namespace)?,
        };
        for local in &candidates {
            let (ns, found) = self.labels(local)?;
            if ns == namespace && found == labels {
                return Ok(Some(local));
            }
        }
        Ok(None)
    }

    /// The size of the postings starting at `at`, in bytes (a lone local id counts one).
    fn postings_bytes(&self, at: usize) -> Result<usize, DecodeError> {
        let n = ByteReader::at(self.body, at as u64)?.len(self.body.len(), "postings length")?;
        Ok(n.max(1))
    }

    /// The values of label `name` carried by any of the local ids `within`, sorted.
    pub fn label_values(
        &self,
        name: &str,
        within: &RoaringBitmap,
    ) -> Result<Vec<&'a str>, DecodeError> {
        let mut out = Vec::new();
        for (value, at) in self.values(name)? {
            if !self.postings(at)?.is_disjoint(within) {
                out.push(value);
            }
        }
        Ok(out)
    }

    /// The label names carried by any of the local ids `within`, sorted.
    pub fn label_names(&self, within: &RoaringBitmap) -> Result<Vec<&'a str>, DecodeError> {
        let mut out = Vec::new();
        for i in 0..self.names {
            let (name, range) = self.name(i)?;
            for j in range {
                if !self.postings(self.pair(j)?.1)?.is_disjoint(within) {
                    out.push(name);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every pair with its postings (for `verify` and tests).
    pub fn all_postings(&self) -> Result<BTreeMap<(String, String), RoaringBitmap>, DecodeError> {
        let mut out = BTreeMap::new();
        for i in 0..self.names {
            let (name, range) = self.name(i)?;
            for j in range {
                let (value, at) = self.pair(j)?;
                out.insert((name.to_owned(), value.to_owned()), self.postings(at)?);
            }
        }
        Ok(out)
    }
}

/// Binary search over the rows `range` of a table sorted by text: the row whose text
/// (`row(i).0`) is `target`, with what `row` gave beside it.
fn search<'a, T>(
    range: std::ops::Range<usize>,
    target: &str,
    row: impl Fn(usize) -> Result<(&'a str, T), DecodeError>,
) -> Result<Option<T>, DecodeError> {
    let (mut lo, mut hi) = (range.start, range.end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (text, found) = row(mid)?;
        match text.cmp(target) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(Some(found)),
        }
    }
    Ok(None)
}

/// A label index with its names decoded (see [`LabelIndex::name_table`]).
#[derive(Debug)]
pub struct NameTable<'a> {
    index: LabelIndex<'a>,
    /// Each name and the end of its pairs' range (the ranges follow each other from 0).
    ends: Vec<(&'a str, usize)>,
}

impl<'a> NameTable<'a> {
    /// Series `local`'s namespace and labels, as [`LabelIndex::labels`] reads them.
    pub fn labels(&self, local: u32) -> Result<IndexedLabels<'a>, DecodeError> {
        self.index.labels_by(local, |j| {
            let k = self.ends.partition_point(|&(_, end)| end <= j);
            self.ends
                .get(k)
                .map(|&(name, _)| name)
                .ok_or_else(|| DecodeError::new(0, format!("pair {j} belongs to no label name")))
        })
    }
}
