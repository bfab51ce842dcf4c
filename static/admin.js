// The admin page: the onboarding guide's steps as forms. Skills (with their queue and workflow
// expressions), the team with their activity, skills and capacity on each task channel (a new
// secret asked for in a dialog first), task queues (started from a skill's expression, the
// target expression checked as you type, with the workers it matches), workflows (a form and
// its JSON side by side, each filter's and target's expression checked as you type), and a
// live dashboard with "why not this agent", call recordings, and the IVR flows drawn as diagrams
// (Viz.js, loaded when that tab opens) with their scenarios, passed or failed, and a reload.
// Each form answers beside its button: "Saved" for a few seconds, or the refusal as the server
// wrote it (monospace, so that the caret under an expression's mistake stays in its column).
//
// It speaks TaskRouter's REST API and the admin API with the admin's session cookie and its
// CSRF token. Every name, attribute and expression is put on the page as text.
"use strict";

let csrf = "";
let workspace = "";
let dashboardStream = null;
let skills = [];
let queues = [];
let workers = [];
/** Each worker's channels (TaskRouter's WorkerChannel resources), by worker SID. */
let workerChannels = {};

/** Calls the server; a 401 (12 hours, or a new auth token) goes back to the sign-in form. */
const request = serverCalls(() => csrf, "/admin/api/session", () => show(false));

/** TaskRouter's REST API, relative to the workspace. */
const rest = (method, path, form) => request(method, `/v1/Workspaces/${workspace}${path}`, form);

function failed(error) {
  $("error").textContent = error.message;
}

/** Runs `action`, showing its error, and refreshes the lists after a change. */
async function act(action) {
  $("error").textContent = "";
  try {
    await action();
    await refresh();
  } catch (error) {
    failed(error);
  }
}

/** How long "Saved" stays beside a form's button. */
const SAVED_SHOWN_MS = 4000;

/** Shows `message` in the refusal box `box` (hidden when empty); scrollable, so focusable. */
function showRefusal(box, message) {
  box.textContent = message;
  box.hidden = !message;
  if (message) box.tabIndex = 0;
  else box.removeAttribute("tabindex");
}

/**
 * Saves with `save` what `form` holds, and answers beside its button: the server's refusal
 * (kept as written, caret drawing and all), or "Saved" for a few seconds (a status, which screen
 * readers announce); then reads the lists again.
 */
async function saveForm(form, save) {
  const saved = form.querySelector(".saved");
  const refusal = form.querySelector(".refusal");
  $("error").textContent = "";
  clearTimeout(saved.hideTimer);
  saved.replaceChildren();
  showRefusal(refusal, "");
  try {
    await save();
  } catch (error) {
    showRefusal(refusal, error.message);
    return;
  }
  saved.replaceChildren(el("span", { "aria-hidden": "true" }, "✓ "), "Saved");
  saved.hideTimer = setTimeout(() => saved.replaceChildren(), SAVED_SHOWN_MS);
  try {
    await refresh();
  } catch (error) {
    failed(error);
  }
}

// ----- expressions, checked as they are typed -----

/** The newest check asked for each expression input: an older answer is not shown. */
const expressionChecks = new WeakMap();

/** Shows in `output` what was found of `input`'s expression: `message` (the server's, with its
 * caret drawing) or, without one, that it is valid. */
function showCheck(input, output, message) {
  output.textContent = message || "✓ valid expression";
  output.className = message ? "check bad" : "check ok";
  if (message) {
    output.tabIndex = 0;
    input.setAttribute("aria-invalid", "true");
  } else {
    output.removeAttribute("tabindex");
    input.removeAttribute("aria-invalid");
  }
}

/**
 * Asks the server whether `input`'s expression compiles where it will be used (`context`:
 * queue, filter or target), without saving, and shows the answer in `output`. Answers whether
 * it is valid, or null when a newer check was asked for meanwhile.
 */
async function checkExpression(input, output, context) {
  const mine = (expressionChecks.get(input) || 0) + 1;
  expressionChecks.set(input, mine);
  if (context === "target" && !input.value.trim()) {
    // No worker expression: every worker in the target's queue.
    output.textContent = "any worker in the queue";
    output.className = "check quiet";
    output.removeAttribute("tabindex");
    input.removeAttribute("aria-invalid");
    return true;
  }
  try {
    await request("POST", "/admin/api/expressions/check", { Expression: input.value, Context: context });
    if (expressionChecks.get(input) !== mine) return null;
    showCheck(input, output, null);
    return true;
  } catch (error) {
    if (expressionChecks.get(input) !== mine) return null;
    showCheck(input, output, error.message);
    return false;
  }
}

let checkOutputs = 0;

/** An expression input (`attributes` its own) checked as it is typed, and the box under it that
 * says what was found (its description for screen readers). */
function checkedExpression(context, label, attributes) {
  const output = el("pre", { class: "check", id: `expression-check-${++checkOutputs}` });
  const input = el("input", { ...attributes, spellcheck: "false", "aria-describedby": output.id });
  input.addEventListener("input", () => checkExpression(input, output, context));
  checkExpression(input, output, context);
  return [el("label", {}, label, input), output];
}

// ----- sign-in and navigation -----

function show(signedIn) {
  $("sign-in").hidden = signedIn;
  $("nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("connection").hidden = !signedIn;
  if (!signedIn) for (const tab of document.querySelectorAll(".tab")) tab.hidden = true;
}

function route() {
  const wanted = (location.hash || "#dashboard").slice(1);
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== wanted;
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.getAttribute("href") === `#${wanted}`;
    link.classList.toggle("current", current);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (wanted === "recordings" && workspace) loadRecordings().catch(failed);
  if (wanted === "ivr" && workspace) loadFlows().catch(failed);
}

// ----- IVR flows -----

let vizLoading = null;

/** Viz.js (Graphviz in WebAssembly, vendored), loaded once, when a diagram is first drawn. */
function viz() {
  if (!vizLoading) {
    vizLoading = new Promise((resolve, reject) => {
      const script = el("script", { src: "/static/vendor/viz-global.js" });
      script.addEventListener("load", () => window.Viz.instance().then(resolve, reject));
      script.addEventListener("error", () => reject(new Error("the diagram library could not be loaded")));
      document.head.append(script);
    });
  }
  return vizLoading;
}

/** The flows in use: each one's diagram, numbers and scenarios. */
async function loadFlows() {
  const { dir, flows, scenario_error: scenarioError } = await request("GET", "/admin/api/ivr");
  $("ivr-dir").textContent = dir;
  $("ivr-scenario-error").textContent = scenarioError ? `Scenario files that could not be run: ${scenarioError}` : "";
  const cards = flows.map((flow) => {
    const diagram = el("div", { class: "flow-diagram", role: "img", "aria-label": `Diagram of ${flow.name}` });
    const passed = flow.scenarios.filter((call) => call.passed).length;
    const rows = flow.scenarios.map((call) =>
      el(
        "tr",
        { "data-passed": String(call.passed) },
        el("td", {}, call.name),
        el("td", {}, el("code", {}, `${call.file}:${call.line}`)),
        el("td", { class: call.passed ? "ok" : "bad" }, call.passed ? "passed" : `failed: ${call.failure}`),
      ),
    );
    const card = el(
      "article",
      { class: "card flow", "data-flow": flow.name },
      el("h3", {}, flow.name),
      el("p", { class: "quiet" }, `${flow.steps} steps, starting at “${flow.start}”; ${flow.numbers.length ? `answers ${flow.numbers.join(", ")}` : "answers every number no other flow lists"}; ${flow.languages.join(", ")}`),
      diagram,
      el("h4", {}, flow.scenarios.length ? `Scenarios: ${passed} of ${flow.scenarios.length} passed` : "No scenarios test this flow"),
      flow.scenarios.length
        ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Call"), el("th", {}, "Where"), el("th", {}, "Result"))), el("tbody", {}, ...rows))
        : null,
    );
    draw(diagram, flow);
    return card;
  });
  $("ivr-flows").replaceChildren(...cards);
}

/** The most steps drawn as a diagram: a bigger flow is unreadable as one, and laying it out would hold the page for minutes. */
const MAX_DRAWN_STEPS = 300;

/** Draws `flow` into `container`; its Mermaid text stands in if the diagram cannot be drawn. */
async function draw(container, flow) {
  if (flow.steps > MAX_DRAWN_STEPS) {
    container.replaceChildren(
      el("p", { class: "quiet too-large" }, `${flow.steps} steps are too many to draw here (at most ${MAX_DRAWN_STEPS}). `,
        el("code", {}, `switchboard ivr graph ${flow.name} --format dot`), " prints it for Graphviz."),
    );
    return;
  }
  try {
    const graphviz = await viz();
    container.replaceChildren(graphviz.renderSVGElement(flow.dot));
  } catch (error) {
    container.replaceChildren(el("p", { class: "error" }, `The diagram could not be drawn (${error.message}); as text:`), el("pre", {}, flow.mermaid));
  }
}

$("ivr-reload").addEventListener("click", async () => {
  $("error").textContent = "";
  $("ivr-reload-result").textContent = "Reloading…";
  try {
    const reloaded = await request("POST", "/admin/api/ivr/reload");
    $("ivr-reload-result").textContent = `Reloaded: ${reloaded.flows.join(", ")} in use; ${reloaded.scenarios} scenario calls passed.`;
    await loadFlows();
  } catch (error) {
    $("ivr-reload-result").textContent = error.message;
  }
});

// ----- recordings -----

/** The call recordings the tasks keep, each played through the server (which holds the provider's credentials). */
async function loadRecordings() {
  const { recordings } = await request("GET", "/admin/api/recordings");
  $("no-recordings").hidden = recordings.length > 0;
  const playing = new Map([...document.querySelectorAll("#recording-rows audio")].map((audio) => [audio.dataset.recording, audio]));
  $("recording-rows").replaceChildren(
    ...recordings.map((item) => {
      const player = playing.get(item.recording_sid) ||
        el("audio", { controls: "", preload: "metadata", src: item.audio_url, "data-recording": item.recording_sid, "aria-label": `Recording ${item.recording_sid}` });
      return el(
        "tr",
        { "data-recording": item.recording_sid },
        el("td", {}, new Date(item.date_created).toLocaleString()),
        el("td", {}, item.caller || ""),
        el("td", {}, item.queue || ""),
        el("td", {}, `${item.task_sid} (${item.assignment_status})`),
        el("td", {}, item.duration ? `${item.duration} s` : ""),
        el("td", {}, player),
      );
    }),
  );
}

async function start() {
  try {
    // The session first: the REST API answers 401 with a Basic challenge, which would make
    // the browser prompt for credentials.
    const session = await request("GET", "/admin/api/session");
    csrf = session.csrf_token;
    const listed = await request("GET", "/v1/Workspaces");
    workspace = listed.workspaces[0].sid;
  } catch (error) {
    show(false);
    if (error.status !== 401) $("sign-in-error").textContent = error.message;
    return;
  }
  show(true);
  route();
  listen();
  await refresh();
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    const session = await request("POST", "/admin/api/session", { AccountSid: $("account-sid").value, AuthToken: $("auth-token").value });
    csrf = session.csrf_token;
    $("auth-token").value = "";
    await start();
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
});

$("sign-out").addEventListener("click", async () => {
  try {
    await request("DELETE", "/admin/api/session");
  } finally {
    if (dashboardStream) dashboardStream.close();
    show(false);
  }
});

window.addEventListener("hashchange", route);

async function refresh() {
  const [skillList, workerList, queueList, workflowList] = await Promise.all([
    request("GET", "/admin/api/skills"),
    rest("GET", "/Workers?PageSize=1000"),
    rest("GET", "/TaskQueues?PageSize=1000"),
    rest("GET", "/Workflows?PageSize=1000"),
  ]);
  skills = skillList.skills;
  workers = workerList.workers;
  const channelLists = await Promise.all(workers.map((worker) => rest("GET", `/Workers/${worker.sid}/Channels?PageSize=100`)));
  workerChannels = Object.fromEntries(workers.map((worker, index) => [worker.sid, channelLists[index].channels]));
  queues = queueList.task_queues;
  // A control redrawn under the keyboard (a row saved as it changed) keeps the focus.
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : undefined;
  // One part that cannot be drawn (odd data) does not take the others with it.
  const parts = [renderSkills, renderTeam, renderQueues, () => renderWorkflows(workflowList.workflows), checkTarget];
  for (const part of parts) {
    try {
      part();
    } catch (error) {
      failed(error);
    }
  }
  if (focused && (!document.activeElement || document.activeElement === document.body)) refocus(focused);
}

/** Focuses the control whose `data-key` is `key`, else (a skill removed) its row's first. */
function refocus(key) {
  const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`) ||
    document.querySelector(`[data-key="${CSS.escape(`${key.split("/")[0]}/add-skill`)}"]`);
  if (again) again.focus();
}

// ----- dashboard -----

function listen() {
  if (dashboardStream) dashboardStream.close();
  dashboardStream = new EventSource("/admin/api/dashboard/events");
  dashboardStream.addEventListener("open", () => setConnection(true));
  dashboardStream.addEventListener("error", () => setConnection(false));
  dashboardStream.addEventListener("dashboard", (event) => {
    setConnection(true);
    renderDashboard(JSON.parse(event.data));
  });
}

function setConnection(live) {
  $("connection").textContent = live ? "● live" : "● reconnecting…";
  $("connection").classList.toggle("down", !live);
}

function renderDashboard(dashboard) {
  $("dashboard-queues").replaceChildren(
    ...dashboard.queues.map((queue) =>
      el("tr", { "data-queue": queue.friendly_name }, el("td", {}, queue.friendly_name), el("td", { class: "waiting" }, String(queue.tasks_waiting)),
        el("td", {}, `${queue.longest_wait} s`), el("td", { class: "available" }, String(queue.agents_available)), el("td", {}, String(queue.agents_eligible)))),
  );
  $("dashboard-activities").replaceChildren(
    ...dashboard.activities.map((activity) => el("tr", {}, el("td", {}, activity.friendly_name), el("td", {}, String(activity.workers)))),
  );
  keepOptions($("explain-task"), dashboard.waiting_tasks.map((task) => [task.sid, `${task.queue || "no queue"} · ${task.age} s · ${task.caller || task.sid} · ${(task.skills_needed || []).join(", ")}`]));
  keepOptions($("explain-worker"), dashboard.workers.map((worker) => [worker.sid, `${worker.friendly_name} (${worker.activity_name})`]));
  // The agents' board (charts.js), with each agent's time in their activity.
  if (typeof window.renderAgentsBoard === "function") window.renderAgentsBoard(dashboard.workers);
}

/** Replaces a select's options, keeping the selection when it is still there. */
function keepOptions(select, options) {
  // Not under the admin's hand: an open menu is left alone until the next push.
  if (document.activeElement === select) return;
  const chosen = select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
  if (options.some(([value]) => value === chosen)) {
    select.value = chosen;
  } else if (chosen) {
    // What was chosen is gone (the task was answered): say so rather than pick another.
    select.prepend(el("option", { value: "" }, "(no longer waiting)"));
    select.value = "";
  }
}

$("explain-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("explanation").textContent = "";
  try {
    const task = $("explain-task").value;
    const worker = $("explain-worker").value;
    if (!task || !worker) throw new Error("choose a waiting task and an agent");
    const answer = await rest("GET", `/Tasks/${task}/Explain?WorkerSid=${encodeURIComponent(worker)}`);
    $("explanation").textContent = answer.explanation;
  } catch (error) {
    $("explanation").textContent = error.message;
  }
});

// ----- skills -----

function renderSkills() {
  const chosen = $("filter-skill").value;
  $("filter-skill").replaceChildren(...skills.map((skill) => el("option", { value: skill.name }, skill.name)));
  if (skills.some((skill) => skill.name === chosen)) $("filter-skill").value = chosen;
  const start = $("queue-skill").value;
  $("queue-skill").replaceChildren(el("option", { value: "" }, "(none)"), ...skills.map((skill) => el("option", { value: skill.name }, skill.name)));
  if (skills.some((skill) => skill.name === start)) $("queue-skill").value = start;
  $("skill-rows").replaceChildren(
    ...skills.map((skill) =>
      el("tr", { "data-skill": skill.name },
        el("td", {}, skill.name),
        el("td", {}, skill.levels ? `${skill.levels.min}–${skill.levels.max}` : "none"),
        el("td", {}, el("code", { class: "queue-expression" }, skill.queue_expression)),
        el("td", {}, el("code", { class: "workflow-expression" }, skill.workflow_expression)),
        el("td", {}, skill.order_by ? el("code", { class: "order-by" }, skill.order_by) : "longest idle"),
        el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": `Delete ${skill.name}`, onclick: () => act(() => request("DELETE", `/admin/api/skills/${encodeURIComponent(skill.name)}`)) }, "Delete")))),
  );
}

$("skill-levels").addEventListener("change", (event) => {
  $("skill-min").disabled = !event.target.checked;
  $("skill-max").disabled = !event.target.checked;
});

$("skill-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = { Name: $("skill-name").value.trim() };
  if ($("skill-levels").checked) Object.assign(form, { MinLevel: $("skill-min").value, MaxLevel: $("skill-max").value });
  saveForm($("skill-form"), async () => {
    await request("POST", "/admin/api/skills", form);
    $("skill-name").value = "";
  });
});

// ----- team -----

/** A worker's skills as Flex keeps them: enabled in routing, switched off in disabled_skills. */
function workerSkills(worker) {
  let attributes = {};
  try {
    attributes = JSON.parse(worker.attributes || "{}");
  } catch (_) {
    attributes = {};
  }
  const object = (value) => (value && typeof value === "object" && !Array.isArray(value) ? value : {});
  const names = (value) => (Array.isArray(value) ? value.filter((name) => typeof name === "string") : []);
  const routing = object(object(attributes).routing);
  const disabled = object(object(attributes).disabled_skills);
  const levels = object(routing.levels);
  const disabledLevels = object(disabled.levels);
  return [
    ...names(routing.skills).map((name) => ({ name, level: levels[name], enabled: true })),
    ...names(disabled.skills).map((name) => ({ name, level: disabledLevels[name], enabled: false })),
  ];
}

function saveSkills(worker, list) {
  const form = new URLSearchParams();
  for (const skill of list) {
    const value = skill.level === undefined || skill.level === "" ? skill.name : `${skill.name}:${skill.level}`;
    form.append(skill.enabled ? "Skill" : "DisabledSkill", value);
  }
  // Always say which skills are switched off (none: an empty one), so that none linger.
  if (!list.some((skill) => !skill.enabled)) form.append("DisabledSkill", "");
  return request("POST", `/admin/api/workers/${worker.sid}/skills`, form);
}

/** Saves one of a worker's channels (`Capacity`, `Available`) through TaskRouter's API. */
function saveChannel(worker, channel, form) {
  return rest("POST", `/Workers/${worker.sid}/Channels/${channel.task_channel_sid}`, form);
}

/** A worker's capacity and availability on each task channel, each saved as it changes. */
function channelChips(worker) {
  return (workerChannels[worker.sid] || []).map((channel) => {
    const name = channel.task_channel_unique_name;
    return el("span", { class: channel.available ? "chip channel" : "chip channel disabled", "data-channel": name },
      el("input", { type: "checkbox", class: "channel-available", checked: channel.available, title: "available on this channel",
        "aria-label": `${worker.friendly_name} available on ${name}`, "data-key": `${worker.sid}/channel/${name}/available`,
        onchange: (event) => act(() => saveChannel(worker, channel, { Available: String(event.target.checked) })) }),
      name,
      el("input", { type: "number", class: "channel-capacity", min: "0", max: "50", value: String(channel.configured_capacity), title: "capacity",
        "aria-label": `${worker.friendly_name}'s capacity on ${name}`, "data-key": `${worker.sid}/channel/${name}/capacity`,
        onchange: (event) => act(() => saveChannel(worker, channel, { Capacity: event.target.value })) }));
  });
}

function renderTeam() {
  $("team-rows").replaceChildren(
    ...workers.map((worker) => {
      const list = workerSkills(worker);
      const chips = list.map((skill, index) => {
        const defined = skills.find((known) => known.name === skill.name);
        const key = `${worker.sid}/skill/${skill.name}`;
        const level = defined && defined.levels
          ? el("input", { type: "number", min: String(defined.levels.min), max: String(defined.levels.max), value: skill.level ?? defined.levels.min, title: "level",
            "aria-label": `${worker.friendly_name}'s ${skill.name} level`, "data-key": `${key}/level`,
            onchange: (event) => { list[index].level = event.target.value; act(() => saveSkills(worker, list)); } })
          : null;
        return el("span", { class: skill.enabled ? "chip" : "chip disabled", "data-skill": skill.name },
          el("input", { type: "checkbox", checked: skill.enabled, title: "enabled", "aria-label": `${skill.name} switched on for ${worker.friendly_name}`, "data-key": `${key}/enabled`,
            onchange: (event) => { list[index].enabled = event.target.checked; act(() => saveSkills(worker, list)); } }),
          skill.name, level,
          el("button", { type: "button", class: "secondary remove-skill", title: "remove", "aria-label": `Remove ${skill.name} from ${worker.friendly_name}`, "data-key": `${key}/remove`,
            onclick: () => act(() => saveSkills(worker, list.filter((_, other) => other !== index))) }, "×"));
      });
      const missing = skills.filter((skill) => !list.some((held) => held.name === skill.name));
      // Chosen, then added with the button: a menu walked with the arrow keys adds nothing.
      const add = el("select", { class: "add-skill", "aria-label": `Skill to add to ${worker.friendly_name}`, "data-key": `${worker.sid}/add-skill` },
        el("option", { value: "" }, "Add skill…"), ...missing.map((skill) => el("option", { value: skill.name }, skill.name)));
      const addButton = el("button", { type: "button", class: "secondary add-skill-button", "aria-label": `Add the skill to ${worker.friendly_name}`, "data-key": `${worker.sid}/add-skill-button`,
        onclick: () => {
          const defined = skills.find((skill) => skill.name === add.value);
          if (defined) act(() => saveSkills(worker, [...list, { name: defined.name, level: defined.levels ? defined.levels.min : undefined, enabled: true }]));
        } }, "Add");
      return el("tr", { "data-worker": worker.friendly_name },
        el("td", {}, worker.friendly_name),
        el("td", { class: "activity" }, activityBadge(worker.activity_name, worker.available)),
        el("td", {}, ...chips, missing.length ? el("span", { class: "add" }, add, " ", addButton) : null),
        el("td", {}, ...channelChips(worker)),
        el("td", {}, el("button", { type: "button", class: "secondary new-secret", "aria-label": `New secret for ${worker.friendly_name}`, "data-key": `${worker.sid}/new-secret`,
          onclick: () => askNewSecret(worker) }, "New secret")));
    }),
  );
}

/** The worker the new-secret dialog is about. */
let secretFor = null;

/** Asks first (a new secret signs the agent out everywhere), in a dialog whose Cancel has the focus. */
function askNewSecret(worker) {
  secretFor = worker;
  $("secret-worker").textContent = worker.friendly_name;
  $("secret-issued").textContent = "";
  showRefusal($("secret-form").querySelector(".refusal"), "");
  $("secret-confirm").hidden = false;
  $("secret-close").textContent = "Cancel";
  $("secret-dialog").showModal();
  $("secret-close").focus();
}

$("secret-close").addEventListener("click", () => $("secret-dialog").close());
$("secret-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const refusal = $("secret-form").querySelector(".refusal");
  showRefusal(refusal, "");
  try {
    const issued = await request("POST", `/admin/api/workers/${secretFor.sid}/secret`);
    $("secret-issued").textContent = `Sign-in secret for ${issued.friendly_name} (shown once): ${issued.sign_in_secret}`;
    $("secret-confirm").hidden = true;
    $("secret-close").textContent = "Close";
    $("secret-close").focus();
  } catch (error) {
    showRefusal(refusal, error.message);
  }
});

$("worker-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const contact = $("worker-contact").value.trim();
  const form = { FriendlyName: $("worker-name").value.trim(), Attributes: JSON.stringify(contact ? { contact_uri: contact } : {}) };
  $("worker-secret").textContent = "";
  saveForm($("worker-form"), async () => {
    const created = await rest("POST", "/Workers", form);
    $("worker-secret").textContent = `Sign-in secret for ${created.friendly_name} (shown once): ${created.sign_in_secret}`;
    $("worker-name").value = "";
    $("worker-contact").value = "";
  });
});

// ----- task queues -----

function renderQueues() {
  $("queue-rows").replaceChildren(
    ...queues.map((queue) =>
      el("tr", { "data-queue": queue.friendly_name },
        el("td", {}, queue.friendly_name), el("td", {}, el("code", {}, queue.target_workers)), el("td", {}, queue.task_order),
        el("td", {}, String(queue.max_reserved_workers)),
        el("td", {}, wrapUpSummary(queue)),
        el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": `Edit ${queue.friendly_name}`, onclick: () => editQueue(queue) }, "Edit")))),
  );
  for (const select of document.querySelectorAll("select.queue-choice, #default-queue")) refillQueues(select);
}

/** "30 s · Sale, No sale": the queue's wrap-up limit and disposition codes. */
function wrapUpSummary(queue) {
  const limit = queue.wrap_up_limit ? `${queue.wrap_up_limit} s` : "no limit";
  const codes = queue.disposition_codes || [];
  return codes.length ? `${limit} · ${codes.join(", ")}` : limit;
}

function editQueue(queue) {
  $("queue-form-title").textContent = queue ? `Edit ${queue.friendly_name}` : "New task queue";
  $("queue-sid").value = queue ? queue.sid : "";
  $("queue-name").value = queue ? queue.friendly_name : "";
  $("queue-target").value = queue ? queue.target_workers : "1==1";
  $("queue-order").value = queue ? queue.task_order : "FIFO";
  $("queue-max").value = queue ? queue.max_reserved_workers : 1;
  $("queue-wrap-up").value = queue ? queue.wrap_up_limit : 0;
  $("queue-dispositions").value = queue ? (queue.disposition_codes || []).join("\n") : "";
  const started = queue && skills.find((skill) => skill.queue_expression === queue.target_workers);
  $("queue-skill").value = started ? started.name : "";
  checkTarget();
}

/** Checks the target expression as it is typed, and lists the workers it matches. */
async function checkTarget() {
  const input = $("queue-target");
  const valid = await checkExpression(input, $("queue-target-check"), "queue");
  if (valid === null) return;
  if (!valid) {
    $("queue-matching").textContent = "—";
    return;
  }
  const mine = expressionChecks.get(input);
  try {
    const matching = await rest("GET", `/Workers?PageSize=1000&TargetWorkersExpression=${encodeURIComponent(input.value)}`);
    if (mine !== expressionChecks.get(input)) return;
    $("queue-matching").textContent = matching.workers.map((worker) => worker.friendly_name).join(", ") || "none";
  } catch (_) {
    if (mine === expressionChecks.get(input)) $("queue-matching").textContent = "—";
  }
}

$("queue-target").addEventListener("input", checkTarget);
$("queue-new").addEventListener("click", () => editQueue(null));
// A new queue for a skill starts from the skill's expression (and its name, when none is typed).
$("queue-skill").addEventListener("change", () => {
  const skill = skills.find((candidate) => candidate.name === $("queue-skill").value);
  if (!skill) return;
  $("queue-target").value = skill.queue_expression;
  if (!$("queue-name").value.trim()) $("queue-name").value = skill.name;
  checkTarget();
});

$("queue-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const sid = $("queue-sid").value;
  const codes = $("queue-dispositions").value.split("\n").map((code) => code.trim()).filter(Boolean);
  const form = {
    FriendlyName: $("queue-name").value.trim(), TargetWorkers: $("queue-target").value, TaskOrder: $("queue-order").value,
    MaxReservedWorkers: $("queue-max").value, WrapUpLimit: $("queue-wrap-up").value, DispositionCodes: codes.join(","),
  };
  saveForm($("queue-form"), async () => {
    await rest("POST", sid ? `/TaskQueues/${sid}` : "/TaskQueues", form);
    editQueue(null);
  });
});

// ----- workflows -----

function renderWorkflows(workflows) {
  $("workflow-rows").replaceChildren(
    ...workflows.map((workflow) =>
      el("tr", { "data-workflow": workflow.friendly_name },
        el("td", {}, workflow.friendly_name), el("td", {}, `${workflow.task_reservation_timeout} s`),
        el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": `Edit ${workflow.friendly_name}`, onclick: () => editWorkflow(workflow) }, "Edit")))),
  );
  if (!$("workflow-json").value) editWorkflow(null);
}

function refillQueues(select) {
  const chosen = select.value || select.dataset.want || "";
  const none = select.id === "default-queue" ? [el("option", { value: "" }, "(none)")] : [];
  // A queue the configuration names but the list lacks is shown as it is, never replaced.
  const unknown = chosen && !queues.some((queue) => queue.sid === chosen) ? [el("option", { value: chosen }, `unknown queue ${chosen}`)] : [];
  select.replaceChildren(...none, ...unknown, ...queues.map((queue) => el("option", { value: queue.sid }, queue.friendly_name)));
  select.value = chosen;
}

function queueSelect(sid) {
  const select = el("select", { class: "queue-choice" });
  select.dataset.want = sid || "";
  refillQueues(select);
  return select;
}

// The configuration as read, so that what the form does not edit (order_by, skip_if,
// known workers, other keys) is kept when the form writes the JSON.
let configurationRead = { task_routing: { filters: [] } };

function targetRow(target) {
  const row = el("div", { class: "target" },
    el("label", {}, "Queue ", queueSelect(target.queue)),
    el("label", {}, "Priority ", el("input", { type: "number", class: "target-priority", value: target.priority ?? "" })),
    el("label", {}, "Timeout (s) ", el("input", { type: "number", class: "target-timeout", value: target.timeout ?? "" })),
    ...checkedExpression("target", "Worker expression ", { class: "target-expression", value: target.expression ?? "" }),
    el("label", {}, "Order workers by ", el("input", { class: "target-order-by", value: target.order_by ?? "", spellcheck: "false", placeholder: "longest idle first" })),
    el("button", { type: "button", class: "secondary", onclick: (event) => { event.target.closest(".target").remove(); formToJson(); } }, "Remove target"));
  row.read = target;
  return row;
}

function filterBox(filter) {
  const targets = el("div", { class: "targets" }, ...(Array.isArray(filter.targets) ? filter.targets : [{}]).map(targetRow));
  const box = el("div", { class: "filter" },
    el("label", {}, "Filter name ", el("input", { class: "filter-name", value: filter.filter_friendly_name ?? "" })),
    ...checkedExpression("filter", "Task expression ", { class: "filter-expression", value: filter.expression ?? "" }),
    targets,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", onclick: () => { targets.append(targetRow({})); formToJson(); } }, "Add target"),
      el("button", { type: "button", class: "secondary", onclick: (event) => { event.target.closest(".filter").remove(); formToJson(); } }, "Remove filter")));
  box.read = filter;
  return box;
}

function editWorkflow(workflow) {
  $("workflow-form-title").textContent = workflow ? `Edit ${workflow.friendly_name}` : "New workflow";
  $("workflow-sid").value = workflow ? workflow.sid : "";
  $("workflow-name").value = workflow ? workflow.friendly_name : "";
  $("workflow-timeout").value = workflow ? workflow.task_reservation_timeout : 120;
  const configuration = workflow ? JSON.parse(workflow.configuration) : { task_routing: { filters: [] } };
  jsonToForm(configuration);
  $("workflow-json").value = JSON.stringify(configuration, null, 2);
  $("workflow-json-check").textContent = "";
}

function jsonToForm(configuration) {
  configurationRead = configuration;
  const routing = configuration.task_routing || {};
  $("filters").replaceChildren(...(Array.isArray(routing.filters) ? routing.filters : []).map(filterBox));
  const defaultQueue = $("default-queue");
  defaultQueue.dataset.want = (routing.default_filter && routing.default_filter.queue) || "";
  defaultQueue.value = defaultQueue.dataset.want;
  refillQueues(defaultQueue);
}

/** The configuration the form describes, over what was read (fields it does not edit kept). */
function formConfiguration() {
  const number = (input) => (input.value === "" ? undefined : Number(input.value));
  const set = (object, key, value) => {
    if (value === undefined || value === "") delete object[key];
    else object[key] = value;
  };
  const filters = [...document.querySelectorAll("#filters .filter")].map((box) => {
    const filter = { ...(box.read || {}) };
    set(filter, "filter_friendly_name", box.querySelector(".filter-name").value);
    filter.expression = box.querySelector(".filter-expression").value;
    filter.targets = [...box.querySelectorAll(".target")].map((row) => {
      const target = { ...(row.read || {}) };
      target.queue = row.querySelector(".queue-choice").value;
      set(target, "priority", number(row.querySelector(".target-priority")));
      set(target, "timeout", number(row.querySelector(".target-timeout")));
      set(target, "expression", row.querySelector(".target-expression").value.trim());
      set(target, "order_by", row.querySelector(".target-order-by").value.trim());
      return target;
    });
    return filter;
  });
  const routing = { ...(configurationRead.task_routing || {}), filters };
  if ($("default-queue").value) routing.default_filter = { ...(routing.default_filter || {}), queue: $("default-queue").value };
  else delete routing.default_filter;
  return { ...configurationRead, task_routing: routing };
}

function formToJson() {
  $("workflow-json").value = JSON.stringify(formConfiguration(), null, 2);
  $("workflow-json-check").textContent = "";
}

$("filters").addEventListener("input", formToJson);
$("filters").addEventListener("change", formToJson);
$("default-queue").addEventListener("change", formToJson);
$("workflow-json").addEventListener("input", () => {
  try {
    jsonToForm(JSON.parse($("workflow-json").value));
    $("workflow-json-check").textContent = "";
  } catch (error) {
    $("workflow-json-check").textContent = `JSON: ${error.message}`;
  }
});
$("add-filter").addEventListener("click", () => {
  $("filters").append(filterBox({ targets: [{ queue: queues.length ? queues[0].sid : "" }] }));
  formToJson();
});
// The guide's filter for a skill: its workflow expression, to the queue that targets the
// skill (else the first), a levelled skill's highest level offered the task first.
$("add-skill-filter").addEventListener("click", () => {
  const skill = skills.find((candidate) => candidate.name === $("filter-skill").value);
  if (!skill) return;
  const queue = queues.find((candidate) => candidate.target_workers === skill.queue_expression) || queues[0];
  const target = { queue: queue ? queue.sid : "" };
  if (skill.order_by) target.order_by = skill.order_by;
  $("filters").append(filterBox({ filter_friendly_name: `Send to ${skill.name}`, expression: skill.workflow_expression, targets: [target] }));
  formToJson();
});
$("workflow-new").addEventListener("click", () => editWorkflow(null));

$("workflow-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const sid = $("workflow-sid").value;
  const form = { FriendlyName: $("workflow-name").value.trim(), Configuration: $("workflow-json").value, TaskReservationTimeout: $("workflow-timeout").value };
  saveForm($("workflow-form"), async () => {
    await rest("POST", sid ? `/Workflows/${sid}` : "/Workflows", form);
    editWorkflow(null);
  });
});

start();
