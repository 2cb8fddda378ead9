// chatd's live admin page: server admins only (the server refuses the rest).
//
// Over /ws like the client: /adminfeed on brings every audit entry and every
// user coming online or going offline as it happens, /stats the key figures
// (read every few seconds), and the actions are the line protocol's own
// commands (/kick, /ban, /mute, /broadcast), so the server's rules apply.

import {Connection, applyTheme, clockTime, el} from "./connection.js";

const conn = new Connection("chatd.admin");
const STATS_EVERY_MS = 2000;
const FEED_KEPT = 500;
// A word /ban and /mute take for a duration (10m, 1h30m), as the server reads it.
const DURATION = /^(?:[0-9]{1,10}[smhdw])+$/;
// How long the page waits before asking for the feed again after a timeout.
const FOLLOW_RETRY_MS = 2000;
const $ = (id) => document.getElementById(id);
const online = new Set();
let statsTimer = null;

const FIGURES = [
  ["connections", "connections", (v) => v],
  ["users_online", "users online", (v) => v],
  ["messages_per_second", "messages per second", (v) => v.toFixed(1)],
  ["messages", "messages since start", (v) => v],
  ["storage_pending", "messages not yet written", (v) => v],
  ["storage_flush_seconds", "last write (ms)", (v) => (v * 1000).toFixed(1)],
  ["loop_lag", "event-loop lag (ms)", (v) => (v * 1000).toFixed(1)],
  ["rooms", "rooms", (v) => v],
  ["users", "accounts", (v) => v],
  ["uptime", "up for", duration],
];

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

function showFigures(stats) {
  $("figures").replaceChildren(...FIGURES.map(([key, words, shown]) =>
    el("div", {"data-figure": key}, el("dt", {text: words}),
       el("dd", {text: stats[key] === undefined ? "–" : String(shown(stats[key]))}))));
  online.clear();
  for (const entry of stats.online || []) online.add(entry.user);
  showOnline();
}

function showOnline() {
  const names = Array.from(online).sort((a, b) => a.localeCompare(b));
  $("online-count").textContent = String(names.length);
  $("online-list").replaceChildren(...names.map((name) => el("li", {text: name})));
}

async function readStats() {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(readStats, STATS_EVERY_MS);
  const stats = await conn.command("/stats");
  if (stats.type === "ok") showFigures(stats);
}

function feedRow(entry) {
  const feed = $("feed");
  const cells = [clockTime(entry.ts), entry.actor || "the server", entry.action,
                 entry.target || "", entry.room ? `#${entry.room}` : "", entry.reason || ""];
  const row = el("tr", {class: `audit-${entry.action}`},
                 ...cells.map((text) => el("td", {text: String(text)})));
  feed.prepend(row);
  while (feed.children.length > FEED_KEPT) feed.lastChild.remove();
}

// Live rows that came while the past entries were being read, or null once
// the feed shows them as they come.
let heldBack = null;

// A live entry leaves its empty fields out; a stored one has them null or "".
function entryKey(entry) {
  return JSON.stringify([entry.ts, entry.action, ...["actor", "target", "room", "reason"]
    .map((field) => entry[field] || null)]);
}

function liveRow(entry) {
  if (heldBack) heldBack.push(entry);
  else feedRow(entry);
}

function onRecord(record) {
  if (record.type !== "notice") return;
  if (record.audit) {
    liveRow(record.audit);
  } else if (record.presence) {
    const {user, online: isOnline} = record.presence;
    if (isOnline) online.add(user);
    else online.delete(user);
    showOnline();
    liveRow({ts: Date.now() / 1000, actor: user, action: isOnline ? "online" : "offline"});
  }
}

// Following starts before the past is read, so no entry falls between the two;
// one made meanwhile comes both ways and is shown once.
async function follow() {
  heldBack = [];
  delete $("feed").dataset.live;
  const on = await conn.command("/adminfeed on");
  if (on.type !== "ok") {
    heldBack = null;
    // A dropped connection is not a refusal: the reconnection follows again. A
    // slow answer on a live connection is tried again here.
    if (on.code === "timeout") setTimeout(follow, FOLLOW_RETRY_MS);
    else if (on.code !== "not-connected") await stop(on.message);
    return;
  }
  const past = await conn.command("/audit 50");
  const shown = new Set();
  $("feed").replaceChildren();
  if (past.type === "ok") {
    for (const entry of past.entries) {
      shown.add(entryKey(entry));
      feedRow(entry);
    }
  }
  for (const entry of heldBack) if (!shown.has(entryKey(entry))) feedRow(entry);
  heldBack = null;
  $("feed").dataset.live = "true";
  await readStats();
}

async function start(reply) {
  if (!reply.admin) {
    await stop("Only server admins may use this page.");
    return;
  }
  if (reply.settings) applyTheme(reply.settings.theme);
  $("me").textContent = `Logged in as ${reply.user}`;
  $("login").hidden = true;
  $("admin").hidden = false;
  await follow();
}

async function stop(message) {
  clearTimeout(statsTimer);
  await conn.logout();
  $("admin").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function act(line) {
  const reply = await conn.command(line);
  $("action-result").textContent = reply.type === "ok"
    ? reply.message || `${reply.command}: done.` : `${reply.code}: ${reply.message}`;
  $("action-result").className = reply.type === "ok" ? "" : "error";
}

function room(id) {
  return `#${$(id).value.trim().replace(/^#/, "")}`;
}

function words(...parts) {
  return parts.map((p) => p.trim()).filter(Boolean).join(" ");
}

function wire() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    let reply;
    try {
      reply = await conn.login($("login-name").value.trim(), $("login-password").value, false);
    } catch (err) {
      $("login-error").textContent = err.message;
      return;
    }
    $("login-password").value = "";
    if (reply.type !== "ok") $("login-error").textContent = reply.message;
    else await start(reply);
  });
  $("logout-button").addEventListener("click", () => stop(""));
  $("kick-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(words("/kick", $("kick-user").value, room("kick-room"), $("kick-reason").value));
  });
  $("ban-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const duration = $("ban-duration").value.trim();
    const reason = $("ban-reason").value.trim();
    if (!duration && DURATION.test(reason.split(/\s/, 1)[0])) {
      // /ban would read that word as the ban's duration.
      $("action-result").textContent = "The reason starts with a duration: give a duration, "
        + "or begin the reason with another word.";
      $("action-result").className = "error";
      return;
    }
    act(words("/ban", $("ban-user").value, room("ban-room"), duration, reason));
  });
  $("mute-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(words("/mute", $("mute-user").value, room("mute-room"), $("mute-duration").value));
  });
  $("broadcast-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act(words("/broadcast", $("broadcast-text").value));
    $("broadcast-text").value = "";
  });
  conn.onRecord(onRecord);
  conn.onStatus(async (status, detail) => {
    if (status === "reconnecting") $("connection").textContent = "Connection lost; reconnecting…";
    if (status === "reconnected") {
      $("connection").textContent = "";
      if ($("admin").hidden) await start(detail);
      else await follow();
    }
    if (status === "logged-out") await stop(detail);
  });
}

async function resumeTab() {
  if (!conn.saved) {
    $("login-name").focus();
    return;
  }
  try {
    const reply = await conn.relogin();
    if (reply.type === "ok") await start(reply);
  } catch (err) {
    conn.lost();
  }
}

wire();
resumeTab();
