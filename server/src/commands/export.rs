//! `iocdb export`: the samples of the selected series, streamed to a file or stdout as
//! VictoriaMetrics JSON lines (exact to the bit) or OpenMetrics text; from a running server
//! (`Admin.Export`) or from a stopped one's data directory (`--data-dir`).

use std::io::{BufWriter, IsTerminal, Write};

use iocdb_engine::query::parse::series_selector;
use iocdb_engine::{Engine, Label, Options, Sample};
use iocdb_proto::v1::{self, admin_client::AdminClient};

use super::client::{connect, time_range};
use crate::cli::ExportArgs;
use crate::transfer::{Format, jsonl, text};

/// Writes series in the chosen format and counts them.
struct Writer {
    out: Box<dyn Write>,
    format: Format,
    series: u64,
    samples: u64,
    progress: indicatif::ProgressBar,
}

impl Writer {
    fn series(&mut self, labels: &[Label], samples: &[Sample]) -> std::io::Result<()> {
        match self.format {
            Format::Jsonl => jsonl::write(&mut self.out, labels, samples)?,
            Format::Openmetrics | Format::Promtool => text::write(&mut self.out, labels, samples)?,
        }
        self.series += 1;
        self.samples += samples.len() as u64;
        if self.series.is_multiple_of(64) {
            self.progress
                .set_message(format!("{} series, {} samples", self.series, self.samples));
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(u64, u64)> {
        if self.format == Format::Openmetrics {
            text::finish(&mut self.out)?;
        }
        self.out.flush()?;
        self.progress.finish_and_clear();
        Ok((self.series, self.samples))
    }
}

/// Runs the export.
pub async fn run(a: ExportArgs) -> anyhow::Result<()> {
    if a.format == Format::Promtool {
        anyhow::bail!(
            "promtool's dump format is read by `iocdb import`; export writes jsonl or openmetrics"
        );
    }
    let selector = a.selector.clone();
    let (start, end) = time_range(a.start.as_deref(), a.end.as_deref())?;
    let out: Box<dyn Write> = match a.output.as_deref() {
        None | Some("-") => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout())),
        Some(path) => Box::new(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {path}: {e}"))?,
        )),
    };
    let mut writer = Writer {
        out,
        format: a.format,
        series: 0,
        samples: 0,
        progress: super::spinner("exporting"),
    };
    match &a.data_dir {
        Some(dir) => {
            let matchers = series_selector(&selector)?;
            let engine = Engine::open(dir, Options::default()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} (is the server stopped?): {e}",
                    dir.display()
                )
            })?;
            let mut failed = None;
            engine
                .export(
                    &a.namespace,
                    &matchers,
                    (start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)),
                    256,
                    &mut |s| {
                        let labels: Vec<Label> = s.labels.iter().cloned().collect();
                        writer.series(&labels, &s.samples).map_err(|e| {
                            let message = e.to_string();
                            failed = Some(e);
                            iocdb_engine::Error::Internal(message)
                        })
                    },
                )
                .map_err(|e| match failed.take() {
                    Some(io) => anyhow::anyhow!("cannot write the export: {io}"),
                    None => e.into(),
                })?;
            engine.close()?;
        }
        None => {
            let mut stream = AdminClient::new(connect(&a.client).await?)
                .max_decoding_message_size(256 << 20)
                .export(v1::ExportRequest {
                    namespace: a.namespace.clone(),
                    matchers: Vec::new(),
                    selector,
                    start_ms: start,
                    end_ms: end,
                })
                .await?
                .into_inner();
            while let Some(batch) = stream.message().await? {
                for s in batch.series {
                    let labels: Vec<Label> = s
                        .labels
                        .into_iter()
                        .map(|l| Label::new(l.name, l.value))
                        .collect();
                    let samples: Vec<Sample> = s
                        .timestamps_ms
                        .iter()
                        .zip(&s.values)
                        .map(|(t, v)| Sample::new(*t, *v))
                        .collect();
                    writer.series(&labels, &samples)?;
                }
            }
        }
    }
    let (series, samples) = writer.finish()?;
    let to_file = a.output.as_deref().is_some_and(|o| o != "-");
    if a.json {
        let summary = serde_json::json!({"series": series, "samples": samples});
        if to_file {
            println!("{summary}");
        } else {
            eprintln!("{summary}");
        }
    } else if to_file || std::io::stderr().is_terminal() {
        eprintln!("exported {series} series, {samples} samples");
    }
    Ok(())
}
