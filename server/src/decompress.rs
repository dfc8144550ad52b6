//! Compressed unary writes (`grpc-encoding: zstd` or `gzip` on `iocdb.v1.Ingest/Write`),
//! decompressed into pooled memory before tonic reads them.
//!
//! Tonic decompresses each message into a buffer of its own, reserved at twice the
//! compressed size and grown by doubling as the decompressor writes, with a zstd or gzip
//! context made for that message alone: a request of 15 KB of zstd that holds 220 KB cost
//! a new context, four growths of its buffer and pages that the next request faulted in
//! again. Here the zstd context and the buffer come from pools and serve the next request;
//! the request then goes on to tonic as if it had been sent uncompressed (its
//! `grpc-encoding` removed, its frames re-framed plain), so the service reads it like any
//! other. What a message decompresses to is bounded by `max_ingest_message_bytes` as it is
//! written, so a small body cannot make the server allocate more than the limit.
//!
//! Streams (`WriteStream`) are left to tonic: their messages arrive one by one over a long
//! call, and a stream's buffers already serve its next message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::BodyExt;
use iocdb_engine::scratch::Pool;
use prost::bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::body::Body;

/// The one method whose compressed requests are decompressed here.
const PATH: &str = "/iocdb.v1.Ingest/Write";

/// Largest buffer that goes back to the pool.
const KEPT_BYTES: usize = 8 << 20;

/// Decompressed requests' buffers: lent to a request, given back when tonic drops its body.
static BUFFERS: Pool<Vec<u8>> = Pool::new(|b| b.capacity() <= KEPT_BYTES);

/// zstd decompression contexts (each holds its window between requests).
static ZSTD: Pool<Zstd> = Pool::new(|_| true);

#[derive(Default)]
struct Zstd(Option<zstd::stream::raw::Decoder<'static>>);

/// Lets the pooled buffers and contexts go once none was lent for `idle`.
pub fn release_idle(idle: std::time::Duration) {
    BUFFERS.release_idle(idle);
    ZSTD.release_idle(idle);
}

/// The compressions decompressed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Zstd,
    Gzip,
}

impl Encoding {
    fn of<B>(request: &Request<B>) -> Option<Encoding> {
        match request.headers().get("grpc-encoding")?.as_bytes() {
            b"zstd" => Some(Encoding::Zstd),
            b"gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }
}

/// The layer: `limit` is `max_ingest_message_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    /// Most bytes one message may decompress to.
    pub limit: usize,
}

impl<S> tower::Layer<S> for Layer {
    type Service = Service<S>;

    fn layer(&self, inner: S) -> Service<S> {
        Service {
            inner,
            limit: self.limit,
        }
    }
}

/// See [`Layer`].
#[derive(Debug, Clone)]
pub struct Service<S> {
    inner: S,
    limit: usize,
}

impl<S, RB> tower::Service<Request<Body>> for Service<S>
where
    S: tower::Service<Request<Body>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let encoding = Encoding::of(&request).filter(|_| request.uri().path() == PATH);
        let Some(encoding) = encoding else {
            return Box::pin(self.inner.call(request));
        };
        // The service made ready is the one called; a clone takes its place (tower's idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match decompressed(body, encoding, limit).await {
                Ok(plain) => {
                    parts.headers.remove("grpc-encoding");
                    let body = Body::new(http_body_util::Full::new(plain));
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// A pooled buffer handed to tonic as a request body; back to the pool when dropped.
struct Lent(Vec<u8>);

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        BUFFERS.give_back(std::mem::take(&mut self.0));
    }
}

/// The request's body with each message decompressed and framed plain.
async fn decompressed(body: Body, encoding: Encoding, limit: usize) -> Result<Bytes, Status> {
    // A message's frame is its 5-byte header and at most `limit` compressed bytes.
    let compressed = http_body_util::Limited::new(body, limit.saturating_add(5))
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Status::resource_exhausted(crate::oversize::ingest_message(limit))
            } else {
                Status::cancelled(format!("reading the request failed: {e}"))
            }
        })?
        .to_bytes();
    let mut out = BUFFERS.take();
    match plain_frames(&compressed, encoding, limit, &mut out) {
        Ok(()) => Ok(Bytes::from_owner(Lent(out))),
        Err(status) => {
            BUFFERS.give_back(out);
            Err(status)
        }
    }
}

/// Writes the gRPC messages of `body` into `out` (emptied first) framed uncompressed,
/// decompressing those flagged compressed with `encoding`. `limit` bounds the messages
/// together: a unary call carries one, and a body of many small compressed frames must
/// not decompress to many times the limit.
fn plain_frames(
    mut body: &[u8],
    encoding: Encoding,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), Status> {
    out.clear();
    let mut frames = 0;
    while !body.is_empty() {
        // What the messages before this one left of the limit.
        let limit = limit.saturating_sub(out.len() - 5 * frames);
        frames += 1;
        let (&[flag, a, b, c, d], rest) = body.split_first_chunk::<5>().ok_or_else(|| {
            Status::invalid_argument(format!(
                "the request ends inside a message's 5-byte frame header ({} bytes left)",
                body.len()
            ))
        })?;
        let len = (&mut &[a, b, c, d][..]).get_u32() as usize;
        let (message, rest) = rest.split_at_checked(len).ok_or_else(|| {
            Status::invalid_argument(format!(
                "the request's frame announces a message of {len} bytes, {} follow",
                rest.len()
            ))
        })?;
        body = rest;
        let start = out.len();
        out.put_bytes(0, 5);
        match flag {
            0 if len > limit => {
                return Err(Status::resource_exhausted(crate::oversize::ingest_message(
                    limit,
                )));
            }
            0 => out.extend_from_slice(message),
            1 => match encoding {
                Encoding::Zstd => ZSTD.with(|z| unzstd(z, message, limit, out))?,
                Encoding::Gzip => ungzip(message, limit, out)?,
            },
            f => {
                return Err(Status::invalid_argument(format!(
                    "a message's frame is flagged {f} (0: plain, 1: compressed)"
                )));
            }
        }
        let plain = out.len() - start - 5;
        let header = out.get_mut(start..start + 5).unwrap_or_default();
        let mut header: &mut [u8] = header;
        header.put_u8(0);
        // `plain` ≤ `limit`, which tonic's own frames also hold in a u32.
        header.put_u32(u32::try_from(plain).unwrap_or(u32::MAX));
    }
    Ok(())
}

/// The error for a compressed message that does not decompress.
fn corrupt(encoding: Encoding, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!(
        "the request's message is not valid {} data: {why}",
        encoding.name()
    ))
}

/// Decompresses the zstd frames of `src` onto the end of `out`, at most `limit` bytes.
fn unzstd(zstd: &mut Zstd, src: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Status> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let bad = |e: std::io::Error| corrupt(Encoding::Zstd, e);
    let decoder = match &mut zstd.0 {
        Some(d) => d,
        empty => empty.insert(Decoder::new().map_err(bad)?),
    };
    // A context left mid-frame by an earlier request that failed starts over.
    decoder.reinit().map_err(bad)?;
    let start = out.len();
    let mut input = InBuffer::around(src);
    loop {
        let written = out.len() - start;
        if out.len() == out.capacity() {
            // One byte past the limit tells a message that is too large from one that
            // fills it exactly.
            let room = (limit + 1).saturating_sub(written);
            if room == 0 {
                return Err(Status::resource_exhausted(crate::oversize::ingest_message(
                    limit,
                )));
            }
            out.reserve(written.max(4 * src.len()).max(64 << 10).min(room));
        }
        let before = (input.pos(), out.len());
        // The decoder writes into `out`'s spare capacity and sets its length.
        let hint = decoder
            .run(&mut input, &mut OutBuffer::around_pos(out, before.1))
            .map_err(bad)?;
        if out.len() - start > limit {
            return Err(Status::resource_exhausted(crate::oversize::ingest_message(
                limit,
            )));
        }
        let consumed = input.pos() == src.len();
        if hint == 0 {
            // A frame ended: the message may hold another (concatenated frames).
            if consumed {
                return Ok(());
            }
            decoder.reinit().map_err(bad)?;
        } else if consumed && out.len() < out.capacity() {
            return Err(corrupt(Encoding::Zstd, "the data ends inside a frame"));
        } else if (input.pos(), out.len()) == before && out.len() < out.capacity() {
            return Err(corrupt(Encoding::Zstd, "the decoder made no progress"));
        }
    }
}

/// Decompresses the gzip members of `src` onto the end of `out`, at most `limit` bytes.
fn ungzip(src: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Status> {
    use std::io::Read;
    let start = out.len();
    flate2::read::MultiGzDecoder::new(src)
        .take(limit as u64 + 1)
        .read_to_end(out)
        .map_err(|e| corrupt(Encoding::Gzip, e))?;
    if out.len() - start > limit {
        return Err(Status::resource_exhausted(crate::oversize::ingest_message(
            limit,
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut f = vec![flag];
        f.put_u32(message.len() as u32);
        f.extend_from_slice(message);
        f
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    fn message(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    #[test]
    fn compressed_messages_come_out_framed_plain_and_the_buffer_serves_the_next() {
        for (encoding, compress) in [
            (
                Encoding::Zstd,
                (|m: &[u8]| zstd::bulk::compress(m, 3).expect("zstd")) as fn(&[u8]) -> Vec<u8>,
            ),
            (Encoding::Gzip, |m: &[u8]| gzip(m)),
        ] {
            let mut out = Vec::new();
            for n in [0, 1, 5, 100_000, 300_000, 7] {
                let m = message(n);
                let mut body = framed(1, &compress(&m));
                body.extend(framed(0, b"plain"));
                plain_frames(&body, encoding, 1 << 20, &mut out).expect("decompresses");
                let mut want = framed(0, &m);
                want.extend(framed(0, b"plain"));
                assert_eq!(out, want, "{encoding:?}, {n} bytes");
            }
        }
    }

    #[test]
    fn zstd_written_as_a_stream_without_its_size_and_in_two_frames_decompresses() {
        let m = message(200_000);
        let mut z = Vec::new();
        // A streaming encoder, as tonic's client writes: no content size in the header.
        let mut e = zstd::stream::write::Encoder::new(&mut z, 1).expect("encoder");
        std::io::Write::write_all(&mut e, &m).expect("write");
        e.finish().expect("finish");
        z.extend(zstd::bulk::compress(b"tail", 1).expect("zstd"));
        let mut out = Vec::new();
        plain_frames(&framed(1, &z), Encoding::Zstd, 1 << 20, &mut out).expect("ok");
        let mut whole = m.clone();
        whole.extend_from_slice(b"tail");
        assert_eq!(out, framed(0, &whole));
    }

    #[test]
    fn a_message_past_the_limit_is_refused_as_it_decompresses() {
        let m = vec![0u8; 10 << 20];
        let z = zstd::bulk::compress(&m, 3).expect("zstd");
        assert!(z.len() < 4096, "a bomb: {} bytes", z.len());
        let mut out = Vec::new();
        for (encoding, body) in [(Encoding::Zstd, z), (Encoding::Gzip, gzip(&m))] {
            let e = plain_frames(&framed(1, &body), encoding, 1 << 20, &mut out)
                .expect_err("over the limit");
            assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{encoding:?}");
            assert!(e.message().contains("max_ingest_message_bytes"), "{e}");
            assert!(out.capacity() <= 2 << 20, "grew to {}", out.capacity());
        }
        // Exactly at the limit is allowed.
        let exact = zstd::bulk::compress(&m[..1 << 20], 3).expect("zstd");
        plain_frames(&framed(1, &exact), Encoding::Zstd, 1 << 20, &mut out).expect("at limit");
        let plain = framed(0, &m[..(1 << 20) + 1]);
        let e = plain_frames(&plain, Encoding::Zstd, 1 << 20, &mut out).expect_err("plain over");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        // Many frames, each under the limit, together over it: refused as they add up.
        let quarter = zstd::bulk::compress(&m[..300 << 10], 3).expect("zstd");
        let many: Vec<u8> = (0..100).flat_map(|_| framed(1, &quarter)).collect();
        let e = plain_frames(&many, Encoding::Zstd, 1 << 20, &mut out).expect_err("together");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(out.capacity() <= 2 << 20, "grew to {}", out.capacity());
    }

    #[test]
    fn broken_input_is_refused_with_what_is_wrong_and_the_context_recovers() {
        let m = message(50_000);
        let z = zstd::bulk::compress(&m, 3).expect("zstd");
        let mut out = Vec::new();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (framed(1, &z[..z.len() / 2]), "ends inside a frame"),
            (framed(1, b"not zstd at all"), "not valid zstd"),
            (framed(2, b"x"), "flagged 2"),
            (vec![1, 0, 0], "5-byte frame header"),
            (framed(1, &z)[..20].to_vec(), "announces a message of"),
        ];
        let mut zstd = Zstd::default();
        for (body, why) in cases {
            let e = plain_frames(&body, Encoding::Zstd, 1 << 20, &mut out).expect_err(why);
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{why}");
            assert!(e.message().contains(why), "{why}: {}", e.message());
            // A context that failed mid-frame decodes the next message whole.
            let _ = unzstd(&mut zstd, &z[..z.len() / 2], 1 << 20, &mut Vec::new());
            let mut again = Vec::new();
            unzstd(&mut zstd, &z, 1 << 20, &mut again).expect("recovers");
            assert_eq!(again, m);
        }
        let e = plain_frames(
            &framed(1, b"\x1f\x8b junk"),
            Encoding::Gzip,
            1 << 20,
            &mut out,
        )
        .expect_err("gzip junk");
        assert!(e.message().contains("not valid gzip"), "{}", e.message());
    }
}
