//! CPU time and resident memory of processes, read from `/proc`: what a benchmark charges each
//! server (and the load generator itself) for the ops it measured.

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU fields.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a constant of the running kernel.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds `pid` has used so far, all threads; None when it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / ticks_per_s())
}

/// Resident set size of `pid` in bytes (`VmRSS`); None when it is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds of several processes at one moment, to subtract from a later sample.
#[derive(Debug, Clone)]
pub struct CpuSample(Vec<Option<f64>>);

impl CpuSample {
    /// Samples every pid now.
    pub fn take(pids: &[u32]) -> CpuSample {
        CpuSample(pids.iter().map(|&p| cpu_seconds(p)).collect())
    }

    /// CPU seconds each pid used since `earlier` (None for a pid that vanished).
    pub fn since(&self, earlier: &CpuSample) -> Vec<Option<f64>> {
        self.0.iter().zip(&earlier.0).map(|(now, then)| Some(now.as_ref()? - then.as_ref()?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_and_rss_is_positive() {
        let me = std::process::id();
        let before = CpuSample::take(&[me]);
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let used = CpuSample::take(&[me]).since(&before)[0].expect("own pid");
        assert!(used > 0.0, "{used}");
        assert!(rss_bytes(me).expect("own rss") > 0);
        assert_eq!(cpu_seconds(u32::MAX), None);
    }
}
