// Small enhancements of the server-rendered pages (each page works without them):
// - a form page that failed validation: the focus moves to its error summary (macros.html summary), so
//   keyboard and screen-reader users start from the list of problems;
// - [data-print] buttons (hidden without this script) print the page (the user setup sheet).
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
