// chatd's browser client: rooms, direct messages, history, files, stickers,
// notifications, typing and presence over one /ws connection, and the HTTP API
// (with the tab's token) for history pages and uploads.
//
// Everything the server sends is shown with textContent: never parsed as HTML.
// A line typed in the composer is sent as typed, so every command of the line
// protocol works here; plain lines go to the room on screen, which the client
// keeps as the connection's current room (/switch).

import {Api, Connection, applyTheme, clockTime, currentTheme, el, spacedName, utf8Bytes}
  from "./connection.js";

const conn = new Connection("chatd.session");
const api = new Api(conn);

const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 6000;
const MEMBER_REFRESH_MS = 30000;
const RECOVER_PAGES = 10;
// The composer shows a line's size once it passes this share of the limit.
const LIMIT_SHOWN_FROM = 0.8;
const MEMBER_EVENTS = new Set(["join", "leave", "kick", "ban", "unban", "promote", "demote",
                               "owner", "voice", "devoice", "rename", "terminated"]);
// Events that take a user out of a room.
const REMOVALS = new Set(["kick", "ban", "terminated", "leave"]);
// The notifications that tell one while the connection was away, and their events.
const REMOVAL_NOTIFICATIONS = new Map([["kicked", "kick"], ["banned", "ban"],
                                       ["terminated", "terminated"]]);
const LIST_FIELDS = ["rooms", "members", "entries", "files", "tokens", "blocks", "requests",
                     "webhooks", "keys", "missing", "past", "notifications", "messages",
                     "stickers", "bots", "online", "conversations"];

const state = {
  me: null,
  convs: new Map(),
  active: null,
  typing: new Map(),
  lastTyping: 0,
  notifications: [],
  // How many older notifications the server dropped past its bound, as the listings
  // of the newest page told (once each): shown in the panel until the next clear.
  notificationsDropped: 0,
  // How many clears the server has answered: a walk of /notifications that saw one
  // answered while it walked holds pages read before the clear, so it is walked again.
  notificationClears: 0,
  stickers: null,  // every sticker, once a walk of /stickers succeeded
  myRooms: null,  // the last walk of /myrooms' pages
  resumeFrom: null,
  // The ids of the notifications the page had when its connection went away.
  notificationsBefore: null,
  olderLoading: false,
  loggingIn: false,
};

const $ = (id) => document.getElementById(id);

// -- conversations -----------------------------------------------------------------

// A conversation the page did not list yet is a room the account is in (a join, a
// message), unless the caller knows otherwise (member: false).
function conversation(kind, name, {member = true} = {}) {
  const key = (kind === "room" ? "#" : "@") + name.toLowerCase();
  let conv = state.convs.get(key);
  if (!conv) {
    conv = {key, kind, name, items: [], ids: new Set(), maxOrder: 0, events: 0, unread: 0,
            mentions: 0, historyAnnounced: false,
            before: undefined, loaded: false, topic: "", member};
    state.convs.set(key, conv);
    renderNav();
  }
  return conv;
}

function conversationOf(record) {
  if (record.room) return conversation("room", record.room);
  const other = record.from === state.me ? record.to : record.from;
  return conversation("direct", other || record.from);
}

// Add a message (once: ids are unique); returns whether it was new.
function addMessage(conv, record, {history = false} = {}) {
  if (typeof record.id === "number") {
    if (conv.ids.has(record.id)) return false;
    conv.ids.add(record.id);
    conn.noteId(record.id);
  }
  const order = typeof record.id === "number" ? record.id : conv.maxOrder + 0.5;
  insertItem(conv, {order, record, kind: "message"}, {live: !history});
  if (!history && conv.key !== state.active && record.from !== state.me) {
    conv.unread += 1;
    // Counted as the terminal client counts them: a direct message is to you as well.
    if (conv.kind === "direct" || mentionsMe(record)) conv.mentions += 1;
    renderNav();
    // A sighted person sees the conversation appear, or its count grow, in the list; a
    // screen reader is told too, for a person writing to them alone (a room's lines
    // are counted in silence, as they are many).
    if (conv.kind === "direct") announceText(`New direct message from ${record.from}.`);
  }
  return true;
}

// Whether another person's message names the one logged in as a word ("ann", "@ann:"),
// in any case: the terminal client's rule, so both count the same lines. A letter,
// digit, "_" or "-" next to the name makes it part of another word ("joanne", "ann-marie").
function mentionsMe(record) {
  if (!state.me || typeof record.text !== "string") return false;
  if ((record.from || "").toLowerCase() === state.me.toLowerCase()) return false;
  const name = state.me.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}_-])@?${name}(?![\\p{L}\\p{N}_-])`, "iu").test(record.text);
}

// An event or a note, shown after the newest message the conversation has.
function addNote(conv, text, kind = "note") {
  conv.events += 1;
  const item = {order: conv.maxOrder + conv.events / 1e6, text, kind};
  insertItem(conv, item, {live: true});
  return item;
}

// An item said now (not read from history) is announced, once on screen.
function insertItem(conv, item, {live}) {
  let index = conv.items.length;
  while (index > 0 && conv.items[index - 1].order > item.order) index -= 1;
  conv.items.splice(index, 0, item);
  if (item.kind === "message") conv.maxOrder = Math.max(conv.maxOrder, item.order);
  if (conv.key !== state.active) return;
  const node = placeInLog(item, index === conv.items.length - 1);
  if (live) announce(node);
}

function noteHere(text, kind = "note") {
  const conv = state.convs.get(state.active);
  if (conv) {
    addNote(conv, text, kind);
    return;
  }
  const log = $("log");
  const node = noteLine(kind, text);
  log.append(node);
  log.scrollTop = log.scrollHeight;
  announce(node);
}

// The log is no live region of its own (aria-live="off"): drawn again for each room
// opened, and filled with pages of history, it would have a screen reader read out
// whole conversations. What is said while one is there is announced instead, one
// line each, in a live region of its own, without its time or controls; it keeps
// the last few lines only, as the log on screen is the one to read back.
const ANNOUNCED_KEPT = 5;

function announce(node) {
  const copy = node.cloneNode(true);
  for (const part of copy.querySelectorAll(".time, button, pre, img")) part.remove();
  announceText(copy.textContent.replace(/\s+/g, " ").trim());
}

function announceText(text) {
  if (!text) return;
  const announcer = $("announcer");
  announcer.append(el("p", {text}));
  while (announcer.children.length > ANNOUNCED_KEPT) announcer.firstElementChild.remove();
}

// -- the log ---------------------------------------------------------------------------

function placeInLog(item, last) {
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const node = renderItem(item);
  if (last) {
    log.append(node);
  } else {
    const after = Array.from(log.children).find((child) => Number(child.dataset.order) > item.order);
    log.insertBefore(node, after || null);
  }
  if (last && atBottom) log.scrollTop = log.scrollHeight;
  return node;
}

function renderItem(item) {
  if (item.kind !== "message") {
    const node = noteLine(item.kind, item.text);
    node.dataset.order = item.order;
    return node;
  }
  const record = item.record;
  const node = el("li", {class: "message", "data-order": item.order, "data-id": record.id});
  node.append(el("time", {class: "time", datetime: record.ts, text: clockTime(record.ts)}), " ");
  const nick = el("span", {class: `from ${nickColour(record.from)}`, text: record.from});
  // The name, then the bot mark beside it (not inside: the name stays the name alone).
  const sender = record.bot ? [nick, " ", botMark()] : [nick];
  if (record.action) {
    node.classList.add("action");
    node.append("* ", ...sender, " ", said(record.text));
  } else if (record.notice) {
    node.append("-", ...sender, "- ", said(record.text));
  } else {
    node.append(...sender, el("span", {class: "said", text: ": "}));
    node.append(messageBody(record));
  }
  if (mentionsMe(record)) markMention(node);
  return node;
}

// A note, an event or an error. An error says it is one in words, first, not by its
// colour alone (seen, and read out and announced with it); its code and text follow as
// they came.
function noteLine(kind, text) {
  if (kind !== "error") return el("li", {class: kind, text});
  return el("li", {class: kind}, el("strong", {class: "error-mark", text: "Error:"}), " ", text);
}

// A line that names you: a bar at its side and its sender in heavier type (not by colour
// alone), and words a screen reader says after it, as it reads the line or announces it.
function markMention(node) {
  node.classList.add("mention");
  node.append(el("span", {class: "visually-hidden", text: " (mentions you)"}));
}

// The mark of a message a bot sent (a bot account's or a webhook's: "bot": true):
// visible text, so a screen reader says "bot" after the name too, and a title
// that says what it means to a pointer.
function botMark() {
  return el("span", {class: "bot-mark", title: "sent by a bot (a bot account or a webhook)",
                     text: "bot"});
}

function messageBody(record) {
  if (record.file) return fileBody(record.file);
  if (record.sticker_art) {
    return el("figure", {class: "sticker"},
              el("pre", {"aria-label": `sticker ${record.sticker || ""}`, text: record.sticker_art}),
              el("figcaption", {dir: "auto", text: record.text || ""}));
  }
  if (record.e2e) return el("span", {class: "text muted", text: "[an end-to-end encrypted message]"});
  return said(record.text);
}

// What a user wrote, isolated in its own direction (dir="auto"): a Hebrew or Arabic
// line keeps its punctuation where its reader expects it, and a bidirectional override
// or embedding inside it (U+202E...) reorders nothing outside, not the name before it
// nor what the page shows after it.
function said(text, className = "text") {
  return el("span", {class: className, dir: "auto", text: text || ""});
}

// A file's size as the server's text says it: 512 bytes, 1.5 KiB, 10.0 MiB, 2.0 GiB
// (rounded as shown: never "1024.0 KiB").
function humanSize(size) {
  if (size < 1024) return `${size} byte${size === 1 ? "" : "s"}`;
  let value = size;
  for (const unit of ["KiB", "MiB"]) {
    value /= 1024;
    if (Math.round(value * 10) / 10 < 1024) return `${value.toFixed(1)} ${unit}`;
  }
  return `${(value / 1024).toFixed(1)} GiB`;
}

function fileBody(file) {
  const box = el("div", {class: "file"});
  const size = humanSize(file.size);
  box.append(el("span", {class: "file-name"}, said(file.name, "name"), ` (${size}, ${file.mime})`));
  // Named by its file too: a screen reader's list of the page's buttons would have a
  // "Download" for each file shared, with nothing to tell them apart.
  const download = el("button", {type: "button", class: "link", text: "Download",
                                 "aria-label": `Download ${file.name}`});
  download.addEventListener("click", () => downloadFile(file));
  box.append(" ", download);
  if (file.mime && file.mime.startsWith("image/") && !file.mime.includes("svg")) {
    const image = el("img", {class: "preview-image", alt: `${file.name}, shared by ${file.uploader}`});
    // A file the browser cannot decode (cut short, or not the image its type says)
    // shows the server's text preview, which says why, not a broken-image icon.
    image.addEventListener("error", () => image.replaceWith(previewText(file)), {once: true});
    box.append(image);
    api.file(file.id).then((info) => { image.src = info.download; })
      .catch(() => image.replaceWith(previewText(file)));
  } else if (file.preview) {
    box.append(previewText(file));
  }
  return box;
}

function previewText(file) {
  return el("pre", {class: "preview", "aria-label": `preview of ${file.name}`, text: file.preview || ""});
}

async function downloadFile(file) {
  try {
    const info = await api.file(file.id);
    const link = el("a", {href: info.download, download: file.name});
    document.body.append(link);
    link.click();
    link.remove();
  } catch (err) {
    noteHere(`download failed: ${err.message}`, "error");
  }
}

function nickColour(name) {
  let hash = 0;
  for (const ch of name || "") hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `nick-c${hash % 8}`;
}

function renderLog() {
  const log = $("log");
  log.replaceChildren();
  $("announcer").replaceChildren();  // another conversation's lines, or another account's
  $("history-said").replaceChildren();
  const conv = state.convs.get(state.active);
  if (!conv) return;
  for (const item of conv.items) log.append(renderItem(item));
  log.scrollTop = log.scrollHeight;
}

// -- the navigation ------------------------------------------------------------------

// A list redrawn while one of its buttons has the focus: the focus goes to the button
// drawn for the same thing (found by its data attribute), or, that one gone, to the
// one drawn in its place, or to the composer; never to the page itself, where a
// keyboard or screen reader user would have to find their way back from the top.
function keepingFocus(container, selector, attribute, redraw) {
  const focused = document.activeElement;
  const had = focused && container.contains(focused) && focused.matches(selector);
  const value = had ? focused.dataset[attribute] : null;
  const index = had ? Array.from(container.querySelectorAll(selector)).indexOf(focused) : -1;
  redraw();
  if (!had) return;
  const drawn = Array.from(container.querySelectorAll(selector));
  const same = drawn.find((button) => button.dataset[attribute] === value);
  (same || drawn[Math.min(index, drawn.length - 1)] || $("composer-input")).focus();
}

// The conversations' lists; a message in another room redraws them (its count).
function renderNav() {
  keepingFocus(document.querySelector("nav.rooms"), "button.conv", "key", drawNav);
}

function drawNav() {
  const rooms = $("room-list");
  const direct = $("direct-list");
  rooms.replaceChildren();
  direct.replaceChildren();
  const sorted = Array.from(state.convs.values()).sort((a, b) => a.name.localeCompare(b.name));
  for (const conv of sorted) {
    const label = (conv.kind === "room" ? "#" : "") + conv.name;
    const unread = conv.unread ? `, ${conv.unread} unread` : "";
    const mentions = conv.mentions ? `, ${conv.mentions} mentioning you` : "";
    const gone = conv.member ? "" : ", not a member";
    const button = el("button", {type: "button", class: "conv", "data-key": conv.key,
                                 "aria-current": conv.key === state.active ? "page" : null,
                                 "aria-label": `${label}${unread}${mentions}${gone}`},
                      el("span", {class: "conv-name", text: label}));
    if (conv.unread) button.append(el("span", {class: "badge", "aria-hidden": "true", text: String(conv.unread)}));
    if (conv.mentions) {
      button.append(el("span", {class: "badge mention-badge", "aria-hidden": "true",
                                text: `@${conv.mentions}`}));
    }
    if (!conv.member) button.classList.add("gone");
    button.addEventListener("click", () => activate(conv.key));
    (conv.kind === "room" ? rooms : direct).append(el("li", {}, button));
  }
}

// What the screen says it shows (a screen reader hears these): the conversation in
// view, or none once it was left.
function renderHeader(conv) {
  const label = !conv ? "" : conv.kind === "room" ? `#${conv.name}` : conv.name;
  $("view-title").textContent = label || "No room yet";
  $("view-topic").textContent = conv ? conv.topic || "" : "";
  $("composer-label").textContent = !label ? "Message"
    : conv.kind === "room" && !conv.member ? `Not in ${label}: /join ${conv.name} to go back`
      : `Message ${label}`;
  $("log").setAttribute("aria-label", label ? `Messages in ${label}` : "Messages");
  if (!conv) {
    $("older-button").hidden = true;
    $("history-status").textContent = "";
    renderMembers([]);
  }
}

async function activate(key, {focus = true} = {}) {
  const conv = state.convs.get(key);
  if (!conv) return;
  state.active = key;
  conv.unread = 0;
  conv.mentions = 0;
  state.typing.clear();
  renderTyping();
  const saved = conn.saved;
  if (saved) {
    saved.active = key;
    conn.save(saved);
  }
  renderHeader(conv);
  renderNav();
  renderLog();
  historyStatus(conv);  // this conversation's, not the one shown before it
  limitHint();
  if (focus) $("composer-input").focus();
  if (conv.kind === "room" && conv.member) {
    conn.command(`/switch ${conv.name}`);
    if (!conv.loaded) await loadHistory(conv);
  }
  refreshMembers();
}

// -- history ----------------------------------------------------------------------------

async function loadHistory(conv) {
  try {
    const page = await api.history(conv.name, null);
    for (const record of page.messages) addMessage(conv, record, {history: true});
    conv.before = page.before;
    conv.loaded = true;
  } catch (err) {
    addNote(conv, `history unavailable: ${err.message}`, "error");
  }
  historyStatus(conv);
  if (conv.key === state.active) $("log").scrollTop = $("log").scrollHeight;
}

async function loadOlder() {
  const conv = state.convs.get(state.active);
  if (!conv || conv.kind !== "room" || !conv.before || state.olderLoading) return;
  state.olderLoading = true;
  $("history-status").textContent = "Loading older messages…";
  $("history-said").textContent = "Loading older messages…";
  const log = $("log");
  const height = log.scrollHeight;
  try {
    const page = await api.history(conv.name, conv.before);
    for (const record of page.messages) addMessage(conv, record, {history: true});
    conv.before = page.before;
    log.scrollTop += log.scrollHeight - height;
  } catch (err) {
    addNote(conv, `history unavailable: ${err.message}`, "error");
  } finally {
    state.olderLoading = false;
    const button = $("older-button");
    const focused = document.activeElement === button;
    historyStatus(conv);
    // The button hides at the start of history: focus must not fall to the page.
    if (focused && button.hidden) log.focus();
  }
}

// A direct conversation has no history the page can read (the server keeps one for
// rooms alone): what it shows started when the page opened, and it says so, rather
// than look like a conversation that is empty, or lost, after a reload.
const DIRECT_HISTORY = "Earlier direct messages are not shown here: the page has those "
  + "sent or received since it opened, and those that came while you were away.";

function historyStatus(conv) {
  if (conv.key !== state.active) return;
  const more = conv.kind === "room" && conv.before;
  $("older-button").hidden = !more;
  const words = conv.kind === "direct" ? DIRECT_HISTORY
    : conv.loaded && !conv.before ? "This is the start of the room's history." : "";
  $("history-status").textContent = words;
  announceHistoryOnce(conv, words);
}

// The history line is shown each time a conversation is opened, but said once per
// conversation while the page is open: a screen reader user going back and forth
// between rooms heard the same sentence at each switch. It is said in a live region
// of its own; the line on screen is not live.
function announceHistoryOnce(conv, words) {
  if (!words || conv.historyAnnounced) return;
  conv.historyAnnounced = true;
  $("history-said").textContent = words;
}

// After a reconnection: what was posted while the connection was away, page after
// page while the server says more follow (rooms.resume_max per answer). A server
// that never issued lastId (its database restored from an older backup) names
// its latest id instead: the next reconnection resumes from that one.
async function recover(lastId) {
  let after = lastId;
  for (let page = 0; page < RECOVER_PAGES; page += 1) {
    const resumed = await conn.command(`/resume ${after}`);
    if (resumed.type !== "ok") break;
    if (!resumed.more) {
      if (resumed.recovered === false && resumed.last_id < after) conn.restartIds(resumed.last_id);
      return;
    }
    after = resumed.last_id;
  }
  for (const conv of state.convs.values()) {
    if (conv.kind !== "room" || !conv.member) continue;
    let before = null;
    for (let page = 0; page < RECOVER_PAGES; page += 1) {
      let found;
      try {
        found = await api.history(conv.name, before, 200);
      } catch (err) {
        break;
      }
      for (const record of found.messages) {
        if (record.id > lastId) addMessage(conv, record, {history: conv.key === state.active});
      }
      if (!conv.loaded) conv.before = found.before;
      before = found.before;
      if (!before || before <= lastId) break;
    }
  }
}

// -- members and presence ------------------------------------------------------------

let memberTimer = null;
// Who the member list on screen shows offline, and who of them spoke since: presence
// has no event, so the list is read again when one of them speaks (they are back),
// once each until the next read, so a member who posts through the API alone (never
// online) costs no more than the periodic read.
const listedOffline = new Set();
const spokeWhileListedOffline = new Set();

// A message from a member the list shows offline: read the list again.
function spokeIn(conv, from) {
  if (conv.key !== state.active || !listedOffline.has(from)) return;
  if (spokeWhileListedOffline.has(from)) return;
  spokeWhileListedOffline.add(from);
  refreshMembers();
}

function listMembers(items) {
  listedOffline.clear();
  for (const [name, online] of items) if (!online) listedOffline.add(name);
}

// The member list on screen as last read: {name, role, online, away} each (no role for
// the one person of a direct conversation). While the connection is away nobody can
// tell who is online: the list shows each presence as unknown (no dot lit) until a
// read after the reconnection says it again.
let shownMembers = [];
let shownFor = null;  // the key of the conversation they are the members of
let presenceKnown = true;

function renderMembers(members, key = null) {
  shownMembers = members;
  shownFor = key;
  keepingFocus($("member-list"), "button.member", "name",
               () => $("member-list").replaceChildren(...members.map(memberItem)));
}

// A read of the list that failed (the connection is away): the list on screen stays
// if it is this conversation's, and goes if it is another's (opened meanwhile).
function membersUnread(conv) {
  if (conv.key === state.active && shownFor !== conv.key) renderMembers([]);
}

function presenceUnknown() {
  presenceKnown = false;
  renderMembers(shownMembers);
}

// A refresh that walks every page of a list, one walk at a time: asked for while a
// walk is under way, it walks once more after it, for all who asked meanwhile. A
// burst of joins into a long room then walks /who's pages twice, not once per join,
// which spent the tab's command budget; the same holds for every paged list.
function oneWalkAtATime(walk) {
  let running = null;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await walk();
      } while (again);
    })().finally(() => { running = null; });
    return running;
  };
}

const refreshMembers = oneWalkAtATime(showMembers);

async function showMembers() {
  clearTimeout(memberTimer);
  memberTimer = setTimeout(refreshMembers, MEMBER_REFRESH_MS);
  const conv = state.convs.get(state.active);
  spokeWhileListedOffline.clear();
  if (!conv) {
    listMembers([]);
    renderMembers([]);
    return;
  }
  if (conv.kind === "direct") {
    const who = await conn.command(`/whois ${conv.name}`);
    if (who.type !== "ok") {
      membersUnread(conv);
      return;
    }
    listMembers([[who.user, who.online]]);
    renderMembers([{name: who.user, online: who.online, away: who.away}], conv.key);
    return;
  }
  if (!conv.member) {
    listMembers([]);
    renderMembers([]);  // a room opened to read what was said: no members to show
    return;
  }
  const who = await conn.members(conv.name);
  if (who.type !== "ok") {
    membersUnread(conv);
    return;
  }
  if (conv.key !== state.active) return;
  listMembers(who.members.map((m) => [m.user, m.online]));
  renderMembers(who.members.map((m) => ({name: m.user, role: m.role, online: m.online})),
                conv.key);
}

function presenceWords(member) {
  if (!presenceKnown) return "presence unknown";
  if (member.away) return `away: ${member.away}`;
  return member.online ? "online" : "offline";
}

function memberItem(member) {
  const {name, role} = member;
  const presence = presenceWords(member);
  const status = role ? `${role}, ${presence}` : presence;
  const lit = presenceKnown && member.online && !member.away;
  const dot = !presenceKnown ? "dot unknown" : lit ? "dot online" : "dot";
  const button = el("button", {type: "button", class: "member", "data-name": name,
                               "aria-label": `${name}, ${status}. Send a direct message`},
                    el("span", {class: dot, "aria-hidden": "true"}),
                    el("span", {class: nickColour(name), text: name}),
                    el("span", {class: "role", text: status}));
  button.addEventListener("click", () => {
    if (name !== state.me) activate(conversation("direct", name).key);
  });
  return el("li", {}, button);
}

// -- typing ------------------------------------------------------------------------------

function typed() {
  limitHint();
  const conv = state.convs.get(state.active);
  const text = $("composer-input").value;
  if (!conv || conv.kind !== "room" || !conv.member || !text || commandWord(text) !== null) return;
  const now = Date.now();
  if (now - state.lastTyping < TYPING_EVERY_MS) return;
  state.lastTyping = now;
  conn.command(`/typing ${conv.name}`);
}

function someoneTypes(user) {
  clearTimeout(state.typing.get(user));
  state.typing.set(user, setTimeout(() => {
    state.typing.delete(user);
    renderTyping();
  }, TYPING_SHOWN_MS));
  renderTyping();
}

// The line is a live region: set again to the same words (each /typing of someone
// still typing, every few seconds), a screen reader would say them again each time.
function renderTyping() {
  const names = Array.from(state.typing.keys());
  const words = names.length === 0 ? ""
    : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
  if ($("typing").textContent !== words) $("typing").textContent = words;
}

// -- notifications ---------------------------------------------------------------------------

function renderNotifications() {
  $("notification-count").textContent = String(state.notifications.length);
  $("notifications-button").setAttribute("aria-label",
    `Notifications, ${state.notifications.length} unread`);
  $("notification-list").replaceChildren(...state.notifications.map((n) =>
    el("li", {}, el("time", {text: clockTime(n.ts_epoch)}), " ", n.text || n.kind)));
  const dropped = state.notificationsDropped;
  $("notifications-dropped").hidden = dropped === 0;
  $("notifications-dropped").textContent = dropped === 0 ? ""
    : `${dropped} older notification${dropped === 1 ? " was" : "s were"} dropped: the server `
      + "keeps only the newest.";
}

// The server tells how many were dropped once, to the listing of the newest page that
// reads it first (this page's walks, or a /notifications typed): kept to be shown.
function notificationsDropped(count) {
  if (count > 0) state.notificationsDropped += count;
}

// Every notification, the oldest first: /notifications pages from the newest. A page
// answered before a clear may reach the page after the clear's answer (the server need
// not answer in order): such a walk would bring the cleared notifications back, so it
// is not kept; it is walked again, and finds what came after the clear.
const loadNotifications = oneWalkAtATime(async () => {
  let clears;
  let reply;
  do {
    clears = state.notificationClears;
    reply = await conn.walk("/notifications", {notifications: "id"}, ["dropped"]);
    // A clear answered meanwhile cleared the count with the list: what this walk was
    // told before it is not shown over the emptied list.
    if (clears === state.notificationClears) notificationsDropped(reply.dropped);
  } while (clears !== state.notificationClears);
  if (reply.type === "ok") {
    state.notifications = reply.notifications.sort((a, b) => a.id - b.id);
    renderNotifications();
  }
});

// The server cleared every notification (the Clear button, or a typed clear).
function notificationsCleared() {
  state.notificationClears += 1;
  state.notifications = [];
  state.notificationsDropped = 0;
  renderNotifications();
}

async function clearNotifications() {
  const reply = await conn.command("/notifications clear");
  if (reply.type === "ok") notificationsCleared();
  else noteHere(`${reply.code}: ${reply.message}`, "error");
}

// The page behind the open panel is inert: no click, nor a screen reader's own
// navigation, reaches it (the keyboard is held by trapInPanel as well).
function openNotifications(open) {
  const panel = $("notifications");
  panel.hidden = !open;
  for (const part of $("app").children) if (part !== panel) part.inert = open;
  $("notifications-button").setAttribute("aria-expanded", String(open));
  if (open) $("notifications-clear").focus();
  else $("notifications-button").focus();
}

// -- what the server sends ---------------------------------------------------------------------

function onRecord(record) {
  switch (record.type) {
    case "message": {
      const conv = conversationOf(record);
      if (addMessage(conv, record, {history: Boolean(record.history)}) && !record.history) {
        spokeIn(conv, record.from);
      }
      if (record.from && state.typing.has(record.from)) {
        clearTimeout(state.typing.get(record.from));
        state.typing.delete(record.from);
        renderTyping();
      }
      break;
    }
    case "event":
      onEvent(record);
      break;
    case "notice":
      onNotice(record);
      break;
    case "error":
      if (!record.label) noteHere(`${record.code}: ${record.message}`, "error");
      break;
    default:
      break;
  }
}

function onEvent(record) {
  if (record.event === "typing") {
    if (record.user !== state.me && `#${record.room}` === state.active) someoneTypes(record.user);
    return;
  }
  // Events come to a room's members, and an unban to the user unbanned as well, who
  // is in no room for it: a room first heard of that way is listed as one they are
  // not in (/join goes back), not as one whose history and composer they could use.
  const outsider = record.event === "unban" && record.user === state.me;
  const conv = conversation("room", record.room, {member: !outsider});
  if (record.event === "topic") {
    conv.topic = record.topic || "";
    if (conv.key === state.active) $("view-topic").textContent = conv.topic;
  }
  ownEvent(conv, addNote(conv, eventSentence(record), "event"), record);
  if (REMOVALS.has(record.event) && record.user === state.me) {
    removedFrom(conv, record);
    return;
  }
  if (MEMBER_EVENTS.has(record.event) && conv.key === state.active) refreshMembers();
}

// This account is out of a room: kicked, banned, the room ended, or left on another
// connection. Listed as a room it is not in; on screen, the screen shows none (as
// after /leave: a plain line has nowhere to go) and says why.
function removedFrom(conv, record) {
  conv.member = false;
  if (conv.key === state.active) {
    showNone();
    noteHere(removalSentence(record), "removed");
  }
  renderNav();
}

function showNone() {
  state.active = null;
  state.typing.clear();
  renderTyping();
  renderHeader(null);
  renderNav();
  renderLog();
  limitHint();
}

function removalSentence(e) {
  const by = e.actor ? ` by ${e.actor}` : "";
  const why = e.reason ? ` (${e.reason})` : "";
  switch (e.event) {
    case "kick": return `You were kicked from #${e.room}${by}${why}.`;
    case "ban": return `You were banned from #${e.room}${by}${why}.`;
    case "terminated": return `#${e.room} ended: you were its last member.`;
    case "gone": return `You are no longer in #${e.room}: you left it on another connection, `
      + "or were removed, while this one was away.";
    default: return `You left #${e.room}${why} on another connection.`;
  }
}

// Out of a room while the connection was away: what the server said of it meanwhile
// (the newest notification of a kick, a ban or the room's end among those that came
// then), as the event it stands for. A leave elsewhere leaves no notification.
function removalWhileAway(conv, known) {
  let found = null;
  for (const n of state.notifications) {
    if (!REMOVAL_NOTIFICATIONS.has(n.kind) || known.has(n.id)) continue;
    if (String(n.room).toLowerCase() !== conv.name.toLowerCase()) continue;
    if (!found || n.id > found.id) found = n;
  }
  if (!found) return {event: "gone", room: conv.name, user: state.me};
  return {event: REMOVAL_NOTIFICATIONS.get(found.kind), room: conv.name, user: state.me,
          actor: found.actor, reason: found.reason};
}

function eventSentence(e) {
  const by = e.actor ? ` by ${e.actor}` : "";
  const why = e.reason ? ` (${e.reason})` : "";
  // A timed ban's or mute's end (a mute's event carries it; a ban's only its actor's reply).
  const until = typeof e.until === "number" ? ` until ${dateTime(e.until)}` : "";
  switch (e.event) {
    case "join": return `${e.user} joined #${e.room}`;
    case "leave": return `${e.user} left #${e.room}${why}`;
    case "kick": return `${e.user} was kicked from #${e.room}${by}${why}`;
    case "ban": return `${e.user} was banned from #${e.room}${by}${until}${why}`;
    case "unban": return `${e.user} was unbanned${by}`;
    case "mute": return `${e.user} was muted${by}${until}${why}`;
    case "unmute": return `${e.user} was unmuted${by}`;
    case "promote": case "demote": case "owner": case "voice": case "devoice":
      return `${e.user} is now ${e.role}${by}`;
    case "topic": return e.topic ? `${e.actor} set the topic: ${e.topic}` : `${e.actor} cleared the topic`;
    case "terminated": return `#${e.room} ended`;
    case "gone": return `${e.user} is no longer in #${e.room}`;
    case "invite": return `${e.actor} invited ${e.user}`;
    case "request": return `${e.user} asks to join #${e.room}`;
    case "rename": return `${e.user} is now known as ${e.name}`;
    case "mode": return `${e.actor} made #${e.room} ${e.mode}`;
    case "modes": return `${e.actor} set modes ${e.changes}`;
    case "e2e": return `end-to-end only: ${e.state}${by}`;
    default: return `${e.event}: ${e.user || ""}`;
  }
}

function onNotice(record) {
  if (record.notification) {
    state.notifications.push({...record.notification, text: record.text});
    renderNotifications();
    return;
  }
  if (record.upload || record.version || !state.me) return;  // a banner, an upload's notices
  noteHere(record.text || "", record.broadcast ? "broadcast" : "note");
}

// -- the composer and commands -------------------------------------------------------------------

// A label typed before a command (@q1 /join dev), as the server reads one.
const TYPED_LABEL = /^@[A-Za-z0-9._:+-]{1,64} +(?=\/)/;

// The command a line runs, lower-cased; null for a plain line (//text is text).
// Through a label (@l /cmd) and /quote, as the server reads them.
function commandWord(line) {
  let rest = line.replace(TYPED_LABEL, "");
  for (;;) {
    if (!rest.startsWith("/") || rest.startsWith("//")) return null;
    const [word, ...more] = rest.slice(1).split(/\s+/);
    const command = word.toLowerCase();
    if (command !== "quote" || more.length === 0) return command;
    rest = more.join(" ");
    if (!rest.startsWith("/")) rest = `/${rest}`;
  }
}

async function submit(event) {
  event.preventDefault();
  const input = $("composer-input");
  const line = input.value;
  if (!line.trim()) return;
  input.value = "";
  const conv = state.convs.get(state.active);
  const command = commandWord(line);
  if (command === "logout" || command === "quit") {
    // As the Log out button: the tab's token is revoked while the session may still.
    await endSession("");
  } else if ((command === "me" || command === "sticker") && conv && conv.kind === "direct") {
    noteHere(`/${command} acts in a room; in a direct conversation, type the text.`, "error");
  } else if (command === "upload") {
    // The server would take every line after it as the file's base64, up to a ".":
    // the messages typed next, and this page's own commands.
    noteHere("/upload sends a file as base64 lines, which this page does not type: use the " +
             "Upload button.", "error");
  } else if (command === "format" || (command === "set" && /\bformat\b/i.test(line))) {
    // The page reads JSON records: text lines would leave every answer unread.
    noteHere("This page talks to the server in JSON; the format cannot change here.",
             "error");
  } else if (command === null && conv && conv.kind === "room" && !conv.member) {
    // The server would answer no-room (or send it to another room): kept to send later.
    keep(line);
    noteHere(`You are not in #${conv.name}: /join ${conv.name} to go back.`, "error");
  } else if (command === null && !conv) {
    noteHere("join or create a room first: /join <room> or /create <room>.", "error");
  } else {
    await send(line, outgoing(conv, line));
  }
  limitHint();
}

// The line the composer sends for what was typed: a command as typed; a plain line
// as /say to the room on screen, or /msg to the person, labelled (a plain line
// cannot be) so that a refusal answers it; null when it has nowhere to go.
function outgoing(conv, line) {
  // The page labels each line it sends, and the server reads one label: kept, a typed
  // label made the line no command, and it went to the room as a message, with the
  // page's label in it (@c9 @q1 /join dev). The command is sent under the page's.
  if (commandWord(line) !== null) return line.replace(TYPED_LABEL, "");
  const text = line.startsWith("//") ? line.slice(1) : line;
  if (conv && conv.kind === "direct") return `/msg ${conv.name} ${text}`;
  if (conv && conv.kind === "room" && conv.member) return `/say ${conv.name} ${text}`;
  return null;
}

// Send; a line refused (too long, muted, rate-limited, not connected...) goes back
// into the composer, unless something new was typed there meanwhile.
async function send(line, wire) {
  const reply = await sendInTurn(wire);
  if (reply.type === "error") keep(line);
  if (commandWord(line) !== null) await handleReply(line, reply);
  else if (reply.type === "error") noteHere(`${reply.code}: ${reply.message}`, "error");
}

// Typed lines go out one after another, in the order typed; one the server refused
// for its rate (rate-limited, busy) goes again once the wait it names is over, before
// the lines typed after it. A quick run of lines then arrives whole and in order,
// where each refused line was lost, and twenty refusals in ten seconds counted as a
// flood (a mute, or for direct messages a disconnection). After a refusal the lines
// still waiting go at the pace the server named, so a run is refused about once.
const RETRIED = new Set(["rate-limited", "busy"]);
const SEND_TRIES = 5;
const RETRY_WAIT_MAX_MS = 5000;
const outbox = {turn: Promise.resolve(), waiting: 0, paceMs: 0};

function sendInTurn(wire) {
  outbox.waiting += 1;
  const reply = outbox.turn.then(() => sendPaced(wire));  // conn.command never rejects
  outbox.turn = reply;
  return reply.finally(() => {
    outbox.waiting -= 1;
    if (outbox.waiting === 0) outbox.paceMs = 0;  // the run is over: full speed again
  });
}

async function sendPaced(wire) {
  for (let tries = 1; ; tries += 1) {
    if (outbox.paceMs) await new Promise((resolve) => setTimeout(resolve, outbox.paceMs));
    const reply = await conn.command(wire);
    const wait = reply.type === "error" && RETRIED.has(reply.code) ? reply.retry_ms : null;
    if (typeof wait !== "number" || wait > RETRY_WAIT_MAX_MS || tries === SEND_TRIES) {
      return reply;
    }
    outbox.paceMs = Math.max(outbox.paceMs, wait);
  }
}

function keep(line) {
  const input = $("composer-input");
  if (!input.value) input.value = line;
}

// The size of the line against the server's limit (the one its banner announced),
// from when it nears it (a line is bytes of UTF-8 with what the page adds: the
// label, /say and the room...).
function limitHint() {
  const input = $("composer-input");
  const hint = $("composer-limit");
  const typed = input.value;
  const wire = outgoing(state.convs.get(state.active), typed);
  const used = utf8Bytes(typed);
  const limit = conn.maxLine;
  const room = wire === null ? limit : limit - (conn.commandBytes(wire) - used);
  const over = used > room;
  hint.hidden = used < room * LIMIT_SHOWN_FROM;
  hint.textContent = over ? `${used} bytes: over the ${room} a line may have here; shorten it to send.`
    : `${used} of ${room} bytes`;
  input.setAttribute("aria-invalid", String(over));
  announceLimit(over ? "over" : hint.hidden ? "within" : "near", hint.textContent);
}

// The count changes at each key: a live hint had a screen reader read it out after
// every character typed, over the echo of the typing itself. It is announced when the
// line comes near the limit and when it goes over (the hint itself, described by the
// composer, says the count whenever the reader asks).
let limitSaid = "within";

function announceLimit(where, words) {
  if (where === limitSaid) return;
  limitSaid = where;
  if (where !== "within") announceText(words);
}

async function handleReply(line, reply) {
  if (reply.type === "error") {
    noteHere(`${reply.code}: ${reply.message}`, "error");
    return;
  }
  const command = reply.command;
  if ((command === "join" || command === "create") && !reply.requested) {
    const conv = conversation("room", reply.name || reply.room);
    // Back after a kick or a leave: what was said meanwhile is read again.
    if (!conv.member) conv.loaded = false;
    conv.member = true;
    conv.topic = reply.topic || conv.topic;
    await activate(conv.key);
  } else if (command === "switch") {
    await activate(conversation("room", reply.room).key);
  } else if (command === "leave") {
    const key = `#${String(reply.room).toLowerCase()}`;
    state.convs.delete(key);
    if (state.active === key) showNone();
    renderNav();
  } else if (command === "msg" || command === "emsg") {
    if (reply.to) conversation("direct", reply.to);
  } else if (command === "set" && reply.setting === "theme") {
    applyTheme(reply.value);
    themeButton();
  } else if (command === "notifications") {
    // A page typed shows that page; the panel keeps every notification.
    if ("cleared" in reply) {
      notificationsCleared();
    } else {
      notificationsDropped(reply.dropped);
      await loadNotifications();
    }
  } else if (command === "logout" || command === "quit") {
    await endSession(reply.message);
    return;
  }
  if (command === "help") {
    showHelp(reply);
    return;
  }
  if (toldByEvent(reply)) return;
  if (reply.message) noteHere(reply.message);
  for (const field of LIST_FIELDS) {
    if (Array.isArray(reply[field]) && command !== "notifications") {
      for (const entry of reply[field]) noteHere(`  ${describe(entry)}`);
    }
  }
}

// A room's decision (a kick, a ban, a mute, a change of role, a topic ...) is told to
// the room by its event, which reaches its actor too, before the command's reply: on
// the room's own screen, the reply's sentence would say it a second time. Its event's
// line stands alone, carrying what the reply adds (a ban's end: its event names none).
// Out of that screen (/kick bob dev typed in another room) the reply is all the actor
// sees; with no event (/topic shown, /promote of an admin: "already"), it is all there is.
const TOLD_BY_EVENT = new Set(["kick", "invite", "ban", "unban", "mute", "unmute", "promote",
                               "demote", "voice", "devoice", "topic"]);
// The events of this page's own decisions, which the server labels as the command that
// made them (PROTOCOL.md §2), until its reply comes: the newest few.
const OWN_EVENTS_KEPT = 20;
const ownEvents = [];

function ownEvent(conv, item, record) {
  if (!TOLD_BY_EVENT.has(record.event) || !record.label) return;
  ownEvents.push({conv, item, record});
  if (ownEvents.length > OWN_EVENTS_KEPT) ownEvents.shift();
}

// Whether the reply's news was told by its own event's line on screen (made to carry
// what the reply adds); an unban that lifted an IRC guest's ban of the name keeps its
// sentence, which says which ban went.
function toldByEvent(reply) {
  if (!TOLD_BY_EVENT.has(reply.command) || !reply.label) return false;
  const index = ownEvents.findIndex(({record}) =>
    record.label === reply.label && record.event === reply.command);
  if (index < 0) return false;
  const [{conv, item, record}] = ownEvents.splice(index, 1);
  if (record.event === "ban" && typeof reply.until === "number") {
    retell(conv, item, eventSentence({...record, until: reply.until}));
  }
  const guest = Array.isArray(reply.lifted) && reply.lifted.includes("guest");
  return conv.key === state.active && !guest;
}

// Say an event's line again, in other words (the line stays where it was).
function retell(conv, item, text) {
  item.text = text;
  if (conv.key !== state.active) return;
  const node = Array.from($("log").children)
    .find((child) => Number(child.dataset.order) === item.order);
  if (node) node.textContent = text;
}

function describe(entry) {
  if (typeof entry !== "object" || entry === null) return String(entry);
  return Object.entries(entry).filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => `${k}: ${shownValue(k, v)}`).join(", ");
}

// The fields of a listed entry that the server gives as a moment in epoch seconds
// (a token's created, expires and last_used, an audit entry's ts, a file's time...).
const MOMENT_FIELDS = new Set(["ts", "time", "created", "expires", "last_used", "last_joined",
                               "last", "since", "until"]);

// A value as a person reads it: a moment as the date and time it is (in the page's
// time zone, as the messages' times), not a count of seconds since 1970.
function shownValue(field, value) {
  if (MOMENT_FIELDS.has(field) && typeof value === "number") return dateTime(value);
  return typeof value === "object" ? JSON.stringify(value) : value;
}

function dateTime(epochSeconds) {
  const when = new Date(epochSeconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${when.getFullYear()}-${two(when.getMonth() + 1)}-${two(when.getDate())} `
    + `${two(when.getHours())}:${two(when.getMinutes())}`;
}

function showHelp(reply) {
  if (reply.commands) {
    for (const c of reply.commands) noteHere(`${c.usage} — ${c.help}`);
  } else {
    noteHere(`${reply.usage} — ${reply.help} Needs: ${reply.needs}`);
  }
}

// -- stickers, uploads, theme ------------------------------------------------------------------

async function toggleStickers() {
  const box = $("stickers");
  const button = $("sticker-button");
  if (!box.hidden) {
    // Focus goes back where it came from, as the notifications panel's does.
    const inside = box.contains(document.activeElement);
    box.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (inside) $("composer-input").focus();
    return;
  }
  if (!state.stickers) await loadStickers();
  if (!state.stickers) return;  // the walk failed, and said why: the next open asks again
  box.replaceChildren(...state.stickers.map((s) => {
    const pick = el("button", {type: "button", class: "sticker-pick", "aria-label": `sticker ${s.name}`},
                    el("pre", {"aria-hidden": "true", text: s.art}), el("span", {text: s.name}));
    pick.addEventListener("click", () => sendSticker(s.name));
    return pick;
  }));
  box.hidden = false;
  button.setAttribute("aria-expanded", "true");
  const first = box.querySelector("button");
  if (first) first.focus();
}

// Every sticker, every page of /stickers. A walk that failed (the server busy, the
// connection away) is not kept as "no stickers": it says why, and the next open asks again.
const loadStickers = oneWalkAtATime(async () => {
  const reply = await conn.walk("/stickers", {stickers: "name"});
  if (reply.type === "ok") state.stickers = reply.stickers;
  else noteHere(`stickers: ${reply.code}: ${reply.message}`, "error");
});

async function sendSticker(name) {
  const conv = state.convs.get(state.active);
  $("stickers").hidden = true;
  $("sticker-button").setAttribute("aria-expanded", "false");
  $("composer-input").focus();
  if (!conv || conv.kind !== "room") {
    noteHere("stickers go to a room: open one first.", "error");
    return;
  }
  const reply = await conn.command(`/sticker ${name} ${conv.name}`);
  if (reply.type === "error") noteHere(`${reply.code}: ${reply.message}`, "error");
}

async function upload() {
  const input = $("upload-input");
  const file = input.files && input.files[0];
  input.value = "";
  const conv = state.convs.get(state.active);
  if (!file) return;
  if (!conv || conv.kind !== "room") {
    noteHere("files go to a room: open one first.", "error");
    return;
  }
  noteHere(`uploading ${file.name}…`);
  try {
    await api.upload(conv.name, file);
  } catch (err) {
    noteHere(`upload failed: ${err.message}`, "error");
  }
}

// The button names the theme it switches to. It is no toggle (aria-pressed) as well:
// a screen reader then said "Light theme, pressed" in the dark theme, which reads as
// the light theme being on.
function themeButton() {
  const dark = currentTheme() === "dark";
  $("theme-button").textContent = dark ? "Light theme" : "Dark theme";
}

async function toggleTheme() {
  const next = currentTheme() === "dark" ? "light" : "dark";
  applyTheme(next);
  themeButton();
  await conn.command(`/set theme ${next}`);
}

// -- logging in and out ---------------------------------------------------------------------------

// One login at a time: a form sent twice (Enter, then a click) would log in twice.
async function login(register) {
  if (state.loggingIn) return;
  state.loggingIn = true;
  try {
    await logIn(register);
  } finally {
    state.loggingIn = false;
  }
}

async function logIn(register) {
  const name = $("login-name").value.trim();
  const password = $("login-password").value;
  $("login-error").textContent = "";
  if (!name || !password) {
    $("login-error").textContent = "Give a name and a password.";
    return;
  }
  let reply;
  try {
    reply = await conn.login(name, password, register);
  } catch (err) {
    $("login-error").textContent = err.message;
    return;
  }
  if (reply.type !== "ok") {
    $("login-error").textContent = reply.message;
    return;
  }
  $("login-password").value = "";
  await start(reply);
}

async function start(reply) {
  state.me = reply.user;
  $("me").textContent = `Logged in as ${reply.user}${reply.admin ? " (server admin)" : ""}`;
  $("login").hidden = true;
  $("app").hidden = false;
  if (reply.settings) applyTheme(reply.settings.theme);
  themeButton();
  await syncRooms(reply.rooms || []);
  await syncConversations();
  const saved = conn.saved || {};
  const first = saved.active && state.convs.has(saved.active) ? saved.active
    : Array.from(state.convs.keys())[0];
  if (first) await activate(first);
  else {
    $("composer-input").focus();
    noteHere("You are in no room yet: /rooms lists them, /join <room> or /create <room>.");
  }
  // Older direct messages than a login replays are marked delivered all the same:
  // said, or the person would never know to ask for them.
  const skipped = reply.direct_messages_skipped || 0;
  if (skipped) {
    noteHere(`${skipped} older direct message${skipped === 1 ? "" : "s"} sent while you ` +
             `were away not shown here: /resume ${reply.direct_messages_skipped_after} ` +
             "replays them.");
  }
  await loadNotifications();
  connectionStatus("connected");
}

// The rooms the page lists, from the login's and /myrooms: the ones it had as the
// account's and that are not any more (left, kicked... while the connection was
// away) are listed as rooms it is not in, and returned, for the caller to say so.
async function syncRooms(names) {
  const was = new Set(Array.from(state.convs.values())
    .filter((conv) => conv.kind === "room" && conv.member));
  for (const name of names) conversation("room", name).member = true;
  await walkMyRooms();
  const mine = state.myRooms;
  const current = new Set((mine.type === "ok" ? mine.rooms.map((room) => room.name) : names)
    .map((name) => name.toLowerCase()));
  const lost = [];
  for (const conv of state.convs.values()) {
    if (conv.kind !== "room" || current.has(conv.name.toLowerCase())) continue;
    conv.member = false;
    if (was.has(conv)) lost.push(conv);
  }
  if (mine.type === "ok") {
    for (const room of mine.rooms) {
      const conv = conversation("room", room.name);
      conv.member = true;
      conv.topic = room.topic || "";
    }
  }
  const shown = state.convs.get(state.active);
  if (shown && !lost.includes(shown)) renderHeader(shown);
  renderNav();
  return lost;
}

// Every page of /myrooms, the rooms the account is in (state.myRooms: the reply).
const walkMyRooms = oneWalkAtATime(async () => {
  state.myRooms = await conn.walk("/myrooms", {rooms: "id", past: "id"});
});

// The direct conversations the account has had, listed as the rooms are (a reload
// or another tab shows them too): every page of /conversations.
const syncConversations = oneWalkAtATime(async () => {
  const found = await conn.walk("/conversations", {conversations: "user"});
  if (found.type !== "ok") return;
  for (const other of found.conversations) conversation("direct", other.user);
  renderNav();
});

async function endSession(message) {
  const unrevoked = await conn.logout();
  if (unrevoked) {
    // Said, or the person would take the tab's session for ended on the server.
    message = `${message ? `${message} ` : ""}Logged out of this page, but the server could `
      + `not be reached to end its session token ${unrevoked}: it stays valid for up to 7 `
      + `days. /token revoke ${unrevoked}, once logged in again, ends it.`;
  }
  state.me = null;
  state.convs.clear();
  state.active = null;
  state.notifications = [];
  state.notificationsDropped = 0;
  renderNav();
  renderLog();
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-name").focus();
}

function connectionStatus(status) {
  const words = {connected: "", reconnecting: "Connection lost; reconnecting…",
                 reconnected: "Reconnected."};
  $("connection").textContent = words[status] || "";
  document.body.classList.toggle("offline", status === "reconnecting");
  if (status === "reconnected") {
    setTimeout(() => {
      if ($("connection").textContent === words.reconnected) $("connection").textContent = "";
    }, 4000);
  }
}

conn.onRecord(onRecord);
conn.onStatus(async (status, detail) => {
  // Presence is unknown from a drop until the list is read again after it: a read
  // after a reconnection (refreshMembers, below, or start's) draws it known again;
  // until then the list stays unknown, not as it was before the drop.
  if (status !== "reconnecting") presenceKnown = true;
  if (status === "reconnecting") {
    if (state.resumeFrom === null) {
      state.resumeFrom = (conn.saved || {}).lastId || 0;
      state.notificationsBefore = new Set(state.notifications.map((n) => n.id));
    }
    connectionStatus(status);
    presenceUnknown();
  } else if (status === "reconnected" && state.me === null) {
    await start(detail);  // the tab opened while the server was away
  } else if (status === "reconnected") {
    const lastId = state.resumeFrom || 0;
    const known = state.notificationsBefore || new Set();
    state.resumeFrom = null;
    state.notificationsBefore = null;
    await loadNotifications();  // those written while the connection was away
    // A room left meanwhile is taken off the screen as a removal seen live is, with
    // the reason the notifications give (the events themselves were missed).
    for (const conv of await syncRooms(detail.rooms || [])) {
      const record = removalWhileAway(conv, known);
      addNote(conv, eventSentence(record), "event");
      removedFrom(conv, record);
    }
    api.links.clear();  // signed by the daemon that went away: they may no longer pass
    await recover(lastId);
    const conv = state.convs.get(state.active);
    if (conv && conv.kind === "room" && conv.member) conn.command(`/switch ${conv.name}`);
    refreshMembers();
    limitHint();  // against the limit the server now announces
    connectionStatus(status);
  } else if (status === "logged-out") {
    await endSession(`Logged out: ${detail || "log in again."}`);
  }
});

// -- keyboard ---------------------------------------------------------------------------------

function moveConversation(step) {
  const buttons = Array.from(document.querySelectorAll("button.conv"));
  if (buttons.length === 0) return;
  const at = buttons.findIndex((b) => b.dataset.key === state.active);
  const next = buttons[(at + step + buttons.length) % buttons.length];
  activate(next.dataset.key, {focus: false}).then(() => {
    const again = document.querySelector(`button.conv[data-key="${CSS.escape(next.dataset.key)}"]`);
    if (again) again.focus();
  });
}

// Tab and Shift+Tab go round the notifications panel's controls while it is open: it
// is a modal dialog (the screen reader reads nothing else meanwhile), and a focus
// that wandered behind it would be on a control the person cannot see is there.
function trapInPanel(event) {
  const panel = $("notifications");
  const controls = Array.from(panel.querySelectorAll("button, a[href], input"));
  const first = controls[0];
  const last = controls[controls.length - 1];
  const at = document.activeElement;
  const wraps = !panel.contains(at) || (event.shiftKey ? at === first : at === last);
  if (!wraps) return;
  event.preventDefault();
  (event.shiftKey ? last : first).focus();
}

function onKey(event) {
  if (!$("notifications").hidden) {
    onKeyInPanel(event);
  } else if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    moveConversation(event.key === "ArrowUp" ? -1 : 1);
  } else if (event.key === "Escape") {
    if (!$("stickers").hidden) toggleStickers();
    else $("composer-input").focus();
  }
}

// A click outside the open panel, on the inert page behind it, closes it as Escape
// does, the focus back on its button; the click itself does nothing behind it.
function onClickOutsidePanel(event) {
  const panel = $("notifications");
  if (panel.hidden || panel.contains(event.target)) return;
  event.preventDefault();
  event.stopPropagation();
  openNotifications(false);
}

// The notifications panel is modal: its keys alone, and no conversation opens behind it.
function onKeyInPanel(event) {
  if (event.key === "Tab") trapInPanel(event);
  else if (event.key === "Escape") openNotifications(false);
}

// -- wiring ------------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login(false); });
  $("register-button").addEventListener("click", () => login(true));
  $("composer").addEventListener("submit", submit);
  $("composer-input").addEventListener("input", typed);
  $("log").addEventListener("scroll", () => { if ($("log").scrollTop < 60) loadOlder(); });
  $("older-button").addEventListener("click", loadOlder);
  $("upload-input").addEventListener("change", upload);
  $("sticker-button").addEventListener("click", toggleStickers);
  $("theme-button").addEventListener("click", toggleTheme);
  $("logout-button").addEventListener("click", () => endSession(""));
  $("notifications-button").addEventListener("click", () => openNotifications($("notifications").hidden));
  $("notifications-close").addEventListener("click", () => openNotifications(false));
  $("notifications-clear").addEventListener("click", clearNotifications);
  $("direct-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("direct-name").value.trim();
    if (!name) return;
    // "bad name" would be /whois with two words: "too many arguments" about a
    // command nobody typed.
    const spaced = spacedName(name);
    if (spaced) {
      noteHere(`bad-arguments: ${spaced}`, "error");
      return;
    }
    // Only someone who exists: a mistyped name opens no conversation.
    const who = await conn.command(`/whois ${name}`);
    if (who.type !== "ok") {
      noteHere(`${who.code}: ${who.message}`, "error");
      return;
    }
    $("direct-name").value = "";
    activate(conversation("direct", who.user).key);
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("click", onClickOutsidePanel, {capture: true});
  themeButton();
}

async function resumeTab() {
  if (!conn.saved || !conn.saved.user) {
    $("login-name").focus();
    return;
  }
  let reply;
  try {
    reply = await conn.relogin();
  } catch (err) {
    conn.lost();
    return;
  }
  if (reply.type === "ok") await start(reply);
  else {
    conn.save(null);
    $("login-error").textContent = "Your session ended; log in again.";
  }
}

wire();
resumeTab();
