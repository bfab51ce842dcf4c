// The supervisor view: every live call with its agent, queue, state and time, and buttons to
// monitor (listen muted), whisper (coach the agent) or barge (join), and leave; the agents'
// board and the queues. Read every two seconds.
//
// Caller numbers and names are put on the page as text, never parsed as HTML.
"use strict";

let csrf = "";
let timer = null;
// What each table was last drawn from, times left out: a table is drawn again only when
// something in it changed (so that a click never lands on a row being replaced); the times
// move in place.
const drawn = { calls: "", agents: "", queues: "" };

/** Draws `rows` into the table body `id` if `items` (less `ticking`) changed; else only the
 * ticking cells (`.ticking`, in order) move. */
function draw(id, items, ticking, rows) {
  const signature = JSON.stringify(items.map((item) => ({ ...item, [ticking]: null })));
  if (signature !== drawn[id]) {
    drawn[id] = signature;
    $(id).replaceChildren(...items.map(rows));
    return;
  }
  const cells = $(id).querySelectorAll(".ticking");
  items.forEach((item, at) => {
    if (cells[at]) cells[at].textContent = duration(item[ticking] || 0);
  });
}

const api = serverCalls(() => csrf, "/agent/api/session", () => signedOut());

const MODES = [["monitor", "Monitor"], ["whisper", "Whisper"], ["barge", "Barge"]];

function show(signedIn) {
  $("sign-in").hidden = signedIn;
  $("desk").hidden = !signedIn;
  $("connection").hidden = !signedIn;
}

async function refresh() {
  try {
    render(await api("GET", "/supervisor/api/state"));
    $("connection").textContent = "● live";
    $("connection").classList.remove("down");
  } catch (error) {
    if (error.status === 403) {
      show(false);
      $("sign-in-error").textContent = error.message;
      stop();
      return;
    }
    if (error.status === 401) return;
    $("connection").textContent = "● reconnecting…";
    $("connection").classList.add("down");
  }
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

async function start() {
  try {
    render(await api("GET", "/supervisor/api/state"));
    show(true);
    stop();
    timer = setInterval(refresh, 2000);
  } catch (error) {
    show(false);
    if (error.status !== 401) $("sign-in-error").textContent = error.message;
  }
}

function signedOut() {
  stop();
  show(false);
}

function render(state) {
  csrf = state.csrf_token;
  $("who").textContent = state.you.friendly_name;
  $("no-calls").hidden = state.calls.length > 0;
  $("calls-table").hidden = state.calls.length === 0;
  draw("calls", state.calls, "age", callRow);
  draw("agents", state.agents, "in_activity", (agent) =>
    el("tr", { "data-agent": agent.friendly_name },
      el("td", {}, agent.friendly_name),
      el("td", { class: "activity" }, activityBadge(agent.activity_name, agent.available)),
      el("td", { class: "ticking" }, duration(agent.in_activity)),
      el("td", {}, agent.tasks.map((task) => `${task.channel} (${task.status}${task.queue ? `, ${task.queue}` : ""})`).join("; ") || "—"),
      el("td", { class: "handled" }, String(agent.calls_handled_today))));
  draw("queues", state.dashboard.queues, "longest_wait", (queue) =>
    el("tr", {},
      el("td", {}, queue.friendly_name),
      el("td", {}, String(queue.tasks_waiting)),
      el("td", { class: "ticking" }, duration(queue.longest_wait || 0)),
      el("td", {}, String(queue.agents_available))));
}

function callRow(call) {
  const buttons = MODES.map(([mode, label]) =>
    el("button", {
      type: "button",
      class: call.your_mode === mode ? "" : "secondary",
      "data-mode": mode,
      "aria-pressed": String(call.your_mode === mode),
      onclick: () => supervise(call.task_sid, mode),
    }, label));
  if (call.your_mode) {
    buttons.push(el("button", { type: "button", class: "secondary", "data-mode": "leave", onclick: () => supervise(call.task_sid, "leave") }, "Leave"));
  }
  return el("tr", { "data-task": call.task_sid },
    el("td", {}, call.caller || "—"),
    el("td", {}, call.agent || "—"),
    el("td", {}, call.queue || "—"),
    el("td", { class: "state" }, [call.state, call.on_hold && "on hold", call.recording && "recording"].filter(Boolean).join(" · ")),
    el("td", { class: "ticking" }, duration(call.age)),
    el("td", {}, call.supervisors.map((s) => `${s.name || s.label}: ${s.mode}`).join(", ") || "—"),
    el("td", { class: "your-mode" }, el("div", { class: "actions" }, ...buttons)));
}

async function supervise(task, mode) {
  $("desk-error").textContent = "";
  try {
    render(await api("POST", `/supervisor/api/calls/${task}`, { Mode: mode }));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    await api("POST", "/agent/api/session", { Name: $("name").value.trim(), Secret: $("secret").value });
    await start();
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
});

start();
