// The integrated card form with Stripe: the card fields are Stripe's card
// element (its own iframe); Stripe.js turns them into a PaymentMethod id, the
// only thing posted to the shop. localstripe's stand-in for Stripe.js (tests
// only) has no createPaymentMethod: there a card token is posted instead, and
// the shop asks Stripe to turn it into a PaymentMethod.
(function () {
  var form = document.getElementById("card-form");
  var mount = form && form.querySelector("[data-stripe-card]");
  if (!mount || typeof window.Stripe !== "function") { return; }
  var error = form.querySelector("[data-card-error]");
  var button = form.querySelector("button[type=submit]");
  var stripe = window.Stripe(form.dataset.publicKey);
  var card = stripe.elements().create("card");
  card.mount(mount);
  var busy = false;

  function fail(result) {
    throw (result && result.error) || new Error("Your card could not be checked. Please try again.");
  }

  function paymentMethodId() {
    var made = typeof stripe.createPaymentMethod === "function"
      ? stripe.createPaymentMethod({ type: "card", card: card }) : null;
    return Promise.resolve(made).then(function (result) {
      if (result && result.paymentMethod) { return result.paymentMethod.id; }
      if (result && result.error) { fail(result); }
      return stripe.createToken(card).then(function (tokenResult) {
        if (!tokenResult || !tokenResult.token) { fail(tokenResult); }
        return tokenResult.token.id;
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    error.textContent = "";
    busy = true; button.disabled = true;
    paymentMethodId().then(function (id) {
      form.querySelector("input[name=card_token]").value = id;
      HTMLFormElement.prototype.submit.call(form);
    }).catch(function (err) {
      error.textContent = (err && err.message) || "Your card could not be checked. Please try again.";
      busy = false; button.disabled = false;
    });
  });
})();
