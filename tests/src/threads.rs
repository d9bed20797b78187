//! CPU time and context switches of a process, per *kind* of thread, from Linux's `/proc`.
//!
//! The load generator prints this for every measured phase so that where the server's CPU goes
//! is visible in every run, not only under a profiler: tokio's workers, sled's I/O pool
//! (`sled-io-0` .. `sled-io-6`), the group-commit flusher and so on. Threads are grouped by
//! name with the trailing number dropped, so a pool of seven is one line. Context switches
//! are counted because a thread that is woken for nothing still costs a switch in and out: on
//! a small virtual machine that is a visible share of the CPU (BENCHMARKS.md, session 15).

use std::collections::BTreeMap;
use std::path::Path;

/// One kind of thread: the sums over its threads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadGroup {
    /// How many threads of this kind were alive at the snapshot.
    pub threads: usize,
    /// User + system CPU, in clock ticks.
    pub ticks: u64,
    /// Voluntary + involuntary context switches.
    pub switches: u64,
}

/// Threads of one process, by kind, at one moment.
pub type Snapshot = BTreeMap<String, ThreadGroup>;

/// The kind of a thread: its name without a trailing number (and the separator before it), so
/// `sled-io-3` and `sled-io-12` are both `sled-io`; a name that is only a number stays as it is.
pub fn kind(name: &str) -> &str {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let trimmed = trimmed.trim_end_matches(['-', '_', ' ', '#']);
    if trimmed.is_empty() { name } else { trimmed }
}

/// User + system ticks from the text of a `/proc/.../stat` file. The name (field 2) may hold
/// spaces and parentheses, so the fields are counted from the *last* `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (0), ppid (1), ... utime (11), stime (12).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Voluntary + involuntary context switches from the text of a `/proc/.../status` file.
pub fn parse_status_switches(status: &str) -> Option<u64> {
    let mut total = None;
    for line in status.lines() {
        let value = line
            .strip_prefix("voluntary_ctxt_switches:")
            .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"));
        if let Some(value) = value {
            let n: u64 = value.trim().parse().ok()?;
            total = Some(total.unwrap_or(0) + n);
        }
    }
    total
}

/// The threads of process `pid` by kind, or `None` when `/proc` cannot be read (not Linux, or
/// the process is gone). A thread that exits while being read is skipped.
pub fn snapshot(pid: u32) -> Option<Snapshot> {
    snapshot_dir(&Path::new("/proc").join(pid.to_string()).join("task"))
}

fn snapshot_dir(tasks: &Path) -> Option<Snapshot> {
    let mut groups = Snapshot::new();
    for entry in std::fs::read_dir(tasks).ok()?.flatten() {
        let dir = entry.path();
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        let (Some(comm), Some(stat), Some(status)) = (read("comm"), read("stat"), read("status"))
        else {
            continue;
        };
        let (Some(ticks), Some(switches)) =
            (parse_stat_ticks(&stat), parse_status_switches(&status))
        else {
            continue;
        };
        let group = groups.entry(kind(comm.trim()).to_owned()).or_default();
        group.threads += 1;
        group.ticks += ticks;
        group.switches += switches;
    }
    Some(groups)
}

/// What each kind of thread did between two snapshots: (kind, threads alive at the end, CPU
/// ticks, context switches), busiest first. Threads that exited in between are lost with their
/// counts, so a kind's difference is clamped at zero rather than going negative.
pub fn since(before: &Snapshot, after: &Snapshot) -> Vec<(String, ThreadGroup)> {
    let mut out: Vec<(String, ThreadGroup)> = after
        .iter()
        .map(|(name, now)| {
            let then = before.get(name).copied().unwrap_or_default();
            let delta = ThreadGroup {
                threads: now.threads,
                ticks: now.ticks.saturating_sub(then.ticks),
                switches: now.switches.saturating_sub(then.switches),
            };
            (name.clone(), delta)
        })
        .collect();
    out.sort_by(|a, b| b.1.ticks.cmp(&a.1.ticks).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_drop_the_thread_number() {
        assert_eq!(kind("sled-io-3"), "sled-io");
        assert_eq!(kind("sled-io-12"), "sled-io");
        assert_eq!(kind("tokio-rt-worker"), "tokio-rt-worker");
        assert_eq!(kind("kefu-store-flus"), "kefu-store-flus");
        assert_eq!(kind("worker 7"), "worker");
        assert_eq!(kind("1234"), "1234");
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        // A name with a space and a parenthesis of its own, as `comm` allows.
        let stat = "4242 (we ird) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("4242 (short) S 1"), None);
        assert_eq!(parse_stat_ticks("no parenthesis at all"), None);
    }

    #[test]
    fn switches_sum_both_kinds() {
        let status =
            "Name:\tsled-io-0\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_status_switches(status), Some(127));
        assert_eq!(parse_status_switches("Name:\tx\n"), None);
        assert_eq!(
            parse_status_switches("voluntary_ctxt_switches:\tmany\n"),
            None
        );
    }

    #[test]
    fn differences_are_per_kind_busiest_first_and_never_negative() {
        let group = |threads, ticks, switches| ThreadGroup {
            threads,
            ticks,
            switches,
        };
        let before = Snapshot::from([
            ("tokio-rt-worker".to_owned(), group(2, 100, 50)),
            ("sled-io".to_owned(), group(8, 40, 900)),
        ]);
        let after = Snapshot::from([
            ("tokio-rt-worker".to_owned(), group(2, 400, 80)),
            // One dynamic thread exited with its counts: the sums went down.
            ("sled-io".to_owned(), group(7, 30, 1500)),
            ("kefu-store-flus".to_owned(), group(1, 12, 300)),
        ]);
        let diff = since(&before, &after);
        let names: Vec<&str> = diff.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tokio-rt-worker", "kefu-store-flus", "sled-io"]);
        assert_eq!(diff[0].1, group(2, 300, 30));
        assert_eq!(diff[1].1, group(1, 12, 300));
        assert_eq!(diff[2].1, group(7, 0, 600));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_at_least_the_test_thread() {
        let snap = snapshot(std::process::id()).expect("/proc is readable on Linux");
        let threads: usize = snap.values().map(|g| g.threads).sum();
        assert!(threads >= 1, "{snap:?}");
        assert!(snapshot(u32::MAX).is_none(), "no such process");
    }
}
