//! The browser-test harness: headless Chromium driven over WebDriver, as a person would use the
//! agent and admin pages, and the smoke test that proves the chain (chromedriver, Chromium, the
//! in-process server) on a fresh machine.
//!
//! [`Browser::start`] runs Debian's `chromedriver` as a real subprocess on a port it picks
//! itself, connects a [`fantoccini`] client with headless Chromium capabilities, and kills the
//! driver and its browsers when the [`Browser`] is dropped. Every element helper takes a CSS
//! selector and first waits, up to [`WAIT_TIMEOUT`], for the element to be on the page, since
//! the pages render with JavaScript. Waits poll; that bound only turns a broken page into a
//! failure instead of a hang, and no test asserts on how long a wait took.
//!
//! Chromium and chromedriver come from `tests/browser/install.sh`, which [`Browser::start`] runs
//! when either is missing (`install::ensure`, once for all the browser tests; `.ci/run` runs it
//! too). [`Browser::audit`] checks a page's accessibility with axe-core, vendored for the tests
//! only (`tests/browser/axe.min.js`, see `tests/browser/README.md`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::{START_TIMEOUT, lines_of, spawn_app, wait_for_line};
use crate::install::{self, Requirement};

/// Debian's Chromium launcher and its matching WebDriver server.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Both, from Debian's packages.
const BROWSER: Requirement = Requirement {
    needs: "Debian's chromium and chromium-driver (apt-get, as root or with sudo)",
    script: "tests/browser/install.sh",
    files: &[CHROMIUM, CHROMEDRIVER],
};

/// How long a wait for an element or a condition may take before the test fails; generous
/// because CI machines are shared and slow, and only reached when something is broken.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a wait looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The browser window's size, the same on every machine; headless Chromium keeps room for its
/// (invisible) toolbars in it, so pages and screenshots get 1280×761 of it.
const WINDOW_SIZE: (u32, u32) = (1280, 900);

/// axe-core's checker, injected into the page under audit by WebDriver: never served by the
/// application, so the pages' Content-Security-Policy stays as it is.
const AXE: &str = include_str!("../browser/axe.min.js");

/// The impacts that fail an audit; the lesser ones ("moderate", "minor") are only printed.
const FAILING_IMPACTS: [&str; 2] = ["serious", "critical"];

/// A headless Chromium session, with the chromedriver process that runs it (killed on drop).
pub struct Browser {
    client: Client,
    /// Dropped after `client`: the session's connection ends before its driver does.
    _driver: ChromeDriver,
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session in it, installing both first
    /// when either is missing.
    ///
    /// Panics, saying what to run, when they cannot be installed (neither root nor sudo, no
    /// network...).
    pub async fn start() -> Browser {
        install::ensure_from_async(&BROWSER).await;
        let driver = tokio::task::spawn_blocking(ChromeDriver::start).await.expect("chromedriver starts");
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(headless_chromium_capabilities())
            .connect(&driver.url)
            .await
            .unwrap_or_else(|err| {
                panic!("chromedriver opens a Chromium session: {err}\nit wrote:\n{}", driver.output_so_far())
            });
        Browser { client, _driver: driver }
    }

    /// The WebDriver client itself, for what the helpers below do not cover (running a script,
    /// reading an attribute, going back).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads `url` and waits for the page's load event.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|err| panic!("Chromium opens {url}: {err}"));
    }

    /// Waits for the first element that `css` selects, and returns it.
    pub async fn find(&self, css: &str) -> Element {
        let found =
            self.client.wait().at_most(WAIT_TIMEOUT).every(POLL_INTERVAL).for_element(Locator::Css(css));
        match found.await {
            Ok(element) => element,
            Err(err) => panic!("no element matches `{css}` within {WAIT_TIMEOUT:?}: {err}"),
        }
    }

    /// The rendered text of the element that `css` selects, as a person reads it.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        element.text().await.unwrap_or_else(|err| panic!("the text of `{css}`: {err}"))
    }

    /// Waits until the text of the element that `css` selects contains `expected`, and returns
    /// that text.
    pub async fn wait_for_text(&self, css: &str, expected: &str) -> String {
        let mut last_seen = String::new();
        let shown = self
            .poll_until(async |browser| {
                // The page may redraw the element between finding and reading it: then it is
                // found again on the next look.
                match browser.find(css).await.text().await {
                    Ok(text) => last_seen = text,
                    Err(_) => return false,
                }
                last_seen.contains(expected)
            })
            .await;
        assert!(shown, "waited {WAIT_TIMEOUT:?} for `{css}` to show {expected:?}; it shows {last_seen:?}");
        last_seen
    }

    /// Waits until `condition` holds, asking it again every [`POLL_INTERVAL`]; `what` names the
    /// awaited state in the failure message.
    pub async fn wait_until(&self, what: &str, condition: impl AsyncFnMut(&Browser) -> bool) {
        assert!(self.poll_until(condition).await, "waited {WAIT_TIMEOUT:?} for {what}");
    }

    /// Asks `condition` every [`POLL_INTERVAL`] until it holds (true) or [`WAIT_TIMEOUT`] has
    /// passed (false).
    async fn poll_until(&self, mut condition: impl AsyncFnMut(&Browser) -> bool) -> bool {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        loop {
            if condition(self).await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Clicks the element that `css` selects. A page that redraws the element between finding
    /// and clicking it (a list refreshed after a save) is looked up again.
    pub async fn click(&self, css: &str) {
        for _ in 0..20 {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(err) if err.to_string().contains("stale element") => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Err(err) => panic!("a click on `{css}`: {err}"),
            }
        }
        panic!("a click on `{css}`: the element was redrawn every time it was found");
    }

    /// Types `text` into the element that `css` selects, after what it already holds.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        element.send_keys(text).await.unwrap_or_else(|err| panic!("typing into `{css}`: {err}"));
    }

    /// Checks the page as it is shown now with axe-core (every rule of its default set: WCAG
    /// 2.x A and AA and best practices), saves a screenshot as `audit-<page>.png`, and fails on
    /// any violation of impact "serious" or "critical", listing each with its rule, help and
    /// the elements at fault. Lesser findings are printed, and pass.
    pub async fn audit(&self, page: &str) {
        self.screenshot(&format!("audit-{page}")).await;
        let present = self.client.execute("return typeof window.axe === 'object'", vec![]).await;
        if present.ok() != Some(json!(true)) {
            let inject = format!("{AXE}\n;return typeof window.axe");
            let injected = self.client.execute(&inject, vec![]).await;
            assert_eq!(injected.ok(), Some(json!("object")), "{page}: axe-core is injected");
        }
        let run = "return axe.run(document, { resultTypes: ['violations'] }).then((results) => \
            results.violations.map((violation) => ({ id: violation.id, impact: violation.impact, \
            help: violation.help, nodes: violation.nodes.map((node) => node.target.join(' ')) })))";
        let found =
            self.client.execute(run, vec![]).await.unwrap_or_else(|err| panic!("{page}: axe.run: {err}"));
        let violations = found.as_array().cloned().unwrap_or_default();
        let describe = |violation: &serde_json::Value| {
            let nodes: Vec<String> = violation["nodes"]
                .as_array()
                .map(|nodes| {
                    nodes.iter().map(|node| format!("\n      {}", node.as_str().unwrap_or("?"))).collect()
                })
                .unwrap_or_default();
            format!(
                "  {} ({}): {}{}",
                violation["id"].as_str().unwrap_or("?"),
                violation["impact"].as_str().unwrap_or("?"),
                violation["help"].as_str().unwrap_or("?"),
                nodes.concat()
            )
        };
        let (failing, lesser): (Vec<_>, Vec<_>) = violations
            .iter()
            .partition(|violation| FAILING_IMPACTS.contains(&violation["impact"].as_str().unwrap_or("")));
        if !lesser.is_empty() {
            let listed: Vec<String> = lesser.iter().map(|violation| describe(violation)).collect();
            eprintln!("{page}: axe-core's lesser findings:\n{}", listed.join("\n"));
        }
        let listed: Vec<String> = failing.iter().map(|violation| describe(violation)).collect();
        assert!(
            listed.is_empty(),
            "{page}: axe-core finds serious or critical violations:\n{}",
            listed.join("\n")
        );
    }

    /// Saves what the window shows as `target/screenshots/<name>.png`, and returns that path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap_or_else(|err| panic!("a screenshot: {err}"));
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&directory).expect("target/screenshots is created");
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|err| panic!("{} is written: {err}", path.display()));
        path
    }
}

/// WebDriver capabilities for Debian's Chromium: headless, a fixed window, `/tmp` instead of a
/// possibly small `/dev/shm`, and no sandbox when running as root (which Chromium refuses).
fn headless_chromium_capabilities() -> serde_json::Map<String, serde_json::Value> {
    let (width, height) = WINDOW_SIZE;
    let mut arguments = vec![
        "--headless=new".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--window-size={width},{height}"),
    ];
    // SAFETY: geteuid(2) has no preconditions and always succeeds.
    if unsafe { libc::geteuid() } == 0 {
        arguments.push("--no-sandbox".to_owned());
    }
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": CHROMIUM, "args": arguments},
    });
    match capabilities {
        serde_json::Value::Object(capabilities) => capabilities,
        _ => unreachable!("the capabilities are a JSON object"),
    }
}

/// A `chromedriver` process in a process group of its own, which it shares with the Chromium
/// instances it starts: dropping it kills the whole group, so no browser outlives a test, and
/// then removes the temporary directory that they had for their profiles and shared memory.
struct ChromeDriver {
    child: Child,
    /// Where its WebDriver API answers, as `http://127.0.0.1:PORT`.
    url: String,
    /// Its standard output, read to the end (so that it never blocks on a full pipe).
    output: mpsc::Receiver<String>,
    /// Their `TMPDIR`, removed after them (a killed chromedriver leaves its profiles behind).
    _scratch: tempfile::TempDir,
}

impl ChromeDriver {
    /// Runs chromedriver on a port it picks (`--port=0`) and waits for the line that names it.
    /// It binds that port on IPv6 and then IPv4, and gives up when another process took the
    /// IPv4 one in between ("IPv4 port not available"): then it is started again, a few times.
    fn start() -> ChromeDriver {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let scratch = tempfile::tempdir().expect("a temporary directory for Chromium");
            let mut child = Command::new(CHROMEDRIVER)
                .arg("--port=0")
                .env("TMPDIR", scratch.path())
                .process_group(0)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| panic!("{CHROMEDRIVER} starts: {err}"));
            let output = lines_of(child.stdout.take().expect("stdout is piped"));
            let mut driver = ChromeDriver { child, url: String::new(), output, _scratch: scratch };
            match wait_for_line(&driver.output, START_TIMEOUT, started_on_port) {
                Ok(port) => {
                    driver.url = format!("http://127.0.0.1:{port}");
                    return driver;
                }
                Err(seen) if attempts < 5 && seen.iter().any(|line| line.contains("port not available")) => {
                    drop(driver);
                }
                Err(seen) => panic!("chromedriver did not start; it wrote:\n{}", seen.join("\n")),
            }
        }
    }

    /// What it wrote since it started, for a failure message.
    fn output_so_far(&self) -> String {
        self.output.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on the process group this driver leads; no memory effects.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port 41234." line.
fn started_on_port(line: &str) -> Option<u16> {
    line.strip_prefix("ChromeDriver was started successfully on port ")?.trim_end_matches('.').parse().ok()
}

#[tokio::test]
async fn headless_chromium_shows_what_healthz_answers() {
    let app = spawn_app().await;
    let answer = app.client.get(app.url("/healthz")).send().await.unwrap().text().await.unwrap();
    let browser = Browser::start().await;

    browser.open(&app.url("/healthz")).await;

    let shown = browser.wait_for_text("body", &answer).await;
    assert!(shown.contains(r#""status":"ok""#), "{shown}");
    let screenshot = browser.screenshot("healthz").await;
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 0, "{}", screenshot.display());
    drop(browser);
    app.shut_down().await.unwrap();
}

#[tokio::test]
async fn the_browser_harness_types_clicks_and_waits_for_a_late_change() {
    // A page of the test's own: its button writes the greeting a moment after the click.
    let page = "data:text/html,<input id=name><button id=greet onclick=\"setTimeout(() => \
        document.querySelector('%23greeting').textContent = 'Hello, ' + \
        document.querySelector('%23name').value, 200)\">Greet</button><p id=greeting></p>";
    let browser = Browser::start().await;
    browser.open(page).await;

    browser.type_into("#name", "Ada").await;
    browser.click("#greet").await;

    assert_eq!(browser.wait_for_text("#greeting", "Hello").await, "Hello, Ada");
    browser
        .wait_until("the name field to hold what was typed", async |browser| {
            let script = "return document.querySelector('#name').value";
            browser.client().execute(script, vec![]).await.unwrap() == "Ada"
        })
        .await;
}
