//! `daily`: a profile's whole daily job as one command, for a timer to run: `backup`,
//! then `forget` (the profile's retention, with its prune setting), then `ship` (to the
//! profile's destination). Each step is the same command run by hand with `--profile`.
//!
//! A backup that saved its snapshot but could not read some files (exit 3) is still the
//! day's backup: forget and ship run after it, and the job ends with exit 3 so the
//! unreadable files are not lost from view. A systemd unit with three `ExecStart=` lines
//! stopped there and never shipped. Any other failure stops the job at that step.

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, GlobalArgs};
use crate::exit::{fail, ExitCode};
use crate::profile;

pub fn run(g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let Some(name) = g.profile.clone() else {
        return Err(fail(
            ExitCode::Fatal,
            "daily runs a profile's backup, forget and ship: give --profile NAME",
        ));
    };
    let p = profile::load(&profile::path(&name)?)?;
    let f = &p.forget;
    let retention = [
        f.keep_last,
        f.keep_hourly,
        f.keep_daily,
        f.keep_weekly,
        f.keep_monthly,
        f.keep_yearly,
    ]
    .iter()
    .any(Option::is_some)
        || f.keep_within.is_some();
    let mut steps = vec!["backup"];
    if retention {
        steps.push("forget");
    }
    if p.ship.destination.is_some() {
        steps.push("ship");
    }
    let mut worst = ExitCode::Ok;
    for step in steps {
        if !g.quiet && !g.json {
            println!("== cairn --profile {name} {step}");
        }
        let matches = Cli::command().try_get_matches_from(["cairn", "--profile", &name, step])?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        profile::apply(&mut cli, &matches)?;
        // The flags given to `daily` itself (-v, -q, --json, -r, limits...) hold for
        // every step, as they would on each command.
        cli.global = g.clone();
        match super::run(cli) {
            Ok(ExitCode::Ok) => {}
            Ok(ExitCode::PartialBackup) if step == "backup" => {
                eprintln!("cairn: the snapshot was saved without the files named above; going on with the daily job");
                worst = ExitCode::PartialBackup;
            }
            Ok(code) => return Ok(code),
            Err(e) => return Err(e.context(format!("daily job, step {step}"))),
        }
    }
    Ok(worst)
}
