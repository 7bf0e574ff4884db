// Dashboard refresh: every 10 s, the state cards and the calls chart from /dashboard.json (the page is
// complete without this script; it only keeps it current).
(function () {
  "use strict";
  var grid = document.getElementById("office-state");
  if (!grid || !window.fetch) { return; }
  var badges = { ok: "badge-ok", warn: "badge-warn", bad: "badge-bad" };
  function apply(data) {
    Object.keys(data.cards).forEach(function (key) {
      var section = document.getElementById("state-" + key);
      if (!section) { return; }
      var card = data.cards[key];
      var value = section.querySelector("[data-part=value]");
      value.textContent = card.value;
      value.className = "badge " + (badges[card.state] || "badge-muted");
      section.querySelector("[data-part=detail]").textContent = card.detail;
      var chart = section.querySelector("[data-part=chart]");
      if (chart) { chart.innerHTML = data.chart; }  // our own server's markup, escaped there
    });
  }
  function poll() {
    fetch(grid.getAttribute("data-refresh"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () {})  // offline for a moment: the next poll tries again
      .then(function () { window.setTimeout(poll, 10000); });
  }
  window.setTimeout(poll, 10000);
})();
