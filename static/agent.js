// The agent page: sign in, choose an activity (shown with its colour), see offers pushed live
// (server-sent events) with their channel, how long the customer has waited (ticking) and the
// customer's details as labelled fields (the raw attributes folded away), accept or reject them
// before they time out, work tasks in hand and text conversations.
//
// Everything a caller or texter wrote (numbers, names, attributes, message bodies) is put on
// the page as text (textContent, append of strings), never parsed as HTML.
"use strict";

let csrf = "";
let stream = null;
let retry = null;
let receivedAt = 0;
const offersSeen = new Set();
// Task SID → its conversation panel ({ element, messages, loading, again }).
const conversations = new Map();
// What each part of the page was last drawn from: a part is drawn again only when it changed,
// so that a push does not take the focus from the reply box or fold the open attributes.
const drawn = { activities: "", offers: "", tasks: "" };

/** Calls the agent API; a 401 (a new secret, 12 hours) goes back to the sign-in form. */
const api = serverCalls(() => csrf, "/agent/api/session", () => signedOut());

function text(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function show(signedIn) {
  $("sign-in").hidden = signedIn;
  $("desk").hidden = !signedIn;
  // The Activity menu shows once a state has brought activities to choose from (`render`).
  if (!signedIn) $("activity-box").hidden = true;
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

/** Stops everything live and shows the sign-in form. */
function signedOut() {
  if (stream) stream.close();
  stream = null;
  clearTimeout(retry);
  conversations.clear();
  waitingSince.clear();
  drawn.activities = drawn.offers = drawn.tasks = "";
  show(false);
}

/**
 * Opens the live stream. The browser reconnects by itself after a network error; after an
 * answer it gives up on (a proxy's 502 while the server restarts) the page opens it again, a
 * little later each time. The first `state` after a reconnection puts the page right.
 */
function listen(delay = 1000) {
  if (stream) stream.close();
  clearTimeout(retry);
  stream = new EventSource("/agent/api/events");
  stream.addEventListener("open", () => {
    setConnection(true);
    delay = 1000;
  });
  stream.addEventListener("state", (event) => {
    setConnection(true);
    render(JSON.parse(event.data));
  });
  stream.addEventListener("conversation", (event) => {
    const { task_sid: task } = JSON.parse(event.data);
    for (const [sid, panel] of conversations) if (!task || sid === task) load(sid, panel);
  });
  stream.addEventListener("error", async () => {
    setConnection(false);
    const closed = stream && stream.readyState === EventSource.CLOSED;
    // A stream that cannot reconnect because the session ended: back to the sign-in form.
    try {
      await api("GET", "/agent/api/state");
    } catch (_) {
      return;
    }
    if (closed && stream) retry = setTimeout(() => listen(Math.min(delay * 2, 30000)), delay);
  });
}

/** The newest state drawn: its server run and version. */
let shownVersion = { epoch: null, version: -1 };

function render(state) {
  // The stream and the answers to this page's requests both bring states, and a later one can
  // arrive first: one older than what is shown is dropped.
  if (state.epoch === shownVersion.epoch && state.version < shownVersion.version) return;
  shownVersion = { epoch: state.epoch, version: state.version };
  receivedAt = performance.now();
  $("who").textContent = state.worker.friendly_name;
  $("who").dataset.activity = state.worker.activity_name;
  $("activity-box").hidden = state.activities.length === 0;
  $("activity-tone").dataset.tone = activityTone(state.worker.activity_name, state.worker.available);
  const select = $("activity");
  const activities = JSON.stringify(state.activities);
  if (activities !== drawn.activities) {
    drawn.activities = activities;
    select.replaceChildren(
      ...state.activities.map((activity) => el("option", { value: activity.sid }, activity.friendly_name)),
    );
  }
  if (document.activeElement !== select) select.value = state.worker.activity_sid;
  renderOffers(state.offers);
  renderTasks(state.tasks);
  const open = new Set([...state.offers, ...state.tasks].map((item) => item.task_sid));
  for (const task of waitingSince.keys()) if (!open.has(task)) waitingSince.delete(task);
}

/** What a part of the page shows of `items`, leaving out what changes with every push. */
function signature(items) {
  return JSON.stringify(items.map(({ age, expires_in_ms, wrap_up_ends_in_ms, ...kept }) => kept));
}

/** The names people know the usual task channels by; another channel shows its unique name. */
const CHANNEL_NAMES = { voice: "Voice", sms: "SMS", chat: "Chat", whatsapp: "WhatsApp", video: "Video", default: "Default" };

/** A task channel's name as people read it; its unique name when there is none. */
function channelLabel(channel) {
  return Object.hasOwn(CHANNEL_NAMES, channel) ? CHANNEL_NAMES[channel] : channel;
}

/** The task's channel, named, as a badge. */
function channelName(channel) {
  return el("span", { class: "channel-name", "data-channel": channel }, channelLabel(channel));
}

/** When each task's customer began to wait (`performance.now()` time), kept across renders: the
 * earliest estimate, since each state gives the age in whole seconds, rounded down. */
const waitingSince = new Map();


/** Notes how long `item`'s customer has waited, as of the state just received. */
function noteWaiting(item) {
  const since = receivedAt - item.age * 1000;
  const known = waitingSince.get(item.task_sid);
  waitingSince.set(item.task_sid, known === undefined ? since : Math.min(known, since));
}

/** A value of the customer's attributes as text, or null when there is none worth a line. */
function shown(value) {
  if (value === null || value === undefined || value === "") return null;
  if (Array.isArray(value)) return value.map(text).join(", ");
  return text(value);
}

/** The customer and what they asked for, as labelled fields; what the task does not say is left
 * out (the raw attributes are under the toggle below). */
function details(item) {
  const attributes = item.attributes && typeof item.attributes === "object" ? item.attributes : {};
  const field = (label, value, className) => {
    const line = shown(value);
    return line === null ? [] : [el("dt", {}, label), el("dd", className ? { class: className } : {}, line)];
  };
  const outbound = attributes.direction === "outbound";
  const name = [attributes.customer_name, attributes.name].find((candidate) => typeof candidate === "string" && candidate !== item.caller);
  const variables = attributes.ivr_variables && typeof attributes.ivr_variables === "object" && !Array.isArray(attributes.ivr_variables)
    ? Object.entries(attributes.ivr_variables)
    : [];
  const offer = item.expires_in_ms !== undefined;
  return el(
    "dl",
    {},
    el("dt", {}, outbound ? "Calling" : "From"), el("dd", { class: "caller" }, text(item.caller)),
    ...field("Name", name, "customer-name"),
    ...field(outbound ? "From (our number)" : "To (our number)", outbound ? attributes.from : attributes.to, "called"),
    el("dt", {}, "Channel"), el("dd", { class: "channel" }, channelLabel(item.channel)),
    el("dt", {}, "Queue"), el("dd", {}, text(item.queue)),
    el("dt", {}, offer ? "Waiting" : "Came in"), el("dd", {}, el("span", { class: "waited", "data-task": item.task_sid }, duration(item.age)), offer ? null : " ago"),
    el("dt", {}, "Skills needed"), el("dd", { class: "skills" }, Array.isArray(item.skills_needed) ? item.skills_needed.join(", ") : text(item.skills_needed)),
    ...field("Language", attributes.language, "language"),
    el("dt", {}, "IVR path"), el("dd", { class: "ivr-path" }, text(item.ivr_path)),
    ...(variables.length
      ? [el("dt", {}, "IVR variables"), el("dd", {}, el("dl", { class: "variables" }, ...variables.flatMap(([key, value]) => [el("dt", {}, key), el("dd", { "data-variable": key }, text(value))])))]
      : []),
    ...callbackDetails(item),
  );
}

/** A callback request's progress: asked, being called (try n of m), to try again, unanswered. */
function callbackDetails(item) {
  const callback = item.attributes && item.attributes.callback;
  if (!callback || typeof callback !== "object") return [];
  const tries = `try ${callback.attempts || 0} of ${callback.max_attempts || "?"}`;
  const next = callback.next_attempt_at ? `, next at ${callback.next_attempt_at}` : "";
  return [el("dt", {}, "Callback"), el("dd", { class: "callback" }, `${callback.status} (${tries}${next})`)];
}

function attributes(item) {
  return el("details", {}, el("summary", {}, "All attributes (JSON)"), el("pre", { class: "attributes" }, JSON.stringify(item.attributes, null, 2)));
}

function renderOffers(offers) {
  $("no-offers").hidden = offers.length > 0;
  for (const offer of offers) noteWaiting(offer);
  const drawing = signature(offers);
  if (drawing === drawn.offers) {
    // Same offers: only their time left moves.
    for (const offer of offers) {
      const countdown = document.querySelector(`[data-reservation="${offer.reservation_sid}"] .countdown`);
      if (countdown) countdown.dataset.expires = String(receivedAt + offer.expires_in_ms);
    }
    tick();
    return;
  }
  drawn.offers = drawing;
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
        el("h3", {}, channelName(offer.channel), " offer · expires in ", countdown),
        details(offer),
        attributes(offer),
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", class: "accept", onclick: () => answer(offer.reservation_sid, "accepted") }, "Accept"),
          callsBack(offer)
            ? el("button", { type: "button", class: "secondary call-back", onclick: () => acceptAndCallBack(offer) }, "Accept and call back")
            : null,
          el("button", { type: "button", class: "reject secondary", onclick: () => answer(offer.reservation_sid, "rejected") }, "Reject"),
        ),
      );
    }),
  );
  tick();
  if (fresh) {
    // When the newest offer reached the screen (the browser tests compare it with the offer's
    // creation).
    document.body.dataset.offerShownAt = String(Date.now());
    notify(offers.length);
  }
  document.title = offers.length ? `(${offers.length}) Offer · Switchboard` : "Switchboard · Agent";
}

/** The disposition picked for each task, kept while its card is drawn again. */
const picked = new Map();

/** The wrap-up limit's countdown of each wrapping task that has one. */
function wrapUpCountdowns(tasks) {
  for (const task of tasks) {
    const countdown = document.querySelector(`[data-task="${task.task_sid}"] .countdown`);
    if (countdown && task.wrap_up_ends_in_ms != null) countdown.dataset.expires = String(receivedAt + task.wrap_up_ends_in_ms);
  }
  tick();
}

function renderTasks(tasks) {
  $("no-tasks").hidden = tasks.length > 0;
  for (const task of tasks) noteWaiting(task);
  const drawing = signature(tasks);
  if (drawing === drawn.tasks) {
    wrapUpCountdowns(tasks);
    return;
  }
  drawn.tasks = drawing;
  for (const task of picked.keys()) if (!tasks.some((open) => open.task_sid === task)) picked.delete(task);
  const open = new Set(tasks.map((task) => task.task_sid));
  for (const task of conversations.keys()) if (!open.has(task)) conversations.delete(task);
  for (const key of players.keys()) if (!open.has(key.split("/")[0])) players.delete(key);
  $("tasks").replaceChildren(
    ...tasks.map((task) => {
      const wrapping = task.assignment_status === "wrapping";
      const card = el(
        "article",
        { class: "card task", "data-task": task.task_sid },
        el("h3", {}, channelName(task.channel), " task · ", el("span", { class: "status" }, task.assignment_status)),
        task.call ? callPanel(task) : null,
        details(task),
        attributes(task),
        el(
          "div",
          { class: "actions" },
          disposition(task),
          task.channel === "voice" && !task.call && !wrapping && task.attributes && task.attributes.from
            ? el("button", { type: "button", class: "secondary call-back", onclick: () => callBack(task.task_sid) }, "Call back")
            : null,
          wrapping ? null : el("button", { type: "button", class: "secondary wrap", onclick: () => finish(task.task_sid, "wrapping") }, "Wrap up"),
          el("button", { type: "button", class: "complete", onclick: () => finish(task.task_sid, "completed", task.channel) }, "Complete"),
        ),
        task.wrap_up_ends_in_ms == null
          ? null
          : el("p", { class: "quiet wrap-up-limit" }, "Completes by itself in ", el("span", { class: "countdown", "data-done": "a moment" })),
      );
      const played = recordings(task);
      if (played) card.append(played);
      if (TEXT_CHANNELS.includes(task.channel)) card.append(conversation(task.task_sid));
      return card;
    }),
  );
  wrapUpCountdowns(tasks);
}

/** The queue's disposition codes to pick one from, when it has some. */
function disposition(task) {
  if (!task.dispositions.length) return null;
  const select = el(
    "select",
    { class: "disposition", "aria-label": "Disposition", onchange: () => picked.set(task.task_sid, select.value) },
    el("option", { value: "" }, "Disposition…"),
    ...task.dispositions.map((code) => el("option", { value: code }, code)),
  );
  select.value = picked.get(task.task_sid) || "";
  return el("label", { class: "disposition-choice" }, select);
}

const CALL_STATES = {
  waiting: "The caller waits for an agent",
  calling: "Calling your phone…",
  ringing: "Your phone is ringing",
  talking: "On the call",
  transferring: "Transferring",
};

/** A live call's state and controls: hold, mute and record once talking; hang up at any time. */
function callPanel(task) {
  const call = task.call;
  const talking = call.state === "talking";
  const transfer = call.transfer;
  const flags = [
    transfer && `${transfer.mode.toLowerCase()}${transfer.outside ? " to an outside number" : ""}`,
    transfer && (transfer.joined ? "they are on the line" : "waiting for them to join"),
    call.on_hold && "caller on hold", call.muted && "you are muted", call.recording && "recording",
  ].filter(Boolean);
  const control = (action, label) =>
    el("button", { type: "button", class: "secondary", "data-action": action, onclick: () => controlCall(task.task_sid, action) }, label);
  const actions = transfer
    ? [
      transfer.joined ? el("button", { type: "button", "data-action": "complete-transfer", onclick: () => controlCall(task.task_sid, "complete-transfer") }, "Leave them with the caller") : null,
      !transfer.joined || transfer.outside ? control("cancel-transfer", "Cancel transfer") : null,
    ]
    : [
      talking ? (call.on_hold ? control("resume", "Resume") : control("hold", "Hold")) : null,
      talking ? (call.muted ? control("unmute", "Unmute") : control("mute", "Mute")) : null,
      talking ? (call.recording ? control("stop-recording", "Stop recording") : control("record", "Record")) : null,
      talking ? el("button", { type: "button", class: "secondary", "data-action": "transfer", onclick: () => openTransfer(task.task_sid) }, "Transfer…") : null,
      control("hangup", "Hang up"),
    ];
  return el(
    "section",
    { class: "call", "data-state": call.state },
    el("h3", {}, "Call"),
    el("p", { class: "call-state", "aria-live": "polite" }, [CALL_STATES[call.state] || call.state, ...flags].join(" · ")),
    el("div", { class: "actions" }, ...actions),
  );
}

/** The task whose call the transfer dialog is about. */
let transferring = null;

/** Opens the transfer dialog: every other agent (those who cannot take it now greyed, with
 * why), every task queue, and an outside number. */
async function openTransfer(task) {
  $("desk-error").textContent = "";
  $("transfer-agents").replaceChildren();
  $("transfer-queues").replaceChildren();
  let targets;
  try {
    targets = await api("GET", `/agent/api/tasks/${task}/transfer`);
  } catch (error) {
    $("desk-error").textContent = error.message;
    return;
  }
  transferring = task;
  // Each transfer starts afresh: cold, nobody chosen.
  $("transfer-form").reset();
  $("transfer-error").textContent = "";
  const choice = (value, label, enabled, note) =>
    el(
      "label",
      { class: "inline", "data-target": label },
      el("input", { type: "radio", name: "to", value, disabled: !enabled }),
      el("span", {}, label),
      note ? el("span", { class: "why-not" }, note) : null,
    );
  $("transfer-agents").replaceChildren(
    ...targets.workers.map((worker) =>
      choice(worker.sid, worker.friendly_name, worker.can_take, worker.can_take ? worker.activity_name : `cannot take it now: ${worker.why_not}`)),
  );
  $("transfer-queues").replaceChildren(...targets.queues.map((queue) => choice(queue.sid, queue.friendly_name, true, null)));
  $("transfer-dialog").showModal();
}

$("transfer-close").addEventListener("click", () => $("transfer-dialog").close());
$("transfer-number").addEventListener("focus", () => {
  document.querySelector('#transfer-form input[name="to"][value="outside"]').checked = true;
});
$("transfer-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = $("transfer-form");
  const picked = form.querySelector('input[name="to"]:checked');
  if (!picked) {
    $("transfer-error").textContent = "Choose an agent, a queue or an outside number.";
    return;
  }
  const to = picked.value === "outside" ? $("transfer-number").value.trim() : picked.value;
  const mode = form.querySelector('input[name="mode"]:checked').value;
  try {
    render(await api("POST", `/agent/api/tasks/${transferring}/transfer`, { To: to, Mode: mode }));
    $("transfer-dialog").close();
  } catch (error) {
    $("transfer-error").textContent = error.message;
  }
});

async function controlCall(task, action) {
  $("desk-error").textContent = "";
  try {
    render(await api("POST", `/agent/api/tasks/${task}/call`, { Action: action }));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

/** Players kept across renders, so that a push does not stop one that is playing. */
const players = new Map();

/** The task's call recordings (`conversations.media`), played through the server. */
function recordings(task) {
  const media = ((task.attributes && task.attributes.conversations && task.attributes.conversations.media) || [])
    .filter((item) => item && item.type === "VoiceRecording" && typeof item.sid === "string");
  if (!media.length) return null;
  return el("section", { class: "recordings" }, el("h3", {}, "Recordings"), ...media.map((item) => {
    const key = `${task.task_sid}/${item.sid}`;
    if (!players.has(key)) {
      const src = `/agent/api/tasks/${encodeURIComponent(task.task_sid)}/recordings/${encodeURIComponent(item.sid)}`;
      const label = `Recording ${item.sid}${item.duration ? `, ${item.duration} s` : ""}`;
      players.set(key, el("p", { class: "recording" }, el("audio", { controls: "", preload: "metadata", src, "data-recording": item.sid, "aria-label": label }), ` ${item.duration || "?"} s`));
    }
    return players.get(key);
  }));
}

/** The task channels of text conversations: SMS, WhatsApp, and `chat` (WhatsApp's before it had its own). */
const TEXT_CHANNELS = ["sms", "chat", "whatsapp"];

/** The conversation panel of a text task: kept across renders, read again when it changes. */
function conversation(task) {
  let panel = conversations.get(task);
  if (panel) return panel.element;
  const messages = el("div", { class: "messages", "aria-live": "polite" });
  const body = el("textarea", { rows: "2", name: "Body", placeholder: "Reply…", "aria-label": "Reply" });
  const picture = el("input", { type: "url", name: "MediaUrl", placeholder: "https://… (a picture to send, optional)", "aria-label": "Picture URL" });
  const error = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "reply" }, body, picture, el("button", { type: "submit" }, "Send"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const reply = { Body: body.value };
    if (picture.value.trim()) reply.MediaUrl = picture.value.trim();
    try {
      await api("POST", `/agent/api/conversations/${task}/messages`, reply);
      body.value = "";
      picture.value = "";
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  const element = el("section", { class: "conversation" }, el("h3", {}, "Conversation"), messages, form);
  panel = { element, messages, loading: false, again: false };
  conversations.set(task, panel);
  load(task, panel);
  return element;
}

/**
 * Reads the conversation and shows it whole: one read at a time, and one more if it changed
 * meanwhile, so that what is shown is never older than the last change.
 */
async function load(task, panel) {
  if (panel.loading) {
    panel.again = true;
    return;
  }
  panel.loading = true;
  try {
    do {
      panel.again = false;
      const view = await api("GET", `/agent/api/conversations/${task}`);
      const atBottom = panel.messages.scrollTop + panel.messages.clientHeight >= panel.messages.scrollHeight - 4;
      panel.messages.replaceChildren(...view.messages.map(message));
      if (atBottom) panel.messages.scrollTop = panel.messages.scrollHeight;
    } while (panel.again);
  } catch (_) {
    // The task ended or the session did; the next state says which.
  } finally {
    panel.loading = false;
  }
}

function message(item) {
  const delivery = item.delivery ? el("span", { class: "delivery" }, item.delivery.status) : null;
  // Media open in a new tab from the provider (the page's CSP shows no outside images inline).
  // The server keeps http(s) addresses only; a link is made of nothing else.
  const media = (item.media || []).filter((attached) => /^https?:\/\//.test(attached.url)).map((attached, n) =>
    el("a", { class: "media", href: attached.url, target: "_blank", rel: "noopener noreferrer" }, `📎 ${attached.content_type || "attachment"} ${n + 1}`),
  );
  return el("p", { class: `message ${item.author}` }, el("span", { class: "author" }, item.author), el("span", { class: "body" }, item.body), ...media, delivery);
}

/** A voicemail: a customer to call back by hand (a callback request is called by itself). */
function callsBack(offer) {
  const attributes = offer.attributes || {};
  return offer.channel === "voice" && Boolean(attributes.from) && Boolean(attributes.voicemail) && !attributes.callback;
}

async function acceptAndCallBack(offer) {
  $("desk-error").textContent = "";
  try {
    await api("POST", `/agent/api/reservations/${offer.reservation_sid}`, { ReservationStatus: "accepted" });
    render(await api("POST", `/agent/api/tasks/${offer.task_sid}/call-out`));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

async function callBack(task) {
  $("desk-error").textContent = "";
  try {
    render(await api("POST", `/agent/api/tasks/${task}/call-out`));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

$("dial-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("desk-error").textContent = "";
  try {
    render(await api("POST", "/agent/api/calls", { To: $("dial-number").value.trim() }));
    $("dial-number").value = "";
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
});

async function answer(reservation, status) {
  $("desk-error").textContent = "";
  try {
    render(await api("POST", `/agent/api/reservations/${reservation}`, { ReservationStatus: status }));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

async function finish(task, status, channel) {
  $("desk-error").textContent = "";
  try {
    const chosen = status === "completed" && picked.get(task) ? { Disposition: picked.get(task) } : {};
    if (TEXT_CHANNELS.includes(channel) && status === "completed") {
      // Closing a conversation completes its task and texts the customer the closing message.
      await api("POST", `/agent/api/conversations/${task}/close`, chosen);
      render(await api("GET", "/agent/api/state"));
      return;
    }
    render(await api("POST", `/agent/api/tasks/${task}`, { AssignmentStatus: status, ...chosen }));
  } catch (error) {
    $("desk-error").textContent = error.message;
  }
}

/** Updates every countdown (an expired offer says so until the server takes it away) and every
 * customer's wait. */
function tick() {
  const now = performance.now();
  for (const countdown of document.querySelectorAll(".countdown")) {
    const left = Math.max(0, Math.ceil((Number(countdown.dataset.expires) - now) / 1000));
    countdown.textContent = left > 0 ? `${left} s` : countdown.dataset.done || "expired";
  }
  for (const waited of document.querySelectorAll(".waited")) {
    const since = waitingSince.get(waited.dataset.task);
    if (since !== undefined) waited.textContent = duration((now - since) / 1000);
  }
}

// One audio context for the page, resumed by the agent's first click: browsers keep sound off
// until the page was used.
let audio = null;
document.addEventListener("click", () => {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch (_) {
    audio = null;
  }
});

/** A short tone, and a browser notification when the agent allowed them and looks elsewhere. */
function notify(count) {
  if (audio && audio.state === "running") {
    const tone = audio.createOscillator();
    const volume = audio.createGain();
    volume.gain.value = 0.1;
    tone.frequency.value = 880;
    tone.connect(volume).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
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
    signedOut();
  }
});

setInterval(tick, 250);
start();
