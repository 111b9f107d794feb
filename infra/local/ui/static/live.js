// Stepline dashboard: keep the page's live region fresh (every 2 s while the tab is
// visible). The server renders only that region for requests carrying X-Live: 1.
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  var state = document.getElementById("live-state");
  function region() { return document.querySelector("[data-live]"); }
  function busy(el) {
    var active = document.activeElement;
    var selecting = window.getSelection && String(window.getSelection()).length > 0;
    return selecting || (active && el.contains(active) && active.tagName !== "BODY" && active.tagName !== "A");
  }
  function refresh() {
    var el = region();
    if (!el || document.hidden || busy(el)) { return schedule(); }
    fetch(window.location.href, { headers: { "X-Live": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        if (html !== el.dataset.last) {
          el.innerHTML = html;
          el.dataset.last = html;
        }
        if (state) { state.textContent = "live · " + new Date().toLocaleTimeString(); state.className = ""; }
      })
      .catch(function () { if (state) { state.textContent = "not reachable"; state.className = "stale"; } })
      .then(schedule);
  }
  function schedule() { window.setTimeout(refresh, PERIOD_MS); }
  schedule();
})();
