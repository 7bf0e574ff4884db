/* Text chat pages (public chat, agent panel): new messages appear without a reload. Each ol.chat-log polls its
   data-poll address for messages after the last it shows and appends them as text (never as markup); when the
   chat's state changes, or an element with data-watch reports a new signature (chats offered or taken), the
   page reloads unless a message is being typed. Without JavaScript the pages work by reloading. */
(function () {
  "use strict";
  var PERIOD = 1000, MAX_FAILURES = 30;

  function typing() {
    return Array.prototype.some.call(document.querySelectorAll("textarea"), function (t) { return t.value.trim(); });
  }

  function every(fn) {
    var failures = 0;
    function tick() {
      fn().then(function (again) { failures = 0; if (again) setTimeout(tick, PERIOD); },
                function () { if (++failures < MAX_FAILURES) setTimeout(tick, PERIOD * 2); });
    }
    setTimeout(tick, PERIOD);
  }

  function getJson(url) {
    return fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.json().then(function (data) { return {ok: r.ok, data: data}; }); });
  }

  function follow(log) {
    var after = Number(log.dataset.after) || 0;
    every(function () {
      return getJson(log.dataset.poll + "?after=" + after).then(function (res) {
        (res.data.messages || []).forEach(function (m) {
          if (m.n <= after) return;
          var li = document.createElement("li"), who = document.createElement("b"), text = document.createElement("span");
          li.className = "chat-" + m.who;
          who.textContent = (m.who === log.dataset.me ? log.dataset.you : log.dataset.other) + ": ";
          text.textContent = m.text;
          li.append(who, text);
          log.append(li);
          after = m.n;
        });
        if (res.data.state !== log.dataset.state) {
          if (!typing()) { location.reload(); return false; }
        }
        return res.ok;
      });
    });
  }

  function watch(el) {
    every(function () {
      return getJson(el.dataset.watch).then(function (res) {
        if (res.ok && res.data.sig !== el.dataset.sig && !typing()) { location.reload(); return false; }
        return res.ok;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("ol.chat-log[data-poll]").forEach(follow);
    document.querySelectorAll("[data-watch]").forEach(watch);
  });
})();
