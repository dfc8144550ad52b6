//! Bad input gets the exact code the README promises, with a short message: bytes that are
//! not protobuf, messages over the size limits, huge values echoed back, and every numeric
//! request field out of its range.

use iocdb_proto::v1::{self, RangeFunction, range_function::Kind};
use tonic::Code;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::harness::{Server, eq, label_field, now_ms, series};

/// Sends raw bytes as a request body, whatever they are.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug, Clone, Default)]
struct RawEncoder;

#[derive(Debug, Clone, Default)]
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf as _;
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(server: &Server, path: &'static str, body: Vec<u8>, what: &str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .expect_err(&format!("{path}: {what} is not protobuf"))
}

/// Checks a status: its code, that its message and details (the bytes a client must
/// accept in headers) stay under `max_header_bytes`, and that its message says each of
/// `says`.
fn assert_status(status: &tonic::Status, code: Code, max_header_bytes: usize, says: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    let header_bytes = status.message().len() + status.details().len();
    assert!(
        header_bytes < max_header_bytes,
        "{header_bytes} bytes of status"
    );
    for s in says {
        assert!(
            status.message().contains(s),
            "{:?} lacks {s:?}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_that_are_not_protobuf_are_invalid_arguments() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let bodies: [(&str, Vec<u8>); 3] = [
        (
            "a bad varint",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
        ("a buffer underflow", vec![0x12, 0x40, 0x01]),
        ("invalid UTF-8 in a string", vec![0x0a, 0x02, 0xc3, 0x28]),
    ];
    for path in [
        "/iocdb.v1.Ingest/Write",
        "/iocdb.v1.Query/Latest",
        "/iocdb.v1.Admin/GetMetadata",
    ] {
        for (what, body) in &bodies {
            let status = raw_call(&server, path, body.clone(), what).await;
            assert_status(&status, Code::InvalidArgument, 4096, &["protobuf"]);
        }
    }
}

/// The `grpc-status` and `grpc-message` of a unary call sent frame by frame, as no
/// well-behaved client would: `message` after a frame header flagged `flag`, under
/// `grpc-encoding: encoding`.
async fn hand_framed_call(
    server: &Server,
    encoding: &str,
    flag: u8,
    message: &[u8],
) -> (String, String) {
    let authority = server.addr.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(connection);
    let mut send = send.ready().await.expect("ready");
    let head = http::Request::post(format!("http://{authority}/iocdb.v1.Ingest/Write"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-encoding", encoding)
        .body(())
        .expect("request");
    let (response, mut stream) = send.send_request(head, false).expect("send");
    let mut body = vec![flag];
    bytes::BufMut::put_u32(&mut body, message.len() as u32);
    body.extend_from_slice(message);
    stream.send_data(body.into(), true).expect("data");
    let response = response.await.expect("response");
    let (parts, mut recv) = response.into_parts();
    let mut headers = parts.headers;
    while let Some(data) = recv.data().await {
        let _ = data.expect("data");
    }
    if let Some(trailers) = recv.trailers().await.expect("trailers") {
        headers.extend(trailers);
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .replace("%20", " ")
    };
    (text("grpc-status"), text("grpc-message"))
}

/// A compressed write whose bytes do not decompress is the caller's error, and says which
/// compression and what is wrong (tonic's own decompression answered INTERNAL).
#[tokio::test(flavor = "multi_thread")]
async fn a_compressed_write_that_does_not_decompress_is_an_invalid_argument() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let invalid = (Code::InvalidArgument as i32).to_string();
    for (encoding, flag, message, says) in [
        ("zstd", 1, &b"not zstd at all"[..], "not valid zstd data"),
        ("gzip", 1, &b"\x1f\x8b not gzip"[..], "not valid gzip data"),
        ("zstd", 7, &b"x"[..], "flagged 7"),
    ] {
        let (status, text) = hand_framed_call(&server, encoding, flag, message).await;
        assert_eq!(status, invalid, "{encoding}: {text}");
        assert!(text.contains(says), "{encoding}: {text}");
    }
    // A well-framed zstd message goes through.
    let good = v1::WriteRequest {
        namespace: "tourism".into(),
        series: vec![series(
            "guests",
            &[("xa", "Long Xuyên")],
            &[(now_ms() - 1_000, 3.0)],
        )],
    };
    let compressed = zstd::bulk::compress(&prost::Message::encode_to_vec(&good), 3).expect("zstd");
    let (status, text) = hand_framed_call(&server, "zstd", 1, &compressed).await;
    assert_eq!(status, "0", "{text}");
}

/// `Ingest.Write` reads its message in place: a label value that is not UTF-8 refuses its
/// own series (prost would have refused the whole message), and the good series beside it
/// is stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_label_that_is_not_utf8_refuses_only_its_series() {
    use prost::Message;
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms() - 1_000;
    let good = v1::WriteRequest {
        namespace: "tourism".into(),
        series: vec![series("guests", &[("xa", "Châu Đốc")], &[(t, 3.0)])],
    };
    let mut body = good.encode_to_vec();
    // A second Series by hand: labels __name__="guests", xa="Ch\xffu"; one sample.
    let mut bad = label_field(b"__name__", b"guests");
    bad.extend(label_field(b"xa", b"Ch\xffu"));
    let mut ts = Vec::new();
    prost::encoding::encode_varint(t as u64, &mut ts);
    bad.extend_from_slice(&[0x12, ts.len() as u8]);
    bad.extend_from_slice(&ts);
    bad.extend_from_slice(&[0x1a, 8]);
    bad.extend_from_slice(&4.0f64.to_le_bytes());
    body.extend_from_slice(&[0x12, bad.len() as u8]);
    body.extend_from_slice(&bad);
    let status = raw_call(&server, "/iocdb.v1.Ingest/Write", body, "half of it").await;
    assert_status(
        &status,
        Code::InvalidArgument,
        4096,
        &[
            "1 samples rejected, 1 accepted",
            "series 1",
            "xa",
            "not UTF-8",
        ],
    );
    let latest = server
        .query()
        .await
        .latest(v1::LatestRequest {
            namespace: "tourism".into(),
            matchers: vec![eq("__name__", "guests")],
            ..Default::default()
        })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(latest.samples.len(), 1, "{latest:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_over_the_size_limits_are_resource_exhausted_naming_the_limit() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(
        &dir.path().join("data"),
        "max_ingest_message_bytes = 65536\nmax_query_message_bytes = 16384\n",
    );
    let t = now_ms() - 60_000;
    let big = || v1::WriteRequest {
        namespace: "security".into(),
        series: vec![series(
            "camera_count",
            &[("camera", "c1")],
            &(0..10_000).map(|i| (t - i, 1.0)).collect::<Vec<_>>(),
        )],
    };
    let unary = server
        .ingest()
        .await
        .write(big())
        .await
        .expect_err("too large");
    let streamed = server
        .ingest()
        .await
        .write_stream(tokio_stream::iter([big()]))
        .await
        .expect_err("too large");
    // Compressed, the message is far under the limit on the wire; what it decompresses to
    // is what counts (the unary write's decompression stops at the limit).
    // A message that does not compress is over the limit on the wire already, and is
    // refused before it is read whole.
    let incompressible = || {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let noise: String = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        v1::WriteRequest {
            namespace: "security".into(),
            series: vec![series("camera_count", &[("noise", &noise)], &[(t, 1.0)])],
        }
    };
    let mut compressed = Vec::new();
    for encoding in [CompressionEncoding::Zstd, CompressionEncoding::Gzip] {
        let mut client = server.ingest().await.send_compressed(encoding);
        compressed.push(client.write(big()).await.expect_err("too large"));
        compressed.push(client.write(incompressible()).await.expect_err("too large"));
    }
    for status in [unary, streamed].into_iter().chain(compressed) {
        let says = ["max_ingest_message_bytes", "split"];
        assert_status(&status, Code::ResourceExhausted, 4096, &says);
    }
    let query = v1::LatestRequest {
        namespace: "security".into(),
        matchers: vec![eq("camera", &"x".repeat(20_000))],
        at_ms: 0,
        lookback_ms: 0,
    };
    let status = server
        .query()
        .await
        .latest(query)
        .await
        .expect_err("too large");
    assert_status(
        &status,
        Code::ResourceExhausted,
        4096,
        &["max_query_message_bytes"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_values_come_back_short() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms() - 60_000;
    let status = server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "n".repeat(10_000),
            series: vec![series("m", &[], &[(t, 1.0)])],
        })
        .await
        .expect_err("bad namespace");
    assert_status(&status, Code::InvalidArgument, 4096, &["10000 bytes"]);

    let status = server
        .query()
        .await
        .latest(v1::LatestRequest {
            namespace: "n".into(),
            matchers: vec![v1::Matcher {
                name: "camera".into(),
                op: v1::matcher::Op::Regex as i32,
                value: format!("({}", "a".repeat(1 << 20)),
            }],
            at_ms: 0,
            lookback_ms: 0,
        })
        .await
        .expect_err("bad regex");
    assert_status(&status, Code::InvalidArgument, 4096, &["bad regex"]);

    // Thousands of bad series: the details list as many as fit in a few KB.
    let many = (0..5000)
        .map(|i| series("m", &[("bad-name", &format!("v{i}"))], &[(t, 1.0)]))
        .collect();
    let status = server
        .ingest()
        .await
        .write(v1::WriteRequest {
            namespace: "n".into(),
            series: many,
        })
        .await
        .expect_err("bad labels");
    assert_status(
        &status,
        Code::InvalidArgument,
        8192,
        &["5000 samples rejected"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_numeric_field_out_of_range_is_an_invalid_argument() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(&dir.path().join("data"), "");
    let t = now_ms();
    let range = |f: &dyn Fn(&mut v1::RangeQueryRequest)| {
        let mut r = v1::RangeQueryRequest {
            namespace: "n".into(),
            matchers: vec![eq("__name__", "m")],
            start_ms: t - 3_600_000,
            end_ms: t,
            step_ms: 60_000,
            function: None,
            aggregation: None,
            lookback_ms: None,
        };
        f(&mut r);
        r
    };
    let function = |window_ms| RangeFunction {
        kind: Kind::Rate as i32,
        window_ms,
        quantile: 0.0,
    };
    let topk = |param| v1::Aggregation {
        op: v1::aggregation::Op::Topk as i32,
        by: vec![],
        without: vec![],
        param,
    };
    let queries: Vec<(&str, v1::RangeQueryRequest)> = vec![
        ("step 0", range(&|r| r.step_ms = 0)),
        ("negative step", range(&|r| r.step_ms = -60_000)),
        ("end before start", range(&|r| r.end_ms = r.start_ms - 1)),
        ("negative lookback", range(&|r| r.lookback_ms = Some(-1))),
        ("window 0", range(&|r| r.function = Some(function(0)))),
        (
            "negative window",
            range(&|r| r.function = Some(function(-300_000))),
        ),
        ("topk 0", range(&|r| r.aggregation = Some(topk(0.0)))),
        (
            "negative topk",
            range(&|r| r.aggregation = Some(topk(-3.0))),
        ),
        (
            "fractional topk",
            range(&|r| r.aggregation = Some(topk(1.5))),
        ),
    ];
    for (what, q) in queries {
        let status = server.query().await.query_range(q).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    let latest = v1::LatestRequest {
        namespace: "n".into(),
        matchers: vec![],
        at_ms: t,
        lookback_ms: -1,
    };
    let status = server
        .query()
        .await
        .latest(latest)
        .await
        .expect_err("negative lookback");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    for factor in [-1.0, f64::NAN, f64::INFINITY] {
        let stale = v1::StaleRequest {
            namespace: "n".into(),
            matchers: vec![],
            at_ms: t,
            factor,
        };
        let status = server
            .query()
            .await
            .stale(stale)
            .await
            .expect_err("bad factor");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "factor {factor}: {status:?}"
        );
    }
    let select = v1::SelectRequest {
        namespace: "n".into(),
        matchers: vec![],
        start_ms: t,
        end_ms: t - 1,
    };
    let status = server
        .query()
        .await
        .select(select)
        .await
        .expect_err("end before start");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let filter = v1::MetadataFilter {
        namespace: "n".into(),
        matchers: vec![],
        start_ms: t,
        end_ms: t - 1,
        limit: 0,
    };
    let status = server
        .query()
        .await
        .series(filter.clone())
        .await
        .expect_err("series");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = server
        .query()
        .await
        .label_names(filter.clone())
        .await
        .expect_err("names");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let values = v1::LabelValuesRequest {
        filter: Some(filter),
        name: "commune".into(),
    };
    let status = server
        .query()
        .await
        .label_values(values)
        .await
        .expect_err("values");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}
