// Connect buttons on integration cards: a centred 600x700 sign-in window, completion by postMessage
// (from our own origin only) with polling of /integrations/<key>/status as the fallback, and a
// full-page fallback when the browser blocks the window. (Disconnect's confirmation is its form's
// data-confirm, which app.js asks.)
(function () {
  "use strict";
  var POLL_MS = 1500;
  var WIDTH = 600, HEIGHT = 700;

  function panelOf(key) { return document.querySelector('[data-connection-panel="' + key + '"]'); }

  // After a connect, the provider's whole section is fetched again from this page's URL and swapped in
  // place: its connection and, below it, the next setup step (choosing accounts, the sync dashboard).
  function refresh(key) {
    var section = document.querySelector('section[data-provider="' + key + '"]');
    if (!section) { return refreshPanel(key); }
    return fetch(location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html")
          .querySelector('section[data-provider="' + key + '"]');
        if (!fresh) { return refreshPanel(key); }
        var node = document.importNode(fresh, true);
        section.replaceWith(node);
        if (window.htmx) { window.htmx.process(node); }  // its Sync Now and Auto-Sync forms post through HTMX
      })
      .catch(function () { location.reload(); });
  }

  // Re-fetch the card's connection fragment alone and swap it in place.
  function refreshPanel(key) {
    return fetch("/integrations/" + encodeURIComponent(key) + "/panel", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var old = panelOf(key);
        if (!old) { return; }
        var box = document.createElement("div");
        box.innerHTML = html.trim();
        old.replaceWith(box.firstElementChild);
      })
      .catch(function () { location.reload(); });
  }

  // The state to compare against while polling: a reconnect is done when the token version moves.
  function snapshot(key) {
    return fetch("/integrations/" + encodeURIComponent(key) + "/status", { credentials: "same-origin" })
      .then(function (r) { return r.json(); });
  }

  function changed(before, now) {
    if (!now.connected) { return false; }
    var seen = {};
    (before.connections || []).forEach(function (c) { seen[c.id] = c.status + ":" + c.token_version; });
    return now.connections.some(function (c) {
      return c.status === "connected" && seen[c.id] !== c.status + ":" + c.token_version;
    });
  }

  function start(link) {
    var key = link.getAttribute("data-connect");
    var pageUrl = link.getAttribute("href");
    var popupUrl = pageUrl.replace("mode=page", "mode=popup");
    var left = Math.max(0, (window.screenX || 0) + (window.outerWidth - WIDTH) / 2);
    var top = Math.max(0, (window.screenY || 0) + (window.outerHeight - HEIGHT) / 2);
    var features = "popup=yes,width=" + WIDTH + ",height=" + HEIGHT + ",left=" + left + ",top=" + top;
    var popup = window.open(popupUrl, "fieldhub-connect-" + key, features);
    if (!popup) {
      // Blocked: say so and offer the same flow in this tab.
      var panel = panelOf(key);
      var note = panel && panel.querySelector(".popup-blocked");
      if (note) {
        note.querySelector("a").setAttribute("href", pageUrl);
        note.hidden = false;
      } else if (window.confirm("Your browser blocked the sign-in window. Continue in this tab?")) {
        location.href = pageUrl;
      }
      return;
    }
    var finished = false;
    var timer = null;
    function done() {
      if (finished) { return; }
      finished = true;
      window.removeEventListener("message", onMessage);
      clearInterval(timer);
      refresh(key);
    }
    function onMessage(event) {
      // Only our own pages may report a connect; anything else is ignored.
      if (event.origin !== location.origin || !event.data || event.data.provider !== key) { return; }
      if (event.data.type === "fieldhub:connected") { done(); }
      if (event.data.type === "fieldhub:connect-failed") {
        finished = true;
        clearInterval(timer);
        window.removeEventListener("message", onMessage);
      }
    }
    window.addEventListener("message", onMessage);
    snapshot(key).then(function (before) {
      timer = setInterval(function () {
        snapshot(key).then(function (now) {
          if (changed(before, now)) { done(); }
        }).catch(function () {});
        // Closed without finishing: stop polling after one last look.
        if (popup.closed && !finished) {
          snapshot(key).then(function (now) { if (changed(before, now)) { done(); } });
          clearInterval(timer);
          window.removeEventListener("message", onMessage);
        }
      }, POLL_MS);
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-connect]");
    if (!link) { return; }
    event.preventDefault();
    start(link);
  });
})();
