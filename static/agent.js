// The agent page: sign in, choose an activity, see offers pushed live (server-sent events),
// accept or reject them before they time out, work tasks in hand and text conversations.
//
// Everything a caller or texter wrote (numbers, names, attributes, message bodies) is put on
// the page as text (textContent, append of strings), never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

let csrf = "";
let stream = null;
let receivedAt = 0;
const offersSeen = new Set();
// Task SID → its open conversation panel ({ element, source, deliveries }).
const conversations = new Map();

/** Calls the agent API; a write carries the session's CSRF token. Throws with the server's message. */
async function api(method, path, form) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (form) {
    options.body = new URLSearchParams(form);
    options.headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const error = new Error((body && body.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** An element with attributes (`class`, `on…` handlers, others as attributes) and children (strings become text). */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function text(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function show(signedIn) {
  $("sign-in").hidden = signedIn;
  $("desk").hidden = !signedIn;
  $("activity-box").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("connection").hidden = !signedIn;
}

function setConnection(live) {
  const connection = $("connection");
  connection.textContent = live ? "● live" : "● reconnecting…";
  connection.classList.toggle("down", !live);
}

async function start() {
  try {
    const state = await api("GET", "/agent/api/state");
    csrf = state.csrf_token;
    signedIn(state);
  } catch (error) {
    show(false);
    if (error.status !== 401) $("sign-in-error").textContent = error.message;
  }
}

function signedIn(state) {
  show(true);
  render(state);
  listen();
}

/** Opens the live stream. The browser reconnects by itself; the first `state` after a reconnection puts the page right. */
function listen() {
  if (stream) stream.close();
  stream = new EventSource("/agent/api/events");
  stream.addEventListener("open", () => setConnection(true));
  stream.addEventListener("state", (event) => {
    setConnection(true);
    render(JSON.parse(event.data));
  });
  stream.addEventListener("error", async () => {
    setConnection(false);
    // A stream that cannot reconnect because the session ended: back to the sign-in form.
    try {
      await api("GET", "/agent/api/state");
    } catch (error) {
      if (error.status === 401) {
        stream.close();
        show(false);
      }
    }
  });
}

function render(state) {
  receivedAt = performance.now();
  $("who").textContent = state.worker.friendly_name;
  $("who").dataset.activity = state.worker.activity_name;
  const select = $("activity");
  select.replaceChildren(
    ...state.activities.map((activity) => el("option", { value: activity.sid }, activity.friendly_name)),
  );
  select.value = state.worker.activity_sid;
  renderOffers(state.offers);
  renderTasks(state.tasks);
}

function details(item) {
  return el(
    "dl",
    {},
    el("dt", {}, "Caller"), el("dd", { class: "caller" }, text(item.caller)),
    el("dt", {}, "IVR path"), el("dd", { class: "ivr-path" }, text(item.ivr_path)),
    el("dt", {}, "Skills needed"), el("dd", { class: "skills" }, Array.isArray(item.skills_needed) ? item.skills_needed.join(", ") : text(item.skills_needed)),
    el("dt", {}, "Channel"), el("dd", {}, item.channel),
    el("dt", {}, "Queue"), el("dd", {}, text(item.queue)),
    el("dt", {}, "Waiting"), el("dd", {}, `${item.age} s`),
  );
}

function attributes(item) {
  return el("details", {}, el("summary", {}, "Attributes"), el("pre", { class: "attributes" }, JSON.stringify(item.attributes, null, 2)));
}

function renderOffers(offers) {
  $("no-offers").hidden = offers.length > 0;
  let fresh = false;
  $("offers").replaceChildren(
    ...offers.map((offer) => {
      if (!offersSeen.has(offer.reservation_sid)) {
        offersSeen.add(offer.reservation_sid);
        fresh = true;
      }
      const countdown = el("span", { class: "countdown", "data-expires": String(receivedAt + offer.expires_in_ms) });
      return el(
        "article",
        { class: "card offer", "data-reservation": offer.reservation_sid },
        el("strong", {}, `New ${offer.channel} task`), " · expires in ", countdown,
        details(offer),
        attributes(offer),
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", class: "accept", onclick: () => answer(offer.reservation_sid, "accepted") }, "Accept"),
          el("button", { type: "button", class: "reject secondary", onclick: () => answer(offer.reservation_sid, "rejected") }, "Reject"),
        ),
      );
    }),
  );
  tick();
  if (fresh) notify(offers.length);
  document.title = offers.length ? `(${offers.length}) Offer · Switchboard` : "Switchboard · Agent";
}

function renderTasks(tasks) {
  $("no-tasks").hidden = tasks.length > 0;
  const open = new Set(tasks.map((task) => task.task_sid));
  for (const [task, panel] of conversations) {
    if (!open.has(task)) {
      panel.source.close();
      conversations.delete(task);
    }
  }
  $("tasks").replaceChildren(
    ...tasks.map((task) => {
      const wrapping = task.assignment_status === "wrapping";
      const card = el(
        "article",
        { class: "card task", "data-task": task.task_sid },
        el("strong", {}, `${task.channel} task`), " · ", el("span", { class: "status" }, task.assignment_status),
        details(task),
        attributes(task),
        el(
          "div",
          { class: "actions" },
          wrapping ? null : el("button", { type: "button", class: "secondary wrap", onclick: () => finish(task.task_sid, "wrapping") }, "Wrap up"),
          el("button", { type: "button", class: "complete", onclick: () => finish(task.task_sid, "completed") }, "Complete"),
        ),
      );
      if (task.channel === "sms") card.append(conversation(task.task_sid));
      return card;
    }),
  );
}

/** The conversation panel of an SMS task: kept across renders, fed by its own event stream. */
function conversation(task) {
  let panel = conversations.get(task);
  if (panel) return panel.element;
  const messages = el("div", { class: "messages", "aria-live": "polite" });
  const body = el("textarea", { rows: "2", name: "Body", placeholder: "Reply…" });
  const error = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "reply" }, body, el("button", { type: "submit" }, "Send"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await api("POST", `/agent/api/conversations/${task}/messages`, { Body: body.value });
      body.value = "";
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  const element = el("section", { class: "conversation" }, el("h3", {}, "Conversation"), messages, form);
  const deliveries = new Map();
  const source = new EventSource(`/agent/api/conversations/${task}/events`);
  panel = { element, source, deliveries };
  conversations.set(task, panel);
  const load = async () => {
    const view = await api("GET", `/agent/api/conversations/${task}`);
    messages.replaceChildren();
    deliveries.clear();
    for (const message of view.messages) addMessage(panel, messages, message);
  };
  source.addEventListener("ready", load);
  source.addEventListener("lagged", load);
  source.addEventListener("message", (event) => addMessage(panel, messages, JSON.parse(event.data)));
  source.addEventListener("delivery", (event) => {
    const delivery = JSON.parse(event.data);
    const shown = deliveries.get(delivery.id);
    if (shown) shown.textContent = delivery.status;
  });
  return element;
}

function addMessage(panel, messages, message) {
  const delivery = message.delivery ? el("span", { class: "delivery" }, message.delivery.status) : null;
  if (message.delivery) panel.deliveries.set(message.delivery.id, delivery);
  messages.append(
    el("p", { class: `message ${message.author}` }, el("span", { class: "author" }, message.author), el("span", { class: "body" }, message.body), delivery),
  );
  messages.scrollTop = messages.scrollHeight;
}

async function answer(reservation, status) {
  $("desk-error").textContent = "";
  try {
    render(await api("POST", `/agent/api/reservations/${reservation}`, { ReservationStatus: status }));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

async function finish(task, status) {
  $("desk-error").textContent = "";
  try {
    render(await api("POST", `/agent/api/tasks/${task}`, { AssignmentStatus: status }));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

/** Updates every countdown; an expired offer says so until the server takes it away. */
function tick() {
  const now = performance.now();
  for (const countdown of document.querySelectorAll(".countdown")) {
    const left = Math.max(0, Math.ceil((Number(countdown.dataset.expires) - now) / 1000));
    countdown.textContent = left > 0 ? `${left} s` : "expired";
  }
}

/** A short tone, and a browser notification when the agent allowed them. */
function notify(count) {
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const volume = audio.createGain();
    volume.gain.value = 0.1;
    tone.frequency.value = 880;
    tone.connect(volume).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch (_) {
    // No audio (autoplay policy, headless browser): the title and the notification remain.
  }
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    new Notification("Switchboard", { body: count === 1 ? "A new offer is waiting." : `${count} offers are waiting.` });
  }
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
  try {
    const session = await api("POST", "/agent/api/session", { Name: $("name").value, Secret: $("secret").value });
    csrf = session.csrf_token;
    $("secret").value = "";
    const state = await api("GET", "/agent/api/state");
    signedIn(state);
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
});

$("activity").addEventListener("change", async (event) => {
  $("desk-error").textContent = "";
  try {
    render(await api("POST", "/agent/api/activity", { ActivitySid: event.target.value }));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
});

$("sign-out").addEventListener("click", async () => {
  try {
    await api("DELETE", "/agent/api/session");
  } finally {
    if (stream) stream.close();
    for (const panel of conversations.values()) panel.source.close();
    conversations.clear();
    show(false);
  }
});

setInterval(tick, 250);
start();
