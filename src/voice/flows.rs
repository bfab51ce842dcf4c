//! The IVR flows of a folder, read at start (and by `switchboard ivr check`): every mistake of
//! every file is reported with its file and line, and each called number maps to one flow.
//! [`Ivr`] holds the flows in use, swaps them whole on a reload (SIGHUP, or the admin API) when
//! the folder passes its checks and its scenarios, and walks calls and texts through them,
//! making the lookups their steps ask for.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::ivr::{self, CallState, Caller, Effect, Flow, Input, Medium};
use crate::outbound::lookup::Lookups;
use crate::twiml::{Response, Verb};

const BUILTIN_MAIN: &str = include_str!("../../ivr/main.toml");

/// The flow that answers the numbers no flow lists.
pub const MAIN_FLOW: &str = "main.toml";

/// The largest flow or scenario file read (a flow of 10,000 menus is about 1 MB): a bigger one
/// is a mistake to report, not a file to hold in memory.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// Every flow of a folder, by file name, and the flow of each listed number.
#[derive(Debug, Clone)]
pub struct Flows {
    flows: BTreeMap<String, Arc<Flow>>,
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
            let source = match read_file(path) {
                Ok(source) => source,
                Err(mistake) => {
                    mistakes.push(mistake);
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
                    flows.insert(name, Arc::new(flow));
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
        Flows { flows: BTreeMap::from([(MAIN_FLOW.to_owned(), Arc::new(flow))]), by_number: HashMap::new() }
    }

    /// The flows of `settings.ivr_dir`; the built-in ones when that is the default folder and
    /// it does not exist (a server started outside the repository).
    pub fn for_settings(settings: &crate::config::VoiceSettings) -> Result<Flows, FlowsError> {
        if uses_builtin(settings) {
            tracing::info!(
                "no ivr/ folder here: answering with the built-in onboarding IVR (1 or SALES for Sales, 2 or SUPPORT for Support)"
            );
            return Ok(Flows::builtin());
        }
        Flows::load(&settings.ivr_dir)
    }

    /// The flow in file `name`.
    pub fn get(&self, name: &str) -> Option<&Flow> {
        self.flows.get(name).map(|flow| &**flow)
    }

    /// The flow in file `name`, to keep beyond these flows' lifetime.
    pub fn shared(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows.get(name).cloned()
    }

    /// The flow that answers calls (and texts) to `to`: the one listing it, else `main.toml`,
    /// else the only flow of the folder.
    pub fn for_number(&self, to: &str) -> Option<(&str, &Flow)> {
        // A WhatsApp address is its number's.
        let to = to.strip_prefix(crate::sms::WHATSAPP).unwrap_or(to);
        let name = match self.by_number.get(to) {
            Some(name) => name.as_str(),
            None if self.flows.contains_key(MAIN_FLOW) => MAIN_FLOW,
            None if self.flows.len() == 1 => self.flows.keys().next()?.as_str(),
            None => return None,
        };
        self.flows.get_key_value(name).map(|(name, flow)| (name.as_str(), &**flow))
    }

    /// The flows by file name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Flow)> {
        self.flows.iter().map(|(name, flow)| (name, &**flow))
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Runs the scenarios of `dir/tests/*.toml` against these flows (the flows of `dir`): each
    /// file's calls, or the mistakes that kept files from running.
    pub fn run_scenarios(&self, dir: &Path) -> Result<Vec<ScenarioFile>, FlowsError> {
        let (files, mistakes) = self.run_scenario_files(dir);
        if mistakes.is_empty() { Ok(files) } else { Err(FlowsError { mistakes }) }
    }

    /// The scenario files of `dir/tests/*.toml` that ran against these flows, and the mistake
    /// of each that could not run: a broken file does not hide the others' results.
    pub fn run_scenario_files(&self, dir: &Path) -> (Vec<ScenarioFile>, Vec<String>) {
        let tests = dir.join("tests");
        if !tests.exists() {
            return (Vec::new(), Vec::new());
        }
        let paths = match toml_files(&tests) {
            Ok(paths) => paths,
            Err(mistake) => return (Vec::new(), vec![mistake]),
        };
        let run = |path: PathBuf| {
            let source = read_file(&path)?;
            let scenarios =
                ivr::read_scenarios(&source).map_err(|err| ivr::located(&path, err.line, &err.message))?;
            let Some(flow) = self.get(&scenarios.flow) else {
                return Err(format!(
                    "{}: flow {:?} is not in {}",
                    path.display(),
                    scenarios.flow,
                    dir.display()
                ));
            };
            let calls = scenarios.run(flow);
            Ok(ScenarioFile { path, flow: scenarios.flow, calls })
        };
        let (mut files, mut mistakes) = (Vec::new(), Vec::new());
        for ran in paths.into_iter().map(run) {
            match ran {
                Ok(file) => files.push(file),
                Err(mistake) => mistakes.push(mistake),
            }
        }
        (files, mistakes)
    }
}

/// One scenario file's calls, run.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    pub path: PathBuf,
    pub flow: String,
    pub calls: Vec<ivr::CallOutcome>,
}

/// Whether the server answers with the built-in flow: the default folder, absent.
fn uses_builtin(settings: &crate::config::VoiceSettings) -> bool {
    !settings.ivr_dir.exists() && settings.ivr_dir == crate::config::VoiceSettings::default().ivr_dir
}

/// How long the lookups of one webhook may take together: the provider waits 15 s for the
/// answer, and a caller should not wait that long in silence.
const LOOKUP_BUDGET: Duration = Duration::from_secs(12);
/// Less time than this left in the budget fails a lookup without making it.
const LOOKUP_LEAST: Duration = Duration::from_millis(500);

/// The flows in use, and what walks calls and texts through them.
pub struct Ivr {
    current: RwLock<Arc<Flows>>,
    settings: crate::config::VoiceSettings,
    lookups: Lookups,
    /// One reload at a time.
    reloading: Mutex<()>,
}

/// What a reload swapped in.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The flows now in use, by file name.
    pub flows: Vec<String>,
    /// Scenario calls run, all of which passed.
    pub scenarios: usize,
}

impl Ivr {
    pub fn new(flows: Flows, settings: &crate::config::VoiceSettings) -> Ivr {
        Ivr {
            current: RwLock::new(Arc::new(flows)),
            settings: settings.clone(),
            lookups: Lookups::default(),
            reloading: Mutex::new(()),
        }
    }

    /// The flows in use now. A call keeps the ones it got for the rest of its webhook.
    pub fn flows(&self) -> Arc<Flows> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The folder the flows are read from.
    pub fn dir(&self) -> &Path {
        &self.settings.ivr_dir
    }

    /// The scenario files of the folder run against `flows`, and the mistake of each that could
    /// not run; none for the built-in flow.
    pub fn scenarios(&self, flows: &Flows) -> (Vec<ScenarioFile>, Vec<String>) {
        if uses_builtin(&self.settings) {
            (Vec::new(), Vec::new())
        } else {
            flows.run_scenario_files(&self.settings.ivr_dir)
        }
    }

    /// Signs lookups with the auth token, as the provider signs its webhooks.
    pub fn sign_lookups_with(&self, auth_token: String) {
        self.lookups.sign_with(auth_token);
    }

    /// Reads the folder again and, when every flow loads and every scenario passes, uses it
    /// from the next webhook on. Otherwise the flows in use stay, and the error says why.
    /// Calls in a flow carry on in the new version (their place travels by step name; a step
    /// that is gone starts them over at the flow's start). The log says what happened, and
    /// what asked for it (`trigger`: SIGHUP, the admin API).
    pub fn reload(&self, trigger: &str) -> Result<Reloaded, FlowsError> {
        let reloaded = self.reload_folder();
        match &reloaded {
            Ok(reloaded) => {
                tracing::info!(flows = ?reloaded.flows, scenarios = reloaded.scenarios, "IVR flows reloaded ({trigger})")
            }
            Err(err) => {
                tracing::warn!(mistakes = %err, "the IVR folder was not reloaded ({trigger}); the flows in use stay")
            }
        }
        reloaded
    }

    fn reload_folder(&self) -> Result<Reloaded, FlowsError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The folder itself, even the default one: its absence is a mistake here, not the cue
        // for the built-in flow that a server started without it answers with.
        let flows = Flows::load(&self.settings.ivr_dir)?;
        let (files, mistakes) = self.scenarios(&flows);
        if !mistakes.is_empty() {
            return Err(FlowsError { mistakes });
        }
        let mut scenarios = 0;
        let mut failures = Vec::new();
        for file in files {
            for call in &file.calls {
                scenarios += 1;
                if let Some(failure) = &call.failure {
                    let message = format!("scenario {:?} failed: {failure}", call.name);
                    failures.push(ivr::located(&file.path, Some(call.line), &message));
                }
            }
        }
        if !failures.is_empty() {
            return Err(FlowsError { mistakes: failures });
        }
        let names = flows.iter().map(|(name, _)| name.clone()).collect();
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(flows);
        Ok(Reloaded { flows: names, scenarios })
    }

    /// One step of `flow` for a call or text, with the lookups it asks for made on the way
    /// (within [`LOOKUP_BUDGET`] of when the webhook `arrived`, so that a wait for the call's
    /// or conversation's lock counts): what was said before each lookup comes first.
    pub async fn walk(
        &self,
        flow: &Flow,
        state: CallState,
        input: Input,
        medium: Medium<'_>,
        caller: &Caller<'_>,
        arrived: tokio::time::Instant,
    ) -> ivr::Step {
        let deadline = arrived + LOOKUP_BUDGET;
        let mut said = Vec::new();
        let mut step = ivr::step(flow, state, &input, medium, caller);
        while let Effect::Lookup(request) = &step.effect {
            said.append(&mut step.response.verbs);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let answer = if left < LOOKUP_LEAST {
                Err("no time was left in this webhook for another lookup".to_owned())
            } else {
                self.lookups.fetch(request, Duration::from_secs(u64::from(request.timeout)).min(left)).await
            };
            if let Err(reason) = &answer {
                tracing::warn!(url = %request.url, step = %step.state.menu, %reason, "an IVR lookup failed; the flow goes on by its on_error step");
            }
            step = ivr::step(flow, step.state, &Input::Looked(answer), medium, caller);
        }
        said.append(&mut step.response.verbs);
        step.response = Response::new(joined_messages(said));
        step
    }
}

/// `verbs` with consecutive text messages joined into one: a texter gets one reply per text.
pub fn joined_messages(verbs: Vec<Verb>) -> Vec<Verb> {
    let mut out: Vec<Verb> = Vec::with_capacity(verbs.len());
    for verb in verbs {
        match (out.last_mut(), verb) {
            (Some(Verb::Message(last)), Verb::Message(next)) => {
                last.body = format!("{} {}", last.body, next.body);
            }
            (_, verb) => out.push(verb),
        }
    }
    out
}

/// The text of a flow or scenario file, of at most [`MAX_FILE_BYTES`]; else the mistake, naming
/// the file.
fn read_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let mut source = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_string(&mut source))
        .map_err(|err| format!("{}: cannot read: {err}", path.display()))?;
    if source.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than the {} MiB a flow file may have",
            path.display(),
            MAX_FILE_BYTES >> 20
        ));
    }
    Ok(source)
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
