//! The optional TOML file of `lamina serve --config`: execution-host settings and the runtime registry.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use lamina_exec_host::RuntimeSpec;
use serde::Deserialize;

/// What a config file may say. Flags and `LAMINA_*` variables cover everything else.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Execution-host settings (`memory_budget_mb`, `max_sandboxes`, `tmp_size_mb`, …); unset ones keep
    /// their defaults.
    pub exec_host: Option<toml::Table>,
    /// More runtimes, or replacements: `[runtimes."python3.12"] command = [...] exec_env = "..."`.
    pub runtimes: BTreeMap<String, RuntimeSpec>,
    /// Runtime identifiers started like another one, e.g. `"python2.7" = "python3.11"` or
    /// `"nodejs4.3" = "nodejs20.x"` (the guide's names mapped to installed interpreters).
    pub runtime_aliases: BTreeMap<String, String>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config {}", path.display()))
    }

    /// Applies the file to an execution-host configuration.
    pub fn apply(&self, base: lamina_exec_host::Config) -> anyhow::Result<lamina_exec_host::Config> {
        let mut config = match &self.exec_host {
            None => base,
            Some(table) => {
                let mut merged = toml::Table::try_from(&base).context("serialise exec-host defaults")?;
                for (k, v) in table {
                    anyhow::ensure!(merged.contains_key(k), "unknown exec_host setting `{k}`");
                    merged.insert(k.clone(), v.clone());
                }
                merged.try_into().context("exec_host settings")?
            }
        };
        config.runtimes.extend(self.runtimes.clone());
        for (alias, target) in &self.runtime_aliases {
            let spec = config
                .runtimes
                .get(target)
                .cloned()
                .with_context(|| format!("runtime alias {alias} names unknown runtime {target}"))?;
            config.runtimes.insert(alias.clone(), RuntimeSpec { exec_env: format!("AWS_Lambda_{alias}"), ..spec });
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_overrides_apply() {
        let file: FileConfig = toml::from_str(
            r#"
            runtime_aliases = { "python2.7" = "custom" }
            [exec_host]
            max_sandboxes = 7
            [runtimes.custom]
            command = ["/usr/bin/python3", "/var/runtime/python/bootstrap.py"]
            exec_env = "AWS_Lambda_custom"
            "#,
        )
        .expect("parse");
        let config = file.apply(lamina_exec_host::Config::default()).expect("apply");
        assert_eq!(config.max_sandboxes, 7);
        assert_eq!(config.runtimes["python2.7"].command[0], "/usr/bin/python3");
        assert_eq!(config.runtimes["python2.7"].exec_env, "AWS_Lambda_python2.7");
        let bad: FileConfig = toml::from_str("[exec_host]\nno_such = 1\n").expect("parse");
        assert!(bad.apply(lamina_exec_host::Config::default()).is_err());
    }
}
