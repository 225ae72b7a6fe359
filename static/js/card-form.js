// The integrated card form: card details go to the PSP's token endpoint from
// the browser; only the one-use token is posted to the shop.
(function () {
  var form = document.getElementById("card-form");
  if (!form || !window.PSPSim) { return; }
  var error = form.querySelector("[data-card-error]");
  var button = form.querySelector("button[type=submit]");
  var busy = false;
  function field(name) { return form.querySelector("[data-card=" + name + "]").value.trim(); }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    error.textContent = "";
    var expiry = field("expiry").split("/");
    var month = parseInt(expiry[0], 10), year = parseInt(expiry[1], 10);
    if (year < 100) { year += 2000; }
    busy = true; button.disabled = true;
    window.PSPSim.createToken(form.dataset.publicKey, form.dataset.apiBase, {
      number: field("number").replace(/\s+/g, ""), exp_month: month, exp_year: year, cvc: field("cvc")
    }).then(function (token) {
      form.querySelector("input[name=card_token]").value = token.id;
      form.querySelectorAll("[data-card]").forEach(function (input) { input.value = ""; });
      HTMLFormElement.prototype.submit.call(form);
    }).catch(function (err) {
      error.textContent = (err && err.message) || "Your card could not be checked. Please try again.";
      busy = false; button.disabled = false;
    });
  });
})();
