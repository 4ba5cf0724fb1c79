// Actions form: the next runs update as the rule changes, and the recipients field
// suggests users, customers, lists and system addresses for the token being typed.
// Plain JavaScript wired through data attributes (the CSP forbids inline scripts);
// without it the "Show next runs" button and hand-typed tokens do the same.
(function () {
  "use strict";

  function debounce(fn, wait) {
    var timer = null;
    return function () {
      var args = arguments;
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { fn.apply(null, args); }, wait);
    };
  }

  // --- Next runs -------------------------------------------------------------------------

  function setupNextRuns(list) {
    var first = document.querySelector("[data-rule-field]");
    var form = first ? first.form : null;
    var message = document.querySelector("[data-next-runs-message]");
    if (!form) {
      return;
    }
    var latest = 0;
    var update = debounce(function () {
      var params = new URLSearchParams();
      form.querySelectorAll("[data-rule-field]").forEach(function (field) {
        if (field.tagName === "SELECT" && field.multiple) {
          Array.prototype.forEach.call(field.selectedOptions, function (option) {
            params.append(field.name, option.value);
          });
        } else if (field.value) {
          params.append(field.name, field.value);
        }
      });
      var request = ++latest;
      fetch(list.dataset.nextRunsUrl + "?" + params.toString(), {
        headers: { Accept: "application/json" }, credentials: "same-origin"
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || request !== latest) {
            return;
          }
          list.replaceChildren();
          data.runs.forEach(function (run) {
            var item = document.createElement("li");
            item.textContent = run;
            list.appendChild(item);
          });
          if (message) {
            message.textContent = data.message;
          }
          list.dataset.loaded = String(request);
        })
        .catch(function () { /* the button still shows them */ });
    }, 250);
    form.querySelectorAll("[data-rule-field]").forEach(function (field) {
      field.addEventListener("change", update);
      field.addEventListener("input", update);
    });
    update();
  }

  // --- Recipient suggestions for the last token of the field ---------------------------

  function setupRecipients(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) {
      return;
    }
    var latest = 0;
    var search = debounce(function () {
      var parts = input.value.split(/[,;\n]/);
      var query = parts[parts.length - 1].trim();
      if (query.length < 2 || /^(user|customer|list|system):\d+$/.test(query)) {
        return;
      }
      var prefix = parts.slice(0, -1).map(function (p) { return p.trim(); })
        .filter(Boolean).join(", ");
      var request = ++latest;
      var url = input.dataset.recipientsSearch + "?limit=15&q=" + encodeURIComponent(query);
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : { results: [] }; })
        .then(function (data) {
          if (request !== latest) {
            return;
          }
          list.replaceChildren();
          (data.results || []).forEach(function (choice) {
            var option = document.createElement("option");
            option.value = (prefix ? prefix + ", " : "") + choice.token;
            option.label = choice.kind_label + ": " + choice.label +
              (choice.detail ? " (" + choice.detail + ")" : "");
            list.appendChild(option);
          });
          list.dataset.loaded = String(list.children.length);
        })
        .catch(function () { /* typed tokens still work */ });
    }, 200);
    input.addEventListener("input", search);
  }

  function init() {
    document.querySelectorAll("[data-next-runs-url]").forEach(setupNextRuns);
    document.querySelectorAll("[data-recipients-search]").forEach(setupRecipients);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
