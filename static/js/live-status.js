// Live payment status: a WebSocket to our own server for this payment only
// (signed token in data-live-path). Every message carries the whole state,
// so the page is updated in place, without a reload. If the socket cannot
// open or drops, polling (payment-status.js) takes over and the socket is
// tried again with back-off; once it is back, polling stops.
(function () {
  // The order page while a payment is open: reload it when the payment moves,
  // so that it shows the outcome (and the Pay form again after a decline).
  var marker = document.querySelector("[data-live-reload]");
  if (marker && !document.getElementById("payment-status")) {
    var wait = 1000;
    var watch = function () {
      var socket;
      try {
        socket = new WebSocket((window.location.protocol === "https:" ? "wss://" : "ws://") +
                               window.location.host + marker.dataset.livePath);
      } catch (e) { return; }
      socket.onopen = function () { wait = 1000; };
      socket.onmessage = function (event) {
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        if (data.type === "status" && (data.state !== marker.dataset.state ||
                                       (data.action_url || "") !== (marker.dataset.actionUrl || ""))) {
          marker.dataset.state = "reloading";
          window.location.reload();
        }
      };
      socket.onclose = function (event) {
        if (marker.dataset.state === "reloading" || event.code === 1000 || event.code === 4408) { return; }
        window.setTimeout(watch, wait);
        wait = Math.min(wait * 2, 30000);
      };
    };
    watch();
    return;
  }
  var box = document.getElementById("payment-status");
  if (!box || !box.dataset.livePath) { return; }
  var polling = window.reckonPolling;
  var cardFlow = box.dataset.flow === "direct";
  window.reckonPaymentOpen = box.dataset.final !== "true";

  // Leaving while a card payment is being confirmed asks first. Nothing is
  // lost if the customer leaves anyway; the page says so.
  window.addEventListener("beforeunload", function (event) {
    if (cardFlow && window.reckonPaymentOpen) {
      event.preventDefault();
      event.returnValue = "Your payment is still being confirmed. Leave this page?";
      return event.returnValue;
    }
  });

  // Back after paying stays on this page (one history entry of our own), so
  // it can never show the Pay form again or send anything twice.
  if (!history.state || !history.state.reckonStatus) {
    history.replaceState({reckonStatus: "base"}, "");
    history.pushState({reckonStatus: "top"}, "");
  }
  window.addEventListener("popstate", function (event) {
    if (event.state && event.state.reckonStatus === "base") {
      var note = box.querySelector("[data-testid=back-note]");
      if (note) { note.hidden = false; }
    }
  });

  function show(data) {
    var state = box.querySelector("[data-testid=payment-state]");
    state.textContent = data.title;
    state.className = "state state-" + data.state;
    box.querySelector("[data-testid=payment-message]").textContent = data.message;
    var actionBox = box.querySelector("[data-testid=payment-action-box]");
    if (actionBox) {
      actionBox.hidden = !data.action_url;
      if (data.action_url) { actionBox.querySelector("a").href = data.action_url; }
    }
    box.dataset.state = data.state;
    box.dataset.actionUrl = data.action_url || "";
    if (polling) { polling.seen(data.state, data.action_url); }
    if (data.final) {
      box.dataset.final = "true";
      window.reckonPaymentOpen = false;
      ["polling", "safe-to-close"].forEach(function (id) {
        var el = box.querySelector("[data-testid=" + id + "]");
        if (el) { el.hidden = true; }
      });
      var link = box.querySelector("[data-testid=order-link]");
      if (link) {
        link.textContent = data.order_state === "awaiting_payment" ? "Back to your order to try again" : "View your order";
      }
    }
  }

  var retry = 1000, done = false;
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket, opened = false;
    try {
      socket = new WebSocket(scheme + window.location.host + box.dataset.livePath);
    } catch (e) {
      fallBack(); return;
    }
    socket.onopen = function () { opened = true; retry = 1000; if (polling) { polling.stop(); } };
    socket.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type !== "status") { return; }
      show(data);
      if (data.final) { done = true; }
    };
    socket.onclose = function (event) {
      if (done) { return; }
      if (event.code === 4408) { if (polling) { polling.start(); } return; }  // idle: polling only
      fallBack(opened);
    };
  }
  function fallBack() {
    if (polling) { polling.start(); }
    window.setTimeout(connect, retry);
    retry = Math.min(retry * 2, 30000);
  }
  connect();
})();
