//! `cairn tag`: change the tags of snapshots.

use cairn_ops::tag::TagChange;
use clap::Args;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::exit::{fail, ExitCode};
use crate::output;

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Snapshots to change (IDs, prefixes, or latest)
    #[arg(required = true, value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// Tags to add
    #[arg(long, value_name = "T")]
    pub add: Vec<String>,
    /// Tags to remove
    #[arg(long, value_name = "T")]
    pub remove: Vec<String>,
    /// Replace all tags with these
    #[arg(long, value_name = "T")]
    pub set: Vec<String>,
}

pub fn run(g: &GlobalArgs, a: TagArgs) -> anyhow::Result<ExitCode> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        return Err(fail(
            ExitCode::Fatal,
            "nothing to do: give --add, --remove or --set",
        ));
    }
    if !a.set.is_empty() && (!a.add.is_empty() || !a.remove.is_empty()) {
        return Err(fail(
            ExitCode::Fatal,
            "--set cannot be combined with --add or --remove",
        ));
    }
    let split = |v: &[String]| -> Vec<String> {
        v.iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let change = TagChange {
        add: split(&a.add),
        remove: split(&a.remove),
        set: (!a.set.is_empty()).then(|| split(&a.set)),
    };
    let repo = std::sync::Arc::new(super::open_repo(g)?);
    let changed = cairn_ops::tag::run(&repo, &a.snapshots, &change)?;
    if g.json {
        let v: Vec<_> = changed
            .iter()
            .map(|(o, n)| json!({"old": o.to_hex(), "new": n.to_hex()}))
            .collect();
        output::print_json(&json!({"message_type": "summary", "changed": v}));
    } else if !g.quiet {
        for (o, n) in &changed {
            println!("snapshot {} is now {}", o.short(), n.short());
        }
        println!("modified {} snapshot(s)", changed.len());
    }
    Ok(ExitCode::Ok)
}
