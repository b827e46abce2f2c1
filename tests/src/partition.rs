//! Partitions with real packet loss between loopback addresses: iptables rules dropping every
//! packet between a node and its peers (root only; `scripts/deps` installs iptables).

use std::process::Command;

/// iptables rules dropping every packet between `island` and `others`, removed on drop.
pub struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    pub fn cut(island: &str, others: &[String]) -> Partition {
        let mut rules = Vec::new();
        for other in others {
            for (src, dst) in [(island, other.as_str()), (other.as_str(), island)] {
                rules.push(vec![
                    "INPUT".to_owned(),
                    "-s".into(),
                    src.into(),
                    "-d".into(),
                    dst.into(),
                    "-j".into(),
                    "DROP".into(),
                ]);
            }
        }
        let p = Partition { rules: Vec::new() };
        let mut p = p;
        for rule in rules {
            let status = Command::new("iptables")
                .arg("-I")
                .args(&rule)
                .status()
                .expect("run iptables (the partition test needs root and iptables)");
            assert!(status.success(), "iptables -I {rule:?} failed");
            p.rules.push(rule);
        }
        p
    }

    pub fn heal(&mut self) {
        for rule in self.rules.drain(..) {
            let _ = Command::new("iptables").arg("-D").args(&rule).status();
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.heal();
    }
}
