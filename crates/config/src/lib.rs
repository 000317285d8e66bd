//! Layered configuration, the same for every FoodFast binary: built-in
//! defaults, then an optional TOML file, then `FOODFAST_*` environment
//! variables, then command-line flags. Each binary lists the variables it
//! reads as [`Setting`]s (its README table lists the same ones) and
//! validates the result; a bad value names the variable to fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One environment variable and the configuration key it sets.
pub struct Setting {
    pub env: &'static str,
    pub key: &'static str,
    pub help: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
}

/// What a binary reads: its variables and the one naming its file.
pub struct Layers {
    pub settings: &'static [Setting],
    /// The variable naming the optional TOML file, e.g. `FOODFAST_CONFIG`.
    pub file_env: &'static str,
}

impl Layers {
    /// Loads defaults < `file` (or the file `file_env` names) < the
    /// variables in `env` < `flags` (configuration key, value). `env` is the
    /// process environment in `main`, a plain map in tests.
    pub fn load<T: Default + Serialize + DeserializeOwned>(
        &self,
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &[(&str, Value)],
    ) -> Result<T, ConfigError> {
        let file = file.map(Path::to_path_buf).or_else(|| env.get(self.file_env).map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(T::default()));
        if let Some(path) = &file {
            if !path.is_file() {
                return Err(ConfigError::File { path: path.clone(), message: "no such file".into() });
            }
            figment = figment.merge(Toml::file(path));
        }
        for setting in self.settings {
            if let Some(raw) = env.get(setting.env) {
                // Typed like figment's own Env provider: "8" is a number, "true" a bool.
                let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
                figment = figment.merge(Serialized::global(setting.key, value));
            }
        }
        for (key, value) in flags {
            figment = figment.merge(Serialized::global(key, value.clone()));
        }
        figment.extract().map_err(|err| self.describe(err, file.as_deref(), env))
    }

    /// A validation failure of `key`, named by its variable when it has one.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { setting: self.setting_name(key), message: message.into() }
    }

    /// Keys of `T`'s defaults that no setting names are fine; a setting
    /// naming no key is a mistake this finds (for a unit test).
    pub fn settings_without_key<T: Default + Serialize>(&self) -> Vec<&'static str> {
        let defaults = Figment::from(Serialized::defaults(T::default()));
        self.settings.iter().filter(|s| defaults.find_value(s.key).is_err()).map(|s| s.env).collect()
    }

    fn setting_name(&self, key: &str) -> String {
        match self.settings.iter().find(|setting| setting.key == key) {
            Some(setting) => format!("{} ({key})", setting.env),
            None => key.to_string(),
        }
    }

    fn describe(&self, err: figment::Error, file: Option<&Path>, env: &BTreeMap<String, String>) -> ConfigError {
        let key = err.path.join(".");
        let from_env = self.settings.iter().any(|s| s.key == key && env.contains_key(s.env));
        let message = err.kind.to_string();
        match file {
            Some(path) if !from_env => {
                ConfigError::File { path: path.to_path_buf(), message: format!("{key}: {message}") }
            }
            _ => ConfigError::Invalid { setting: self.setting_name(&key), message },
        }
    }
}

/// A list given either as a TOML array or as one comma-separated string (an
/// environment variable).
pub fn comma_separated<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Joined(String),
        List(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(deserializer)? {
        OneOrMany::Joined(joined) => {
            joined.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
        }
        OneOrMany::List(list) => list,
    })
}
