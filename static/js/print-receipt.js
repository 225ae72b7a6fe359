// The receipt's "Print" button (a script file, not an inline handler).
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.addEventListener("click", function () { window.print(); });
});
