// Poll our own status endpoint (never the PSP) until the payment is final,
// then reload so the page shows the outcome. Backs off to at most 10 s.
(function () {
  var box = document.getElementById("payment-status");
  if (!box) { return; }
  var url = box.dataset.statusUrl, state = box.dataset.state, action = box.dataset.actionUrl || "", delay = 1000;
  function poll() {
    fetch(url, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && (data.final || data.state !== state || (data.action_url || "") !== action)) {
          window.location.reload(); return;
        }
        delay = Math.min(delay * 1.5, 10000);
        window.setTimeout(poll, delay);
      })
      .catch(function () { delay = Math.min(delay * 2, 10000); window.setTimeout(poll, delay); });
  }
  window.setTimeout(poll, delay);
})();
