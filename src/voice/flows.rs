//! The IVR flows of a folder, read at start (and by `switchboard ivr check`): every mistake of
//! every file is reported with its file and line, and each called number maps to one flow.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::ivr::{self, Flow};

const BUILTIN_MAIN: &str = include_str!("../../ivr/main.toml");

/// The flow that answers the numbers no flow lists.
pub const MAIN_FLOW: &str = "main.toml";

/// Every flow of a folder, by file name, and the flow of each listed number.
#[derive(Debug, Clone)]
pub struct Flows {
    flows: BTreeMap<String, Flow>,
    by_number: HashMap<String, String>,
}

/// The mistakes found, one `file:line: message` each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", mistakes.join("\n"))]
pub struct FlowsError {
    pub mistakes: Vec<String>,
}

impl Flows {
    /// Reads every `*.toml` directly in `dir`.
    pub fn load(dir: &Path) -> Result<Flows, FlowsError> {
        let fail = |message: String| FlowsError { mistakes: vec![message] };
        let files = toml_files(dir).map_err(fail)?;
        if files.is_empty() {
            return Err(fail(format!("{}: no flow files (*.toml)", dir.display())));
        }
        let mut flows = BTreeMap::new();
        let mut by_number: HashMap<String, String> = HashMap::new();
        let mut mistakes = Vec::new();
        for path in &files {
            let source = match std::fs::read_to_string(path) {
                Ok(source) => source,
                Err(err) => {
                    mistakes.push(format!("{}: cannot read: {err}", path.display()));
                    continue;
                }
            };
            match ivr::load_flow(&source) {
                Ok(flow) => {
                    let name =
                        path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
                    for number in &flow.numbers {
                        if let Some(other) = by_number.insert(number.clone(), name.clone()) {
                            let line =
                                source.lines().position(|line| line.contains(number.as_str())).map(|n| n + 1);
                            let message = format!("number {number} is already answered by {other}");
                            mistakes.push(ivr::located(path, line, &message));
                        }
                    }
                    flows.insert(name, flow);
                }
                Err(errors) => {
                    mistakes.extend(errors.iter().map(|err| ivr::located(path, err.line, &err.message)))
                }
            }
        }
        if mistakes.is_empty() { Ok(Flows { flows, by_number }) } else { Err(FlowsError { mistakes }) }
    }

    /// The shipped onboarding IVR (`ivr/main.toml`, built into the binary), for a server
    /// started where there is no `ivr/` folder.
    pub fn builtin() -> Flows {
        let flow = ivr::load_flow(BUILTIN_MAIN).expect("the shipped flow is valid (checked by a test)");
        Flows { flows: BTreeMap::from([(MAIN_FLOW.to_owned(), flow)]), by_number: HashMap::new() }
    }

    /// The flows of `settings.ivr_dir`; the built-in ones when that is the default folder and
    /// it does not exist (a server started outside the repository).
    pub fn for_settings(settings: &crate::config::VoiceSettings) -> Result<Flows, FlowsError> {
        if !settings.ivr_dir.exists() && settings.ivr_dir == crate::config::VoiceSettings::default().ivr_dir {
            tracing::info!(
                "no ivr/ folder here: answering with the built-in onboarding IVR (1 or SALES for Sales, 2 or SUPPORT for Support)"
            );
            return Ok(Flows::builtin());
        }
        Flows::load(&settings.ivr_dir)
    }

    /// The flow in file `name`.
    pub fn get(&self, name: &str) -> Option<&Flow> {
        self.flows.get(name)
    }

    /// The flow that answers calls to `to`: the one listing it, else `main.toml`, else the only
    /// flow of the folder.
    pub fn for_number(&self, to: &str) -> Option<(&str, &Flow)> {
        let name = match self.by_number.get(to) {
            Some(name) => name.as_str(),
            None if self.flows.contains_key(MAIN_FLOW) => MAIN_FLOW,
            None if self.flows.len() == 1 => self.flows.keys().next()?.as_str(),
            None => return None,
        };
        self.flows.get_key_value(name).map(|(name, flow)| (name.as_str(), flow))
    }

    /// The flows by file name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Flow)> {
        self.flows.iter()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// The `*.toml` files directly in `dir`, sorted.
pub fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|err| format!("cannot read the folder {}: {err}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
