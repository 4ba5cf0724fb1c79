// calmail's page behaviour: plain JavaScript, loaded with defer after Bootstrap.
// Everything is wired through data attributes, because the Content-Security-Policy
// forbids inline scripts and on* handler attributes.
(function () {
  "use strict";

  // --- "Select all" for bulk actions -----------------------------------------
  // <input type="checkbox" data-select-all="pk"> ticks every checkbox named "pk".
  // The row checkboxes may sit outside the bulk form (form="…" attribute), so they
  // are looked up in the whole document, not inside a form.

  function rowBoxes(name) {
    var selector = 'input[type="checkbox"][name="' + CSS.escape(name) + '"]';
    return Array.prototype.filter.call(document.querySelectorAll(selector), function (box) {
      return !box.disabled;
    });
  }

  // Checked when every row is, half-checked when some are.
  function syncSelectAll(master) {
    var boxes = rowBoxes(master.dataset.selectAll);
    var checked = boxes.filter(function (box) { return box.checked; }).length;
    master.checked = boxes.length > 0 && checked === boxes.length;
    master.indeterminate = checked > 0 && checked < boxes.length;
  }

  function selectAllFor(name) {
    return Array.prototype.filter.call(
      document.querySelectorAll('input[type="checkbox"][data-select-all]'),
      function (master) { return master.dataset.selectAll === name; }
    );
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLInputElement) || target.type !== "checkbox") {
      return;
    }
    if (target.dataset.selectAll !== undefined) {
      rowBoxes(target.dataset.selectAll).forEach(function (box) {
        box.checked = target.checked;
      });
      selectAllFor(target.dataset.selectAll).forEach(syncSelectAll);
    } else if (target.name) {
      selectAllFor(target.name).forEach(syncSelectAll);
    }
  });

  // --- Confirmation --------------------------------------------------------
  // <button data-confirm="Delete 3 mails?"> asks first; declining cancels the click,
  // and with it the form submission or navigation. Capture phase, so it runs before
  // any other click handler.
  document.addEventListener("click", function (event) {
    var element = event.target instanceof Element ? event.target.closest("[data-confirm]") : null;
    if (element && !window.confirm(element.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // --- Start-up ------------------------------------------------------------
  function init() {
    // Browsers restore checkbox states on back navigation; match the masters to them.
    document.querySelectorAll('input[type="checkbox"][data-select-all]').forEach(syncSelectAll);

    // Bootstrap tooltips are opt-in: they only work once created.
    if (window.bootstrap) {
      document.querySelectorAll('[data-bs-toggle="tooltip"]').forEach(function (element) {
        window.bootstrap.Tooltip.getOrCreateInstance(element);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
