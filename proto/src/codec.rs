//! The codec of every generated service and client: prost, except that a request body
//! that is not valid protobuf (a bad varint, a buffer underflow, invalid UTF-8 in a string
//! field) is the caller's error — `INVALID_ARGUMENT` — and not `INTERNAL`, which gRPC
//! reserves for the server's own faults.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Prost encoding; decode errors answered as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct IocdbCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for IocdbCodec<T, U> {
    fn default() -> Self {
        IocdbCodec(PhantomData)
    }
}

impl<T, U> Codec for IocdbCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::default()))
    }
}

/// Prost decoding, mapping its errors to `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            Status::invalid_argument(format!(
                "the request is not a valid {} protobuf message: {}",
                std::any::type_name::<U>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("iocdb.v1"),
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
