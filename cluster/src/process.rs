//! Who a lease holder is at the operating-system level, so that a restarted node can prove
//! that the process which held its leases before a crash is gone, and need not wait out the
//! lease's TTL.
//!
//! The proof is local and conservative: the stamp names the host, the boot, the PID
//! namespace, the process id and the process's start time (Linux `/proc`). A holder is gone
//! only if all of host, boot and namespace are this process's own and no process with that
//! id and start time exists. Anything unknown (another host, another container, no `/proc`)
//! proves nothing, and the lease is waited out as before.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The identity of a process, written into the leases it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStamp {
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id`: differs after a reboot.
    pub boot_id: String,
    /// The PID namespace (`/proc/self/ns/pid`), so that containers sharing a host name do
    /// not judge each other's process ids.
    pub pid_namespace: String,
    pub pid: u32,
    /// The real user id: with `/proc` mounted `hidepid`, another user's live process looks
    /// absent, so only processes of this process's own user are judged.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Clock ticks after boot at which the process started (`/proc/<pid>/stat` field 22), so
    /// that a reused process id is not mistaken for the holder.
    pub started: u64,
}

impl ProcessStamp {
    /// This process's stamp; `None` where `/proc` cannot tell (then nothing is ever proven).
    pub fn current() -> Option<&'static ProcessStamp> {
        static CURRENT: OnceLock<Option<ProcessStamp>> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                Some(ProcessStamp {
                    host: read_trimmed("/proc/sys/kernel/hostname")?,
                    boot_id: read_trimmed("/proc/sys/kernel/random/boot_id")?,
                    pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                        .ok()?
                        .to_string_lossy()
                        .into_owned(),
                    pid,
                    uid: Some(own_uid()?),
                    started: start_time(pid)?,
                })
            })
            .as_ref()
    }

    /// Whether `self` is provably a process of this host, boot and PID namespace that no
    /// longer runs. `false` whenever that cannot be shown.
    pub fn is_provably_gone(&self) -> bool {
        let Some(current) = ProcessStamp::current() else {
            return false;
        };
        if self.host != current.host
            || self.boot_id != current.boot_id
            || self.pid_namespace != current.pid_namespace
            || self.uid.is_none()
            || self.uid != current.uid
        {
            return false;
        }
        if self.pid == current.pid && self.started == current.started {
            return false; // this very process
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // No such process: gone (a zombie still has its entry, so it counts as alive).
            Err(err) => err.kind() == std::io::ErrorKind::NotFound,
            // The id was reused by a process that started at another time.
            Ok(stat) => parse_start_time(&stat).is_some_and(|started| started != self.started),
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The real user id, from `/proc/self/status` (`Uid:\treal\teffective\t...`).
fn own_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn start_time(pid: u32) -> Option<u64> {
    parse_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of `/proc/<pid>/stat`. The second field (the command name) is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards; field 22 is the 20th of them.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn this_process_and_a_live_one_are_not_gone_an_exited_one_is() {
        let Some(current) = ProcessStamp::current() else {
            return; // no /proc here: nothing can be proven, which is the safe answer
        };
        assert!(!current.is_provably_gone());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let stamp = ProcessStamp {
            pid: child.id(),
            started: start_time(child.id()).unwrap(),
            ..current.clone()
        };
        assert!(!stamp.is_provably_gone(), "a running process");
        let reused = ProcessStamp {
            started: stamp.started + 1,
            ..stamp.clone()
        };
        assert!(
            reused.is_provably_gone(),
            "the id now names another process"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(stamp.is_provably_gone(), "an exited and reaped process");
        let elsewhere = ProcessStamp {
            host: format!("{}-other", current.host),
            ..stamp.clone()
        };
        assert!(!elsewhere.is_provably_gone(), "another host proves nothing");
        let other_container = ProcessStamp {
            pid_namespace: "pid:[1]".into(),
            ..stamp.clone()
        };
        assert!(!other_container.is_provably_gone());
        let other_user = ProcessStamp {
            uid: current.uid.map(|uid| uid + 1),
            ..stamp.clone()
        };
        assert!(
            !other_user.is_provably_gone(),
            "another user's processes may be hidden"
        );
        let unknown_user = ProcessStamp { uid: None, ..stamp };
        assert!(!unknown_user.is_provably_gone());
    }
}
