// A form sent back with errors: move the focus to the summary of what to
// correct, so keyboard and screen-reader users start there.
(function () {
  var summary = document.querySelector("[data-error-summary]");
  if (summary) { summary.focus(); }
})();
