// Actions form: the next runs update as the rule changes (the recipients field is the
// shared picker, static/js/recipient-picker.js). Plain JavaScript wired through data
// attributes (the CSP forbids inline scripts); without it the "Show next runs" button
// does the same.
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

  function init() {
    document.querySelectorAll("[data-next-runs-url]").forEach(setupNextRuns);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
