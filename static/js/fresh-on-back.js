// A page restored from the browser's back/forward cache is a picture of the
// past (say, a Pay form for an order paid since): fetch it again instead.
// The server already sends Cache-Control: no-store for these pages.
window.addEventListener("pageshow", function (event) {
  if (event.persisted) { window.location.reload(); }
});
