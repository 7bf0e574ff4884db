// The staff desk (webadmin/blueprints/desk.py): a desk token for the user's own extension from
// /desk/token, the CTI JSON API's event WebSocket (calls, colleagues' presence) and its REST calls.
const $ = (id) => document.getElementById(id);
const root = $("desk");
const me = root.dataset.extension;
const T = JSON.parse($("desk-text").textContent);
const fmt = (text, values) => text.replace(/%\((\w+)\)s/g, (_, key) => values[key] ?? "");
const calls = new Map(); // call id -> {call, calling, called, connections}
const known = new Map(); // number -> {name, company, crm}
let token = "", api = root.dataset.api, eventsUrl = root.dataset.events;
let refresh = null, ping = null, retry = 0, popupCall = null;

function setState(name, text) {
  const el = $("desk-state");
  el.dataset.state = name;
  el.textContent = text || T[name];
  el.className = "banner " + (name === "ready" ? "banner-success" : name === "connecting" ? "banner-info" : "banner-warning");
}

function showError(el, error) {
  el.textContent = fmt(T.refused, { why: error.message || String(error) });
  el.hidden = false;
  setTimeout(() => { el.hidden = true; }, 8000);
}

async function getToken() {
  const csrf = $("desk-csrf").querySelector("input[name=csrf_token]").value;
  const response = await fetch("token", { method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || String(response.status));
  token = body.token;
  api = body.api;
  eventsUrl = body.events;
  clearTimeout(refresh);
  refresh = setTimeout(() => getToken().catch(() => {}), Math.max(30, body.expires - Date.now() / 1000 - 60) * 1000);
}

async function rest(method, path, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const response = await fetch(api + "/api/v1" + path, {
      method, body: body ? JSON.stringify(body) : undefined,
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
    });
    if (response.status === 401 && attempt === 0) { await getToken(); continue; }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || String(response.status));
    return data;
  }
  throw new Error("401");
}

const act = (path, body, method = "POST") => rest(method, path, body).catch((e) => showError($("desk-error"), e));

// -- presence and directory ------------------------------------------------------------------------
const BADGES = { idle: "badge-ok", ringing: "badge-warn", busy: "badge-bad", dnd: "badge-muted" };
function setPresence(device, presence) {
  const item = document.querySelector(`#desk-directory li[data-extension="${CSS.escape(device)}"]`);
  const badge = item && item.querySelector(".desk-presence");
  if (!badge) return;
  badge.dataset.presence = presence;
  badge.textContent = T[presence] || presence;
  badge.className = "desk-presence badge " + (BADGES[presence] || "badge-muted");
}

$("desk-filter").addEventListener("input", (e) => {
  const q = e.target.value.trim().toLowerCase();
  for (const li of document.querySelectorAll("#desk-directory li[data-extension]")) {
    li.hidden = q !== "" && !(li.dataset.name.toLowerCase().includes(q) || li.dataset.extension.includes(q));
  }
});

document.addEventListener("click", (e) => {
  const button = e.target.closest(".desk-dial");
  if (button) act("/calls", { to: button.dataset.number });
});
$("desk-dial").addEventListener("submit", (e) => {
  e.preventDefault();
  const number = $("desk-number").value.trim();
  if (number) act("/calls", { to: number });
});

// -- the user's calls ------------------------------------------------------------------------------
const other = (c) => (c.calling === me ? c.called : c.calling) || "?";
const label = (number) => (known.get(number) || {}).name || number;
const STATES = { alerting: "ringing", initiated: "ringing", connected: "connected", hold: "held" };

function button(text, onClick, kind = "button-secondary") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `button button-small ${kind}`;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function renderCalls() {
  const list = $("desk-call-list");
  list.replaceChildren();
  const mine = [...calls.values()].filter((c) => c.connections[me]);
  const active = mine.find((c) => c.connections[me] === "connected");
  for (const c of mine) {
    const state = c.connections[me];
    const li = document.createElement("li");
    li.dataset.call = c.call;
    li.dataset.state = state;
    const who = document.createElement("span");
    who.className = "desk-who";
    who.textContent = `${label(other(c))} · ${T[STATES[state]] || state}`;
    li.append(who);
    const path = `/calls/${encodeURIComponent(c.call)}`;
    if (state === "alerting") li.append(button(T.answer, () => act(path + "/answer", {}), ""));
    if (state === "connected") {
      li.append(button(T.hold, () => act(path + "/hold", {})));
      const input = document.createElement("input");
      input.type = "tel";
      input.maxLength = 32;
      input.placeholder = T.transfer_to;
      input.setAttribute("aria-label", T.transfer_to);
      input.className = "desk-transfer-to";
      li.append(input,
        button(T.transfer, () => input.value && act(path + "/transfer", { to: input.value.trim() })),
        button(T.consult, () => input.value && act(path + "/consult", { to: input.value.trim() })));
    }
    if (state === "hold") {
      li.append(button(T.retrieve, () => act(path + "/retrieve", {})));
      if (active) {
        li.append(button(T.complete, () => act(path + "/transfer", { with: active.call }), ""),
          button(T.conference, () => act(path + "/conference", { with: active.call }), "desk-conference"));
      }
    }
    li.append(button(T.hangup, () => act(path + "/hangup", {}), "button-danger"));
    list.append(li);
  }
  if (popupCall && !(calls.get(popupCall) && calls.get(popupCall).connections[me] === "alerting")) hidePopup();
}

// -- incoming-call pop-up --------------------------------------------------------------------------
async function lookup(number) {
  if (known.has(number)) return known.get(number);
  const colleague = document.querySelector(`#desk-directory li[data-extension="${CSS.escape(number)}"]`);
  let found = { name: colleague ? colleague.dataset.name : "", company: "", crm: "" };
  try {
    const response = await fetch("caller?number=" + encodeURIComponent(number), { credentials: "same-origin" });
    if (response.ok) found = { ...found, ...(await response.json()) };
    if (!found.name && colleague) found.name = colleague.dataset.name;
  } catch (e) { /* the name from the directory is enough */ }
  known.set(number, found);
  return found;
}

async function showPopup(c) {
  popupCall = c.call;
  const number = c.calling;
  $("desk-popup-number").textContent = number;
  $("desk-popup-name").textContent = label(number);
  $("desk-popup-error").hidden = true;
  $("desk-popup").hidden = false;
  const found = await lookup(number);
  if (popupCall !== c.call) return;
  $("desk-popup-name").textContent = found.name || number;
  $("desk-popup-company").textContent = found.company || "";
  const crm = $("desk-popup-crm");
  crm.hidden = !found.crm;
  if (found.crm) crm.href = found.crm;
  renderCalls();
  if ("Notification" in window && Notification.permission === "granted") {
    new Notification(fmt(T.notify_title, { who: found.name || number }), { body: number, tag: c.call });
  }
}

function hidePopup() {
  popupCall = null;
  $("desk-popup").hidden = true;
}

$("desk-popup-close").addEventListener("click", hidePopup);
$("desk-popup-answer").addEventListener("click", () => {
  if (popupCall) rest("POST", `/calls/${encodeURIComponent(popupCall)}/answer`, {}).catch((e) => showError($("desk-popup-error"), e));
});

if ("Notification" in window && Notification.permission === "default") {
  $("desk-notify").hidden = false;
  $("desk-notify").addEventListener("click", () => Notification.requestPermission().then(() => { $("desk-notify").hidden = true; }));
}

// -- forwarding and DND ------------------------------------------------------------------------------
const settingsSaved = () => { $("desk-settings-state").textContent = T.saved; };
$("desk-dnd").addEventListener("change", (e) => {
  rest("PUT", `/devices/${me}/dnd`, { on: e.target.checked }).then(settingsSaved)
    .catch((err) => { e.target.checked = !e.target.checked; showError($("desk-error"), err); });
});
$("desk-forward").addEventListener("submit", (e) => {
  e.preventDefault();
  rest("PUT", `/devices/${me}/forwarding`, { kind: "always", to: $("desk-forward-to").value.trim() })
    .then(settingsSaved).catch((err) => showError($("desk-error"), err));
});

// -- the event stream ------------------------------------------------------------------------------
function handle(msg) {
  if (msg.type === "hello") {
    retry = 0;
    setState("ready");
    calls.clear();
    for (const c of msg.calls) calls.set(c.call, c);
    for (const [device, presence] of Object.entries(msg.presence)) setPresence(device, presence);
    renderCalls();
  } else if (msg.type === "presence") {
    setPresence(msg.device, msg.presence);
  } else if (msg.type === "call") {
    if (!msg.connections[me]) calls.delete(msg.call);
    else calls.set(msg.call, msg);
    if (msg.event === "delivered" && msg.device === me && msg.calling !== me) showPopup(msg);
    renderCalls();
  } else if (msg.type === "dnd" && msg.device === me) {
    $("desk-dnd").checked = msg.on;
  } else if (msg.type === "forwarding" && msg.device === me && msg.kind === "always") {
    $("desk-forward-to").value = msg.to;
  }
}

function connect() {
  const ws = new WebSocket(eventsUrl);
  ws.onopen = () => ws.send(JSON.stringify({ token }));
  ws.onmessage = (m) => handle(JSON.parse(m.data));
  ws.onclose = () => {
    clearInterval(ping);
    setState("offline");
    setTimeout(start, Math.min(30, 2 ** retry++) * 1000);
  };
  ping = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}'); }, 30000);
}

async function start() {
  try {
    await getToken();
    connect();
  } catch (e) {
    setState("no_token", e.message);
    setTimeout(start, Math.min(60, 2 ** retry++) * 1000);
  }
}

setState("connecting");
start();
