// The status page: refreshes /api/status every few seconds without reloading, announces
// changes to screen readers, and opens a database's diagnostic log and Restart button.
"use strict";

const REFRESH_MS = 3000;
const list = document.getElementById("databases");
const announcer = document.getElementById("announcer");
const dialog = document.getElementById("details");
let shown = new Map(); // name -> status word last shown
let openName = null;
const lastCheckin = new Map(); // name -> last_checkin_at (UTC ISO 8601) last shown

// Times for people are shown in this browser's time zone, to the second, with the zone
// named ("2026-12-02 09:14:03 GMT+1"); the API's JSON keeps UTC ISO 8601. The Python side
// does the same for the command line (supervisor/human_time.py).
const STAMP = "(\\d{4}-\\d{2}-\\d{2}[ T]\\d{2}:\\d{2}:\\d{2})(?:\\.\\d+)?";
const UTC_TIMES = new RegExp(STAMP + "(?: to " + STAMP + ")? UTC\\b", "g");

function localTime(utcText) {
  // "2026-12-02T08:14:03.5Z", "2026-12-02 08:14:03" (UTC) -> local, or "" for none.
  if (!utcText) return "";
  const iso = utcText.replace(" ", "T").replace(/\.\d+/, "").replace(/Z$/, "") + "Z";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return utcText;
  const parts = {};
  const format = new Intl.DateTimeFormat("en-GB", {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23", timeZoneName: "short",
  });
  for (const part of format.formatToParts(moment)) parts[part.type] = part.value;
  return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" +
    parts.minute + ":" + parts.second + " " + parts.timeZoneName;
}

function localSentence(text) {
  // Times the service wrote into a sentence as "... 2026-12-02 08:14:03 UTC", shown local.
  return text.replace(UTC_TIMES, (_match, first, second) =>
    second ? localTime(first) + " to " + localTime(second) : localTime(first));
}

function label(status) {
  return status === "running" ? "Running" : "Not available";
}

function idFor(name) {
  return "db-" + Array.from(new TextEncoder().encode(name), (b) => b.toString(16)).join("");
}

function render(rows) {
  document.getElementById("empty").hidden = rows.length > 0;
  const changes = [];
  const seen = new Set();
  for (const row of rows) {
    seen.add(row.name);
    const id = idFor(row.name);
    let item = document.getElementById(id);
    if (!item) {
      item = document.createElement("li");
      item.id = id;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "indicator";
      button.setAttribute("aria-describedby", id + "-tip");
      button.innerHTML =
        '<span class="light" aria-hidden="true"></span>' +
        '<span class="alert-icon" aria-hidden="true">&#9888;</span>' +
        '<span><span class="name"></span><span class="state"></span></span>';
      button.querySelector(".name").textContent = row.name;
      button.addEventListener("click", () => openDetails(row.name));
      const tip = document.createElement("span");
      tip.id = id + "-tip";
      tip.className = "tooltip";
      tip.setAttribute("role", "tooltip");
      item.append(button, tip);
      list.append(item);
    }
    const button = item.querySelector(".indicator");
    button.classList.toggle("running", row.status === "running");
    button.classList.toggle("not_available", row.status !== "running");
    button.dataset.status = row.status;
    item.querySelector(".state").textContent = label(row.status);
    item.querySelector(".tooltip").textContent = localSentence(row.tooltip);
    const before = shown.get(row.name);
    if (before !== undefined && before !== row.status) {
      changes.push(row.name + ": " + label(row.status) + ". " + localSentence(row.tooltip));
    }
    shown.set(row.name, row.status);
    lastCheckin.set(row.name, row.last_checkin_at);
    if (openName === row.name) {
      showDetailsStatus(row.name);
    }
  }
  for (const item of Array.from(list.children)) {
    const name = item.querySelector(".name").textContent;
    if (!seen.has(name)) {
      item.remove();
      shown.delete(name);
    }
  }
  if (changes.length) {
    announcer.textContent = changes.join(" ");
  }
}

async function refresh() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(response.status);
    render(await response.json());
    document.getElementById("offline").hidden = true;
  } catch (error) {
    document.getElementById("offline").hidden = false;
  }
}

async function openDetails(name) {
  openName = name;
  document.getElementById("details-title").textContent = name;
  document.getElementById("restart-result").textContent = "";
  showDetailsStatus(name);
  await loadDiagnostics(name);
  if (!dialog.open) dialog.showModal();
}

function showDetailsStatus(name) {
  const tip = document.getElementById(idFor(name) + "-tip").textContent;
  document.getElementById("details-status").textContent = label(shown.get(name)) + ": " + tip;
  const last = lastCheckin.get(name);
  document.getElementById("details-checkin").textContent = last
    ? "Last check-in: " + localTime(last)
    : "No check-in yet.";
}

async function loadDiagnostics(name) {
  const body = document.querySelector("#diagnostics tbody");
  body.replaceChildren();
  const response = await fetch("/api/databases/" + encodeURIComponent(name) + "/diagnostics",
    { cache: "no-store" });
  const rows = response.ok ? await response.json() : [];
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const value of [localTime(row.logged_at), row.component, row.level,
      localSentence(row.message)]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    body.append(tr);
  }
  document.getElementById("no-diagnostics").hidden = rows.length > 0;
  document.getElementById("diagnostics").hidden = rows.length === 0;
}

document.getElementById("restart").addEventListener("click", async () => {
  const result = document.getElementById("restart-result");
  result.textContent = "Asking the email service to restart…";
  try {
    const response = await fetch(
      "/api/databases/" + encodeURIComponent(openName) + "/restart", { method: "POST" });
    if (response.status !== 202) throw new Error(response.status);
    const body = await response.json();
    result.textContent = body.coalesced
      ? "A restart was already requested; the email service will restart shortly."
      : "Restart requested; the email service will restart shortly.";
  } catch (error) {
    result.textContent = "The restart could not be requested (" + error.message + ").";
  }
});

document.getElementById("close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => { openName = null; });

refresh();
setInterval(refresh, REFRESH_MS);
