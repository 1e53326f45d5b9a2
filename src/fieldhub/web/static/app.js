// Small behaviours every page may use, declared in the markup instead of inline handlers (the
// Content-Security-Policy allows scripts from /static only): a form with data-confirm asks first, a
// control with data-autosubmit submits its form when it changes, data-print prints the page,
// data-close-window closes a sign-in window, and the phone menu's data-menu button shows and hides
// the links it controls (on a wide screen they always show).
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("change", function (event) {
    var control = event.target;
    if (control.hasAttribute && control.hasAttribute("data-autosubmit") && control.form) { control.form.submit(); }
  });

  document.addEventListener("click", function (event) {
    if (!event.target.closest) { return; }
    if (event.target.closest("[data-print]")) { window.print(); }
    if (event.target.closest("[data-close-window]")) { window.close(); }
    var menu = event.target.closest("[data-menu]");
    if (menu) {
      var open = menu.getAttribute("aria-expanded") !== "true";
      menu.setAttribute("aria-expanded", String(open));
      document.getElementById(menu.getAttribute("aria-controls")).classList.toggle("open", open);
    }
  });
})();
