//! A unary-request gRPC client on a bare HTTP/2 connection, for measuring what a call costs
//! the server. tonic's client (through hyper) writes a request's HEADERS frame, then hands
//! the body to another task that writes the DATA frame: two packets, so the server wakes
//! twice per call when it is otherwise idle. grpc-go and grpc-core queue both frames and
//! write them together; this client does the same (both frames are queued before the
//! connection task runs, which writes them in one `writev`), so that a small query's cost
//! over gRPC can be told apart from the cost of the client that asked it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// One HTTP/2 connection to a gRPC server, its connection task running on the caller's
/// runtime.
pub struct LeanGrpc {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
}

impl LeanGrpc {
    /// Connects to `url` (`http://host:port`).
    pub async fn connect(url: &str) -> Result<Self, String> {
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// is supported"))?
            .trim_end_matches('/')
            .to_string();
        let tcp = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, connection) = h2::client::handshake(tcp)
            .await
            .map_err(|e| format!("{authority}: HTTP/2 handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("lean gRPC connection closed: {e}");
            }
        });
        Ok(LeanGrpc { send, authority })
    }

    /// Calls `path` (`/package.Service/Method`) with one request message and returns every
    /// response message, decoded, once the call ends with `grpc-status: 0`.
    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &mut self,
        path: &str,
        request: &Req,
    ) -> Result<Vec<Resp>, String> {
        let request = Self::frame(&request.encode_to_vec())?;
        self.call_framed(path, &request).await
    }

    /// An encoded request message in its gRPC frame (uncompressed), to send with
    /// [`LeanGrpc::call_framed`] as many times as needed.
    pub fn frame(message: &[u8]) -> Result<Framed, String> {
        Ok(Framed {
            body: framed(0, message)?,
            encoding: None,
        })
    }

    /// [`LeanGrpc::frame`], the message compressed with zstd at `level` (`grpc-encoding:
    /// zstd`), as a client that compresses its requests sends it.
    pub fn frame_zstd(message: &[u8], level: i32) -> Result<Framed, String> {
        let compressed = zstd::bulk::compress(message, level).map_err(|e| e.to_string())?;
        Ok(Framed {
            body: framed(1, &compressed)?,
            encoding: Some("zstd"),
        })
    }

    /// [`LeanGrpc::call`] with the request already framed ([`LeanGrpc::frame`]): the client
    /// encodes and copies nothing per call.
    pub async fn call_framed<Resp: prost::Message + Default>(
        &mut self,
        path: &str,
        request: &Framed,
    ) -> Result<Vec<Resp>, String> {
        let mut head = http::Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(encoding) = request.encoding {
            head = head.header("grpc-encoding", encoding);
        }
        let head = head.body(()).map_err(|e| e.to_string())?;
        let body = request.body.clone();
        let mut send = self.send.clone().ready().await.map_err(|e| e.to_string())?;
        let (response, mut stream) = send.send_request(head, false).map_err(|e| e.to_string())?;
        stream.send_data(body, true).map_err(|e| e.to_string())?;
        let response = response.await.map_err(|e| e.to_string())?;
        let (parts, mut recv) = response.into_parts();
        if let Some(status) = grpc_status(&parts.headers) {
            return Err(status);
        }
        let mut buffered = BytesMut::new();
        while let Some(data) = recv.data().await {
            let data = data.map_err(|e| e.to_string())?;
            let _ = recv.flow_control().release_capacity(data.len());
            buffered.extend_from_slice(&data);
        }
        let trailers = recv
            .trailers()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the call ended without trailers")?;
        if let Some(status) = grpc_status(&trailers) {
            return Err(status);
        }
        let mut messages = Vec::new();
        let mut rest = buffered.freeze();
        while rest.has_remaining() {
            if rest.remaining() < 5 {
                return Err(format!("{} bytes left after the last message", rest.len()));
            }
            if rest.get_u8() != 0 {
                return Err("a compressed message (none was asked for)".into());
            }
            let len = rest.get_u32() as usize;
            if rest.remaining() < len {
                return Err(format!(
                    "a message of {len} bytes, {} left",
                    rest.remaining()
                ));
            }
            let message = Resp::decode(rest.split_to(len)).map_err(|e| e.to_string())?;
            messages.push(message);
        }
        Ok(messages)
    }
}

/// A request message in its gRPC frame, and the `grpc-encoding` it is compressed with.
#[derive(Clone, Debug)]
pub struct Framed {
    body: Bytes,
    encoding: Option<&'static str>,
}

impl Framed {
    /// Bytes on the wire, frame header included.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the frame is empty (never: it has a header).
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

/// `message` after gRPC's frame header: the compressed flag and the length.
fn framed(compressed: u8, message: &[u8]) -> Result<Bytes, String> {
    let mut body = BytesMut::with_capacity(5 + message.len());
    body.put_u8(compressed);
    body.put_u32(u32::try_from(message.len()).map_err(|e| e.to_string())?);
    body.put_slice(message);
    Ok(body.freeze())
}

/// The call's failure, when `headers` carry a `grpc-status` other than 0.
fn grpc_status(headers: &http::HeaderMap) -> Option<String> {
    let status = headers.get("grpc-status")?.to_str().unwrap_or("?");
    (status != "0").then(|| {
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or("");
        format!("grpc-status {status}: {message}")
    })
}
