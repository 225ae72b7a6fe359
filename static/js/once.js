// Disable a form's submit button once it is sent, so a double click sends one
// request. The server does not rely on this: the form's one-time token does.
document.querySelectorAll("form").forEach(function (form) {
  form.addEventListener("submit", function () {
    form.querySelectorAll("button[data-once]").forEach(function (button) {
      window.setTimeout(function () { button.disabled = true; }, 0);
      button.setAttribute("aria-busy", "true");
    });
  });
});
