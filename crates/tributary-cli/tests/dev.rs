//! `tributary dev`: a local 3-AZ cluster from one command, ready line, clean stop on SIGTERM, and
//! the same data back when started again on the same data dir.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::BINARY;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A base port whose three gRPC, three HTTP and three Kinesis ports (base + 200..) are all free
/// right now.
fn free_base_port() -> u16 {
    for attempt in 0..200u16 {
        let base = 20_000 + (std::process::id() as u16 % 200) * 100 + attempt * 7 % 20_000;
        let ports = [
            base,
            base + 1,
            base + 2,
            base + 100,
            base + 101,
            base + 102,
            base + 200,
            base + 201,
            base + 202,
        ];
        let probes: Vec<_> = ports
            .iter()
            .map(|p| TcpListener::bind(("127.0.0.1", *p)))
            .collect();
        if probes.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no free port range found");
}

struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Dev {
    fn start(base_port: u16, data_dir: &std::path::Path) -> Dev {
        Dev::start_with(base_port, data_dir, &[])
    }

    fn start_with(base_port: u16, data_dir: &std::path::Path, extra: &[&str]) -> Dev {
        let mut child = Command::new(BINARY)
            .args([
                "dev",
                "--nodes",
                "3",
                "--azs",
                "3",
                "--base-port",
                &base_port.to_string(),
                "--kinesis-port",
                &(base_port + 200).to_string(),
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tributary dev starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Dev { child, lines }
    }

    fn wait_ready(&self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let ready = line.contains("ready");
                    seen.push(line);
                    if ready {
                        return seen;
                    }
                }
                Err(_) => panic!("tributary dev printed no ready line; output so far: {seen:?}"),
            }
        }
    }

    fn stop(mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "tributary dev exits cleanly on SIGTERM: {status}"
        );
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn cli(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new(BINARY)
        .args(args)
        .env("TRIBUTARY_ENDPOINT", endpoint)
        .output()
        .unwrap()
}

/// An unsigned Kinesis ListStreams over plain HTTP/1.1; the whole response.
fn list_streams_over_kinesis(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the Kinesis port answers");
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         X-Amz-Target: Kinesis_20131202.ListStreams\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn dev_cluster_starts_stops_and_keeps_its_data() {
    let data_dir = tempfile::tempdir().unwrap();
    let base = free_base_port();
    let endpoint = format!(
        "127.0.0.1:{base},127.0.0.1:{},127.0.0.1:{}",
        base + 1,
        base + 2
    );

    let dev = Dev::start(base, data_dir.path());
    let output = dev.wait_ready();
    assert!(
        output.iter().any(|l| l.contains("az-3")),
        "nodes spread over 3 AZs: {output:?}"
    );
    let created = cli(&endpoint, &["stream", "create", "kept", "--shards", "2"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let put = cli(
        &endpoint,
        &["put", "kept", "--partition-key", "k", "survives restarts"],
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    // The Kinesis API is on by default, unauthenticated, and sees the same streams.
    let kinesis = format!("127.0.0.1:{}", base + 200);
    assert!(
        output
            .iter()
            .any(|l| l.contains(&format!("kinesis endpoint: http://{kinesis}"))),
        "the Kinesis endpoint is printed: {output:?}"
    );
    let listed = list_streams_over_kinesis(&kinesis);
    assert!(
        listed.starts_with("HTTP/1.1 200") && listed.contains(r#""StreamNames":["kept"]"#),
        "{listed}"
    );
    dev.stop();

    let dev = Dev::start(base, data_dir.path());
    dev.wait_ready();
    let got = cli(&endpoint, &["get", "kept"]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(
        text.contains("survives restarts"),
        "data back after restart: {text}"
    );
    dev.stop();
}

/// `tributary dev --secure`: TLS and auth from one command; it prints what clients need.
#[test]
fn dev_secure_serves_tls_and_requires_credentials() {
    let base = free_base_port();
    let dir = tempfile::tempdir().unwrap();
    let dev = Dev::start_with(base, dir.path(), &["--secure"]);
    let output = dev.wait_ready();
    let export = |name: &str| -> String {
        output
            .iter()
            .flat_map(|line| line.split_whitespace())
            .find_map(|word| word.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {output:?}"))
            .to_string()
    };
    let (endpoint, ca) = (export("TRIBUTARY_ENDPOINT"), export("TRIBUTARY_TLS_CA"));
    let (key_id, secret) = (
        export("TRIBUTARY_ACCESS_KEY_ID"),
        export("TRIBUTARY_SECRET_ACCESS_KEY"),
    );
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let mut command = Command::new(BINARY);
        command.args(args).env("TRIBUTARY_ENDPOINT", &endpoint);
        for variable in [
            "TRIBUTARY_TLS_CA",
            "TRIBUTARY_ACCESS_KEY_ID",
            "TRIBUTARY_SECRET_ACCESS_KEY",
            "TRIBUTARY_CLIENT_CERT",
            "TRIBUTARY_CLIENT_KEY",
        ] {
            command.env_remove(variable);
        }
        command.envs(envs.iter().copied()).output().unwrap()
    };
    let all = [
        ("TRIBUTARY_TLS_CA", ca.as_str()),
        ("TRIBUTARY_ACCESS_KEY_ID", key_id.as_str()),
        ("TRIBUTARY_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let created = run(&all, &["stream", "create", "secured", "--shards", "1"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let status = run(&all, &["cluster", "status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("auth: required, tls: on"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    // TLS without credentials: UNAUTHENTICATED.
    let anonymous = run(&all[..1], &["stream", "list"]);
    assert!(!anonymous.status.success());
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("UNAUTHENTICATED"),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );
    // Or the admin's client certificate, which it printed too, instead of the access key.
    let (cert, key) = (
        export("TRIBUTARY_CLIENT_CERT"),
        export("TRIBUTARY_CLIENT_KEY"),
    );
    let by_certificate = run(
        &[
            all[0],
            ("TRIBUTARY_CLIENT_CERT", cert.as_str()),
            ("TRIBUTARY_CLIENT_KEY", key.as_str()),
        ],
        &["stream", "list"],
    );
    assert!(
        String::from_utf8_lossy(&by_certificate.stdout).contains("secured"),
        "{}",
        String::from_utf8_lossy(&by_certificate.stderr)
    );
    dev.stop();
}
