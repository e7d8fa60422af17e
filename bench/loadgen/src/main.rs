//! End-to-end upload throughput and memory of chunked-upload's example server, side by side
//! with nginx's WebDAV PUT plus an fsync (the floor), a plain single-request upload to a small
//! hyper server, and the Python `flowjs` 0.1.1 peer, in one run. See bench/README.md.
//!
//! ```text
//! loadgen [--quick] [--size 1GiB] [--chunk-size 1MiB] [--concurrency 3]
//!         [--scenarios nginx,chunked,python,memory] [--server PATH] [--nginx PATH] ...
//! loadgen plain-server --addr 127.0.0.1:0 --dir DIR     (the baseline server; started by loadgen)
//! ```
//!
//! Exit status: 0 when every upload that ran arrived intact (whether or not a bar was met; a
//! missed bar is printed as MISSED), 1 when an upload failed or a file's SHA-256 differs,
//! 2 when a requested scenario could not be set up (a server that would not start).

mod client;
mod data;
mod fsprobe;
mod nginx;
mod plain;
mod procs;
mod s3;

use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use client::{FlowUpload, Mode, TusUpload};
use procs::Server;

const MIB: f64 = 1024.0 * 1024.0;
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const CRATE_MANIFEST: &str = include_str!("../../../Cargo.toml");
/// Name every scenario uploads under.
const FILENAME: &str = "bench.bin";

#[derive(Debug, Parser)]
#[command(
    about = "Upload throughput and memory of chunked-upload vs nginx's WebDAV PUT + fsync, a plain single-request upload and Python flowjs",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// The baseline server (started by loadgen itself): POST /upload-plain?name=NAME streams
    /// the body to DIR/NAME and fsyncs it.
    PlainServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Size of the test file (suffixes K/M/G or KiB/MiB/GiB, all binary) [default: 1GiB, or
    /// 64MiB with --quick].
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Chunk size of the chunked uploads.
    #[arg(long, value_parser = parse_size, default_value = "1MiB")]
    chunk_size: u64,
    /// Chunk requests in flight at once.
    #[arg(long, default_value_t = 3)]
    concurrency: usize,
    /// Scenarios to run, comma-separated: nginx, plain, chunked, tus, python, memory, s3 (three
    /// example servers sharing one bucket of a local s3s-fs, chunks spread over them
    /// round-robin).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nginx,plain,chunked,tus,python,memory"
    )]
    scenarios: Vec<String>,
    /// Size of each tus PATCH (tus-js-client's chunkSize) in the tus scenario.
    #[arg(long, value_parser = parse_size, default_value = "8MiB")]
    tus_chunk_size: u64,
    /// A smoke run: a 64 MiB file (unless --size says otherwise).
    #[arg(long)]
    quick: bool,
    /// Run each scenario this many times (interleaved) and report the median.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// The example server binary (cargo build --release --example server --features axum)
    /// [default: ../../target/release/examples/server from bench/loadgen].
    #[arg(long)]
    server: Option<PathBuf>,
    /// Passed to the example server as --max-chunk-size.
    #[arg(long, value_parser = parse_size)]
    max_chunk_size: Option<u64>,
    /// Any other argument for the example server, e.g. `--server-arg=--max-concurrent-bodies=16`
    /// (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// How chunks travel: multipart (flow.js's default) or raw (octet, parameters in the query).
    #[arg(long, default_value = "multipart", value_parser = ["multipart", "raw"])]
    mode: String,
    /// Send flow.js's GET test request before every chunk (flow.js testChunks: true).
    #[arg(long)]
    test_chunks: bool,
    /// Python interpreter for the flowjs peer (needs flowjs==0.1.1 and tornado).
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// The flowjs peer server script [default: ../peer/flowjs_server.py from bench/loadgen].
    #[arg(long)]
    peer_script: Option<PathBuf>,
    /// Scratch directory for the test file and the servers' directories (same disk for all)
    /// [default: bench/out].
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Memory scenario: chunks streaming at once (one file of this many chunks, all in flight).
    #[arg(long, default_value_t = 64)]
    mem_chunks: u64,
    /// Memory scenario: size of each chunk.
    #[arg(long, value_parser = parse_size, default_value = "8MiB")]
    mem_chunk_size: u64,
    /// Memory bar: the server's peak RSS must stay under this.
    #[arg(long, value_parser = parse_size, default_value = "64MiB")]
    mem_limit: u64,
    /// Throughput bar (the headline): chunked time / (nginx PUT + fsync) time at most this.
    #[arg(long, default_value_t = 1.3)]
    nginx_bar: f64,
    /// The nginx binary (needs the DAV module: Debian's nginx-light) [default: nginx from
    /// PATH, else /usr/sbin/nginx].
    #[arg(long)]
    nginx: Option<PathBuf>,
    /// Peer bar ("well ahead"): python flowjs time / our time at least this.
    #[arg(long, default_value_t = 2.0)]
    peer_bar: f64,
    /// Attach a profiler to the server during the timed upload of the chunked, memory and
    /// nginx scenarios: a shell command where {pid} is the server's pid, e.g.
    /// 'strace -c -f -o /tmp/strace.txt -p {pid}' or 'perf record -g -o /tmp/perf.data -p {pid}'.
    /// It gets SIGINT when the upload is done.
    #[arg(long, value_name = "CMD")]
    attach: Option<String>,
    /// Seconds to wait (after a sync) before each scenario, to let the disk and other
    /// processes settle.
    #[arg(long, default_value_t = 0)]
    settle: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the scratch run directory (test file, uploads, server logs).
    #[arg(long)]
    keep: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        other => return Err(format!("unknown size unit {other:?} (use K, M or G)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn scenario_names() {
        assert_eq!(Scenario::parse("chunked-upload"), Ok(Scenario::Chunked));
        assert_eq!(Scenario::parse("flowjs"), Ok(Scenario::Python));
        assert_eq!(Scenario::parse("nginx"), Ok(Scenario::Nginx));
        assert_eq!(Scenario::parse("tus"), Ok(Scenario::Tus));
        assert!(Scenario::parse("ftp").is_err());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    Nginx,
    Plain,
    Chunked,
    Tus,
    Python,
    Memory,
    S3,
}

impl Scenario {
    fn parse(name: &str) -> Result<Scenario, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "nginx" | "nginx-put" | "webdav" => Ok(Scenario::Nginx),
            "plain" | "plain-server" | "baseline" => Ok(Scenario::Plain),
            "chunked" | "chunked-upload" | "ours" | "flow" => Ok(Scenario::Chunked),
            "tus" => Ok(Scenario::Tus),
            "python" | "flowjs" | "python-flowjs" => Ok(Scenario::Python),
            "memory" | "mem" => Ok(Scenario::Memory),
            "s3" | "bucket" => Ok(Scenario::S3),
            other => Err(format!(
                "unknown scenario {other:?} (nginx, plain, chunked, tus, python, memory, s3)"
            )),
        }
    }
}

/// One timed run of a scenario.
#[derive(Debug, Clone, Default)]
struct Measure {
    bytes: u64,
    seconds: f64,
    /// The server's VmHWM at the end (or the largest VmRSS sampled, if larger).
    peak_rss: u64,
    /// The server's RSS just before the upload.
    idle_rss: u64,
    max_threads: u64,
    server_cpu: f64,
    client_cpu: f64,
    requests: u64,
    retries: u64,
    /// Flow scenarios: the request that got `assembled` (its chunk plus the assembly).
    final_request: f64,
    chunk_p50: f64,
    chunk_max: f64,
    /// Plain: the server's seconds receiving and writing, and in fsync. Nginx: the PUT (until
    /// its answer), and the fsync of the stored file after it.
    plain_write: f64,
    plain_fsync: f64,
}

/// Why a scenario has no figure.
#[derive(Debug, Clone)]
enum Failure {
    /// An upload failed or a file arrived different: exit 1.
    Correctness(String),
    /// The scenario could not be set up: exit 2.
    Setup(String),
}

#[derive(Debug, Default)]
struct Results {
    runs: Vec<Measure>,
    failures: Vec<Failure>,
}

impl Results {
    fn median(&self) -> Option<Measure> {
        if self.runs.is_empty() {
            return None;
        }
        let mut runs = self.runs.clone();
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let mut m = runs[runs.len() / 2].clone();
        m.peak_rss = self.runs.iter().map(|r| r.peak_rss).max().unwrap_or(0);
        Some(m)
    }
    fn spread(&self) -> Option<(f64, f64)> {
        let min = self.runs.iter().map(|r| r.seconds).min_by(f64::total_cmp)?;
        let max = self.runs.iter().map(|r| r.seconds).max_by(f64::total_cmp)?;
        Some((min, max))
    }
}

/// What every scenario needs.
struct Ctx {
    args: RunArgs,
    size: u64,
    run_dir: PathBuf,
    data: Arc<File>,
    data_sha: String,
    server_path: PathBuf,
    peer_script: PathBuf,
    runtime: tokio::runtime::Runtime,
    /// The flowjs peer's banner (versions), once it has started.
    peer_versions: Option<String>,
    /// The scratch filesystem, and what creating a file costs there.
    fs_note: String,
    /// Load averages (1 min) seen at the start and end of each timed scenario.
    loads: Vec<f64>,
    /// The nginx binary and its version line, once the nginx scenario has checked it.
    nginx: Option<(PathBuf, String)>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::PlainServer { addr, dir }) = cli.command {
        return match plain::serve(addr, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("plain-server: {e}");
                ExitCode::from(2)
            }
        };
    }
    match run(cli.run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> io::Result<ExitCode> {
    let mut scenarios = args
        .scenarios
        .iter()
        .map(|s| Scenario::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    scenarios.sort();
    scenarios.dedup();
    let size = args
        .size
        .unwrap_or(if args.quick { 64 << 20 } else { 1 << 30 });
    if args.chunk_size == 0 || args.concurrency == 0 || args.repeat == 0 || args.mem_chunks == 0 {
        return Err(io::Error::other(
            "--chunk-size, --concurrency, --repeat and --mem-chunks must be positive",
        ));
    }
    let bench_dir = Path::new(MANIFEST_DIR).join("..");
    let server_path = args
        .server
        .clone()
        .unwrap_or_else(|| bench_dir.join("../target/release/examples/server"));
    let peer_script = args
        .peer_script
        .clone()
        .unwrap_or_else(|| bench_dir.join("peer/flowjs_server.py"));
    let scratch = args
        .scratch
        .clone()
        .unwrap_or_else(|| bench_dir.join("out"));
    fs::create_dir_all(&scratch)?;
    let run_tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&scratch)?;
    let run_dir = run_tmp.path().to_owned();

    let needs_ours = scenarios.iter().any(|s| {
        matches!(
            s,
            Scenario::Chunked | Scenario::Tus | Scenario::Memory | Scenario::S3
        )
    });
    if needs_ours && !server_path.is_file() {
        return Err(io::Error::other(format!(
            "the example server is not at {} (build it: cargo build --release --example server --features axum; or pass --server)",
            server_path.display()
        )));
    }

    eprintln!(
        "loadgen: generating {} of test data in {} ...",
        human(size),
        run_dir.display()
    );
    let data_path = run_dir.join("data.bin");
    let data_sha = data::generate(&data_path, size, 0x5EED_0001)?;
    let data = Arc::new(File::open(&data_path)?);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut ctx = Ctx {
        args,
        size,
        run_dir: run_dir.clone(),
        data,
        data_sha,
        server_path,
        peer_script,
        runtime,
        peer_versions: None,
        fs_note: fsprobe::describe(&run_dir),
        loads: Vec::new(),
        nginx: None,
    };

    let mut results: Vec<(Scenario, Results)> =
        scenarios.iter().map(|&s| (s, Results::default())).collect();
    for rep in 0..ctx.args.repeat {
        for (scenario, result) in &mut results {
            // Previous writes (the test file, an earlier scenario) reach the disk first.
            procs::sync_disks();
            if ctx.args.settle > 0 {
                std::thread::sleep(Duration::from_secs(ctx.args.settle));
            }
            eprintln!(
                "loadgen: {scenario:?} (run {} of {}) ...",
                rep + 1,
                ctx.args.repeat
            );
            ctx.loads.push(fsprobe::load_average());
            let outcome = match scenario {
                Scenario::Nginx => run_nginx(&mut ctx, rep),
                Scenario::Plain => run_plain(&ctx, rep),
                Scenario::Chunked => run_chunked(&ctx, rep),
                Scenario::Tus => run_tus(&ctx, rep),
                Scenario::Python => run_python(&mut ctx, rep),
                Scenario::Memory => run_memory(&ctx, rep),
                Scenario::S3 => run_s3(&ctx, rep),
            };
            ctx.loads.push(fsprobe::load_average());
            match outcome {
                Ok(m) => {
                    eprintln!(
                        "loadgen:   {:.2} s, {:.1} MiB/s, server peak RSS {}",
                        m.seconds,
                        m.bytes as f64 / MIB / m.seconds,
                        human(m.peak_rss)
                    );
                    result.runs.push(m);
                }
                Err(f) => {
                    eprintln!("loadgen:   {f:?}");
                    result.failures.push(f);
                }
            }
        }
    }

    print_table(&ctx, &results);
    if let Some(path) = &ctx.args.json {
        fs::write(path, json_report(&ctx, &results).to_string())?;
    }
    let keep = ctx.args.keep;
    drop(ctx);
    if keep {
        let kept = run_tmp.keep();
        eprintln!("loadgen: kept {}", kept.display());
    }
    let correctness = results
        .iter()
        .flat_map(|(_, r)| &r.failures)
        .any(|f| matches!(f, Failure::Correctness(_)));
    let setup = results
        .iter()
        .flat_map(|(_, r)| &r.failures)
        .any(|f| matches!(f, Failure::Setup(_)));
    Ok(if correctness {
        ExitCode::from(1)
    } else if setup {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Failure + '_ {
    move |e| Failure::Setup(format!("{what}: {e}"))
}

fn broken<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Failure + '_ {
    move |e| Failure::Correctness(format!("{what}: {e}"))
}

/// Checks that `path` holds the test file, byte for byte.
fn verify(path: &Path, sha: &str, size: u64) -> Result<(), Failure> {
    let (got, len) = data::sha256_file(path)
        .map_err(|e| Failure::Correctness(format!("cannot read {}: {e}", path.display())))?;
    if got != sha || len != size {
        return Err(Failure::Correctness(format!(
            "{} differs: sha256 {got} ({len} bytes), expected {sha} ({size} bytes)",
            path.display()
        )));
    }
    Ok(())
}

fn run_nginx(ctx: &mut Ctx, rep: usize) -> Result<Measure, Failure> {
    if ctx.nginx.is_none() {
        let binary = nginx::binary(ctx.args.nginx.as_deref());
        let (version, dav) = nginx::version(&binary).map_err(setup("nginx"))?;
        if !dav {
            return Err(Failure::Setup(format!(
                "{} ({version}) has no --with-http_dav_module; install Debian's nginx-light",
                binary.display()
            )));
        }
        ctx.nginx = Some((binary, version));
    }
    let (binary, version) = ctx.nginx.clone().expect("checked above");
    let prefix = ctx.run_dir.join(format!("nginx-{rep}"));
    let server = nginx::start(
        &binary,
        &prefix,
        &ctx.run_dir.join(format!("nginx-{rep}.log")),
        &version,
    )
    .map_err(setup("start nginx"))?;
    let stored = prefix.join("files").join(FILENAME);
    let client = client::client();
    let url = format!("{}/{FILENAME}", server.base);
    let (cpu0, self0, idle) = (
        server.cpu_seconds(),
        procs::self_cpu_seconds(),
        server.rss(),
    );
    let attached = match &ctx.args.attach {
        Some(cmd) => Some(procs::Attached::start(cmd, server.pid).map_err(setup("--attach"))?),
        None => None,
    };
    let sampler = server.sample_rss();
    let outcome = ctx.runtime.block_on(nginx::put_and_fsync(
        &client,
        &url,
        ctx.data.clone(),
        ctx.size,
        &stored,
    ));
    let sampled = sampler.finish();
    if let Some(attached) = attached {
        attached.stop();
    }
    let m = Measure {
        bytes: ctx.size,
        peak_rss: server.peak_rss().max(sampled.max_rss),
        idle_rss: idle,
        max_threads: sampled.max_threads,
        server_cpu: server.cpu_seconds() - cpu0,
        client_cpu: procs::self_cpu_seconds() - self0,
        requests: 1,
        ..Measure::default()
    };
    drop(server);
    let outcome = outcome.map_err(broken("nginx PUT"))?;
    if outcome.status != 201 {
        return Err(Failure::Correctness(format!(
            "nginx answered the PUT of a new file {}, not 201 Created",
            outcome.status
        )));
    }
    verify(&stored, &ctx.data_sha, ctx.size)?;
    let _ = fs::remove_dir_all(&prefix);
    Ok(Measure {
        seconds: (outcome.put + outcome.fsync).as_secs_f64(),
        plain_write: outcome.put.as_secs_f64(),
        plain_fsync: outcome.fsync.as_secs_f64(),
        ..m
    })
}

fn run_plain(ctx: &Ctx, rep: usize) -> Result<Measure, Failure> {
    let dir = ctx.run_dir.join(format!("plain-{rep}"));
    fs::create_dir_all(&dir).map_err(setup("create dir"))?;
    let mut cmd = Command::new(std::env::current_exe().map_err(setup("current exe"))?);
    cmd.arg("plain-server")
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--dir")
        .arg(&dir);
    let server = Server::start(
        cmd,
        &ctx.run_dir.join(format!("plain-{rep}.log")),
        Duration::from_secs(20),
    )
    .map_err(setup("start the plain server"))?;
    let client = client::client();
    let url = format!("{}/upload-plain?name={FILENAME}", server.base);
    let (cpu0, self0, idle) = (
        server.cpu_seconds(),
        procs::self_cpu_seconds(),
        server.rss(),
    );
    let sampler = server.sample_rss();
    let outcome = ctx.runtime.block_on(client::plain_upload(
        &client,
        &url,
        ctx.data.clone(),
        ctx.size,
    ));
    let sampled = sampler.finish();
    let m = Measure {
        bytes: ctx.size,
        peak_rss: server.peak_rss().max(sampled.max_rss),
        idle_rss: idle,
        max_threads: sampled.max_threads,
        server_cpu: server.cpu_seconds() - cpu0,
        client_cpu: procs::self_cpu_seconds() - self0,
        requests: 1,
        ..Measure::default()
    };
    drop(server);
    let outcome = outcome.map_err(broken("plain upload"))?;
    if outcome.size != ctx.size {
        return Err(Failure::Correctness(format!(
            "the plain server stored {} bytes, expected {}",
            outcome.size, ctx.size
        )));
    }
    verify(&dir.join(FILENAME), &ctx.data_sha, ctx.size)?;
    let _ = fs::remove_dir_all(&dir);
    Ok(Measure {
        seconds: outcome.elapsed.as_secs_f64(),
        plain_write: outcome.write_s,
        plain_fsync: outcome.fsync_s,
        ..m
    })
}

fn our_server(ctx: &Ctx, dir: &Path, log: &Path) -> Result<Server, Failure> {
    let mut cmd = Command::new(&ctx.server_path);
    cmd.arg("--addr").arg("127.0.0.1:0").arg("--dir").arg(dir);
    if let Some(max) = ctx.args.max_chunk_size {
        cmd.arg("--max-chunk-size").arg(max.to_string());
    }
    cmd.args(&ctx.args.server_args);
    Server::start(cmd, log, Duration::from_secs(20)).map_err(setup("start the example server"))
}

/// A flow.js upload of `total` bytes of `file` to `server`, timed and sampled; then the
/// assembled file (found in `dest` under the name the answer gave) is checked against `sha`.
#[allow(clippy::too_many_arguments)]
fn flow_run(
    ctx: &Ctx,
    server: &Server,
    route: &str,
    file: Arc<File>,
    total: u64,
    sha: &str,
    chunk_size: u64,
    concurrency: usize,
    identifier: String,
    dest: &Path,
    profile: bool,
    also: &[&Server],
) -> Result<Measure, Failure> {
    let client = client::client();
    let upload = FlowUpload {
        url: format!("{}{route}", server.base),
        also: also.iter().map(|s| format!("{}{route}", s.base)).collect(),
        file,
        total,
        chunk_size,
        concurrency,
        identifier,
        filename: FILENAME.to_owned(),
        mode: if ctx.args.mode == "raw" {
            Mode::Raw
        } else {
            Mode::Multipart
        },
        test_chunks: ctx.args.test_chunks,
    };
    let primed = ctx
        .runtime
        .block_on(upload.prime(&client))
        .map_err(broken("test request"))?;
    if primed != 204 {
        return Err(Failure::Correctness(format!(
            "the test request for chunk 1 of a new upload answered {primed}, not 204"
        )));
    }
    let attached = match (&ctx.args.attach, profile) {
        (Some(cmd), true) => {
            Some(procs::Attached::start(cmd, server.pid).map_err(setup("--attach"))?)
        }
        _ => None,
    };
    let (cpu0, self0, idle) = (
        server.cpu_seconds(),
        procs::self_cpu_seconds(),
        server.rss(),
    );
    let sampler = server.sample_rss();
    let outcome = ctx.runtime.block_on(upload.run(&client));
    let sampled = sampler.finish();
    if let Some(attached) = attached {
        attached.stop();
    }
    let server_cpu = server.cpu_seconds() - cpu0;
    let client_cpu = procs::self_cpu_seconds() - self0;
    let peak_rss = server.peak_rss().max(sampled.max_rss);
    let outcome = outcome.map_err(broken("upload"))?;
    let Some((name, size)) = outcome.assembled.clone() else {
        return Err(Failure::Correctness(format!(
            "every chunk was answered, none with \"status\":\"assembled\" ({} requests)",
            outcome.requests
        )));
    };
    if size != total {
        return Err(Failure::Correctness(format!(
            "assembled {name} has {size} bytes, expected {total}"
        )));
    }
    verify(&dest.join(&name), sha, total)?;
    Ok(Measure {
        bytes: total,
        seconds: outcome.elapsed.as_secs_f64(),
        peak_rss,
        idle_rss: idle,
        max_threads: sampled.max_threads,
        server_cpu,
        client_cpu,
        requests: outcome.requests,
        retries: outcome.retries,
        final_request: outcome.final_request.as_secs_f64(),
        chunk_p50: outcome.chunk_p50.as_secs_f64(),
        chunk_max: outcome.chunk_max.as_secs_f64(),
        ..Measure::default()
    })
}

fn run_chunked(ctx: &Ctx, rep: usize) -> Result<Measure, Failure> {
    let dir = ctx.run_dir.join(format!("chunked-{rep}"));
    let server = our_server(ctx, &dir, &ctx.run_dir.join(format!("chunked-{rep}.log")))?;
    let m = flow_run(
        ctx,
        &server,
        "/upload",
        ctx.data.clone(),
        ctx.size,
        &ctx.data_sha,
        ctx.args.chunk_size,
        ctx.args.concurrency,
        format!("{}-bench{rep}bin", ctx.size),
        &dir,
        true,
        &[],
    );
    drop(server);
    let _ = fs::remove_dir_all(&dir);
    m
}

/// Three example servers over one bucket (s3s-fs on loopback, see `s3.rs`), the chunks spread
/// over them round-robin, `--concurrency` in flight; the assembled object is checked where
/// s3s-fs keeps it.
fn run_s3(ctx: &Ctx, rep: usize) -> Result<Measure, Failure> {
    let root = ctx.run_dir.join(format!("s3-{rep}"));
    let bucket =
        s3::Bucket::start(&ctx.runtime, &root.join("bucket")).map_err(setup("start s3s-fs"))?;
    let key = "loadgen-bench-signing-key-0123456789abcdef";
    let mut servers = Vec::new();
    for n in 0..3 {
        let dir = root.join(format!("server-{n}"));
        let mut cmd = Command::new(&ctx.server_path);
        cmd.arg("--addr").arg("127.0.0.1:0").arg("--dir").arg(&dir);
        cmd.args([
            "--s3-bucket",
            s3::BUCKET,
            "--s3-prefix",
            "files",
            "--signing-key",
            key,
        ]);
        cmd.arg("--s3-endpoint").arg(&bucket.endpoint);
        cmd.env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY);
        if let Some(max) = ctx.args.max_chunk_size {
            cmd.arg("--max-chunk-size").arg(max.to_string());
        }
        cmd.args(&ctx.args.server_args);
        let log = root.join(format!("server-{n}.log"));
        servers.push(
            Server::start(cmd, &log, Duration::from_secs(20)).map_err(setup(
                "start the example server (built with --features axum,s3?)",
            ))?,
        );
    }
    let dest = bucket.object_file("files");
    let m = flow_run(
        ctx,
        &servers[0],
        "/upload",
        ctx.data.clone(),
        ctx.size,
        &ctx.data_sha,
        ctx.args.chunk_size,
        ctx.args.concurrency,
        format!("{}-s3bench{rep}bin", ctx.size),
        &dest,
        false,
        &[&servers[1], &servers[2]],
    );
    drop(servers);
    drop(bucket);
    let _ = fs::remove_dir_all(&root);
    m
}

/// The same bytes through tus: one `POST /tus/`, then `PATCH`es of `--tus-chunk-size` one after
/// the other (tus appends are sequential), to a fresh example server.
fn run_tus(ctx: &Ctx, rep: usize) -> Result<Measure, Failure> {
    let dir = ctx.run_dir.join(format!("tus-{rep}"));
    let server = our_server(ctx, &dir, &ctx.run_dir.join(format!("tus-{rep}.log")))?;
    let client = client::client();
    let upload = TusUpload {
        endpoint: format!("{}/tus/", server.base),
        file: ctx.data.clone(),
        total: ctx.size,
        chunk_size: ctx.args.tus_chunk_size,
        filename: FILENAME.to_owned(),
    };
    let attached = match &ctx.args.attach {
        Some(cmd) => Some(procs::Attached::start(cmd, server.pid).map_err(setup("--attach"))?),
        None => None,
    };
    let (cpu0, self0, idle) = (
        server.cpu_seconds(),
        procs::self_cpu_seconds(),
        server.rss(),
    );
    let sampler = server.sample_rss();
    let outcome = ctx.runtime.block_on(upload.run(&client));
    let sampled = sampler.finish();
    if let Some(attached) = attached {
        attached.stop();
    }
    let m = Measure {
        bytes: ctx.size,
        peak_rss: server.peak_rss().max(sampled.max_rss),
        idle_rss: idle,
        max_threads: sampled.max_threads,
        server_cpu: server.cpu_seconds() - cpu0,
        client_cpu: procs::self_cpu_seconds() - self0,
        ..Measure::default()
    };
    drop(server);
    let outcome = outcome.map_err(broken("tus upload"))?;
    verify(&dir.join(FILENAME), &ctx.data_sha, ctx.size)?;
    let _ = fs::remove_dir_all(&dir);
    Ok(Measure {
        seconds: outcome.elapsed.as_secs_f64(),
        requests: outcome.requests,
        final_request: outcome.final_request.as_secs_f64(),
        chunk_p50: outcome.chunk_p50.as_secs_f64(),
        chunk_max: outcome.chunk_max.as_secs_f64(),
        ..m
    })
}

fn run_python(ctx: &mut Ctx, rep: usize) -> Result<Measure, Failure> {
    let base = ctx.run_dir.join(format!("python-{rep}"));
    let (dest, temp, tmp) = (base.join("files"), base.join("chunks"), base.join("tmp"));
    for d in [&dest, &temp, &tmp] {
        fs::create_dir_all(d).map_err(setup("create dir"))?;
    }
    let mut cmd = Command::new(&ctx.args.python);
    cmd.arg(&ctx.peer_script)
        .arg("--port")
        .arg("0")
        .arg("--dest")
        .arg(&dest)
        .arg("--temp")
        .arg(&temp)
        // Tornado holds a whole request body in memory; flow.js's last chunk may be up to twice
        // the chunk size, plus the form.
        .arg("--max-body-size")
        .arg((2 * ctx.args.chunk_size + (1 << 20)).to_string())
        // TornadoRequest writes each chunk to a NamedTemporaryFile, then flowjs renames it into
        // tempDir: keep both on the same filesystem.
        .env("TMPDIR", &tmp)
        .env("PYTHONUNBUFFERED", "1");
    let server = Server::start(
        cmd,
        &ctx.run_dir.join(format!("python-{rep}.log")),
        Duration::from_secs(30),
    )
    .map_err(setup("start the python flowjs peer"))?;
    ctx.peer_versions = Some(peer_versions(&server.banner));
    let m = flow_run(
        ctx,
        &server,
        "/upload",
        ctx.data.clone(),
        ctx.size,
        &ctx.data_sha,
        ctx.args.chunk_size,
        ctx.args.concurrency,
        format!("{}-bench{rep}bin", ctx.size),
        &dest,
        false,
        &[],
    );
    drop(server);
    let _ = fs::remove_dir_all(&base);
    m
}

/// `versions={"flowjs":"0.1.1",...}` as `flowjs 0.1.1, tornado ..., ...`.
fn peer_versions(banner: &str) -> String {
    let json = banner.trim().strip_prefix("versions=").unwrap_or(banner);
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
        Ok(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => banner.to_owned(),
    }
}

fn run_memory(ctx: &Ctx, rep: usize) -> Result<Measure, Failure> {
    let total = ctx.args.mem_chunks * ctx.args.mem_chunk_size;
    let path = ctx.run_dir.join("memory.bin");
    let sha = data::generate(&path, total, 0x5EED_0002)
        .map_err(setup("generate the memory test file"))?;
    let file = Arc::new(File::open(&path).map_err(setup("open the memory test file"))?);
    procs::sync_disks();
    let dir = ctx.run_dir.join(format!("memory-{rep}"));
    let server = our_server(ctx, &dir, &ctx.run_dir.join(format!("memory-{rep}.log")))?;
    let m = flow_run(
        ctx,
        &server,
        "/upload",
        file,
        total,
        &sha,
        ctx.args.mem_chunk_size,
        ctx.args.mem_chunks as usize,
        format!("{total}-memory{rep}bin"),
        &dir,
        true,
        &[],
    );
    drop(server);
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(&path);
    m
}

// ---------------------------------------------------------------------------------------------
// The report.

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.2} GiB", b / 1024.0 / MIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn crate_version() -> String {
    CRATE_MANIFEST
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "?".into())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn git_commit() -> String {
    let repo = Path::new(MANIFEST_DIR).join("../..");
    command_output(
        "git",
        &[
            "-C",
            &repo.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    )
    .unwrap_or_else(|| "?".into())
}

fn host() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} cores ({model}), Linux {}", kernel.trim())
}

struct Row {
    cells: Vec<String>,
}

fn print_table(ctx: &Ctx, results: &[(Scenario, Results)]) {
    let get = |s: Scenario| results.iter().find(|(k, _)| *k == s).map(|(_, r)| r);
    let nginx = get(Scenario::Nginx).and_then(Results::median);
    let plain = get(Scenario::Plain).and_then(Results::median);
    let ours = get(Scenario::Chunked).and_then(Results::median);
    // Ratios are to nginx (the bar's floor), or to the plain server when nginx did not run.
    let (floor, floor_name) = match (&nginx, &plain) {
        (Some(n), _) => (Some(n.clone()), "nginx"),
        (None, Some(p)) => (Some(p.clone()), "plain"),
        (None, None) => (None, "nginx"),
    };
    let vs_header = format!("vs {floor_name}");
    let a = &ctx.args;
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();

    println!();
    println!("chunked-upload end-to-end upload benchmark, {date}");
    println!("host: {}", host());
    println!("scratch: {}", ctx.fs_note);
    if !ctx.loads.is_empty() {
        let lo = ctx.loads.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ctx.loads.iter().copied().fold(0.0, f64::max);
        println!(
            "load average (1 min) around the scenarios: {lo:.2}-{hi:.2} on {} cores (other work on the machine competes for CPU and disk)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    println!(
        "file: {} (sha256 {}...), chunks of {} ({} mode), {} in flight{}{}, {} run(s) per scenario (median shown)",
        human(ctx.size),
        &ctx.data_sha[..16],
        human(a.chunk_size),
        a.mode,
        a.concurrency,
        if a.test_chunks {
            ", GET test before each chunk"
        } else {
            ""
        },
        a.max_chunk_size
            .map(|m| format!(", server --max-chunk-size {m}"))
            .unwrap_or_default(),
        a.repeat
    );
    println!();

    let header = [
        "scenario",
        "time s",
        "MiB/s",
        vs_header.as_str(),
        "srv peak RSS",
        "srv CPU s",
        "client CPU s",
        "bar",
        "verdict",
    ];
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let failed = |name: &str, r: &Results| -> Option<Row> {
        if r.runs.is_empty() {
            let why = r
                .failures
                .first()
                .map(|f| match f {
                    Failure::Correctness(m) => format!("FAILED: {m}"),
                    Failure::Setup(m) => format!("NOT RUN: {m}"),
                })
                .unwrap_or_default();
            let mut cells = vec![name.to_owned()];
            cells.extend(std::iter::repeat_n("-".to_owned(), 7));
            cells.push(
                why.lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(160)
                    .collect(),
            );
            return Some(Row { cells });
        }
        None
    };
    let base_cells = |name: &str, m: &Measure, vs_plain: String| -> Vec<String> {
        vec![
            name.to_owned(),
            format!("{:.2}", m.seconds),
            format!("{:.1}", m.bytes as f64 / MIB / m.seconds),
            vs_plain,
            human(m.peak_rss),
            format!("{:.2}", m.server_cpu),
            format!("{:.2}", m.client_cpu),
        ]
    };
    let ratio = |m: &Measure| -> String {
        floor
            .as_ref()
            .map_or("-".into(), |p| format!("{:.2}x", m.seconds / p.seconds))
    };

    for (scenario, r) in results {
        let spread = r.spread().filter(|_| r.runs.len() > 1);
        match scenario {
            Scenario::Nginx => {
                let name = "nginx WebDAV PUT + fsync (floor)";
                if let Some(row) = failed(name, r) {
                    rows.push(row);
                    continue;
                }
                let m = r.median().unwrap();
                let mut cells = base_cells(name, &m, "1.00x".into());
                cells.extend(["-".into(), "baseline".into()]);
                rows.push(Row { cells });
                let note = format!(
                    "nginx: the PUT took {:.2} s (until nginx answered 201), then fsync of the stored file {:.2} s",
                    m.plain_write, m.plain_fsync
                );
                notes.push(with_spread(note, spread));
            }
            Scenario::Plain => {
                let name = "plain POST to hyper + fsync";
                if let Some(row) = failed(name, r) {
                    rows.push(row);
                    continue;
                }
                let m = r.median().unwrap();
                let mut cells = base_cells(name, &m, ratio(&m));
                let role = if nginx.is_some() {
                    "reference"
                } else {
                    "baseline"
                };
                cells.extend(["-".into(), role.into()]);
                rows.push(Row { cells });
                let note = format!(
                    "plain: the server received and wrote the body in {:.2} s, then fsync took {:.2} s",
                    m.plain_write, m.plain_fsync
                );
                notes.push(with_spread(note, spread));
            }
            Scenario::Chunked => {
                let name = "chunked-upload (ours)";
                if let Some(row) = failed(name, r) {
                    rows.push(row);
                    continue;
                }
                let m = r.median().unwrap();
                let mut cells = base_cells(name, &m, ratio(&m));
                let verdict = match &nginx {
                    Some(n) if m.seconds / n.seconds <= a.nginx_bar => "met".to_owned(),
                    Some(_) => "MISSED".to_owned(),
                    None => "n/a (nginx not run)".to_owned(),
                };
                cells.extend([format!("<= {:.2}x nginx", a.nginx_bar), verdict]);
                rows.push(Row { cells });
                let mut note = flow_note("chunked-upload", &m, spread);
                // Runs are interleaved: run i of ours against run i of nginx, which saw about
                // the same load.
                if let Some((_, n)) = results.iter().find(|(k, _)| *k == Scenario::Nginx)
                    && n.runs.len() == r.runs.len()
                    && r.runs.len() > 1
                {
                    let ratios: Vec<String> = r
                        .runs
                        .iter()
                        .zip(&n.runs)
                        .map(|(o, n)| format!("{:.2}x", o.seconds / n.seconds))
                        .collect();
                    note.push_str(&format!("; run by run vs nginx {}", ratios.join(", ")));
                }
                notes.push(note);
            }
            Scenario::Tus => {
                let name = format!("tus, {} PATCHes (ours)", human(a.tus_chunk_size));
                if let Some(row) = failed(&name, r) {
                    rows.push(row);
                    continue;
                }
                let m = r.median().unwrap();
                let mut cells = base_cells(&name, &m, ratio(&m));
                let verdict = match &ours {
                    Some(o) => {
                        let ahead = o.seconds / m.seconds;
                        let word = if m.seconds <= o.seconds {
                            "met"
                        } else {
                            "MISSED"
                        };
                        format!("{word}: {ahead:.2}x the flow.js route's speed")
                    }
                    None => "n/a (chunked not run)".to_owned(),
                };
                cells.extend(["<= flow.js route time".to_owned(), verdict]);
                rows.push(Row { cells });
                let mut note = format!(
                    "tus: {} requests (1 POST, then PATCHes in order), PATCH p50 {:.1} ms / max {:.1} ms; the last PATCH (its bytes + assembly) {:.2} s",
                    m.requests,
                    m.chunk_p50 * 1000.0,
                    m.chunk_max * 1000.0,
                    m.final_request
                );
                if let Some(o) = &ours {
                    note.push_str(&format!(
                        "; side by side: flow.js route {:.2} s ({:.1} MiB/s), tus {:.2} s ({:.1} MiB/s)",
                        o.seconds,
                        o.bytes as f64 / MIB / o.seconds,
                        m.seconds,
                        m.bytes as f64 / MIB / m.seconds
                    ));
                }
                notes.push(with_spread(note, spread));
            }
            Scenario::Python => {
                let name = "python flowjs 0.1.1 (peer)";
                if let Some(row) = failed(name, r) {
                    rows.push(row);
                    continue;
                }
                let m = r.median().unwrap();
                let mut cells = base_cells(name, &m, ratio(&m));
                let verdict = match &ours {
                    Some(o) => {
                        let ahead = m.seconds / o.seconds;
                        let word = if ahead >= a.peer_bar { "met" } else { "MISSED" };
                        format!("{word}: ours {ahead:.1}x faster")
                    }
                    None => "n/a (ours not run)".to_owned(),
                };
                cells.extend([format!("ours >= {:.1}x faster", a.peer_bar), verdict]);
                rows.push(Row { cells });
                notes.push(flow_note("python flowjs", &m, spread));
            }
            Scenario::S3 => {
                let name = "3 servers, one S3 bucket";
                if let Some(row) = failed(name, r) {
                    rows.push(row);
                    continue;
                }
                let m = r.median().unwrap();
                let mut cells = base_cells(name, &m, ratio(&m));
                let vs = ours
                    .as_ref()
                    .map_or("n/a (chunked not run)".to_owned(), |o| {
                        format!("{:.2}x the local store's time", m.seconds / o.seconds)
                    });
                cells.extend(["reported".into(), vs]);
                rows.push(Row { cells });
                notes.push(flow_note(
                    "3 servers + bucket (RSS and CPU: server 1 of 3)",
                    &m,
                    spread,
                ));
            }
            Scenario::Memory => {
                let name = format!(
                    "memory: {} x {} at once",
                    a.mem_chunks,
                    human(a.mem_chunk_size)
                );
                if let Some(row) = failed(&name, r) {
                    rows.push(row);
                    continue;
                }
                let m = r.median().unwrap();
                let mut cells = base_cells(&name, &m, "-".into());
                let verdict = if m.peak_rss < a.mem_limit {
                    "met"
                } else {
                    "MISSED"
                };
                cells.extend([format!("peak RSS < {}", human(a.mem_limit)), verdict.into()]);
                rows.push(Row { cells });
                let peaks: Vec<String> = r.runs.iter().map(|m| human(m.peak_rss)).collect();
                notes.push(format!(
                    "memory: server RSS {} idle before the upload, peak {} (VmHWM; each run: {}), up to {} threads; {} requests, all in flight at once, answered within {:.2} s",
                    human(m.idle_rss),
                    human(m.peak_rss),
                    peaks.join(", "),
                    m.max_threads,
                    m.requests,
                    m.seconds,
                ));
            }
        }
    }

    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.cells.get(i).map_or(0, |c| c.chars().count()))
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            // Text columns left, figures right.
            if i == 0 || i >= 7 {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
            out.push_str("  ");
        }
        println!("{}", out.trim_end());
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in &rows {
        line(&row.cells);
    }
    println!();
    for note in notes {
        println!("  {note}");
    }
    println!(
        "versions: chunked-upload {} (git {}, examples/server, axum) at {}",
        crate_version(),
        git_commit(),
        ctx.server_path.display()
    );
    println!(
        "          python peer: {}",
        ctx.peer_versions.as_deref().unwrap_or("(not run)")
    );
    if let Some((binary, version)) = &ctx.nginx {
        println!(
            "          nginx floor: {version} at {} (daemon off, master_process off, dav_methods PUT, defaults otherwise; fsync by loadgen)",
            binary.display()
        );
    }
    if results.iter().any(|(s, _)| *s == Scenario::Plain) {
        println!("          plain: hyper 1 http1 server inside loadgen, fsync at the end");
    }
    let failures: Vec<&Failure> = results.iter().flat_map(|(_, r)| &r.failures).collect();
    if failures.is_empty() {
        println!("integrity: every assembled file matched the test file's SHA-256");
    } else {
        for f in failures {
            match f {
                Failure::Correctness(m) => println!("FAILED: {m}"),
                Failure::Setup(m) => println!("NOT RUN: {m}"),
            }
        }
    }
}

fn flow_note(name: &str, m: &Measure, spread: Option<(f64, f64)>) -> String {
    let note = format!(
        "{name}: {} requests ({} retried), chunk request p50 {:.1} ms / max {:.1} ms; chunks stored in {:.2} s, then the final request (its chunk + assembly) {:.2} s",
        m.requests,
        m.retries,
        m.chunk_p50 * 1e3,
        m.chunk_max * 1e3,
        m.seconds - m.final_request,
        m.final_request
    );
    with_spread(note, spread)
}

/// `note` with the range of the runs' times, when there was more than one run.
fn with_spread(mut note: String, spread: Option<(f64, f64)>) -> String {
    if let Some((lo, hi)) = spread {
        note.push_str(&format!("; runs {lo:.2}-{hi:.2} s"));
    }
    note
}

fn json_report(ctx: &Ctx, results: &[(Scenario, Results)]) -> serde_json::Value {
    let runs = |r: &Results| -> Vec<serde_json::Value> {
        r.runs
            .iter()
            .map(|m| {
                serde_json::json!({
                    "bytes": m.bytes, "seconds": m.seconds,
                    "mib_per_s": m.bytes as f64 / MIB / m.seconds,
                    "server_peak_rss": m.peak_rss, "server_idle_rss": m.idle_rss,
                    "server_max_threads": m.max_threads,
                    "server_cpu_s": m.server_cpu, "client_cpu_s": m.client_cpu,
                    "requests": m.requests, "retries": m.retries,
                    "final_request_s": m.final_request,
                    "chunk_p50_s": m.chunk_p50, "chunk_max_s": m.chunk_max,
                    "plain_write_s": m.plain_write, "plain_fsync_s": m.plain_fsync,
                })
            })
            .collect()
    };
    let scenarios: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(s, r)| {
            (
                format!("{s:?}").to_lowercase(),
                serde_json::json!({
                    "runs": runs(r),
                    "failures": r.failures.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "host": host(),
        "scratch": ctx.fs_note,
        "load_averages": ctx.loads,
        "size": ctx.size,
        "chunk_size": ctx.args.chunk_size,
        "tus_chunk_size": ctx.args.tus_chunk_size,
        "concurrency": ctx.args.concurrency,
        "mode": ctx.args.mode,
        "nginx": ctx.nginx.as_ref().map(|(_, v)| v),
        "chunked_upload": {"version": crate_version(), "git": git_commit()},
        "python_peer": ctx.peer_versions,
        "scenarios": scenarios,
    })
}
