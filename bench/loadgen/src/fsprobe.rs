//! What the scratch filesystem is, and what creating a file costs there: chunked uploads create
//! (and later delete) a file per chunk, a plain upload one file in all, so a filesystem with
//! slow creates weighs on the first and not the second.

use std::fs;
use std::path::Path;
use std::time::Instant;

/// `DIR = ext4 on /dev/vda (no journal); creating an empty file there takes ...`.
pub fn describe(dir: &Path) -> String {
    let (fstype, device) = mount_of(dir).unwrap_or_else(|| ("?".into(), "?".into()));
    let journal = if fstype == "ext4" {
        let dev = device.trim_start_matches("/dev/");
        let has_journal = fs::read_dir("/proc/fs/jbd2")
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(dev))
            })
            .unwrap_or(false);
        if has_journal {
            " (journal)"
        } else {
            " (no journal)"
        }
    } else {
        ""
    };
    let create = create_cost(dir)
        .map(|(mean, median)| {
            format!("{mean:.0} us on average (median {median:.0} us) of {PROBES}")
        })
        .unwrap_or_else(|| "?".into());
    let shown = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    format!(
        "{} = {fstype} on {device}{journal}; creating an empty file there takes {create}",
        shown.display()
    )
}

/// The filesystem type and device of the mount holding `dir` (longest mount point prefix).
fn mount_of(dir: &Path) -> Option<(String, String)> {
    let dir = fs::canonicalize(dir).ok()?;
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (device, point, fstype) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), fstype.to_owned(), device.to_owned()))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, fstype, device)| (fstype, device))
}

/// Files the probe creates.
const PROBES: usize = 500;

/// Mean and median microseconds to create an empty file in a fresh folder of `dir`.
fn create_cost(dir: &Path) -> Option<(f64, f64)> {
    let probe = dir.join("create-probe");
    fs::create_dir_all(&probe).ok()?;
    let mut times = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        let path = probe.join(format!("f{i}"));
        let started = Instant::now();
        fs::File::create(&path).ok()?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let _ = fs::remove_dir_all(&probe);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    Some((mean, times[times.len() / 2]))
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
