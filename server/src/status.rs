//! The one place where engine errors become gRPC status codes.
//!
//! | engine                                   | gRPC                | client should          |
//! |------------------------------------------|---------------------|------------------------|
//! | bad input (`InvalidArgument`, rejections)| INVALID_ARGUMENT    | fix the request        |
//! | a limit, the memory budget, a full disk  | RESOURCE_EXHAUSTED  | back off and retry     |
//! | writes stopped, closed, shutting down    | UNAVAILABLE         | retry elsewhere/later  |
//! | query deadline                           | DEADLINE_EXCEEDED   | narrow the query       |
//! | corrupt file met by a query              | DATA_LOSS (names it)| page an operator       |
//! | anything else                            | INTERNAL + error id | report the id          |

use std::sync::atomic::{AtomicU64, Ordering};

use iocdb_engine::{Error, Limit};
use tonic::{Code, Status};

static ERROR_IDS: AtomicU64 = AtomicU64::new(1);

/// Longest status message sent, bytes: default gRPC clients refuse metadata past a few KB,
/// and would then report that instead of the real error.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `msg` cut to [`MAX_MESSAGE_BYTES`] on a character boundary, saying how long it was.
pub fn bounded(msg: String) -> String {
    if msg.len() <= MAX_MESSAGE_BYTES {
        return msg;
    }
    let cut = (0..=MAX_MESSAGE_BYTES - 40)
        .rev()
        .find(|&i| msg.is_char_boundary(i))
        .unwrap_or(0);
    format!(
        "{}… ({} bytes in all)",
        msg.get(..cut).unwrap_or_default(),
        msg.len()
    )
}

/// Maps an engine error to a status, its message bounded by [`bounded`].
pub fn to_status(e: Error) -> Status {
    let waits_for_flush = matches!(
        e,
        Error::ResourceExhausted {
            limit: Limit::HeadMemoryBudget | Limit::HeadMemoryShare,
            ..
        }
    );
    let (code, message) = match e {
        Error::InvalidArgument(msg) => (Code::InvalidArgument, msg),
        // A query that failed while it ran (ambiguous matching, duplicate label sets): the
        // question needs changing, as with a bad argument.
        Error::Execution(msg) => (Code::InvalidArgument, msg),
        Error::ResourceExhausted { limit, detail } => {
            (Code::ResourceExhausted, format!("{limit}: {detail}"))
        }
        Error::DeadlineExceeded { .. } => (Code::DeadlineExceeded, e.to_string()),
        Error::WritesStopped { .. } | Error::Closed => (Code::Unavailable, e.to_string()),
        Error::Corrupt { .. } => {
            tracing::error!(error = %e, "corrupt data met by a request");
            (Code::DataLoss, e.to_string())
        }
        e if e.is_disk_full() => (Code::ResourceExhausted, format!("disk: {e}")),
        e => return internal(&e),
    };
    let mut status = Status::new(code, bounded(message));
    if waits_for_flush {
        // The server flushes early when the head or a namespace's share is half full.
        status.metadata_mut().insert(
            "retry-after-ms",
            tonic::metadata::MetadataValue::from(1000u32),
        );
    }
    status
}

/// An INTERNAL status whose id also appears in the log.
pub fn internal(e: &dyn std::fmt::Display) -> Status {
    let id = ERROR_IDS.fetch_add(1, Ordering::Relaxed);
    tracing::error!(error_id = id, error = %e, "internal error");
    Status::new(
        Code::Internal,
        format!("internal error (id {id}); the server log has the details"),
    )
}

/// The server is shutting down.
pub fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down; retry against another instance or later")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_engine_error_is_internal_with_an_id_and_no_details() {
        let status = to_status(Error::Internal("a query worker panicked: secret".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("id"), "{}", status.message());
        assert!(!status.message().contains("secret"), "{}", status.message());
    }

    #[test]
    fn stopped_writes_are_unavailable_so_clients_retry() {
        let status = to_status(Error::WritesStopped {
            reason: "fsync of wal/1 failed".into(),
        });
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("retry"), "{}", status.message());
    }
}
