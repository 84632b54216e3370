//! A small command-line parser: positional arguments plus `--flag` and `--option value` pairs,
//! checked against the options each command accepts so a typo is an error, not a silent default.

use squeeze::error::{Error, Result};
use std::collections::BTreeMap;
use std::str::FromStr;

pub struct Args {
    pub positional: Vec<String>,
    options: BTreeMap<String, Option<String>>,
}

/// `--name` takes a value when listed in `valued`; otherwise it is a switch.
pub fn parse(raw: &[String], switches: &[&str], valued: &[&str], usage: &str) -> Result<Args> {
    let mut args = Args { positional: Vec::new(), options: BTreeMap::new() };
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--") else {
            args.positional.push(a.clone());
            continue;
        };
        if switches.contains(&name) {
            args.options.insert(name.to_string(), None);
        } else if valued.contains(&name) {
            let value =
                it.next().ok_or_else(|| Error::Invalid(format!("--{name} needs a value\n{usage}")))?;
            args.options.insert(name.to_string(), Some(value.clone()));
        } else {
            return Err(Error::Invalid(format!("unknown option --{name}\n{usage}")));
        }
    }
    Ok(args)
}

impl Args {
    pub fn flag(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.options.get(name).and_then(|v| v.as_deref())
    }

    /// The option's value parsed as `T`, or `default` when absent.
    pub fn value<T: FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|_| Error::Invalid(format!("--{name}: cannot read '{v}' as a number")))
            }
        }
    }

    pub fn optional<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.text(name)
            .map(|v| {
                v.parse().map_err(|_| Error::Invalid(format!("--{name}: cannot read '{v}' as a number")))
            })
            .transpose()
    }

    pub fn expect_positional(&self, n: usize, command: &str, usage: &str) -> Result<()> {
        if self.positional.len() == n {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "'{command}' takes {n} argument(s), got {}: {:?}\n{usage}",
                self.positional.len(),
                self.positional
            )))
        }
    }
}
