// The last page of a sign-in window: tell the page that opened it how the connect ended (same origin
// only; its polling covers a lost message), then close when it worked. What to say is in the page's
// data-connect-result, data-provider and data-message attributes.
(function () {
  "use strict";
  var page = document.querySelector("[data-connect-result]");
  if (!page) { return; }
  var ok = page.getAttribute("data-connect-result") === "connected";
  var message = { type: ok ? "fieldhub:connected" : "fieldhub:connect-failed", provider: page.getAttribute("data-provider") };
  if (!ok) { message.message = page.getAttribute("data-message"); }
  if (window.opener) { window.opener.postMessage(message, location.origin); }
  if (ok) { window.close(); }
})();
