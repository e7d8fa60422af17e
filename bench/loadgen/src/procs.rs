//! Server processes under test: started, waited for until they print their address, sampled
//! for memory (VmRSS every few milliseconds, VmHWM at the end) and CPU time, and killed.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A running server. Killed when dropped.
pub struct Server {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The rest of the line it announced itself with (after the URL).
    pub banner: String,
}

impl Server {
    /// Starts `cmd`, sends its stdout and stderr to `log`, and waits (at most `wait`) for a
    /// stdout line with `http://HOST:PORT`.
    pub fn start(mut cmd: Command, log: &Path, wait: Duration) -> io::Result<Server> {
        let mut child = spawn(&mut cmd, Stdio::piped(), log)?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut out_log = File::create(log)?;
        let (tx, rx) = mpsc::channel::<(String, String)>();
        // Reads stdout to its end (the server may log there), reporting the address line.
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(out_log, "{line}");
                if let Some(start) = line.find("http://") {
                    let rest = &line[start + "http://".len()..];
                    let end = rest
                        .find(|c: char| c == '/' || c.is_whitespace())
                        .unwrap_or(rest.len());
                    let base = format!("http://{}", &rest[..end]);
                    let banner = rest[end..].trim_start_matches('/').trim().to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((base, banner));
                    }
                }
            }
        });
        match rx.recv_timeout(wait) {
            Ok((base, banner)) => Ok(Server {
                child,
                pid,
                base,
                banner,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr =
                    fs::read_to_string(log.with_extension("stderr.log")).unwrap_or_default();
                let tail: String = stderr
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                Err(io::Error::other(format!(
                    "{:?} did not announce its address within {wait:?}; stderr:\n{tail}",
                    cmd.get_program()
                )))
            }
        }
    }

    /// Starts `cmd`, a server that prints no address (nginx), with stdout and stderr to `log`,
    /// and waits (at most `wait`) until it accepts connections on `addr`.
    pub fn start_listening(
        mut cmd: Command,
        log: &Path,
        addr: std::net::SocketAddr,
        banner: &str,
        wait: Duration,
    ) -> io::Result<Server> {
        let mut child = spawn(&mut cmd, Stdio::from(File::create(log)?), log)?;
        let pid = child.id();
        let deadline = std::time::Instant::now() + wait;
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Server {
                    child,
                    pid,
                    base: format!("http://{addr}"),
                    banner: banner.to_owned(),
                });
            }
            let exited = child.try_wait()?;
            if exited.is_some() || std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let stderr =
                    fs::read_to_string(log.with_extension("stderr.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "{:?} {} ; stderr:\n{}",
                    cmd.get_program(),
                    match exited {
                        Some(status) => format!("exited ({status}) before listening on {addr}"),
                        None => format!("did not listen on {addr} within {wait:?}"),
                    },
                    stderr.trim_end()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts sampling this process's resident set.
    pub fn sample_rss(&self) -> Sampler {
        Sampler::start(self.pid)
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid).unwrap_or(f64::NAN)
    }

    /// Peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        status_kib(self.pid, "VmHWM:").unwrap_or(0) * 1024
    }

    /// Current resident set size (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        status_kib(self.pid, "VmRSS:").unwrap_or(0) * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `/proc/PID/status` every 5 ms for the largest VmRSS and thread count seen.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    max_rss: Arc<AtomicU64>,
    max_threads: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

/// What a [`Sampler`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampled {
    pub max_rss: u64,
    pub max_threads: u64,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max_rss = Arc::new(AtomicU64::new(0));
        let max_threads = Arc::new(AtomicU64::new(0));
        let handle = {
            let (stop, max_rss, max_threads) = (stop.clone(), max_rss.clone(), max_threads.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
                        if let Some(kib) = field_kib(&status, "VmRSS:") {
                            max_rss.fetch_max(kib * 1024, Ordering::Relaxed);
                        }
                        if let Some(n) = field_kib(&status, "Threads:") {
                            max_threads.fetch_max(n, Ordering::Relaxed);
                        }
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Sampler {
            stop,
            max_rss,
            max_threads,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Sampled {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        Sampled {
            max_rss: self.max_rss.load(Ordering::Relaxed),
            max_threads: self.max_threads.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn field_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn status_kib(pid: u32, name: &str) -> Option<u64> {
    field_kib(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        name,
    )
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 of `rest` (1-based).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// This process's user + system CPU seconds (the load generator's own cost).
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Flushes every dirty page to disk, so a scenario does not pay for the previous one's
/// write-back.
pub fn sync_disks() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
}

/// A profiler (or any command) attached to a server for the length of an upload.
pub struct Attached {
    child: Child,
}

impl Attached {
    /// Runs `sh -c CMD` with `{pid}` replaced, and gives it a moment to attach.
    pub fn start(cmd: &str, pid: u32) -> io::Result<Attached> {
        let cmd = cmd.replace("{pid}", &pid.to_string());
        eprintln!("loadgen: attaching: {cmd}");
        // Its own process group, so the SIGINT reaches the command and not just the shell.
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .process_group(0)
            .spawn()?;
        thread::sleep(Duration::from_millis(700));
        Ok(Attached { child })
    }

    /// SIGINT, then waits for it to write its report.
    pub fn stop(mut self) {
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` with no stdin, `stdout` as given, and stderr to `log` with the extension
/// `stderr.log`.
fn spawn(cmd: &mut Command, stdout: Stdio, log: &Path) -> io::Result<Child> {
    let err_log = File::create(log.with_extension("stderr.log"))?;
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(err_log));
    cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {:?}: {e}", cmd.get_program()),
        )
    })
}
