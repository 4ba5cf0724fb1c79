// The import's progress bar: polls the run's small JSON endpoint and reloads the page
// when the pass is over (the page then shows the dry run or the result). No inline
// script or style (CSP): the bar's width is set through the CSSOM, which CSP allows.
(function () {
  "use strict";

  var box = document.querySelector("[data-import-progress]");
  if (!box) {
    return;
  }
  var bar = box.querySelector("[data-progress-bar]");
  var meter = box.querySelector("[role=progressbar]");
  var doneText = box.querySelector("[data-progress-done]");
  var totalText = box.querySelector("[data-progress-total]");

  function show(state) {
    var total = state.rows_total || 0;
    var done = Math.min(state.rows_done, total || state.rows_done);
    var percent = total ? Math.round((100 * done) / total) : 0;
    bar.style.width = percent + "%";
    meter.setAttribute("aria-valuenow", String(done));
    meter.setAttribute("aria-valuemax", String(total));
    doneText.textContent = String(done);
    totalText.textContent = total ? String(total) : "?";
  }

  function poll() {
    fetch(box.dataset.importProgress, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (state) {
        show(state);
        if (state.running) {
          window.setTimeout(poll, 1000);
        } else {
          window.location.reload();
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }

  poll();
})();
