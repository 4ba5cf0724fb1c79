// Templates section: the template form's type-dependent parts (the preview page's
// recipient field is the shared picker, static/js/recipient-picker.js). Plain JavaScript
// wired through data attributes (the CSP forbids inline scripts). Without JavaScript
// everything still works: all placeholders and reports are shown.
(function () {
  "use strict";

  // --- Template form: placeholders and reports of the selected type --------------------

  function syncTemplateType(select) {
    var type = select.value;
    var label = select.options[select.selectedIndex] ? select.options[select.selectedIndex].text : "";
    document.querySelectorAll("[data-placeholders-type]").forEach(function (block) {
      block.hidden = block.dataset.placeholdersType !== type;
    });
    document.querySelectorAll("select[data-report-select] optgroup").forEach(function (group) {
      var fits = group.label === label;
      group.disabled = !fits;
      group.hidden = !fits;
    });
  }

  function init() {
    document.querySelectorAll("select[data-template-type-select]").forEach(function (select) {
      syncTemplateType(select);
      select.addEventListener("change", function () { syncTemplateType(select); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
