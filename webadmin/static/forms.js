// Small enhancements of the server-rendered pages (each page works without them):
// - a form page that failed validation: the focus moves to its error summary (macros.html summary), so
//   keyboard and screen-reader users start from the list of problems (the failed form's own, on a page of
//   several forms: macros.html form_open);
// - [data-print] buttons (hidden without this script) print the page (the user setup sheet).
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
    // a page re-shown on its failed form (an action with #form-...): the browser's move to that fragment,
    // once the page is loaded, takes the focus away; give it back to the summary, inside that form
    window.addEventListener("load", function () { summary.focus(); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
