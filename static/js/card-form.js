// The integrated card form: card details go to the PSP's token endpoint from
// the browser; only the one-use token is posted to the shop. Every field is
// checked at once; each error sits under its field (aria-invalid +
// aria-describedby) and a summary above the fields takes the focus.
(function () {
  var form = document.getElementById("card-form");
  if (!form || !window.PSPSim) { return; }
  var summary = form.querySelector("[data-card-error]");
  var button = form.querySelector("button[type=submit]");
  var busy = false;
  var LABELS = {number: "Card number", expiry: "Expiry", cvc: "CVC"};
  // The PSP names the parameter it refuses; these are our fields for them.
  var PARAM_FIELD = {number: "number", exp_month: "expiry", exp_year: "expiry", expiry: "expiry", cvc: "cvc"};

  function input(name) { return form.querySelector("[data-card=" + name + "]"); }
  function value(name) { return input(name).value.trim(); }

  function luhn(digits) {
    var total = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = parseInt(digits.charAt(digits.length - 1 - i), 10);
      if (i % 2 === 1) { d *= 2; if (d > 9) { d -= 9; } }
      total += d;
    }
    return total % 10 === 0;
  }

  function check() {
    var errors = {};
    var number = value("number").replace(/[\s-]+/g, "");
    if (!number) { errors.number = "Enter your card number."; }
    else if (!/^\d{12,19}$/.test(number)) { errors.number = "A card number has 12 to 19 digits."; }
    else if (!luhn(number)) { errors.number = "This card number is not valid; check the digits."; }
    var expiry = value("expiry").replace(/\s+/g, "");
    var match = /^(\d{1,2})\/(\d{2}|\d{4})$/.exec(expiry);
    var month = 0, year = 0;
    if (!expiry) { errors.expiry = "Enter the expiry date as MM/YY."; }
    else if (!match) { errors.expiry = "Write the expiry date as MM/YY, for example 08/29."; }
    else {
      month = parseInt(match[1], 10); year = parseInt(match[2], 10);
      if (year < 100) { year += 2000; }
      var now = new Date();
      if (month < 1 || month > 12) { errors.expiry = "The month must be 01 to 12."; }
      else if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) {
        errors.expiry = "This card has expired.";
      }
    }
    var cvc = value("cvc");
    if (!cvc) { errors.cvc = "Enter the 3 or 4 digits on the back of your card."; }
    else if (!/^\d{3,4}$/.test(cvc)) { errors.cvc = "The CVC is 3 or 4 digits."; }
    return {errors: errors, card: {number: number, exp_month: month, exp_year: year, cvc: cvc}};
  }

  function show(errors, general) {
    var names = [];
    ["number", "expiry", "cvc"].forEach(function (name) {
      var field = input(name), slot = form.querySelector("[data-error-for=" + name + "]");
      slot.textContent = errors[name] || "";
      if (errors[name]) { field.setAttribute("aria-invalid", "true"); names.push(name); }
      else { field.removeAttribute("aria-invalid"); }
      field.closest(".card-field").classList.toggle("has-error", !!errors[name]);
    });
    if (general) { summary.textContent = general; }
    else if (names.length) {
      summary.textContent = (names.length === 1 ? "Please correct one field: " : "Please correct " + names.length
        + " fields: ") + names.map(function (n) { return LABELS[n]; }).join(", ") + ".";
    } else { summary.textContent = ""; }
    if (general || names.length) { summary.focus(); }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    var checked = check();
    if (Object.keys(checked.errors).length) { show(checked.errors); return; }
    show({});
    busy = true; button.disabled = true; button.setAttribute("aria-busy", "true");
    window.PSPSim.createToken(form.dataset.publicKey, form.dataset.apiBase, checked.card).then(function (token) {
      form.querySelector("input[name=card_token]").value = token.id;
      form.querySelectorAll("[data-card]").forEach(function (field) { field.value = ""; });
      HTMLFormElement.prototype.submit.call(form);
    }).catch(function (err) {
      var field = err && PARAM_FIELD[err.param];
      var errors = {};
      if (field) { errors[field] = err.message; show(errors); }
      else { show({}, "Your card could not be checked just now. Please try again."); }
      busy = false; button.disabled = false; button.removeAttribute("aria-busy");
    });
  });
})();
