// The farm dashboard: polls /api/farm every 2 s and redraws. Every value from the server is
// put in the page with textContent (never innerHTML): prompts and names come from Slack users.
"use strict";

const POLL_MS = 2000;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 60) return Math.round(seconds) + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  return Math.round(seconds / 3600) + " h ago";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
}

function badge(kind, value) {
  return el("span", kind + " " + kind + "-" + String(value).replace(/[^a-z]/g, ""), value);
}

function drawNodes(nodes) {
  const body = document.querySelector("#nodes tbody");
  const rows = nodes.map((n) => {
    const tr = el("tr");
    tr.dataset.node = n.id;
    const stateCell = el("td");
    stateCell.appendChild(badge("state", n.shown_state));
    const cells = [el("td", "", n.id), stateCell, el("td", "", n.role),
      el("td", "", n.current_job || "–"), el("td", "", ago(n.heartbeat_age_s)),
      el("td", "", n.engines || "–"), el("td", "", n.gpu || "no"), el("td", "", n.blender_version || "–"),
      el("td", "", n.jobs_done + " / " + n.jobs_failed)];
    cells.forEach((c) => tr.appendChild(c));
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "muted", "no node has registered yet");
    td.colSpan = 9;
    tr.appendChild(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

// Thumbnails keep their <img> across redraws, so a poll does not reload every image.
const thumbs = new Map();

function thumbFor(job) {
  if (!job.thumbnail) return el("div", "nothumb", job.kind === "render" ? job.status : job.kind);
  let img = thumbs.get(job.id);
  if (!img) {
    img = el("img", "thumb");
    img.alt = "render of job " + job.id;
    img.loading = "lazy";
    img.src = job.thumbnail;  // a same-origin path the server built from the job id
    thumbs.set(job.id, img);
  }
  return img;
}

function drawJobs(jobs) {
  const cards = jobs.map((j) => {
    const card = el("article", "job");
    card.dataset.job = j.id;
    card.dataset.status = j.status;
    card.appendChild(thumbFor(j));
    const body = el("div", "body");
    const top = el("div", "meta");
    top.appendChild(badge("status", j.status));
    top.appendChild(el("span", "", duration(j.duration_s)));
    body.appendChild(top);
    body.appendChild(el("div", "prompt", j.prompt));
    const meta = el("div", "meta");
    meta.appendChild(el("span", "requester", j.requester));
    meta.appendChild(el("span", "", j.node ? "on " + j.node : j.kind));
    body.appendChild(meta);
    if (j.error) body.appendChild(el("div", "error", j.error));
    card.appendChild(body);
    return card;
  });
  const live = new Set(jobs.map((j) => j.id));
  for (const id of thumbs.keys()) if (!live.has(id)) thumbs.delete(id);
  document.getElementById("jobs").replaceChildren(...cards);
}

async function poll() {
  const updated = document.getElementById("updated");
  try {
    const resp = await fetch("/api/farm", { cache: "no-store" });
    const data = await resp.json();
    if (!resp.ok) throw new Error(data.error || resp.status);
    document.getElementById("queue-depth").textContent = data.queue_depth;
    document.getElementById("running").textContent = data.running;
    document.getElementById("node-count").textContent = data.nodes.length;
    drawNodes(data.nodes);
    drawJobs(data.jobs);
    updated.textContent = "updated " + new Date(data.now * 1000).toLocaleTimeString();
    updated.classList.remove("stale");
  } catch (err) {
    updated.textContent = "cannot reach the farm (" + err.message + "); retrying";
    updated.classList.add("stale");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
