// chatd's line protocol over /ws, as the browser client and the admin page use it.
//
// One JSON record per WebSocket message (/ws?format=json). A command is sent
// labelled (@c7 /join dev) and answered by a promise of its final ok or error;
// every record, labelled or not, also goes to the listeners. When the socket
// drops the connection comes back by itself (backoff with jitter), logs in
// again with what the tab keeps (a resume token when the server offered one,
// else the tab's API token) and tells its listeners, so they fetch what they
// missed. Nothing here builds HTML.

const COMMAND_TIMEOUT_MS = 20000;
// How many times walk() walks the pages of a list that changed meanwhile.
const LIST_WALKS = 3;
// The HTTP API: requests at once, tries of one refused with 429, and how long a
// file's signed link is used again (the server's links last longer).
const API_CONCURRENCY = 4;
const API_RETRIES = 5;
const LINK_REUSE_MS = 60000;
const BACKOFF_FIRST_MS = 300;
const BACKOFF_MAX_MS = 5000;
// The longest line the server takes, in bytes of UTF-8, until it says otherwise: its
// banner announces its own (max_line, listen.max_line); a server that does not is
// taken to have listen.max_line's default. One that refuses a line all the same
// (line-too-long) answers the command's promise with that error.
export const DEFAULT_MAX_LINE_BYTES = 4096;

// The limit a banner announces, or the default when it names none (or nonsense).
export function announcedLimit(banner) {
  const limit = banner && banner.max_line;
  return Number.isSafeInteger(limit) && limit > 0 ? limit : DEFAULT_MAX_LINE_BYTES;
}

const encoder = new TextEncoder();

export function utf8Bytes(text) {
  return encoder.encode(text).length;
}

export class Connection {
  constructor(storageKey) {
    this.storageKey = storageKey;
    this.ws = null;
    this.count = 0;
    this.pending = new Map();
    this.listeners = new Set();
    this.statusListeners = new Set();
    this.wanted = false;      // reconnect when the socket drops
    this.backoff = BACKOFF_FIRST_MS;
    this.timer = null;
    this.user = null;
    this.renewing = null;
    this.maxLine = DEFAULT_MAX_LINE_BYTES;  // the connected server's, from its banner
  }

  // -- what the tab keeps (sessionStorage: this tab only, gone when it closes) --

  get saved() {
    try {
      return JSON.parse(sessionStorage.getItem(this.storageKey) || "null");
    } catch (err) {
      return null;
    }
  }

  save(value) {
    if (value) sessionStorage.setItem(this.storageKey, JSON.stringify(value));
    else sessionStorage.removeItem(this.storageKey);
  }

  // -- listeners --------------------------------------------------------------

  onRecord(fn) { this.listeners.add(fn); }
  onStatus(fn) { this.statusListeners.add(fn); }

  status(state, detail) {
    for (const fn of this.statusListeners) fn(state, detail);
  }

  // -- the socket -------------------------------------------------------------

  // The socket, opened once at a time: a second call while one is being opened (a
  // login form sent twice, a reconnection racing a login) gets the same one. Two
  // logged-in sockets would each deliver every event of the account's rooms, and
  // the page would show each twice.
  open() {
    if (!this.opening) this.opening = this.connect().finally(() => { this.opening = null; });
    return this.opening;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${scheme}//${location.host}/ws?format=json`, "text.chatd");
      let greeted = false;
      ws.onmessage = (event) => {
        let record;
        try {
          record = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        if (!greeted) {
          greeted = true;
          if (record.type === "error") {  // too-many-connections and the like
            reject(new Error(record.message));
            ws.close();
            return;
          }
          this.adopt(ws);
          // Each connection's banner: a restarted server may have another limit.
          this.maxLine = announcedLimit(record);
          resolve(record);
        }
        // What a replaced socket still says is not this tab's any more.
        if (this.ws === ws) this.dispatch(record);
      };
      ws.onclose = () => {
        if (!greeted) reject(new Error("the server cannot be reached."));
        if (this.ws === ws) this.lost();
      };
      ws.onerror = () => {};
    });
  }

  // The tab's one socket from now on; one still open before it is closed.
  adopt(ws) {
    const before = this.ws;
    this.ws = ws;
    if (before && before !== ws) before.close();
  }

  dispatch(record) {
    const label = record.label;
    if (label && (record.type === "ok" || record.type === "error")) {
      this.settle(label, record);
    } else if (record.type === "error" && record.code === "line-too-long") {
      // The server drops a line over its limit unread, label and all, and says so
      // unlabelled: the longest line waiting for an answer is the one it dropped,
      // and the error is its answer (labelled, as listeners show a command's).
      const dropped = this.longestPending();
      if (dropped) {
        record.label = dropped;
        this.settle(dropped, record);
      }
    }
    for (const fn of this.listeners) fn(record);
  }

  settle(label, record) {
    const waiting = this.pending.get(label);
    if (!waiting) return;
    this.pending.delete(label);
    clearTimeout(waiting.timer);
    waiting.resolve(record);
  }

  longestPending() {
    let longest = null;
    let most = -1;
    for (const [label, waiting] of this.pending) {
      if (waiting.bytes > most) [longest, most] = [label, waiting.bytes];
    }
    return longest;
  }

  // How many bytes `line` takes on the wire as the next command, its label included.
  commandBytes(line) {
    return utf8Bytes(`@c${this.count + 1} ${line}`);
  }

  // A command line: the promise of its final ok or error record. One over the
  // server's limit is not sent (the server would drop it; far over, close the socket).
  command(line) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve({type: "error", code: "not-connected",
                              message: "not connected; reconnecting."});
    }
    const bytes = this.commandBytes(line);
    if (bytes > this.maxLine) {
      return Promise.resolve({type: "error", code: "line-too-long", message:
        `that line is ${bytes} bytes; the server takes at most ${this.maxLine}. Nothing was sent.`});
    }
    this.count += 1;
    const label = `c${this.count}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(label);
        resolve({type: "error", code: "timeout", message: "the server did not answer in time."});
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(label, {resolve, timer, bytes});
      this.ws.send(`@${label} ${line}`);
    });
  }

  // Every member of a room, each once: /who answers a page at a time (see walk).
  members(room) {
    return this.walk(`/who #${room}`, {members: "user"});
  }

  // Every item of a list the server answers a page at a time (/who #room, /myrooms,
  // /conversations, /stickers, /notifications): the reply of the last page, each list
  // field named in keys holding the items of every page, each once (keys names the
  // field that tells two apart: {rooms: "id"}); or the first error. A list of many
  // pages asks more than the server's command burst allows in a row: a rate-limited
  // page is asked again after the wait it names. An item added, removed or moved
  // between two pages moves the others across them (one twice, another never): a
  // walk whose count changed, or that found fewer, is walked again (LIST_WALKS at most).
  // Lists told apart by the same field are one list in parts (/myrooms' rooms, then its
  // past ones): an item found in two of them moved across the pages (a room left after
  // the first page), and the walk is walked again though the count came out right.
  // told names the count fields a page tells once (/notifications' dropped, told by
  // its newest page and then taken): each is summed over every page of every walk, so
  // that a walk walked again, or one that failed on a later page, loses none of it.
  async walk(command, keys, told = []) {
    let walked;
    const sums = Object.fromEntries(told.map((field) => [field, 0]));
    for (let walk = 0; walk < LIST_WALKS; walk += 1) {
      walked = await this.walkOnce(command, keys, sums);
      if (walked.type !== "ok" || walked.steady) break;
    }
    const {steady, ...reply} = walked;
    return {...reply, ...sums};
  }

  // One walk of a list's pages: the last page's reply with every item once, and
  // whether the list stood still meanwhile (steady); or the first error. Adds the
  // fields of sums that each page carries to them.
  async walkOnce(command, keys, sums = {}) {
    const seen = new Map(Object.keys(keys).map((field) => [field, new Map()]));
    const foundIn = new Map();  // `${key} ${value}`: the field the item was found in
    let moved = false;
    const totals = new Set();
    for (let page = 1; ; page += 1) {
      const reply = await this.command(`${command} ${page}`);
      if (reply.type === "error" && reply.code === "rate-limited") {
        await new Promise((resolve) => setTimeout(resolve, reply.retry_ms || 1000));
        page -= 1;
        continue;
      }
      if (reply.type !== "ok") return reply;
      for (const field of Object.keys(sums)) sums[field] += Number(reply[field]) || 0;
      for (const [field, key] of Object.entries(keys)) {
        for (const item of reply[field] || []) {
          if (!seen.get(field).has(item[key])) seen.get(field).set(item[key], item);
          const found = `${key} ${item[key]}`;
          if (!foundIn.has(found)) foundIn.set(found, field);
          else if (foundIn.get(found) !== field) moved = true;
        }
      }
      totals.add(reply.total);
      // A reply that names no pages is the only one.
      if (page >= (reply.pages || 1)) {
        const lists = Object.fromEntries([...seen].map(([field, items]) => [field, [...items.values()]]));
        const count = Object.values(lists).reduce((sum, items) => sum + items.length, 0);
        return {...reply, ...lists, steady: !moved && totals.size === 1 && totals.has(count)};
      }
    }
  }

  // -- logging in, and back in ----------------------------------------------------

  // Log in (or register) with a password; keep an API token for the tab, and a
  // resume token when the server gives one. The token may do all that this
  // password session may (a reconnected tab keeps its powers: moderation, admin).
  // It is a session token (--session): the tab's own, not a script's, so what the
  // tab makes with it (a webhook) lives as the account, not only until logging out.
  async login(name, password, register) {
    const refused = spacedLoginWord(name, password);
    if (refused) return {type: "error", code: "bad-arguments", message: refused};
    clearTimeout(this.timer);  // this login replaces a reconnection still waiting
    if (!this.ws) await this.open();
    const line = register ? `/register ${name} ${password}` : `/login ${name} ${password} --resume`;
    const reply = await this.command(line);
    if (reply.type !== "ok") return reply;
    // Only a logged-in connection comes back by itself: one that never logged in
    // (a wrong password, then the server's login timeout) just closes quietly.
    this.wanted = true;
    const tokenName = `web-${randomWord()}`;
    const made = await this.command(`/token create ${tokenName} all 7d --session`);
    const saved = {user: reply.user, admin: reply.admin, lastId: 0};
    if (made.type === "ok") {
      saved.token = made.token;
      saved.tokenName = made.name;
    }
    if (reply.resume) saved.resume = reply.resume;
    this.user = reply.user;
    this.save(saved);
    return reply;
  }

  // Log in again with what the tab kept: a resume token first, then the API token.
  async relogin() {
    const saved = this.saved;
    if (!saved || !saved.user) return {type: "error", code: "not-logged-in", message: ""};
    this.wanted = true;
    if (!this.ws) await this.open();
    let reply = {type: "error", code: "auth-failed", message: "no token kept."};
    if (saved.resume) {
      // Used up either way: an ok brings the next one.
      reply = await this.command(`/login --resume ${saved.resume}`);
      delete saved.resume;
    }
    if (reply.type !== "ok" && saved.token) {
      reply = await this.command(`/login ${saved.user} --token ${saved.token} --resume`);
    }
    if (reply.type === "ok") {
      this.user = reply.user;
      if (reply.resume) saved.resume = reply.resume;
      saved.admin = reply.admin;
      this.save(saved);
    }
    return reply;
  }

  // The tab's API token was refused (revoked by a duplicate of this tab that logged
  // out, say): make the tab one of its own over the logged-in connection.
  // One renewal at a time: requests refused together share it (each new token would
  // otherwise outlive the tab, unrevoked); one refused with a token since replaced
  // just tries again.
  renewToken(refused) {
    const saved = this.saved;
    if (!saved || !this.user) return Promise.resolve(false);
    if (saved.token !== refused) return Promise.resolve(true);
    if (!this.renewing) {
      this.renewing = (async () => {
        const made = await this.command(`/token create web-${randomWord()} all 7d --session`);
        if (made.type !== "ok") return false;
        const kept = this.saved || saved;
        kept.token = made.token;
        kept.tokenName = made.name;
        this.save(kept);
        return true;
      })().finally(() => { this.renewing = null; });
    }
    return this.renewing;
  }

  // Log out and forget the tab's tokens. Returns the name of the tab's API token when
  // the server could not revoke it (the connection is away): it is forgotten all the
  // same, and lives on until it expires unless revoked from another session.
  async logout() {
    const saved = this.saved;
    this.wanted = false;
    let unrevoked = null;
    if (saved && saved.tokenName) {
      const revoked = await this.command(`/token revoke ${saved.tokenName}`);
      if (revoked.type !== "ok") unrevoked = saved.tokenName;
    }
    await this.command("/logout");
    this.save(null);
    this.user = null;
    if (this.ws) this.ws.close();
    this.ws = null;
    return unrevoked;
  }

  // The highest message id seen: what /resume asks for after a reconnection.
  noteId(id) {
    const saved = this.saved;
    if (saved && typeof id === "number" && id > (saved.lastId || 0)) {
      saved.lastId = id;
      this.save(saved);
    }
  }

  // The server never issued the highest id seen (a database restored from an older
  // backup): its ids go on from ``id``, and so does the next /resume.
  restartIds(id) {
    const saved = this.saved;
    if (saved && typeof id === "number") {
      saved.lastId = id;
      this.save(saved);
    }
  }

  // -- reconnecting -----------------------------------------------------------------

  lost() {
    this.ws = null;
    for (const [label, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.resolve({type: "error", code: "not-connected", message: "the connection dropped."});
      this.pending.delete(label);
    }
    if (!this.wanted) return;
    this.status("reconnecting");
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    const wait = this.backoff / 2 + Math.random() * this.backoff / 2;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.timer = setTimeout(() => this.reconnect(), wait);
  }

  async reconnect() {
    if (this.ws) return;  // a login by hand opened one meanwhile
    try {
      await this.open();
    } catch (err) {
      this.schedule();
      return;
    }
    const reply = await this.relogin();
    if (reply.type !== "ok") {
      if (reply.code === "not-connected") {
        this.schedule();
        return;
      }
      this.wanted = false;
      this.save(null);
      this.status("logged-out", reply.message);
      return;
    }
    this.backoff = BACKOFF_FIRST_MS;
    this.status("reconnected", reply);
  }
}

// The login line is split at spaces: a name or a password holding one reached the
// server as more words ("too many arguments. Usage: /register <name> <password>",
// about a command nobody typed). Neither may hold one, so login says so in the
// server's words and sends nothing. (Spaces around the password were always
// dropped with the line's, so they still are.)
function spacedLoginWord(name, password) {
  const refused = spacedName(name);
  if (refused) return refused;
  if (/\s/.test(password.trim())) {
    return "a password has 4 to 72 bytes of printable text and no spaces.";
  }
  return null;
}

// A user name holding a space would be sent as two words of a command: the
// server's sentence for a name it refuses, or null.
export function spacedName(name) {
  if (!/\s/.test(name)) return null;
  return `invalid user name "${name}": use 1-24 characters, letters A-Z a-z, ` +
         "digits 0-9, '_' or '-'.";
}

function randomWord() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The HTTP API with the tab's token: history pages, uploads, file links.
export class Api {
  constructor(connection) {
    this.connection = connection;
    this.running = 0;
    this.waiting = [];
    this.links = new Map();  // file id -> {at, promise}: a signed link, for a while
  }

  // A request, a few at a time (a room of images asks for many links at once, and
  // the server counts every request against the user's command rate): one refused
  // with 429 waits its Retry-After and is tried again; one whose token is gone (the
  // tab was duplicated and the other one logged out) gets the tab a new token first.
  async call(method, path, body, headers = {}) {
    let renewed = false;
    for (let attempt = 0; ; attempt += 1) {
      const saved = this.connection.saved;
      if (!saved || !saved.token) throw new Error("no API token for this tab.");
      await this.slot();
      let answer;
      let value;
      try {
        answer = await fetch(`/api/v1${path}`, {
          method, body, headers: {Authorization: `Bearer ${saved.token}`, ...headers},
        });
        value = await answer.json().catch(() => ({}));
      } finally {
        this.release();  // not held while waiting to try again
      }
      if (answer.ok) return value;
      if (answer.status === 429 && attempt < API_RETRIES) {
        const wait = Number(answer.headers.get("Retry-After")) || 1;
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        continue;
      }
      if (answer.status === 401 && !renewed && await this.connection.renewToken(saved.token)) {
        renewed = true;
        continue;
      }
      const error = value.error || {};
      throw new Error(`${error.code || answer.status}: ${error.message || "request failed"}`);
    }
  }

  slot() {
    if (this.running < API_CONCURRENCY) {
      this.running += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release() {
    const next = this.waiting.shift();
    if (next) next();
    else this.running -= 1;
  }

  history(room, before, limit = 50) {
    const query = new URLSearchParams({limit: String(limit)});
    if (before) query.set("before", String(before));
    return this.call("GET", `/rooms/${encodeURIComponent(room)}/messages?${query}`);
  }

  // A file's details and signed download link; asked again only after a while (a
  // room's images are drawn again each time it is opened).
  file(id) {
    const kept = this.links.get(id);
    if (kept && Date.now() - kept.at < LINK_REUSE_MS) return kept.promise;
    const promise = this.call("GET", `/files/${id}`);
    this.links.set(id, {at: Date.now(), promise});
    promise.catch(() => {
      if (this.links.get(id)?.promise === promise) this.links.delete(id);
    });
    return promise;
  }

  upload(room, file) {
    const query = new URLSearchParams({name: uploadName(file.name)});
    return this.call("POST", `/rooms/${encodeURIComponent(room)}/files?${query}`, file,
                     {"Content-Type": file.type || "application/octet-stream"});
  }
}

// The longest file name the server takes, in characters (chatd.content.files).
const MAX_FILE_NAME = 128;

// A file's name as the server takes it: 1-128 printable characters, no / or \, no
// space at either end. A name the computer allowed and the server would refuse
// (a long one, above all) is shortened, its extension kept, rather than the
// upload failing with nothing to choose instead.
export function uploadName(name) {
  // Not printable to the server (Python's isprintable): controls, format and
  // unassigned characters, separators other than the space.
  const plain = name.replace(/[\p{C}\p{Zl}\p{Zp}\/\\]|(?! )\p{Zs}/gu, "_").trim();
  if (!plain || plain === "." || plain === "..") return "file";
  const chars = Array.from(plain);  // characters, as the server counts them
  if (chars.length <= MAX_FILE_NAME) return plain;
  const dot = plain.lastIndexOf(".");
  const extension = dot > 0 && plain.length - dot <= 16 ? Array.from(plain.slice(dot)) : [];
  const stem = chars.slice(0, MAX_FILE_NAME - extension.length).join("").trimEnd();
  return stem + extension.join("");
}

// An element with text content only: the client never parses HTML it was sent.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Light or dark; "default" follows the system's preference.
export function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === "light" || theme === "dark") root.dataset.theme = theme;
  else delete root.dataset.theme;
}

export function currentTheme() {
  const chosen = document.documentElement.dataset.theme;
  if (chosen) return chosen;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function clockTime(ts) {
  const when = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
  if (Number.isNaN(when.getTime())) return "";
  return when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
}
