// The fallback: poll our own status endpoint (never the PSP) until the
// payment changes, then reload so the page shows it. Backs off to at most
// 10 s. live-status.js starts and stops it around the WebSocket; without it
// (or without WebSocket support) it runs by itself.
(function () {
  var box = document.getElementById("payment-status");
  if (!box) { return; }
  var url = box.dataset.statusUrl, state = box.dataset.state, action = box.dataset.actionUrl || "";
  var delay = 1000, timer = null, running = false;
  function poll() {
    timer = null;
    fetch(url, {headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!running) { return; }
        if (data && (data.final || data.state !== state || (data.action_url || "") !== action)) {
          window.reckonPaymentOpen = false;  // no "leave?" prompt for our own reload
          window.location.reload(); return;
        }
        delay = Math.min(delay * 1.5, 10000);
        timer = window.setTimeout(poll, delay);
      })
      .catch(function () {
        if (!running) { return; }
        delay = Math.min(delay * 2, 10000); timer = window.setTimeout(poll, delay);
      });
  }
  window.reckonPolling = {
    start: function () {
      if (running) { return; }
      running = true; delay = 1000; timer = window.setTimeout(poll, delay);
    },
    stop: function () {
      running = false;
      if (timer) { window.clearTimeout(timer); timer = null; }
    },
    seen: function (newState, newAction) { state = newState; action = newAction || ""; }
  };
  if (!box.dataset.livePath || !("WebSocket" in window)) { window.reckonPolling.start(); }
})();
