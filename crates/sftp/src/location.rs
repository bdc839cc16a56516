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
        })
    }

    /// With `command` (split on spaces) starting the session instead.
    pub fn with_command(mut self, command: &str) -> SftpLocation {
        self.command = Some(command.split_whitespace().map(str::to_string).collect());
        self
    }

    /// How it is shown: what the user wrote.
    pub fn display(&self) -> String {
        format!("sftp:{}:{}", self.destination, self.path)
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
