// The browser phone (webadmin/blueprints/webphone.py): SIP.js over the PBX's SIP WebSocket, with the
// signed-in user's own SIP account fetched from /webphone/credentials (never typed, never stored).
import { Inviter, Registerer, RegistererState, SessionState, UserAgent } from "./vendor/sip.js/index.js";

const $ = (id) => document.getElementById(id);
const TEXT = JSON.parse($("phone-text").textContent);
const RECONNECT_MAX_SECONDS = 30;
const say = (key, values = {}) => TEXT[key].replace(/%\((\w+)\)s/g, (_, name) => values[name] ?? "");

let ua = null;
let registerer = null;
let session = null;      // the call in progress (ours or answered)
let incoming = null;     // an invitation ringing, not yet answered
let first = null;        // attended transfer: the call on hold while `session` consults the target
let held = false;
let muted = false;
let online = false;
let retry = 0;
let retryTimer = null;

function state(key, kind = "info", values = {}) {
  const line = $("phone-state");
  line.textContent = say(key, values);
  line.className = `banner banner-${kind}`;
  line.dataset.state = key;
}

function controls() {
  const inCall = session !== null && session.state === SessionState.Established;
  $("phone-call").disabled = !online || session !== null;
  $("phone-hangup").disabled = session === null;
  $("phone-hold").disabled = !inCall;
  $("phone-mute").disabled = !inCall;
  $("phone-transfer").disabled = !inCall || first !== null;
  $("phone-consult").disabled = !inCall || first !== null;
  $("phone-complete").disabled = !inCall || first === null;
  $("phone-complete").hidden = first === null;
  $("phone-hold").textContent = say(held ? "resume" : "hold");
  $("phone-mute").textContent = say(muted ? "unmute" : "mute");
  $("phone-incoming").hidden = incoming === null;
}

function log(direction, who, outcome) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} · ${say(direction)} · ${who} · ${outcome}`;
  $("phone-log").prepend(item);
}

function peerName(s) {
  const id = s.remoteIdentity;
  return id.displayName ? `${id.displayName} (${id.uri.user})` : id.uri.user;
}

async function credentials() {
  const token = $("phone-csrf").querySelector("input[name=csrf_token]").value;
  const response = await fetch("credentials", { method: "POST", headers: { "X-CSRF-Token": token },
                                                credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`credentials: ${response.status}`);
  return response.json();
}

// -- media ------------------------------------------------------------------------------------------
function mediaOptions() {
  const mic = $("phone-mic").value;
  return { constraints: { audio: mic ? { deviceId: { exact: mic } } : true, video: false } };
}

async function microphoneAllowed() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia(mediaOptions().constraints);
    stream.getTracks().forEach((track) => track.stop());
    await listDevices();
    return true;
  } catch (error) {
    state("no_mic", "error");
    return false;
  }
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$("phone-mic"), "audioinput"], [$("phone-speaker"), "audiooutput"]]) {
    const chosen = select.value;
    select.length = 1;
    for (const device of devices.filter((d) => d.kind === kind && d.deviceId)) {
      select.add(new Option(device.label || device.deviceId.slice(0, 8), device.deviceId));
    }
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  }
}

function playRemote(s) {
  const audio = $("phone-audio");
  audio.srcObject = s.sessionDescriptionHandler.remoteMediaStream;
  const speaker = $("phone-speaker").value;
  if (speaker && audio.setSinkId) audio.setSinkId(speaker).catch(() => {});
  audio.play().catch(() => {});
}

// -- calls ------------------------------------------------------------------------------------------
function follow(s, direction) {
  let answered = false;
  s.stateChange.addListener((next) => {
    if (next === SessionState.Established) {
      answered = true;
      held = muted = false;
      playRemote(s);
      if (first !== null) state("consulting", "success", { who: peerName(s), held: peerName(first) });
      else state("in_call", "success", { who: peerName(s) });
    } else if (next === SessionState.Terminated) {
      if (incoming === s) incoming = null;
      if (first === s) first = null;  // the held party left during the consultation
      muted = false;
      const outcome = s.transferredTo ? say("transferred", { who: s.transferredTo }) : say(answered ? "answered" : "missed");
      log(direction, peerName(s), outcome);
      if (session === s && first !== null && !first.transferredTo) {
        session = first;  // the consultation ended: back to the held call, still on hold
        first = null;
        held = true;
        state("on_hold", "warning", { who: peerName(session) });
      } else if (session === s || session === null) {
        session = null;
        held = false;
        $("phone-audio").srcObject = null;
        state(online ? "registered" : "offline", online ? "success" : "warning");
      }
    }
    controls();
  });
}

async function call(number, consulting = false) {
  if (!number || (session !== null && !consulting) || !(await microphoneAllowed())) return;
  const target = UserAgent.makeURI(`sip:${number}@${ua.configuration.uri.host}`);
  if (!target) return;
  const inviter = new Inviter(ua, target, { sessionDescriptionHandlerOptions: mediaOptions() });
  session = inviter;
  follow(inviter, "log_out");
  state("ringing");
  controls();
  inviter.invite().catch(() => state("failed", "error"));
}

function onInvite(invitation) {
  if (session !== null || incoming !== null) {
    invitation.reject({ statusCode: 486 });
    return;
  }
  incoming = invitation;
  follow(invitation, "log_in");
  $("phone-caller").textContent = say("incoming", { who: peerName(invitation) });
  invitation.progress().catch(() => {});
  controls();
}

async function answer() {
  const invitation = incoming;
  if (invitation === null || !(await microphoneAllowed())) return;
  incoming = null;
  session = invitation;
  controls();
  invitation.accept({ sessionDescriptionHandlerOptions: mediaOptions() }).catch(() => state("failed", "error"));
}

function decline() {
  if (incoming !== null) incoming.reject({ statusCode: 603 }).catch(() => {});
}

function hangup() {
  const s = session;
  if (s === null) return;
  if (s.state === SessionState.Established) s.bye().catch(() => {});
  else if (s instanceof Inviter) s.cancel().catch(() => {});
  else s.reject().catch(() => {});
}

async function toggleHold() {
  if (session === null) return;
  const want = !held;
  session.sessionDescriptionHandlerOptionsReInvite = { hold: want };
  try {
    await session.invite();
    held = want;
    state(held ? "on_hold" : "in_call", held ? "warning" : "success", { who: peerName(session) });
  } catch (error) { /* the re-INVITE was refused: the call stays as it was */ }
  controls();
}

function toggleMute() {
  if (session === null) return;
  muted = !muted;
  const pc = session.sessionDescriptionHandler.peerConnection;
  pc.getSenders().forEach((sender) => { if (sender.track) sender.track.enabled = !muted; });
  controls();
}

function transfer() {
  const number = $("phone-transfer-to").value.trim();
  const target = number && UserAgent.makeURI(`sip:${number}@${ua.configuration.uri.host}`);
  if (session === null || !target) return;
  const transferred = session;
  transferred.refer(target, { requestDelegate: { onAccept: () => {
    transferred.transferredTo = number;  // the box connects the other party to `number` and ends our call
  } } }).catch(() => {});
}

// attended transfer: hold the call, talk to the target, then join the two (REFER with Replaces)
async function consult() {
  const number = $("phone-transfer-to").value.trim();
  if (!number || session === null || first !== null || session.state !== SessionState.Established) return;
  if (!held) await toggleHold();
  if (!held) return;  // the hold was refused: no consultation
  first = session;
  session = null;
  held = false;
  await call(number, true);
  if (session === null) {  // no call placed (microphone refused): back to the held call
    session = first;
    first = null;
    held = true;
  }
  state("consulting", "info", { who: number, held: peerName(first ?? session) });
  controls();
}

function completeTransfer() {
  const held_call = first;
  const target = session;
  if (held_call === null || target === null || target.state !== SessionState.Established) return;
  held_call.refer(target, { requestDelegate: { onAccept: () => {
    // the box joins the two parties and ends both our calls
    held_call.transferredTo = peerName(target);
    target.transferredTo = peerName(held_call);
  } } }).catch(() => {});
}

function key(digit) {
  if (session !== null && session.state === SessionState.Established) {
    // RFC 4733 events through the call's audio; queued after the tones still to play (not replacing them)
    const sender = session.sessionDescriptionHandler.peerConnection.getSenders().find((s) => s.dtmf);
    if (sender) sender.dtmf.insertDTMF(sender.dtmf.toneBuffer + digit, 100, 70);
  } else {
    $("phone-number").value += digit;
  }
}

// -- registration, and again after the network comes back -------------------------------------------
function reconnectLater() {
  if (retryTimer !== null) return;
  const delay = Math.min(RECONNECT_MAX_SECONDS, 2 ** retry++);
  retryTimer = setTimeout(async () => {
    retryTimer = null;
    try {
      await ua.reconnect();
    } catch (error) {
      reconnectLater();
    }
  }, delay * 1000);
}

function register() {
  // each (re-)registration's answer says where the phone stands: also after a reconnection, when the
  // registerer's own state never left "registered"
  registerer.register({ requestDelegate: {
    onAccept: () => { online = true; state("registered", "success"); controls(); },
    onReject: () => { online = false; state("refused", "error"); controls(); },
  } }).catch(() => {});
}

async function start() {
  let account;
  try {
    account = await credentials();
  } catch (error) {
    state("no_credentials", "error");
    return;
  }
  ua = new UserAgent({
    uri: UserAgent.makeURI(account.uri),
    authorizationUsername: account.username,
    authorizationPassword: account.password,
    displayName: account.display_name,
    transportOptions: { server: account.ws, traceSip: false },
    sessionDescriptionHandlerFactoryOptions: { peerConnectionConfiguration: {
      iceServers: account.ice_servers || [],
      // tests force media through the box's TURN server (window.webphoneIcePolicy = "relay")
      iceTransportPolicy: window.webphoneIcePolicy === "relay" ? "relay" : "all",
    } },
    logLevel: "error",
    delegate: {
      onInvite,
      onConnect: () => { retry = 0; register(); },
      onDisconnect: (error) => {
        online = false;
        controls();
        if (error) { state("offline", "warning"); reconnectLater(); }
      },
    },
  });
  account.password = null;
  registerer = new Registerer(ua, { expires: 600 });
  registerer.stateChange.addListener((next) => {
    if (next !== RegistererState.Registered && online) {
      online = false;
      state(ua.isConnected() ? "unregistered" : "offline", "warning");
      controls();
    }
  });
  window.webphone = { ua, registerer, get session() { return session; } };  // tests, the browser console
  try {
    await ua.start();
  } catch (error) {
    state("offline", "warning");
    reconnectLater();
  }
}

$("phone-call").addEventListener("click", () => call($("phone-number").value.trim()));
$("phone-hangup").addEventListener("click", hangup);
$("phone-answer").addEventListener("click", answer);
$("phone-decline").addEventListener("click", decline);
$("phone-hold").addEventListener("click", toggleHold);
$("phone-mute").addEventListener("click", toggleMute);
$("phone-transfer").addEventListener("click", transfer);
$("phone-consult").addEventListener("click", consult);
$("phone-complete").addEventListener("click", completeTransfer);
$("phone-dialpad").addEventListener("click", (event) => { if (event.target.dataset.key) key(event.target.dataset.key); });
$("phone-speaker").addEventListener("change", () => {
  const audio = $("phone-audio");
  if (audio.setSinkId) audio.setSinkId($("phone-speaker").value).catch(() => {});
});
navigator.mediaDevices?.addEventListener?.("devicechange", () => listDevices().catch(() => {}));
window.addEventListener("online", () => { if (ua && !ua.isConnected()) reconnectLater(); });
window.addEventListener("beforeunload", () => { if (registerer && online) registerer.unregister().catch(() => {}); });
controls();
start();
