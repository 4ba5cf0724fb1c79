// Templates section: recipient autocomplete on the preview page, and the template form's
// type-dependent parts. Plain JavaScript wired through data attributes (the CSP forbids
// inline scripts). Without JavaScript everything still works: all placeholders and
// reports are shown, and the recipient field takes a token typed by hand.
(function () {
  "use strict";

  // --- Recipient autocomplete ----------------------------------------------------------
  // <input data-recipient-search="/inventory/recipients/search/" list="recipient-options">
  // fills its <datalist> with the search endpoint's tokens ("customer:5", "user:12", …).

  function debounce(fn, wait) {
    var timer = null;
    return function () {
      var args = arguments;
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { fn.apply(null, args); }, wait);
    };
  }

  function setupRecipientSearch(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) {
      return;
    }
    var latest = 0;
    var search = debounce(function () {
      var query = input.value.trim();
      // A token or an address is final: nothing to look up.
      if (query.length < 2 || /^(user|customer|list|system):\d+$/.test(query)) {
        return;
      }
      var request = ++latest;
      var url = input.dataset.recipientSearch + "?limit=15&q=" + encodeURIComponent(query);
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : { results: [] }; })
        .then(function (data) {
          if (request !== latest) {
            return;  // an answer to an older query
          }
          list.replaceChildren();
          (data.results || []).forEach(function (choice) {
            var option = document.createElement("option");
            option.value = choice.token;
            option.label = choice.kind_label + ": " + choice.label +
              (choice.detail ? " (" + choice.detail + ")" : "");
            list.appendChild(option);
          });
          list.dataset.loaded = String(list.children.length);
        })
        .catch(function () { /* no suggestions; the field still takes typed tokens */ });
    }, 200);
    input.addEventListener("input", search);
  }

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
    document.querySelectorAll("input[data-recipient-search]").forEach(setupRecipientSearch);
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
