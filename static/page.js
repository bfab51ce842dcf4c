// What the agent, supervisor and admin pages share: element lookup and building (caller-supplied
// text only ever goes in as text), calls to the server with the session's CSRF token, and the
// colour of an activity, and how long a wait or a stay is, as the pages write it.
"use strict";

const $ = (id) => document.getElementById(id);

/**
 * An element with attributes (`class`, `on…` handlers, `value` and the boolean properties,
 * others as attributes) and children (strings become text, never HTML).
 */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected") node[key] = Boolean(value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/**
 * A function that calls the server: `form` form-encoded when given, the CSRF token that
 * `csrf()` returns on every write. It answers the JSON body, or throws an Error with the
 * server's message and `status`. A 401 means the session ended: `signedOut` runs, except for
 * the page's own session path (`sessionPath`), whose 401 only says "not signed in".
 */
function serverCalls(csrf, sessionPath, signedOut) {
  return async (method, path, form) => {
    const options = { method, headers: {}, credentials: "same-origin" };
    if (form) {
      options.body = new URLSearchParams(form);
      options.headers["Content-Type"] = "application/x-www-form-urlencoded";
    }
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf();
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
      if (response.status === 401 && path !== sessionPath) signedOut();
      throw error;
    }
    return body;
  };
}

/**
 * The colour an activity is shown with (`data-tone` on a `.tone`, beside its name): "available"
 * (green) when it takes tasks, "offline" (grey) for an unavailable activity named Offline, else
 * "away" (amber).
 */
function activityTone(name, available) {
  if (available) return "available";
  return /^offline$/i.test(String(name || "").trim()) ? "offline" : "away";
}

/** An activity's name with its colour beside it. */
function activityBadge(name, available) {
  return el("span", { class: "tone activity-name", "data-tone": activityTone(name, available) }, name);
}

/** "42 s", "3 min 05 s", "1 h 02 min": how long `seconds` is. */
function duration(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor(whole / 60) % 60).padStart(2, "0")} min`;
}
