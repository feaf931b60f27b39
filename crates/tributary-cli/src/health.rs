//! `tributary health`: asks a node's operations port whether it serves (`GET /health`), for
//! container health checks and scripts. Exit 0 when it answers 200, 1 otherwise. Images built
//! from `scratch` have no curl; the node's own binary is the probe.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the whole probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(clap::Args)]
pub struct HealthArgs {
    /// The node's --http-listen address.
    #[arg(long, env = "TRIBUTARY_HTTP", default_value = "127.0.0.1:7201")]
    http: String,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let status_line = tokio::time::timeout(PROBE_TIMEOUT, status_line(&args.http))
        .await
        .with_context(|| format!("{} did not answer within {PROBE_TIMEOUT:?}", args.http))??;
    println!("{}: {status_line}", args.http);
    Ok(if status_line.split_whitespace().nth(1) == Some("200") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The status line of `GET /health` (HTTP/1.0: the server closes after answering).
async fn status_line(address: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: tributary\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}
