// Wallboard: the server-rendered figures kept current by server-sent events (/callcentre/events); when the
// stream cannot be opened (the box allows only a few at once) it polls wallboard.json every second. The
// page is complete without this script.
(function () {
  "use strict";
  var root = document.getElementById("wallboard");
  if (!root) { return; }
  var states = JSON.parse(root.getAttribute("data-states") || "{}");
  var shape = null;
  var clockFormat = null;
  try {
    clockFormat = new Intl.DateTimeFormat(root.getAttribute("data-lang") || undefined,
      { timeZone: root.getAttribute("data-tz") || undefined, hour: "numeric", minute: "2-digit", second: "2-digit" });
  } catch (e) { clockFormat = null; }  // an unknown zone: the server-rendered time stays
  function clock(seconds) { return clockFormat.format(new Date(seconds * 1000)); }
  function field(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }
  function show(q, f, value) {
    var el = root.querySelector('[data-q="' + q + '"][data-f="' + f + '"]');
    if (el) { el.textContent = value; }
  }
  function apply(board) {
    var now = board.queues.map(function (q) { return q.name; }).join() + "|" +
              board.agents.map(function (a) { return a.extension; }).join();
    if (shape === null) { shape = now; }
    var calls = (board.calls || []).map(function (c) { return c.agent + (c.supervised ? "*" : ""); }).join();
    var shown = root.querySelector("[data-calls]");
    if (now !== shape || (shown && shown.getAttribute("data-calls") !== calls)) {
      window.location.reload();  // queues or agents configured anew, or calls began or ended: rows anew
      return;
    }
    board.queues.forEach(function (q) {
      ["waiting", "callbacks_waiting", "answered", "abandoned", "chats_waiting", "chats_active"].forEach(
        function (f) { show(q.name, f, q[f]); });
      show(q.name, "longest_wait", Math.round(q.longest_wait));
      show(q.name, "chat_longest_wait", Math.round(q.chat_longest_wait || 0));
      show(q.name, "service_level", q.service_level === null ? "\u2014" : Math.round(q.service_level) + " %");
      Object.keys(q.agents).forEach(function (s) { show(q.name, "agents." + s, field(q, "agents." + s)); });
      var waiting = root.querySelector('[data-q="' + q.name + '"][data-f="waiting"]');
      if (waiting) { waiting.setAttribute("fill", q.waiting > 0 ? "#b42318" : "#101828"); }
      var chats = root.querySelector('[data-q="' + q.name + '"][data-f="chats_waiting"]');
      if (chats) { chats.setAttribute("fill", q.chats_waiting > 0 ? "#b42318" : "#101828"); }
    });
    board.agents.forEach(function (a) {
      var cell = root.querySelector('[data-a="' + a.extension + '"][data-f="status"]');
      if (cell) { cell.textContent = (states[a.status] || a.status) + (a.reason ? " (" + a.reason + ")" : ""); }
      var since = root.querySelector('[data-a="' + a.extension + '"][data-f="since"]');
      if (since && clockFormat) { since.textContent = clock(a.since); }
      var calls = root.querySelector('[data-a="' + a.extension + '"][data-f="calls"]');
      if (calls) { calls.textContent = a.calls; }
    });
  }
  function poll() {
    fetch(root.getAttribute("data-json"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (board) { if (board) { apply(board); } })
      .catch(function () {})
      .then(function () { window.setTimeout(poll, 1000); });
  }
  if (!window.EventSource) { poll(); return; }
  var opened = false;
  var source = new EventSource(root.getAttribute("data-events"));
  source.addEventListener("open", function () { opened = true; });
  source.addEventListener("board", function (e) { apply(JSON.parse(e.data)); });
  source.addEventListener("error", function () {
    if (!opened) { source.close(); poll(); }  // refused (503): poll instead; otherwise it reconnects itself
    opened = false;
  });
})();
