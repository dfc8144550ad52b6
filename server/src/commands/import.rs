//! `iocdb import`: series from VictoriaMetrics JSON lines, OpenMetrics text or `promtool tsdb
//! dump` output, into a running server (`Ingest.Write`, in batches) or into a stopped one's
//! data directory (`--data-dir`). A bad line is reported with its file and line number and
//! skipped; a rejected sample is reported with its series and why; everything else is
//! imported, and the command exits non-zero when anything was left out.

use std::io::{BufRead, BufReader};

use iocdb_engine::{Engine, Label, Options, SeriesWrite, WriteRequest};
use iocdb_proto::v1::{self, ingest_client::IngestClient};
use prost::Message;

use super::client::connect;
use crate::cli::ImportArgs;
use crate::convert;
use crate::transfer::{Format, jsonl, text};

/// Problems shown one by one; beyond these, only counted.
const SHOWN: usize = 20;

enum Destination {
    Server(IngestClient<super::client::Conn>),
    Store(Engine),
}

/// What an import did.
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    bad_lines: u64,
    shown: usize,
}

impl Tally {
    fn problem(&mut self, text: String) {
        if self.shown < SHOWN {
            eprintln!("{text}");
            self.shown += 1;
        } else if self.shown == SHOWN {
            eprintln!("… further problems are counted, not shown");
            self.shown += 1;
        }
    }
}

struct Importer {
    namespace: String,
    destination: Destination,
    batch: Vec<SeriesWrite>,
    batch_samples: usize,
    batch_limit: usize,
    tally: Tally,
    progress: indicatif::ProgressBar,
}

impl Importer {
    async fn add(
        &mut self,
        labels: Vec<Label>,
        samples: Vec<iocdb_engine::Sample>,
    ) -> anyhow::Result<()> {
        self.batch_samples += samples.len();
        self.batch.push(SeriesWrite { labels, samples });
        if self.batch_samples >= self.batch_limit {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let series = std::mem::take(&mut self.batch);
        self.batch_samples = 0;
        let response = match &mut self.destination {
            Destination::Server(client) => {
                let req = v1::WriteRequest {
                    namespace: self.namespace.clone(),
                    series: series
                        .iter()
                        .map(|s| v1::Series {
                            labels: s
                                .labels
                                .iter()
                                .map(|l| v1::Label {
                                    name: l.name.clone(),
                                    value: l.value.clone(),
                                })
                                .collect(),
                            timestamps_ms: s.samples.iter().map(|x| x.t).collect(),
                            values: s.samples.iter().map(|x| x.v).collect(),
                            stream_id: 0,
                        })
                        .collect(),
                };
                // History: its arrival says nothing about the sources' liveness.
                let mut req = tonic::Request::new(req);
                req.metadata_mut().insert(
                    crate::service::ingest::BACKFILL_HEADER,
                    tonic::metadata::MetadataValue::from_static("1"),
                );
                match client.write(req).await {
                    Ok(answer) => answer.into_inner(),
                    // Some samples rejected: the answer rides in the status details.
                    Err(status) => match v1::WriteResponse::decode(status.details()) {
                        Ok(answer) if answer.rejected > 0 => answer,
                        _ => return Err(status.into()),
                    },
                }
            }
            Destination::Store(engine) => {
                let outcome = engine.write_backfill(WriteRequest {
                    namespace: self.namespace.clone(),
                    series: series.clone(),
                })?;
                let mut response = v1::WriteResponse::default();
                convert::add_outcome(&mut response, &outcome, 0);
                response
            }
        };
        self.tally.accepted += response.accepted;
        self.tally.rejected += response.rejected;
        for r in &response.rejections {
            let labels = series
                .get(r.series_index as usize)
                .map(|s| {
                    s.labels
                        .iter()
                        .map(|l| format!("{}={:?}", l.name, l.value))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let at = r
                .sample_index
                .and_then(|i| series.get(r.series_index as usize)?.samples.get(i as usize))
                .map_or(String::new(), |s| format!(" at {}", s.t));
            let text = format!(
                "rejected {} samples of {{{labels}}}{at}: {}",
                r.samples, r.message
            );
            self.tally.problem(text);
        }
        self.progress
            .set_message(format!("{} samples imported", self.tally.accepted));
        Ok(())
    }
}

/// Runs the import.
pub async fn run(a: ImportArgs) -> anyhow::Result<bool> {
    let destination = match &a.data_dir {
        Some(dir) => Destination::Store(Engine::open(dir, Options::default()).map_err(|e| {
            anyhow::anyhow!(
                "cannot open {} (is the server stopped?): {e}",
                dir.display()
            )
        })?),
        None => Destination::Server(
            IngestClient::new(connect(&a.client).await?)
                .max_encoding_message_size(64 << 20)
                .max_decoding_message_size(64 << 20),
        ),
    };
    let mut importer = Importer {
        namespace: a.namespace.clone(),
        destination,
        batch: Vec::new(),
        batch_samples: 0,
        batch_limit: a.batch.max(1),
        tally: Tally::default(),
        progress: super::spinner("importing"),
    };
    let files = if a.files.is_empty() {
        vec!["-".to_owned()]
    } else {
        a.files.clone()
    };
    for file in &files {
        let reader: Box<dyn BufRead> = if file == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(file)
                    .map_err(|e| anyhow::anyhow!("cannot open {file}: {e}"))?,
            ))
        };
        import_file(&mut importer, reader, file, a.format).await?;
    }
    importer.send().await?;
    if let Destination::Store(engine) = &importer.destination {
        // Leave the directory as a server leaves it: everything in segments.
        engine.flush()?;
        engine.close()?;
    }
    importer.progress.finish_and_clear();
    let t = &importer.tally;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "namespace": a.namespace,
                "accepted": t.accepted,
                "rejected": t.rejected,
                "bad_lines": t.bad_lines,
            })
        );
    }
    eprintln!(
        "imported {} samples into namespace {}; {} samples rejected, {} lines unreadable",
        t.accepted, a.namespace, t.rejected, t.bad_lines
    );
    Ok(t.rejected == 0 && t.bad_lines == 0)
}

async fn import_file(
    importer: &mut Importer,
    reader: Box<dyn BufRead>,
    file: &str,
    format: Format,
) -> anyhow::Result<()> {
    let dialect = match format {
        Format::Promtool => text::Dialect::Milliseconds,
        _ => text::Dialect::Seconds,
    };
    // Text formats give one sample a line: consecutive lines of one series are gathered.
    let mut current: Option<(Vec<Label>, Vec<iocdb_engine::Sample>)> = None;
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("{file}:{}: cannot read: {e}", n + 1))?;
        match format {
            Format::Jsonl => {
                if line.trim().is_empty() {
                    continue;
                }
                match jsonl::parse(&line) {
                    Ok(record) => {
                        importer.add(record.labels, record.samples).await?;
                    }
                    Err(why) => {
                        importer.tally.bad_lines += 1;
                        importer.tally.problem(format!("{file}:{}: {why}", n + 1));
                    }
                }
            }
            Format::Openmetrics | Format::Promtool => match text::parse(&line, dialect) {
                Ok(None) => {}
                Ok(Some((labels, sample))) => match &mut current {
                    Some((l, samples)) if *l == labels => samples.push(sample),
                    _ => {
                        if let Some((l, samples)) = current.replace((labels, vec![sample])) {
                            importer.add(l, samples).await?;
                        }
                    }
                },
                Err(why) => {
                    importer.tally.bad_lines += 1;
                    importer.tally.problem(format!("{file}:{}: {why}", n + 1));
                }
            },
        }
    }
    if let Some((l, samples)) = current {
        importer.add(l, samples).await?;
    }
    Ok(())
}
