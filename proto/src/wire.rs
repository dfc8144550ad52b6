//! The protobuf wire format, read in place: keys, varints, fixed-width numbers and
//! length-delimited fields as slices of the message, for the hand-written readers of the
//! hot write messages ([`crate::prompb::view`]), which must not allocate per field.
//!
//! It accepts what prost accepts — overlong varints up to ten bytes, fields in any order and
//! repeated, unknown fields of every wire type including groups — and refuses what prost
//! refuses, so that a reader built on it agrees with the prost structs on every input prost
//! decodes (the readers' tests and fuzz target check exactly that). Bytes from the network
//! are never trusted: every length is checked against what is left, and nothing panics.

#![warn(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fmt;

/// Deepest nesting of groups skipped inside an unknown field (prost's recursion limit).
const MAX_GROUP_DEPTH: u32 = 100;

/// Why a message could not be read, and where (bytes from the start of the outermost
/// message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub what: &'static str,
    /// Where.
    pub offset: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// How a field's value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// A varint.
    Varint,
    /// Eight bytes, little-endian.
    Fixed64,
    /// A varint length, then that many bytes.
    Len,
    /// A group's start (deprecated; only skipped).
    StartGroup,
    /// A group's end.
    EndGroup,
    /// Four bytes, little-endian.
    Fixed32,
}

/// Where some bytes lie in the message read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The `len` bytes at `at`.
    pub fn new(at: usize, len: usize) -> Self {
        // `Cursor::new` refuses messages of 4 GiB or more, so offsets fit.
        Span {
            start: u32::try_from(at).unwrap_or(u32::MAX),
            end: u32::try_from(at + len).unwrap_or(u32::MAX),
        }
    }

    /// The bytes of `buf` (the message read) this span covers.
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// One label's name and value, as spans of the message read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelSpans {
    /// The name.
    pub name: Span,
    /// The value.
    pub value: Span,
}

/// A `Label` — `name = 1`, `value = 2`, the same message in remote write and in
/// `iocdb.v1` — as spans; the last name and the last value sent win, as in prost.
pub fn read_label(mut c: Cursor<'_>) -> Result<LabelSpans, DecodeError> {
    if let Some(label) = c.common_label() {
        return Ok(label);
    }
    let mut label = LabelSpans::default();
    // An absent name or value is empty: an empty span where the label starts.
    label.name = Span::new(c.position(), 0);
    label.value = label.name;
    while !c.done() {
        let (field, wire) = c.key()?;
        match field {
            1 => label.name = c.span(wire)?,
            2 => label.value = c.span(wire)?,
            _ => c.skip(field, wire)?,
        }
    }
    Ok(label)
}

/// A message's bytes and how far it has been read.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Where `buf` starts in the outermost message, for error offsets.
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`, an outermost message.
    ///
    /// # Errors
    /// A message of 4 GiB or more (its [`Span`]s could not say where its bytes are).
    pub fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        if u32::try_from(buf.len()).is_err() {
            return Err(DecodeError {
                what: "a message of 4 GiB or more",
                offset: 0,
            });
        }
        Ok(Cursor {
            buf,
            pos: 0,
            base: 0,
        })
    }

    /// A cursor over `inner`, a field's bytes that start `at` bytes into the outermost
    /// message (see [`Cursor::position`]).
    fn nested(inner: &'a [u8], at: usize) -> Self {
        Cursor {
            buf: inner,
            pos: 0,
            base: at,
        }
    }

    /// Where the cursor is, in bytes from the start of the outermost message.
    pub fn position(&self) -> usize {
        self.base + self.pos
    }

    /// A `Label` laid out as every sender writes it — the name (field 1) then the value
    /// (field 2), each shorter than 128 bytes and nothing else — read without the general
    /// loop of keys (a request holds one per label: reading them took 5 % of a remote-write
    /// server's time). `None` for any other layout, which the general reader then reads
    /// exactly as it reads every message; this one gives the same spans it would.
    #[inline]
    fn common_label(&self) -> Option<LabelSpans> {
        let buf = self.buf.get(self.pos..)?;
        let (&[0x0a, name_len], rest) = buf.split_first_chunk::<2>()? else {
            return None;
        };
        let name_len = usize::from(name_len);
        let (&[0x12, value_len], value) = rest.get(name_len..)?.split_first_chunk::<2>()? else {
            return None;
        };
        let value_len = usize::from(value_len);
        if name_len >= 0x80 || value_len >= 0x80 || value.len() != value_len {
            return None;
        }
        let at = self.position();
        Some(LabelSpans {
            name: Span::new(at + 2, name_len),
            value: Span::new(at + 4 + name_len, value_len),
        })
    }

    /// Whether the whole message has been read.
    #[inline]
    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError {
            what,
            offset: self.position(),
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.error("the message ends inside a varint"))?;
        self.pos += 1;
        Ok(b)
    }

    /// A varint of up to ten bytes; the tenth may only carry the 64th bit, as prost
    /// requires.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // Keys and short lengths are one byte: the common case costs one comparison.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(self.error("a varint longer than 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("a varint longer than 64 bits"))
    }

    /// The next field's number and wire type.
    #[inline]
    pub fn key(&mut self) -> Result<(u32, WireType), DecodeError> {
        let at = self.pos;
        let key = self.varint()?;
        let fail = |what| DecodeError {
            what,
            offset: self.base + at,
        };
        let key = u32::try_from(key).map_err(|_| fail("a field key longer than 32 bits"))?;
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(fail("an unknown wire type")),
        };
        let field = key >> 3;
        if field == 0 {
            return Err(fail("field number 0"));
        }
        Ok((field, wire))
    }

    /// A length-delimited field's bytes, and where they start in the outermost message.
    #[inline]
    fn len_delimited(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.error("a length past the end of the message"))?;
        let bytes = self.buf.get(start..end).unwrap_or_default();
        self.pos = end;
        Ok((bytes, self.base + start))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes: [u8; N] = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..N))
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| self.error("the message ends inside a fixed-width number"))?;
        self.pos += N;
        Ok(bytes)
    }

    /// Eight little-endian bytes.
    pub fn fixed64(&mut self) -> Result<u64, DecodeError> {
        self.fixed::<8>().map(u64::from_le_bytes)
    }

    /// Skips the value of field `field`, of wire type `wire`.
    pub fn skip(&mut self, field: u32, wire: WireType) -> Result<(), DecodeError> {
        self.skip_at_depth(field, wire, 0)
    }

    fn skip_at_depth(&mut self, field: u32, wire: WireType, depth: u32) -> Result<(), DecodeError> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.fixed::<8>().map(drop),
            WireType::Fixed32 => self.fixed::<4>().map(drop),
            WireType::Len => self.len_delimited().map(drop),
            WireType::EndGroup => Err(self.error("a group's end without its start")),
            WireType::StartGroup => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(self.error("groups nested too deep"));
                }
                loop {
                    if self.done() {
                        return Err(self.error("the message ends inside a group"));
                    }
                    let (inner, inner_wire) = self.key()?;
                    if inner_wire == WireType::EndGroup {
                        if inner != field {
                            return Err(self.error("a group ends with another group's number"));
                        }
                        return Ok(());
                    }
                    self.skip_at_depth(inner, inner_wire, depth + 1)?;
                }
            }
        }
    }

    /// A field of wire type `wire` that must be length-delimited (refused otherwise, as
    /// prost refuses it): where its bytes are.
    pub fn span(&mut self, wire: WireType) -> Result<Span, DecodeError> {
        self.expect(wire, WireType::Len)?;
        let (bytes, at) = self.len_delimited()?;
        Ok(Span::new(at, bytes.len()))
    }

    /// A field of wire type `wire` that must be an embedded message (refused otherwise):
    /// a cursor over it.
    pub fn message(&mut self, wire: WireType) -> Result<Cursor<'a>, DecodeError> {
        self.expect(wire, WireType::Len)?;
        let (bytes, at) = self.len_delimited()?;
        Ok(Cursor::nested(bytes, at))
    }

    /// Refuses a known field sent with another wire type than its own (as prost does).
    pub fn expect(&self, wire: WireType, wanted: WireType) -> Result<(), DecodeError> {
        if wire == wanted {
            Ok(())
        } else {
            Err(self.error("a field of the wrong wire type"))
        }
    }
}

/// For the readers' tests: `buf` with the bytes `damage` names overwritten, then whole and
/// cut short at `truncate`, each handed to `check` (a reader's check against prost).
#[cfg(test)]
pub(crate) fn check_damaged(
    mut buf: Vec<u8>,
    damage: Vec<(proptest::sample::Index, u8)>,
    truncate: proptest::sample::Index,
    check: fn(&[u8]),
) {
    if buf.is_empty() {
        return;
    }
    for (at, byte) in damage {
        let i = at.index(buf.len());
        buf[i] = byte;
    }
    check(&buf);
    check(&buf[..truncate.index(buf.len())]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(buf: &[u8]) -> Cursor<'_> {
        Cursor::new(buf).expect("a small message")
    }

    #[test]
    fn varints_as_prost_reads_them() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(v, &mut buf);
            assert_eq!(at(&buf).varint(), Ok(v));
        }
        // Overlong but within ten bytes: accepted, as prost accepts it.
        assert_eq!(at(&[0x80, 0x80, 0x00]).varint(), Ok(0));
        // Eleven bytes, or a tenth byte past the 64th bit: refused.
        assert!(at(&[0xff; 11]).varint().is_err());
        let mut tenth = vec![0xff; 9];
        tenth.push(0x02);
        assert!(at(&tenth).varint().is_err());
        assert!(at(&[0x80]).varint().is_err());
    }

    #[test]
    fn lengths_past_the_end_are_refused_with_their_offset() {
        let mut c = at(&[0x0a, 0x05, 1, 2]);
        assert_eq!(c.key(), Ok((1, WireType::Len)));
        let e = c.len_delimited().unwrap_err();
        assert_eq!(e.offset, 2, "{e}");
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(at(&huge).len_delimited().is_err());
    }

    #[test]
    fn groups_are_skipped_whole_and_must_close() {
        // field 5 start group, field 1 varint 7, field 5 end group, then field 2 varint 9.
        let buf = [0x2b, 0x08, 0x07, 0x2c, 0x10, 0x09];
        let mut c = at(&buf);
        let (f, w) = c.key().unwrap();
        c.skip(f, w).unwrap();
        assert_eq!(c.key(), Ok((2, WireType::Varint)));
        assert_eq!(c.varint(), Ok(9));
        assert!(c.done());
        let mut open = at(&[0x2b, 0x08, 0x07]);
        let (f, w) = open.key().unwrap();
        assert!(open.skip(f, w).is_err());
        let mut wrong = at(&[0x2b, 0x34]);
        let (f, w) = wrong.key().unwrap();
        assert!(wrong.skip(f, w).is_err());
        let deep: Vec<u8> = std::iter::repeat_n(0x2b, 200).collect();
        let mut deep = at(&deep);
        let (f, w) = deep.key().unwrap();
        assert!(deep.skip(f, w).is_err());
    }

    proptest::proptest! {
        /// Labels in every layout — the common one (name then value, both short), which is
        /// read without the loop of keys, and others: value first, repeated or missing
        /// fields, unknown fields, names and values of 128 bytes or more — read as prost
        /// reads them.
        #[test]
        fn labels_read_as_prost_reads_them(
            fields in proptest::collection::vec((1u32..4, "[a-zĐố]{0,140}"), 0..4),
            cut in proptest::option::of(0usize..400),
        ) {
            use prost::Message;
            let mut buf = Vec::new();
            for (field, text) in &fields {
                prost::encoding::encode_key(*field, prost::encoding::WireType::LengthDelimited, &mut buf);
                prost::encoding::encode_varint(text.len() as u64, &mut buf);
                buf.extend_from_slice(text.as_bytes());
            }
            let buf = &buf[..cut.map_or(buf.len(), |c| c.min(buf.len()))];
            let ours = read_label(at(buf));
            match crate::prompb::Label::decode(buf) {
                Ok(label) => {
                    let spans = ours.expect("prost read it");
                    proptest::prop_assert_eq!(spans.name.of(buf), label.name.as_bytes());
                    proptest::prop_assert_eq!(spans.value.of(buf), label.value.as_bytes());
                }
                Err(_) => proptest::prop_assert!(ours.is_err(), "prost refused {:?}", buf),
            }
        }
    }

    #[test]
    fn a_common_label_is_read_without_the_loop_and_others_with_it() {
        let common = [0x0a, 0x02, b'u', b'p', 0x12, 0x01, b'x'];
        let spans = at(&common).common_label().expect("the common layout");
        assert_eq!(
            (spans.name.of(&common), spans.value.of(&common)),
            (&b"up"[..], &b"x"[..])
        );
        let value_first = [0x12, 0x01, b'x', 0x0a, 0x02, b'u', b'p'];
        assert!(at(&value_first).common_label().is_none());
        let spans = read_label(at(&value_first)).expect("read");
        assert_eq!(spans.name.of(&value_first), b"up");
        let trailing = [0x0a, 0x02, b'u', b'p', 0x12, 0x01, b'x', 0x18, 0x01];
        assert!(at(&trailing).common_label().is_none());
        assert_eq!(
            read_label(at(&trailing)).expect("read").value.of(&trailing),
            b"x"
        );

        // A name of 200 bytes (a two-byte length) whose bytes, read with a one-byte length,
        // would look like the common layout: it is not taken for one.
        let mut long_name = vec![0x0a, 0xc8, 0x01];
        long_name.extend(std::iter::repeat_n(b'n', 199));
        long_name.push(0x12);
        long_name.extend([0x12, 0x11]);
        long_name.extend(std::iter::repeat_n(b'v', 17));
        assert!(at(&long_name).common_label().is_none());
        let spans = read_label(at(&long_name)).expect("read");
        assert_eq!(
            (spans.name.of(&long_name).len(), spans.value.of(&long_name)),
            (200, &[b'v'; 17][..])
        );

        // A value length that does not end in its first byte and runs past the message:
        // refused, not read as a one-byte length.
        let mut bad_value = vec![0x0a, 0x01, b'a', 0x12, 0x85];
        bad_value.extend(std::iter::repeat_n(0x80, 0x85));
        assert!(at(&bad_value).common_label().is_none());
        assert!(read_label(at(&bad_value)).is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(at(&[0x00]).key().is_err(), "field 0");
        assert!(at(&[0x0e]).key().is_err(), "wire type 6");
        assert!(
            at(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).key().is_err(),
            "over 32 bits"
        );
    }
}
