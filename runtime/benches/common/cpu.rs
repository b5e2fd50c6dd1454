//! CPU time of the whole benchmark process, which is steadier than a rate on a busy machine,
//! and CPU time the hypervisor took from the machine, which says how far to trust the rest.

/// CPU time this process has used, user and system, in seconds.
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses: utime and stime are the 12th
    // and 13th, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The note on a row of stolen CPU time: what it means for the rows around it.
pub const STOLEN_NOTE: &str = "other guests' load; over a few %, tails measure the host";

/// Counts CPU time stolen from this machine: time its virtual CPUs were ready to run but the
/// hypervisor ran other guests instead. Stolen time comes in slices of milliseconds, each
/// of which stalls whatever that CPU was running, so a run with more than a few percent of it
/// measures the host's load, not Weft's tail latency.
pub struct StealMeter {
    start: Option<MachineTicks>,
}

impl StealMeter {
    pub fn start() -> StealMeter {
        StealMeter {
            start: MachineTicks::read(),
        }
    }

    /// Stolen CPU time since [`StealMeter::start`], as a percentage of all the machine's CPU
    /// time meanwhile; `None` where `/proc/stat` does not tell (or no tick passed).
    pub fn percent(&self) -> Option<f64> {
        let start = self.start?;
        let now = MachineTicks::read()?;
        let total = now.total.checked_sub(start.total).filter(|t| *t > 0)?;
        let stolen = now.stolen.saturating_sub(start.stolen);
        Some(stolen as f64 * 100.0 / total as f64)
    }
}

/// The machine's CPU time, summed over its CPUs, in clock ticks.
#[derive(Clone, Copy)]
struct MachineTicks {
    stolen: u64,
    total: u64,
}

impl MachineTicks {
    fn read() -> Option<MachineTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        MachineTicks::parse(stat.lines().next()?)
    }

    /// The summary line, `cpu user nice system idle iowait irq softirq steal guest
    /// guest_nice`: guest time is counted in user time already, so the total is the first
    /// eight.
    fn parse(line: &str) -> Option<MachineTicks> {
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        (ticks.len() == 8).then(|| MachineTicks {
            stolen: ticks[7],
            total: ticks.iter().sum(),
        })
    }
}
