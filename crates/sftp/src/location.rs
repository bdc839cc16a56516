//! `sftp:[USER@]HOST:PATH`, as restic writes it; the port and everything else come
//! from the ssh config for HOST.

/// Where an SFTP repository is, and how ssh is started for it.
#[derive(Clone, Debug)]
pub struct SftpLocation {
    /// `user@host` or `host`, as given to ssh.
    pub destination: String,
    /// The repository directory on the server: absolute, or relative to the login
    /// directory. Never empty.
    pub path: String,
    /// The command that starts the SFTP session instead of
    /// `ssh DESTINATION -s sftp` (`CAIRN_SFTP_COMMAND`, as restic's `sftp.command`):
    /// split on spaces.
    pub command: Option<Vec<String>>,
    /// How the user named it, when not `sftp:...` (`rclone:REMOTE:PATH`).
    pub shown: Option<String>,
}

/// The environment variable that replaces the ssh command line.
pub const COMMAND_ENV: &str = "CAIRN_SFTP_COMMAND";

impl SftpLocation {
    /// Parses `sftp:...`; `None` when `location` is not an SFTP location at all.
    pub fn parse(location: &str) -> Option<Result<SftpLocation, String>> {
        let rest = location.strip_prefix("sftp:")?;
        Some(Self::parse_rest(rest).map_err(|why| format!("{location}: {why}")))
    }

    fn parse_rest(rest: &str) -> Result<SftpLocation, String> {
        if rest.starts_with("//") {
            return Err("write sftp:[USER@]HOST:PATH (the port goes in ~/.ssh/config)".into());
        }
        let (destination, path) = rest
            .split_once(':')
            .ok_or("no path: write sftp:[USER@]HOST:PATH")?;
        let host = destination.rsplit('@').next().unwrap_or("");
        if host.is_empty()
            || destination.starts_with('-')
            || destination
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(format!("{destination:?} is not a host to connect to"));
        }
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err("no path after the host".into());
        }
        if path.split('/').any(|c| c == "..") || path.contains('\0') {
            return Err("the path has a .. part".into());
        }
        let command = std::env::var(COMMAND_ENV)
            .ok()
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.split_whitespace().map(str::to_string).collect());
        Ok(SftpLocation {
            destination: destination.to_string(),
            path: path.to_string(),
            command,
            shown: None,
        })
    }

    /// `rclone:REMOTE:PATH` for an rclone remote of type sftp: its host, user, port,
    /// key file and known-hosts file become ssh's options; a password or an inline key
    /// is refused (cairn logs in as ssh does: keys, agent, config).
    pub fn from_rclone(
        remote: &str,
        path: &str,
        conf: &std::collections::HashMap<String, String>,
    ) -> Result<SftpLocation, String> {
        let get = |k: &str| conf.get(k).map(String::as_str).filter(|v| !v.is_empty());
        for secret in ["pass", "key_pem", "key_file_pass"] {
            if get(secret).is_some() {
                return Err(format!(
                    "rclone remote {remote:?} logs in with {secret}, which cairn does not read: give it a key_file, or use the ssh agent"
                ));
            }
        }
        let host = get("host").ok_or(format!("rclone remote {remote:?} has no host"))?;
        let destination = match get("user") {
            Some(u) => format!("{u}@{host}"),
            None => host.to_string(),
        };
        let mut loc = Self::parse_rest(&format!("{destination}:{path}"))?;
        let mut argv: Vec<String> = vec!["ssh".into()];
        if let Some(port) = get("port") {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("rclone remote {remote:?}: port {port:?} is not a port"))?;
            argv.extend(["-p".into(), port.to_string()]);
        }
        if let Some(key) = get("key_file") {
            argv.extend([
                "-i".into(),
                expand_home(key),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        if let Some(kh) = get("known_hosts_file") {
            argv.extend([
                "-o".into(),
                format!("UserKnownHostsFile={}", expand_home(kh)),
            ]);
        }
        if loc.command.is_none() {
            let default = loc.argv();
            argv.extend(default.into_iter().skip(1));
            loc.command = Some(argv);
        }
        loc.shown = Some(format!("rclone:{remote}:{path}"));
        Ok(loc)
    }

    /// With `command` (split on spaces) starting the session instead.
    pub fn with_command(mut self, command: &str) -> SftpLocation {
        self.command = Some(command.split_whitespace().map(str::to_string).collect());
        self
    }

    /// How it is shown: what the user wrote.
    pub fn display(&self) -> String {
        self.shown
            .clone()
            .unwrap_or_else(|| format!("sftp:{}:{}", self.destination, self.path))
    }

    /// The program and its arguments that start the session.
    pub(crate) fn argv(&self) -> Vec<String> {
        match &self.command {
            Some(c) => c.clone(),
            None => vec![
                "ssh".into(),
                // Found dead within a minute instead of hanging on a dropped link.
                "-o".into(),
                "ServerAliveInterval=15".into(),
                "-o".into(),
                "ServerAliveCountMax=4".into(),
                "--".into(),
                self.destination.clone(),
                "-s".into(),
                "sftp".into(),
            ],
        }
    }
}

/// `~/x` as rclone writes key paths.
fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let l = SftpLocation::parse("sftp:me@nas.local:/srv/backup/")
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.destination.as_str(), l.path.as_str()),
            ("me@nas.local", "/srv/backup")
        );
        let l = SftpLocation::parse("sftp:nas:cairn").unwrap().unwrap();
        assert_eq!((l.destination.as_str(), l.path.as_str()), ("nas", "cairn"));
        assert!(SftpLocation::parse("/x").is_none());
        for bad in [
            "sftp:nas",
            "sftp:nas:",
            "sftp::/x",
            "sftp:-oProxyCommand=x:/y",
            "sftp:a b:/x",
            "sftp:nas:/a/../b",
            "sftp://nas/x",
        ] {
            assert!(SftpLocation::parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
