// The admin dashboard's charts of the last hours (tasks waiting and the longest wait per queue,
// the service level, abandoned tasks, agents by activity), drawn with uPlot (vendored in
// static/vendor/) from GET /admin/api/dashboard/history, which the server computes from the
// stored events; and the agents' board, each agent's activity and the time in it, from the
// dashboard's live pushes (admin.js hands them to renderAgentsBoard).
"use strict";

// In a scope of its own: the page's other scripts share the global one (admin.js has a draw()).
(() => {

/** Series colours, told apart by colour-blind people too (Okabe and Ito's palette). */
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
/** How often the charts are read again while the dashboard is shown. */
const CHARTS_EVERY_MS = 60_000;

const charts = new Map();
const titles = new Map();
let chartsTimer = null;
let boardTimer = null;
let board = { workers: [], at: Date.now() };

function chartHours() {
  return Number(document.getElementById("chart-hours").value) || 6;
}

async function loadCharts() {
  const answer = await fetch(`/admin/api/dashboard/history?hours=${chartHours()}`, { headers: { accept: "application/json" } });
  if (!answer.ok) return;
  drawCharts(await answer.json());
}

/** One chart per figure: a line per queue (or activity), time along the bottom. */
function drawCharts(history) {
  const times = history.times;
  const perQueue = (values) => history.queues.map((queue, index) => ({ label: queue.friendly_name, values: values(queue), colour: PALETTE[index % PALETTE.length] }));
  const step = Math.round(history.step / 60);
  draw("chart-waiting", "Tasks waiting", times, perQueue((queue) => queue.waiting), { y: "tasks" });
  draw("chart-longest", "Longest wait", times, perQueue((queue) => queue.longest_wait), { y: "seconds" });
  draw("chart-service-level", `Service level (accepted within the threshold, per ${step} min)`, times,
    perQueue((queue) => queue.service_level.map((share) => (share === null ? null : Math.round(share * 1000) / 10))), { y: "%", min: 0, max: 100 });
  draw("chart-abandoned", `Abandoned tasks (per ${step} min)`, times, perQueue((queue) => queue.abandoned), { y: "tasks" });
  draw("chart-activities", "Agents by activity", times,
    history.activities.map((activity, index) => ({ label: activity.friendly_name, values: activity.workers, colour: activity.available ? "#1b7f3b" : PALETTE[(index + 1) % PALETTE.length] })), { y: "agents" });
  document.getElementById("charts-updated").textContent = `Updated ${new Date().toLocaleTimeString()}; one point every ${step} min.`;
}

function draw(id, title, times, lines, axis) {
  const box = document.getElementById(id);
  box.setAttribute("aria-label", `${title}: ${lines.map((line) => `${line.label} now ${line.values[line.values.length - 1] ?? "none"}`).join(", ")}`);
  const width = Math.max(280, box.clientWidth || 600);
  const options = {
    title,
    width,
    height: 220,
    scales: { x: { time: true }, y: axis.max === undefined ? { range: (_, min, max) => [0, Math.max(1, max)] } : { range: [axis.min, axis.max] } },
    axes: [{}, { label: axis.y, size: 50 }],
    series: [{}, ...lines.map((line) => ({ label: line.label, stroke: line.colour, width: 2, spanGaps: false }))],
  };
  const data = [times, ...lines.map((line) => line.values)];
  const old = charts.get(id);
  // Redrawn whole when the title or the lines change (other hours, a queue added or renamed);
  // otherwise only the data.
  const same = old && titles.get(id) === title && old.series.length === options.series.length
    && old.series.every((series, index) => index === 0 || series.label === options.series[index].label);
  if (same) {
    old.setData(data);
    old.setSize({ width, height: 220 });
    return;
  }
  if (old) old.destroy();
  box.replaceChildren();
  titles.set(id, title);
  charts.set(id, new uPlot(options, data, box));
}

/** The agents' board: called by admin.js with each dashboard push. */
window.renderAgentsBoard = function renderAgentsBoard(workers) {
  board = { workers, at: Date.now() };
  tickBoard();
};

function tickBoard() {
  const rows = document.getElementById("agents-board");
  if (!rows) return;
  const since = (Date.now() - board.at) / 1000;
  rows.replaceChildren(...board.workers.map((worker) => {
    return el("tr", { "data-worker": worker.friendly_name },
      el("td", {}, worker.friendly_name),
      el("td", {}, activityBadge(worker.activity_name, worker.available)),
      el("td", { class: "activity-time" }, duration((worker.activity_seconds || 0) + since)));
  }));
}

/** Charts are read while the dashboard tab is shown, and not otherwise. */
function followDashboard() {
  const shown = !document.getElementById("dashboard").hidden;
  if (shown && !chartsTimer) {
    loadCharts().catch(() => {});
    chartsTimer = setInterval(() => loadCharts().catch(() => {}), CHARTS_EVERY_MS);
    boardTimer = setInterval(tickBoard, 1000);
  } else if (!shown && chartsTimer) {
    clearInterval(chartsTimer);
    clearInterval(boardTimer);
    chartsTimer = boardTimer = null;
  }
}

document.getElementById("chart-hours").addEventListener("change", () => loadCharts().catch(() => {}));
new MutationObserver(followDashboard).observe(document.getElementById("dashboard"), { attributes: true, attributeFilter: ["hidden"] });
window.addEventListener("resize", () => {
  for (const [id, chart] of charts) chart.setSize({ width: Math.max(280, document.getElementById(id).clientWidth || 600), height: 220 });
});
followDashboard();
})();
