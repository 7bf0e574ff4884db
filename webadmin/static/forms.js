// A form page that failed validation: move the focus to its error summary (macros.html summary), so
// keyboard and screen-reader users start from the list of problems. The page works without it.
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
